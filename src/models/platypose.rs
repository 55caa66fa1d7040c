//! The Platypose sampler (docs/ops.md, energy guidance; config in docs/models.md; what the code does is pinned down in
//! scripts/PLATYPOSE.md): the MDM denoiser predicts x̂0 on a cosine schedule of T training steps
//! respaced to N (`space_timesteps(T, "ddimN")`); each x̂0 is refined by SGD on the multi-view
//! reprojection energy with the plateau rule (`ops::guidance::refine`); then an η = 0 DDIM step
//! (what Platypose's multi-view evaluation runs) or an ancestral FIXED_SMALL step. The whole
//! sampling of S hypotheses — every model call, refinement and step — is recorded as one submit.
//!
//! Config (JSON): `{"mdm": {"features": 51, "latent": 512, "heads": 4, "layers": 8, "max_len": 64},
//! "train_steps": 50, "steps": 20, "sampler": "ddim" | "ancestral", "skip_timesteps": 0,
//! "energy_scale": 30, "substeps": 10}` (defaults as Platypose's h36m experiment, skip 0).
//! Observations (safetensors): `R [C, 3, 3]`, `t [C, 3]` (camera centre), `intrinsics [C, 5]`
//! (fx, fy, cx, cy, skew), `radial [C, 3]` (k1, k2, k3), `tangential [C, 2]` (p1, p2), `keypoints
//! [C, F, J, 2]`, and optionally `weights [C, F, J, 2]` (per coordinate; default 1) and `root
//! [F, 3]` (the root trajectory added to the root-relative poses; default 0). The names of
//! scripts/golden_platypose.py (`intrinsics_fx_fy_cx_cy_skew`, `radial_k1_k2_k3`,
//! `tangential_p1_p2`, `x2d`) are accepted too.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::mdm::{Mdm, MdmConfig};
use crate::diffusion::{BetaSchedule, SpacedSchedule, StepCoeffs};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Camera, Noise, Observations, Refinement};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

const OP: &str = "platypose";

#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdmJson {
    pub features: usize,
    pub latent: usize,
    pub heads: usize,
    pub layers: usize,
    pub max_len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// η = 0 DDIM (Platypose's multi-view evaluation).
    Ddim,
    /// Ancestral DDPM with the FIXED_SMALL posterior variance.
    Ancestral,
}

