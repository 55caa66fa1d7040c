//! The Platypose sampling recorded on a [`Recorder`] (every model call, refinement and step: one
//! submit), and the check of its result.

use super::{Platypose, SamplerKind, OP};
use crate::diffusion::StepCoeffs;
use crate::error::{Error, Result};
use crate::ops::{self, Noise, Observations, Refinement};
use crate::runtime::Recorder;
use crate::tensor::Tensor;

/// Where a run's random numbers come from.
pub enum SamplerNoise<'a> {
    /// The engine's generator: the initial draw at offset 0, step i's noise at (i + 1)·numel.
    Philox { seed: u64 },
    /// Given tensors: the initial draw z [S, F, D] and, for the ancestral sampler, one noise
    /// tensor per step (in loop order).
    Given { init: &'a Tensor, steps: &'a [Tensor] },
}

/// What a run leaves on the device besides the sample, per step in loop order: the input x_t,
/// the model's x̂0, the refined x̂0, and the refinement's trace.
pub struct SampleTrace {
    pub x_t: Vec<Tensor>,
    pub x0_model: Vec<Tensor>,
    pub x0: Vec<Tensor>,
    pub refinements: Vec<ops::guidance::RefineTrace>,
    /// The original timestep fed to the model at each step.
    pub model_timesteps: Vec<usize>,
}

/// Refuses a sampling result [S, F, D] with a non-finite value, naming the first such sample:
/// a sample is never NaN silently. Finite inputs are range-checked before the sampling (the
/// cameras by `Camera::check_range`, the observations' magnitudes, the weights of the MDM), but
/// a sampling can still leave f32's range (a pose sampled onto a camera's plane, an extreme
/// energy_scale); then this says so, instead of a file of NaN.
pub fn check_samples(data: &[f32], shape: &[usize]) -> Result<()> {
    let per: usize = shape.iter().skip(1).product();
    let s = shape.first().copied().unwrap_or(0);
    if per == 0 || data.len() != s * per {
        return Err(Error::shape(OP, "samples", shape, format!("[S, F, D] holding {} values", data.len())));
    }
    let bad: Vec<usize> = (0..s).filter(|&i| data[i * per..(i + 1) * per].iter().any(|v| !v.is_finite())).collect();
    if let Some(&first) = bad.first() {
        let i = data[first * per..(first + 1) * per].iter().position(|v| !v.is_finite()).expect("found above");
        return Err(Error::param(
            OP,
            "samples",
            format!(
                "sample {first} of {s} is not finite ({} at frame {}, feature {}; {} of the {s} samples are): the sampling left f32's range",
                data[first * per + i],
                i / shape[2..].iter().product::<usize>().max(1),
                i % shape[2..].iter().product::<usize>().max(1),
                bad.len()
            ),
        ));
    }
    Ok(())
}

impl Platypose {
    /// The fused step's coefficients at respaced index k (x̂0 given as the model output).
    pub fn step_coeffs(&self, k: usize) -> StepCoeffs {
        let s = &self.schedule;
        match self.config.sampler {
            SamplerKind::Ancestral => StepCoeffs {
                a_m: 1.0,
                p_x0: s.posterior_mean_coef1[k],
                p_s: s.posterior_mean_coef2[k],
                sigma: if k > 0 { (0.5 * s.posterior_log_variance_clipped[k]).exp() } else { 0.0 },
                abar: s.alphas_cumprod[k],
                ..Default::default()
            },
            SamplerKind::Ddim => {
                let (a, ap) = (s.alphas_cumprod[k], s.alphas_cumprod_prev[k]);
                let (r, rm1) = ((1.0 / a).sqrt(), (1.0 / a - 1.0).sqrt());
                StepCoeffs {
                    a_m: 1.0,
                    e_s: r / rm1,
                    e_m: -1.0 / rm1,
                    p_x0: ap.sqrt(),
                    p_eps: (1.0 - ap).sqrt(),
                    abar: a,
                    ..Default::default()
                }
            }
        }
    }

