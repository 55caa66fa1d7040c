//! Composite normalizing flows (docs/ops.md, affine coupling and spline; config in docs/models.md): a stack of ActNorm,
//! affine-coupling and rational-quadratic-spline-coupling layers on x [N, D], for density evaluation (data → base, the
//! log-dets accumulated) and sampling (base → data, with temperature), each recorded as one submit.
//!
//! Weights (safetensors) and their key names, for layer i:
//! - ActNorm: `layers.{i}.log_scale [D]`, `layers.{i}.bias [D]`.
//! - Couplings: `layers.{i}.mask [D]` (1 = transformed, T of them); the conditioner, an MLP on the
//!   D − T identity features in order: `layers.{i}.net.{j}.weight [H_j, H_{j−1}]` and `.bias` for its
//!   hidden layers (ReLU), `layers.{i}.net.out.weight [P, H]` and `.bias [P]` for the output, with
//!   P = 2T for affine (nflows order: T shifts, then T unconstrained scales) and T·(3K−1) for the
//!   spline (per transformed feature: K widths, K heights, K−1 derivatives, contiguous).
//!   As nflows' coupling does, spline widths and heights are divided by √H of the last hidden layer.
//!
//! Loading folds the conditioner so that no gather is needed: its first layer takes all D features
//! with zero columns for the transformed ones, and its output rows are split into one head per
//! parameter kind.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{widen, StateDict};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Activation, SplineParams};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    Actnorm,
    Affine,
    Spline {
        bins: usize,
        #[serde(default = "one")]
        tail_bound: f32,
    },
}

fn one() -> f32 {
    1.0
}

/// The largest spline tail bound a flow config may give (the op's own limit).
pub use crate::ops::flows::MAX_TAIL_BOUND;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    pub features: usize,
    pub layers: Vec<LayerConfig>,
}

/// A linear layer with host and device copies.
struct Linear {
    w: HostTensor,
    b: HostTensor,
    dev: Option<(Tensor, Tensor)>,
}

impl Linear {
    fn new(w: HostTensor, b: HostTensor) -> Self {
        Linear { w, b, dev: None }
    }
}

/// The conditioner: hidden layers (ReLU) on all D features, then one output head per parameter kind.
struct Conditioner {
    hidden: Vec<Linear>,
    heads: Vec<Linear>,
    /// The coupling's mask on the device (made at upload).
    fmask: Option<ops::flows::FeatureMask>,
}

impl Conditioner {
    fn feature_mask(&self) -> Result<&ops::flows::FeatureMask> {
        self.fmask.as_ref().ok_or_else(|| Error::param("flow", "weights", "not uploaded"))
    }
}

enum Layer {
    Actnorm { log_s: HostTensor, b: HostTensor, dev: Option<(Tensor, Tensor)> },
    Affine { mask: Vec<bool>, net: Conditioner },
    Spline { mask: Vec<bool>, bins: usize, params: SplineParams, net: Conditioner },
}

pub struct Flow {
    pub config: FlowConfig,
    layers: Vec<Layer>,
}

fn take(sd: &mut StateDict, key: &str, shape: Option<&[usize]>) -> Result<HostTensor> {
    match shape {
        Some(s) => sd.take(key, s),
        None => sd.take_any(key),
    }
}

/// Reads layer i's conditioner and folds it (see the module docs). Its output is `blocks` blocks of
/// `block` rows; `parts` are the heads as (rows taken from each block, offset in the block, scale).
fn conditioner(
    sd: &mut StateDict,
    i: usize,
    mask: &[bool],
    blocks: usize,
    block: usize,
    parts: &[(usize, usize, f32)],
) -> Result<Conditioner> {
    let d = mask.len();
    let t = mask.iter().filter(|&&m| m).count();
    let mut hidden = Vec::new();
    let mut width = d - t;
    let mut j = 0;
    while sd.has(&format!("layers.{i}.net.{j}.weight")) {
        let w = take(sd, &format!("layers.{i}.net.{j}.weight"), None)?;
        if w.shape.len() != 2 || w.shape[1] != width {
            return Err(Error::Weights(format!(
                "flow weights: layers.{i}.net.{j}.weight has shape {:?}, expected [H, {width}]",
                w.shape
            )));
        }
        let h = w.shape[0];
        let b = take(sd, &format!("layers.{i}.net.{j}.bias"), Some(&[h]))?;
        let w = if j == 0 { widen(&w, mask) } else { w };
        hidden.push(Linear::new(w, b));
        width = h;
        j += 1;
    }
    let p = blocks * block;
    let w = take(sd, &format!("layers.{i}.net.out.weight"), Some(&[p, width]))?;
    let b = take(sd, &format!("layers.{i}.net.out.bias"), Some(&[p]))?;
    let w = if hidden.is_empty() { widen(&w, mask) } else { w };
    let cols = w.shape[1];
    let heads = parts
        .iter()
        .map(|&(rows, off, scale)| {
            let (mut hw, mut hb) = (Vec::with_capacity(blocks * rows * cols), Vec::with_capacity(blocks * rows));
            for f in 0..blocks {
                for r in 0..rows {
                    let src = f * block + off + r;
                    hw.extend(w.data[src * cols..(src + 1) * cols].iter().map(|v| v * scale));
                    hb.push(b.data[src] * scale);
                }
            }
            Linear::new(HostTensor::new(vec![blocks * rows, cols], hw), HostTensor::new(vec![blocks * rows], hb))
        })
        .collect();
    Ok(Conditioner { hidden, heads, fmask: None })
}

