//! The Sensorium config (docs/models.md): the core's shape, one readout per data key, and their
//! validation; the baseline's shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Sensorium, OP};
use crate::error::{Error, Result};
use crate::ops;

fn default_eps() -> f32 {
    1e-5
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// Which neuralpredictors core the config describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoreKind {
    /// `Stacked2dCore`.
    #[default]
    Stacked2d,
    /// `RotationEquivariant2dCore` (Hermite filters in `num_rotations` rotations; see rot_eq.rs).
    RotationEquivariant,
}

/// The core's shape: `Stacked2dCore`'s, or `RotationEquivariant2dCore`'s with `kind`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    #[serde(default)]
    pub kind: CoreKind,
    /// Rotation-equivariant core only: rotations of every feature (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_rotations: Option<usize>,
    /// Rotation-equivariant core only: the Hermite filters' upsampling (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsampling: Option<usize>,
    pub input_channels: usize,
    pub hidden_channels: usize,
    pub input_kern: usize,
    pub hidden_kern: usize,
    pub layers: usize,
    #[serde(default)]
    pub pad_input: bool,
    #[serde(default = "yes")]
    pub depth_separable: bool,
    /// Only −1 (the last layer's output) is supported.
    #[serde(default = "minus_one")]
    pub stack: i64,
    #[serde(default = "default_eps")]
    pub batch_norm_eps: f32,
    #[serde(default = "one")]
    pub hidden_dilation: usize,
    #[serde(default = "one")]
    pub input_stride: usize,
    #[serde(default = "one")]
    pub stride: usize,
    /// ELU after the last layer too.
    #[serde(default = "yes")]
    pub final_nonlinearity: bool,
}

fn minus_one() -> i64 {
    -1
}

/// One data key's readout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutConfig {
    pub neurons: usize,
    #[serde(default = "yes")]
    pub align_corners: bool,
    /// A shifter MLP (`shifter.<key>.mlp.{0,2,4,…}`, Linear → Tanh each) maps the eye position
    /// [N, 2] to a shift of every neuron's position.
    #[serde(default)]
    pub shifter: bool,
    /// For a readout whose positions come from a `grid_mean_predictor` (`mu_transform.*` and the
    /// `source_grid` buffer instead of `_mu`): whether its MLP ends in Tanh (`final_tanh`, which
    /// the state_dict cannot show). Required when such a predictor is present.
    #[serde(default)]
    pub grid_mean_final_tanh: Option<bool>,
    /// A behaviour modulator (`modulator.<key>.modulator_networks.0.{0,2,…}`, Linear → ReLU each):
    /// the readout is multiplied by ELU(MLP(behaviour)) + 1 before the output nonlinearity.
    #[serde(default)]
    pub modulator: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensoriumConfig {
    pub core: CoreConfig,
    pub readouts: BTreeMap<String, ReadoutConfig>,
    #[serde(default)]
    pub elu_offset: f32,
}

impl SensoriumConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: SensoriumConfig =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("model config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let c = &self.core;
        let bad = |name: &str, why: &str| Err(Error::param(OP, name, why.to_string()));
        // Each size at least 1, by name (channels first, then kernels, dilation and strides).
        for (name, v) in [
            ("core.layers", c.layers),
            ("core.input_channels", c.input_channels),
            ("core.hidden_channels", c.hidden_channels),
            ("core.input_kern", c.input_kern),
            ("core.hidden_kern", c.hidden_kern),
            ("core.hidden_dilation", c.hidden_dilation),
            ("core.stride", c.stride),
            ("core.input_stride", c.input_stride),
        ] {
            if v == 0 {
                return bad(name, "must be >= 1");
            }
        }
        // Every size bounded (so that products of a few of them cannot overflow), by name.
        for (name, v) in [
            ("core.input_channels", c.input_channels),
            ("core.hidden_channels", c.hidden_channels),
            ("core.input_kern", c.input_kern),
            ("core.hidden_kern", c.hidden_kern),
            ("core.layers", c.layers),
            ("core.hidden_dilation", c.hidden_dilation),
            ("core.input_stride", c.input_stride),
            ("core.stride", c.stride),
        ] {
            if v > ops::MAX_GEOMETRY {
                return bad(name, &format!("{v} is past the supported maximum {}", ops::MAX_GEOMETRY));
            }
        }
        if let Some((k, r)) = self.readouts.iter().find(|(_, r)| r.neurons > ops::MAX_GEOMETRY) {
            let name = format!("readouts.{k}.neurons");
            return bad(&name, &format!("{} is past the supported maximum {}", r.neurons, ops::MAX_GEOMETRY));
        }
        if c.stack != -1 {
            return bad("core.stack", "only -1 (the last layer's output) is supported");
        }
        if !(c.batch_norm_eps >= 0.0 && c.batch_norm_eps.is_finite()) {
            return bad("core.batch_norm_eps", "must be finite and >= 0");
        }
        super::rot_eq::validate(c)?;
        if !self.elu_offset.is_finite() {
            return bad("elu_offset", "must be finite");
        }
        if self.readouts.is_empty() {
            return bad("readouts", "at least one data key is needed");
        }
        if let Some((k, _)) = self.readouts.iter().find(|(_, r)| r.neurons == 0) {
            return bad(&format!("readouts.{k}.neurons"), "must be >= 1");
        }
        Ok(())
    }

    /// The core's output [C, H, W] for images of `h`×`w`.
    pub fn core_output(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        let c = &self.core;
        if c.kind == CoreKind::RotationEquivariant {
            return super::rot_eq::core_output(c, h, w);
        }
        let p0 = if c.pad_input { c.input_kern / 2 } else { 0 };
        let step = |size: usize, k: usize, pad: usize, stride: usize, dil: usize| -> Result<usize> {
            let ext = dil * (k - 1) + 1;
            if size + 2 * pad < ext {
                return Err(Error::shape(
                    OP,
                    "images",
                    &[h, w],
                    format!("at least {ext} pixels for a {k}-wide kernel"),
                ));
            }
            Ok((size + 2 * pad - ext) / stride + 1)
        };
        let (mut oh, mut ow) =
            (step(h, c.input_kern, p0, c.input_stride, 1)?, step(w, c.input_kern, p0, c.input_stride, 1)?);
        let ph = ((c.hidden_kern - 1) * c.hidden_dilation + 1) / 2;
        for _ in 1..c.layers {
            oh = step(oh, c.hidden_kern, ph, c.stride, c.hidden_dilation)?;
            ow = step(ow, c.hidden_kern, ph, c.stride, c.hidden_dilation)?;
        }
        Ok([c.hidden_channels, oh, ow])
    }
}

impl Sensorium {
    /// The Sensorium 2022 baseline's shape with `neurons` neurons under data key "bench".
    pub fn baseline_config(neurons: usize) -> SensoriumConfig {
        SensoriumConfig {
            core: CoreConfig {
                kind: CoreKind::Stacked2d,
                num_rotations: None,
                upsampling: None,
                input_channels: 1,
                hidden_channels: 64,
                input_kern: 9,
                hidden_kern: 7,
                layers: 4,
                pad_input: false,
                depth_separable: true,
                stack: -1,
                batch_norm_eps: 1e-5,
                hidden_dilation: 1,
                input_stride: 1,
                stride: 1,
                final_nonlinearity: true,
            },
            readouts: [(
                "bench".to_string(),
                ReadoutConfig {
                    neurons,
                    align_corners: true,
                    shifter: false,
                    grid_mean_final_tanh: None,
                    modulator: false,
                },
            )]
            .into(),
            elu_offset: 0.0,
        }
    }
}
