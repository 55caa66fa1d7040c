//! conv3d on `[N, C, T, H, W]` video with PyTorch semantics (stride, zero padding and dilation per
//! axis, groups) and conv2d's fused epilogue (bias, per-channel scale and shift for a folded
//! BatchNorm3d, activation); and the factorized pair of neuralpredictors' `Factorized3dCore`
//! (a spatial `(1, kh, kw)` conv, then a temporal `(kt, 1, 1)` conv), recorded after one shape
//! check of both.
//!
//! Two kernels: an implicit GEMM (128 voxels × 64 channels a tile in workgroup memory, the input
//! gathered on the fly) and, where a group has few output channels (depthwise), a direct kernel of
//! one output per invocation. A reduction past the loop budget runs in parts (SPLIT) and the
//! epilogue after them.

use super::conv::Epilogue;
use super::{expect_shape, Activation};
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::conv3d as ov;
use crate::tensor::{DType, Tensor};

/// Which kernel runs a conv3d. `Auto` picks the direct kernel where a group has at most
/// [`DIRECT_MAX_OG`] output channels, the narrow GEMM up to 32, the implicit GEMM otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Conv3dAlgo {
    #[default]
    Auto,
    /// Implicit GEMM, 128 output voxels by 64 output channels a workgroup.
    Gemm,
    /// Implicit GEMM, 256 output voxels by 32 output channels a workgroup: for groups of at most
    /// 32 output channels (the Sensorium factorized core's first layer), where half of `Gemm`'s
    /// tile would idle.
    GemmNarrow,
    /// One output per invocation.
    Direct,
}

/// The most output channels per group for which `Auto` takes the direct kernel.
pub const DIRECT_MAX_OG: usize = 4;

/// Geometry of a conv3d; every array is ordered (time, height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dParams {
    pub stride: [usize; 3],
    /// Zero padding: front, back (time), top, bottom, left, right.
    pub padding: [usize; 6],
    pub dilation: [usize; 3],
    pub groups: usize,
    pub algo: Conv3dAlgo,
}

impl Default for Conv3dParams {
    fn default() -> Self {
        Conv3dParams { stride: [1; 3], padding: [0; 6], dilation: [1; 3], groups: 1, algo: Conv3dAlgo::Auto }
    }
}

impl Conv3dParams {
    /// PyTorch's symmetric padding (pt, ph, pw).
    pub fn with_padding(mut self, pt: usize, ph: usize, pw: usize) -> Self {
        self.padding = [pt, pt, ph, ph, pw, pw];
        self
    }
    pub fn with_stride(mut self, st: usize, sh: usize, sw: usize) -> Self {
        self.stride = [st, sh, sw];
        self
    }
    pub fn with_dilation(mut self, dt: usize, dh: usize, dw: usize) -> Self {
        self.dilation = [dt, dh, dw];
        self
    }
    pub fn with_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    pub fn with_algo(mut self, a: Conv3dAlgo) -> Self {
        self.algo = a;
        self
    }
}

/// The geometry of one conv3d, validated: input [n, c, t, h, w], weight [o, c/groups, kt, kh, kw],
/// output [n, o, to, ho, wo].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv3dShape {
    pub n: usize,
    pub c: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kt: usize,
    pub kh: usize,
    pub kw: usize,
    pub to: usize,
    pub ho: usize,
    pub wo: usize,
}

impl Conv3dShape {
    /// The output shape [N, O, To, Ho, Wo].
    pub fn output(&self) -> [usize; 5] {
        [self.n, self.o, self.to, self.ho, self.wo]
    }
}

/// Checks a conv3d's shapes and parameters; shared by the GPU op and the CPU reference.
pub fn conv3d_shape(x: &[usize], w: &[usize], p: &Conv3dParams) -> Result<Conv3dShape> {
    shape_named("conv3d", "input", "weight", "", x, w, p)
}

