//! Divisive normalization (Ren et al. 2017, unified form; docs/ops.md, divisive normalization), fused: a local field is
//! one pass (`dn_local`: statistics, both window sums and the output of a tile in workgroup
//! memory) where the windows fit its tile, else five small dispatches of which two read x
//! (per-pixel channel statistics; the apply pass); the batch and layer fields take two (group
//! moments, a global reduction; apply).

use super::box_filter::{before, pass as box_pass};
use super::{expect_shape, finite, Activation};
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::divisive_norm as ov;
use crate::tensor::{DType, Tensor};

/// Which units a unit is normalized over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnField {
    /// Spatial windows around each pixel, across all channels of one example (the reference code's DN).
    Local,
    /// Per channel over N, H, W (BN-s).
    Batch,
    /// Per example over C, H, W (LN-s).
    Layer,
}

/// What the local suppression sum is divided by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupDivisor {
    /// The summation window's area: what the reference code does.
    SumWindow,
    /// The suppression window's own area (a true mean).
    SupWindow,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DivNormParams {
    pub field: DnField,
    /// Summation window (h, w) of the local field.
    pub sum_window: [usize; 2],
    /// Suppression window (h, w) of the local field.
    pub sup_window: [usize; 2],
    /// The smoothing term: eps = sigma².
    pub sigma: f32,
    pub sup_divisor: SupDivisor,
    pub act: Activation,
    /// Also compute α · mean |v| (the sparse L1 regularizer).
    pub l1_alpha: Option<f32>,
    /// Also return v = x − μ.
    pub centered: bool,
}

impl Default for DivNormParams {
    fn default() -> Self {
        DivNormParams {
            field: DnField::Local,
            sum_window: [3, 3],
            sup_window: [3, 3],
            sigma: 1.0,
            sup_divisor: SupDivisor::SumWindow,
            act: Activation::Identity,
            l1_alpha: None,
            centered: false,
        }
    }
}

impl DivNormParams {
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "divisive_norm";
        crate::ops::geometry(OP, "sum_window", &self.sum_window)?;
        crate::ops::geometry(OP, "sup_window", &self.sup_window)?;
        if self.sum_window.contains(&0) {
            return Err(Error::param(OP, "sum_window", format!("{:?} must be >= 1 in each axis", self.sum_window)));
        }
        if self.sup_window.contains(&0) {
            return Err(Error::param(OP, "sup_window", format!("{:?} must be >= 1 in each axis", self.sup_window)));
        }
        finite(OP, "sigma", self.sigma, false)?;
        if let Some(a) = self.l1_alpha {
            finite(OP, "l1_alpha", a, false)?;
        }
        self.act.validate()
    }

    /// The divisor of the local suppression sum.
    pub fn divisor(&self) -> f32 {
        let w = match self.sup_divisor {
            SupDivisor::SumWindow => self.sum_window,
            SupDivisor::SupWindow => self.sup_window,
        };
        (w[0] * w[1]) as f32
    }
}

/// What divisive normalization gives back.
pub struct DivNormOutput {
    pub output: Tensor,
    /// v = x − μ, when asked for.
    pub centered: Option<Tensor>,
    /// [1]: α · mean |v|, when asked for.
    pub l1: Option<Tensor>,
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct DnParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    hw: u32,
    pixels: u32,
    total: u32,
    kh: u32,
    before_h: u32,
    scale: f32,
    sigma2: f32,
    _p: u32,
    g_div: u32,
    g_mod: u32,
    groups: u32,
    g_stride: u32,
    o_count: u32,
    o_stride: u32,
    inner: u32,
    count: u32,
    sum_h: u32,
    sum_w: u32,
    sup_h: u32,
    sup_w: u32,
    sb_h: u32,
    sb_w: u32,
    pb_h: u32,
    pb_w: u32,
    tiles_x: u32,
    tiles: u32,
    mu_scale: f32,
    s2_scale: f32,
    c_lo: u32,
    c_hi: u32,
    first: u32,
    last: u32,
    l1_off: u32,
    slices: u32,
    slice: u32,
    _q: u32,
}

