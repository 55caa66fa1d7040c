//! The cGNF pose model (Pierzchlewicz et al.; sinzlab/propose; docs/ops.md, cGNF message passing; config in
//! docs/models.md): a conditional graph normalizing flow over the 3-D joints of a skeleton, conditioned on the 2-D
//! keypoints.
//!
//! Nodes are the J joints of each pose (3 features). For i in 0..L: a per-node ActNorm(3), then an
//! affine coupling whose mask transforms one coordinate (i mod 3, propose's leave-one-out masks; or
//! whatever the state dict's `identity_features`/`transform_features` say) conditioned, through a
//! two-layer CondGNN, on the other coordinates of all joints and on the context. The base is a
//! standard normal per node. The context is a DenseSAGE embedding of the keypoints (propose's
//! `SageEmbedding`) after propose's preprocessing (×0.0139, root-centred, y flipped); keypoint j
//! sends a `c→x` message to joint j where it is observed. Without a context the model is the prior.
//!
//! The weights are a propose `CondGraphFlow` state dict (with its `SageEmbedding`) saved as
//! safetensors, with propose's key names; for flow layer i (k = 2i, 2i + 1):
//! - `_transform._transforms.{2i}.log_scale [3]`, `.shift [3]` (ActNorm; `.initialized` accepted);
//! - `_transform._transforms.{2i+1}.transform_net.layers.{l}.layers.{x, x->x, c, c->x}.{weight, bias}`
//!   and `...layers.{l}.pool.{weight, bias}` for the two CondGCN layers l = 0, 1 (layer 0: in 3 − T,
//!   hidden H, out H, context C; layer 1: in H, out 2T, context H); `...identity_features` and
//!   `...transform_features` (nflows' index buffers) where present define the mask. propose creates
//!   an `x<-x` layer and an `attention` layer too but never uses them (its reversed skeleton edges
//!   use `x->x`; `use_attention` is off), so they are accepted and ignored. Its `r` and `r->x`
//!   layers serve the separate root node: with `"root": {"children": [...]}` in the config each
//!   pose has a root node (3 features: the root joint's position, [B, 3], zero by default as for
//!   root-centred poses; not a flow variable) whose message ReLU(W_rx r + b_rx) reaches the listed
//!   joints, and r' = ReLU(W_r r + b_r) feeds layer 1; without it they are accepted and ignored;
//! - `_embedding_net.adj [J, J]`, `_embedding_net.layers.{0,1}.lin_rel.weight`,
//!   `.lin_root.weight` and the layer's bias as `.lin_root.bias` (PyG 2) or `.lin_rel.bias`
//!   (PyG DenseSAGEConv, 2 → hidden → C, ReLU between);
//! - `_distribution.*` buffers are accepted and ignored.
//!
//! Log-densities are per node, as propose's `log_prob` returns them (sum over the joints for the
//! log-density of a pose). With a samples axis they are kept per sample, each the exact log-density
//! of its sample. (propose, given a samples axis, averages the coupling log-scales over the samples
//! and takes the base density of the samples' mean z: a summary, not a density of any one sample.)
//!
//! Loading folds: each CondGCN's self-loop and neighbour linears are stacked into one matmul over
//! the nodes (the first widened with a zero column for the transformed coordinate), the context
//! linears into one matmul over the keypoints, layer 0's pool into layer 1's node linears, and
//! layer 1's pool is split into a shift head and a scale head. Layer 0's node messages (from 3
//! coordinates) are computed inside its aggregation rather than stored. A coupling is then 7
//! dispatches (9 with a root node).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{widen, StateDict};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Activation, GcnContext, KeypointPrep, Skeleton};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

const WHAT: &str = "cgnf weights";
const OP: &str = "cgnf";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// DenseSAGE hidden width (propose: 128).
    pub hidden: usize,
    #[serde(default = "default_scale")]
    pub keypoint_scale: f32,
    /// The keypoint subtracted from all (propose: 0, the pelvis); null for none.
    #[serde(default = "default_root")]
    pub root: Option<usize>,
    #[serde(default = "default_true")]
    pub flip_y: bool,
}

