//! The zero-inflated gamma (ZIG) pieces of the video-latent model (shaders/readout.wgsl; docs/ops.md,
//! ZIG readout and the ZIG parameter maps): the readout that turns per-frame feature maps into the
//! logits of q and θ, the parameter maps, the mean and variance, the latent shifts of the logits and
//! the latent branch's log-likelihood (a logsumexp over latent samples, in bits).

use super::expect_shape;
use super::readout::RoParams;
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::readout as ov;
use crate::tensor::{DType, Tensor};

/// Bindings of the ZIG kernels: readout.wgsl's seven, then k and loc (bindings 7 and 8 hold them in
/// zig_latent_loglik; zig_latent_params writes θ through binding 7).
const ZIG_BINDINGS: [Access; 8] = [
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
    Access::Read,
];

/// The ZIG readout's parameters (one recording session): positions `mu` [N, 2] (eval mode: the
/// clamped means), the (time, channel) conv `conv_weight` [2, 1, kt, kc] or [2, kt, kc] (odd kernel
/// sizes, zero padding kt/2 and kc/2) with its bias [2], the channel weights `features` [C, N, 2]
/// (see [`zig_features_view`] for the stored layout) and the readout bias [N], added to both outputs.
#[derive(Clone, Copy, Debug)]
pub struct ZigReadout<'a> {
    pub mu: &'a Tensor,
    pub conv_weight: &'a Tensor,
    pub conv_bias: Option<&'a Tensor>,
    pub features: &'a Tensor,
    pub bias: Option<&'a Tensor>,
    pub align_corners: bool,
}

/// The sizes [`zig_readout_shapes`] finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZigDims {
    /// Images (B·T), channels, height, width, neurons, frames per sample, kernel (time, channel).
    pub bt: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub n: usize,
    pub t: usize,
    pub kt: usize,
    pub kc: usize,
}

/// The shape of the conv weight with the input-channel axis dropped: [2, kt, kc].
fn conv_kernel(op: &'static str, s: &[usize]) -> Result<(usize, usize)> {
    let (kt, kc) = match *s {
        [2, 1, kt, kc] | [2, kt, kc] => (kt, kc),
        _ => return Err(Error::shape(op, "conv_weight", s, "[2, 1, kt, kc] or [2, kt, kc]")),
    };
    if kt % 2 == 0 || kc % 2 == 0 {
        return Err(Error::param(op, "conv_weight", format!("kernel ({kt}, {kc}) must have odd sizes (same padding)")));
    }
    super::geometry(op, "conv_weight", &[kt, kc])?;
    Ok((kt, kc))
}

/// Checks the ZIG readout's shapes: x [B·T, C, H, W] with `frames` = T dividing B·T, mu [N, 2],
/// conv_weight [2, (1,) kt, kc], conv_bias [2], features [C, N, 2], bias [N], shift [B·T, 2].
/// Shared by the op and the reference.
#[allow(clippy::too_many_arguments)]
pub(crate) fn zig_readout_shapes(
    x: &[usize],
    frames: usize,
    mu: &[usize],
    conv_weight: &[usize],
    conv_bias: Option<&[usize]>,
    features: &[usize],
    bias: Option<&[usize]>,
    shift: Option<&[usize]>,
) -> Result<ZigDims> {
    const OP: &str = "zig_readout";
    let [bt, c, h, w] = match *x {
        [bt, c, h, w] => [bt, c, h, w],
        _ => return Err(Error::shape(OP, "input", x, "[B*T, C, H, W]")),
    };
    if frames == 0 || bt % frames != 0 {
        return Err(Error::param(OP, "frames", format!("{frames} does not divide the {bt} images into samples")));
    }
    let n = match *mu {
        [n, 2] if n >= 1 => n,
        _ => return Err(Error::shape(OP, "mu", mu, "[N, 2] with N >= 1")),
    };
    let (kt, kc) = conv_kernel(OP, conv_weight)?;
    for (s, name, want) in [
        (Some(features), "features", vec![c, n, 2]),
        (conv_bias, "conv_bias", vec![2]),
        (bias, "bias", vec![n]),
        (shift, "shift", vec![bt, 2]),
    ] {
        if let Some(s) = s {
            if s != want.as_slice() {
                return Err(Error::shape(OP, name, s, format!("{want:?}")));
            }
        }
    }
    Ok(ZigDims { bt, c, h, w, n, t: frames, kt, kc })
}