/// How a local field runs. `Auto` takes the one-pass kernel where the windows fit its tile: it
/// recomputes the halo's statistics (from the cache) to read x from memory once instead of twice,
/// a trade for memory-bound GPUs. On lavapipe the two are within its noise (2.2–4.1 ms against
/// 3.0–3.8 ms on [4, 64, 28, 56] with 5×5 windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LocalPath {
    #[default]
    Auto,
    /// `dn_local`, refused where no tile fits.
    OnePass,
    /// The five dispatches with box_filter.wgsl between (any window size).
    Separable,
}

// dn_local's workgroup memory (the WGSL arrays' sizes, in f32).
const DL_M_CAP: usize = 1280;
const DL_Q_CAP: usize = 960;

/// dn_local's tile (rows, columns) for an image and windows: of the tiles whose regions fit (each
/// shrunk to split the image evenly), the one that computes the fewest per-pixel statistics in all
/// (halos and overhang included), the larger on ties; None where none fits.
pub fn local_tile(h: usize, w: usize, sum: [usize; 2], sup: [usize; 2]) -> Option<(usize, usize)> {
    let mut best: Option<((usize, usize), usize)> = None;
    for (th, tw) in [(16, 32), (8, 64), (8, 32), (16, 16), (4, 64), (8, 16), (4, 32), (4, 16), (4, 8), (2, 8)] {
        let (th, tw) = (h.div_ceil(h.div_ceil(th)), w.div_ceil(w.div_ceil(tw)));
        let (qh, qw) = (th + sup[0] - 1, tw + sup[1] - 1);
        let (mh, mw) = (qh + sum[0] - 1, qw + sum[1] - 1);
        if mh * mw > DL_M_CAP || qh * qw > DL_Q_CAP {
            continue;
        }
        let work = h.div_ceil(th) * w.div_ceil(tw) * mh * mw;
        if best.is_none_or(|(_, b)| work < b) {
            best = Some(((th, tw), work));
        }
    }
    best.map(|(t, _)| t)
}

/// The loop iterations one invocation of dn_local runs with tile (th, tw) over c channels: the
/// statistics of the M region's pixels (c channels each), the summation window of the Q
/// region's, the suppression window and the c outputs of the tile's.
pub fn local_iterations(c: usize, tile: (usize, usize), sum: [usize; 2], sup: [usize; 2]) -> u64 {
    let (th, tw) = tile;
    let (qh, qw) = (th + sup[0] - 1, tw + sup[1] - 1);
    let (mh, mw) = (qh + sum[0] - 1, qw + sum[1] - 1);
    let per = |cells: usize, inner: usize| cells.div_ceil(256) as u64 * (1 + inner as u64);
    per(mh * mw, c) + per(qh * qw, sum[0] * (sum[1] + 1)) + per(th * tw, sup[0] * (sup[1] + 1) + c) + 8
}

const BINDINGS: [Access; 8] = [
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::Read,
    Access::ReadWrite,
    Access::ReadWrite,
    Access::ReadWrite,
];

/// Divisive normalization of x [N, C, H, W] with optional per-channel γ and β.
pub fn divisive_norm(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    p: &DivNormParams,
) -> Result<DivNormOutput> {
    divisive_norm_with(rec, x, gamma, beta, p, LocalPath::Auto)
}

/// [`divisive_norm`] with the local field's path chosen (tests and benchmarks compare them).
pub fn divisive_norm_with(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    p: &DivNormParams,
    path: LocalPath,
) -> Result<DivNormOutput> {
    rec.atomic(|rec| divisive_norm_unit(rec, x, gamma, beta, p, path))
}