fn default_scale() -> f32 {
    0.0139
}
fn default_root() -> Option<usize> {
    Some(0)
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgnfConfig {
    /// Joints per pose (and keypoints: keypoint j observes joint j). propose: 16.
    pub joints: usize,
    /// Flow layers L (ActNorm + coupling each). propose: 10.
    pub layers: usize,
    /// The CondGNN's hidden width H. propose: 100.
    pub hidden: usize,
    /// Features of the context nodes C (the embedding's output). propose: 10.
    pub context_features: usize,
    /// The skeleton: (parent, child) joint pairs, each bone once.
    pub edges: Vec<[usize; 2]>,
    /// The keypoint embedding; null to use the raw keypoints as the context (C = 2).
    #[serde(default)]
    pub embedding: Option<EmbeddingConfig>,
    /// propose's separate root node; null when the root is one of the joints.
    #[serde(default)]
    pub root: Option<RootConfig>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// The joints the root node sends its message to (propose's `r→x` edges).
    pub children: Vec<usize>,
}

impl CgnfConfig {
    pub fn from_json(text: &str) -> Result<CgnfConfig> {
        serde_json::from_str(text).map_err(|e| Error::Config(format!("cgnf config: {e}")))
    }
}

/// A linear layer: weight [O, I] and optional bias [O], on the host (f32) and the device.
struct Lin {
    w: HostTensor,
    b: Option<HostTensor>,
    dev: Option<(Tensor, Option<Tensor>)>,
}

impl Lin {
    fn new(w: HostTensor, b: Option<HostTensor>) -> Lin {
        Lin { w, b, dev: None }
    }

    fn upload(&mut self, ctx: &Context) -> Result<()> {
        let w = Tensor::from_f32(ctx, &self.w.data, &self.w.shape)?;
        let b = self.b.as_ref().map(|b| Tensor::from_f32(ctx, &b.data, &b.shape)).transpose()?;
        self.dev = Some((w, b));
        Ok(())
    }

    fn record(&self, rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (w, b) = self.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        ops::linear(rec, x, w, b.as_ref(), act)
    }

    /// y = act(W x + b) on the host, f64.
    fn apply(&self, x: &[f64], act: fn(f64) -> f64) -> Vec<f64> {
        let (o, i) = (self.w.shape[0], self.w.shape[1]);
        (0..o)
            .map(|r| {
                let mut acc = self.b.as_ref().map_or(0.0, |b| b.data[r] as f64);
                for c in 0..i {
                    acc += self.w.data[r * i + c] as f64 * x[c];
                }
                act(acc)
            })
            .collect()
    }
}

fn relu(v: f64) -> f64 {
    v.max(0.0)
}
fn ident(v: f64) -> f64 {
    v
}

/// One CondGCN layer as propose stores it.
struct Gcn {
    x: Lin,
    xx: Lin,
    c: Lin,
    cx: Lin,
    pool: Lin,
    /// The root node's `r` and `r->x` layers, with a root config.
    r: Option<(Lin, Lin)>,
}

/// A coupling's folded conditioner on the device.
struct Folded {
    /// Layer 0: [W_x; W_xx] widened to the 3 coordinates, packed with its bias, [2H, 4] (its
    /// messages are computed inside the aggregation: `ops::gcn_aggregate_linear`).
    nodes0: HostTensor,
    nodes0_dev: Option<Tensor>,
    /// Layer 0: [W_cx; W_c], [2H, C].
    ctx0: Lin,
    /// Layer 1: [W_x; W_xx] · pool0 (layer 0's pool folded in), [2H, H].
    nodes1: Lin,
    /// Layer 1: W_cx on the c' half of ctx0's output, [H, 2H].
    ctx1: Lin,
    shift: Lin,
    scale: Lin,
    /// Layer 0: [W_rx; W_r], [2H, 3]; layer 1: W_rx on the r' half, [H, 2H].
    root0: Option<Lin>,
    root1: Option<Lin>,
}

struct Coupling {
    mask: [bool; 3],
    gcn: [Gcn; 2],
    folded: Folded,
    /// The mask's feature map on the device (made at upload).
    fmask: Option<ops::flows::FeatureMask>,
}

impl Coupling {
    fn feature_mask(&self) -> Result<&ops::flows::FeatureMask> {
        self.fmask.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))
    }
}

struct ActNorm {
    log_s: HostTensor,
    shift: HostTensor,
    dev: Option<(Tensor, Tensor)>,
}

struct Sage {
    adj: HostTensor,
    /// (lin_rel, lin_root) of each layer, as stored.
    layers: [(Lin, Lin); 2],
    /// [W_rel | W_root] with lin_rel's bias, per layer.
    folded: [Lin; 2],
    dev_adj: Option<Tensor>,
}

pub struct Cgnf {
    config: CgnfConfig,
    skeleton: Skeleton,
    table: Option<ops::DeviceSkeleton>,
    actnorms: Vec<ActNorm>,
    couplings: Vec<Coupling>,
    embedding: Option<Sage>,
}

/// The condition of a batch of poses on the device: the embedded keypoints [B, J, C] and the
/// observation mask [B, J] (none for the prior), and the root nodes' features. Made once by
/// [`Cgnf::record_condition`] (or [`Cgnf::prior_condition`]), shared by density and sampling.
pub struct Condition {
    /// (embedded keypoints, observed mask)
    keypoints: Option<(Tensor, Tensor)>,
    batch: usize,
    /// The root nodes' features [B, 3] (a root config; None: zeros).
    root: Option<Tensor>,
}

