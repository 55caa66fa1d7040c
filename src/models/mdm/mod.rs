//! The MDM-style motion denoiser of Platypose (docs/ops.md, attention and the MDM denoiser): per-frame input linear, a
//! timestep token (sinusoidal table row → Linear → SiLU → Linear) prepended to the frames, sinusoidal positional
//! encoding, post-LN transformer encoder layers (GELU), output linear on the frames.
//!
//! Keys: `input_process.{weight,bias}` [E, D], `embed_timestep.{0,2}.{weight,bias}` [E, E],
//! `encoder.layers.{i}.*` (PyTorch `nn.TransformerEncoderLayer` names), `output_process.{weight,bias}`
//! [D, E]. Inference only; one forward is one recorded chain.

mod config;
mod fixtures;
mod load;
mod record;

pub use config::{MdmConfig, MAX_LAYERS, MAX_LEN};
pub use fixtures::random_state_dict;
pub use load::sinusoidal_table;

use crate::models::transformer::EncoderLayer;
use crate::tensor::Tensor;

/// What the weights are, for messages.
pub(crate) const WHAT: &str = "weights";

pub struct Mdm {
    pub config: MdmConfig,
    /// The sinusoidal table [max_len, E] (the positions).
    pe_dev: Tensor,
    /// The timestep token of every timestep the model takes, [timesteps, E]: Linear → SiLU →
    /// Linear of the table's row t depends on the weights only, so it is computed once at load
    /// time (f64 accumulation).
    tokens: Tensor,
    /// How many timesteps have a token (max_len, or fewer for a sampler that needs fewer).
    timesteps: usize,
    input: (Tensor, Tensor),
    layers: Vec<EncoderLayer>,
    output: (Tensor, Tensor),
}
