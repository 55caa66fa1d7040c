//! The probabilistic video model with latent factors (Schmidt, Turishcheva, Shrinivasan, Sinz;
//! FinnSchmidt01's `latent_space_model` and the `latent_space_model` branch of neuralpredictors) at
//! inference: a `Factorized3dCore` on one-channel video, the ZIG readout giving the logits of q
//! and θ per (b, t, n), the response encoder (Linear → LayerNorm → ELU → GRU → Linear) giving the
//! latent means μ [B, T, L], and the latent shifts `z W_q`, `z W_θ` of the logits.
//!
//! Two modes (docs/models.md): conditioned on the responses of the second half of the neurons
//! (the first half zeroed, as upstream's evaluation does; the ZIG mean from z = μ, the
//! log-likelihood from S samples z = μ + σε) and prior sampling (z = ε, S samples; the mean of the
//! ZIG with q and θ averaged over the samples, upstream's `sample_prior`). ε comes from the
//! engine's Philox normals, one stream per video and output frame (video v, frame j: stream
//! (seed, v · 2^32 + j)), so the GPU forward, the CPU reference and a stream draw the same noise
//! for a frame, whatever the batch; or it is given
//! ([`LatentNoise::Given`], e.g. PyTorch's draws).
//!
//! [`LatentStream`] (`Latent::stream`) feeds frames as they come and gives the clip forward's
//! outputs kt/2 frames late (the readout is not causal); `finish` gives the last ones.
//!
//! The core is the shared [`VideoCore`] (neuralpredictors' `Factorized3dCore`, upstream's keys).

mod config;
mod fixtures;
mod load;
mod record;
mod reference;
mod stream;

pub use config::{LatentConfig, LatentCoreConfig, LatentEncoderConfig, LatentK, LatentReadoutConfig};
pub use stream::{LatentFrames, LatentStream};

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::video::VideoCore;
use crate::ops::GruWeights;
use crate::tensor::Tensor;

const OP: &str = "latent";

/// How the latent state is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatentMode {
    /// From the responses: the first ⌊N/2⌋ neurons zeroed, the rest condition the encoder.
    Conditioned,
    /// S samples from the prior N(0, I).
    Prior,
}

/// Where the latent noise ε [S, B·T', L] comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LatentNoise<'a> {
    /// `samples` draws of the engine's Philox standard normals of `seed`: video v's output frame
    /// j takes the first S·L normals of stream (seed, (first_video + v) · 2^32 + j). A video's
    /// noise is the same whatever batch it comes in (with `first_video` its index in the whole
    /// set), in a clip or a stream, and the GPU forward and the CPU reference draw the same.
    Philox { samples: usize, seed: u64, first_video: u64 },
    /// Given standard normals [S, B·T', L], row-major (S is their length over B·T'·L).
    Given(&'a [f32]),
}

/// What a forward pass gives, each [B, T', N] (T' the core's output frames, the last T' frames of
/// the video): the ZIG mean, and the log-likelihood in bits of the responses' last T' frames
/// (when responses were given).
#[derive(Clone, Debug, PartialEq)]
pub struct LatentOutput {
    pub mean: Vec<f32>,
    pub loglik: Option<Vec<f32>>,
    pub shape: [usize; 3],
}

/// The ZIG readout's weights on the host: positions [N, 2], conv [2, 1, kt, kc] and its bias [2],
/// the stored features [1, C, 2, N] (read as [C, N, 2]), the bias [N].
struct Readout {
    mu: HostTensor,
    conv_weight: HostTensor,
    conv_bias: HostTensor,
    features: HostTensor,
    bias: Option<HostTensor>,
}

/// The response encoder's weights on the host.
struct Encoder {
    linear_w: HostTensor,
    linear_b: HostTensor,
    norm_w: HostTensor,
    norm_b: HostTensor,
    gru: GruWeights,
    final_w: HostTensor,
    final_b: HostTensor,
}

/// Everything but the core on the device, in upload order.
struct Device {
    mu: Tensor,
    conv_weight: Tensor,
    conv_bias: Tensor,
    features: Tensor,
    bias: Option<Tensor>,
    linear_w: Tensor,
    linear_b: Tensor,
    norm_w: Tensor,
    norm_b: Tensor,
    gru: crate::ops::Gru,
    final_w: Tensor,
    final_b: Tensor,
    w_q: Tensor,
    w_theta: Tensor,
    k: Tensor,
    loc: Tensor,
}