/// The shape [C, N, 2] under which the ZIG readout uses its stored `features` [1, C, 2, N]: the
/// upstream readout reads that buffer through `.view(1, C, N, 2)`, so the raw data is taken as
/// [C][N][2] without any transpose (each channel's 2·N values, read as N pairs). Refuses any other
/// stored shape.
pub fn zig_features_shape(stored: &[usize]) -> Result<[usize; 3]> {
    match *stored {
        [1, c, 2, n] => Ok([c, n, 2]),
        _ => Err(Error::shape("zig_readout", "features", stored, "[1, C, 2, N] as stored")),
    }
}

/// The stored `features` [1, C, 2, N] as the [C, N, 2] tensor [`zig_readout`] takes: the same data
/// under the shape of [`zig_features_shape`] (a reinterpretation, not a transpose).
pub fn zig_features_view(stored: &Tensor) -> Result<Tensor> {
    stored.reshape(&zig_features_shape(stored.shape())?)
}

fn count_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::param(op, what.to_string(), format!("{v} elements are past the kernels' u32 index")))
}

/// The ZIG readout of the video-latent model in eval mode. For every frame bt = b·T + t of x
/// [B·T, C, H, W] and neuron n, the bilinear sample s[bt, c, n] of every channel at clamp(mu[n])
/// (+ shift[bt], after the clamp); per neuron and sample b, a Conv2d(1 → 2) over (time, channel)
/// with zero padding (kt/2, kc/2) and its bias; then Σ_c features[c, n, o] · conv[o, t, c] + bias[n].
/// Output [2, B·T, N]: the logits of q (row 0) and θ (row 1). Frame t depends on frames t − kt/2 …
/// t + kt/2 of its own sample: the readout is not causal in time.
pub fn zig_readout(
    rec: &mut Recorder,
    x: &Tensor,
    frames: usize,
    r: &ZigReadout,
    shift: Option<&Tensor>,
) -> Result<Tensor> {
    let d = readout_checks(rec, x, frames, r, shift)?;
    let g = record_columns(rec, x, r, shift, &d)?;
    record_window(rec, &g, r, &d, d.bt / d.t, 0, d.t)
}

/// Pass 1 of [`zig_readout`] alone, per frame: the columns g [2, kc + 1, B·T, N] of x
/// [B·T, C, H, W] (row r < kc: the channel sums of the samples times the features of conv column
/// r, row kc: Σ_c features). A stream computes them for its new frames only.
pub(crate) fn zig_readout_columns(rec: &mut Recorder, x: &Tensor, r: &ZigReadout) -> Result<Tensor> {
    let d = readout_checks(rec, x, 1, r, None)?;
    record_columns(rec, x, r, None, &d)
}

/// Pass 2 of [`zig_readout`] on a window of columns g [2, kc + 1, B·W, N] (W frames per sample,
/// as [`zig_readout_columns`] gives them): the logits [2, B·K, N] of the K = `count` frames from
/// window frame `first` on. Taps outside the window read zeros, so the window's first frame
/// plays the clip's start and its last the clip's end; a window that holds kt/2 frames either
/// side of the frames asked for gives the clip's values.
pub(crate) fn zig_readout_window(
    rec: &mut Recorder,
    g: &Tensor,
    batch: usize,
    first: usize,
    count: usize,
    r: &ZigReadout,
) -> Result<Tensor> {
    const OP: &str = "zig_readout";
    g.expect_f32(OP, "columns")?;
    let n = match *r.mu.shape() {
        [n, 2] if n >= 1 => n,
        _ => return Err(Error::shape(OP, "mu", r.mu.shape(), "[N, 2] with N >= 1")),
    };
    let (kt, kc) = conv_kernel(OP, r.conv_weight.shape())?;
    let bw = match *g.shape() {
        [2, rows, bw, gn] if rows == kc + 1 && gn == n && batch >= 1 && bw % batch == 0 && bw > 0 => bw,
        _ => return Err(Error::shape(OP, "columns", g.shape(), format!("[2, {}, B·W, {n}] with B = {batch}", kc + 1))),
    };
    let w = bw / batch;
    if count == 0 || first.checked_add(count).is_none_or(|e| e > w) {
        return Err(Error::param(OP, "frames", format!("{count} frames from {first} in a window of {w}")));
    }
    let d = ZigDims { bt: bw, c: 0, h: 0, w: 0, n, t: w, kt, kc };
    record_window(rec, g, r, &d, batch, first, count)
}

