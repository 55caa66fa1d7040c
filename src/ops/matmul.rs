//! Batched matmul and linear layers (y = x Wᵀ + b), tiled, with a fused activation.

use super::Activation;
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::matmul as ov;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_stride: u32,
    b_stride: u32,
    c_stride: u32,
    ntiles: u32,
    /// SPLIT: this dispatch's range of the reduction, and its mode (SPLIT_ACC after the first).
    k_lo: u32,
    k_hi: u32,
    mode: u32,
    pad: u32,
}

const TILE: usize = 128;
/// The tiled kernels' reduction step (TK): one loop iteration per step.
const TK: usize = 8;
/// SPLIT mode of every chunk but the first: add to what the output holds.
const SPLIT_ACC: u32 = 1;

/// Which kernel runs a tiled product. `Auto` takes `matmul_db` where rows are 16-byte aligned (K % 4
/// == 0, and N % 4 == 0 unless B is transposed), else the scalar `matmul`; products of fewer than
/// [`DOT_MAX_TILES`] tiles take `matmul_dot` whatever is asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MatmulKernel {
    #[default]
    Auto,
    /// One tile buffer, scalar loads.
    Scalar,
    /// One tile buffer, vec4 global loads.
    Vec4,
    /// Two tile buffers, vec4 loads and vec4 workgroup reads.
    DoubleBuffered,
}
/// Below this many 128 × 128 tiles a product runs as one dot product per output (`matmul_dot`).
pub const DOT_MAX_TILES: usize = 8;

