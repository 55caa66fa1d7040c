//! NeuRN (docs/ops.md, NeuRN): local standard deviation per channel over a k×k window (zero padding,
//! divisor k²), divided by its maximum over the scope plus eps.
//!
//! Our choices where the paper's code is not public: k = 3, the maximum per (image, channel), eps =
//! 1e-8 by default; 'SAME' zero padding with (k−1)/2 cells before the centre (so even k leans
//! right/down); the variance of the window counts the padded zeros and is clamped at 0.

use super::box_filter::{before, box_sum};
use super::finite;
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::neurn as ov;
use crate::tensor::{DType, Tensor};

/// Where the maximum is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxScope {
    /// Over H, W of each (n, c).
    Channel,
    /// Over C, H, W of each n.
    Image,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NeurnParams {
    pub kernel: usize,
    pub max_scope: MaxScope,
    pub eps: f32,
}

impl Default for NeurnParams {
    fn default() -> Self {
        NeurnParams { kernel: 3, max_scope: MaxScope::Channel, eps: 1e-8 }
    }
}

impl NeurnParams {
    pub fn validate(&self) -> Result<()> {
        crate::ops::geometry("neurn", "kernel", &[self.kernel])?;
        if self.kernel == 0 {
            return Err(Error::param("neurn", "kernel", "must be >= 1"));
        }
        finite("neurn", "eps", self.eps, false)?;
        if self.eps < 0.0 {
            return Err(Error::param("neurn", "eps", format!("{} must be >= 0", self.eps)));
        }
        Ok(())
    }
}

/// Largest k computed with the exact in-kernel window; larger ones use the box filter's E[x], E[x²].
pub const WINDOW_MAX_K: usize = 9;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    planes: u32,
    h: u32,
    w: u32,
    k: u32,
    before: u32,
    total: u32,
    scope_div: u32,
    eps: f32,
    inv_k2: f32,
    tiles: u32,
    _p: [u32; 2],
}

/// NeuRN of x [N, C, H, W].
pub fn neurn(rec: &mut Recorder, x: &Tensor, p: &NeurnParams) -> Result<Tensor> {
    neurn_with(rec, x, p, true)
}

/// [`neurn`] with the apply pass's order chosen: `reversed` (the default) walks the planes last to
/// first, so it starts on the planes the max pass read last, which may still be in the cache; the
/// results are the same either way (benchmarks compare the two orders).
pub fn neurn_with(rec: &mut Recorder, x: &Tensor, p: &NeurnParams, reversed: bool) -> Result<Tensor> {
    rec.atomic(|rec| neurn_unit(rec, x, p, reversed))
}

fn neurn_unit(rec: &mut Recorder, x: &Tensor, p: &NeurnParams, reversed: bool) -> Result<Tensor> {
    const OP: &str = "neurn";
    x.expect_f32(OP, "input")?;
    let s = x.shape();
    if s.len() != 4 {
        return Err(Error::shape(OP, "input", s, "[N, C, H, W]"));
    }
    p.validate()?;
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let k = p.kernel;
    let ctx = rec.context();
    // The in-kernel window loops 2 (k + k²) times per invocation; past the budget (or WINDOW_MAX_K)
    // the box filter's passes (in pieces of the budget) give E[x] and E[x²].
    let window = k <= WINDOW_MAX_K && 2 * (k + k * k) as u64 <= rec.loop_budget();
    let (mean, sq) = if window {
        (None, None)
    } else {
        let inv = 1.0 / (k * k) as f32;
        (Some(box_sum(rec, x, [k, k], inv, false)?), Some(box_sum(rec, x, [k, k], inv, true)?))
    };
    let (scopes, scope_div) = match p.max_scope {
        MaxScope::Channel => (n * c, 1),
        MaxScope::Image => (n, c),
    };
    let maxes = rec.alloc(OP, &[scopes], DType::F32)?;
    rec.clear(&maxes);
    let tiles = (h * w).div_ceil(256);
    let groups = ctx.grid_1d((n * c * tiles) as u64, OP)?;
    let params = Params {
        planes: (n * c) as u32,
        h: h as u32,
        w: w as u32,
        k: k as u32,
        before: before(k) as u32,
        total: x.numel() as u32,
        scope_div: scope_div as u32,
        eps: p.eps,
        inv_k2: 1.0 / (k * k) as f32,
        tiles: tiles as u32,
        _p: [0; 2],
    };
    let bindings = [Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];
    let key = |entry| PipelineKey::new("neurn", entry, &bindings).flag(ov::WINDOW, window);
    let y = rec.alloc(OP, s, DType::F32)?;
    rec.dispatch(
        "neurn/max",
        ctx.kernel(&key("neurn_max"))?,
        bytemuck::bytes_of(&params),
        &[Some(x), mean.as_ref(), sq.as_ref(), Some(&maxes), None],
        groups,
    )?;
    rec.dispatch(
        "neurn/apply",
        ctx.kernel(&key("neurn_apply").flag(ov::REVERSE, reversed))?,
        bytemuck::bytes_of(&params),
        &[Some(x), mean.as_ref(), sq.as_ref(), Some(&maxes), Some(&y)],
        groups,
    )?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "neurn",
        "NeurnParams",
        Params,
        [planes, h, w, k, before, total, scope_div, eps, inv_k2, tiles, _p]
    )]
}
