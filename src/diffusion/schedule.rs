//! Beta schedules, timestep grids and step coefficients, all in f64 (diffusers' `DDPMScheduler`
//! and `DDIMScheduler` semantics).

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    /// The cosine schedule: ᾱ(s) = cos²((s + 0.008)/1.008 · π/2), β capped at 0.999.
    SquaredCosCapV2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prediction {
    Epsilon,
    Sample,
    VPrediction,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarianceType {
    FixedSmall,
    FixedLarge,
}

impl BetaSchedule {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "linear" => BetaSchedule::Linear,
            "scaled_linear" => BetaSchedule::ScaledLinear,
            "squaredcos_cap_v2" => BetaSchedule::SquaredCosCapV2,
            _ => {
                return Err(Error::param(
                    "schedule",
                    "beta_schedule",
                    format!("{s:?} is not linear, scaled_linear or squaredcos_cap_v2"),
                ))
            }
        })
    }
}
impl Spacing {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            _ => {
                return Err(Error::param(
                    "schedule",
                    "timestep_spacing",
                    format!("{s:?} is not leading, trailing or linspace"),
                ))
            }
        })
    }
}
impl Prediction {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "epsilon" => Prediction::Epsilon,
            "sample" => Prediction::Sample,
            "v_prediction" => Prediction::VPrediction,
            _ => {
                return Err(Error::param(
                    "schedule",
                    "prediction_type",
                    format!("{s:?} is not epsilon, sample or v_prediction"),
                ))
            }
        })
    }
}
impl VarianceType {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fixed_small" => VarianceType::FixedSmall,
            "fixed_large" => VarianceType::FixedLarge,
            _ => {
                return Err(Error::param(
                    "ddpm_step",
                    "variance_type",
                    format!("{s:?} is not fixed_small or fixed_large"),
                ))
            }
        })
    }
}

/// The largest schedule accepted (diffusers' models use 1000 or fewer).
pub const MAX_TRAIN_TIMESTEPS: usize = 1_000_000;

/// β_0..β_{T−1}.
pub fn betas(kind: BetaSchedule, t: usize, beta_start: f64, beta_end: f64) -> Result<Vec<f64>> {
    if t == 0 || t > MAX_TRAIN_TIMESTEPS {
        return Err(Error::param(
            "schedule",
            "num_train_timesteps",
            format!("{t} must be between 1 and {MAX_TRAIN_TIMESTEPS}"),
        ));
    }
    for (name, v) in [("beta_start", beta_start), ("beta_end", beta_end)] {
        if !v.is_finite() || v <= 0.0 || v >= 1.0 {
            return Err(Error::param("schedule", name, format!("{v} must be in (0, 1)")));
        }
    }
    let lin = |a: f64, b: f64, i: usize| if t == 1 { a } else { a + (b - a) * i as f64 / (t - 1) as f64 };
    Ok(match kind {
        BetaSchedule::Linear => (0..t).map(|i| lin(beta_start, beta_end, i)).collect(),
        BetaSchedule::ScaledLinear => (0..t).map(|i| lin(beta_start.sqrt(), beta_end.sqrt(), i).powi(2)).collect(),
        BetaSchedule::SquaredCosCapV2 => {
            let ab = |s: f64| ((s + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
            (0..t).map(|i| (1.0 - ab((i + 1) as f64 / t as f64) / ab(i as f64 / t as f64)).min(0.999)).collect()
        }
    })
}

/// ᾱ_t = Π_{s≤t} (1 − β_s).
pub fn alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

/// The inference timesteps, largest first, as diffusers' `set_timesteps` makes them.
pub fn timesteps(t: usize, n: usize, spacing: Spacing, steps_offset: usize) -> Result<Vec<usize>> {
    if t > MAX_TRAIN_TIMESTEPS || steps_offset > MAX_TRAIN_TIMESTEPS {
        return Err(Error::param(
            "schedule",
            "num_train_timesteps",
            format!("{t} (offset {steps_offset}) past {MAX_TRAIN_TIMESTEPS}"),
        ));
    }
    if n == 0 || n > t {
        return Err(Error::param(
            "schedule",
            "num_inference_steps",
            format!("{n} must be between 1 and num_train_timesteps {t}"),
        ));
    }
    let v: Vec<i64> = match spacing {
        Spacing::Leading => {
            let ratio = t / n;
            (0..n).rev().map(|i| (i * ratio + steps_offset) as i64).collect()
        }
        Spacing::Trailing => {
            let ratio = t as f64 / n as f64;
            // np.round(np.arange(T, 0, -ratio)) - 1, rounding half to even.
            let mut v = Vec::new();
            let mut x = t as f64;
            let mut k = 0;
            while x > 0.0 {
                v.push(x.round_ties_even() as i64 - 1);
                k += 1;
                x = t as f64 - k as f64 * ratio;
            }
            v
        }
        Spacing::Linspace => (0..n)
            .rev()
            .map(|i| if n == 1 { 0 } else { ((t - 1) as f64 * i as f64 / (n - 1) as f64).round_ties_even() as i64 })
            .collect(),
    };
    v.into_iter()
        .map(|x| {
            if x < 0 || x as usize >= t {
                Err(Error::param("schedule", "steps_offset", format!("timestep {x} falls outside 0..{t}")))
            } else {
                Ok(x as usize)
            }
        })
        .collect()
}

/// Dynamic thresholding of x̂0 (diffusers `thresholding=True`, Imagen): per sample (the first
/// axis) s = quantile(|x̂0|, ratio), clamped to [1, max]; x̂0 ← clamp(x̂0, −s, s) / s. It takes the
/// place of clipping when both are set, as in diffusers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    /// `dynamic_thresholding_ratio` (diffusers' default 0.995).
    pub ratio: f64,
    /// `sample_max_value` (diffusers' default 1.0).
    pub max: f64,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold { ratio: 0.995, max: 1.0 }
    }
}