/// The loop iterations a tiled kernel's invocation runs per TK step of K (None: matmul_dot, one per
/// product). A step counts itself, the TK loop of the multiply and the small loops of its loads, as
/// if the driver left all of them rolled: lavapipe counts every iteration of every loop, and what
/// it unrolls differs from pipeline to pipeline (measured on conv2d.wgsl's kernels of the same
/// shape: 9-10 iterations a step in some). Only the innermost loops over an invocation's own
/// registers are taken as unrolled (compilers unroll them to keep the arrays in registers).
fn step_iterations(entry: &str) -> Option<usize> {
    match entry {
        "matmul_dot" => None,
        "matmul_db" => Some(1 + 4 + 4 + 4 + TK), // the A and B blocks' loads, the transposing store
        _ => Some(1 + 4 + 4 + TK),               // matmul, matmul_vec4: the A and B loads
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    rec: &mut Recorder,
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    dims: (usize, usize, usize, usize),
    strides: (usize, usize),
    trans_b: bool,
    act: Activation,
    out_shape: &[usize],
    kernel: MatmulKernel,
) -> Result<Tensor> {
    let (batch, m, n, k) = dims;
    let ctx = rec.context();
    let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
    if batch > max {
        return Err(Error::TooLarge {
            op,
            what: "batch".into(),
            amount: batch as u64,
            unit: "workgroups",
            limit: max as u64,
            limit_name: "max_compute_workgroups_per_dimension",
        });
    }
    let ntiles = n.div_ceil(TILE);
    let dot = batch * m.div_ceil(TILE) * ntiles < DOT_MAX_TILES;
    let [gx, gy, gz] = if dot {
        super::elementwise_grid(ctx, batch * m * n, op)?
    } else {
        let [gx, gy, _] = ctx.grid_1d((m.div_ceil(TILE) * ntiles) as u64, op)?;
        [gx, gy, batch as u32]
    };
    // vec4 loads where every row starts on a 16-byte boundary.
    let vec4 = k % 4 == 0 && (trans_b || n % 4 == 0);
    if !vec4 && matches!(kernel, MatmulKernel::Vec4 | MatmulKernel::DoubleBuffered) {
        return Err(Error::param(
            op,
            "kernel",
            format!("{kernel:?} needs K % 4 == 0 and N % 4 == 0 (K = {k}, N = {n}, B transposed: {trans_b})"),
        ));
    }
    let entry = match kernel {
        _ if dot => "matmul_dot",
        MatmulKernel::Scalar => "matmul",
        MatmulKernel::Vec4 => "matmul_vec4",
        MatmulKernel::Auto | MatmulKernel::DoubleBuffered if vec4 => "matmul_db",
        _ => "matmul",
    };
    // A reduction longer than the loop budget allows runs as chunks of k, one dispatch each
    // (SPLIT, no epilogue), then matmul_epilogue.
    let k_chunk = match step_iterations(entry) {
        None => rec.loop_budget() as usize,
        Some(per_step) => (rec.loop_budget() as usize / per_step).max(1) * TK,
    };
    let split = k > k_chunk;
    let accesses = [Access::Read, Access::Read, Access::Read, Access::ReadWrite];
    let key = PipelineKey::new("matmul", entry, &accesses).flag(ov::TRANS_B, trans_b);
    let kernel = if split {
        ctx.kernel(&key.with(ov::SPLIT, 1.0))?
    } else {
        ctx.kernel(&act.specialize(key.flag(ov::HAS_BIAS, bias.is_some())))?
    };
    let c = rec.alloc(op, out_shape, DType::F32)?;
    let mut p = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch: batch as u32,
        a_stride: strides.0 as u32,
        b_stride: strides.1 as u32,
        c_stride: (m * n) as u32,
        ntiles: ntiles as u32,
        k_lo: 0,
        k_hi: k as u32,
        mode: 0,
        pad: 0,
    };
    if !split {
        rec.dispatch(
            format!("{op}/{entry}"),
            kernel,
            bytemuck::bytes_of(&p),
            &[Some(a), Some(b), bias, Some(&c)],
            [gx, gy, gz],
        )?;
        return Ok(c);
    }
    for (i, (lo, hi)) in chunks(k, k_chunk).enumerate() {
        p.k_lo = lo as u32;
        p.k_hi = hi as u32;
        p.mode = if i > 0 { SPLIT_ACC } else { 0 };
        rec.dispatch(
            format!("{op}/{entry}"),
            kernel.clone(),
            bytemuck::bytes_of(&p),
            &[Some(a), Some(b), None, Some(&c)],
            [gx, gy, gz],
        )?;
    }
    if bias.is_some() || act != Activation::Identity {
        let key = PipelineKey::new("matmul", "matmul_epilogue", &accesses).flag(ov::HAS_BIAS, bias.is_some());
        let kernel = ctx.kernel(&act.specialize(key))?;
        let groups = super::elementwise_grid(ctx, batch * m * n, op)?;
        rec.dispatch(
            format!("{op}/matmul_epilogue"),
            kernel,
            bytemuck::bytes_of(&p),
            &[Some(a), Some(b), bias, Some(&c)],
            groups,
        )?;
    }
    Ok(c)
}

/// C = A · B for A [..., M, K] and B [..., K, N]. Leading (batch) dims must be equal, or one
/// side 2-D and broadcast.
pub fn matmul(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_with(rec, a, b, MatmulKernel::Auto)
}

/// [`matmul`] on a chosen kernel (tests and benchmarks compare them); refused where the shape does
/// not fit it.
pub fn matmul_with(rec: &mut Recorder, a: &Tensor, b: &Tensor, kernel: MatmulKernel) -> Result<Tensor> {
    const OP: &str = "matmul";
    a.expect_f32(OP, "a")?;
    b.expect_f32(OP, "b")?;
    let s = matmul_shapes(a.shape(), b.shape())?;
    let (batch, m, n, k) = s.dims;
    record(rec, OP, a, b, None, (batch, m, n, k), s.strides, false, Activation::Identity, &s.out, kernel)
}

/// A matmul's sizes as [`matmul_shapes`] works them out.
pub(crate) struct MatmulShape {
    /// (batch, M, N, K).
    pub dims: (usize, usize, usize, usize),
    /// The batch strides of A and B (0: broadcast).
    pub strides: (usize, usize),
    /// The output's shape [..., M, N].
    pub out: Vec<usize>,
}

