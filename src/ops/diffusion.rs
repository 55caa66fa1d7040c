//! The sampler's fused elementwise passes (shaders/diffusion.wgsl): a DDPM or DDIM step (with
//! classifier or score guidance from a gradient, optionally), the classifier-free guidance combine
//! and forward noising.

use super::{expect_shape, finite};
use crate::diffusion::StepCoeffs;
use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::diffusion as ov;
use crate::tensor::{DType, Tensor};

/// Where a step's noise comes from.
#[derive(Clone, Copy, Debug)]
pub enum Noise<'a> {
    None,
    /// A tensor of the sample's shape.
    Tensor(&'a Tensor),
    /// The engine's counter-based generator: the same values as `ops::random_normal(shape, seed, offset)`.
    Philox {
        seed: u64,
        offset: u64,
    },
}

#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct StepParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    off_lo: u32,
    off_hi: u32,
    row_len: u32,
    q_lo: u32,
    q_round: u32,
    a_s: f32,
    a_m: f32,
    e_s: f32,
    e_m: f32,
    p_x0: f32,
    p_eps: f32,
    p_s: f32,
    sigma: f32,
    clip: f32,
    w: f32,
    q_w: f32,
    s_max: f32,
    g_x0: f32,
    g_eps: f32,
    g_prev: f32,
    _p3: f32,
    q_slices: u32,
    q_slice: u32,
    _p4: [u32; 2],
}

/// How a gradient g = ∇ₓ log p(y | x_t) (a classifier's, or any differentiable objective's) guides a
/// step (docs/ops.md, diffusion schedules and steps; guided-diffusion's `condition_mean` and `condition_score`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuidanceKind {
    /// μ ← μ + scale · σ_t² · g: the step's mean moves by its variance times the gradient; x̂0 is
    /// left as predicted. No effect where the step adds no noise (σ_t = 0: the last step, or DDIM
    /// with η = 0).
    Mean,
    /// ε̂ ← ε̂ − scale · √(1 − ᾱ_t) · g, and x̂0 from the guided ε̂ (x̂0 += scale · (1 − ᾱ_t)/√ᾱ_t · g);
    /// the step then uses both. Where x̂0 is clipped, the guided x̂0 is the clipped one moved, and ε̂
    /// the model's (as the unguided DDIM step uses it).
    Score,
}

/// A step's guidance: the gradient (the sample's shape) and its scale.
#[derive(Clone, Copy, Debug)]
pub struct Guidance<'a> {
    pub grad: &'a Tensor,
    pub scale: f64,
    pub kind: GuidanceKind,
}

impl Guidance<'_> {
    /// (g_x0, g_eps, g_prev): what one unit of gradient adds to x̂0, ε̂ and the previous sample.
    pub fn coefficients(&self, c: &StepCoeffs) -> Result<(f64, f64, f64)> {
        const OP: &str = "sampler_step";
        if !self.scale.is_finite() {
            return Err(Error::param(OP, "guidance scale", format!("{} is not finite", self.scale)));
        }
        Ok(match self.kind {
            GuidanceKind::Mean => (0.0, 0.0, self.scale * c.sigma * c.sigma),
            GuidanceKind::Score => {
                let a = c.abar;
                if !(a > 0.0 && a < 1.0) {
                    return Err(Error::param(
                        OP,
                        "guidance",
                        format!("score guidance needs the step's alpha-bar in (0, 1); the coefficients have {a}"),
                    ));
                }
                (self.scale * (1.0 - a) / a.sqrt(), -self.scale * (1.0 - a).sqrt(), 0.0)
            }
        })
    }
}

const BINDINGS: [Access; 5] = [Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];
const STEP_BINDINGS: [Access; 7] =
    [Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite, Access::Read, Access::Read];

fn noise_parts<'a>(
    op: &'static str,
    noise: Noise<'a>,
    shape: &[usize],
    p: &mut StepParams,
) -> Result<(u32, Option<&'a Tensor>)> {
    Ok(match noise {
        Noise::None => (0, None),
        Noise::Tensor(z) => {
            expect_shape(op, "noise", z, shape)?;
            (1, Some(z))
        }
        Noise::Philox { seed, offset } => {
            p.seed_lo = seed as u32;
            p.seed_hi = (seed >> 32) as u32;
            p.off_lo = offset as u32;
            p.off_hi = (offset >> 32) as u32;
            (2, None)
        }
    })
}

/// One sampler step from `sample` and the model's `model_output`: returns (prev_sample,
/// pred_original_sample). Noise is needed when the coefficients have sigma > 0.
pub fn sampler_step(
    rec: &mut Recorder,
    sample: &Tensor,
    model_output: &Tensor,
    noise: Noise,
    c: &StepCoeffs,
) -> Result<(Tensor, Tensor)> {
    rec.atomic(|rec| sampler_step_unit(rec, sample, model_output, noise, c, None))
}

