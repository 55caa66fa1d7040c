//! The video model's JSON config (`"kind": "video"`): the core as `make_video_model` builds it
//! (`core.type`: a 3-D core with neuralpredictors' `Factorized3dCore` / `Basic3dCore` arguments,
//! or a 2-D core with `Stacked2dCore` / `RotationEquivariant2dCore` ones, the Sensorium's
//! [`CoreConfig`]), an optional ConvGRU after it (`gru`, upstream's `gru_dict`), and one
//! `FullGaussian2d` readout per data key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OP;
use crate::error::{Error, Result};
use crate::models::sensorium::{CoreConfig, CoreKind, ReadoutConfig};
use crate::ops::{Activation, Conv3dParams, ConvGruParams};

/// Which core `make_video_model` builds (its `core_type`, the config's `core.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoCoreKind {
    /// `Factorized3dCore`: per layer a `(1, k, k)` spatial conv, then a `(kt, 1, 1)` temporal conv.
    #[serde(rename = "3D_factorised")]
    Factorised,
    /// `Basic3dCore`: per layer one `(kt, k, k)` conv.
    #[serde(rename = "3D")]
    Basic,
    /// `Stacked2dCore` on every frame (a ConvGRU must follow).
    #[serde(rename = "2D")]
    Stacked2d,
    /// `RotationEquivariant2dCore` on every frame (a ConvGRU must follow).
    #[serde(rename = "2D_equivariant")]
    Equivariant2d,
}

impl VideoCoreKind {
    /// The `core.type` string.
    pub fn name(self) -> &'static str {
        match self {
            VideoCoreKind::Factorised => "3D_factorised",
            VideoCoreKind::Basic => "3D",
            VideoCoreKind::Stacked2d => "2D",
            VideoCoreKind::Equivariant2d => "2D_equivariant",
        }
    }

    /// A 2-D core, run on every frame.
    pub fn is_2d(self) -> bool {
        matches!(self, VideoCoreKind::Stacked2d | VideoCoreKind::Equivariant2d)
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn eps() -> f32 {
    1e-5
}
fn elu() -> String {
    "elu".into()
}

/// A 3-D core's options, with neuralpredictors' argument names. Kernels are odd or even squares
/// in space; `temporal_*_kernel` are frame counts. `padding` pads space only (by k / 2); time is
/// never padded, so every layer shortens the clip by `dilation · (kt − 1)` frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core3dConfig {
    #[serde(rename = "type")]
    pub kind: VideoCoreKind,
    pub input_channels: usize,
    /// One width per layer.
    pub hidden_channels: Vec<usize>,
    pub spatial_input_kernel: usize,
    pub temporal_input_kernel: usize,
    pub spatial_hidden_kernel: usize,
    pub temporal_hidden_kernel: usize,
    #[serde(default = "one")]
    pub stride: usize,
    #[serde(default)]
    pub padding: bool,
    /// The nonlinearity after the last layer (upstream always has one where `layers > 1`).
    #[serde(default = "yes")]
    pub final_nonlin: bool,
    #[serde(default = "yes")]
    pub batch_norm: bool,
    /// With `bias`: an affine BatchNorm3d (both), a `Bias3DLayer` (bias only) or a
    /// `Scale3DLayer` (scale only) after the norm.
    #[serde(default = "yes")]
    pub batch_norm_scale: bool,
    #[serde(default = "yes")]
    pub bias: bool,
    #[serde(default = "elu")]
    pub hidden_nonlinearities: String,
    #[serde(default = "one")]
    pub spatial_dilation: usize,
    #[serde(default = "one")]
    pub temporal_dilation: usize,
    #[serde(default = "one")]
    pub hidden_spatial_dilation: usize,
    #[serde(default = "one")]
    pub hidden_temporal_dilation: usize,
    #[serde(default = "eps")]
    pub batch_norm_eps: f32,
}

