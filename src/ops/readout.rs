//! Sampling the core's feature map (shaders/readout.wgsl): bilinear grid_sample and the
//! FullGaussian2d readout in eval mode (docs/ops.md, Gaussian readout), with its parameters as given or as a
//! [`SortedReadout`] (neurons in Z-order of their positions, for the cache).

use super::expect_shape;
use crate::error::{Error, Result};
use crate::runtime::{Access, Context, PipelineKey, Recorder};
use crate::shaders::overrides::readout as ov;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct RoParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub m: u32,
    pub ho: u32,
    pub wo: u32,
    pub total: u32,
    pub eps: f32,
    pub scale: f32,
    pub count: u32,
    pub _p: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub off_lo: u32,
    pub off_hi: u32,
    /// gaussian_readout and pearson_part: the range of channels (trials) of one dispatch and
    /// which part of the split sum it is (bit 0: first, bit 1: last; pearson's bit 2: second pass).
    pub lo: u32,
    pub hi: u32,
    pub part: u32,
    pub _q: u32,
    /// The ZIG kernels (ops::zig): frames per sample, the readout conv's kernel, latent samples and
    /// dims, the lengths of k and loc (zig_readout_conv: `ho` output frames per sample from frame
    /// `wo` of a window of `t`).
    pub t: u32,
    pub kt: u32,
    pub kc: u32,
    pub s: u32,
    pub l: u32,
    pub nk: u32,
    pub nl: u32,
    pub _r: u32,
}

pub(crate) const BINDINGS: [Access; 7] =
    [Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::Read];

/// gaussian_readout's bindings: BINDINGS and the neuron order.
const READOUT_BINDINGS: [Access; 8] = [
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::Read,
    Access::Read,
];

fn nchw(op: &'static str, x: &[usize]) -> Result<[usize; 4]> {
    match *x {
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => Err(Error::shape(op, "input", x, "[N, C, H, W]")),
    }
}

/// Checks grid_sample's shapes, x [N, C, H, W] and grid [N, Ho, Wo, 2]: returns ([N, C, H, W], Ho,
/// Wo). Shared by the op and `eval`'s CPU path.
pub(crate) fn grid_sample_shapes(x: &[usize], grid: &[usize]) -> Result<([usize; 4], usize, usize)> {
    const OP: &str = "grid_sample";
    let d = nchw(OP, x)?;
    match *grid {
        [gn, ho, wo, 2] if gn == d[0] => Ok((d, ho, wo)),
        _ => Err(Error::shape(OP, "grid", grid, format!("[{}, Ho, Wo, 2]", d[0]))),
    }
}

/// Checks the Gaussian readout's shapes: x [N, C, H, W], mu [M, 2], features [C, M], bias [M],
/// shift [N, 2]. Returns ([N, C, H, W], M). Shared by the op and `eval`'s CPU path.
pub(crate) fn readout_shapes(
    x: &[usize],
    mu: &[usize],
    features: &[usize],
    bias: Option<&[usize]>,
    shift: Option<&[usize]>,
) -> Result<([usize; 4], usize)> {
    const OP: &str = "gaussian_readout";
    let d = nchw(OP, x)?;
    let m = match *mu {
        [m, 2] => m,
        _ => return Err(Error::shape(OP, "mu", mu, "[M, 2]")),
    };
    for (s, name, want) in
        [(Some(features), "features", vec![d[1], m]), (bias, "bias", vec![m]), (shift, "shift", vec![d[0], 2])]
    {
        if let Some(s) = s {
            if s != want.as_slice() {
                return Err(Error::shape(OP, name, s, format!("{want:?}")));
            }
        }
    }
    Ok((d, m))
}

/// Bilinear sampling of x [N, C, H, W] at grid [N, Ho, Wo, 2] ((x, y) in [−1, 1]; zero outside):
/// output [N, C, Ho, Wo], as `F.grid_sample(mode="bilinear", padding_mode="zeros")`.
pub fn grid_sample(rec: &mut Recorder, x: &Tensor, grid: &Tensor, align_corners: bool) -> Result<Tensor> {
    const OP: &str = "grid_sample";
    x.expect_f32(OP, "input")?;
    grid.expect_f32(OP, "grid")?;
    let ([n, c, h, w], ho, wo) = grid_sample_shapes(x.shape(), grid.shape())?;
    let ctx = rec.context();
    let total = n * c * ho * wo;
    let p = RoParams {
        n: n as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        ho: ho as u32,
        wo: wo as u32,
        total: total as u32,
        ..Default::default()
    };
    let kernel =
        ctx.kernel(&PipelineKey::new("readout", "grid_sample", &BINDINGS).flag(ov::ALIGN_CORNERS, align_corners))?;
    let y = rec.alloc(OP, &[n, c, ho, wo], DType::F32)?;
    let groups = super::elementwise_grid(ctx, total, OP)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(grid), None, None, None, Some(&y), None], groups)?;
    Ok(y)
}