/// [`sampler_step`] guided by a gradient (classifier or score guidance), in the same pass.
pub fn sampler_step_guided(
    rec: &mut Recorder,
    sample: &Tensor,
    model_output: &Tensor,
    noise: Noise,
    c: &StepCoeffs,
    guidance: Guidance,
) -> Result<(Tensor, Tensor)> {
    rec.atomic(|rec| sampler_step_unit(rec, sample, model_output, noise, c, Some(guidance)))
}

fn sampler_step_unit(
    rec: &mut Recorder,
    sample: &Tensor,
    model_output: &Tensor,
    noise: Noise,
    c: &StepCoeffs,
    guidance: Option<Guidance>,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "sampler_step";
    sample.expect_f32(OP, "sample")?;
    expect_shape(OP, "model_output", model_output, sample.shape())?;
    let (g_x0, g_eps, g_prev) = match &guidance {
        Some(g) => {
            expect_shape(OP, "guidance gradient", g.grad, sample.shape())?;
            g.coefficients(c)?
        }
        None => (0.0, 0.0, 0.0),
    };
    for (name, v) in [
        ("a_s", c.a_s),
        ("a_m", c.a_m),
        ("e_s", c.e_s),
        ("e_m", c.e_m),
        ("p_x0", c.p_x0),
        ("p_eps", c.p_eps),
        ("p_s", c.p_s),
        ("sigma", c.sigma),
    ] {
        if !v.is_finite() {
            return Err(Error::param(OP, name, format!("coefficient {v} is not finite")));
        }
    }
    if c.sigma > 0.0 && matches!(noise, Noise::None) {
        return Err(Error::param(OP, "noise", "this step adds noise (sigma > 0) but none was given"));
    }
    let ctx = rec.context();
    let mut p = StepParams {
        n: sample.numel() as u32,
        a_s: c.a_s as f32,
        a_m: c.a_m as f32,
        e_s: c.e_s as f32,
        e_m: c.e_m as f32,
        p_x0: c.p_x0 as f32,
        p_eps: c.p_eps as f32,
        p_s: c.p_s as f32,
        sigma: c.sigma as f32,
        clip: c.clip.unwrap_or(0.0) as f32,
        g_x0: g_x0 as f32,
        g_eps: g_eps as f32,
        g_prev: g_prev as f32,
        ..Default::default()
    };
    let (mode, z) = noise_parts(OP, noise, sample.shape(), &mut p)?;
    let mode = if c.sigma > 0.0 { mode } else { 0 };
    // Dynamic thresholding: s per sample (the first axis) first, in its own pass.
    let s = match c.threshold {
        None => None,
        Some(th) => {
            th.validate(OP)?;
            let rows = *sample.shape().first().ok_or_else(|| {
                Error::shape(OP, "sample", sample.shape(), "at least one axis (the samples thresholded apart)")
            })?;
            let len = sample.numel() / rows;
            // torch.quantile's position, in f32 as torch computes it for f32 input.
            let rank = th.ratio as f32 * (len - 1) as f32;
            let (lo, w) = (rank.floor(), rank - rank.floor());
            let q = StepParams {
                n: rows as u32,
                row_len: len as u32,
                q_lo: (lo as u32).min(len as u32 - 1),
                q_w: w,
                s_max: th.max as f32,
                a_s: p.a_s,
                a_m: p.a_m,
                ..Default::default()
            };
            p.row_len = len as u32;
            let s = rec.alloc(OP, &[rows], DType::F32)?;
            let groups = ctx.grid_1d(rows as u64, OP)?;
            let budget = rec.loop_budget();
            // One workgroup per row: two selects of 4 rounds, each a strided loop over the row and
            // thread 0's scan of at most 256 bins.
            if 8 * ((len as u64).div_ceil(256) + 256) <= budget {
                let kernel = ctx.kernel(&PipelineKey::new("diffusion", "x0_quantile", &BINDINGS))?;
                rec.dispatch(
                    "sampler_step/x0_quantile",
                    kernel,
                    bytemuck::bytes_of(&q),
                    &[Some(sample), Some(model_output), None, Some(&s), None],
                    groups,
                )?;
            } else {
                // Longer rows: each round's histograms from slices of the row in workgroups of
                // their own, then one workgroup per row picks the digits.
                let slice = 256 * (budget as usize / 2);
                let slices = len.div_ceil(slice);
                let state = rec.alloc(OP, &[rows, 520], DType::F32)?;
                rec.clear(&state);
                let hist = ctx.kernel(&PipelineKey::new("diffusion", "tq_hist_split", &BINDINGS))?;
                let pick = ctx.kernel(&PipelineKey::new("diffusion", "tq_pick_split", &BINDINGS))?;
                let hist_groups = ctx.grid_1d((rows * slices) as u64, OP)?;
                for round in 0..4u32 {
                    let pr = StepParams { q_round: round, q_slices: slices as u32, q_slice: slice as u32, ..q };
                    let bufs = [Some(sample), Some(model_output), None, Some(&s), Some(&state)];
                    rec.dispatch(
                        "sampler_step/x0_quantile",
                        hist.clone(),
                        bytemuck::bytes_of(&pr),
                        &bufs,
                        hist_groups,
                    )?;
                    rec.dispatch("sampler_step/x0_quantile", pick.clone(), bytemuck::bytes_of(&pr), &bufs, groups)?;
                }
            }
            Some(s)
        }
    };
    let key = PipelineKey::new("diffusion", "sampler_step", &STEP_BINDINGS)
        .with(ov::NOISE, mode as f64)
        .flag(ov::CLIP, c.clip.is_some() && s.is_none())
        .flag(ov::THRESH, s.is_some())
        .flag(ov::GUIDE, guidance.is_some());
    let kernel = ctx.kernel(&key)?;
    let groups = super::elementwise_grid(ctx, sample.numel(), OP)?;
    let prev = rec.alloc(OP, sample.shape(), DType::F32)?;
    let x0 = rec.alloc(OP, sample.shape(), DType::F32)?;
    rec.dispatch(
        OP,
        kernel,
        bytemuck::bytes_of(&p),
        &[
            Some(sample),
            Some(model_output),
            if mode == 1 { z } else { None },
            Some(&prev),
            Some(&x0),
            s.as_ref(),
            guidance.map(|g| g.grad),
        ],
        groups,
    )?;
    Ok((prev, x0))
}

