//! Counter-based random numbers on the device (shaders/random.wgsl): a stream is named by
//! (seed, offset); element i is the same on every run, every device and the CPU reference.

use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::tensor::{numel, DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RandParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    scale: f32,
    /// Elements per row, each row its own stream (seed, offset + row); 0 = one stream.
    row: u32,
    _p: u32,
}

#[allow(clippy::too_many_arguments)]
fn fill(
    rec: &mut Recorder,
    entry: &'static str,
    shape: &[usize],
    seed: u64,
    offset: u64,
    scale: f32,
    row: usize,
) -> Result<Tensor> {
    super::finite(entry, "scale", scale, false)?;
    let ctx = rec.context();
    let n = numel(entry, "shape", shape)?;
    if u32::try_from(n).is_err() {
        return Err(Error::shape(entry, "shape", shape, "fewer than 2^32 elements"));
    }
    let y = rec.alloc(entry, shape, DType::F32)?;
    // One invocation per block of four words (of each row in the row mode).
    let blocks = if row == 0 { n.div_ceil(4) } else { (n / row) * row.div_ceil(4) };
    let groups = super::elementwise_grid(ctx, blocks, entry)?;
    let kernel = ctx.kernel(&PipelineKey::new("random", entry, &[Access::ReadWrite]))?;
    let p = RandParams {
        n: n as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        off_lo: offset as u32,
        off_hi: (offset >> 32) as u32,
        scale,
        row: row as u32,
        _p: 0,
    };
    rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(&y)], groups)?;
    Ok(y)
}

/// Uniforms in (0, 1] of stream (seed, offset).
pub fn random_uniform(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64) -> Result<Tensor> {
    fill(rec, "random_uniform", shape, seed, offset, 1.0, 0)
}

/// Standard normals (Box–Muller) of stream (seed, offset).
pub fn random_normal(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64) -> Result<Tensor> {
    fill(rec, "random_normal", shape, seed, offset, 1.0, 0)
}

/// `scale` times the standard normals of stream (seed, offset) (a sampling temperature).
pub fn random_normal_scaled(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64, scale: f32) -> Result<Tensor> {
    fill(rec, "random_normal", shape, seed, offset, scale, 0)
}

/// `scale` times standard normals [rows, row_len], one stream per row: row r holds the first
/// `row_len` normals of stream (seed, offset + r) (wrapping at 2^64). A row's values do not
/// depend on how many rows a call draws, so per-frame noise can be drawn a chunk of frames at a
/// time (`models::Latent`'s latent noise, frame j its stream (seed, j)).
pub fn random_normal_rows(
    rec: &mut Recorder,
    rows: usize,
    row_len: usize,
    seed: u64,
    offset: u64,
    scale: f32,
) -> Result<Tensor> {
    const OP: &str = "random_normal_rows";
    if rows == 0 || row_len == 0 {
        return Err(Error::shape(OP, "shape", &[rows, row_len], "[rows >= 1, row_len >= 1]"));
    }
    fill(rec, "random_normal", &[rows, row_len], seed, offset, scale, row_len).map_err(|e| e.within(OP))
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "random",
        "RandParams",
        RandParams,
        [n, seed_lo, seed_hi, off_lo, off_hi, scale, row, _p]
    )]
}