fn divisive_norm_unit(
    rec: &mut Recorder,
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    p: &DivNormParams,
    path: LocalPath,
) -> Result<DivNormOutput> {
    const OP: &str = "divisive_norm";
    x.expect_f32(OP, "input")?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(OP, "input", s, "[N, C, H, W]"));
    }
    p.validate()?;
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    if let Some(g) = gamma {
        expect_shape(OP, "gamma", g, &[c])?;
    }
    if let Some(b) = beta {
        expect_shape(OP, "beta", b, &[c])?;
    }
    let ctx = rec.context();
    let hw = h * w;
    let pixels = n * hw;
    let total = x.numel();
    let base = DnParams {
        n: n as u32,
        c: c as u32,
        h: h as u32,
        w: w as u32,
        hw: hw as u32,
        pixels: pixels as u32,
        total: total as u32,
        sigma2: p.sigma * p.sigma,
        c_hi: c as u32,
        first: 1,
        last: 1,
        ..Default::default()
    };
    let budget = rec.loop_budget();
    // The path concerns the local field only.
    let tile = if p.field == DnField::Local { local_tile(h, w, p.sum_window, p.sup_window) } else { None };
    let one_pass = match (path, tile) {
        (LocalPath::OnePass, None) if p.field == DnField::Local => {
            return Err(Error::param(
                OP,
                "path",
                format!(
                    "windows {:?} and {:?} are too large for the one-pass kernel's tile",
                    p.sum_window, p.sup_window
                ),
            ))
        }
        (LocalPath::Separable, _) => None,
        (_, t) => t,
    };
    // Where the one-pass kernel would loop past the budget (many channels), the separable path
    // takes the channels in pieces.
    let one_pass = match one_pass {
        Some(t) if local_iterations(c, t, p.sum_window, p.sup_window) > budget => {
            if path == LocalPath::OnePass {
                return Err(Error::param(
                    OP,
                    "path",
                    format!(
                        "the one-pass kernel would loop {} times per invocation over {c} channels, past the \
                         loop budget {budget}; the separable path takes any channel count",
                        local_iterations(c, t, p.sum_window, p.sup_window)
                    ),
                ));
            }
            None
        }
        t => t,
    };
    let key = |entry: &'static str| {
        let k = PipelineKey::new("divisive_norm", entry, &BINDINGS)
            .flag(ov::WRITE_CENTERED, p.centered)
            .flag(ov::L1, p.l1_alpha.is_some())
            .flag(ov::GAMMA, gamma.is_some())
            .flag(ov::BETA, beta.is_some());
        p.act.specialize(k)
    };
    let y = rec.alloc(OP, s, DType::F32)?;
    let v = if p.centered { Some(rec.alloc(OP, s, DType::F32)?) } else { None };
    let apply_groups;
    match p.field {
        DnField::Local if one_pass.is_some() => {
            let (th, tw) = one_pass.expect("matched");
            let tiles_x = w.div_ceil(tw);
            let tiles = h.div_ceil(th) * tiles_x;
            let pl = DnParams {
                sum_h: p.sum_window[0] as u32,
                sum_w: p.sum_window[1] as u32,
                sup_h: p.sup_window[0] as u32,
                sup_w: p.sup_window[1] as u32,
                sb_h: before(p.sum_window[0]) as u32,
                sb_w: before(p.sum_window[1]) as u32,
                pb_h: before(p.sup_window[0]) as u32,
                pb_w: before(p.sup_window[1]) as u32,
                tiles_x: tiles_x as u32,
                tiles: tiles as u32,
                mu_scale: 1.0 / (p.sum_window[0] * p.sum_window[1]) as f32,
                s2_scale: 1.0 / p.divisor(),
                ..base
            };
            let groups = ctx.grid_1d((tiles * n) as u64, OP)?;
            // One partial per tile (grid padding past them returns at once).
            let partials = l1_partials(rec, p, tiles * n)?;
            let k = key("dn_local").with(ov::TH, th as f64).with(ov::TW, tw as f64);
            rec.dispatch(
                "divisive_norm/local",
                ctx.kernel(&k)?,
                bytemuck::bytes_of(&pl),
                &[Some(x), None, None, gamma, beta, Some(&y), v.as_ref(), partials.as_ref()],
                groups,
            )?;
            let l1 = l1_final(rec, p, partials, total, &key)?;
            Ok(DivNormOutput { output: y, centered: v, l1 })
        }
        DnField::Local => {
            let plane = [n, h, w];
            let px_groups = super::elementwise_grid(ctx, pixels, OP)?;
            let m = rec.alloc(OP, &plane, DType::F32)?;
            let varc = rec.alloc(OP, &plane, DType::F32)?;
            // The channels in pieces of at most the budget.
            let pieces = channel_pieces(c, budget);
            let stats = ctx.kernel(&key("dn_stats"))?;
            for (i, &(lo, hi)) in pieces.iter().enumerate() {
                let ps = DnParams {
                    c_lo: lo as u32,
                    c_hi: hi as u32,
                    first: (i == 0) as u32,
                    last: (i + 1 == pieces.len()) as u32,
                    ..base
                };
                rec.dispatch(
                    "divisive_norm/stats",
                    stats.clone(),
                    bytemuck::bytes_of(&ps),
                    &[Some(x), None, None, None, None, Some(&m), Some(&varc), None],
                    px_groups,
                )?;
            }
            let rm = box_pass(rec, &m, plane, p.sum_window[1], 1.0, false, false)?;
            // A window taller than half the budget: its column sums in a box pass of their own
            // (in pieces), and the kernels' column loop becomes one row.
            let (rm, sum_kh) = tall_window(rec, rm, plane, p.sum_window[0], budget)?;
            let mu = rec.alloc(OP, &plane, DType::F32)?;
            let q = rec.alloc(OP, &plane, DType::F32)?;
            let pm = DnParams {
                kh: sum_kh as u32,
                before_h: before(sum_kh) as u32,
                scale: 1.0 / (p.sum_window[0] * p.sum_window[1]) as f32,
                ..base
            };
            rec.dispatch(
                "divisive_norm/mu_q",
                ctx.kernel(&key("dn_mu_q"))?,
                bytemuck::bytes_of(&pm),
                &[Some(&varc), Some(&rm), Some(&m), None, None, Some(&mu), Some(&q), None],
                px_groups,
            )?;
            let rq = box_pass(rec, &q, plane, p.sup_window[1], 1.0, false, false)?;
            let (rq, sup_kh) = tall_window(rec, rq, plane, p.sup_window[0], budget)?;
            apply_groups = px_groups;
            // The channels in pieces within what the column loop leaves of the budget.
            let col_loop = sup_kh.min(h) as u64;
            let pieces = channel_pieces(c, budget - col_loop);
            let wgs = (apply_groups[0] * apply_groups[1]) as usize;
            let partials = l1_partials(rec, p, wgs * pieces.len())?;
            let apply = ctx.kernel(&key("dn_apply_local"))?;
            for (i, &(lo, hi)) in pieces.iter().enumerate() {
                let pa = DnParams {
                    kh: sup_kh as u32,
                    before_h: before(sup_kh) as u32,
                    scale: 1.0 / p.divisor(),
                    c_lo: lo as u32,
                    c_hi: hi as u32,
                    l1_off: (i * wgs) as u32,
                    ..base
                };
                rec.dispatch(
                    "divisive_norm/apply",
                    apply.clone(),
                    bytemuck::bytes_of(&pa),
                    &[Some(x), Some(&rq), Some(&mu), gamma, beta, Some(&y), v.as_ref(), partials.as_ref()],
                    apply_groups,
                )?;
            }
            let l1 = l1_final(rec, p, partials, total, &key)?;
            Ok(DivNormOutput { output: y, centered: v, l1 })
        }
        DnField::Batch | DnField::Layer => {
            let pg = if p.field == DnField::Batch {
                DnParams {
                    g_div: hw as u32,
                    g_mod: c as u32,
                    groups: c as u32,
                    g_stride: hw as u32,
                    o_count: n as u32,
                    o_stride: (c * hw) as u32,
                    inner: hw as u32,
                    ..base
                }
            } else {
                DnParams {
                    g_div: (c * hw) as u32,
                    g_mod: n as u32,
                    groups: n as u32,
                    g_stride: (c * hw) as u32,
                    o_count: 1,
                    o_stride: 0,
                    inner: (c * hw) as u32,
                    ..base
                }
            };
            let stats = rec.alloc(OP, &[pg.groups as usize, 2], DType::F32)?;
            let mg = ctx.grid_1d(pg.groups as u64, OP)?;
            let len = pg.o_count as usize * pg.inner as usize;
            if 2 * (len as u64).div_ceil(256) <= budget {
                rec.dispatch(
                    "divisive_norm/moments",
                    ctx.kernel(&key("dn_moments"))?,
                    bytemuck::bytes_of(&pg),
                    &[Some(x), None, None, None, None, Some(&stats), None, None],
                    mg,
                )?;
            } else {
                // Groups past the budget: slices of a group in workgroups of their own.
                let split = super::norm::RowSplit::new(OP, "input", len, budget)?;
                let ps = DnParams { slices: split.slices as u32, slice: split.slice as u32, ..pg };
                let groups = pg.groups as usize;
                let part = rec.alloc(OP, &[groups, split.slices, 2], DType::F32)?;
                let sg = ctx.grid_1d((groups * split.slices) as u64, OP)?;
                for entry in ["dn_moments_sum_split", "dn_moments_sq_split"] {
                    rec.dispatch(
                        "divisive_norm/moments",
                        ctx.kernel(&key(entry))?,
                        bytemuck::bytes_of(&ps),
                        &[Some(x), None, None, None, None, Some(&part), None, None],
                        sg,
                    )?;
                }
                rec.dispatch(
                    "divisive_norm/moments",
                    ctx.kernel(&key("dn_moments_final"))?,
                    bytemuck::bytes_of(&ps),
                    &[None, Some(&part), None, None, None, Some(&stats), None, None],
                    mg,
                )?;
            }
            apply_groups = super::elementwise_grid(ctx, total, OP)?;
            let partials = l1_partials(rec, p, (apply_groups[0] * apply_groups[1]) as usize)?;
            rec.dispatch(
                "divisive_norm/apply",
                ctx.kernel(&key("dn_apply_global"))?,
                bytemuck::bytes_of(&pg),
                &[Some(x), Some(&stats), None, gamma, beta, Some(&y), v.as_ref(), partials.as_ref()],
                apply_groups,
            )?;
            let l1 = l1_final(rec, p, partials, total, &key)?;
            Ok(DivNormOutput { output: y, centered: v, l1 })
        }
    }
}

