//! Likelihoods of neural responses (shaders/readout.wgsl; docs/ops.md, Poisson NLL and zero-inflated gamma
//! log-density): Poisson NLL and the zero-inflated gamma log-density.

use super::expect_shape;
use super::readout::{RoParams, BINDINGS};
use crate::error::{Error, Result};
use crate::runtime::{PipelineKey, Recorder};
use crate::shaders::overrides::readout as ov;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Sum,
    Mean,
}

impl Reduction {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Reduction::None,
            "sum" => Reduction::Sum,
            "mean" => Reduction::Mean,
            _ => return Err(Error::param("poisson_nll", "reduction", format!("{s:?} is not none, sum or mean"))),
        })
    }
}

/// rate − target·log(rate + eps) (`PoissonNLLLoss(log_input=False, full=False)`): elementwise, or
/// its sum or mean as a scalar (shape []).
pub fn poisson_nll(
    rec: &mut Recorder,
    rate: &Tensor,
    target: &Tensor,
    eps: f32,
    reduction: Reduction,
) -> Result<Tensor> {
    const OP: &str = "poisson_nll";
    rate.expect_f32(OP, "rate")?;
    expect_shape(OP, "target", target, rate.shape())?;
    super::finite(OP, "eps", eps, false)?;
    if eps < 0.0 {
        return Err(Error::param(OP, "eps", format!("{eps} must be >= 0")));
    }
    let ctx = rec.context();
    let total = rate.numel();
    let groups = super::elementwise_grid(ctx, total, OP)?;
    let reduce = reduction != Reduction::None;
    let p = RoParams { total: total as u32, eps, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("readout", "poisson_nll", &BINDINGS).flag(ov::REDUCE, reduce))?;
    if !reduce {
        let y = rec.alloc(OP, rate.shape(), DType::F32)?;
        rec.dispatch(
            OP,
            kernel,
            bytemuck::bytes_of(&p),
            &[Some(rate), Some(target), None, None, None, Some(&y), None],
            groups,
        )?;
        return Ok(y);
    }
    let mut count = (groups[0] * groups[1]) as usize;
    let mut partials = rec.alloc(OP, &[count], DType::F32)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[Some(rate), Some(target), None, None, None, Some(&partials), None],
        groups,
    )?;
    // sum_partials' invocations each loop over count / 256 partials: past the loop budget, levels
    // of per-workgroup sums first (each a loop-free tree), until the last is within it.
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    while count.div_ceil(256) > budget {
        let bs = ctx.kernel(&PipelineKey::new("readout", "block_sum", &BINDINGS))?;
        let g = super::elementwise_grid(ctx, count, OP)?;
        let next = (g[0] * g[1]) as usize;
        let level = rec.alloc(OP, &[next], DType::F32)?;
        let pl = RoParams { total: count as u32, ..Default::default() };
        rec.dispatch(
            "poisson_nll/level",
            bs,
            bytemuck::bytes_of(&pl),
            &[Some(&partials), None, None, None, None, Some(&level), None],
            g,
        )?;
        (count, partials) = (next, level);
    }
    let scale = if reduction == Reduction::Mean { 1.0 / total as f32 } else { 1.0 };
    let pf = RoParams { count: count as u32, scale, ..Default::default() };
    let y = rec.alloc(OP, &[], DType::F32)?;
    let fin = ctx.kernel(&PipelineKey::new("readout", "sum_partials", &BINDINGS))?;
    rec.dispatch(
        "poisson_nll/sum",
        fin,
        bytemuck::bytes_of(&pf),
        &[Some(&partials), None, None, None, None, Some(&y), None],
        [1, 1, 1],
    )?;
    Ok(y)
}

/// The zero-inflated gamma log-density per element (docs/ops.md, zero-inflated gamma log-density; masked form):
/// log(1−q) − log(loc) where target ≤ loc, else log q + (k−1)·log(target−loc) − (target−loc)/θ − k·log θ − lgamma(k).
/// All tensors of one shape; q ∈ (0, 1) and θ, k, loc > 0 are the caller's to keep.
pub fn zig_loglik(
    rec: &mut Recorder,
    target: &Tensor,
    q: &Tensor,
    theta: &Tensor,
    k: &Tensor,
    loc: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "zig_loglik";
    target.expect_f32(OP, "target")?;
    for (t, name) in [(q, "q"), (theta, "theta"), (k, "k"), (loc, "loc")] {
        expect_shape(OP, name, t, target.shape())?;
    }
    let ctx = rec.context();
    let total = target.numel();
    let p = RoParams { total: total as u32, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("readout", "zig_loglik", &BINDINGS))?;
    let y = rec.alloc(OP, target.shape(), DType::F32)?;
    let groups = super::elementwise_grid(ctx, total, OP)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[Some(target), Some(q), Some(theta), Some(k), Some(loc), Some(&y), None],
        groups,
    )?;
    Ok(y)
}

/// Per-neuron Pearson correlation across trials of responses a and b [T, M]: za = (a − mean) /
/// (std + eps) with ddof 0, corr = mean(za·zb), as neuralpredictors' numpy `corr` (eps 1e-8). [M].
pub fn pearson(rec: &mut Recorder, a: &Tensor, b: &Tensor, eps: f32) -> Result<Tensor> {
    const OP: &str = "pearson";
    a.expect_f32(OP, "a")?;
    expect_shape(OP, "b", b, a.shape())?;
    super::finite(OP, "eps", eps, false)?;
    let (t, m) = match a.shape() {
        &[t, m] => (t, m),
        s => return Err(Error::shape(OP, "a", s, "[trials, neurons]")),
    };
    let ctx = rec.context();
    let p = RoParams { n: t as u32, m: m as u32, eps, ..Default::default() };
    let y = rec.alloc(OP, &[m], DType::F32)?;
    let groups = super::elementwise_grid(ctx, m, OP)?;
    // One invocation per neuron loops twice over the trials. Past the loop budget, both passes go
    // in chunks of trials across dispatches, the running sums in a [M, 5] buffer.
    let budget = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    if t.saturating_mul(2) <= budget {
        let kernel = ctx.kernel(&PipelineKey::new("readout", "pearson", &BINDINGS))?;
        rec.dispatch(
            OP,
            kernel,
            bytemuck::bytes_of(&p),
            &[Some(a), Some(b), None, None, None, Some(&y), None],
            groups,
        )?;
        return Ok(y);
    }
    let st = rec.alloc(OP, &[m, 5], DType::F32)?;
    let mut bindings = BINDINGS;
    bindings[6] = crate::runtime::Access::ReadWrite;
    let kernel = ctx.kernel(&PipelineKey::new("readout", "pearson_part", &bindings))?;
    let parts: Vec<(usize, usize)> = crate::runtime::chunks(t, budget).collect();
    for pass in 0..2u32 {
        for (k, &(lo, hi)) in parts.iter().enumerate() {
            let part = (k == 0) as u32 | (((k == parts.len() - 1) as u32) << 1) | (pass << 2);
            let pk = RoParams { lo: lo as u32, hi: hi as u32, part, ..p };
            rec.dispatch(
                OP,
                kernel.clone(),
                bytemuck::bytes_of(&pk),
                &[Some(a), Some(b), None, None, None, Some(&y), Some(&st)],
                groups,
            )?;
        }
    }
    Ok(y)
}
