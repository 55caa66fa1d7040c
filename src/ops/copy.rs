//! A plain device copy, vec4 per invocation: the memory-bandwidth ceiling the benchmarks use.

use crate::error::{Error, Result};
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

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CatParams {
    n: u32,
    chw_src: u32,
    chw_dst: u32,
    off_hw: u32,
}

/// `parts` [N, C_i, H, W] concatenated along channels in order (PyTorch's `torch.cat(parts, 1)`):
/// [N, ΣC_i, H, W], one dispatch per part. A single part is returned as it is.
pub fn concat_channels(rec: &mut Recorder, parts: &[&Tensor]) -> Result<Tensor> {
    const OP: &str = "concat_channels";
    let first = match parts {
        [] => return Err(Error::param(OP, "parts", "at least one tensor is needed")),
        [one] => {
            one.expect_f32(OP, "parts[0]")?;
            if one.shape().len() != 4 {
                return Err(Error::shape(OP, "parts[0]", one.shape(), "[N, C, H, W]"));
            }
            return Ok((*one).clone());
        }
        [first, ..] => first,
    };
    let mut channels = 0usize;
    for (i, p) in parts.iter().enumerate() {
        let what = format!("parts[{i}]");
        p.expect_f32(OP, &what)?;
        let s = p.shape();
        let f = first.shape();
        if s.len() != 4 || f.len() != 4 || s[0] != f[0] || s[2] != f[2] || s[3] != f[3] {
            let want = match f {
                [n, _, h, w] => format!("[{n}, C, {h}, {w}] (the first part's N, H, W)"),
                _ => "[N, C, H, W]".to_string(),
            };
            return Err(Error::shape(OP, what, s, want));
        }
        channels = channels
            .checked_add(s[1])
            .ok_or_else(|| Error::shape(OP, what, s, "channels that add up within memory"))?;
    }
    let [n, _, h, w] = first.shape()[..] else { unreachable!("checked: four dims") };
    let y = rec.alloc(OP, &[n, channels, h, w], crate::tensor::DType::F32)?;
    let hw = h * w;
    let fits = |v: usize| {
        u32::try_from(v).map_err(|_| Error::shape(OP, "output", &[n, channels, h, w], "fewer than 2^32 elements"))
    };
    fits(y.numel())?;
    let kernel =
        rec.context().kernel(&PipelineKey::new("copy", "concat_channels", &[Access::Read, Access::ReadWrite]))?;
    let mut off = 0usize;
    for p in parts {
        let c = p.shape()[1];
        if p.numel() > 0 {
            let params = CatParams {
                n: fits(p.numel())?,
                chw_src: fits(c * hw)?,
                chw_dst: fits(channels * hw)?,
                off_hw: fits(off * hw)?,
            };
            let groups = super::elementwise_grid(rec.context(), p.numel(), OP)?;
            rec.dispatch(OP, kernel.clone(), bytemuck::bytes_of(&params), &[Some(p), Some(&y)], groups)?;
        }
        off += c;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!("copy", "CopyParams", CopyParams, [n4, _pad]),
        super::params_layout!("copy", "CatParams", CatParams, [n, chw_src, chw_dst, off_hw]),
    ]
}