/// Checks matmul's shapes, A [..., M, K] and B [..., K, N] (equal batch dims, or one side 2-D and
/// broadcast). Shared by the op and its reference.
pub(crate) fn matmul_shapes(sa: &[usize], sb: &[usize]) -> Result<MatmulShape> {
    const OP: &str = "matmul";
    if sa.len() < 2 {
        return Err(Error::shape(OP, "a", sa, "[..., M, K]"));
    }
    if sb.len() < 2 {
        return Err(Error::shape(OP, "b", sb, "[..., K, N]"));
    }
    let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (k2, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if k != k2 {
        return Err(Error::shape(OP, "b", sb, format!("[..., {k}, N] to match a's K = {k}")));
    }
    let (ba, bb) = (&sa[..sa.len() - 2], &sb[..sb.len() - 2]);
    let (lead, a_stride, b_stride) = if ba == bb {
        (ba.to_vec(), m * k, k * n)
    } else if bb.is_empty() {
        (ba.to_vec(), m * k, 0)
    } else if ba.is_empty() {
        (bb.to_vec(), 0, k * n)
    } else {
        return Err(Error::shape(OP, "b", sb, format!("batch dims {ba:?} like a's, or none")));
    };
    let batch: usize = lead.iter().product();
    let mut out = lead;
    out.extend([m, n]);
    Ok(MatmulShape { dims: (batch, m, n, k), strides: (a_stride, b_stride), out })
}

/// C = A · Bᵀ for A [batch, M, K] and B [batch, N, K] (same batch): attention scores.
pub fn matmul_nt(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    const OP: &str = "matmul_nt";
    a.expect_f32(OP, "a")?;
    b.expect_f32(OP, "b")?;
    let (batch, m, k) = match a.shape() {
        &[bt, m, k] => (bt, m, k),
        s => return Err(Error::shape(OP, "a", s, "[batch, M, K]")),
    };
    let n = match b.shape() {
        &[bb, n, kb] if bb == batch && kb == k => n,
        s => return Err(Error::shape(OP, "b", s, format!("[{batch}, N, {k}]"))),
    };
    let dims = (batch, m, n, k);
    record(rec, OP, a, b, None, dims, (m * k, n * k), true, Activation::Identity, &[batch, m, n], MatmulKernel::Auto)
}

/// y = act(x Wᵀ + b) for x [..., I], W [O, I], b [O].
pub fn linear(rec: &mut Recorder, x: &Tensor, w: &Tensor, bias: Option<&Tensor>, act: Activation) -> Result<Tensor> {
    const OP: &str = "linear";
    x.expect_f32(OP, "input")?;
    w.expect_f32(OP, "weight")?;
    act.validate()?;
    if let Some(b) = bias {
        b.expect_f32(OP, "bias")?;
    }
    let (rows, i, o) = linear_shapes(x.shape(), w.shape(), bias.map(|b| b.shape()))?;
    let sx = x.shape();
    let mut out = sx[..sx.len() - 1].to_vec();
    out.push(o);
    record(rec, OP, x, w, bias, (1, rows, o, i), (0, 0), true, act, &out, MatmulKernel::Auto)
}

/// Checks a linear layer's shapes, x [..., I], W [O, I], b [O]: returns (rows, I, O). Shared by
/// the op and the CPU path of `eval`.
pub(crate) fn linear_shapes(x: &[usize], w: &[usize], bias: Option<&[usize]>) -> Result<(usize, usize, usize)> {
    const OP: &str = "linear";
    let i = *x.last().ok_or_else(|| Error::shape(OP, "input", x, "[..., I]"))?;
    if w.len() != 2 || w[1] != i {
        return Err(Error::shape(OP, "weight", w, format!("[O, {i}]")));
    }
    let o = w[0];
    if let Some(b) = bias {
        if b != [o] {
            return Err(Error::shape(OP, "bias", b, format!("[{o}]")));
        }
    }
    Ok((x.iter().product::<usize>() / i.max(1), i, o))
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "matmul",
        "MatmulParams",
        MatmulParams,
        [m, n, k, batch, a_stride, b_stride, c_stride, ntiles, k_lo, k_hi, mode, pad]
    )]
}
