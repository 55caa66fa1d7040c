//! DDPM and DDIM steps written out per element as diffusers' `step()` does (not through
//! `StepCoeffs`), in f64.

use crate::diffusion::schedule::{alphas_cumprod, betas};
use crate::diffusion::{DdimConfig, DdpmConfig, Prediction, Threshold, VarianceType};
use crate::error::{Error, Result};
use crate::ops::GuidanceKind;

fn x0_and_eps(pred: Prediction, a: f64, x: f64, m: f64) -> (f64, f64) {
    let b = 1.0 - a;
    match pred {
        Prediction::Epsilon => ((x - b.sqrt() * m) / a.sqrt(), m),
        Prediction::Sample => (m, (x - a.sqrt() * m) / b.sqrt()),
        Prediction::VPrediction => (a.sqrt() * x - b.sqrt() * m, a.sqrt() * m + b.sqrt() * x),
    }
}

/// diffusers' `_threshold_sample` on x̂0 of `rows` samples (the first axis), in place:
/// s = quantile(|x̂0|, ratio) per sample (linear interpolation, as torch.quantile), clamped to
/// [1, max]; x̂0 ← clamp(x̂0, −s, s) / s. A NaN in a sample makes its quantile NaN (torch.quantile),
/// hence s and the whole thresholded sample (torch.clamp keeps NaN); the interpolation is
/// torch.lerp's (so an infinite order statistic may give NaN too).
pub fn threshold_sample(x0: &mut [f64], rows: usize, th: &Threshold) {
    let len = x0.len() / rows;
    for row in x0.chunks_mut(len) {
        let mut a: Vec<f64> = row.iter().map(|v| v.abs()).collect();
        a.sort_by(|p, q| p.total_cmp(q));
        let rank = th.ratio * (len - 1) as f64;
        let lo = (rank.floor() as usize).min(len - 1);
        let hi = (rank.ceil() as usize).min(len - 1);
        let w = rank - lo as f64;
        let q = if a.iter().any(|v| v.is_nan()) {
            f64::NAN
        } else if hi == lo {
            a[lo]
        } else if w < 0.5 {
            a[lo] + w * (a[hi] - a[lo])
        } else {
            a[hi] - (a[hi] - a[lo]) * (1.0 - w)
        };
        if q.is_nan() {
            row.iter_mut().for_each(|v| *v = f64::NAN);
            continue;
        }
        let s = q.clamp(1.0, th.max);
        row.iter_mut().for_each(|v| *v = v.clamp(-s, s) / s);
    }
}

/// x̂0 of every element (clipped or thresholded as the config says).
fn processed_x0(
    pred: Prediction,
    a: f64,
    sample: &[f32],
    model: &[f32],
    clip: Option<f64>,
    threshold: Option<Threshold>,
    rows: usize,
) -> Vec<f64> {
    let mut x0: Vec<f64> = sample.iter().zip(model).map(|(&x, &m)| x0_and_eps(pred, a, x as f64, m as f64).0).collect();
    if let Some(th) = threshold {
        threshold_sample(&mut x0, rows, &th);
    } else if let Some(r) = clip {
        x0.iter_mut().for_each(|v| *v = v.clamp(-r, r));
    }
    x0
}

fn check_rows(op: &'static str, n: usize, rows: usize) -> Result<()> {
    if rows == 0 || n % rows != 0 {
        return Err(Error::param(op, "rows", format!("{rows} rows do not divide {n} elements")));
    }
    Ok(())
}

fn check_len(op: &'static str, n: usize, other: &[f32], what: &str) -> Result<()> {
    super::check_len(op, what, other, &[n])
}

/// `DDPMScheduler.step` with `noise` as the variance noise: (prev_sample, pred_original_sample).
pub fn ddpm_step(
    cfg: &DdpmConfig,
    t: usize,
    sample: &[f32],
    model: &[f32],
    noise: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    ddpm_step_rows(cfg, t, sample, model, noise, 1, None)
}

/// A step's guidance for the reference: the gradient, its kind and its scale (ops::Guidance).
pub type RefGuidance<'a> = Option<(&'a [f32], GuidanceKind, f64)>;

/// The guided x̂0 and ε̂ of score guidance, and the amount mean guidance adds, for ᾱ_t = `a` and
/// step variance `var` (docs/ops.md, diffusion schedules and steps).
fn guide(g: RefGuidance, k: usize, a: f64, var: f64, x0: &mut f64, eps: &mut f64) -> f64 {
    match g {
        None => 0.0,
        Some((grad, GuidanceKind::Mean, s)) => s * var * grad[k] as f64,
        Some((grad, GuidanceKind::Score, s)) => {
            // ε̂' = ε̂ − s √(1 − ᾱ) g, and x̂0 from it: x̂0' = x̂0 + s (1 − ᾱ)/√ᾱ g.
            let gk = s * grad[k] as f64;
            *eps -= (1.0 - a).sqrt() * gk;
            *x0 += (1.0 - a) / a.sqrt() * gk;
            0.0
        }
    }
}