impl Threshold {
    pub fn validate(&self, op: &'static str) -> Result<()> {
        if !(self.ratio.is_finite() && self.ratio > 0.0 && self.ratio <= 1.0) {
            return Err(Error::param(op, "dynamic_thresholding_ratio", format!("{} must be in (0, 1]", self.ratio)));
        }
        if !(self.max.is_finite() && self.max >= 1.0) {
            return Err(Error::param(op, "sample_max_value", format!("{} must be finite and >= 1", self.max)));
        }
        Ok(())
    }
}

/// The coefficients of one fused step: x̂0 = a_s·x + a_m·m (then clipped to ±clip, or dynamically
/// thresholded), ε̂ = e_s·x + e_m·m, x_prev = p_x0·x̂0 + p_eps·ε̂ + p_s·x + sigma·z; `abar` is the
/// step's ᾱ_t (score guidance needs it; 0 where unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepCoeffs {
    pub a_s: f64,
    pub a_m: f64,
    pub e_s: f64,
    pub e_m: f64,
    pub clip: Option<f64>,
    pub threshold: Option<Threshold>,
    pub p_x0: f64,
    pub p_eps: f64,
    pub p_s: f64,
    pub sigma: f64,
    pub abar: f64,
}

/// x̂0 and ε̂ as linear combinations of the sample and the model output, for ᾱ_t = `a`.
fn parameterisation(pred: Prediction, a: f64) -> (f64, f64, f64, f64) {
    let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
    match pred {
        Prediction::Epsilon => (1.0 / sa, -sb / sa, 0.0, 1.0),
        Prediction::Sample => (0.0, 1.0, 1.0 / sb, -sa / sb),
        Prediction::VPrediction => (sa, -sb, sb, sa),
    }
}

/// The kernels take the coefficients as f32: a schedule so steep that ᾱ_t leaves f32's range makes
/// one of them overflow (1/√ᾱ_t, say), and the step would be silently NaN where the f64 reference
/// is finite. Such a step is refused, naming ᾱ_t and the coefficient.
fn check_f32(op: &'static str, t: usize, c: StepCoeffs) -> Result<StepCoeffs> {
    let named = [
        ("x0 sample coefficient", c.a_s),
        ("x0 model-output coefficient", c.a_m),
        ("eps sample coefficient", c.e_s),
        ("eps model-output coefficient", c.e_m),
        ("x0 weight of the previous sample", c.p_x0),
        ("eps weight of the previous sample", c.p_eps),
        ("sample weight of the previous sample", c.p_s),
        ("noise std", c.sigma),
    ];
    for (what, v) in named {
        if !v.is_finite() || v.abs() > f32::MAX as f64 {
            return Err(Error::param(
                op,
                "timestep",
                format!(
                    "at timestep {t} the schedule's alphas_cumprod is {:e}, so the step's {what} is {v:e}, past f32's range; use a gentler beta schedule (beta_start, beta_end) or a smaller timestep",
                    c.abar
                ),
            ));
        }
    }
    Ok(c)
}

fn check_clip(op: &'static str, clip: Option<f64>) -> Result<()> {
    if let Some(r) = clip {
        if !r.is_finite() || r <= 0.0 {
            return Err(Error::param(op, "clip_sample_range", format!("{r} must be finite and > 0")));
        }
    }
    Ok(())
}