fn mask_of(sd: &mut StateDict, i: usize, d: usize) -> Result<Vec<bool>> {
    let m = take(sd, &format!("layers.{i}.mask"), Some(&[d]))?;
    let mask: Vec<bool> = m.data.iter().map(|&v| v > 0.0).collect();
    let t = mask.iter().filter(|&&v| v).count();
    if t == 0 || t == d {
        return Err(Error::Weights(format!(
            "flow weights: layers.{i}.mask must transform some but not all of the {d} features"
        )));
    }
    Ok(mask)
}

impl Flow {
    /// Builds the flow from a state dict; refuses missing, extra or mis-shaped keys.
    pub fn from_state_dict(config: FlowConfig, sd: BTreeMap<String, HostTensor>) -> Result<Flow> {
        let mut sd = StateDict::new("flow weights", sd);
        let d = config.features;
        if d < 2 {
            return Err(Error::param("flow", "features", "a coupling flow needs at least 2 features"));
        }
        if d > ops::MAX_GEOMETRY {
            return Err(Error::param(
                "flow",
                "features",
                format!("{d} is past the supported maximum {}", ops::MAX_GEOMETRY),
            ));
        }
        if config.layers.len() > ops::MAX_GEOMETRY {
            return Err(Error::param("flow", "layers", format!("{} layers", config.layers.len())));
        }
        let mut layers = Vec::new();
        for (i, lc) in config.layers.iter().enumerate() {
            layers.push(match lc {
                LayerConfig::Actnorm => Layer::Actnorm {
                    log_s: take(&mut sd, &format!("layers.{i}.log_scale"), Some(&[d]))?,
                    b: take(&mut sd, &format!("layers.{i}.bias"), Some(&[d]))?,
                    dev: None,
                },
                LayerConfig::Affine => {
                    let mask = mask_of(&mut sd, i, d)?;
                    // nflows' order: T shifts, then T unconstrained scales.
                    let t = mask.iter().filter(|&&m| m).count();
                    let net = conditioner(&mut sd, i, &mask, 1, 2 * t, &[(t, 0, 1.0), (t, t, 1.0)])?;
                    Layer::Affine { mask, net }
                }
                LayerConfig::Spline { bins, tail_bound } => {
                    let k = *bins;
                    if !(2..=ops::MAX_GEOMETRY).contains(&k) {
                        return Err(Error::param(
                            "flow",
                            format!("layers[{i}].bins"),
                            format!("{k}: a spline needs 2..={} bins", ops::MAX_GEOMETRY),
                        ));
                    }
                    // Past 1e6 the spline's f32 arithmetic (knots at 2·B·width, squared
                    // heights) leaves f32's range: 3.4e38 gave a density unlike the reference's.
                    if tail_bound.is_nan() || *tail_bound > MAX_TAIL_BOUND {
                        return Err(Error::param(
                            "flow",
                            format!("layers[{i}].tail_bound"),
                            format!("{tail_bound:e} is past {MAX_TAIL_BOUND:e}"),
                        ));
                    }
                    let mask = mask_of(&mut sd, i, d)?;
                    let params = SplineParams { tail_bound: *tail_bound, ..Default::default() };
                    params.validate(k)?;
                    // Widths and heights divided by sqrt of the last hidden width (nflows).
                    let h = last_width(&sd, i, d - mask.iter().filter(|&&m| m).count())?;
                    let s = 1.0 / (h as f32).sqrt();
                    let t = mask.iter().filter(|&&m| m).count();
                    let net =
                        conditioner(&mut sd, i, &mask, t, 3 * k - 1, &[(k, 0, s), (k, k, s), (k - 1, 2 * k, 1.0)])?;
                    Layer::Spline { mask, bins: k, params, net }
                }
            });
        }
        sd.finish()?;
        Ok(Flow { config, layers })
    }