/// The core of a video model: a 3-D core on the clip, or a 2-D core on every frame (the
/// Sensorium's core config; its `kind` follows `type`: `2D` a `Stacked2dCore`, `2D_equivariant` a
/// `RotationEquivariant2dCore`). In JSON one object with `type` and the core's arguments.
// A config value, built once per model: the size of the 2-D variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum VideoCoreConfig {
    ThreeD(Core3dConfig),
    TwoD(CoreConfig),
}

/// `GRU_Module`'s arguments (upstream's `gru_dict`): a `ConvGRUCell` of `input_channels` (the
/// core's output channels) → `rec_channels` (what the readouts see), square kernels `input_kern`
/// on the core's frames and `rec_kern` on the hidden state, `groups` for all six convs, and
/// `pad_input` (default true, upstream's): without it the state is `input_kern − 1` smaller than
/// the core's frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GruConfig {
    pub input_channels: usize,
    pub rec_channels: usize,
    pub input_kern: usize,
    pub rec_kern: usize,
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default = "yes")]
    pub pad_input: bool,
    /// Training only (the recurrent weights' regularizer), accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma_rec: Option<serde_json::Value>,
}

impl GruConfig {
    /// The cell's sizes.
    pub fn params(&self) -> ConvGruParams {
        ConvGruParams {
            input_channels: self.input_channels,
            rec_channels: self.rec_channels,
            input_kern: self.input_kern,
            rec_kern: self.rec_kern,
            groups: self.groups,
            pad_input: self.pad_input,
        }
    }
}

/// How the model's config reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    pub core: VideoCoreConfig,
    /// A ConvGRU between the core and the readouts (upstream's `use_gru` with `gru_dict`); a 2-D
    /// core needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gru: Option<GruConfig>,
    pub readouts: BTreeMap<String, ReadoutConfig>,
    #[serde(default)]
    pub elu_offset: f32,
}

/// One conv of a core layer, as it runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ConvPlan {
    /// The key prefix of its weight and bias (`core.features.layer1.conv_temporal_1`).
    pub(crate) prefix: String,
    /// Weight shape [O, C, KT, KH, KW].
    pub(crate) shape: [usize; 5],
    pub(crate) params: Conv3dParams,
}

impl ConvPlan {
    /// Frames of input it needs beyond the one it outputs: dilation · (kt − 1).
    pub(crate) fn lookback(&self) -> usize {
        self.params.dilation[0] * (self.shape[2] - 1)
    }
}

/// One core layer: its convs (one or two), then the norm and the activation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LayerPlan {
    pub(crate) prefix: String,
    pub(crate) convs: Vec<ConvPlan>,
    pub(crate) channels: usize,
    pub(crate) act: Activation,
}

impl Core3dConfig {
    pub fn layers(&self) -> usize {
        self.hidden_channels.len()
    }

    pub(crate) fn activation(&self) -> Result<Activation> {
        match self.hidden_nonlinearities.as_str() {
            "elu" => Ok(Activation::Elu),
            "relu" => Ok(Activation::Relu),
            "softplus" => Ok(Activation::Softplus { beta: 1.0, threshold: 20.0 }),
            other => Err(Error::param(
                OP,
                "core.hidden_nonlinearities",
                format!("{other:?} is not one of elu, relu, softplus"),
            )),
        }
    }

