//! Inference batch norm and layer norm over the trailing dims.

use super::{finite, Activation};
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::norm as ov;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BnParams {
    total: u32,
    c: u32,
    inner: u32,
    eps: f32,
}

/// Checks inference batch norm's shapes and eps: x [N, C, ...], running_mean, running_var, weight
/// and bias all [C]. Returns (C, positions per channel). Shared by the op and `eval`'s CPU path.
#[doc(hidden)]
pub fn batch_norm_shapes(x: &[usize], params: [&[usize]; 4], eps: f32) -> Result<(usize, usize)> {
    const OP: &str = "batch_norm";
    if x.len() < 2 {
        return Err(Error::shape(OP, "input", x, "[N, C, ...]"));
    }
    non_negative_eps(OP, eps)?;
    let c = x[1];
    for (s, name) in params.iter().zip(["running_mean", "running_var", "weight", "bias"]) {
        if *s != [c] {
            return Err(Error::shape(OP, name, s, format!("[{c}]")));
        }
    }
    Ok((c, x[2..].iter().product()))
}

/// Checks layer norm's shapes and eps: weight and bias (optional) of exactly the last `dims` dims
/// of x. Returns the normalized length. Shared by the op and `eval`'s CPU path.
#[doc(hidden)]
pub fn layer_norm_shapes(
    x: &[usize],
    dims: usize,
    weight: Option<&[usize]>,
    bias: Option<&[usize]>,
    eps: f32,
) -> Result<usize> {
    const OP: &str = "layer_norm";
    if dims == 0 || dims > x.len() {
        return Err(Error::param(OP, "dims", format!("{dims} must be between 1 and the input's rank {}", x.len())));
    }
    non_negative_eps(OP, eps)?;
    let trailing = &x[x.len() - dims..];
    for (s, name) in [(weight, "weight"), (bias, "bias")] {
        if let Some(s) = s {
            if s != trailing {
                return Err(Error::shape(OP, name, s, format!("{trailing:?}")));
            }
        }
    }
    Ok(trailing.iter().product())
}

fn non_negative_eps(op: &'static str, eps: f32) -> Result<()> {
    finite(op, "eps", eps, false)?;
    if eps < 0.0 {
        return Err(Error::param(op, "eps", format!("{eps} must be >= 0")));
    }
    Ok(())
}

/// Inference batch norm on x [N, C, ...]: (x − mean) / sqrt(var + eps) · weight + bias, then act.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    rec: &mut Recorder,
    x: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
    act: Activation,
) -> Result<Tensor> {
    const OP: &str = "batch_norm";
    x.expect_f32(OP, "input")?;
    act.validate()?;
    let params = [(mean, "running_mean"), (var, "running_var"), (weight, "weight"), (bias, "bias")];
    for (t, name) in params {
        t.expect_f32(OP, name)?;
    }
    let (c, _) = batch_norm_shapes(x.shape(), params.map(|(t, _)| t.shape()), eps)?;
    let ctx = rec.context();
    let groups = super::elementwise_grid(ctx, x.numel(), OP)?;
    let key = PipelineKey::new(
        "norm",
        "batch_norm",
        &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    );
    let kernel = ctx.kernel(&act.specialize(key))?;
    let y = rec.alloc(OP, x.shape(), DType::F32)?;
    let inner: usize = x.shape()[2..].iter().product();
    let p = BnParams { total: x.numel() as u32, c: c as u32, inner: inner as u32, eps };
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[Some(x), Some(mean), Some(var), Some(weight), Some(bias), Some(&y)],
        groups,
    )?;
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnParams {
    rows: u32,
    len: u32,
    eps: f32,
    _pad: u32,
}

/// Layer norm over the last `dims` dimensions of x, with optional weight and bias of exactly
/// those dimensions, then act.
pub fn layer_norm(
    rec: &mut Recorder,
    x: &Tensor,
    dims: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f32,
    act: Activation,
) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    x.expect_f32(OP, "input")?;
    act.validate()?;
    for (t, name) in [(weight, "weight"), (bias, "bias")] {
        if let Some(t) = t {
            t.expect_f32(OP, name)?;
        }
    }
    let s = x.shape();
    let len = layer_norm_shapes(s, dims, weight.map(|t| t.shape()), bias.map(|t| t.shape()), eps)?;
    let rows = x.numel() / len;
    let ctx = rec.context();
    let groups = ctx.grid_1d(rows as u64, OP)?;
    let key = PipelineKey::new("norm", "layer_norm", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite])
        .flag(ov::HAS_WEIGHT, weight.is_some())
        .flag(ov::HAS_BIAS, bias.is_some());
    let y = rec.alloc(OP, s, DType::F32)?;
    let budget = rec.loop_budget();
    // One workgroup per row loops len/256 times in each of three passes.
    if 3 * (len as u64).div_ceil(256) <= budget {
        let kernel = ctx.kernel(&act.specialize(key))?;
        let p = LnParams { rows: rows as u32, len: len as u32, eps, _pad: 0 };
        rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), weight, bias, Some(&y)], groups)?;
        return Ok(y);
    }
    let split = RowSplit::new(OP, "input", len, budget)?;
    let p = LnSplitParams {
        rows: rows as u32,
        len: len as u32,
        eps,
        slices: split.slices as u32,
        slice: split.slice as u32,
        _pad: [0; 3],
    };
    let part = rec.alloc(OP, &[rows, split.slices, 2], DType::F32)?;
    let groups = ctx.grid_1d((rows * split.slices) as u64, OP)?;
    let access = [Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];
    for entry in ["ln_sum_split", "ln_sq_split", "ln_apply_split"] {
        let k = PipelineKey::new("norm", entry, &access)
            .flag(ov::HAS_WEIGHT, weight.is_some())
            .flag(ov::HAS_BIAS, bias.is_some());
        let kernel = ctx.kernel(&act.specialize(k))?;
        let out = (entry == "ln_apply_split").then_some(&y);
        rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(x), weight, bias, out, Some(&part)], groups)?;
    }
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LnSplitParams {
    rows: u32,
    len: u32,
    eps: f32,
    slices: u32,
    slice: u32,
    _pad: [u32; 3],
}

/// How a row too long for one workgroup's loop budget is cut into slices of whole workgroup
/// strides, one workgroup each, whose partials a later pass of every slice combines (strided over
/// the slices): `slices` slices of `slice` elements (a multiple of 256), the last one ragged.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSplit {
    pub slices: usize,
    pub slice: usize,
}

impl RowSplit {
    /// Half the budget for the slice's own loop, the rest for the strided loops over the partials
    /// (at most two of them per kernel).
    pub(crate) fn new(op: &'static str, what: &str, len: usize, budget: u64) -> Result<Self> {
        let per = (budget / 2).max(1) as usize;
        let slice = per * 256;
        let slices = len.div_ceil(slice).max(1);
        if 2 * slices.div_ceil(256) as u64 > budget / 2 {
            return Err(Error::param(
                op,
                what,
                format!("rows of {len} elements are past the longest this op splits ({})", slice * 256 * (per / 2)),
            ));
        }
        Ok(RowSplit { slices, slice })
    }
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!("norm", "BnParams", BnParams, [total, c, inner, eps]),
        super::params_layout!("norm", "LnParams", LnParams, [rows, len, eps, _pad]),
        super::params_layout!("norm", "LnSplitParams", LnSplitParams, [rows, len, eps, slices, slice, _pad]),
    ]
}