fn position(op: &'static str, steps: &[usize], t: usize) -> Result<usize> {
    steps.iter().position(|&s| s == t).ok_or_else(|| {
        let shown: Vec<String> = steps.iter().take(8).map(|s| s.to_string()).collect();
        Error::param(
            op,
            "timestep",
            format!("{t} is not on the schedule ({}{})", shown.join(", "), if steps.len() > 8 { ", …" } else { "" }),
        )
    })
}

/// `DDPMScheduler` (leading spacing, as diffusers' default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdpmConfig {
    pub num_train_timesteps: usize,
    pub beta_schedule: BetaSchedule,
    pub beta_start: f64,
    pub beta_end: f64,
    pub num_inference_steps: usize,
    pub prediction: Prediction,
    pub variance: VarianceType,
    /// `clip_sample` with its range.
    pub clip: Option<f64>,
    /// `thresholding` with its ratio and maximum (wins over `clip`).
    pub threshold: Option<Threshold>,
}

/// diffusers' `DDPMScheduler()` defaults, with 1000 inference steps.
impl Default for DdpmConfig {
    fn default() -> Self {
        DdpmConfig {
            num_train_timesteps: 1000,
            beta_schedule: BetaSchedule::Linear,
            beta_start: 1e-4,
            beta_end: 0.02,
            num_inference_steps: 1000,
            prediction: Prediction::Epsilon,
            variance: VarianceType::FixedSmall,
            clip: Some(1.0),
            threshold: None,
        }
    }
}

impl DdpmConfig {
    pub fn timesteps(&self) -> Result<Vec<usize>> {
        timesteps(self.num_train_timesteps, self.num_inference_steps, Spacing::Leading, 0)
    }

    /// The coefficients of the step from `t` (which must be on the schedule).
    pub fn coeffs(&self, t: usize) -> Result<StepCoeffs> {
        check_clip("ddpm_step", self.clip)?;
        if let Some(th) = self.threshold {
            th.validate("ddpm_step")?;
        }
        let ac = alphas_cumprod(&betas(self.beta_schedule, self.num_train_timesteps, self.beta_start, self.beta_end)?);
        let steps = self.timesteps()?;
        let i = position("ddpm_step", &steps, t)?;
        let a = ac[t];
        let ap = if i + 1 < steps.len() { ac[steps[i + 1]] } else { 1.0 };
        let (bt, bp) = (1.0 - a, 1.0 - ap);
        let cur_alpha = a / ap;
        let cur_beta = 1.0 - cur_alpha;
        let (a_s, a_m, e_s, e_m) = parameterisation(self.prediction, a);
        let var = match self.variance {
            VarianceType::FixedSmall => (bp / bt * cur_beta).max(1e-20),
            VarianceType::FixedLarge => cur_beta,
        };
        check_f32(
            "ddpm_step",
            t,
            StepCoeffs {
                a_s,
                a_m,
                e_s,
                e_m,
                clip: if self.threshold.is_some() { None } else { self.clip },
                threshold: self.threshold,
                p_x0: ap.sqrt() * cur_beta / bt,
                p_eps: 0.0,
                p_s: cur_alpha.sqrt() * bp / bt,
                sigma: if t > 0 { var.sqrt() } else { 0.0 },
                abar: a,
            },
        )
    }
}

/// `DDIMScheduler`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DdimConfig {
    pub num_train_timesteps: usize,
    pub beta_schedule: BetaSchedule,
    pub beta_start: f64,
    pub beta_end: f64,
    pub num_inference_steps: usize,
    pub prediction: Prediction,
    pub clip: Option<f64>,
    /// `thresholding` with its ratio and maximum (wins over `clip`).
    pub threshold: Option<Threshold>,
    pub eta: f64,
    pub set_alpha_to_one: bool,
    pub steps_offset: usize,
    pub spacing: Spacing,
}

/// diffusers' `DDIMScheduler()` defaults, with 1000 inference steps.
impl Default for DdimConfig {
    fn default() -> Self {
        let d = DdpmConfig::default();
        DdimConfig {
            num_train_timesteps: d.num_train_timesteps,
            beta_schedule: d.beta_schedule,
            beta_start: d.beta_start,
            beta_end: d.beta_end,
            num_inference_steps: d.num_inference_steps,
            prediction: d.prediction,
            clip: d.clip,
            threshold: d.threshold,
            eta: 0.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            spacing: Spacing::Leading,
        }
    }
}

impl DdimConfig {
    pub fn timesteps(&self) -> Result<Vec<usize>> {
        timesteps(self.num_train_timesteps, self.num_inference_steps, self.spacing, self.steps_offset)
    }