/// [`ddpm_step`] on `rows` samples (the first axis), which dynamic thresholding treats apart, with
/// classifier or score guidance where given.
pub fn ddpm_step_rows(
    cfg: &DdpmConfig,
    t: usize,
    sample: &[f32],
    model: &[f32],
    noise: Option<&[f32]>,
    rows: usize,
    guidance: RefGuidance,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len("ddpm_step", sample.len(), model, "model_output")?;
    if let Some((g, _, _)) = guidance {
        check_len("ddpm_step", sample.len(), g, "guidance gradient")?;
    }
    let ac = alphas_cumprod(&betas(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)?);
    let steps = cfg.timesteps()?;
    let i = steps
        .iter()
        .position(|&s| s == t)
        .ok_or_else(|| Error::param("ddpm_step", "timestep", format!("{t} is not on the schedule")))?;
    let a = ac[t];
    let ap = if i + 1 < steps.len() { ac[steps[i + 1]] } else { 1.0 };
    let cur_alpha = a / ap;
    let cur_beta = 1.0 - cur_alpha;
    let var = match cfg.variance {
        VarianceType::FixedSmall => ((1.0 - ap) / (1.0 - a) * cur_beta).max(1e-20),
        VarianceType::FixedLarge => cur_beta,
    };
    if t > 0 {
        let z = noise.ok_or_else(|| Error::param("ddpm_step", "noise", "a step with t > 0 adds noise"))?;
        check_len("ddpm_step", sample.len(), z, "noise")?;
    }
    check_rows("ddpm_step", sample.len(), rows)?;
    cfg.coeffs(t)?; // the parameter checks of the GPU path (clip range, thresholding)
    let x0v = processed_x0(cfg.prediction, a, sample, model, cfg.clip, cfg.threshold, rows);
    let mut prev = vec![0f32; sample.len()];
    let mut x0s = vec![0f32; sample.len()];
    for k in 0..sample.len() {
        let x = sample[k] as f64;
        let mut x0 = x0v[k];
        let mut eps = 0.0; // the DDPM mean reads x̂0 only
        let g = guide(guidance, k, a, if t > 0 { var } else { 0.0 }, &mut x0, &mut eps);
        let mut p = (ap.sqrt() * cur_beta / (1.0 - a)) * x0 + (cur_alpha.sqrt() * (1.0 - ap) / (1.0 - a)) * x + g;
        if t > 0 {
            p += var.sqrt() * noise.map_or(0.0, |z| z[k] as f64);
        }
        prev[k] = p as f32;
        x0s[k] = x0 as f32;
    }
    Ok((prev, x0s))
}

/// `DDIMScheduler.step(eta, variance_noise = noise)`: (prev_sample, pred_original_sample).
pub fn ddim_step(
    cfg: &DdimConfig,
    t: usize,
    sample: &[f32],
    model: &[f32],
    noise: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<f32>)> {
    ddim_step_rows(cfg, t, sample, model, noise, 1, None)
}

/// [`ddim_step`] on `rows` samples (the first axis), which dynamic thresholding treats apart, with
/// classifier or score guidance where given.
pub fn ddim_step_rows(
    cfg: &DdimConfig,
    t: usize,
    sample: &[f32],
    model: &[f32],
    noise: Option<&[f32]>,
    rows: usize,
    guidance: RefGuidance,
) -> Result<(Vec<f32>, Vec<f32>)> {
    check_len("ddim_step", sample.len(), model, "model_output")?;
    if let Some((g, _, _)) = guidance {
        check_len("ddim_step", sample.len(), g, "guidance gradient")?;
    }
    let ac = alphas_cumprod(&betas(cfg.beta_schedule, cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end)?);
    if !cfg.timesteps()?.contains(&t) {
        return Err(Error::param("ddim_step", "timestep", format!("{t} is not on the schedule")));
    }
    let prev_t = t as i64 - (cfg.num_train_timesteps / cfg.num_inference_steps) as i64;
    let a = ac[t];
    let ap = if prev_t >= 0 {
        ac[prev_t as usize]
    } else if cfg.set_alpha_to_one {
        1.0
    } else {
        ac[0]
    };
    let variance = (1.0 - ap) / (1.0 - a) * (1.0 - a / ap);
    let std = cfg.eta * variance.sqrt();
    if cfg.eta > 0.0 {
        let z = noise.ok_or_else(|| Error::param("ddim_step", "noise", "eta > 0 needs noise"))?;
        check_len("ddim_step", sample.len(), z, "noise")?;
    }
    check_rows("ddim_step", sample.len(), rows)?;
    cfg.coeffs(t)?; // the parameter checks of the GPU path (clip range, thresholding, eta)
    let x0v = processed_x0(cfg.prediction, a, sample, model, cfg.clip, cfg.threshold, rows);
    let mut prev = vec![0f32; sample.len()];
    let mut x0s = vec![0f32; sample.len()];
    for k in 0..sample.len() {
        let (x, m) = (sample[k] as f64, model[k] as f64);
        let (_, mut eps) = x0_and_eps(cfg.prediction, a, x, m);
        let mut x0 = x0v[k];
        let g = guide(guidance, k, a, std * std, &mut x0, &mut eps);
        let mut p = ap.sqrt() * x0 + (1.0 - ap - std * std).max(0.0).sqrt() * eps + g;
        if cfg.eta > 0.0 {
            p += std * noise.map_or(0.0, |z| z[k] as f64);
        }
        prev[k] = p as f32;
        x0s[k] = x0 as f32;
    }
    Ok((prev, x0s))
}