/// Channels 0..c in pieces of at most `per` (one empty piece for no channels, as one pass would).
fn channel_pieces(c: usize, per: u64) -> Vec<(usize, usize)> {
    let mut pieces: Vec<_> = chunks(c, per as usize).collect();
    if pieces.is_empty() {
        pieces.push((0, 0));
    }
    pieces
}

/// One partial sum of |v| per workgroup of the apply pass.
fn l1_partials(rec: &mut Recorder, p: &DivNormParams, count: usize) -> Result<Option<Tensor>> {
    if p.l1_alpha.is_none() {
        return Ok(None);
    }
    rec.alloc("divisive_norm", &[count], DType::F32).map(Some)
}

fn l1_final(
    rec: &mut Recorder,
    p: &DivNormParams,
    partials: Option<Tensor>,
    total: usize,
    key: &dyn Fn(&'static str) -> PipelineKey,
) -> Result<Option<Tensor>> {
    let (Some(alpha), Some(parts)) = (p.l1_alpha, partials) else {
        return Ok(None);
    };
    let ctx = rec.context();
    let kernel = ctx.kernel(&key("dn_l1_final"))?;
    let budget = rec.loop_budget() as usize;
    let mut parts = parts;
    // Levels of slices of 256 · budget partials while one workgroup would loop past the budget.
    loop {
        let count = parts.numel();
        let last = count.div_ceil(256) <= budget;
        let slice = if last { count.max(1) } else { 256 * budget };
        let groups = count.div_ceil(slice);
        let out = rec.alloc("divisive_norm", &[groups], DType::F32)?;
        let pf = DnParams {
            count: count as u32,
            slice: slice as u32,
            scale: if last { alpha / total as f32 } else { 1.0 },
            ..Default::default()
        };
        rec.dispatch(
            "divisive_norm/l1",
            kernel.clone(),
            bytemuck::bytes_of(&pf),
            &[Some(&parts), None, None, None, None, Some(&out), None, None],
            [groups as u32, 1, 1],
        )?;
        if last {
            return Ok(Some(out));
        }
        parts = out;
    }
}

/// The column sums of a row-summed plane where a window of `kh` rows would loop past half the
/// budget (min(kh, H) rows per pixel): a box pass along H (in pieces), and kh = 1 for the
/// kernels' own column loop. Otherwise the plane and kh as they are.
fn tall_window(rec: &mut Recorder, rows: Tensor, plane: [usize; 3], kh: usize, budget: u64) -> Result<(Tensor, usize)> {
    if kh.min(plane[1]) as u64 <= budget / 2 {
        return Ok((rows, kh));
    }
    Ok((box_pass(rec, &rows, plane, kh, 1.0, false, true)?, 1))
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "divisive_norm",
        "DnParams",
        DnParams,
        [
            n, c, h, w, hw, pixels, total, kh, before_h, scale, sigma2, _p, g_div, g_mod, groups, g_stride, o_count,
            o_stride, inner, count, sum_h, sum_w, sup_h, sup_w, sb_h, sb_w, pb_h, pb_w, tiles_x, tiles, mu_scale,
            s2_scale, c_lo, c_hi, first, last, l1_off, slices, slice, _q
        ]
    )]
}
