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

mod config;
mod load;
mod observations;
mod record;

pub use config::{MdmJson, PlatyposeConfig, SamplerKind};
pub use observations::{cameras_from, observations_from};
pub use record::{check_samples, SampleTrace, SamplerNoise};

use crate::diffusion::SpacedSchedule;
use crate::models::mdm::Mdm;

const OP: &str = "platypose";

pub struct Platypose {
    config: PlatyposeConfig,
    schedule: SpacedSchedule,
    mdm: Mdm,
}

impl Platypose {
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
}