    /// The layers as they run (upstream's key names, kernels, strides, dilations and padding).
    pub(crate) fn plan(&self) -> Result<Vec<LayerPlan>> {
        let bad = |name: &str, why: String| Err(Error::param(OP, format!("core.{name}"), why));
        if self.kind.is_2d() {
            return bad("type", format!("{} is a 2-D core: its options are the Sensorium's core's", self.kind.name()));
        }
        let n = self.layers();
        if n == 0 {
            return bad("hidden_channels", "at least one layer is needed".into());
        }
        for (name, v) in [
            ("input_channels", self.input_channels),
            ("spatial_input_kernel", self.spatial_input_kernel),
            ("temporal_input_kernel", self.temporal_input_kernel),
            ("spatial_hidden_kernel", self.spatial_hidden_kernel),
            ("temporal_hidden_kernel", self.temporal_hidden_kernel),
            ("stride", self.stride),
            ("spatial_dilation", self.spatial_dilation),
            ("temporal_dilation", self.temporal_dilation),
            ("hidden_spatial_dilation", self.hidden_spatial_dilation),
            ("hidden_temporal_dilation", self.hidden_temporal_dilation),
        ] {
            if v == 0 {
                return bad(name, "must be >= 1".into());
            }
            crate::ops::geometry(OP, &format!("core.{name}"), &[v])?;
        }
        if let Some(i) = self.hidden_channels.iter().position(|&c| c == 0) {
            return bad(&format!("hidden_channels[{i}]"), "must be >= 1".into());
        }
        crate::ops::geometry(OP, "core.hidden_channels", &self.hidden_channels)?;
        if !(self.batch_norm_eps > 0.0 && self.batch_norm_eps.is_finite()) {
            return bad("batch_norm_eps", format!("{} must be a positive number", self.batch_norm_eps));
        }
        let act = self.activation()?;
        let s = self.stride;
        let mut out = Vec::with_capacity(n);
        let mut cin = self.input_channels;
        for l in 0..n {
            let c = self.hidden_channels[l];
            let (ks, kt, sd, td) = if l == 0 {
                (self.spatial_input_kernel, self.temporal_input_kernel, self.spatial_dilation, self.temporal_dilation)
            } else {
                (
                    self.spatial_hidden_kernel,
                    self.temporal_hidden_kernel,
                    self.hidden_spatial_dilation,
                    self.hidden_temporal_dilation,
                )
            };
            let pad = if self.padding { ks / 2 } else { 0 };
            let prefix = format!("core.features.layer{l}");
            let suffix = if l == 0 { String::new() } else { format!("_{l}") };
            let convs = match self.kind {
                VideoCoreKind::Factorised => vec![
                    ConvPlan {
                        prefix: format!("{prefix}.conv_spatial{suffix}"),
                        shape: [c, cin, 1, ks, ks],
                        params: Conv3dParams::default()
                            .with_stride(1, s, s)
                            .with_dilation(1, sd, sd)
                            .with_padding(0, pad, pad),
                    },
                    ConvPlan {
                        prefix: format!("{prefix}.conv_temporal{suffix}"),
                        shape: [c, c, kt, 1, 1],
                        params: Conv3dParams::default().with_dilation(td, 1, 1),
                    },
                ],
                VideoCoreKind::Stacked2d | VideoCoreKind::Equivariant2d => unreachable!("refused above"),
                VideoCoreKind::Basic => vec![ConvPlan {
                    prefix: format!("{prefix}.conv{suffix}"),
                    shape: [c, cin, kt, ks, ks],
                    params: Conv3dParams::default()
                        .with_stride(1, s, s)
                        .with_dilation(td, sd, sd)
                        .with_padding(0, pad, pad),
                }],
            };
            // Upstream: every hidden layer has the nonlinearity; the first one too unless it is
            // the only layer and final_nonlin is off.
            let act = if l > 0 || n > 1 || self.final_nonlin { act } else { Activation::Identity };
            out.push(LayerPlan { prefix, convs, channels: c, act });
            cin = c;
        }
        Ok(out)
    }

    /// Frames of input per output frame: 1 + Σ dilation · (kt − 1).
    pub fn receptive_frames(&self) -> Result<usize> {
        Ok(1 + self.plan()?.iter().flat_map(|l| &l.convs).map(ConvPlan::lookback).sum::<usize>())
    }

    /// The core's output [B, C', T', H', W'] for an input [B, C, T, H, W]; refuses by name a clip
    /// shorter than the receptive field, channels that do not match, a frame too small.
    pub fn output_shape(&self, input: &[usize]) -> Result<[usize; 5]> {
        let &[b, c, t, h, w] = input else {
            return Err(Error::shape(OP, "video", input, format!("[B, {}, T, H, W]", self.input_channels)));
        };
        if c != self.input_channels {
            return Err(Error::shape(
                OP,
                "video",
                input,
                format!("[B, {} (core.input_channels: video plus behaviour), T, H, W]", self.input_channels),
            ));
        }
        let need = self.receptive_frames()?;
        if t < need {
            return Err(Error::shape(
                OP,
                "video",
                input,
                format!("at least {need} frames (the core's receptive field in time)"),
            ));
        }
        let mut x = [b, c, t, h, w];
        for l in self.plan()? {
            for conv in &l.convs {
                let s = crate::ops::conv3d::conv3d_shape(&x, &conv.shape, &conv.params).map_err(|_| {
                    Error::shape(OP, "video", input, format!("frames large enough for {}", conv.prefix))
                })?;
                x = s.output();
            }
        }
        Ok(x)
    }
}

