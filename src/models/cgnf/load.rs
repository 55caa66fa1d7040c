//! State dict → cGNF: propose's keys read through [`StateDict`], the conditioners folded (module
//! docs of `models::cgnf`), and the upload.

use std::collections::BTreeMap;
use std::path::Path;

use super::weights::{ActNorm, Coupling, Folded, Gcn, Lin, Sage};
use super::{Cgnf, CgnfConfig, WHAT};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::{widen, StateDict};
use crate::ops::{self, Skeleton};
use crate::runtime::Context;
use crate::tensor::Tensor;

impl Lin {
    fn upload(&mut self, ctx: &Context) -> Result<()> {
        let w = Tensor::from_f32(ctx, &self.w.data, &self.w.shape)?;
        let b = self.b.as_ref().map(|b| Tensor::from_f32(ctx, &b.data, &b.shape)).transpose()?;
        self.dev = Some((w, b));
        Ok(())
    }
}

fn lin(sd: &mut StateDict, key: &str, o: usize, i: usize, bias: bool) -> Result<Lin> {
    let w = sd.take(&format!("{key}.weight"), &[o, i])?;
    let b = if bias { Some(sd.take(&format!("{key}.bias"), &[o])?) } else { None };
    Ok(Lin::new(w, b))
}

/// Rows of `a` then rows of `b` (weights and biases).
fn vstack(a: &Lin, b: &Lin) -> Lin {
    let cat = |x: &HostTensor, y: &HostTensor| {
        let mut shape = x.shape.clone();
        shape[0] += y.shape[0];
        HostTensor::new(shape, [x.data.as_slice(), y.data.as_slice()].concat())
    };
    let bias = match (&a.b, &b.b) {
        (Some(x), Some(y)) => Some(cat(x, y)),
        _ => None,
    };
    Lin::new(cat(&a.w, &b.w), bias)
}

/// Columns of `a` then columns of `b` (same rows), with `a`'s bias.
fn hstack(a: &Lin, b: &Lin) -> Lin {
    let (o, ia, ib) = (a.w.shape[0], a.w.shape[1], b.w.shape[1]);
    let mut w = Vec::with_capacity(o * (ia + ib));
    for r in 0..o {
        w.extend_from_slice(&a.w.data[r * ia..(r + 1) * ia]);
        w.extend_from_slice(&b.w.data[r * ib..(r + 1) * ib]);
    }
    Lin::new(HostTensor::new(vec![o, ia + ib], w), a.b.clone())
}

/// `outer` after `inner` as one linear layer: W = W_o W_i, b = W_o b_i + b_o (f64 products).
fn compose(outer: &Lin, inner: &Lin) -> Lin {
    let (o, m, i) = (outer.w.shape[0], outer.w.shape[1], inner.w.shape[1]);
    let mut w = vec![0f32; o * i];
    let mut b = vec![0f32; o];
    for r in 0..o {
        for c in 0..i {
            w[r * i + c] =
                (0..m).map(|k| outer.w.data[r * m + k] as f64 * inner.w.data[k * i + c] as f64).sum::<f64>() as f32;
        }
        let ib = |k: usize| inner.b.as_ref().map_or(0.0, |b| b.data[k] as f64);
        b[r] = ((0..m).map(|k| outer.w.data[r * m + k] as f64 * ib(k)).sum::<f64>()
            + outer.b.as_ref().map_or(0.0, |b| b.data[r] as f64)) as f32;
    }
    Lin::new(HostTensor::new(vec![o, i], w), Some(HostTensor::new(vec![o], b)))
}

/// Rows `from..to` of a linear layer.
fn rows(l: &Lin, from: usize, to: usize) -> Lin {
    let i = l.w.shape[1];
    Lin::new(
        HostTensor::new(vec![to - from, i], l.w.data[from * i..to * i].to_vec()),
        l.b.as_ref().map(|b| HostTensor::new(vec![to - from], b.data[from..to].to_vec())),
    )
}

