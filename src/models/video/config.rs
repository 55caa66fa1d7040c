//! The video model's JSON config (`"kind": "video"`): the 3-D core as neuralpredictors'
//! `Factorized3dCore` / `Basic3dCore` take it, and one `FullGaussian2d` readout per data key.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::OP;
use crate::error::{Error, Result};
use crate::models::sensorium::ReadoutConfig;
use crate::ops::{Activation, Conv3dParams};

/// Which core `make_video_model` builds (its `core_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VideoCoreKind {
    /// `Factorized3dCore`: per layer a `(1, k, k)` spatial conv, then a `(kt, 1, 1)` temporal conv.
    #[serde(rename = "3D_factorised")]
    Factorised,
    /// `Basic3dCore`: per layer one `(kt, k, k)` conv.
    #[serde(rename = "3D")]
    Basic,
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

/// The core's options, with neuralpredictors' argument names. Kernels are odd or even squares in
/// space; `temporal_*_kernel` are frame counts. `padding` pads space only (by k / 2); time is
/// never padded, so every layer shortens the clip by `dilation · (kt − 1)` frames.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoCoreConfig {
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

/// How the model's config reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VideoConfig {
    pub core: VideoCoreConfig,
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

impl VideoCoreConfig {
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

impl VideoConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: VideoConfig = crate::models::parse_config(text, "video", "video model")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        self.core.plan()?;
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
}