/// A Sensorium core's refusal restated as the video model's (same field names, `core.…`).
fn as_video(e: Error) -> Error {
    match e {
        Error::Param { op, name, reason } if op != OP => Error::Param { op: OP, name, reason },
        e => e,
    }
}

impl VideoCoreConfig {
    /// Its `core.type`.
    pub fn kind(&self) -> VideoCoreKind {
        match self {
            VideoCoreConfig::ThreeD(c) => c.kind,
            VideoCoreConfig::TwoD(c) if c.kind == CoreKind::RotationEquivariant => VideoCoreKind::Equivariant2d,
            VideoCoreConfig::TwoD(_) => VideoCoreKind::Stacked2d,
        }
    }

    /// Channels of the input clips (video plus behaviour).
    pub fn input_channels(&self) -> usize {
        match self {
            VideoCoreConfig::ThreeD(c) => c.input_channels,
            VideoCoreConfig::TwoD(c) => c.input_channels,
        }
    }

    /// Refuses options the core cannot run, by field name (`core.…`).
    pub fn validate(&self) -> Result<()> {
        self.out_channels().map(|_| ())
    }

    /// Channels of the core's output.
    pub fn out_channels(&self) -> Result<usize> {
        match self {
            VideoCoreConfig::ThreeD(c) => Ok(c.plan()?.last().map_or(0, |l| l.channels)),
            VideoCoreConfig::TwoD(c) => Ok(c.plan().map_err(as_video)?.out_channels),
        }
    }

    /// Frames of input per output frame: 1 + Σ dilation · (kt − 1) for a 3-D core, 1 for a 2-D one.
    pub fn receptive_frames(&self) -> Result<usize> {
        match self {
            VideoCoreConfig::ThreeD(c) => c.receptive_frames(),
            VideoCoreConfig::TwoD(c) => c.plan().map_err(as_video).map(|_| 1),
        }
    }

    /// The core's output [B, C', T', H', W'] for an input [B, C, T, H, W] (a 2-D core keeps every
    /// frame: T' = T); refuses by name (`video`) a clip shorter than the receptive field, channels
    /// that do not match, a frame too small.
    pub fn output_shape(&self, input: &[usize]) -> Result<[usize; 5]> {
        match self {
            VideoCoreConfig::ThreeD(c) => c.output_shape(input),
            VideoCoreConfig::TwoD(c) => {
                let plan = c.plan().map_err(as_video)?;
                let expected =
                    || format!("[B, {} (core.input_channels: video plus behaviour), T, H, W]", c.input_channels);
                let &[b, ch, t, h, w] = input else {
                    return Err(Error::shape(OP, "video", input, expected()));
                };
                if ch != c.input_channels {
                    return Err(Error::shape(OP, "video", input, expected()));
                }
                if t == 0 {
                    return Err(Error::shape(OP, "video", input, "at least 1 frame"));
                }
                let [co, ho, wo] = plan.output(h, w).map_err(|e| match e {
                    Error::Shape { expected, .. } => {
                        Error::shape(OP, "video", input, format!("frames large enough for the 2-D core: {expected}"))
                    }
                    e => e,
                })?;
                Ok([b, co, t, ho, wo])
            }
        }
    }
}

impl Serialize for VideoCoreConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match self {
            VideoCoreConfig::ThreeD(c) => c.serialize(s),
            VideoCoreConfig::TwoD(c) => {
                let mut v = serde_json::to_value(c).map_err(S::Error::custom)?;
                if let Some(m) = v.as_object_mut() {
                    m.remove("kind");
                    m.insert("type".into(), self.kind().name().into());
                }
                v.serialize(s)
            }
        }
    }
}