    /// Loads a flow from safetensors weights and a JSON config, and uploads it.
    pub fn load(ctx: &Context, weights: &std::path::Path, config: &std::path::Path) -> Result<Flow> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg: FlowConfig = serde_json::from_str(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("flow config: {e}") })?;
        let sd = crate::io::read_weights(weights)?.tensors;
        let mut f = Self::from_state_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        f.upload(ctx)?;
        Ok(f)
    }

    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        for l in &mut self.layers {
            match l {
                Layer::Actnorm { log_s, b, dev } => *dev = Some((up(log_s)?, up(b)?)),
                Layer::Affine { mask, net } | Layer::Spline { mask, net, .. } => {
                    net.fmask = Some(ops::flows::FeatureMask::new(ctx, mask)?);
                    for lin in net.hidden.iter_mut().chain(net.heads.iter_mut()) {
                        lin.dev = Some((up(&lin.w)?, up(&lin.b)?));
                    }
                }
            }
        }
        Ok(())
    }

    fn heads(rec: &mut Recorder, net: &Conditioner, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = x.clone();
        for lin in &net.hidden {
            let (w, b) = lin.dev.as_ref().ok_or_else(|| Error::param("flow", "weights", "not uploaded"))?;
            h = ops::linear(rec, &h, w, Some(b), Activation::Relu)?;
        }
        net.heads
            .iter()
            .map(|lin| {
                let (w, b) = lin.dev.as_ref().ok_or_else(|| Error::param("flow", "weights", "not uploaded"))?;
                ops::linear(rec, &h, w, Some(b), Activation::Identity)
            })
            .collect()
    }

    /// One layer forward (data → base) or inverse; returns the new x and the running log-det.
    /// One layer forward (data → base) or inverse. The running log-det is a per-row tensor (from the
    /// couplings, `None` before the first) plus a constant not yet added to it (ActNorm's, which does
    /// not depend on x): returns the new x, tensor and constant.
    fn layer(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        x: &Tensor,
        acc: Option<&Tensor>,
        pending: f32,
        inverse: bool,
    ) -> Result<(Tensor, Option<Tensor>, f32)> {
        let n = x.shape()[0];
        let (y, ld) = match l {
            Layer::Actnorm { log_s, dev, .. } => {
                let (ls, b) = dev.as_ref().ok_or_else(|| Error::param("flow", "weights", "not uploaded"))?;
                let y = ops::actnorm(rec, x, ls, b, inverse)?;
                let c = ops::flows::actnorm_logdet(&log_s.data, 1, inverse) as f32;
                return Ok((y, acc.cloned(), pending + c));
            }
            Layer::Affine { net, .. } => {
                let p = Self::heads(rec, net, x)?;
                ops::flows::affine_coupling_masked(rec, x, &p[0], &p[1], net.feature_mask()?, inverse)?
            }
            Layer::Spline { mask, bins, params, net } => {
                let p = Self::heads(rec, net, x)?;
                let t = mask.iter().filter(|&&m| m).count();
                let (k, sp) = (*bins, SplineParams { inverse, ..*params });
                let w = p[0].reshape(&[n, t, k])?;
                let h = p[1].reshape(&[n, t, k])?;
                let d = p[2].reshape(&[n, t, k - 1])?;
                ops::flows::rq_spline_coupling_masked(rec, x, &w, &h, &d, net.feature_mask()?, &sp)?
            }
        };
        Ok((y, Some(ops::row_sum_add(rec, &ld, acc, 1.0, pending)?), 0.0))
    }

    fn check_input(&self, x: &Tensor) -> Result<usize> {
        match x.shape() {
            &[n, d] if d == self.config.features => Ok(n),
            s => Err(Error::shape("flow", "input", s, format!("[N, {}]", self.config.features))),
        }
    }

    /// Records data → base: returns (z [N, D], log p(x) [N] = log N(z) + Σ log-dets).
    pub fn record_log_prob(&self, rec: &mut Recorder, x: &Tensor) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.log_prob_unit(rec, x))
    }

    fn log_prob_unit(&self, rec: &mut Recorder, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        let mut h = x.clone();
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for l in &self.layers {
            (h, acc, pending) = self.layer(rec, l, &h, acc.as_ref(), pending, false)?;
        }
        let lp = ops::normal_logprob(rec, &h, acc.as_ref(), pending)?;
        Ok((h, lp))
    }

    /// Records base → data for `n` samples drawn with the engine's generator (seed, offset) and
    /// scaled by `temperature`: returns (x [n, D], log-det of the inverse pass [n]).
    pub fn record_sample(
        &self,
        rec: &mut Recorder,
        n: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.sample_unit(rec, n, temperature, seed, offset))
    }

    fn sample_unit(
        &self,
        rec: &mut Recorder,
        n: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        ops::finite("flow", "temperature", temperature, true)?;
        let d = self.config.features;
        let z = ops::random_normal_scaled(rec, &[n, d], seed, offset, temperature)?;
        let mut h = z.clone();
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for l in self.layers.iter().rev() {
            (h, acc, pending) = self.layer(rec, l, &h, acc.as_ref(), pending, true)?;
        }
        // Whatever constant is left (or all of it, in a flow without couplings).
        let ld = match acc {
            Some(a) if pending == 0.0 => a,
            Some(a) => ops::row_sum_add(rec, &a, None, 1.0, pending)?,
            None => ops::row_sum_add(rec, &z, None, 0.0, pending)?,
        };
        Ok((h, ld))
    }

    /// log p(x) with the CPU reference ops (f64), for checks.
    pub fn reference_log_prob(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        use crate::reference;
        let d = self.config.features;
        if x.len() != n * d {
            return Err(Error::shape("flow", "input", &[x.len()], format!("[{n}, {d}]")));
        }
        let mut h = x.to_vec();
        let mut acc = vec![0f64; n];
        let mlp = |net: &Conditioner, h: &[f32]| -> Vec<Vec<f32>> {
            let mut a = h.to_vec();
            let mut width = d;
            for lin in &net.hidden {
                let o = lin.w.shape[0];
                a = reference::linear(&a, n, width, &lin.w.data, o, Some(&lin.b.data), Activation::Relu);
                width = o;
            }
            net.heads
                .iter()
                .map(|lin| {
                    reference::linear(
                        &a,
                        n,
                        width,
                        &lin.w.data,
                        lin.w.shape[0],
                        Some(&lin.b.data),
                        Activation::Identity,
                    )
                })
                .collect()
        };
        for l in &self.layers {
            match l {
                Layer::Actnorm { log_s, b, .. } => {
                    h = reference::flows::actnorm(&h, d, &log_s.data, &b.data, false);
                    let c: f64 = log_s.data.iter().map(|&v| v as f64).sum();
                    acc.iter_mut().for_each(|a| *a += c);
                }
                Layer::Affine { mask, net } => {
                    let p = mlp(net, &h);
                    let (y, ld) = reference::flows::affine_coupling(&h, n, d, &p[0], &p[1], mask, false);
                    h = y;
                    acc.iter_mut().zip(&ld).for_each(|(a, l)| *a += *l as f64);
                }
                Layer::Spline { mask, bins, params, net } => {
                    let p = mlp(net, &h);
                    let (k, t) = (*bins, mask.iter().filter(|&&m| m).count());
                    for r in 0..n {
                        let mut tj = 0;
                        for j in 0..d {
                            if !mask[j] {
                                continue;
                            }
                            let e = r * t + tj;
                            let (y, l) = reference::flows::rq_spline_f64(
                                h[r * d + j] as f64,
                                &p[0][e * k..(e + 1) * k],
                                &p[1][e * k..(e + 1) * k],
                                &p[2][e * (k - 1)..(e + 1) * (k - 1)],
                                params,
                            );
                            h[r * d + j] = y as f32;
                            acc[r] += l;
                            tj += 1;
                        }
                    }
                }
            }
        }
        let base = reference::flows::normal_logprob(&h, d);
        Ok(base.iter().zip(&acc).map(|(b, a)| (*b as f64 + a) as f32).collect())
    }
}

fn last_width(sd: &StateDict, i: usize, first: usize) -> Result<usize> {
    let mut w = first;
    let mut j = 0;
    while let Some(s) = sd.shape(&format!("layers.{i}.net.{j}.weight")) {
        w = s.first().copied().unwrap_or(w);
        j += 1;
    }
    Ok(w)
}