/// [`conv3d_shape`] with the names an error gives the operands and (prefixed) parameters.
fn shape_named(
    op: &'static str,
    xname: &str,
    wname: &str,
    prefix: &str,
    x: &[usize],
    w: &[usize],
    p: &Conv3dParams,
) -> Result<Conv3dShape> {
    let name = |n: &str| format!("{prefix}{n}");
    if x.len() != 5 {
        return Err(Error::shape(op, xname, x, "[N, C, T, H, W]"));
    }
    if w.len() != 5 {
        return Err(Error::shape(op, wname, w, "[O, C/groups, KT, KH, KW]"));
    }
    if x.contains(&0) {
        return Err(Error::shape(op, xname, x, "no zero-sized dimension"));
    }
    if w.contains(&0) {
        return Err(Error::shape(op, wname, w, "no zero-sized dimension"));
    }
    super::geometry(op, &name("stride"), &p.stride)?;
    super::geometry(op, &name("padding"), &p.padding)?;
    super::geometry(op, &name("dilation"), &p.dilation)?;
    super::geometry(op, &name("groups"), &[p.groups])?;
    super::geometry(op, wname, &w[2..])?;
    if p.stride.contains(&0) {
        return Err(Error::param(op, name("stride"), format!("{:?} must be >= 1", p.stride)));
    }
    if p.dilation.contains(&0) {
        return Err(Error::param(op, name("dilation"), format!("{:?} must be >= 1", p.dilation)));
    }
    let g = p.groups;
    if g == 0 {
        return Err(Error::param(op, name("groups"), "must be >= 1"));
    }
    let (n, c, o, cg) = (x[0], x[1], w[0], w[1]);
    if c % g != 0 {
        return Err(Error::param(op, name("groups"), format!("input channels {c} are not divisible by groups {g}")));
    }
    if o % g != 0 {
        return Err(Error::param(op, name("groups"), format!("output channels {o} are not divisible by groups {g}")));
    }
    if cg != c / g {
        return Err(Error::shape(op, wname, w, format!("[{o}, {} (C/groups), KT, KH, KW]", c / g)));
    }
    let mut out = [0usize; 3];
    let mut eff = [0usize; 3];
    let mut padded = [0usize; 3];
    for a in 0..3 {
        // Every term is at most MAX_GEOMETRY or a tensor dimension: no overflow.
        eff[a] = p.dilation[a] * (w[2 + a] - 1) + 1;
        padded[a] = x[2 + a] + p.padding[2 * a] + p.padding[2 * a + 1];
        if eff[a] <= padded[a] {
            out[a] = (padded[a] - eff[a]) / p.stride[a] + 1;
        }
    }
    if (0..3).any(|a| eff[a] > padded[a]) {
        return Err(Error::shape(
            op,
            wname,
            w,
            format!(
                "a (dilated) kernel {}x{}x{} no larger than the padded input {}x{}x{}",
                eff[0], eff[1], eff[2], padded[0], padded[1], padded[2]
            ),
        ));
    }
    Ok(Conv3dShape {
        n,
        c,
        t: x[2],
        h: x[3],
        w: x[4],
        o,
        kt: w[2],
        kh: w[3],
        kw: w[4],
        to: out[0],
        ho: out[1],
        wo: out[2],
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Conv3dGpuParams {
    n: u32,
    c: u32,
    t: u32,
    h: u32,
    w: u32,
    o: u32,
    to: u32,
    ho: u32,
    wo: u32,
    groups: u32,
    kt: u32,
    kh: u32,
    kw: u32,
    st: u32,
    sh: u32,
    sw: u32,
    pf: u32,
    pt: u32,
    pl: u32,
    dt: u32,
    dh: u32,
    dw: u32,
    cg: u32,
    og: u32,
    kdim: u32,
    m: u32,
    taps: u32,
    khw: u32,
    thw: u32,
    hw: u32,
    ohw: u32,
    othw: u32,
    otiles: u32,
    k_lo: u32,
    k_hi: u32,
    mode: u32,
}

const BM: usize = 128;
const BN: usize = 64;
/// The narrow GEMM's tile: 256 voxels by 32 channels.
const NARROW_BM: usize = 256;
const NARROW_BN: usize = 32;
/// The GEMM's reduction step (BK).
const BK: usize = 8;
/// SPLIT mode of every part but the first: add to what the output holds.
const SPLIT_ACC: u32 = 1;
/// Loop iterations counted per BK step of conv3d_gemm: the step itself, the gather (4; NARROW 8),
/// the weight loads (2; NARROW 1) and the multiply's BK loop, plus a margin for what a driver
/// leaves rolled (the layout is conv2d_gemm's, counted at 19 there with one more loop of 4).
const GEMM_STEP_ITERATIONS: usize = 19;
/// Iterations outside the reduction loop (the gather setup, the stores), as a fixed allowance.
const FIXED_ITERATIONS: usize = 64;

/// The kernel `Auto` picks for a shape.
pub fn pick_algo(s: &Conv3dShape, p: &Conv3dParams) -> Conv3dAlgo {
    match p.algo {
        Conv3dAlgo::Auto if s.o / p.groups <= DIRECT_MAX_OG => Conv3dAlgo::Direct,
        Conv3dAlgo::Auto if s.o / p.groups <= NARROW_BN => Conv3dAlgo::GemmNarrow,
        Conv3dAlgo::Auto => Conv3dAlgo::Gemm,
        a => a,
    }
}

/// How a reduction of `kdim` splits into dispatches within `budget` loop iterations per
/// invocation: one part where it fits; at least one step (GEMM) or tap (direct) a part.
fn split_parts(algo: Conv3dAlgo, kdim: usize, budget: usize) -> Vec<(usize, usize)> {
    let avail = budget.saturating_sub(FIXED_ITERATIONS);
    let per_part = match algo {
        Conv3dAlgo::Direct => avail.max(1),
        _ => (avail / GEMM_STEP_ITERATIONS).max(1) * BK,
    };
    chunks(kdim, per_part).collect()
}

/// y = act((conv3d(x, w) + bias) * scale + shift), shape [N, O, To, Ho, Wo].
pub fn conv3d(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv3dParams,
    epi: &Epilogue,
) -> Result<Tensor> {
    const OP: &str = "conv3d";
    x.expect_f32(OP, "input")?;
    w.expect_f32(OP, "weight")?;
    let s = conv3d_shape(x.shape(), w.shape(), p)?;
    epi.check(OP, bias, "bias", s.o)?;
    record(rec, OP, OP, x, w, bias, &s, p, epi)
}

/// Records a checked conv3d; `label` prefixes its dispatches' labels.
#[allow(clippy::too_many_arguments)]
fn record(
    rec: &mut Recorder,
    op: &'static str,
    label: &str,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    s: &Conv3dShape,
    p: &Conv3dParams,
    epi: &Epilogue,
) -> Result<Tensor> {
    let ctx = rec.context();
    let g = p.groups;
    let algo = pick_algo(s, p);
    let og = s.o / g;
    let taps = s.kt * s.kh * s.kw;
    let kdim = (s.c / g) * taps;
    let (ohw, othw) = (s.ho * s.wo, s.to * s.ho * s.wo);
    let m = s.n * othw;
    let narrow = algo == Conv3dAlgo::GemmNarrow;
    let (bm, bn) = if narrow { (NARROW_BM, NARROW_BN) } else { (BM, BN) };
    let otiles = og.div_ceil(bn);
    let (entry, groups) = match algo {
        Conv3dAlgo::Direct => ("conv3d_direct", super::elementwise_grid(ctx, m * s.o, op)?),
        _ => {
            let z = otiles * g;
            let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
            if z > max {
                return Err(Error::TooLarge {
                    op,
                    what: format!("{g} groups x {otiles} channel tiles"),
                    amount: z as u64,
                    unit: "workgroups",
                    limit: max as u64,
                    limit_name: "max_compute_workgroups_per_dimension",
                });
            }
            let [gx, gy, _] = ctx.grid_1d(m.div_ceil(bm) as u64, op)?;
            ("conv3d_gemm", [gx, gy, z as u32])
        }
    };
    let y = rec.alloc(op, &s.output(), DType::F32)?;
    let accesses = [Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite];
    let key = PipelineKey::new("conv3d", entry, &accesses).flag(ov::NARROW, narrow);
    let parts = split_parts(algo, kdim, rec.loop_budget() as usize);
    let split = parts.len() > 1;
    let with_epilogue = |key: PipelineKey| {
        epi.act.specialize(key.flag(ov::HAS_BIAS, bias.is_some()).flag(ov::HAS_AFFINE, epi.scale.is_some()))
    };
    let kernel = ctx.kernel(&if split { key.with(ov::SPLIT, 1.0) } else { with_epilogue(key) })?;
    let mut params = Conv3dGpuParams {
        n: s.n as u32,
        c: s.c as u32,
        t: s.t as u32,
        h: s.h as u32,
        w: s.w as u32,
        o: s.o as u32,
        to: s.to as u32,
        ho: s.ho as u32,
        wo: s.wo as u32,
        groups: g as u32,
        kt: s.kt as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        st: p.stride[0] as u32,
        sh: p.stride[1] as u32,
        sw: p.stride[2] as u32,
        pf: p.padding[0] as u32,
        pt: p.padding[2] as u32,
        pl: p.padding[4] as u32,
        dt: p.dilation[0] as u32,
        dh: p.dilation[1] as u32,
        dw: p.dilation[2] as u32,
        cg: (s.c / g) as u32,
        og: og as u32,
        kdim: kdim as u32,
        m: m as u32,
        taps: taps as u32,
        khw: (s.kh * s.kw) as u32,
        thw: (s.t * s.h * s.w) as u32,
        hw: (s.h * s.w) as u32,
        ohw: ohw as u32,
        othw: othw as u32,
        otiles: otiles as u32,
        k_lo: 0,
        k_hi: kdim as u32,
        mode: 0,
    };
    let buffers = [Some(x), Some(w), bias, epi.scale, epi.shift, Some(&y)];
    if !split {
        rec.dispatch(format!("{label}/{entry}"), kernel, bytemuck::bytes_of(&params), &buffers, groups)?;
        return Ok(y);
    }
    for (i, &(k_lo, k_hi)) in parts.iter().enumerate() {
        params.k_lo = k_lo as u32;
        params.k_hi = k_hi as u32;
        params.mode = if i > 0 { SPLIT_ACC } else { 0 };
        rec.dispatch(
            format!("{label}/{entry}"),
            kernel.clone(),
            bytemuck::bytes_of(&params),
            &[Some(x), Some(w), None, None, None, Some(&y)],
            groups,
        )?;
    }
    if bias.is_some() || epi.scale.is_some() || epi.act != Activation::Identity {
        let kernel = ctx.kernel(&with_epilogue(PipelineKey::new("conv3d", "conv3d_epilogue", &accesses)))?;
        let groups = super::elementwise_grid(ctx, m * s.o, op)?;
        rec.dispatch(format!("{label}/conv3d_epilogue"), kernel, bytemuck::bytes_of(&params), &buffers, groups)?;
    }
    Ok(y)
}

/// The two convs of a `Factorized3dCore` layer: `spatial` runs a `(1, kh, kw)` kernel, `temporal`
/// a `(kt, 1, 1)` kernel on the spatial conv's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Factorized3dParams {
    pub spatial: Conv3dParams,
    pub temporal: Conv3dParams,
}

/// Checks both convs of the factorized pair: the spatial weight [M, C/gs, 1, KH, KW] on the
/// input, the temporal weight [O, M/gt, KT, 1, 1] on the spatial output. Returns both shapes.
/// Errors name `spatial_weight`, `temporal_weight` and the parameters as `spatial.stride`,
/// `temporal.groups`, ...
pub fn factorized_shape(
    x: &[usize],
    ws: &[usize],
    wt: &[usize],
    p: &Factorized3dParams,
) -> Result<(Conv3dShape, Conv3dShape)> {
    const OP: &str = "factorized_conv3d";
    if ws.len() == 5 && ws[2] != 1 {
        return Err(Error::shape(OP, "spatial_weight", ws, "[M, C/groups, 1, KH, KW] (one frame)"));
    }
    if wt.len() == 5 && (wt[3] != 1 || wt[4] != 1) {
        return Err(Error::shape(OP, "temporal_weight", wt, "[O, M/groups, KT, 1, 1] (one pixel)"));
    }
    let a = shape_named(OP, "input", "spatial_weight", "spatial.", x, ws, &p.spatial)?;
    let b = shape_named(OP, "spatial output", "temporal_weight", "temporal.", &a.output(), wt, &p.temporal)?;
    Ok((a, b))
}

/// One `Factorized3dCore` layer, shape [N, O, To, Ho, Wo]:
/// `act((temporal(spatial(x) + spatial_bias) + temporal_bias) * scale + shift)`. Both convs are checked before anything is recorded; they
/// run as two conv3d dispatches (each with its bias fused, the second with the folded batch norm
/// and activation), the spatial output held in a buffer between them.
#[allow(clippy::too_many_arguments)]
pub fn factorized_conv3d(
    rec: &mut Recorder,
    x: &Tensor,
    spatial_w: &Tensor,
    spatial_b: Option<&Tensor>,
    temporal_w: &Tensor,
    temporal_b: Option<&Tensor>,
    p: &Factorized3dParams,
    epi: &Epilogue,
) -> Result<Tensor> {
    const OP: &str = "factorized_conv3d";
    x.expect_f32(OP, "input")?;
    spatial_w.expect_f32(OP, "spatial_weight")?;
    temporal_w.expect_f32(OP, "temporal_weight")?;
    let (a, b) = factorized_shape(x.shape(), spatial_w.shape(), temporal_w.shape(), p)?;
    if let Some(t) = spatial_b {
        expect_shape(OP, "spatial_bias", t, &[a.o])?;
    }
    epi.check(OP, temporal_b, "temporal_bias", b.o)?;
    let mid =
        record(rec, OP, "factorized_conv3d/spatial", x, spatial_w, spatial_b, &a, &p.spatial, &Epilogue::default())?;
    record(rec, OP, "factorized_conv3d/temporal", &mid, temporal_w, temporal_b, &b, &p.temporal, epi)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "conv3d",
        "Conv3dParams",
        Conv3dGpuParams,
        [
            n, c, t, h, w, o, to, ho, wo, groups, kt, kh, kw, st, sh, sw, pf, pt, pl, dt, dh, dw, cg, og, kdim, m,
            taps, khw, thw, hw, ohw, othw, otiles, k_lo, k_hi, mode
        ]
    )]
}