/// The coupling's mask: from nflows' index buffers where the state dict has them, else propose's
/// leave-one-out rule (coordinate i mod 3 transformed).
fn coupling_mask(sd: &mut StateDict, prefix: &str, i: usize) -> Result<[bool; 3]> {
    // Index buffers, validated below (a NaN or a fraction is not an index).
    let ids = sd.remove_raw(&format!("{prefix}.identity_features"));
    let tr = sd.remove_raw(&format!("{prefix}.transform_features"));
    let mut mask = [false; 3];
    match (ids, tr) {
        (None, None) => mask[i % 3] = true,
        (Some(ids), Some(tr)) => {
            let mut seen = [false; 3];
            for (v, transformed) in ids.data.iter().map(|v| (v, false)).chain(tr.data.iter().map(|v| (v, true))) {
                let f = *v as usize;
                if *v < 0.0 || v.fract() != 0.0 || f >= 3 || seen[f] {
                    return Err(Error::Weights(format!(
                        "{WHAT}: {prefix}.identity_features {:?} and transform_features {:?} must split the 3 coordinates",
                        ids.data, tr.data
                    )));
                }
                seen[f] = true;
                mask[f] = transformed;
            }
            if seen != [true; 3] || tr.data.is_empty() || ids.data.is_empty() {
                return Err(Error::Weights(format!(
                    "{WHAT}: {prefix}.identity_features {:?} and transform_features {:?} must split the 3 coordinates",
                    ids.data, tr.data
                )));
            }
        }
        _ => {
            return Err(Error::Weights(format!(
                "{WHAT}: {prefix} has only one of identity_features and transform_features"
            )))
        }
    }
    Ok(mask)
}

impl Cgnf {
    /// Builds the model from a propose state dict (see the module docs); refuses missing,
    /// unexpected, mis-shaped and non-finite keys by name.
    pub fn from_state_dict(config: CgnfConfig, sd: BTreeMap<String, HostTensor>) -> Result<Cgnf> {
        Self::from_dict(config, StateDict::new(WHAT, sd))
    }

