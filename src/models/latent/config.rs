//! The latent video model's config (docs/models.md, "Latent video model") and its validation.

use serde::{Deserialize, Serialize};

use super::OP;
use crate::error::{Error, Result};
use crate::models::video::{Core3dConfig, VideoCoreKind};
use crate::ops;

fn eps() -> f32 {
    1e-5
}
fn yes() -> bool {
    true
}
fn zig_kernel() -> [usize; 2] {
    [11, 5]
}
fn hundred() -> usize {
    100
}
fn fixed_loc() -> f32 {
    0.005
}

/// Where the gamma shape k and the threshold loc come from (upstream's `ZIGEncoder` options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentK {
    /// k = ELU(`logk.<key>`) + 1 + 1e-6 and loc = exp(`logloc.<key>`) (no `mle_fitting`).
    #[default]
    Logk,
    /// The paper's `mle_fitting`: k per neuron from `fitted_k.<key>` [N] (upstream keeps it outside
    /// the state dict; an export adds it to the weights), loc fixed to the config's `loc`;
    /// `logk` and `logloc` are accepted unused.
    Fitted,
}

/// neuralpredictors' `Factorized3dCore` as the latent model uses it: one input channel, valid
/// (unpadded) convs, stride 1, affine batch norm and ELU after every layer, conv biases. It runs
/// as the shared [`VideoCore`](crate::models::video::VideoCore) (see [`Self::video_core`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentCoreConfig {
    /// Channels of every layer (the layer count is its length).
    pub hidden_channels: Vec<usize>,
    pub spatial_input_kernel: usize,
    pub temporal_input_kernel: usize,
    pub spatial_hidden_kernel: usize,
    pub temporal_hidden_kernel: usize,
    #[serde(default = "eps")]
    pub batch_norm_eps: f32,
}

/// The ZIG readout of one recording session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentReadoutConfig {
    /// The session's data key (part of the weight names).
    pub data_key: String,
    pub neurons: usize,
    /// The (time, channel) conv's kernel; odd sizes.
    #[serde(default = "zig_kernel")]
    pub kernel: [usize; 2],
    /// Whether the readout has a bias [N].
    #[serde(default)]
    pub bias: bool,
    #[serde(default = "yes")]
    pub align_corners: bool,
    /// For positions from a `grid_mean_predictor` (`source_grid` and `mu_transform.*` in place
    /// of `_mu`, as the paper's readout has): whether its MLP ends in Tanh (`final_tanh`, which
    /// the weights cannot show). Required when such a predictor is present.
    #[serde(default)]
    pub grid_mean_final_tanh: Option<bool>,
}

/// The response encoder: Linear(N → hidden_dim) → LayerNorm → ELU → GRU(hidden_dim → hidden_gru)
/// → Linear(hidden_gru → output_dim).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentEncoderConfig {
    pub hidden_dim: usize,
    pub hidden_gru: usize,
    /// The latent dimension L.
    pub output_dim: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatentConfig {
    pub core: LatentCoreConfig,
    pub readout: LatentReadoutConfig,
    pub encoder: LatentEncoderConfig,
    /// Latent samples S (the CLI's `--samples` overrides it).
    #[serde(default = "hundred")]
    pub samples: usize,
    /// Philox seed of the latent noise.
    #[serde(default)]
    pub seed: u64,
    /// Where k and loc come from.
    #[serde(default)]
    pub k: LatentK,
    /// The fixed threshold loc with `"k": "fitted"` (upstream hardcodes 0.005).
    #[serde(default = "fixed_loc")]
    pub loc: f32,
}

impl LatentCoreConfig {
    /// The same core as the shared video core's config: `3D_factorised`, one input channel, no
    /// padding (the latent branch would pad time too with padding on; the paper runs without),
    /// stride and dilations 1, affine batch norm, ELU after every layer.
    pub fn video_core(&self) -> Core3dConfig {
        Core3dConfig {
            kind: VideoCoreKind::Factorised,
            input_channels: 1,
            hidden_channels: self.hidden_channels.clone(),
            spatial_input_kernel: self.spatial_input_kernel,
            temporal_input_kernel: self.temporal_input_kernel,
            spatial_hidden_kernel: self.spatial_hidden_kernel,
            temporal_hidden_kernel: self.temporal_hidden_kernel,
            stride: 1,
            padding: false,
            final_nonlin: true,
            batch_norm: true,
            batch_norm_scale: true,
            bias: true,
            hidden_nonlinearities: "elu".into(),
            spatial_dilation: 1,
            temporal_dilation: 1,
            hidden_spatial_dilation: 1,
            hidden_temporal_dilation: 1,
            batch_norm_eps: self.batch_norm_eps,
        }
    }
}

