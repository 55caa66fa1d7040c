//! A plain device copy, vec4 per invocation: the memory-bandwidth ceiling the benchmarks use.

use crate::error::Result;
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::Tensor;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CopyParams {
    n4: u32,
    _pad: [u32; 3],
}

/// A new tensor with the values of `x`: the copy kernel when the size is a multiple of 4 elements,
/// a buffer copy otherwise.
pub fn copy(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    let ctx = rec.context();
    let y = rec.alloc("copy", x.shape(), x.dtype())?;
    if x.bytes() % 16 != 0 {
        rec.copy(x, &y)?;
        return Ok(y);
    }
    let n4 = (x.bytes() / 16) as usize;
    let groups = super::elementwise_grid(ctx, n4, "copy")?;
    let kernel = ctx.kernel(&PipelineKey::new("copy", "copy_vec4", &[Access::Read, Access::ReadWrite]))?;
    let p = CopyParams { n4: n4 as u32, _pad: [0; 3] };
    rec.dispatch("copy", kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("copy", "CopyParams", CopyParams, [n4, _pad])]
}
