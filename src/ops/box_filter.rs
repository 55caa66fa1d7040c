//! Separable window sums over the last two dims with zero 'SAME' padding (shaders/box_filter.wgsl).
//! A window of size k covers [i − (k−1)/2, i + k − 1 − (k−1)/2]; windows may exceed the image.

use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::box_filter as ov;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct BoxParams {
    planes: u32,
    h: u32,
    w: u32,
    k: u32,
    before: u32,
    scale: f32,
    total: u32,
    /// Add to the output (a later piece of a long window).
    acc: u32,
    /// The window's cells this dispatch sums (of 0..k).
    o_lo: u32,
    o_hi: u32,
    _p: [u32; 2],
}

/// Cells before the centre of a window of size k.
pub(crate) fn before(k: usize) -> usize {
    (k - 1) / 2
}

/// The pieces (cells of 0..k) a window of size k along an axis of `extent` cells is summed in:
/// one piece where the clipped loop (at most min(k, extent) cells) fits `budget` iterations, else
/// the cells that can reach the axis at all (at most 2·extent − 1) in pieces of `budget`.
pub(crate) fn window_pieces(k: usize, extent: usize, budget: u64) -> Vec<(usize, usize)> {
    let budget = budget as usize;
    if k.min(extent) <= budget {
        return vec![(0, k)];
    }
    // Cell o of the window at position i reads i - before + o, in 0..extent for some i.
    let lo = (before(k) + 1).saturating_sub(extent);
    let hi = k.min(before(k) + extent);
    crate::runtime::chunks(hi - lo, budget).map(|(a, b)| (lo + a, lo + b)).collect()
}

/// One pass along W (`rows`) or H (`cols`) over planes [P, H, W].
pub(crate) fn pass(
    rec: &mut Recorder,
    x: &Tensor,
    dims: [usize; 3],
    k: usize,
    scale: f32,
    square: bool,
    cols: bool,
) -> Result<Tensor> {
    let ctx = rec.context();
    let [planes, h, w] = dims;
    let total = planes * h * w;
    let entry = if cols { "box_cols" } else { "box_rows" };
    let key = PipelineKey::new("box_filter", entry, &[Access::Read, Access::ReadWrite]).flag(ov::SQUARE, square);
    let kernel = ctx.kernel(&key)?;
    let y = rec.alloc("box_sum", x.shape(), DType::F32)?;
    let groups = super::elementwise_grid(ctx, total, "box_sum")?;
    let pieces = window_pieces(k, if cols { h } else { w }, rec.loop_budget());
    for (i, &(o_lo, o_hi)) in pieces.iter().enumerate() {
        let p = BoxParams {
            planes: planes as u32,
            h: h as u32,
            w: w as u32,
            k: k as u32,
            before: before(k) as u32,
            scale,
            total: total as u32,
            acc: (i > 0) as u32,
            o_lo: o_lo as u32,
            o_hi: o_hi as u32,
            _p: [0; 2],
        };
        rec.dispatch(entry, kernel.clone(), bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    }
    Ok(y)
}

/// `scale` · (window sum of x, or of x² with `square`) over a kh×kw window, for x [..., H, W].
pub fn box_sum(rec: &mut Recorder, x: &Tensor, window: [usize; 2], scale: f32, square: bool) -> Result<Tensor> {
    const OP: &str = "box_sum";
    x.expect_f32(OP, "input")?;
    let s = x.shape();
    if s.len() < 2 {
        return Err(Error::shape(OP, "input", s, "[..., H, W]"));
    }
    super::geometry(OP, "window", &window)?;
    if window.contains(&0) {
        return Err(Error::param(OP, "window", format!("{window:?} must be >= 1 in each axis")));
    }
    super::finite(OP, "scale", scale, false)?;
    let (h, w) = (s[s.len() - 2], s[s.len() - 1]);
    let dims = [x.numel() / (h * w), h, w];
    let r = pass(rec, x, dims, window[1], 1.0, square, false)?;
    pass(rec, &r, dims, window[0], scale, false, true)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "box_filter",
        "BoxParams",
        BoxParams,
        [planes, h, w, k, before, scale, total, acc, o_lo, o_hi, _p]
    )]
}