    /// Records the sampling of `samples` hypotheses of `frames` frames, guided by `obs` (None:
    /// unguided): returns the sample [S, F, D] and the trace.
    pub fn record_sample(
        &self,
        rec: &mut Recorder,
        samples: usize,
        frames: usize,
        obs: Option<&Observations>,
        noise: SamplerNoise,
    ) -> Result<(Tensor, SampleTrace)> {
        rec.atomic(|rec| self.sample_unit(rec, samples, frames, obs, noise))
    }

    fn sample_unit(
        &self,
        rec: &mut Recorder,
        samples: usize,
        frames: usize,
        obs: Option<&Observations>,
        noise: SamplerNoise,
    ) -> Result<(Tensor, SampleTrace)> {
        let d = self.config.mdm.features;
        let shape = [samples, frames, d];
        if samples == 0 || frames == 0 || frames + 1 > self.config.mdm.max_len {
            return Err(Error::shape(OP, "sample", &shape, format!("S >= 1 and 1 <= F < {}", self.config.mdm.max_len)));
        }
        if let Some(o) = obs {
            if o.frames != frames || o.joints * 3 != d {
                return Err(Error::shape(
                    OP,
                    "observations",
                    &[o.cameras.len(), o.frames, o.joints, 2],
                    format!("[C, {frames}, {}, 2] (the sample's frames and joints)", d / 3),
                ));
            }
        }
        let indices = self.indices();
        let n: usize = shape.iter().product();
        let z = match &noise {
            SamplerNoise::Philox { seed } => ops::random_normal(rec, &shape, *seed, 0)?,
            SamplerNoise::Given { init, steps } => {
                ops::expect_shape(OP, "initial noise", init, &shape)?;
                if self.config.sampler == SamplerKind::Ancestral && steps.len() < indices.len() {
                    return Err(Error::param(
                        OP,
                        "noise",
                        format!("{} step noise tensors for {} steps", steps.len(), indices.len()),
                    ));
                }
                (*init).clone()
            }
        };
        // q_sample of a zero pose at the first index when steps are skipped.
        let mut x = if self.config.skip_timesteps > 0 {
            let a = self.schedule.alphas_cumprod[indices[0]];
            let c = StepCoeffs { a_m: 1.0, p_x0: (1.0 - a).sqrt(), ..Default::default() };
            ops::sampler_step(rec, &z, &z, Noise::None, &c)?.0
        } else {
            z
        };
        let refinement = Refinement::new(self.config.energy_scale, self.config.substeps);
        let mut trace = SampleTrace {
            x_t: Vec::new(),
            x0_model: Vec::new(),
            x0: Vec::new(),
            refinements: Vec::new(),
            model_timesteps: Vec::new(),
        };
        for (i, &k) in indices.iter().enumerate() {
            let t = self.schedule.timestep_map[k];
            let m = self.mdm.record(rec, &x, t)?;
            let x0 = match obs {
                Some(o) if self.config.substeps > 0 => {
                    let (y, tr) = ops::refine(rec, &m, o, &refinement)?;
                    trace.refinements.push(tr);
                    y
                }
                _ => m.clone(),
            };
            trace.x0_model.push(m);
            let c = self.step_coeffs(k);
            let step_noise = match (&noise, self.config.sampler) {
                (_, SamplerKind::Ddim) => Noise::None,
                (SamplerNoise::Philox { seed }, _) => Noise::Philox { seed: *seed, offset: ((i + 1) * n) as u64 },
                (SamplerNoise::Given { steps, .. }, _) => Noise::Tensor(&steps[i]),
            };
            let (next, _) = ops::sampler_step(rec, &x, &x0, step_noise, &c)?;
            trace.x_t.push(x);
            trace.x0.push(x0);
            trace.model_timesteps.push(t);
            x = next;
        }
        Ok((x, trace))
    }
}