impl Condition {
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The embedded keypoints [B, J, C] (the `c` node features); None for the prior.
    pub fn context(&self) -> Option<&Tensor> {
        self.keypoints.as_ref().map(|k| &k.0)
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
    /// The config the model was built from (fixed: the folded weights depend on it).
    pub fn config(&self) -> &CgnfConfig {
        &self.config
    }

    /// Builds the model from a propose state dict (see the module docs); refuses missing,
    /// unexpected, mis-shaped and non-finite keys by name.
    pub fn from_state_dict(config: CgnfConfig, sd: BTreeMap<String, HostTensor>) -> Result<Cgnf> {
        let mut sd = StateDict::new(WHAT, sd);
        let (j, h, c) = (config.joints, config.hidden, config.context_features);
        for (name, v) in [("layers", config.layers), ("hidden", h), ("context_features", c)] {
            if v == 0 || v > ops::MAX_GEOMETRY {
                return Err(Error::param(OP, name, format!("{v} must be in 1..={}", ops::MAX_GEOMETRY)));
            }
        }
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
            None => {
                if c != 2 {
                    return Err(Error::param(
                        OP,
                        "context_features",
                        format!("{c}: without an embedding the context is the raw 2-D keypoints (2 features)"),
                    ));
                }
                None
            }
            Some(e) => {
                if e.hidden == 0 || e.hidden > ops::MAX_GEOMETRY {
                    return Err(Error::param(OP, "embedding.hidden", format!("{} must be positive", e.hidden)));
                }
                ops::finite(OP, "embedding.keypoint_scale", e.keypoint_scale, false)?;
                if let Some(r) = e.root {
                    if r >= j {
                        return Err(Error::param(OP, "embedding.root", format!("keypoint {r} is past the {j} joints")));
                    }
                }
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
    pub fn load(ctx: &Context, weights: &std::path::Path, config: &std::path::Path) -> Result<Cgnf> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = CgnfConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = crate::io::read_weights(weights)?.tensors;
        let mut m = Self::from_state_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
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

    fn prep(&self) -> Option<KeypointPrep> {
        self.config.embedding.as_ref().map(|e| KeypointPrep {
            root: e.root,
            scale: [e.keypoint_scale, if e.flip_y { -e.keypoint_scale } else { e.keypoint_scale }],
        })
    }

    /// Root features of `shape` for b poses: only a model with a root node takes them, as [b, 3].
    fn check_root(&self, shape: &[usize], b: usize) -> Result<()> {
        if self.config.root.is_none() {
            return Err(Error::param(OP, "root", "this model has no root node (no \"root\" in its config)"));
        }
        if shape != [b, 3] {
            return Err(Error::shape(OP, "root", shape, format!("[{b}, 3]")));
        }
        Ok(())
    }

    fn check_observed(&self, observed: &[bool], b: usize) -> Result<()> {
        if observed.len() != b * self.config.joints {
            return Err(Error::shape(OP, "observed", &[observed.len()], format!("[{b}, {}]", self.config.joints)));
        }
        Ok(())
    }

    /// Records the context of a batch: raw 2-D keypoints [B, J, 2] (pixels, as propose takes them)
    /// and which of them are observed ([B·J], row-major).
    pub fn record_condition(&self, rec: &mut Recorder, keypoints: &Tensor, observed: &[bool]) -> Result<Condition> {
        self.record_condition_with_root(rec, keypoints, observed, None)
    }

    /// The prior's condition (no keypoints) for `batch` poses with the root nodes' features
    /// [batch, 3] (a root config only; None: zeros).
    pub fn prior_condition(&self, batch: usize, root: Option<&Tensor>) -> Result<Condition> {
        if let Some(r) = root {
            self.check_root(r.shape(), batch)?;
            r.expect_f32(OP, "root")?;
        }
        if batch == 0 {
            return Err(Error::param(OP, "batch", "must be >= 1"));
        }
        Ok(Condition { keypoints: None, batch, root: root.cloned() })
    }

    /// As [`Cgnf::record_condition`], with the root nodes' features [B, 3] (a root config only).
    pub fn record_condition_with_root(
        &self,
        rec: &mut Recorder,
        keypoints: &Tensor,
        observed: &[bool],
        root: Option<&Tensor>,
    ) -> Result<Condition> {
        rec.atomic(|rec| {
            let j = self.config.joints;
            keypoints.expect_f32(OP, "keypoints")?;
            let b = match *keypoints.shape() {
                [b, kj, 2] if kj == j => b,
                _ => return Err(Error::shape(OP, "keypoints", keypoints.shape(), format!("[B, {j}, 2]"))),
            };
            self.check_observed(observed, b)?;
            if let Some(r) = root {
                self.check_root(r.shape(), b)?;
                r.expect_f32(OP, "root")?;
            }
            let mask: Vec<f32> = observed.iter().map(|&o| o as u8 as f32).collect();
            let obs = Tensor::from_f32(rec.context(), &mask, &[b, j])?;
            let context = match &self.embedding {
                None => keypoints.clone(),
                Some(e) => {
                    let adj = e.dev_adj.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                    let a0 = ops::sage_aggregate(rec, keypoints, adj, &obs, self.prep())?;
                    let h = e.folded[0].record(rec, &a0, Activation::Relu)?;
                    let a1 = ops::sage_aggregate(rec, &h, adj, &obs, None)?;
                    e.folded[1].record(rec, &a1, Activation::Identity)?
                }
            };
            Ok(Condition { keypoints: Some((context, obs)), batch: b, root: root.cloned() })
        })
    }

    /// The conditioner of a coupling on x [B, S, J, 3]: (shift, unconstrained scale), [B·S·J, T].
    fn conditioner(
        &self,
        rec: &mut Recorder,
        c: &Coupling,
        x: &Tensor,
        cond: Option<&Condition>,
        root: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (h, f) = (self.config.hidden, &c.folded);
        let table = self.table.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let rows = x.numel() / 3;
        let nodes0 = f.nodes0_dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let kp = cond.and_then(|k| k.keypoints.as_ref());
        let mc0 = kp.map(|k| f.ctx0.record(rec, &k.0, Activation::Relu)).transpose()?;
        fn ctx<'a>(mc: &'a Option<Tensor>, kp: Option<&'a (Tensor, Tensor)>) -> Option<GcnContext<'a>> {
            mc.as_ref().zip(kp).map(|(m, k)| GcnContext { message: m, observed: &k.1 })
        }
        let mr0 = match (&f.root0, root) {
            (Some(l), Some(r)) => Some(l.record(rec, r, Activation::Relu)?),
            _ => None,
        };
        fn rt(m: &Option<Tensor>) -> Option<ops::GcnRoot<'_>> {
            m.as_ref().map(|message| ops::GcnRoot { message })
        }
        let h0 = ops::gcn_aggregate_linear(rec, x, nodes0, h, table, ctx(&mc0, kp), rt(&mr0))?;
        let mx1 = f.nodes1.record(rec, &h0, Activation::Relu)?;
        let mc1 = mc0.as_ref().map(|m| f.ctx1.record(rec, m, Activation::Relu)).transpose()?;
        let mr1 = match (&f.root1, &mr0) {
            (Some(l), Some(m)) => Some(l.record(rec, m, Activation::Relu)?),
            _ => None,
        };
        let h1 = ops::gcn_aggregate(rec, &mx1, h, table, ctx(&mc1, kp), rt(&mr1))?;
        let t = c.mask.iter().filter(|&&m| m).count();
        let shift = f.shift.record(rec, &h1, Activation::Identity)?.reshape(&[rows, t])?;
        let scale = f.scale.record(rec, &h1, Activation::Identity)?.reshape(&[rows, t])?;
        Ok((shift, scale))
    }

    /// The root nodes' features for a batch of b poses: the condition's, or zeros (a root config).
    fn root_input(&self, rec: &mut Recorder, cond: Option<&Condition>, b: usize) -> Result<Option<Tensor>> {
        if self.config.root.is_none() {
            return Ok(None);
        }
        if let Some(r) = cond.and_then(|c| c.root.clone()) {
            return Ok(Some(r));
        }
        let z = rec.alloc(OP, &[b, 3], crate::tensor::DType::F32)?;
        rec.clear(&z);
        Ok(Some(z))
    }

    fn check_nodes(&self, x: &Tensor, what: &str, cond: Option<&Condition>) -> Result<(usize, usize)> {
        x.expect_f32(OP, what)?;
        let j = self.config.joints;
        let (b, s) = match *x.shape() {
            [b, s, xj, 3] if xj == j => (b, s),
            _ => return Err(Error::shape(OP, what, x.shape(), format!("[B, S, {j}, 3]"))),
        };
        if let Some(c) = cond {
            if c.batch != b {
                return Err(Error::shape(
                    OP,
                    what,
                    x.shape(),
                    format!("[{}, S, {j}, 3] (the condition's batch)", c.batch),
                ));
            }
        }
        Ok((b, s))
    }

    /// Records the density of poses [B, J, 3] (or [B, S, J, 3]) given a condition (None: the
    /// prior): returns (z, the base point, of the same shape; log p per node [B, J] or [B, S, J]).
    pub fn record_log_prob(
        &self,
        rec: &mut Recorder,
        poses: &Tensor,
        cond: Option<&Condition>,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| {
            let shape = poses.shape().to_vec();
            let x = match *poses.shape() {
                [b, j, 3] => poses.reshape(&[b, 1, j, 3])?,
                _ => poses.clone(),
            };
            let (b, s) = self.check_nodes(&x, "poses", cond)?;
            let root = self.root_input(rec, cond, b)?;
            let rows = b * s * self.config.joints;
            let mut h = x.reshape(&[rows, 3])?;
            let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
            for (a, c) in self.actnorms.iter().zip(&self.couplings) {
                let (ls, sh) = a.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                h = ops::actnorm(rec, &h, ls, sh, false)?;
                pending += ops::flows::actnorm_logdet(&a.log_s.data, 1, false) as f32;
                let (shift, scale) =
                    self.conditioner(rec, c, &h.reshape(&[b, s, self.config.joints, 3])?, cond, root.as_ref())?;
                let (y, ld) = ops::flows::affine_coupling_masked(rec, &h, &shift, &scale, c.feature_mask()?, false)?;
                acc = Some(ops::row_sum_add(rec, &ld, acc.as_ref(), 1.0, pending)?);
                pending = 0.0;
                h = y;
            }
            let lp = ops::normal_logprob(rec, &h, acc.as_ref(), pending)?;
            Ok((h.reshape(&shape)?, lp.reshape(&shape[..shape.len() - 1])?))
        })
    }

    /// Records base → data for base points z [B, S, J, 3]: returns (poses [B, S, J, 3], their
    /// log p per node [B, S, J]).
    pub fn record_sample_from(
        &self,
        rec: &mut Recorder,
        z: &Tensor,
        cond: Option<&Condition>,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.sample_unit(rec, z, cond))
    }

