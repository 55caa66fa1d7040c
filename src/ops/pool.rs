//! 2-D pooling (docs/ops.md, Pooling): `max_pool2d` and `avg_pool2d` with PyTorch's semantics
//! (kernel, stride defaulting to the kernel, symmetric zero padding, dilation for max, ceil_mode,
//! count_include_pad and divisor_override for avg).
//!
//! One invocation per output element walks its window's taps. A window of more taps than the loop
//! budget is walked in consecutive ranges of taps, one dispatch each, the running max or sum kept
//! in the output between them (the f32 operations and their order are those of one pass).

use super::{elementwise_grid, geometry};
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::{DType, Tensor};

/// The parameters of [`max_pool2d`] and [`avg_pool2d`], per axis (H, W), as PyTorch's
/// `nn.MaxPool2d` / `nn.AvgPool2d` take them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dParams {
    pub kernel: [usize; 2],
    /// `None`: the kernel size (PyTorch's default).
    pub stride: Option<[usize; 2]>,
    /// Zero padding on both sides of each axis; at most half the kernel (PyTorch's rule).
    pub padding: [usize; 2],
    /// Max pooling only (avg refuses anything but 1).
    pub dilation: [usize; 2],
    /// The output size rounds up, as long as the last window starts inside the input or its left
    /// padding.
    pub ceil_mode: bool,
    /// Avg only: padded cells count in the divisor (PyTorch's default, true). Max ignores it.
    pub count_include_pad: bool,
    /// Avg only: divide every window's sum by this instead. Max refuses it.
    pub divisor_override: Option<usize>,
}

impl Default for Pool2dParams {
    fn default() -> Self {
        Pool2dParams {
            kernel: [2, 2],
            stride: None,
            padding: [0, 0],
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

impl Pool2dParams {
    /// A square k×k window, stride k, no padding.
    pub fn square(k: usize) -> Self {
        Pool2dParams { kernel: [k, k], ..Default::default() }
    }
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = Some([sh, sw]);
        self
    }
    pub fn with_padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = [ph, pw];
        self
    }
    pub fn with_dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = [dh, dw];
        self
    }
    /// The stride in effect.
    pub fn strides(&self) -> [usize; 2] {
        self.stride.unwrap_or(self.kernel)
    }
}

/// Max or average.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    Avg,
}

impl PoolKind {
    pub fn op(self) -> &'static str {
        match self {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg => "avg_pool2d",
        }
    }
}

/// The largest padded height or width pooling takes (keeps the kernels' u32 index sums exact).
pub const MAX_POOL_EXTENT: usize = 1 << 30;

/// PyTorch's output length of one axis (`pooling_output_shape`): floor, or ceil with the last
/// window starting inside the input or its left padding; `None` when no window fits.
fn out_len(size: usize, k: usize, pad: usize, stride: usize, dil: usize, ceil: bool) -> Option<usize> {
    let (size, k, pad, stride, dil) = (size as i64, k as i64, pad as i64, stride as i64, dil as i64);
    let num = size + 2 * pad - dil * (k - 1) - 1 + if ceil { stride - 1 } else { 0 };
    if num < 0 {
        return None;
    }
    let mut o = num / stride + 1;
    if ceil && (o - 1) * stride >= size + pad {
        o -= 1;
    }
    (o >= 1).then_some(o as usize)
}

