//! Respaced schedules in the guided-diffusion / Platypose style (`space_timesteps`,
//! `SpacedDiffusion`; docs/ops.md, diffusion schedules and steps), in f64: a base schedule of T training steps, the kept
//! timesteps `linspace(0, T−1, n)` truncated to integers, the respaced β'_k = 1 − ᾱ_{m_k}/ᾱ_{m_{k−1}},
//! and every table recomputed from β' (posterior mean coefficients, the FIXED_SMALL variance and its
//! clipped log).

use super::schedule::{alphas_cumprod, betas, BetaSchedule};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct SpacedSchedule {
    /// The original timestep of each respaced index k (what the model is fed), increasing.
    pub timestep_map: Vec<usize>,
    pub betas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    pub alphas_cumprod_prev: Vec<f64>,
    pub posterior_variance: Vec<f64>,
    /// log(posterior variance) with index 0 taking index 1's (guided-diffusion's clipping).
    pub posterior_log_variance_clipped: Vec<f64>,
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
}

impl SpacedSchedule {
    /// `space_timesteps(T, "ddimN")` of a base schedule: n kept timesteps of T.
    pub fn new(kind: BetaSchedule, t: usize, n: usize) -> Result<SpacedSchedule> {
        if n < 2 || n > t {
            return Err(Error::param("schedule", "steps", format!("{n} must be in 2..={t} (the training steps)")));
        }
        let base = betas(kind, t, 1e-4, 0.02)?;
        let ac = alphas_cumprod(&base);
        // np.linspace(0, T − 1, n).astype(int) as numpy computes it (i · step, the last entry
        // exactly T − 1), truncated, then the set (sorted, unique).
        let step = (t - 1) as f64 / (n - 1) as f64;
        let mut map: Vec<usize> = (0..n).map(|i| if i == n - 1 { t - 1 } else { (i as f64 * step) as usize }).collect();
        map.dedup();
        let mut last = 1.0;
        let betas: Vec<f64> = map
            .iter()
            .map(|&m| {
                let b = 1.0 - ac[m] / last;
                last = ac[m];
                b
            })
            .collect();
        let alphas_cumprod = alphas_cumprod(&betas);
        let alphas_cumprod_prev: Vec<f64> =
            std::iter::once(1.0).chain(alphas_cumprod[..alphas_cumprod.len() - 1].iter().copied()).collect();
        let k = betas.len();
        let posterior_variance: Vec<f64> =
            (0..k).map(|i| betas[i] * (1.0 - alphas_cumprod_prev[i]) / (1.0 - alphas_cumprod[i])).collect();
        let posterior_log_variance_clipped: Vec<f64> =
            (0..k).map(|i| posterior_variance[if i == 0 && k > 1 { 1 } else { i }].ln()).collect();
        let posterior_mean_coef1 =
            (0..k).map(|i| betas[i] * alphas_cumprod_prev[i].sqrt() / (1.0 - alphas_cumprod[i])).collect();
        let posterior_mean_coef2 = (0..k)
            .map(|i| (1.0 - alphas_cumprod_prev[i]) * (1.0 - betas[i]).sqrt() / (1.0 - alphas_cumprod[i]))
            .collect();
        Ok(SpacedSchedule {
            timestep_map: map,
            betas,
            alphas_cumprod,
            alphas_cumprod_prev,
            posterior_variance,
            posterior_log_variance_clipped,
            posterior_mean_coef1,
            posterior_mean_coef2,
        })
    }

    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }
}