/// The checks of [`zig_readout`] (dtypes, shapes, the loop budget of pass 2).
fn readout_checks(
    rec: &Recorder,
    x: &Tensor,
    frames: usize,
    r: &ZigReadout,
    shift: Option<&Tensor>,
) -> Result<ZigDims> {
    const OP: &str = "zig_readout";
    for (t, name) in [
        (Some(x), "input"),
        (Some(r.mu), "mu"),
        (Some(r.conv_weight), "conv_weight"),
        (r.conv_bias, "conv_bias"),
        (Some(r.features), "features"),
        (r.bias, "bias"),
        (shift, "shift"),
    ] {
        if let Some(t) = t {
            t.expect_f32(OP, name)?;
        }
    }
    let d = zig_readout_shapes(
        x.shape(),
        frames,
        r.mu.shape(),
        r.conv_weight.shape(),
        r.conv_bias.map(|t| t.shape()),
        r.features.shape(),
        r.bias.map(|t| t.shape()),
        shift.map(|t| t.shape()),
    )?;
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    // Pass 2's loops run kt·(kc + 1) steps (the budget counts nested loops together).
    if d.kt.saturating_mul(d.kc + 1) > budget {
        return Err(Error::param(
            OP,
            "conv_weight",
            format!("kernel ({}, {}) is past the loop budget {budget}", d.kt, d.kc),
        ));
    }
    Ok(d)
}

/// Pass 1: g [2, kc + 1, B·T, N], the channel sums of each conv column (and of the features).
fn record_columns(
    rec: &mut Recorder,
    x: &Tensor,
    r: &ZigReadout,
    shift: Option<&Tensor>,
    d: &ZigDims,
) -> Result<Tensor> {
    const OP: &str = "zig_readout";
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    let rows = d.kc + 1;
    let g_total = 2usize
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(d.bt))
        .and_then(|v| v.checked_mul(d.n))
        .ok_or_else(|| Error::param(OP, "input", "the readout's intermediate is too large to count"))?;
    let ctx = rec.context();
    let p = RoParams {
        n: count_u32(OP, "input", d.bt)?,
        c: d.c as u32,
        h: d.h as u32,
        w: d.w as u32,
        m: d.n as u32,
        total: count_u32(OP, "input", g_total)?,
        t: d.t as u32,
        kt: d.kt as u32,
        kc: d.kc as u32,
        ..Default::default()
    };
    let g = rec.alloc(OP, &[2, rows, d.bt, d.n], DType::F32)?;
    let kg = ctx.kernel(
        &PipelineKey::new("readout", "zig_readout_g", &ZIG_BINDINGS)
            .flag(ov::ALIGN_CORNERS, r.align_corners)
            .flag(ov::HAS_SHIFT, shift.is_some()),
    )?;
    let groups = super::elementwise_grid(ctx, g_total, OP)?;
    let mut parts: Vec<(usize, usize)> = chunks(d.c, budget).collect();
    if parts.is_empty() {
        parts.push((0, 0));
    }
    for (k, &(lo, hi)) in parts.iter().enumerate() {
        let pk = RoParams { lo: lo as u32, hi: hi as u32, part: (k == 0) as u32, ..p };
        rec.dispatch(
            OP,
            kg.clone(),
            bytemuck::bytes_of(&pk),
            &[Some(x), Some(r.mu), Some(r.features), None, shift, Some(&g), None, None],
            groups,
        )?;
    }
    Ok(g)
}