impl LatentConfig {
    /// Parses a config; a `"kind"` field, when present, must be `"latent"`.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: LatentConfig = crate::models::parse_config(text, "latent", "latent")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, why: String| Err(Error::param(OP, name, why));
        let size = |name: &str, v: usize| -> Result<()> {
            if v == 0 || v > ops::MAX_GEOMETRY {
                return Err(Error::param(OP, name, format!("{v}: 1 to {}", ops::MAX_GEOMETRY)));
            }
            Ok(())
        };
        let c = &self.core;
        if c.hidden_channels.is_empty() {
            return bad("core.hidden_channels", "at least one layer".into());
        }
        for &h in &c.hidden_channels {
            size("core.hidden_channels", h)?;
        }
        size("core.spatial_input_kernel", c.spatial_input_kernel)?;
        size("core.temporal_input_kernel", c.temporal_input_kernel)?;
        size("core.spatial_hidden_kernel", c.spatial_hidden_kernel)?;
        size("core.temporal_hidden_kernel", c.temporal_hidden_kernel)?;
        if !(c.batch_norm_eps > 0.0 && c.batch_norm_eps.is_finite()) {
            return bad("core.batch_norm_eps", "must be finite and > 0".into());
        }
        let r = &self.readout;
        size("readout.neurons", r.neurons)?;
        for k in r.kernel {
            size("readout.kernel", k)?;
            if k % 2 == 0 {
                return bad("readout.kernel", format!("{:?}: odd sizes (same padding)", r.kernel));
            }
        }
        let e = &self.encoder;
        size("encoder.hidden_dim", e.hidden_dim)?;
        size("encoder.hidden_gru", e.hidden_gru)?;
        size("encoder.output_dim", e.output_dim)?;
        if !(e.layer_norm_eps > 0.0 && e.layer_norm_eps.is_finite()) {
            return bad("encoder.layer_norm_eps", "must be finite and > 0".into());
        }
        size("samples", self.samples)?;
        if !(self.loc > 0.0 && self.loc.is_finite()) {
            return bad("loc", format!("{}: must be finite and > 0", self.loc));
        }
        Ok(())
    }

    /// The core's output frames and size (T', H', W') for a video of T×H×W: every layer's valid
    /// convs shrink time by kt − 1 and space by ks − 1. Refuses a video too small.
    pub fn core_output(&self, t: usize, h: usize, w: usize) -> Result<[usize; 3]> {
        // The shared video core's own arithmetic, the refusal under this model's name.
        let core = self.core.video_core();
        let r = core.receptive_frames()?;
        match core.output_shape(&[1, 1, t, h, w]) {
            Ok([_, _, to, ho, wo]) => Ok([to, ho, wo]),
            Err(_) => Err(Error::shape(
                OP,
                "video",
                &[t, h, w],
                format!("at least {r} frames, each large enough for the core's valid convs"),
            )),
        }
    }

    /// The paper's shape (`latent_space_model.py`): hidden channels 32, 64, 128, kernels 11/11 and
    /// 5/5, the (11, 5) ZIG readout, encoder 42 → GRU 20 → 12, for `neurons` neurons.
    pub fn paper(neurons: usize) -> LatentConfig {
        LatentConfig {
            core: LatentCoreConfig {
                hidden_channels: vec![32, 64, 128],
                spatial_input_kernel: 11,
                temporal_input_kernel: 11,
                spatial_hidden_kernel: 5,
                temporal_hidden_kernel: 5,
                batch_norm_eps: 1e-5,
            },
            readout: LatentReadoutConfig {
                data_key: "bench".into(),
                neurons,
                kernel: [11, 5],
                bias: false,
                align_corners: true,
                grid_mean_final_tanh: None,
            },
            encoder: LatentEncoderConfig { hidden_dim: 42, hidden_gru: 20, output_dim: 12, layer_norm_eps: 1e-5 },
            samples: 100,
            seed: 0,
            k: LatentK::Fitted,
            loc: 0.005,
        }
    }
}