/// A loaded latent video model.
pub struct Latent {
    pub config: LatentConfig,
    core: VideoCore,
    readout: Readout,
    encoder: Encoder,
    /// [L, N] each.
    w_q: HostTensor,
    w_theta: HostTensor,
    /// The posterior's scale σ.
    sigma: f32,
    /// k and loc per neuron (see [`LatentK`]).
    k: Vec<f32>,
    loc: Vec<f32>,
    dev: Option<Device>,
}

impl Latent {
    fn device(&self) -> Result<&Device> {
        self.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))
    }

    /// Checks a video [B, 1, T, H, W] and, when given, responses [B, N, T]: returns (B, T, T', N).
    pub(crate) fn check_inputs(&self, video: &[usize], responses: Option<&[usize]>) -> Result<[usize; 4]> {
        let n = self.config.readout.neurons;
        let &[b, 1, t, h, w] = video else {
            return Err(Error::shape(OP, "video", video, "[B, 1, T, H, W]"));
        };
        crate::tensor::numel(OP, "video", video)?;
        if b == 0 {
            return Err(Error::shape(OP, "video", video, "[B, 1, T, H, W] with B >= 1"));
        }
        let [to, _, _] = self.config.core_output(t, h, w)?;
        if let Some(r) = responses {
            if r != [b, n, t] {
                return Err(Error::shape(OP, "responses", r, format!("[{b}, {n}, {t}] (B, neurons, T of the video)")));
            }
        }
        Ok([b, t, to, n])
    }

    /// The samples S and the mode, checked: conditioning needs responses.
    fn check_mode(mode: LatentMode, samples: usize, has_responses: bool) -> Result<()> {
        if samples == 0 || samples > crate::ops::MAX_GEOMETRY {
            return Err(Error::param(OP, "samples", format!("{samples}: 1 to {}", crate::ops::MAX_GEOMETRY)));
        }
        if mode == LatentMode::Conditioned && !has_responses {
            return Err(Error::param(OP, "responses", "conditioning needs the responses"));
        }
        Ok(())
    }

    /// The core alone (the shared video core).
    pub fn core(&self) -> &VideoCore {
        &self.core
    }

    /// S of `noise` for B·T' = `bt`, checked (1 to MAX_GEOMETRY): Philox takes `samples`, given
    /// normals must be [S, B·T', L].
    fn noise_samples(&self, noise: LatentNoise, bt: usize) -> Result<usize> {
        let l = self.config.encoder.output_dim;
        let s = match noise {
            LatentNoise::Philox { samples, .. } => samples,
            LatentNoise::Given(eps) => {
                let row = bt * l;
                if row == 0 || eps.is_empty() || eps.len() % row != 0 {
                    return Err(Error::shape(
                        OP,
                        "noise",
                        &[eps.len()],
                        format!("[S, {bt}, {l}] (S samples of B·T' × L normals)"),
                    ));
                }
                eps.len() / row
            }
        };
        Self::check_mode(LatentMode::Prior, s, false)?;
        Ok(s)
    }
}

/// The encoder's input [B, T, N] from responses [B, N, T]: transposed, and in the conditioned mode
/// the first ⌊N/2⌋ neurons zeroed (upstream's `responses[:, : N // 2, :] = 0`).
pub(crate) fn encoder_input(responses: &[f32], b: usize, n: usize, t: usize, mode: LatentMode) -> Vec<f32> {
    let masked = if mode == LatentMode::Conditioned { n / 2 } else { 0 };
    let mut out = vec![0f32; b * t * n];
    for bi in 0..b {
        for ni in masked..n {
            for ti in 0..t {
                out[(bi * t + ti) * n + ni] = responses[(bi * n + ni) * t + ti];
            }
        }
    }
    out
}

/// The last `to` frames of responses [B, N, T] as the targets [B·T', N].
pub(crate) fn targets(responses: &[f32], b: usize, n: usize, t: usize, to: usize) -> Vec<f32> {
    let mut out = vec![0f32; b * to * n];
    for bi in 0..b {
        for ni in 0..n {
            for ti in 0..to {
                out[(bi * to + ti) * n + ni] = responses[(bi * n + ni) * t + (t - to + ti)];
            }
        }
    }
    out
}
