//! The co-training twin's config (docs/models.md): the VGG cut, the input channels, one readout
//! per session; its validation and the layer plan of `vgg19_bn.features`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OP;
use crate::error::{Error, Result};
use crate::ops;

fn vgg19_bn() -> String {
    "vgg19_bn".to_string()
}
fn seventeen() -> usize {
    17
}
fn one() -> usize {
    1
}
fn default_eps() -> f32 {
    1e-5
}
fn yes() -> bool {
    true
}
fn minus_one() -> f32 {
    -1.0
}

/// The shared core: torchvision's `vgg19_bn().features[:layers]` (`MTL_VGG_Core`'s `v1_block`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotrainCoreConfig {
    /// Only `"vgg19_bn"`.
    #[serde(default = "vgg19_bn")]
    pub vgg_type: String,
    /// How many modules of `features` (`v1_model_layer`): a cut after a ReLU or a max-pool.
    #[serde(default = "seventeen")]
    pub layers: usize,
    /// 1: grey images, expanded to 3 channels (folded into the first conv); or 3.
    #[serde(default = "one")]
    pub input_channels: usize,
    #[serde(default = "default_eps")]
    pub batch_norm_eps: f32,
}

/// One session's legacy `Gaussian2d` readout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotrainReadoutConfig {
    pub neurons: usize,
    /// Whether the readout has a bias (`v1_readout_bias`).
    #[serde(default = "yes")]
    pub bias: bool,
    /// grid_sample's align_corners: false is what the legacy readout (no argument) gets from
    /// PyTorch ≥ 1.3; neuralpredictors' `Gaussian2d` defaults to true.
    #[serde(default)]
    pub align_corners: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotrainConfig {
    pub core: CotrainCoreConfig,
    pub readouts: BTreeMap<String, CotrainReadoutConfig>,
    /// rate = elu(y + elu_offset) + 1 (`v1_elu_offset`, −1 upstream).
    #[serde(default = "minus_one")]
    pub elu_offset: f32,
}

/// One module of torchvision's `vgg19_bn().features`, by its index there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Module {
    /// Conv2d(cin, cout, 3, padding=1), then BatchNorm2d at index + 1 and ReLU at index + 2.
    Conv { index: usize, cin: usize, cout: usize },
    /// MaxPool2d(2, 2).
    MaxPool,
}

/// `vgg19_bn`'s configuration "E": 64, 64, M, 128, 128, M, 256×4, M, 512×4, M, 512×4, M.
const VGG19: [usize; 21] =
    [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0];

/// The modules of `features[:layers]`, or `None` when the cut splits a conv from its batch norm
/// or ReLU (or passes the end).
pub(super) fn plan(layers: usize) -> Option<Vec<Module>> {
    let (mut index, mut cin, mut out) = (0, 3, Vec::new());
    for &c in &VGG19 {
        if index == layers {
            return Some(out);
        }
        if c == 0 {
            out.push(Module::MaxPool);
            index += 1;
        } else {
            out.push(Module::Conv { index, cin, cout: c });
            cin = c;
            index += 3;
        }
        if index > layers {
            return None;
        }
    }
    (index == layers).then_some(out)
}

/// Every cut [`plan`] accepts, for messages.
fn cuts() -> Vec<usize> {
    (1..=53).filter(|&l| plan(l).is_some()).collect()
}

impl CotrainConfig {
    /// Parses a config; a `"kind"` field, when present, must be `"cotrain"`.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: CotrainConfig = crate::models::parse_config(text, "cotrain", "cotrain")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let c = &self.core;
        let bad = |name: &str, why: String| Err(Error::param(OP, name, why));
        if c.vgg_type != "vgg19_bn" {
            return bad("core.vgg_type", format!("{:?}: only \"vgg19_bn\" is supported", c.vgg_type));
        }
        if plan(c.layers).is_none_or(|p| p.is_empty()) {
            return bad(
                "core.layers",
                format!("{}: features[:layers] must end after a ReLU or a max-pool, one of {:?}", c.layers, cuts()),
            );
        }
        if c.input_channels != 1 && c.input_channels != 3 {
            return bad("core.input_channels", format!("{}: 1 (grey, expanded to 3) or 3", c.input_channels));
        }
        if !(c.batch_norm_eps >= 0.0 && c.batch_norm_eps.is_finite()) {
            return bad("core.batch_norm_eps", "must be finite and >= 0".into());
        }
        if !self.elu_offset.is_finite() {
            return bad("elu_offset", "must be finite".into());
        }
        if self.readouts.is_empty() {
            return bad("readouts", "at least one session is needed".into());
        }
        for (k, r) in &self.readouts {
            if r.neurons == 0 || r.neurons > ops::MAX_GEOMETRY {
                return bad(&format!("readouts.{k}.neurons"), format!("{}: 1 to {}", r.neurons, ops::MAX_GEOMETRY));
            }
        }
        Ok(())
    }

    /// The core's output [C, H, W] for images of `h`×`w` (each max-pool halves, rounding down).
    pub fn core_output(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        let (mut c, mut oh, mut ow) = (self.core.input_channels, h, w);
        for m in plan(self.core.layers).unwrap_or_default() {
            match m {
                Module::Conv { cout, .. } => c = cout,
                Module::MaxPool => {
                    if oh < 2 || ow < 2 {
                        return Err(Error::shape(OP, "images", &[h, w], "large enough for every 2×2 max-pool"));
                    }
                    (oh, ow) = (oh / 2, ow / 2);
                }
            }
        }
        if h == 0 || w == 0 {
            return Err(Error::shape(OP, "images", &[h, w], "at least 1×1"));
        }
        Ok([c, oh, ow])
    }

    /// The paper's shape: `features[:17]` on grey images, one session "bench" of `neurons`.
    pub fn paper(neurons: usize) -> CotrainConfig {
        CotrainConfig {
            core: CotrainCoreConfig { vgg_type: vgg19_bn(), layers: 17, input_channels: 1, batch_norm_eps: 1e-5 },
            readouts: [("bench".to_string(), CotrainReadoutConfig { neurons, bias: true, align_corners: false })]
                .into(),
            elu_offset: -1.0,
        }
    }
}
