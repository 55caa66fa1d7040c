//! Multi-head self-attention (the MDM denoiser's core; docs/ops.md, attention and the MDM denoiser): softmax(Q Kᵀ/√dh)
//! V per head, from the tiled matmuls and the kernels of shaders/attention.wgsl, recorded on one recorder.

use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct AttnParams {
    rows: u32,
    len: u32,
    scale: f32,
    _p: u32,
    b: u32,
    f: u32,
    h: u32,
    dh: u32,
}

const BINDINGS: [Access; 2] = [Access::Read, Access::ReadWrite];

/// softmax(scale · x) over the last axis.
pub fn softmax(rec: &mut Recorder, x: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "softmax";
    x.expect_f32(OP, "input")?;
    super::finite(OP, "scale", scale, false)?;
    let len = *x.shape().last().ok_or_else(|| Error::shape(OP, "input", x.shape(), "[..., L]"))?;
    let rows = x.numel() / len;
    let ctx = rec.context();
    let p = AttnParams { rows: rows as u32, len: len as u32, scale, ..Default::default() };
    let y = rec.alloc(OP, x.shape(), DType::F32)?;
    let budget = rec.loop_budget();
    // One workgroup per row loops len/256 times in each of three passes.
    if 3 * (len as u64).div_ceil(256) <= budget {
        let kernel = ctx.kernel(&PipelineKey::new("attention", "softmax", &BINDINGS))?;
        let groups = ctx.grid_1d(rows as u64, OP)?;
        rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
        return Ok(y);
    }
    // Longer rows: slices of a row in workgroups of their own (h: slices, dh: slice length).
    let split = super::norm::RowSplit::new(OP, "input", len, budget)?;
    let p = AttnParams { h: split.slices as u32, dh: split.slice as u32, ..p };
    let part = rec.alloc(OP, &[rows, split.slices, 2], DType::F32)?;
    let groups = ctx.grid_1d((rows * split.slices) as u64, OP)?;
    let access = [Access::Read, Access::ReadWrite, Access::ReadWrite];
    for entry in ["sm_max_split", "sm_sum_split", "sm_apply_split"] {
        let kernel = ctx.kernel(&PipelineKey::new("attention", entry, &access))?;
        let out = (entry == "sm_apply_split").then_some(&y);
        rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(x), out, Some(&part)], groups)?;
    }
    Ok(y)
}

fn permute(rec: &mut Recorder, entry: &'static str, x: &Tensor, dims: [usize; 4], out: &[usize]) -> Result<Tensor> {
    let ctx = rec.context();
    let [b, f, h, dh] = dims;
    let p = AttnParams { b: b as u32, f: f as u32, h: h as u32, dh: dh as u32, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("attention", entry, &BINDINGS))?;
    let groups = super::elementwise_grid(ctx, x.numel(), entry)?;
    let y = rec.alloc(entry, out, DType::F32)?;
    rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// Multi-head attention of q, k, v [B, F, E] (already projected) with `heads` heads of E/heads:
/// softmax(Q Kᵀ / √dh) V per head, heads concatenated: [B, F, E].
pub fn attention(rec: &mut Recorder, q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    rec.atomic(|rec| attention_unit(rec, q, k, v, heads)).map_err(|e| e.within("attention"))
}

fn attention_unit(rec: &mut Recorder, q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "attention";
    q.expect_f32(OP, "q")?;
    let (b, f, e) = match q.shape() {
        &[b, f, e] => (b, f, e),
        s => return Err(Error::shape(OP, "q", s, "[B, F, E]")),
    };
    super::expect_shape(OP, "k", k, &[b, f, e])?;
    super::expect_shape(OP, "v", v, &[b, f, e])?;
    if heads == 0 || e % heads != 0 {
        return Err(Error::param(OP, "heads", format!("{heads} must divide the embedding size {e}")));
    }
    let dh = e / heads;
    let dims = [b, f, heads, dh];
    let split = [b * heads, f, dh];
    let (qh, kh, vh) = (
        permute(rec, "split_heads", q, dims, &split)?,
        permute(rec, "split_heads", k, dims, &split)?,
        permute(rec, "split_heads", v, dims, &split)?,
    );
    let scores = super::matmul::matmul_nt(rec, &qh, &kh)?;
    let probs = softmax(rec, &scores, 1.0 / (dh as f32).sqrt())?;
    let out = super::matmul(rec, &probs, &vh)?;
    permute(rec, "merge_heads", &out, dims, &[b, f, e])
}

/// The MDM sequence: [S, F + 1, E] with token 0 from `tok` and tokens 1.. = x [S, F, E], plus the
/// first F + 1 rows of the positional encoding pe [L ≥ F + 1, E]. `row` None: tok is [S, E], one
/// token per sample; `row` Some(r): tok is a table [R, E] (r < R) whose row r every sample takes
/// (the MDM's timestep token, precomputed for every timestep).
pub fn prepend_token(rec: &mut Recorder, x: &Tensor, tok: &Tensor, row: Option<usize>, pe: &Tensor) -> Result<Tensor> {
    const OP: &str = "prepend_token";
    x.expect_f32(OP, "x")?;
    let (s, f, e) = match x.shape() {
        &[s, f, e] => (s, f, e),
        sh => return Err(Error::shape(OP, "x", sh, "[S, F, E]")),
    };
    tok.expect_f32(OP, "token")?;
    match (tok.shape(), row) {
        (&[r, te], None) if te == e && r == s => {}
        (&[r, te], Some(i)) if te == e && i < r => {}
        (sh, None) => return Err(Error::shape(OP, "token", sh, format!("[{s}, {e}]"))),
        (sh, Some(i)) => return Err(Error::shape(OP, "token table", sh, format!("[R > {i}, {e}]"))),
    }
    pe.expect_f32(OP, "positional encoding")?;
    match pe.shape() {
        &[l, pe_e] if pe_e == e && l > f => {}
        sh => return Err(Error::shape(OP, "positional encoding", sh, format!("[L >= {}, {e}]", f + 1))),
    }
    let ctx = rec.context();
    let p = AttnParams {
        rows: row.is_some() as u32,
        len: row.unwrap_or(0) as u32,
        b: s as u32,
        f: f as u32,
        dh: e as u32,
        ..Default::default()
    };
    let kernel = ctx.kernel(&PipelineKey::new(
        "attention",
        "prepend_token",
        &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    ))?;
    let groups = super::elementwise_grid(ctx, s * (f + 1) * e, OP)?;
    let y = rec.alloc(OP, &[s, f + 1, e], DType::F32)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(tok), Some(pe), Some(&y)], groups)?;
    Ok(y)
}

/// x [S, F + 1, E] without its first token: [S, F, E].
pub fn drop_token(rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "drop_token";
    x.expect_f32(OP, "x")?;
    let (s, t, e) = match x.shape() {
        &[s, t, e] if t >= 2 => (s, t, e),
        sh => return Err(Error::shape(OP, "x", sh, "[S, F + 1, E] with F >= 1")),
    };
    let ctx = rec.context();
    let p = AttnParams { b: s as u32, f: (t - 1) as u32, dh: e as u32, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("attention", "drop_token", &BINDINGS))?;
    let groups = super::elementwise_grid(ctx, s * (t - 1) * e, OP)?;
    let y = rec.alloc(OP, &[s, t - 1, e], DType::F32)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("attention", "AttnParams", AttnParams, [rows, len, scale, _p, b, f, h, dh])]
}
