//! Conversions between f32 and f16 storage (f16 needs the adapter's shader-f16).

use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CastParams {
    n: u32,
    _pad: [u32; 3],
}

/// `x` converted to `to` (a copy when it already is).
pub fn cast(rec: &mut Recorder, x: &Tensor, to: DType) -> Result<Tensor> {
    let ctx = rec.context();
    if x.dtype() == to {
        return super::copy(rec, x);
    }
    if !ctx.capabilities().shader_f16 {
        return Err(Error::MissingFeature("shader-f16"));
    }
    let entry = match to {
        DType::F16 => "f32_to_f16",
        DType::F32 => "f16_to_f32",
    };
    let groups = super::elementwise_grid(ctx, x.numel(), "cast")?;
    let kernel = ctx.kernel(&PipelineKey::new("cast_f16", entry, &[Access::Read, Access::ReadWrite]))?;
    let y = rec.alloc("cast", x.shape(), to)?;
    let p = CastParams { n: x.numel() as u32, _pad: [0; 3] };
    rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("cast_f16", "CastParams", CastParams, [n, _pad])]
}
