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

/// `a` [A, T1, ...rest] then `b` [A, T2, ...rest] along the middle axis: [A, T1 + T2, ...rest]
/// (a video's time axis, with the tensors seen as [B·C, T, H·W]; the counterpart of
/// [`narrow_mid`]).
pub fn concat_mid(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "concat_mid";
    let (sa, sb) = (a.shape(), b.shape());
    if sa.len() < 2 || sa.len() != sb.len() || sa[0] != sb[0] || sa[2..] != sb[2..] {
        return Err(Error::shape(OP, "b", sb, format!("{sa:?} but for axis 1")));
    }
    let d: usize = sa[2..].iter().product();
    let cat = concat_channels(rec, &[&a.reshape(&[sa[0], sa[1], d, 1])?, &b.reshape(&[sb[0], sb[1], d, 1])?])?;
    let mut shape = sa.to_vec();
    shape[1] += sb[1];
    cat.reshape(&shape)
}

/// Frames `[first, first + len)` of the middle axis of `x` [A, T, ...rest] (a window of a video's
/// time axis, with `x` seen as [B·C, T, H·W]): [A, len, ...rest].
pub fn narrow_mid(rec: &mut Recorder, x: &Tensor, a: usize, first: usize, len: usize) -> Result<Tensor> {
    const OP: &str = "narrow_mid";
    let n = x.numel();
    let t = x.shape().get(1).copied().unwrap_or(0);
    if a == 0 || n % a != 0 || x.shape().first() != Some(&a) || first.checked_add(len).is_none_or(|e| e > t) || len == 0
    {
        return Err(Error::shape(OP, "input", x.shape(), format!("[{a}, T >= {}, ...]", first + len)));
    }
    let d = n / a / t;
    let mut shape = x.shape().to_vec();
    shape[1] = len;
    let y = rec.alloc(OP, &shape, crate::tensor::DType::F32)?;
    let fits =
        |v: usize| u32::try_from(v).map_err(|_| Error::shape(OP, "input", x.shape(), "fewer than 2^32 elements"));
    let params =
        CatParams { n: fits(y.numel())?, chw_src: fits(t * d)?, chw_dst: fits(len * d)?, off_hw: fits(first * d)? };
    let kernel = rec.context().kernel(&PipelineKey::new("copy", "narrow_mid", &[Access::Read, Access::ReadWrite]))?;
    let groups = super::elementwise_grid(rec.context(), y.numel(), OP)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&params), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SwapParams {
    n: u32,
    p: u32,
    q: u32,
    d: u32,
}

/// `x` seen as [A, P, Q, D] with its two middle axes swapped: a tensor [A, Q, P, D] of `shape`
/// (the caller's view of it).
pub fn swap_mid(rec: &mut Recorder, x: &Tensor, [a, p, q, d]: [usize; 4], shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "swap_mid";
    let n = [a, p, q, d].iter().try_fold(1usize, |m, &v| m.checked_mul(v));
    if n != Some(x.numel()) || crate::tensor::numel(OP, "shape", shape)? != x.numel() {
        return Err(Error::shape(OP, "input", x.shape(), format!("{a}·{p}·{q}·{d} elements, as `shape` holds")));
    }
    let y = rec.alloc(OP, shape, crate::tensor::DType::F32)?;
    let fits =
        |v: usize| u32::try_from(v).map_err(|_| Error::shape(OP, "input", x.shape(), "fewer than 2^32 elements"));
    let params = SwapParams { n: fits(x.numel())?, p: fits(p)?, q: fits(q)?, d: fits(d)? };
    let kernel = rec.context().kernel(&PipelineKey::new("copy", "swap_mid", &[Access::Read, Access::ReadWrite]))?;
    let groups = super::elementwise_grid(rec.context(), x.numel(), OP)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&params), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!("copy", "CopyParams", CopyParams, [n4, _pad]),
        super::params_layout!("copy", "CatParams", CatParams, [n, chw_src, chw_dst, off_hw]),
        super::params_layout!("copy", "SwapParams", SwapParams, [n, p, q, d]),
    ]
}