    fn sample_unit(&self, rec: &mut Recorder, z: &Tensor, cond: Option<&Condition>) -> Result<(Tensor, Tensor)> {
        let (b, s) = self.check_nodes(z, "base points", cond)?;
        let root = self.root_input(rec, cond, b)?;
        let j = self.config.joints;
        let rows = b * s * j;
        let zr = z.reshape(&[rows, 3])?;
        let mut h = zr.clone();
        // Σ of the inverse pass's log-dets (a tensor and a constant not yet added).
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for (a, c) in self.actnorms.iter().zip(&self.couplings).rev() {
            let (shift, scale) = self.conditioner(rec, c, &h.reshape(&[b, s, j, 3])?, cond, root.as_ref())?;
            let (y, ld) = ops::flows::affine_coupling_masked(rec, &h, &shift, &scale, c.feature_mask()?, true)?;
            acc = Some(ops::row_sum_add(rec, &ld, acc.as_ref(), 1.0, pending)?);
            pending = 0.0;
            let (ls, sh) = a.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
            h = ops::actnorm(rec, &y, ls, sh, true)?;
            pending += ops::flows::actnorm_logdet(&a.log_s.data, 1, true) as f32;
        }
        // log p(x) = log N(z) − Σ inverse log-dets.
        let acc = acc.ok_or_else(|| Error::param(OP, "layers", "a flow needs at least one layer"))?;
        let neg = ops::row_sum_add(rec, &acc, None, -1.0, -pending)?;
        let lp = ops::normal_logprob(rec, &zr, Some(&neg), 0.0)?;
        Ok((h.reshape(&[b, s, j, 3])?, lp.reshape(&[b, s, j])?))
    }