    /// The coefficients of the step from `t` (which must be on the schedule). As diffusers does,
    /// the previous timestep is t − T/n whatever the spacing.
    pub fn coeffs(&self, t: usize) -> Result<StepCoeffs> {
        check_clip("ddim_step", self.clip)?;
        if let Some(th) = self.threshold {
            th.validate("ddim_step")?;
        }
        if !self.eta.is_finite() || self.eta < 0.0 {
            return Err(Error::param("ddim_step", "eta", format!("{} must be finite and >= 0", self.eta)));
        }
        let ac = alphas_cumprod(&betas(self.beta_schedule, self.num_train_timesteps, self.beta_start, self.beta_end)?);
        position("ddim_step", &self.timesteps()?, t)?;
        let prev = t as i64 - (self.num_train_timesteps / self.num_inference_steps) as i64;
        let final_ac = if self.set_alpha_to_one { 1.0 } else { ac[0] };
        let a = ac[t];
        let ap = if prev >= 0 { ac[prev as usize] } else { final_ac };
        let (bt, bp) = (1.0 - a, 1.0 - ap);
        let variance = bp / bt * (1.0 - a / ap);
        let std = self.eta * variance.sqrt();
        let (a_s, a_m, e_s, e_m) = parameterisation(self.prediction, a);
        check_f32(
            "ddim_step",
            t,
            StepCoeffs {
                a_s,
                a_m,
                e_s,
                e_m,
                clip: if self.threshold.is_some() { None } else { self.clip },
                threshold: self.threshold,
                p_x0: ap.sqrt(),
                p_eps: (1.0 - ap - std * std).max(0.0).sqrt(),
                p_s: 0.0,
                sigma: if self.eta > 0.0 { std } else { 0.0 },
                abar: a,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestep_grids_match_diffusers() {
        // Values printed by diffusers' set_timesteps.
        assert_eq!(
            timesteps(1000, 10, Spacing::Leading, 0).unwrap(),
            vec![900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
        );
        assert_eq!(timesteps(1000, 10, Spacing::Leading, 1).unwrap()[9], 1);
        assert_eq!(
            timesteps(1000, 10, Spacing::Trailing, 0).unwrap(),
            vec![999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
        );
        assert_eq!(timesteps(1000, 4, Spacing::Linspace, 0).unwrap(), vec![999, 666, 333, 0]);
        assert!(timesteps(10, 11, Spacing::Leading, 0).is_err());
        assert!(timesteps(10, 10, Spacing::Leading, 1).is_err());
    }

    /// beta_start 0.5 leaves alphas_cumprod at 1e-151 by timestep 500: 1/sqrt of it overflows f32,
    /// which made the GPU step NaN while the f64 reference was finite. Refused, naming the timestep.
    #[test]
    fn steps_whose_coefficients_leave_f32_are_refused() {
        let ddpm = DdpmConfig {
            num_train_timesteps: 1000,
            beta_schedule: BetaSchedule::Linear,
            beta_start: 0.5,
            beta_end: 0.6,
            num_inference_steps: 10,
            prediction: Prediction::Epsilon,
            variance: VarianceType::FixedSmall,
            clip: None,
            threshold: None,
        };
        match ddpm.coeffs(500) {
            Err(Error::Param { op: "ddpm_step", name, reason }) => {
                assert_eq!(name, "timestep");
                assert!(reason.contains("timestep 500") && reason.contains("f32"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // The same schedule early on is representable and accepted.
        assert!(ddpm.coeffs(0).is_ok());
        let ddim = DdimConfig {
            num_train_timesteps: 1000,
            beta_schedule: BetaSchedule::Linear,
            beta_start: 0.5,
            beta_end: 0.6,
            num_inference_steps: 10,
            prediction: Prediction::Epsilon,
            clip: None,
            threshold: None,
            eta: 0.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            spacing: Spacing::Leading,
        };
        assert!(matches!(ddim.coeffs(900), Err(Error::Param { op: "ddim_step", name, .. }) if name == "timestep"));
        // v-prediction's coefficients stay within [-1, 1] however small alphas_cumprod gets.
        let v = DdimConfig { prediction: Prediction::VPrediction, ..ddim };
        assert!(v.coeffs(900).is_ok());
    }

    #[test]
    fn cosine_schedule_is_capped_and_cumulative() {
        let b = betas(BetaSchedule::SquaredCosCapV2, 50, 1e-4, 0.02).unwrap();
        assert!(b.iter().all(|&x| x > 0.0 && x <= 0.999));
        assert_eq!(*b.last().unwrap(), 0.999);
        let ac = alphas_cumprod(&b);
        assert!(ac.windows(2).all(|w| w[1] < w[0]));
    }
}