/// Pass 2: the (time, channel) conv taps over the window g [2, kc + 1, B·W, N] (d.bt = B·W,
/// d.t = W) for `count` frames per sample from window frame `first`: [2, B·count, N].
fn record_window(
    rec: &mut Recorder,
    g: &Tensor,
    r: &ZigReadout,
    d: &ZigDims,
    batch: usize,
    first: usize,
    count: usize,
) -> Result<Tensor> {
    const OP: &str = "zig_readout";
    let bk = batch * count;
    let total = 2usize
        .checked_mul(bk)
        .and_then(|v| v.checked_mul(d.n))
        .ok_or_else(|| Error::param(OP, "input", "the readout's output is too large to count"))?;
    let ctx = rec.context();
    let kc2 = ctx.kernel(
        &PipelineKey::new("readout", "zig_readout_conv", &ZIG_BINDINGS)
            .flag(ov::CONV_BIAS, r.conv_bias.is_some())
            .flag(ov::HAS_BIAS, r.bias.is_some()),
    )?;
    let y = rec.alloc(OP, &[2, bk, d.n], DType::F32)?;
    let pc = RoParams {
        n: count_u32(OP, "input", d.bt)?,
        m: d.n as u32,
        total: count_u32(OP, "input", total)?,
        t: d.t as u32,
        kt: d.kt as u32,
        kc: d.kc as u32,
        ho: count as u32,
        wo: first as u32,
        ..Default::default()
    };
    rec.dispatch(
        OP,
        kc2,
        bytemuck::bytes_of(&pc),
        &[Some(g), Some(r.conv_weight), r.conv_bias, r.bias, None, Some(&y), None, None],
        super::elementwise_grid(ctx, total, OP)?,
    )?;
    Ok(y)
}

/// Which ZIG parameter map [`zig_map`] applies (neuralpredictors' `zero_inflation_encoders.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZigMap {
    /// q = sigmoid(x)·0.99999 + 1e-6.
    Q,
    /// θ = ELU(x) + 1 + 1e-6.
    Theta,
    /// k = ELU(x) + 1 + 1e-6 (the same map as θ).
    K,
    /// loc = exp(x) (x = log loc).
    Loc,
}

impl ZigMap {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "q" => ZigMap::Q,
            "theta" => ZigMap::Theta,
            "k" => ZigMap::K,
            "loc" => ZigMap::Loc,
            _ => return Err(Error::param("zig_map", "map", format!("{s:?} is not q, theta, k or loc"))),
        })
    }
    fn id(self) -> f64 {
        match self {
            ZigMap::Q => 0.0,
            ZigMap::Theta | ZigMap::K => 1.0,
            ZigMap::Loc => 2.0,
        }
    }
}

/// A ZIG parameter map, elementwise (NaN stays NaN).
pub fn zig_map(rec: &mut Recorder, x: &Tensor, map: ZigMap) -> Result<Tensor> {
    const OP: &str = "zig_map";
    x.expect_f32(OP, "input")?;
    let ctx = rec.context();
    let total = x.numel();
    let p = RoParams { total: count_u32(OP, "input", total)?, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("readout", "zig_map", &ZIG_BINDINGS).with(ov::ZIG_MAP, map.id()))?;
    let y = rec.alloc(OP, x.shape(), DType::F32)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[Some(x), None, None, None, None, Some(&y), None, None],
        super::elementwise_grid(ctx, total, OP)?,
    )?;
    Ok(y)
}

/// Which moment [`zig_moments`] gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZigMoment {
    /// E[y] = (1−q)·loc/2 + q(kθ + loc).
    Mean,
    /// Var[y] = qkθ² + (1−q)loc²/12 + q(1−q)(kθ + loc/2)².
    Variance,
}

/// Checks that `t` has `data`'s shape or is its last axis (a per-neuron vector broadcast over the
/// rest); returns its length.
pub(crate) fn per_neuron(op: &'static str, what: &str, t: &[usize], data: &[usize]) -> Result<usize> {
    let last = data.last().copied().unwrap_or(1);
    if t == data || (t.len() == 1 && t[0] == last && last >= 1) {
        return Ok(t.iter().product());
    }
    Err(Error::shape(op, what, t, format!("{data:?} or [{last}]")))
}