    /// Records `samples` hypotheses per pose of the condition (or of `batch` poses from the prior)
    /// from z ~ N(0, temperature² I) drawn by the engine's generator at (seed, offset): returns
    /// (poses [B, S, J, 3], log p per node [B, S, J]).
    #[allow(clippy::too_many_arguments)]
    pub fn record_sample(
        &self,
        rec: &mut Recorder,
        cond: Option<&Condition>,
        batch: usize,
        samples: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| {
            ops::finite(OP, "temperature", temperature, true)?;
            let b = cond.map_or(batch, |c| c.batch);
            let z = ops::random_normal_scaled(rec, &[b, samples, self.config.joints, 3], seed, offset, temperature)?;
            self.sample_unit(rec, &z, cond)
        })
    }

    /// Records the mode of each pose's posterior (the inverse of z = 0): [B, J, 3].
    pub fn record_mode(&self, rec: &mut Recorder, cond: Option<&Condition>, batch: usize) -> Result<Tensor> {
        rec.atomic(|rec| {
            let b = cond.map_or(batch, |c| c.batch);
            let j = self.config.joints;
            let z = rec.alloc(OP, &[b, 1, j, 3], crate::tensor::DType::F32)?;
            rec.clear(&z);
            let (x, _) = self.sample_unit(rec, &z, cond)?;
            x.reshape(&[b, j, 3])
        })
    }

    // ------------------------------------------------------------------ CPU reference (f64)

    /// The context [B, J, C] with the CPU reference, from the weights as stored.
    pub fn reference_condition(&self, keypoints: &[f32], observed: &[bool], b: usize) -> Result<Vec<f64>> {
        let j = self.config.joints;
        if keypoints.len() != b * j * 2 {
            return Err(Error::shape(OP, "keypoints", &[keypoints.len()], format!("[{b}, {j}, 2]")));
        }
        self.check_observed(observed, b)?;
        let Some(e) = &self.embedding else {
            return Ok(keypoints.iter().map(|&v| v as f64).collect());
        };
        let p = self.prep().expect("an embedding has a preprocessing");
        let mut out = Vec::with_capacity(b * j * self.config.context_features);
        for bi in 0..b {
            let kp = |k: usize, f: usize| {
                let v = keypoints[(bi * j + k) * 2 + f] as f64;
                let r = p.root.map_or(0.0, |r| keypoints[(bi * j + r) * 2 + f] as f64);
                p.scale[f] as f64 * (v - r)
            };
            let mut x: Vec<Vec<f64>> = (0..j).map(|k| vec![kp(k, 0), kp(k, 1)]).collect();
            for (l, (rel, root)) in e.layers.iter().enumerate() {
                let next: Vec<Vec<f64>> = (0..j)
                    .map(|i| {
                        let fdim = x[0].len();
                        let mut agg = vec![0f64; fdim];
                        let mut deg = 0f64;
                        if observed[bi * j + i] {
                            for (k, xk) in x.iter().enumerate() {
                                if observed[bi * j + k] {
                                    let a = e.adj.data[i * j + k] as f64;
                                    deg += a;
                                    agg.iter_mut().zip(xk).for_each(|(g, v)| *g += a * v);
                                }
                            }
                        }
                        agg.iter_mut().for_each(|g| *g /= deg.max(1.0));
                        let act = if l == 0 { relu } else { ident };
                        rel.apply(&agg, ident).iter().zip(root.apply(&x[i], ident)).map(|(a, b)| act(a + b)).collect()
                    })
                    .collect();
                x = next;
            }
            out.extend(x.into_iter().flatten());
        }
        Ok(out)
    }

    /// One coupling's conditioner on the host: (shift, scale_raw) per node [B·S·J][T].
    fn reference_conditioner(
        &self,
        c: &Coupling,
        x: &[f64],
        b: usize,
        s: usize,
        cond: Option<(&[f64], &[bool])>,
        root: &[f64],
    ) -> Vec<Vec<f64>> {
        let j = self.config.joints;
        let cf = self.config.context_features;
        let mut nodes: Vec<Vec<f64>> =
            (0..b * s * j).map(|r| (0..3).filter(|&f| !c.mask[f]).map(|f| x[r * 3 + f]).collect()).collect();
        let mut ctx: Option<Vec<Vec<f64>>> =
            cond.map(|(cx, _)| (0..b * j).map(|r| cx[r * cf..(r + 1) * cf].to_vec()).collect());
        let mut rootf: Vec<Vec<f64>> = (0..b).map(|bi| root[bi * 3..bi * 3 + 3].to_vec()).collect();
        for g in &c.gcn {
            let rmsg: Option<Vec<Vec<f64>>> =
                g.r.as_ref().map(|(_, rx)| rootf.iter().map(|v| rx.apply(v, relu)).collect());
            let own: Vec<Vec<f64>> = nodes.iter().map(|v| g.x.apply(v, relu)).collect();
            let msg: Vec<Vec<f64>> = nodes.iter().map(|v| g.xx.apply(v, relu)).collect();
            let cmsg: Option<Vec<Vec<f64>>> = ctx.as_ref().map(|cs| cs.iter().map(|v| g.cx.apply(v, relu)).collect());
            nodes = (0..b * s * j)
                .map(|r| {
                    let (ji, first, bi) = (r % j, r - r % j, r / (s * j));
                    let mut hsum = own[r].clone();
                    for &n in self.skeleton.neighbours(ji) {
                        hsum.iter_mut().zip(&msg[first + n as usize]).for_each(|(a, m)| *a += m);
                    }
                    if let (Some(cm), Some((_, obs))) = (&cmsg, cond) {
                        if obs[bi * j + ji] {
                            hsum.iter_mut().zip(&cm[bi * j + ji]).for_each(|(a, m)| *a += m);
                        }
                    }
                    if let Some(rm) = &rmsg {
                        if self.skeleton.is_root_child(ji) {
                            hsum.iter_mut().zip(&rm[bi]).for_each(|(a, m)| *a += m);
                        }
                    }
                    g.pool.apply(&hsum, ident)
                })
                .collect();
            ctx = ctx.map(|cs| cs.iter().map(|v| g.c.apply(v, relu)).collect());
            if let Some((r, _)) = &g.r {
                rootf = rootf.iter().map(|v| r.apply(v, relu)).collect();
            }
        }
        nodes
    }

    fn reference_check(
        &self,
        x: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Option<Vec<f64>>, Vec<f64>)> {
        let j = self.config.joints;
        if x.len() != b * s * j * 3 {
            return Err(Error::shape(OP, "poses", &[x.len()], format!("[{b}, {s}, {j}, 3]")));
        }
        let root = match root {
            Some(r) => {
                // A flat [B·3] slice: its shape as [B, 3] where it divides.
                let shape = if r.len() % 3 == 0 { vec![r.len() / 3, 3] } else { vec![r.len()] };
                self.check_root(&shape, b)?;
                r.iter().map(|&v| v as f64).collect()
            }
            None => vec![0.0; b * 3],
        };
        Ok((cond.map(|(k, o)| self.reference_condition(k, o, b)).transpose()?, root))
    }

    /// log p per node [B·S·J] of poses [B, S, J, 3] with the CPU reference (f64), and z.
    pub fn reference_log_prob(
        &self,
        poses: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.reference_log_prob_with_root(poses, b, s, cond, None)
    }

    /// [`Cgnf::reference_log_prob`] with the root nodes' features [B, 3] (None: zeros).
    pub fn reference_log_prob_with_root(
        &self,
        poses: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, root) = self.reference_check(poses, b, s, cond, root)?;
        let cond64 = c.as_deref().zip(cond.map(|c| c.1));
        let mut x: Vec<f64> = poses.iter().map(|&v| v as f64).collect();
        let mut ld = vec![0f64; b * s * self.config.joints];
        for (a, cp) in self.actnorms.iter().zip(&self.couplings) {
            ref_actnorm(a, &mut x, &mut ld, false);
            let p = self.reference_conditioner(cp, &x, b, s, cond64, &root);
            ref_coupling(cp, &p, &mut x, &mut ld, false);
        }
        let lp = x.chunks(3).zip(&ld).map(|(z, l)| (ref_base(z) + l) as f32).collect();
        Ok((x.iter().map(|&v| v as f32).collect(), lp))
    }

    /// Poses [B, S, J, 3] and their log p per node from base points z with the CPU reference.
    pub fn reference_sample(
        &self,
        z: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.reference_sample_with_root(z, b, s, cond, None)
    }

    /// [`Cgnf::reference_sample`] with the root nodes' features [B, 3] (None: zeros).
    pub fn reference_sample_with_root(
        &self,
        z: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, root) = self.reference_check(z, b, s, cond, root)?;
        let cond64 = c.as_deref().zip(cond.map(|c| c.1));
        let mut x: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let mut ld = vec![0f64; b * s * self.config.joints];
        for (a, cp) in self.actnorms.iter().zip(&self.couplings).rev() {
            let p = self.reference_conditioner(cp, &x, b, s, cond64, &root);
            ref_coupling(cp, &p, &mut x, &mut ld, true);
            ref_actnorm(a, &mut x, &mut ld, true);
        }
        let lp = z
            .chunks(3)
            .zip(&ld)
            .map(|(zz, l)| (ref_base(&zz.iter().map(|&v| v as f64).collect::<Vec<_>>()) - l) as f32)
            .collect();
        Ok((x.iter().map(|&v| v as f32).collect(), lp))
    }
}

