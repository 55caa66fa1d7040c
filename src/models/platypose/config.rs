//! The Platypose config (docs/models.md): the denoiser's sizes and the sampler's settings, checked
//! against each other as the respaced schedule is built.

use serde::Deserialize;

use super::OP;
use crate::diffusion::{BetaSchedule, SpacedSchedule};
use crate::error::{Error, Result};
use crate::models::mdm::MdmConfig;
use crate::ops::Refinement;

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
        crate::models::parse_config(text, "platypose", "platypose")
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
