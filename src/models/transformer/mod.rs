//! A post-LN transformer encoder layer (PyTorch `nn.TransformerEncoderLayer`, `norm_first=False`,
//! GELU feed-forward, no dropout at inference), the building block of the MDM denoiser
//! (docs/ops.md, attention and the MDM denoiser):
//!   x ← LN1(x + out_proj(MHA(x)));   x ← LN2(x + W2 · gelu(W1 · x + b1) + b2)
//! PyTorch's packed `self_attn.in_proj_weight [3E, E]` is split into Q, K, V at load time.

mod load;
mod record;
mod reference;

pub(crate) use load::EncoderWeights;
pub use reference::reference_encoder_layer;

use crate::tensor::Tensor;

/// The device tensors of one layer.
pub struct EncoderLayer {
    pub heads: usize,
    pub eps: f32,
    q: (Tensor, Tensor),
    k: (Tensor, Tensor),
    v: (Tensor, Tensor),
    out: (Tensor, Tensor),
    ff1: (Tensor, Tensor),
    ff2: (Tensor, Tensor),
    ln1: (Tensor, Tensor),
    ln2: (Tensor, Tensor),
}