/// The standard-normal log-density of one node's 3 coordinates.
fn ref_base(z: &[f64]) -> f64 {
    -0.5 * z.iter().map(|v| v * v).sum::<f64>() - 1.5 * (2.0 * std::f64::consts::PI).ln()
}

/// ActNorm on every node of x [rows · 3] (inverse: its inverse), its log-det added to `ld`.
fn ref_actnorm(a: &ActNorm, x: &mut [f64], ld: &mut [f64], inverse: bool) {
    for (r, l) in ld.iter_mut().enumerate() {
        for f in 0..3 {
            let (ls, sh) = (a.log_s.data[f] as f64, a.shift.data[f] as f64);
            let v = &mut x[r * 3 + f];
            if inverse {
                *v = (*v - sh) * (-ls).exp();
                *l -= ls;
            } else {
                *v = ls.exp() * *v + sh;
                *l += ls;
            }
        }
    }
}

/// The affine coupling with conditioner outputs p (per node: T shifts, then T raw scales).
fn ref_coupling(cp: &Coupling, p: &[Vec<f64>], x: &mut [f64], ld: &mut [f64], inverse: bool) {
    let t = cp.mask.iter().filter(|&&m| m).count();
    for (r, l) in ld.iter_mut().enumerate() {
        let mut tj = 0;
        for f in 0..3 {
            if !cp.mask[f] {
                continue;
            }
            let scale = 1.0 / (1.0 + (-(p[r][t + tj] + 2.0)).exp()) + 1e-3;
            let v = &mut x[r * 3 + f];
            if inverse {
                *v = (*v - p[r][tj]) / scale;
                *l -= scale.ln();
            } else {
                *v = *v * scale + p[r][tj];
                *l += scale.ln();
            }
            tj += 1;
        }
    }
}

