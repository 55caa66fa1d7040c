//! Normalizing-flow couplings (shaders/flows.wgsl), nflows conventions (docs/ops.md, affine coupling,
//! rational-quadratic spline): the rational-quadratic spline with linear tails and the affine coupling, forward and
//! inverse, each one fused pass returning its log-determinant.

use super::finite;
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::flows as ov;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplineParams {
    pub inverse: bool,
    pub tail_bound: f32,
    pub min_bin_width: f32,
    pub min_bin_height: f32,
    pub min_derivative: f32,
}

impl Default for SplineParams {
    fn default() -> Self {
        SplineParams {
            inverse: false,
            tail_bound: 1.0,
            min_bin_width: 1e-3,
            min_bin_height: 1e-3,
            min_derivative: 1e-3,
        }
    }
}

/// The largest spline tail bound: past it the spline's f32 arithmetic (knots at 2·B·width, squared
/// and cubed heights) leaves f32's range, and the answer would differ from the reference's.
pub const MAX_TAIL_BOUND: f32 = 1e6;

impl SplineParams {
    /// Checks the parameters for K bins.
    pub fn validate(&self, k: usize) -> Result<()> {
        const OP: &str = "rq_spline";
        finite(OP, "tail_bound", self.tail_bound, true)?;
        if self.tail_bound > MAX_TAIL_BOUND {
            return Err(Error::param(OP, "tail_bound", format!("{:e} is past {MAX_TAIL_BOUND:e}", self.tail_bound)));
        }
        for (name, v) in [("min_bin_width", self.min_bin_width), ("min_bin_height", self.min_bin_height)] {
            finite(OP, name, v, false)?;
            if v < 0.0 || v * k as f32 >= 1.0 {
                return Err(Error::param(OP, name, format!("{v} must be >= 0 and below 1/K = {}", 1.0 / k as f32)));
            }
        }
        finite(OP, "min_derivative", self.min_derivative, false)?;
        if !(self.min_derivative >= 0.0 && self.min_derivative < 1.0) {
            return Err(Error::param(OP, "min_derivative", format!("{} must be in [0, 1)", self.min_derivative)));
        }
        Ok(())
    }
}