impl<'de> Deserialize<'de> for VideoCoreConfig {
    /// By `type`: "2D" and "2D_equivariant" take the Sensorium core's fields (with no `kind`:
    /// `type` says it), the 3-D types [`Core3dConfig`]'s.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut v = serde_json::Value::deserialize(d)?;
        let Some(m) = v.as_object_mut() else {
            return Err(D::Error::custom("core: expected an object"));
        };
        let kind = match m.get("type").map(|t| serde_json::from_value::<VideoCoreKind>(t.clone())) {
            None => return Err(D::Error::missing_field("type")),
            Some(Err(e)) => return Err(D::Error::custom(format!("core.type: {e}"))),
            Some(Ok(k)) => k,
        };
        if !kind.is_2d() {
            return Core3dConfig::deserialize(v).map(VideoCoreConfig::ThreeD).map_err(D::Error::custom);
        }
        m.remove("type");
        if m.contains_key("kind") {
            return Err(D::Error::custom("core.kind: a video model's core.type (2D or 2D_equivariant) says it"));
        }
        let mut c = CoreConfig::deserialize(v).map_err(D::Error::custom)?;
        c.kind = if kind == VideoCoreKind::Equivariant2d { CoreKind::RotationEquivariant } else { CoreKind::Stacked2d };
        Ok(VideoCoreConfig::TwoD(c))
    }
}

impl VideoConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: VideoConfig = crate::models::parse_config(text, "video", "video model")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let c = self.core.out_channels()?;
        match &self.gru {
            None if self.core.kind().is_2d() => {
                return Err(Error::param(
                    OP,
                    "gru",
                    format!(
                        "a {} core needs a ConvGRU after it (upstream's forward without one reads the \
                         frames' height as time)",
                        self.core.kind().name()
                    ),
                ))
            }
            None => {}
            Some(g) => {
                g.params().validate().map_err(|e| match e {
                    Error::Param { name, reason, .. } => Error::param(OP, format!("gru.{name}"), reason),
                    e => e,
                })?;
                if g.input_channels != c {
                    return Err(Error::param(
                        OP,
                        "gru.input_channels",
                        format!("{}, but the core gives {c} channels", g.input_channels),
                    ));
                }
            }
        }
        if self.readouts.is_empty() {
            return Err(Error::param(OP, "readouts", "at least one data key is needed"));
        }
        for (k, r) in &self.readouts {
            if r.neurons == 0 {
                return Err(Error::param(OP, format!("readouts.{k}.neurons"), "must be >= 1"));
            }
            if r.modulator {
                return Err(Error::param(
                    OP,
                    format!("readouts.{k}.modulator"),
                    "make_video_model builds no modulator",
                ));
            }
        }
        if !self.elu_offset.is_finite() {
            return Err(Error::param(OP, "elu_offset", "must be finite"));
        }
        Ok(())
    }

    /// Channels the readouts see: the GRU's `rec_channels`, or the core's.
    pub fn readout_channels(&self) -> Result<usize> {
        match &self.gru {
            Some(g) => Ok(g.rec_channels),
            None => self.core.out_channels(),
        }
    }

    /// What the readouts see for a clip [B, C, T, H, W]: the core's output, through the GRU
    /// where there is one, [B, C'', T', H'', W'']; refusals name `video`.
    pub fn features_shape(&self, input: &[usize]) -> Result<[usize; 5]> {
        let [b, c, t, h, w] = self.core.output_shape(input)?;
        let Some(g) = &self.gru else {
            return Ok([b, c, t, h, w]);
        };
        let shrink = if g.pad_input { 0 } else { g.input_kern - 1 };
        if h <= shrink || w <= shrink {
            return Err(Error::shape(
                OP,
                "video",
                input,
                format!(
                    "frames whose core output ({h} × {w}) is larger than the GRU's unpadded input_kern {}",
                    g.input_kern
                ),
            ));
        }
        Ok([b, g.rec_channels, t, h - shrink, w - shrink])
    }
}