/// Where positions come from in training mode: each neuron's Gaussian, sigma [M, 2, 2] (the full
/// covariance factor of neuralpredictors' `FullGaussian2d`), z from the engine's Philox stream
/// (seed, offset): element (n·M + m)·2 + d.
#[derive(Clone, Copy, Debug)]
pub struct ReadoutSample<'a> {
    pub sigma: &'a Tensor,
    pub seed: u64,
    pub offset: u64,
}

/// The Gaussian readout in sampling (training) mode: positions clamp(sigma·z + clamp(mu)) (+ shift),
/// otherwise as [`gaussian_readout`].
#[allow(clippy::too_many_arguments)]
pub fn gaussian_readout_sample(
    rec: &mut Recorder,
    x: &Tensor,
    mu: &Tensor,
    features: &Tensor,
    bias: Option<&Tensor>,
    shift: Option<&Tensor>,
    align_corners: bool,
    act: super::Activation,
    sample: ReadoutSample,
) -> Result<Tensor> {
    readout(rec, x, mu, features, bias, shift, align_corners, act, Some(sample), None)
}

/// The Gaussian readout in eval mode: for every image n and neuron m, the bilinear sample of x at
/// clamp(mu[m], −1, 1) (+ shift[n], added after the clamp), weighted by features [C, M] and summed
/// over channels, + bias[m], then `act` (ELU+1 for firing rates; identity for the raw readout).
/// Output [N, M].
pub fn gaussian_readout(
    rec: &mut Recorder,
    x: &Tensor,
    mu: &Tensor,
    features: &Tensor,
    bias: Option<&Tensor>,
    shift: Option<&Tensor>,
    align_corners: bool,
    act: super::Activation,
) -> Result<Tensor> {
    readout(rec, x, mu, features, bias, shift, align_corners, act, None, None)
}

/// An eval-mode Gaussian readout's parameters on the device with the neurons reordered for the
/// cache: in Z-order (Morton order) of their clamped positions, so the 32 or 64 invocations that run
/// together sample a few neighbouring pixels and their reads of the feature map fall on the same
/// cache lines, instead of one scattered read per neuron per tap per channel. `mu`, `features` and
/// `bias` are stored in that order; the kernel writes each neuron's response to its own column, so
/// the output is the same [N, M] as [`gaussian_readout`]'s, in the caller's neuron order. Build it
/// once when a model loads (the positions are fixed at inference).
pub struct SortedReadout {
    mu: Tensor,
    features: Tensor,
    bias: Option<Tensor>,
    order: Tensor,
    perm: Vec<u32>,
}

/// The largest neuron count a [`SortedReadout`] holds: its order is stored as f32 indices.
pub const SORTED_READOUT_MAX_NEURONS: usize = 1 << 24;

/// The Z-order slot permutation of positions `mu` [M, 2] (x, y in [-1, 1] after clamping):
/// `perm[slot]` is the neuron in that slot. Ties keep the neurons' order.
pub fn readout_order(mu: &[f32]) -> Vec<u32> {
    fn spread(v: u32) -> u64 {
        (0..16).fold(0u64, |acc, b| acc | (((v as u64 >> b) & 1) << (2 * b)))
    }
    let q = |g: f32| ((g.clamp(-1.0, 1.0) + 1.0) * 0.5 * 65535.0).round() as u32;
    let code = |i: usize| spread(q(mu[2 * i])) | (spread(q(mu[2 * i + 1])) << 1);
    let mut perm: Vec<u32> = (0..(mu.len() / 2) as u32).collect();
    perm.sort_by_key(|&i| (code(i as usize), i));
    perm
}

impl SortedReadout {
    /// Sorts and uploads mu [M, 2], features [C, M] and bias [M]; refuses mis-sized or non-finite
    /// positions.
    pub fn new(ctx: &Context, mu: &[f32], features: &[f32], c: usize, bias: Option<&[f32]>) -> Result<SortedReadout> {
        const OP: &str = "gaussian_readout";
        let m = mu.len() / 2;
        if mu.len() % 2 != 0 || m == 0 {
            return Err(Error::shape(OP, "mu", &[mu.len()], "[M, 2] with M >= 1"));
        }
        if m > SORTED_READOUT_MAX_NEURONS {
            return Err(Error::param(
                OP,
                "neurons",
                format!("{m} is past the sorted readout's {SORTED_READOUT_MAX_NEURONS}"),
            ));
        }
        if c == 0 || features.len() != c * m {
            return Err(Error::shape(OP, "features", &[features.len()], format!("[C, {m}] with C >= 1")));
        }
        if let Some(b) = bias {
            if b.len() != m {
                return Err(Error::shape(OP, "bias", &[b.len()], format!("[{m}]")));
            }
        }
        if let Some(i) = mu.iter().position(|v| !v.is_finite()) {
            return Err(Error::param(OP, "mu", format!("mu[{}][{}] = {} is not finite", i / 2, i % 2, mu[i])));
        }
        let perm = readout_order(mu);
        let mu_s: Vec<f32> = perm.iter().flat_map(|&i| [mu[2 * i as usize], mu[2 * i as usize + 1]]).collect();
        let f_s: Vec<f32> = (0..c).flat_map(|ch| perm.iter().map(move |&i| features[ch * m + i as usize])).collect();
        let order: Vec<f32> = perm.iter().map(|&i| i as f32).collect();
        Ok(SortedReadout {
            mu: Tensor::from_f32(ctx, &mu_s, &[m, 2])?,
            features: Tensor::from_f32(ctx, &f_s, &[c, m])?,
            bias: bias
                .map(|b| Tensor::from_f32(ctx, &perm.iter().map(|&i| b[i as usize]).collect::<Vec<_>>(), &[m]))
                .transpose()?,
            order: Tensor::from_f32(ctx, &order, &[m])?,
            perm,
        })
    }

