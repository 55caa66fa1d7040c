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
fn last_layer() -> Stack {
    Stack::From(-1)
}
fn all_true() -> PerLayer<bool> {
    PerLayer::All(true)
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

/// Whose rules decide what a config means where neuralpredictors versions differ (docs/models.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Semantics {
    /// neuralpredictors 0.3.0 (the pip release).
    #[default]
    #[serde(rename = "0.3")]
    V0_3,
    /// neuralpredictors' main branch (commit a2055cd).
    #[serde(rename = "head")]
    Head,
}

/// Which layers' outputs the core returns, concatenated along channels in that order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stack {
    /// `null`: every layer.
    All,
    /// An int `s`: the layers `range(layers)[s:]` (−1 the last, −2 the last two, 1 all but the first).
    From(i64),
    /// A list: these layers (Python indices: −1 is the last), as given.
    Layers(Vec<i64>),
}

/// One value for every layer, or a list with one per layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerLayer<T> {
    All(T),
    Each(Vec<T>),
}

impl<T> From<T> for PerLayer<T> {
    fn from(v: T) -> Self {
        PerLayer::All(v)
    }
}

impl<T: Copy> PerLayer<T> {
    /// The value of entry `i` (a single value is every entry's).
    pub fn get(&self, i: usize) -> T {
        match self {
            PerLayer::All(v) => *v,
            PerLayer::Each(v) => v[i],
        }
    }
    pub(crate) fn values(&self) -> Vec<T> {
        match self {
            PerLayer::All(v) => vec![*v],
            PerLayer::Each(v) => v.clone(),
        }
    }
    pub(crate) fn is_list(&self) -> bool {
        matches!(self, PerLayer::Each(_))
    }
}

/// `Stacked2dCore`'s arguments, by their neuralpredictors names (docs/models.md lists each with
/// its default and which version's rules apply), and with `kind` `RotationEquivariant2dCore`'s.
/// Defaults are the Sensorium 2022 baseline's where they differ from the Python constructor's
/// (`pad_input`, `depth_separable`, `stack`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// "stacked2d" (default) or "rotation_equivariant".
    #[serde(default)]
    pub kind: CoreKind,
    /// "0.3" (default) or "head": where the versions differ, whose rules apply.
    #[serde(default)]
    pub semantics: Semantics,
    /// Rotation-equivariant core only: rotations of every feature (default 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_rotations: Option<usize>,
    /// Rotation-equivariant core only: the Hermite filters' upsampling (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upsampling: Option<usize>,
    /// Rotation-equivariant core only (default true): the batch norm (and bias or scale layer)
    /// shared over the rotations; false is a plain `BatchNorm2d` of `hidden_channels` channels,
    /// which fits the layers' R·F channels only for one rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rot_eq_batch_norm: Option<bool>,
    pub input_channels: usize,
    /// One width for every layer, or (head) one per layer.
    pub hidden_channels: PerLayer<usize>,
    pub input_kern: usize,
    /// One kernel for every hidden layer, or one per hidden layer (layers − 1 of them).
    pub hidden_kern: PerLayer<usize>,
    pub layers: usize,
    #[serde(default)]
    pub pad_input: bool,
    /// Padding of the hidden convs; null: `((k − 1)·dilation + 1) / 2` (0.3: of the first hidden
    /// kernel, for every layer; head: of each layer's kernel, and 0 also means that).
    #[serde(default)]
    pub hidden_padding: Option<usize>,
    #[serde(default = "yes")]
    pub depth_separable: bool,
    #[serde(default = "last_layer")]
    pub stack: Stack,
    /// `skip > 1`: layer l ≥ 1 reads the last `min(skip, l)` layer outputs, concatenated.
    #[serde(default)]
    pub skip: usize,
    #[serde(default = "default_eps")]
    pub batch_norm_eps: f32,
    #[serde(default = "one")]
    pub hidden_dilation: usize,
    /// The first conv's stride (head only; 0.3 has none: 1).
    #[serde(default = "one")]
    pub input_stride: usize,
    #[serde(default = "one")]
    pub stride: usize,
    /// The activation after the last layer too.
    #[serde(default = "yes")]
    pub final_nonlinearity: bool,
    /// No activation anywhere.
    #[serde(default)]
    pub linear: bool,
    /// AdaptiveELU's shifts as Python's `elu_shift` [x, y] …
    #[serde(default)]
    pub elu_shift: Option<[f32; 2]>,
    /// … or one by one: elu(x − elu_xshift) + elu_yshift.
    #[serde(default)]
    pub elu_xshift: Option<f32>,
    #[serde(default)]
    pub elu_yshift: Option<f32>,
    /// Python's `bias`; absent: whatever biases the weights hold (what a config without it meant
    /// before), present: exactly the keys its version's rules imply.
    #[serde(default)]
    pub bias: Option<PerLayer<bool>>,
    #[serde(default = "all_true")]
    pub batch_norm: PerLayer<bool>,
    #[serde(default = "all_true")]
    pub batch_norm_scale: PerLayer<bool>,
    /// 0.3 only (default true).
    #[serde(default)]
    pub independent_bn_bias: Option<bool>,
    /// head only (default true): the last layer's `batch_norm_scale` when that is one bool.
    #[serde(default)]
    pub final_batchnorm_scale: Option<bool>,
    /// Must be false (self-attention layers are not supported).
    #[serde(default)]
    pub attention_conv: bool,
    /// head only: "AdaptiveELU" (the only one supported).
    #[serde(default)]
    pub nonlinearity_type: Option<String>,
    /// head only: ignored with AdaptiveELU, as neuralpredictors ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonlinearity_config: Option<serde_json::Value>,
    /// Training-only arguments, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma_input: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma_hidden: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_avg_reg: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub laplace_padding: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_regularizer: Option<serde_json::Value>,
    /// Rotation-equivariant core under head only: the coefficients' initialisation, ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_std: Option<serde_json::Value>,
}