/// Checks the input shape [N, C, H, W] and the parameters, and gives the output shape
/// [N, C, Ho, Wo]; the same checks for the op and its reference.
pub fn pool_shape(kind: PoolKind, input: &[usize], p: &Pool2dParams) -> Result<[usize; 4]> {
    let op = kind.op();
    let &[n, c, h, w] = input else {
        return Err(Error::shape(op, "input", input, "[N, C, H, W]"));
    };
    let stride = p.strides();
    geometry(op, "kernel", &p.kernel)?;
    geometry(op, "stride", &stride)?;
    geometry(op, "padding", &p.padding)?;
    geometry(op, "dilation", &p.dilation)?;
    for (name, v) in [("kernel", p.kernel), ("stride", stride), ("dilation", p.dilation)] {
        if v.contains(&0) {
            return Err(Error::param(op, name, format!("{v:?}: each must be >= 1")));
        }
    }
    if p.padding[0] > p.kernel[0] / 2 || p.padding[1] > p.kernel[1] / 2 {
        return Err(Error::param(
            op,
            "padding",
            format!("{:?} must be at most half the kernel {:?}", p.padding, p.kernel),
        ));
    }
    match kind {
        PoolKind::Avg if p.dilation != [1, 1] => {
            return Err(Error::param(op, "dilation", format!("{:?}: average pooling has none", p.dilation)));
        }
        PoolKind::Max if p.divisor_override.is_some() => {
            return Err(Error::param(op, "divisor_override", "max pooling has no divisor"));
        }
        _ => {}
    }
    if let Some(d) = p.divisor_override {
        if d == 0 {
            return Err(Error::param(op, "divisor_override", "must be >= 1"));
        }
        geometry(op, "divisor_override", &[d])?;
    }
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Err(Error::shape(op, "input", input, "[N, C, H, W], each at least 1"));
    }
    if h + 2 * p.padding[0] > MAX_POOL_EXTENT || w + 2 * p.padding[1] > MAX_POOL_EXTENT {
        return Err(Error::shape(op, "input", input, format!("H, W with padding at most {MAX_POOL_EXTENT}")));
    }
    let oh = out_len(h, p.kernel[0], p.padding[0], stride[0], p.dilation[0], p.ceil_mode);
    let ow = out_len(w, p.kernel[1], p.padding[1], stride[1], p.dilation[1], p.ceil_mode);
    match (oh, ow) {
        (Some(oh), Some(ow)) => Ok([n, c, oh, ow]),
        _ => Err(Error::shape(
            op,
            "input",
            input,
            format!(
                "H, W with padding {:?} at least the dilated kernel {:?}",
                p.padding,
                [(p.kernel[0] - 1) * p.dilation[0] + 1, (p.kernel[1] - 1) * p.dilation[1] + 1]
            ),
        )),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    total: u32,
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    /// The taps of this dispatch: [tap0, tap1) of the kh·kw window, row-major.
    tap0: u32,
    tap1: u32,
    /// 1 on the first range (start from -inf or 0), 2 on the last (divide), 3 both.
    phase: u32,
    count_include_pad: u32,
    /// 0: none.
    divisor: u32,
    _p: [u32; 2],
}

/// Max pooling of x [N, C, H, W] (`torch.nn.functional.max_pool2d`): the largest value of each
/// window, padding never chosen; a NaN in a window makes its output NaN.
pub fn max_pool2d(rec: &mut Recorder, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    pool2d(rec, x, p, PoolKind::Max)
}

/// Average pooling of x [N, C, H, W] (`torch.nn.functional.avg_pool2d`): each window's sum over
/// the input cells it covers, divided by the window's size clipped to the padded input
/// (`count_include_pad`), by the cells covered, or by `divisor_override`.
pub fn avg_pool2d(rec: &mut Recorder, x: &Tensor, p: &Pool2dParams) -> Result<Tensor> {
    pool2d(rec, x, p, PoolKind::Avg)
}

fn pool2d(rec: &mut Recorder, x: &Tensor, p: &Pool2dParams, kind: PoolKind) -> Result<Tensor> {
    let op = kind.op();
    x.expect_f32(op, "input")?;
    let out = pool_shape(kind, x.shape(), p)?;
    let s = x.shape();
    let ctx = rec.context();
    let total = out.iter().product::<usize>();
    let groups = elementwise_grid(ctx, total, op)?;
    let taps = p.kernel[0] * p.kernel[1];
    let per = (rec.loop_budget() as usize).max(1);
    let stride = p.strides();
    let entry = match kind {
        PoolKind::Max => "max_pool2d",
        PoolKind::Avg => "avg_pool2d",
    };
    let kernel = ctx.kernel(&PipelineKey::new("pool", entry, &[Access::Read, Access::ReadWrite]))?;
    let y = rec.alloc(op, &out, DType::F32)?;
    let ranges: Vec<(usize, usize)> = crate::runtime::chunks(taps, per).collect();
    let last = ranges.len() - 1;
    for (i, &(t0, t1)) in ranges.iter().enumerate() {
        let phase = u32::from(i == 0) | if i == last { 2 } else { 0 };
        let params = Params {
            total: total as u32,
            h: s[2] as u32,
            w: s[3] as u32,
            oh: out[2] as u32,
            ow: out[3] as u32,
            kh: p.kernel[0] as u32,
            kw: p.kernel[1] as u32,
            sh: stride[0] as u32,
            sw: stride[1] as u32,
            ph: p.padding[0] as u32,
            pw: p.padding[1] as u32,
            dh: p.dilation[0] as u32,
            dw: p.dilation[1] as u32,
            tap0: t0 as u32,
            tap1: t1 as u32,
            phase,
            count_include_pad: u32::from(p.count_include_pad),
            divisor: p.divisor_override.unwrap_or(0) as u32,
            _p: [0; 2],
        };
        let label = if ranges.len() == 1 { entry.to_string() } else { format!("{entry}/taps") };
        rec.dispatch(label, kernel.clone(), bytemuck::bytes_of(&params), &[Some(x), Some(&y)], groups)?;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "pool",
        "PoolParams",
        Params,
        [total, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, tap0, tap1, phase, count_include_pad, divisor, _p]
    )]
}
