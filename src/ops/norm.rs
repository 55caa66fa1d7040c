//! Inference batch norm and layer norm over the trailing dims.

use super::{expect_shape, finite, Activation};
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BnParams {
    total: u32,
    c: u32,
    inner: u32,
    eps: f32,
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
    if x.shape().len() < 2 {
        return Err(Error::shape(OP, "input", x.shape(), "[N, C, ...]"));
    }
    finite(OP, "eps", eps, false)?;
    if eps < 0.0 {
        return Err(Error::param(OP, "eps", format!("{eps} must be >= 0")));
    }
    act.validate()?;
    let c = x.shape()[1];
    for (t, name) in [(mean, "running_mean"), (var, "running_var"), (weight, "weight"), (bias, "bias")] {
        expect_shape(OP, name, t, &[c])?;
    }
    let ctx = rec.context();
    let groups = super::elementwise_grid(ctx, x.numel(), OP)?;
    let key = PipelineKey::new(
        "norm",
        "batch_norm",
        &[Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    );
    let kernel = ctx.kernel(&act.specialize(key))?;
    let y = Tensor::alloc(ctx, OP, x.shape(), DType::F32)?;
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
    let s = x.shape();
    if dims == 0 || dims > s.len() {
        return Err(Error::param(OP, "dims", format!("{dims} must be between 1 and the input's rank {}", s.len())));
    }
    finite(OP, "eps", eps, false)?;
    if eps < 0.0 {
        return Err(Error::param(OP, "eps", format!("{eps} must be >= 0")));
    }
    act.validate()?;
    let trailing = &s[s.len() - dims..];
    if let Some(w) = weight {
        expect_shape(OP, "weight", w, trailing)?;
    }
    if let Some(b) = bias {
        expect_shape(OP, "bias", b, trailing)?;
    }
    let len: usize = trailing.iter().product();
    let rows = x.numel() / len;
    let ctx = rec.context();
    let groups = ctx.grid_1d(rows as u64, OP)?;
    let key = PipelineKey::new("norm", "layer_norm", &[Access::Read, Access::Read, Access::Read, Access::ReadWrite])
        .with("LN_HAS_WEIGHT", weight.is_some() as u8 as f64)
        .with("LN_HAS_BIAS", bias.is_some() as u8 as f64);
    let kernel = ctx.kernel(&act.specialize(key))?;
    let y = Tensor::alloc(ctx, OP, s, DType::F32)?;
    let p = LnParams { rows: rows as u32, len: len as u32, eps, _pad: 0 };
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), weight, bias, Some(&y)], groups)?;
    Ok(y)
}
