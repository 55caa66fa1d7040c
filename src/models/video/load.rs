//! State dict → video model: the core's keys (core.rs), the ConvGRU's (`gru_module.gru.*`), a
//! readout per data key with its shifter (the Sensorium's loader), the buffers upstream saves and
//! inference does not use.

use std::collections::BTreeMap;
use std::path::Path;

use super::{GruStage, Video, VideoConfig, VideoCore};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::sensorium::load_readout;
use crate::models::StateDict;
use crate::ops::{ConvGru, ConvGruWeights};
use crate::runtime::Context;

const WHAT: &str = "weights";

impl Video {
    /// Loads weights (safetensors, PyTorch key names) and a JSON config, and uploads them.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Video> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = VideoConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut m = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    /// Builds the model on the host from a state dict; refuses missing, extra or mis-shaped keys.
    /// Empty tensors (upstream saves some, e.g. `[80, 0]`) hold nothing and are accepted.
    pub fn from_state_dict(config: VideoConfig, mut tensors: BTreeMap<String, HostTensor>) -> Result<Video> {
        tensors.retain(|_, t| !t.shape.contains(&0));
        Self::from_dict(config, StateDict::new(WHAT, tensors))
    }

    fn from_dict(config: VideoConfig, mut sd: StateDict) -> Result<Video> {
        config.validate()?;
        let empty: Vec<String> = sd.keys().filter(|k| sd.shape(k).is_some_and(|s| s.contains(&0))).collect();
        for k in empty {
            sd.remove_raw(&k);
        }
        let core = VideoCore::from_state_dict(config.core.clone(), &mut sd)?;
        let gru = match &config.gru {
            Some(g) => {
                Some(GruStage { weights: ConvGruWeights::take(&mut sd, "gru_module.gru", g.params())?, dev: None })
            }
            None => None,
        };
        let hc = config.readout_channels()?;
        let mut readouts = BTreeMap::new();
        for (key, r) in &config.readouts {
            readouts.insert(key.clone(), load_readout(&mut sd, key, r, hc, config.elu_offset)?);
        }
        sd.finish()?;
        Ok(Video { config, core, gru, readouts })
    }

    /// Puts the folded weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        self.core.upload(ctx)?;
        if let Some(g) = &mut self.gru {
            g.dev = Some(ConvGru::upload(ctx, &g.weights)?);
        }
        for r in self.readouts.values_mut() {
            r.upload(ctx)?;
        }
        Ok(())
    }
}
