//! An encoder layer's weights read through [`StateDict`] (PyTorch's names under a prefix, the
//! packed in-projection split into Q, K and V), and their upload.

use std::collections::BTreeMap;

use super::EncoderLayer;
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::runtime::Context;
use crate::tensor::Tensor;

/// One layer's weights on the host: (weight, bias) of each part.
pub(crate) struct EncoderWeights {
    pub(super) q: (HostTensor, HostTensor),
    pub(super) k: (HostTensor, HostTensor),
    pub(super) v: (HostTensor, HostTensor),
    pub(super) out: (HostTensor, HostTensor),
    pub(super) ff1: (HostTensor, HostTensor),
    pub(super) ff2: (HostTensor, HostTensor),
    pub(super) ln1: (HostTensor, HostTensor),
    pub(super) ln2: (HostTensor, HostTensor),
}

impl EncoderWeights {
    /// Takes `{prefix}.self_attn.in_proj_weight/bias`, `.self_attn.out_proj.*`, `.linear1.*`,
    /// `.linear2.*`, `.norm1.*`, `.norm2.*` (PyTorch's names) for embedding `e` and `heads` heads,
    /// each checked by the state dict (present, shaped, finite).
    pub(crate) fn take(sd: &mut StateDict, prefix: &str, e: usize, heads: usize) -> Result<EncoderWeights> {
        if heads == 0 || e % heads != 0 {
            return Err(Error::param("encoder_layer", "heads", format!("{heads} must divide {e}")));
        }
        let inw = sd.take(&format!("{prefix}.self_attn.in_proj_weight"), &[3 * e, e])?;
        let inb = sd.take(&format!("{prefix}.self_attn.in_proj_bias"), &[3 * e])?;
        let part = |i: usize| {
            (
                HostTensor::new(vec![e, e], inw.data[i * e * e..(i + 1) * e * e].to_vec()),
                HostTensor::new(vec![e], inb.data[i * e..(i + 1) * e].to_vec()),
            )
        };
        // The feed-forward width is the first linear's.
        let ff1w = sd.take_any(&format!("{prefix}.linear1.weight"))?;
        let hidden = match ff1w.shape[..] {
            [h, w] if w == e => h,
            _ => {
                return Err(Error::Weights(format!(
                    "weights: \"{prefix}.linear1.weight\" has shape {:?}, expected [H, {e}]",
                    ff1w.shape
                )))
            }
        };
        let out = pair(sd, prefix, "self_attn.out_proj", &[e, e], e)?;
        let ff1 = (ff1w, sd.take(&format!("{prefix}.linear1.bias"), &[hidden])?);
        let ff2 = pair(sd, prefix, "linear2", &[e, hidden], e)?;
        let ln1 = pair(sd, prefix, "norm1", &[e], e)?;
        let ln2 = pair(sd, prefix, "norm2", &[e], e)?;
        Ok(EncoderWeights { q: part(0), k: part(1), v: part(2), out, ff1, ff2, ln1, ln2 })
    }
}

/// `{prefix}.{name}.weight` of shape `w` and `{prefix}.{name}.bias` of `b` values.
fn pair(sd: &mut StateDict, prefix: &str, name: &str, w: &[usize], b: usize) -> Result<(HostTensor, HostTensor)> {
    Ok((sd.take(&format!("{prefix}.{name}.weight"), w)?, sd.take(&format!("{prefix}.{name}.bias"), &[b])?))
}

impl EncoderLayer {
    /// Loads `{prefix}.*` of `sd` (see [`EncoderWeights::take`]; other keys are left alone) for
    /// embedding `e` and `heads` heads, and uploads it.
    pub fn load(
        ctx: &Context,
        sd: &BTreeMap<String, HostTensor>,
        prefix: &str,
        e: usize,
        heads: usize,
        eps: f32,
    ) -> Result<Self> {
        let w = EncoderWeights::take(&mut StateDict::borrowed("weights", sd), prefix, e, heads)?;
        Self::upload(ctx, &w, heads, eps)
    }

    /// Puts a layer's weights on the device.
    pub(crate) fn upload(ctx: &Context, w: &EncoderWeights, heads: usize, eps: f32) -> Result<Self> {
        let up = |(w, b): &(HostTensor, HostTensor)| -> Result<(Tensor, Tensor)> {
            Ok((Tensor::from_f32(ctx, &w.data, &w.shape)?, Tensor::from_f32(ctx, &b.data, &b.shape)?))
        };
        Ok(EncoderLayer {
            heads,
            eps,
            q: up(&w.q)?,
            k: up(&w.k)?,
            v: up(&w.v)?,
            out: up(&w.out)?,
            ff1: up(&w.ff1)?,
            ff2: up(&w.ff2)?,
            ln1: up(&w.ln1)?,
            ln2: up(&w.ln2)?,
        })
    }
}