    fn from_dict(config: CgnfConfig, mut sd: StateDict) -> Result<Cgnf> {
        config.validate()?;
        let (j, h, c) = (config.joints, config.hidden, config.context_features);
        let mut skeleton = Skeleton::new(j, &config.edges)?;
        if let Some(r) = &config.root {
            skeleton = skeleton.with_root_children(&r.children)?;
        }
        let has_root = config.root.is_some();
        let mut actnorms = Vec::new();
        let mut couplings = Vec::new();
        for i in 0..config.layers {
            let a = format!("_transform._transforms.{}", 2 * i);
            actnorms.push(ActNorm {
                log_s: sd.take(&format!("{a}.log_scale"), &[3])?,
                shift: sd.take(&format!("{a}.shift"), &[3])?,
                dev: None,
            });
            sd.accept_unused(&format!("{a}.initialized"))?;
            let p = format!("_transform._transforms.{}", 2 * i + 1);
            let mask = coupling_mask(&mut sd, &p, i)?;
            let t = mask.iter().filter(|&&m| m).count();
            let mut gcn = Vec::new();
            for (l, (fin, cin, out, rin)) in [(3 - t, c, h, 3), (h, h, 2 * t, h)].into_iter().enumerate() {
                let g = format!("{p}.transform_net.layers.{l}");
                let r = if has_root {
                    Some((
                        lin(&mut sd, &format!("{g}.layers.r"), h, rin, true)?,
                        lin(&mut sd, &format!("{g}.layers.r->x"), h, rin, true)?,
                    ))
                } else {
                    None
                };
                gcn.push(Gcn {
                    x: lin(&mut sd, &format!("{g}.layers.x"), h, fin, true)?,
                    xx: lin(&mut sd, &format!("{g}.layers.x->x"), h, fin, true)?,
                    c: lin(&mut sd, &format!("{g}.layers.c"), h, cin, true)?,
                    cx: lin(&mut sd, &format!("{g}.layers.c->x"), h, cin, true)?,
                    pool: lin(&mut sd, &format!("{g}.pool"), out, h, true)?,
                    r,
                });
                // Built by propose, never used here (module docs).
                for unused in ["layers.x<-x", "layers.r", "layers.r->x", "attention"] {
                    sd.accept_unused(&format!("{g}.{unused}.weight"))?;
                    sd.accept_unused(&format!("{g}.{unused}.bias"))?;
                }
            }
            let [g0, g1]: [Gcn; 2] = gcn.try_into().map_err(|_| Error::Config("cgnf: two CondGCN layers".into()))?;
            let ctx_half: Vec<bool> = (0..2 * h).map(|k| k < h).collect();
            let nodes0 = vstack(&g0.x, &g0.xx);
            let w0 = widen(&nodes0.w, &mask);
            let b0 = nodes0.b.as_ref().expect("CondGCN layers have biases");
            let packed: Vec<f32> =
                (0..2 * h).flat_map(|r| w0.data[r * 3..r * 3 + 3].iter().copied().chain([b0.data[r]])).collect();
            let folded = Folded {
                nodes0: HostTensor::new(vec![2 * h, 4], packed),
                nodes0_dev: None,
                ctx0: vstack(&g0.cx, &g0.c),
                nodes1: compose(&vstack(&g1.x, &g1.xx), &g0.pool),
                ctx1: Lin::new(widen(&g1.cx.w, &ctx_half), g1.cx.b.clone()),
                shift: rows(&g1.pool, 0, t),
                scale: rows(&g1.pool, t, 2 * t),
                root0: g0.r.as_ref().map(|(r, rx)| vstack(rx, r)),
                root1: g1.r.as_ref().map(|(_, rx)| Lin::new(widen(&rx.w, &ctx_half), rx.b.clone())),
            };
            couplings.push(Coupling { mask, gcn: [g0, g1], folded, fmask: None });
        }
        let embedding = match &config.embedding {
            None => None,
            Some(e) => {
                let adj = sd.take("_embedding_net.adj", &[j, j])?;
                let mut layers = Vec::new();
                for (l, (fin, out)) in [(2, e.hidden), (e.hidden, c)].into_iter().enumerate() {
                    let k = format!("_embedding_net.layers.{l}");
                    // The layer's one bias: PyG 2 keeps it on lin_root, older releases (and
                    // docs/ops.md) on lin_rel; either is accepted, both are summed.
                    let mut rel = lin(&mut sd, &format!("{k}.lin_rel"), out, fin, false)?;
                    let mut root = lin(&mut sd, &format!("{k}.lin_root"), out, fin, false)?;
                    let mut bias: Option<HostTensor> = None;
                    for key in [format!("{k}.lin_rel.bias"), format!("{k}.lin_root.bias")] {
                        if sd.has(&key) {
                            let b = sd.take(&key, &[out])?;
                            bias = Some(match bias {
                                None => b,
                                Some(a) => {
                                    HostTensor::new(vec![out], a.data.iter().zip(&b.data).map(|(x, y)| x + y).collect())
                                }
                            });
                        }
                    }
                    rel.b = Some(bias.ok_or_else(|| {
                        Error::Weights(format!("{WHAT}: missing key \"{k}.lin_root.bias\" (or \"{k}.lin_rel.bias\")"))
                    })?);
                    root.b = None;
                    layers.push((rel, root));
                }
                let [l0, l1]: [(Lin, Lin); 2] =
                    layers.try_into().map_err(|_| Error::Config("cgnf: two DenseSAGE layers".into()))?;
                let folded = [hstack(&l0.0, &l0.1), hstack(&l1.0, &l1.1)];
                Some(Sage { adj, layers: [l0, l1], folded, dev_adj: None })
            }
        };
        sd.accept_prefix("_distribution.")?;
        sd.finish()?;
        Ok(Cgnf { config, skeleton, table: None, actnorms, couplings, embedding })
    }

    /// Loads the model from safetensors weights and a JSON config, and uploads it.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Cgnf> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = CgnfConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut m = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        self.table = Some(self.skeleton.upload(ctx)?);
        for a in &mut self.actnorms {
            a.dev = Some((Tensor::from_f32(ctx, &a.log_s.data, &[3])?, Tensor::from_f32(ctx, &a.shift.data, &[3])?));
        }
        for c in &mut self.couplings {
            c.fmask = Some(ops::flows::FeatureMask::new(ctx, &c.mask)?);
            let f = &mut c.folded;
            f.nodes0_dev = Some(Tensor::from_f32(ctx, &f.nodes0.data, &f.nodes0.shape)?);
            for l in [&mut f.ctx0, &mut f.nodes1, &mut f.ctx1, &mut f.shift, &mut f.scale] {
                l.upload(ctx)?;
            }
            for l in [&mut f.root0, &mut f.root1].into_iter().flatten() {
                l.upload(ctx)?;
            }
        }
        if let Some(e) = &mut self.embedding {
            e.dev_adj = Some(Tensor::from_f32(ctx, &e.adj.data, &e.adj.shape)?);
            for l in &mut e.folded {
                l.upload(ctx)?;
            }
        }
        Ok(())
    }
}