/// Classifier-free guidance: uncond + w · (cond − uncond).
pub fn cfg_combine(rec: &mut Recorder, uncond: &Tensor, cond: &Tensor, w: f32) -> Result<Tensor> {
    const OP: &str = "cfg_combine";
    uncond.expect_f32(OP, "uncond")?;
    expect_shape(OP, "cond", cond, uncond.shape())?;
    finite(OP, "w", w, false)?;
    let ctx = rec.context();
    let p = StepParams { n: uncond.numel() as u32, w, ..Default::default() };
    let kernel = ctx.kernel(&PipelineKey::new("diffusion", "cfg_combine", &BINDINGS))?;
    let groups = super::elementwise_grid(ctx, uncond.numel(), OP)?;
    let out = rec.alloc(OP, uncond.shape(), DType::F32)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(uncond), Some(cond), None, Some(&out), None], groups)?;
    Ok(out)
}

/// Forward noising x_t = √ᾱ·x0 + √(1−ᾱ)·z.
pub fn add_noise(rec: &mut Recorder, x0: &Tensor, alpha_cumprod: f64, noise: Noise) -> Result<Tensor> {
    const OP: &str = "add_noise";
    x0.expect_f32(OP, "x0")?;
    if !(alpha_cumprod > 0.0 && alpha_cumprod <= 1.0) {
        return Err(Error::param(OP, "alpha_cumprod", format!("{alpha_cumprod} must be in (0, 1]")));
    }
    if matches!(noise, Noise::None) {
        return Err(Error::param(OP, "noise", "forward noising needs noise"));
    }
    let ctx = rec.context();
    let mut p = StepParams {
        n: x0.numel() as u32,
        p_x0: alpha_cumprod.sqrt() as f32,
        sigma: (1.0 - alpha_cumprod).sqrt() as f32,
        ..Default::default()
    };
    let (mode, z) = noise_parts(OP, noise, x0.shape(), &mut p)?;
    let kernel = ctx.kernel(&PipelineKey::new("diffusion", "add_noise", &BINDINGS).with(ov::NOISE, mode as f64))?;
    let groups = super::elementwise_grid(ctx, x0.numel(), OP)?;
    let out = rec.alloc(OP, x0.shape(), DType::F32)?;
    rec.dispatch(OP, kernel, bytemuck::bytes_of(&p), &[Some(x0), None, z, Some(&out), None], groups)?;
    Ok(out)
}

/// A `DDPMScheduler.step` from timestep `t`: (prev_sample, pred_original_sample).
pub fn ddpm_step(
    rec: &mut Recorder,
    cfg: &crate::diffusion::DdpmConfig,
    t: usize,
    sample: &Tensor,
    model_output: &Tensor,
    noise: Noise,
) -> Result<(Tensor, Tensor)> {
    let c = cfg.coeffs(t)?;
    sampler_step(rec, sample, model_output, noise, &c)
}

/// A `DDIMScheduler.step` from timestep `t`: (prev_sample, pred_original_sample).
pub fn ddim_step(
    rec: &mut Recorder,
    cfg: &crate::diffusion::DdimConfig,
    t: usize,
    sample: &Tensor,
    model_output: &Tensor,
    noise: Noise,
) -> Result<(Tensor, Tensor)> {
    let c = cfg.coeffs(t)?;
    sampler_step(rec, sample, model_output, noise, &c)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "diffusion",
        "StepParams",
        StepParams,
        [
            n, seed_lo, seed_hi, off_lo, off_hi, row_len, q_lo, q_round, a_s, a_m, e_s, e_m, p_x0, p_eps, p_s, sigma,
            clip, w, q_w, s_max, g_x0, g_eps, g_prev, _p3, q_slices, q_slice, _p4
        ]
    )]
}
