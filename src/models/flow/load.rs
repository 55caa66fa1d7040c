//! State dict → flow: the keys of `models::flow`'s docs read through [`StateDict`], each
//! conditioner folded; and the upload.

use std::collections::BTreeMap;
use std::path::Path;

use super::weights::{Conditioner, Layer, Linear};
use super::{Flow, FlowConfig, LayerConfig};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::{widen, StateDict};
use crate::ops::{self, SplineParams};
use crate::runtime::Context;
use crate::tensor::Tensor;

const WHAT: &str = "flow weights";

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
                "{WHAT}: layers.{i}.net.{j}.weight has shape {:?}, expected [H, {width}]",
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
            "{WHAT}: layers.{i}.mask must transform some but not all of the {d} features"
        )));
    }
    Ok(mask)
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

impl Flow {
    /// Builds the flow from a state dict; refuses missing, extra or mis-shaped keys.
    pub fn from_state_dict(config: FlowConfig, sd: BTreeMap<String, HostTensor>) -> Result<Flow> {
        Self::from_dict(config, StateDict::new(WHAT, sd))
    }

    fn from_dict(config: FlowConfig, mut sd: StateDict) -> Result<Flow> {
        config.validate()?;
        let d = config.features;
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
                    let mask = mask_of(&mut sd, i, d)?;
                    let params = SplineParams { tail_bound: *tail_bound, ..Default::default() };
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
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Flow> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = FlowConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut f = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
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
}
