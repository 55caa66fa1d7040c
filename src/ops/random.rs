//! Counter-based random numbers on the device (shaders/random.wgsl): a stream is named by
//! (seed, offset); element i is the same on every run, every device and the CPU reference.

use crate::error::Result;
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
    _p: [u32; 2],
}

fn fill(
    rec: &mut Recorder,
    entry: &'static str,
    shape: &[usize],
    seed: u64,
    offset: u64,
    scale: f32,
) -> Result<Tensor> {
    super::finite(entry, "scale", scale, false)?;
    let ctx = rec.context();
    let n = numel(entry, "shape", shape)?;
    let y = rec.alloc(entry, shape, DType::F32)?;
    let groups = super::elementwise_grid(ctx, n.div_ceil(4), entry)?;
    let kernel = ctx.kernel(&PipelineKey::new("random", entry, &[Access::ReadWrite]))?;
    let p = RandParams {
        n: n as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        off_lo: offset as u32,
        off_hi: (offset >> 32) as u32,
        scale,
        _p: [0; 2],
    };
    rec.dispatch(entry, kernel, bytemuck::bytes_of(&p), &[Some(&y)], groups)?;
    Ok(y)
}

/// Uniforms in (0, 1] of stream (seed, offset).
pub fn random_uniform(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64) -> Result<Tensor> {
    fill(rec, "random_uniform", shape, seed, offset, 1.0)
}

/// Standard normals (Box–Muller) of stream (seed, offset).
pub fn random_normal(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64) -> Result<Tensor> {
    fill(rec, "random_normal", shape, seed, offset, 1.0)
}

/// `scale` times the standard normals of stream (seed, offset) (a sampling temperature).
pub fn random_normal_scaled(rec: &mut Recorder, shape: &[usize], seed: u64, offset: u64, scale: f32) -> Result<Tensor> {
    fill(rec, "random_normal", shape, seed, offset, scale)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("random", "RandParams", RandParams, [n, seed_lo, seed_hi, off_lo, off_hi, scale, _p])]
}