impl CgnfConfig {
    /// propose's production cGNF (L = 10, hidden 100, context 10, DenseSAGE hidden 128) on a
    /// 16-joint MPII-style skeleton.
    pub fn propose() -> CgnfConfig {
        CgnfConfig {
            joints: 16,
            layers: 10,
            hidden: 100,
            context_features: 10,
            edges: vec![
                [0, 1],
                [1, 2],
                [2, 6],
                [6, 3],
                [3, 4],
                [4, 5],
                [6, 7],
                [7, 8],
                [8, 9],
                [8, 12],
                [12, 11],
                [11, 10],
                [8, 13],
                [13, 14],
                [14, 15],
            ],
            embedding: Some(EmbeddingConfig { hidden: 128, keypoint_scale: 0.0139, root: Some(0), flip_y: true }),
            root: None,
        }
    }
}

/// A random propose-style state dict for `cfg` (PyTorch's default init scale, the last pool
/// layers times `gain`: 2 makes the coupling scales vary widely, as tests want; below 1 keeps a
/// deep flow's inverse tame, as a trained one is; masks by propose's rule), for benchmarks and tests.
pub fn random_state_dict(cfg: &CgnfConfig, seed: u64, gain: f32) -> BTreeMap<String, HostTensor> {
    let mut rng = crate::rng::SplitMix::new(seed);
    let mut sd = BTreeMap::new();
    let mut put = |sd: &mut BTreeMap<String, HostTensor>, k: String, shape: Vec<usize>, s: f32| {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, -s, s)));
    };
    let (h, c) = (cfg.hidden, cfg.context_features);
    for i in 0..cfg.layers {
        let a = format!("_transform._transforms.{}", 2 * i);
        put(&mut sd, format!("{a}.log_scale"), vec![3], 0.3);
        put(&mut sd, format!("{a}.shift"), vec![3], 0.3);
        let p = format!("_transform._transforms.{}", 2 * i + 1);
        for (l, (fin, cin, out)) in [(2usize, c, h), (h, h, 2usize)].into_iter().enumerate() {
            let g = format!("{p}.transform_net.layers.{l}");
            let rin = if l == 0 { 3 } else { h };
            for (rel, i_) in
                [("x", fin), ("x->x", fin), ("x<-x", fin), ("c", cin), ("c->x", cin), ("r", rin), ("r->x", rin)]
            {
                let s = 1.0 / (i_ as f32).sqrt();
                put(&mut sd, format!("{g}.layers.{rel}.weight"), vec![h, i_], s);
                put(&mut sd, format!("{g}.layers.{rel}.bias"), vec![h], s);
            }
            let s = if l == 1 { gain } else { 1.0 } / (h as f32).sqrt();
            put(&mut sd, format!("{g}.pool.weight"), vec![out, h], s);
            put(&mut sd, format!("{g}.pool.bias"), vec![out], s);
        }
    }
    if let Some(e) = &cfg.embedding {
        let j = cfg.joints;
        put(&mut sd, "_embedding_net.adj".into(), vec![j, j], 0.5);
        // A positive adjacency around 1, as propose initialises it (ones) and training keeps it.
        sd.get_mut("_embedding_net.adj").expect("just made").data.iter_mut().for_each(|v| *v += 1.0);
        for (l, (fin, out)) in [(2usize, e.hidden), (e.hidden, c)].into_iter().enumerate() {
            let k = format!("_embedding_net.layers.{l}");
            let s = 1.0 / (fin as f32).sqrt();
            put(&mut sd, format!("{k}.lin_rel.weight"), vec![out, fin], s);
            put(&mut sd, format!("{k}.lin_rel.bias"), vec![out], s);
            put(&mut sd, format!("{k}.lin_root.weight"), vec![out, fin], s);
        }
    }
    sd
}