/// The mean or variance of the ZIG distribution per element (`mean_variance_functions.py`): q and θ
/// of one shape [..., N], k and loc of that shape or [N] (per neuron).
pub fn zig_moments(
    rec: &mut Recorder,
    q: &Tensor,
    theta: &Tensor,
    k: &Tensor,
    loc: &Tensor,
    moment: ZigMoment,
) -> Result<Tensor> {
    const OP: &str = "zig_moments";
    q.expect_f32(OP, "q")?;
    expect_shape(OP, "theta", theta, q.shape())?;
    k.expect_f32(OP, "k")?;
    loc.expect_f32(OP, "loc")?;
    let nk = per_neuron(OP, "k", k.shape(), q.shape())?;
    let nl = per_neuron(OP, "loc", loc.shape(), q.shape())?;
    let ctx = rec.context();
    let total = q.numel();
    let p = RoParams { total: count_u32(OP, "q", total)?, nk: nk as u32, nl: nl as u32, ..Default::default() };
    let kernel = ctx.kernel(
        &PipelineKey::new("readout", "zig_moments", &ZIG_BINDINGS).flag(ov::VARIANCE, moment == ZigMoment::Variance),
    )?;
    let y = rec.alloc(OP, q.shape(), DType::F32)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[Some(q), Some(theta), Some(k), Some(loc), None, Some(&y), None, None],
        super::elementwise_grid(ctx, total, OP)?,
    )?;
    Ok(y)
}

/// The latent state's part of the logits: samples `z` [S, B·T, L] (S = 1 with the posterior means
/// for a point estimate) and the per-neuron weights `w_q`, `w_theta` [L, N]: q̃ += z·W_q and
/// θ̃ += z·W_θ for every sample.
#[derive(Clone, Copy, Debug)]
pub struct ZigLatent<'a> {
    pub z: &'a Tensor,
    pub w_q: &'a Tensor,
    pub w_theta: &'a Tensor,
}

/// Checks logits [2, B·T, N], z [S, B·T, L] (S, L >= 1), w_q and w_theta [L, N]; returns (B·T, N,
/// S, L). Shared by the ops and the reference.
pub(crate) fn zig_latent_shapes(
    op: &'static str,
    logits: &[usize],
    z: &[usize],
    w_q: &[usize],
    w_theta: &[usize],
) -> Result<(usize, usize, usize, usize)> {
    let (bt, n) = match *logits {
        [2, bt, n] => (bt, n),
        _ => return Err(Error::shape(op, "logits", logits, "[2, B*T, N]")),
    };
    let (s, l) = match *z {
        [s, zb, l] if zb == bt && s >= 1 && l >= 1 => (s, l),
        _ => return Err(Error::shape(op, "z", z, format!("[S, {bt}, L] with S, L >= 1"))),
    };
    for (sh, name) in [(w_q, "w_q"), (w_theta, "w_theta")] {
        if sh != [l, n] {
            return Err(Error::shape(op, name, sh, format!("[{l}, {n}]")));
        }
    }
    Ok((bt, n, s, l))
}

fn latent_checks(op: &'static str, logits: &Tensor, lat: &ZigLatent) -> Result<(usize, usize, usize, usize)> {
    for (t, name) in [(logits, "logits"), (lat.z, "z"), (lat.w_q, "w_q"), (lat.w_theta, "w_theta")] {
        t.expect_f32(op, name)?;
    }
    zig_latent_shapes(op, logits.shape(), lat.z.shape(), lat.w_q.shape(), lat.w_theta.shape())
}

/// q and θ [S, B·T, N] of every latent sample: the logits [2, B·T, N] (a [`zig_readout`] output)
/// shifted by the latent, then the maps of [`ZigMap::Q`] and [`ZigMap::Theta`].
pub fn zig_latent_params(rec: &mut Recorder, logits: &Tensor, lat: &ZigLatent) -> Result<(Tensor, Tensor)> {
    const OP: &str = "zig_latent_params";
    let (bt, n, s, l) = latent_checks(OP, logits, lat)?;
    if l as u64 > rec.loop_budget() {
        return Err(Error::param(OP, "z", format!("{l} latent dims are past the loop budget {}", rec.loop_budget())));
    }
    let total = s
        .checked_mul(bt)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| Error::param(OP, "z", "too many samples to count"))?;
    let ctx = rec.context();
    let p =
        RoParams { n: bt as u32, m: n as u32, l: l as u32, total: count_u32(OP, "z", total)?, ..Default::default() };
    let mut bindings = ZIG_BINDINGS;
    bindings[6] = Access::ReadWrite;
    let kernel = ctx.kernel(&PipelineKey::new("readout", "zig_latent_params", &bindings[..7]))?;
    let q = rec.alloc(OP, &[s, bt, n], DType::F32)?;
    let theta = rec.alloc(OP, &[s, bt, n], DType::F32)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[None, Some(logits), Some(lat.z), Some(lat.w_q), Some(lat.w_theta), Some(&q), Some(&theta)],
        super::elementwise_grid(ctx, total, OP)?,
    )?;
    Ok((q, theta))
}