fn d_train() -> usize {
    50
}
fn d_steps() -> usize {
    20
}
fn d_kind() -> SamplerKind {
    SamplerKind::Ddim
}
fn d_scale() -> f32 {
    30.0
}
fn d_sub() -> usize {
    10
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatyposeConfig {
    pub mdm: MdmJson,
    #[serde(default = "d_train")]
    pub train_steps: usize,
    #[serde(default = "d_steps")]
    pub steps: usize,
    #[serde(default = "d_kind")]
    pub sampler: SamplerKind,
    #[serde(default)]
    pub skip_timesteps: usize,
    #[serde(default = "d_scale")]
    pub energy_scale: f32,
    #[serde(default = "d_sub")]
    pub substeps: usize,
}

impl PlatyposeConfig {
    /// The denoiser's sizes.
    pub fn mdm_config(&self) -> MdmConfig {
        let m = self.mdm;
        MdmConfig { features: m.features, latent: m.latent, heads: m.heads, layers: m.layers, max_len: m.max_len }
    }

    pub fn from_json(text: &str) -> Result<PlatyposeConfig> {
        serde_json::from_str(text).map_err(|e| Error::Config(format!("platypose config: {e}")))
    }

    /// Checks the sampler's settings against each other and builds the respaced schedule.
    pub fn schedule(&self) -> Result<SpacedSchedule> {
        self.mdm_config().validate()?;
        // Every timestep the sampler visits (up to train_steps − 1) needs a token of the MDM's
        // table: checked before the schedule (train_steps long) is built.
        if self.train_steps > self.mdm.max_len {
            return Err(Error::param(
                OP,
                "train_steps",
                format!("{} is past the MDM table of {} (mdm.max_len)", self.train_steps, self.mdm.max_len),
            ));
        }
        let schedule = SpacedSchedule::new(BetaSchedule::SquaredCosCapV2, self.train_steps, self.steps)?;
        if self.skip_timesteps >= schedule.len() {
            return Err(Error::param(
                OP,
                "skip_timesteps",
                format!("{} leaves none of the {} steps", self.skip_timesteps, schedule.len()),
            ));
        }
        if let Some(&t) = schedule.timestep_map.last() {
            if t >= self.mdm.max_len {
                return Err(Error::param(
                    OP,
                    "train_steps",
                    format!("timestep {t} is past the MDM table of {}", self.mdm.max_len),
                ));
            }
        }
        Refinement::new(self.energy_scale, self.substeps).validate()?;
        Ok(schedule)
    }
}

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

pub struct Platypose {
    config: PlatyposeConfig,
    schedule: SpacedSchedule,
    mdm: Mdm,
}

/// Cameras from observation tensors (see the module docs for the names).
pub fn cameras_from(t: &BTreeMap<String, HostTensor>) -> Result<Vec<Camera>> {
    let get = |names: &[&str], per: &[usize]| -> Result<&HostTensor> {
        let h = names
            .iter()
            .find_map(|n| t.get(*n))
            .ok_or_else(|| Error::Input(format!("observations: missing tensor {:?}", names[0])))?;
        if h.shape.len() != per.len() + 1 || h.shape[1..] != *per {
            let mut want = vec!["C".to_string()];
            want.extend(per.iter().map(|v| v.to_string()));
            return Err(Error::Input(format!(
                "observations: {:?} has shape {:?}, expected [{}]",
                names[0],
                h.shape,
                want.join(", ")
            )));
        }
        Ok(h)
    };
    let r = get(&["R"], &[3, 3])?;
    let c = r.shape[0];
    let tv = get(&["t"], &[3])?;
    let k = get(&["intrinsics", "intrinsics_fx_fy_cx_cy_skew"], &[5])?;
    let rad = get(&["radial", "radial_k1_k2_k3"], &[3])?;
    let tan = get(&["tangential", "tangential_p1_p2"], &[2])?;
    for (h, name) in [(tv, "t"), (k, "intrinsics"), (rad, "radial"), (tan, "tangential")] {
        if h.shape[0] != c {
            return Err(Error::Input(format!("observations: {name:?} holds {} cameras, R holds {c}", h.shape[0])));
        }
    }
    let v = |h: &HostTensor, i: usize| h.data[i] as f64;
    Ok((0..c)
        .map(|ci| Camera {
            rotation: [0, 1, 2].map(|a| [0, 1, 2].map(|b| v(r, ci * 9 + a * 3 + b))),
            centre: [0, 1, 2].map(|a| v(tv, ci * 3 + a)),
            intrinsics: [0, 1, 2, 3, 4].map(|a| v(k, ci * 5 + a)),
            radial: [0, 1, 2].map(|a| v(rad, ci * 3 + a)),
            tangential: [0, 1].map(|a| v(tan, ci * 2 + a)),
        })
        .collect())
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

/// Observations from tensors (cameras, keypoints, optional weights and root), uploaded.
pub fn observations_from(ctx: &Context, t: &BTreeMap<String, HostTensor>) -> Result<Observations> {
    let cams = cameras_from(t)?;
    let kp = ["keypoints", "x2d"]
        .iter()
        .find_map(|n| t.get(*n))
        .ok_or_else(|| Error::Input("observations: missing tensor \"keypoints\" [C, F, J, 2]".into()))?;
    let (f, j) = match kp.shape[..] {
        [c, f, j, 2] if c == cams.len() => (f, j),
        _ => {
            return Err(Error::Input(format!(
                "observations: \"keypoints\" has shape {:?}, expected [{}, F, J, 2]",
                kp.shape,
                cams.len()
            )))
        }
    };
    for name in ["weights", "root"] {
        if let Some(h) = t.get(name) {
            let want: &[usize] = if name == "root" { &[f, 3] } else { &kp.shape };
            if h.shape != want {
                return Err(Error::Input(format!("observations: {name:?} has shape {:?}, expected {want:?}", h.shape)));
            }
        }
    }
    Observations::new(
        ctx,
        cams,
        &kp.data,
        t.get("weights").map(|h| &h.data[..]),
        t.get("root").map(|h| &h.data[..]),
        f,
        j,
    )
}

impl Platypose {
    /// The sampler from MDM weights (models::mdm key names) and a config.
    pub fn new(ctx: &Context, sd: &BTreeMap<String, HostTensor>, config: PlatyposeConfig) -> Result<Platypose> {
        let schedule = config.schedule()?;
        // Tokens for the training timesteps only: the sampler visits no other.
        let mdm = Mdm::load_for_timesteps(ctx, sd, config.mdm_config(), config.train_steps)?;
        Ok(Platypose { config, schedule, mdm })
    }

    /// Loads MDM weights (safetensors) and a JSON config.
    pub fn load(ctx: &Context, weights: &std::path::Path, config: &std::path::Path) -> Result<Platypose> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = PlatyposeConfig::from_json(&text)
            .and_then(|c| c.schedule().map(|_| c))
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = crate::io::read_weights(weights)?.tensors;
        Self::new(ctx, &sd, cfg).map_err(|e| e.in_files(weights, config))
    }

    /// The config the sampler was built from (fixed: it was checked against the schedule).
    pub fn config(&self) -> &PlatyposeConfig {
        &self.config
    }

    /// The respaced schedule.
    pub fn schedule(&self) -> &SpacedSchedule {
        &self.schedule
    }

    /// The respaced indices the loop visits, in order (N − 1 − skip down to 0).
    pub fn indices(&self) -> Vec<usize> {
        (0..self.schedule.len() - self.config.skip_timesteps).rev().collect()
    }

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