impl CoreConfig {
    /// A core of `layers` layers with every other option at its default (the baseline's).
    pub fn new(
        input_channels: usize,
        hidden_channels: usize,
        input_kern: usize,
        hidden_kern: usize,
        layers: usize,
    ) -> Self {
        CoreConfig {
            kind: CoreKind::Stacked2d,
            semantics: Semantics::V0_3,
            num_rotations: None,
            upsampling: None,
            rot_eq_batch_norm: None,
            input_channels,
            hidden_channels: PerLayer::All(hidden_channels),
            input_kern,
            hidden_kern: PerLayer::All(hidden_kern),
            layers,
            pad_input: false,
            hidden_padding: None,
            depth_separable: true,
            stack: Stack::From(-1),
            skip: 0,
            batch_norm_eps: 1e-5,
            hidden_dilation: 1,
            input_stride: 1,
            stride: 1,
            final_nonlinearity: true,
            linear: false,
            elu_shift: None,
            elu_xshift: None,
            elu_yshift: None,
            bias: None,
            batch_norm: PerLayer::All(true),
            batch_norm_scale: PerLayer::All(true),
            independent_bn_bias: None,
            final_batchnorm_scale: None,
            attention_conv: false,
            nonlinearity_type: None,
            nonlinearity_config: None,
            momentum: None,
            gamma_input: None,
            gamma_hidden: None,
            use_avg_reg: None,
            laplace_padding: None,
            input_regularizer: None,
            init_std: None,
        }
    }
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
        let cfg: SensoriumConfig = crate::models::parse_config(text, "sensorium", "model")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.core.plan()?;
        let bad = |name: &str, why: &str| Err(Error::param(OP, name, why.to_string()));
        if let Some((k, r)) = self.readouts.iter().find(|(_, r)| r.neurons > ops::MAX_GEOMETRY) {
            let name = format!("readouts.{k}.neurons");
            return bad(&name, &format!("{} is past the supported maximum {}", r.neurons, ops::MAX_GEOMETRY));
        }
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
        self.core.plan()?.output(h, w)
    }
}

impl Sensorium {
    /// The Sensorium 2022 baseline's shape with `neurons` neurons under data key "bench".
    pub fn baseline_config(neurons: usize) -> SensoriumConfig {
        SensoriumConfig {
            core: CoreConfig::new(1, 64, 9, 7, 4),
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