/// The video-latent branch's ZIG log-likelihood of `target` [B·T, N] in bits: per (bt, n),
/// (logsumexp over the S samples of log p(y | z_s) − log S) / ln 2, with log p the `get_slab_logl`
/// form of docs/ops.md (no −log loc term; masks y ≥ loc and y ≤ loc). The logits [2, B·T, N] are
/// shifted by each sample's latent and mapped to q and θ inside the kernel; `k` and `loc` [N] are
/// per neuron (already mapped). A NaN in any input of an element gives NaN there. Samples past the
/// loop budget are reduced in chunks, then combined.
pub fn zig_latent_loglik(
    rec: &mut Recorder,
    target: &Tensor,
    logits: &Tensor,
    lat: &ZigLatent,
    k: &Tensor,
    loc: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "zig_latent_loglik";
    let (bt, n, s, l) = latent_checks(OP, logits, lat)?;
    expect_shape(OP, "target", target, &[bt, n])?;
    expect_shape(OP, "k", k, &[n])?;
    expect_shape(OP, "loc", loc, &[n])?;
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    if l > budget {
        return Err(Error::param(OP, "z", format!("{l} latent dims are past the loop budget {budget}")));
    }
    let total = bt * n;
    // Each sample runs the latent loop of L steps: samples per dispatch budget / (L + 1); the
    // combine pass loops twice over the chunks.
    let parts: Vec<(usize, usize)> = chunks(s, budget / (l + 1)).collect();
    if parts.len() > budget / 2 {
        return Err(Error::param(OP, "z", format!("{s} samples are past the budget's square")));
    }
    let ctx = rec.context();
    let p = RoParams {
        n: bt as u32,
        m: n as u32,
        l: l as u32,
        s: count_u32(OP, "z", s)?,
        total: count_u32(OP, "target", total)?,
        ..Default::default()
    };
    let kernel = ctx.kernel(&PipelineKey::new("readout", "zig_latent_loglik", &ZIG_BINDINGS))?;
    let groups = super::elementwise_grid(ctx, total, OP)?;
    fn bind<'t>(ins: [&'t Tensor; 5], y: &'t Tensor, k: &'t Tensor, loc: &'t Tensor) -> [Option<&'t Tensor>; 8] {
        [Some(ins[0]), Some(ins[1]), Some(ins[2]), Some(ins[3]), Some(ins[4]), Some(y), Some(k), Some(loc)]
    }
    let ins = [target, logits, lat.z, lat.w_q, lat.w_theta];
    let y = rec.alloc(OP, &[bt, n], DType::F32)?;
    if parts.len() == 1 {
        let pk = RoParams { lo: 0, hi: s as u32, part: 3, ..p };
        rec.dispatch(OP, kernel, bytemuck::bytes_of(&pk), &bind(ins, &y, k, loc), groups)?;
        return Ok(y);
    }
    let partials = rec.alloc(OP, &[parts.len(), bt, n], DType::F32)?;
    count_u32(OP, "z", parts.len() * total)?;
    for (j, &(lo, hi)) in parts.iter().enumerate() {
        let pk = RoParams { lo: lo as u32, hi: hi as u32, part: 0, count: j as u32, ..p };
        rec.dispatch(OP, kernel.clone(), bytemuck::bytes_of(&pk), &bind(ins, &partials, k, loc), groups)?;
    }
    let comb = ctx.kernel(&PipelineKey::new("readout", "zig_lse_combine", &ZIG_BINDINGS))?;
    let pc = RoParams { count: parts.len() as u32, ..p };
    rec.dispatch(
        "zig_latent_loglik/combine",
        comb,
        bytemuck::bytes_of(&pc),
        &[Some(&partials), None, None, None, None, Some(&y), None, None],
        groups,
    )?;
    Ok(y)
}
