//! MDM weights and a config → the Platypose sampler (the weights through [`StateDict`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::{Platypose, PlatyposeConfig};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::mdm::{self, Mdm};
use crate::models::StateDict;
use crate::runtime::Context;

impl Platypose {
    /// The sampler from MDM weights (models::mdm key names) and a config.
    pub fn new(ctx: &Context, sd: &BTreeMap<String, HostTensor>, config: PlatyposeConfig) -> Result<Platypose> {
        Self::from_dict(ctx, StateDict::borrowed(mdm::WHAT, sd), config)
    }

    fn from_dict(ctx: &Context, sd: StateDict, config: PlatyposeConfig) -> Result<Platypose> {
        let schedule = config.schedule()?;
        // Tokens for the training timesteps only: the sampler visits no other.
        let mdm = Mdm::from_dict(ctx, sd, config.mdm_config(), config.train_steps)?;
        Ok(Platypose { config, schedule, mdm })
    }

    /// Loads MDM weights (safetensors) and a JSON config.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Platypose> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = PlatyposeConfig::from_json(&text)
            .and_then(|c| c.schedule().map(|_| c))
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(mdm::WHAT, weights)?;
        Self::from_dict(ctx, sd, cfg).map_err(|e| e.in_files(weights, config))
    }
}