/// Checks the spline's shapes: input [..., D] (any leading dims), widths and heights [..., K],
/// derivatives [..., K−1]. Returns K.
pub(crate) fn spline_shapes(x: &[usize], w: &[usize], h: &[usize], d: &[usize]) -> Result<usize> {
    const OP: &str = "rq_spline";
    let k = *w.last().ok_or_else(|| Error::shape(OP, "widths", w, "[..., K]"))?;
    let expect = |what: &str, got: &[usize], last: usize| -> Result<()> {
        if got.len() != x.len() + 1 || got[..x.len()] != *x || got[x.len()] != last {
            let mut e: Vec<String> = x.iter().map(|v| v.to_string()).collect();
            e.push(last.to_string());
            return Err(Error::shape(OP, what, got, format!("[{}]", e.join(", "))));
        }
        Ok(())
    };
    if k < 2 {
        return Err(Error::shape(OP, "widths", w, "at least 2 bins"));
    }
    // The kernel carries the bin index in an f32 lane: exact up to 2^24.
    if k > 1 << 24 {
        return Err(Error::shape(OP, "widths", w, "at most 2^24 bins"));
    }
    expect("widths", w, k)?;
    expect("heights", h, k)?;
    expect("derivatives", d, k - 1)?;
    Ok(k)
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct RqParams {
    n: u32,
    k: u32,
    inverse: u32,
    /// The parameter rows R (read by the large-K path).
    rows: u32,
    bound: f32,
    min_w: f32,
    min_h: f32,
    min_d: f32,
    d: u32,
    t: u32,
    _q: [u32; 2],
}

const RQ_BINDINGS: [Access; 7] =
    [Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite, Access::Read];

/// The unconstrained rational-quadratic spline (tails linear outside [−B, B]) of every element of
/// x: returns (output, log|det|) elementwise, both of x's shape.
pub fn rq_spline(
    rec: &mut Recorder,
    x: &Tensor,
    widths: &Tensor,
    heights: &Tensor,
    derivatives: &Tensor,
    p: &SplineParams,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "rq_spline";
    for (t, name) in [(x, "input"), (widths, "widths"), (heights, "heights"), (derivatives, "derivatives")] {
        t.expect_f32(OP, name)?;
    }
    let k = spline_shapes(x.shape(), widths.shape(), heights.shape(), derivatives.shape())?;
    p.validate(k)?;
    record_spline(rec, OP, x, [widths, heights, derivatives], k, p, None)
}

/// Packs the spline's parameters and records it; `coupling` = (D, T, feature map) for a coupling.
fn record_spline(
    rec: &mut Recorder,
    op: &'static str,
    x: &Tensor,
    wdh: [&Tensor; 3],
    k: usize,
    p: &SplineParams,
    coupling: Option<(usize, usize, &Tensor)>,
) -> Result<(Tensor, Tensor)> {
    let ctx = rec.context();
    let (d, t) = coupling.as_ref().map_or((0, 0), |c| (c.0, c.1));
    let params = RqParams {
        n: x.numel() as u32,
        k: k as u32,
        inverse: p.inverse as u32,
        bound: p.tail_bound,
        min_w: p.min_bin_width,
        min_h: p.min_bin_height,
        min_d: p.min_derivative,
        d: d as u32,
        t: t as u32,
        ..Default::default()
    };
    let groups = super::elementwise_grid(ctx, x.numel(), op)?;
    let y = rec.alloc(op, x.shape(), DType::F32)?;
    let lad = rec.alloc(op, x.shape(), DType::F32)?;
    let map = coupling.map(|c| c.2);
    let cpl = coupling.is_some() as u8 as f64;
    // One invocation of the fused kernel runs rq_bin's three loops over the K bins twice. Past the
    // loop budget the knots are built first, per row and in chunks of bins across dispatches.
    let fused = 6u64.saturating_mul(k as u64) <= rec.loop_budget();
    if fused {
        let kernel = ctx.kernel(&PipelineKey::new("flows", "rq_spline", &RQ_BINDINGS).with(ov::COUPLING, cpl))?;
        rec.dispatch(
            op,
            kernel,
            bytemuck::bytes_of(&params),
            &[Some(x), Some(wdh[0]), Some(wdh[1]), Some(wdh[2]), Some(&y), Some(&lad), map],
            groups,
        )?;
        return Ok((y, lad));
    }
    // The parameter rows: one per element, or N·T in a coupling.
    let rows = if coupling.is_some() { (x.numel() / d.max(1)) * t } else { x.numel() };
    // The knots' flat indices (2R·K·2) are u32 in the kernels.
    let words = (rows as u64).checked_mul(4).and_then(|v| v.checked_mul(k as u64));
    if words.is_none_or(|v| v > u32::MAX as u64) {
        return Err(Error::param(op, "bins", format!("{k} bins of {rows} rows: the knot table is past 2^32 entries")));
    }
    let state = rec.alloc(op, &[2 * rows, 6], DType::F32)?;
    let knots = rec.alloc(op, &[2, rows, k, 2], DType::F32)?;
    let kk = ctx.kernel(&PipelineKey::new(
        "flows",
        "rq_knots",
        &[Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite],
    ))?;
    let kgroups = super::elementwise_grid(ctx, 2 * rows, op)?;
    let per = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    for stage in 0..3u32 {
        for (c, (lo, hi)) in crate::runtime::chunks(k, per).enumerate() {
            let kp = KnotParams {
                rows: rows as u32,
                k: k as u32,
                lo: lo as u32,
                hi: hi as u32,
                stage,
                first: (c == 0) as u32,
                min_w: p.min_bin_width,
                min_h: p.min_bin_height,
            };
            rec.dispatch(
                format!("{op}/knots"),
                kk.clone(),
                bytemuck::bytes_of(&kp),
                &[Some(wdh[0]), Some(wdh[1]), Some(&state), Some(&knots)],
                kgroups,
            )?;
        }
    }
    let mut bindings = RQ_BINDINGS.to_vec();
    bindings.push(Access::Read);
    let kernel = ctx.kernel(&PipelineKey::new("flows", "rq_spline_knots", &bindings).with(ov::COUPLING, cpl))?;
    let params = RqParams { rows: rows as u32, ..params };
    rec.dispatch(
        op,
        kernel,
        bytemuck::bytes_of(&params),
        &[Some(x), Some(wdh[0]), Some(wdh[1]), Some(wdh[2]), Some(&y), Some(&lad), map, Some(&knots)],
        groups,
    )?;
    Ok((y, lad))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct KnotParams {
    rows: u32,
    k: u32,
    lo: u32,
    hi: u32,
    stage: u32,
    first: u32,
    min_w: f32,
    min_h: f32,
}

/// A coupling's mask on the host and, on the device, its feature map (feature j → its index
/// among the transformed features, or −1). A model makes it once at load time; the `&[bool]`
/// forms of the coupling ops make one per call.
pub struct FeatureMask {
    mask: Vec<bool>,
    map: Tensor,
}

impl FeatureMask {
    pub fn new(ctx: &crate::runtime::Context, mask: &[bool]) -> Result<FeatureMask> {
        Ok(FeatureMask { mask: mask.to_vec(), map: feature_map(ctx, mask)? })
    }

    pub fn mask(&self) -> &[bool] {
        &self.mask
    }
}

/// A spline coupling on x [N, D]: the features where `mask` is true (T of them, in order) go
/// through the spline with parameters widths/heights [N, T, K] and derivatives [N, T, K−1]; the
/// others are copied. Returns (output [N, D], log|det| per element [N, D], 0 on copied features).
pub fn rq_spline_coupling(
    rec: &mut Recorder,
    x: &Tensor,
    widths: &Tensor,
    heights: &Tensor,
    derivatives: &Tensor,
    mask: &[bool],
    p: &SplineParams,
) -> Result<(Tensor, Tensor)> {
    // Checked before the map is made, so a bad mask gets the coupling's message.
    spline_coupling_shapes(x.shape(), widths.shape(), heights.shape(), derivatives.shape(), mask)?;
    let m = FeatureMask::new(rec.context(), mask)?;
    rq_spline_coupling_masked(rec, x, widths, heights, derivatives, &m, p)
}

/// Checks a spline coupling's shapes: x [N, D], a mask of D transforming T ≥ 1 features,
/// parameters [N, T, K] and [N, T, K − 1]. Returns (D, T, K).
fn spline_coupling_shapes(
    x: &[usize],
    w: &[usize],
    h: &[usize],
    dv: &[usize],
    mask: &[bool],
) -> Result<(usize, usize, usize)> {
    const OP: &str = "rq_spline_coupling";
    let (n, d) = match *x {
        [n, d] => (n, d),
        _ => return Err(Error::shape(OP, "input", x, "[N, D]")),
    };
    if mask.len() != d {
        return Err(Error::shape(OP, "mask", &[mask.len()], format!("[{d}]")));
    }
    let t = mask.iter().filter(|&&m| m).count();
    if t == 0 {
        return Err(Error::param(OP, "mask", "transforms no feature"));
    }
    Ok((d, t, spline_shapes(&[n, t], w, h, dv)?))
}

/// [`rq_spline_coupling`] with a prepared [`FeatureMask`].
pub fn rq_spline_coupling_masked(
    rec: &mut Recorder,
    x: &Tensor,
    widths: &Tensor,
    heights: &Tensor,
    derivatives: &Tensor,
    fm: &FeatureMask,
    p: &SplineParams,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "rq_spline_coupling";
    for (t, name) in [(x, "input"), (widths, "widths"), (heights, "heights"), (derivatives, "derivatives")] {
        t.expect_f32(OP, name)?;
    }
    let (d, t, k) = spline_coupling_shapes(x.shape(), widths.shape(), heights.shape(), derivatives.shape(), fm.mask())?;
    p.validate(k)?;
    record_spline(rec, OP, x, [widths, heights, derivatives], k, p, Some((d, t, &fm.map)))
}

/// Feature j → its index among the transformed features, or −1: an i32 table on the device (its
/// bits travel in an f32 tensor).
fn feature_map(ctx: &crate::runtime::Context, mask: &[bool]) -> Result<Tensor> {
    let mut next = 0i32;
    let map: Vec<i32> = mask
        .iter()
        .map(|&m| {
            if m {
                next += 1;
                next - 1
            } else {
                -1
            }
        })
        .collect();
    Tensor::from_f32(ctx, bytemuck::cast_slice(&map), &[mask.len()])
}

/// The column ranges of a per-row loop over `cols`, each within the loop budget, with its `part`
/// bits (1: the first, 2: the last): one range (part 3) for every normal row length.
fn row_parts(rec: &Recorder, cols: usize) -> Vec<(u32, u32, u32)> {
    let per = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    let mut r: Vec<(usize, usize)> = crate::runtime::chunks(cols, per).collect();
    if r.is_empty() {
        r.push((0, 0));
    }
    let last = r.len() - 1;
    r.iter()
        .enumerate()
        .map(|(k, &(lo, hi))| (lo as u32, hi as u32, (k == 0) as u32 | (((k == last) as u32) << 1)))
        .collect()
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowSumParams {
    rows: u32,
    cols: u32,
    has_acc: u32,
    part: u32,
    scale: f32,
    constant: f32,
    lo: u32,
    hi: u32,
}

/// acc + scale·Σ over the last axis of v [N, C] + constant (acc [N], optional): [N]. A flow's
/// running log-det; `constant` carries the log-dets that do not depend on x (ActNorm's).
pub fn row_sum_add(rec: &mut Recorder, v: &Tensor, acc: Option<&Tensor>, scale: f32, constant: f32) -> Result<Tensor> {
    const OP: &str = "row_sum_add";
    v.expect_f32(OP, "input")?;
    let (n, c) = match v.shape() {
        &[n, c] => (n, c),
        &[n] => (n, 1),
        s => return Err(Error::shape(OP, "input", s, "[N, C] or [N]")),
    };
    if let Some(a) = acc {
        crate::ops::expect_shape(OP, "acc", a, &[n])?;
    }
    let ctx = rec.context();
    crate::ops::finite(OP, "scale", scale, false)?;
    crate::ops::finite(OP, "constant", constant, false)?;
    let kernel =
        ctx.kernel(&PipelineKey::new("flows", "row_sum_add", &[Access::Read, Access::Read, Access::ReadWrite]))?;
    let groups = super::elementwise_grid(ctx, n, OP)?;
    let y = rec.alloc(OP, &[n], DType::F32)?;
    // A row longer than the loop budget is summed in column chunks, one dispatch each.
    for (lo, hi, part) in row_parts(rec, c) {
        let p = RowSumParams {
            rows: n as u32,
            cols: c as u32,
            has_acc: acc.is_some() as u32,
            part,
            scale,
            constant,
            lo,
            hi,
        };
        rec.dispatch(OP, kernel.clone(), bytemuck::bytes_of(&p), &[Some(v), acc, Some(&y)], groups)?;
    }
    Ok(y)
}

/// Checks an affine coupling's shapes: x [N, D], mask of D, shift and scale_raw [N, T] for the T
/// features the mask transforms. Returns T.
pub(crate) fn affine_shapes(x: &[usize], shift: &[usize], scale_raw: &[usize], mask: &[bool]) -> Result<usize> {
    const OP: &str = "affine_coupling";
    if x.len() != 2 || x.contains(&0) {
        return Err(Error::shape(OP, "input", x, "[N, D]"));
    }
    let (n, d) = (x[0], x[1]);
    if mask.len() != d {
        return Err(Error::shape(OP, "mask", &[mask.len()], format!("[{d}]")));
    }
    let t = mask.iter().filter(|&&m| m).count();
    if t == 0 {
        return Err(Error::param(OP, "mask", "transforms no feature"));
    }
    for (s, name) in [(shift, "shift"), (scale_raw, "scale_raw")] {
        if s != [n, t] {
            return Err(Error::shape(OP, name, s, format!("[{n}, {t}] ({t} transformed features)")));
        }
    }
    Ok(t)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AffineParams {
    n: u32,
    d: u32,
    t: u32,
    inverse: u32,
    lo: u32,
    hi: u32,
    part: u32,
    _p: u32,
}

/// Affine coupling on x [N, D]: the features where `mask` is true (T of them, in order) are
/// transformed with shift [N, T] and scale = sigmoid(scale_raw [N, T] + 2) + 1e-3; the others are
/// copied. Returns (output [N, D], logdet [N]).
pub fn affine_coupling(
    rec: &mut Recorder,
    x: &Tensor,
    shift: &Tensor,
    scale_raw: &Tensor,
    mask: &[bool],
    inverse: bool,
) -> Result<(Tensor, Tensor)> {
    // Checked before the map is made, so a bad mask gets the coupling's message.
    affine_shapes(x.shape(), shift.shape(), scale_raw.shape(), mask)?;
    let m = FeatureMask::new(rec.context(), mask)?;
    affine_coupling_masked(rec, x, shift, scale_raw, &m, inverse)
}

/// [`affine_coupling`] with a prepared [`FeatureMask`].
pub fn affine_coupling_masked(
    rec: &mut Recorder,
    x: &Tensor,
    shift: &Tensor,
    scale_raw: &Tensor,
    fm: &FeatureMask,
    inverse: bool,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "affine_coupling";
    let mask = fm.mask();
    x.expect_f32(OP, "input")?;
    shift.expect_f32(OP, "shift")?;
    scale_raw.expect_f32(OP, "scale_raw")?;
    let t = affine_shapes(x.shape(), shift.shape(), scale_raw.shape(), mask)?;
    let (n, d) = (x.shape()[0], x.shape()[1]);
    let ctx = rec.context();
    let bindings = [Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];
    let kernel = ctx.kernel(&PipelineKey::new("flows", "affine_coupling", &bindings))?;
    let groups = super::elementwise_grid(ctx, n, OP)?;
    let y = rec.alloc(OP, x.shape(), DType::F32)?;
    let logdet = rec.alloc(OP, &[n], DType::F32)?;
    // A row of more features than the loop budget goes in feature chunks, one dispatch each.
    for (lo, hi, part) in row_parts(rec, d) {
        let params =
            AffineParams { n: n as u32, d: d as u32, t: t as u32, inverse: inverse as u32, lo, hi, part, _p: 0 };
        rec.dispatch(
            OP,
            kernel.clone(),
            bytemuck::bytes_of(&params),
            &[Some(x), Some(shift), Some(scale_raw), Some(&fm.map), Some(&y), Some(&logdet)],
            groups,
        )?;
    }
    Ok((y, logdet))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActnormParams {
    total: u32,
    features: u32,
    inverse: u32,
    _p: u32,
}

/// ActNorm over the last axis of x [..., F]: y = exp(log_s)·x + b (inverse: (y − b)·exp(−log_s)).
/// Its log-det per row does not depend on x: Σ log_s (negated for the inverse), times H·W for
/// images; [`actnorm_logdet`] computes it from the host's log_s.
pub fn actnorm(rec: &mut Recorder, x: &Tensor, log_s: &Tensor, b: &Tensor, inverse: bool) -> Result<Tensor> {
    const OP: &str = "actnorm";
    x.expect_f32(OP, "input")?;
    let f = *x.shape().last().ok_or_else(|| Error::shape(OP, "input", x.shape(), "[..., F]"))?;
    crate::ops::expect_shape(OP, "log_s", log_s, &[f])?;
    crate::ops::expect_shape(OP, "bias", b, &[f])?;
    let ctx = rec.context();
    let p = ActnormParams { total: x.numel() as u32, features: f as u32, inverse: inverse as u32, _p: 0 };
    let kernel = ctx.kernel(&PipelineKey::new(
        "flows",
        "actnorm",
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    ))?;
    let groups = super::elementwise_grid(ctx, x.numel(), OP)?;
    let y = rec.alloc(OP, x.shape(), DType::F32)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(log_s), Some(b), Some(&y)], groups)?;
    Ok(y)
}

/// The per-row log-det of ActNorm: Σ log_s · positions, negated for the inverse.
pub fn actnorm_logdet(log_s: &[f32], positions: usize, inverse: bool) -> f64 {
    let s: f64 = log_s.iter().map(|&v| v as f64).sum::<f64>() * positions as f64;
    if inverse {
        -s
    } else {
        s
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LogpParams {
    rows: u32,
    d: u32,
    add: u32,
    constant: f32,
    lo: u32,
    hi: u32,
    part: u32,
    _p: u32,
}

/// The standard-normal log-density of each row of x [N, D], + `add` [N] and `constant` (a flow's
/// log-det): [N].
pub fn normal_logprob(rec: &mut Recorder, x: &Tensor, add: Option<&Tensor>, constant: f32) -> Result<Tensor> {
    const OP: &str = "normal_logprob";
    x.expect_f32(OP, "input")?;
    let (n, d) = match x.shape() {
        &[n, d] => (n, d),
        s => return Err(Error::shape(OP, "input", s, "[N, D]")),
    };
    if let Some(a) = add {
        crate::ops::expect_shape(OP, "add", a, &[n])?;
    }
    let ctx = rec.context();
    crate::ops::finite(OP, "constant", constant, false)?;
    let kernel =
        ctx.kernel(&PipelineKey::new("flows", "normal_logprob", &[Access::Read, Access::Read, Access::ReadWrite]))?;
    let groups = super::elementwise_grid(ctx, n, OP)?;
    let y = rec.alloc(OP, &[n], DType::F32)?;
    // A row longer than the loop budget is summed in column chunks, one dispatch each.
    for (lo, hi, part) in row_parts(rec, d) {
        let p = LogpParams { rows: n as u32, d: d as u32, add: add.is_some() as u32, constant, lo, hi, part, _p: 0 };
        rec.dispatch(OP, kernel.clone(), bytemuck::bytes_of(&p), &[Some(x), add, Some(&y)], groups)?;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!(
            "flows",
            "SplineParams",
            RqParams,
            [n, k, inverse, rows, bound, min_w, min_h, min_d, d, t, _q]
        ),
        super::params_layout!("flows", "KnotParams", KnotParams, [rows, k, lo, hi, stage, first, min_w, min_h]),
        super::params_layout!(
            "flows",
            "RowSumParams",
            RowSumParams,
            [rows, cols, has_acc, part, scale, constant, lo, hi]
        ),
        super::params_layout!("flows", "AffineParams", AffineParams, [n, d, t, inverse, lo, hi, part, _p]),
        super::params_layout!("flows", "ActnormParams", ActnormParams, [total, features, inverse, _p]),
        super::params_layout!("flows", "LogpParams", LogpParams, [rows, d, add, constant, lo, hi, part, _p]),
    ]
}