    /// The neuron in each slot.
    pub fn order(&self) -> &[u32] {
        &self.perm
    }
}

/// [`gaussian_readout`] with sorted parameters: the same [N, M] responses, in the caller's order.
pub fn gaussian_readout_sorted(
    rec: &mut Recorder,
    x: &Tensor,
    r: &SortedReadout,
    shift: Option<&Tensor>,
    align_corners: bool,
    act: super::Activation,
) -> Result<Tensor> {
    readout(rec, x, &r.mu, &r.features, r.bias.as_ref(), shift, align_corners, act, None, Some(&r.order))
}

#[allow(clippy::too_many_arguments)]
fn readout(
    rec: &mut Recorder,
    x: &Tensor,
    mu: &Tensor,
    features: &Tensor,
    bias: Option<&Tensor>,
    shift: Option<&Tensor>,
    align_corners: bool,
    act: super::Activation,
    sample: Option<ReadoutSample>,
    order: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "gaussian_readout";
    act.validate()?;
    for (t, name) in
        [(Some(x), "input"), (Some(mu), "mu"), (Some(features), "features"), (bias, "bias"), (shift, "shift")]
    {
        if let Some(t) = t {
            t.expect_f32(OP, name)?;
        }
    }
    let ([n, c, h, w], m) =
        readout_shapes(x.shape(), mu.shape(), features.shape(), bias.map(|t| t.shape()), shift.map(|t| t.shape()))?;
    if let Some(s) = &sample {
        expect_shape(OP, "sigma", s.sigma, &[m, 2, 2])?;
    }
    let ctx = rec.context();
    let total = n * m;
    let (seed, offset) = sample.map_or((0, 0), |s| (s.seed, s.offset));
    let p = RoParams {
        n: n as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        m: m as u32,
        total: total as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        off_lo: offset as u32,
        off_hi: (offset >> 32) as u32,
        ..Default::default()
    };
    let key = PipelineKey::new("readout", "gaussian_readout", &READOUT_BINDINGS)
        .flag(ov::ORDER, order.is_some())
        .flag(ov::ALIGN_CORNERS, align_corners)
        .flag(ov::HAS_BIAS, bias.is_some())
        .flag(ov::HAS_SHIFT, shift.is_some())
        .flag(ov::SAMPLE, sample.is_some());
    let kernel = ctx.kernel(&act.specialize(key))?;
    let y = rec.alloc(OP, &[n, m], DType::F32)?;
    let groups = super::elementwise_grid(ctx, total, OP)?;
    // One invocation loops over the channels: past the loop budget the channel sum is split across
    // dispatches (the first writes its partial sum, the next ones continue it, the last adds the
    // bias and applies the activation). Normal channel counts are one dispatch.
    let per = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    let mut parts: Vec<(usize, usize)> = crate::runtime::chunks(c, per).collect();
    if parts.is_empty() {
        parts.push((0, 0)); // no channel: the bias alone
    }
    let last = parts.len() - 1;
    for (k, &(lo, hi)) in parts.iter().enumerate() {
        let pk = RoParams { lo: lo as u32, hi: hi as u32, part: (k == 0) as u32 | (((k == last) as u32) << 1), ..p };
        rec.dispatch(
            OP,
            kernel.clone(),
            bytemuck::bytes_of(&pk),
            &[Some(x), Some(mu), Some(features), bias, shift, Some(&y), sample.map(|s| s.sigma), order],
            groups,
        )?;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "readout",
        "RoParams",
        RoParams,
        [
            n, c, h, w, m, ho, wo, total, eps, scale, count, _p, seed_lo, seed_hi, off_lo, off_hi, lo, hi, part, _q, t,
            kt, kc, s, l, nk, nl, _r
        ]
    )]
}
