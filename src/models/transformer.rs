//! A post-LN transformer encoder layer (PyTorch `nn.TransformerEncoderLayer`, `norm_first=False`,
//! GELU feed-forward, no dropout at inference), the building block of the MDM denoiser
//! (docs/ops.md, attention and the MDM denoiser):
//!   x ← LN1(x + out_proj(MHA(x)));   x ← LN2(x + W2 · gelu(W1 · x + b1) + b2)
//! PyTorch's packed `self_attn.in_proj_weight [3E, E]` is split into Q, K, V at load time.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Activation};
use crate::runtime::{Context, Recorder};
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

/// A layer's tensor through the models' one check (present, shaped, finite; models::checked).
fn take<'a>(sd: &'a BTreeMap<String, HostTensor>, key: &str, shape: &[usize]) -> Result<&'a HostTensor> {
    super::lookup("weights", sd, key, Some(shape))
}

/// The keys [`EncoderLayer::load`] reads under `prefix`.
pub(crate) const LAYER_KEYS: [&str; 12] = [
    "self_attn.in_proj_weight",
    "self_attn.in_proj_bias",
    "self_attn.out_proj.weight",
    "self_attn.out_proj.bias",
    "linear1.weight",
    "linear1.bias",
    "linear2.weight",
    "linear2.bias",
    "norm1.weight",
    "norm1.bias",
    "norm2.weight",
    "norm2.bias",
];

impl EncoderLayer {
    /// Loads `{prefix}.self_attn.in_proj_weight/bias`, `.self_attn.out_proj.*`, `.linear1.*`,
    /// `.linear2.*`, `.norm1.*`, `.norm2.*` (PyTorch's names) for embedding `e` and `heads` heads.
    pub fn load(
        ctx: &Context,
        sd: &BTreeMap<String, HostTensor>,
        prefix: &str,
        e: usize,
        heads: usize,
        eps: f32,
    ) -> Result<Self> {
        if heads == 0 || e % heads != 0 {
            return Err(Error::param("encoder_layer", "heads", format!("{heads} must divide {e}")));
        }
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        let inw = take(sd, &format!("{prefix}.self_attn.in_proj_weight"), &[3 * e, e])?;
        let inb = take(sd, &format!("{prefix}.self_attn.in_proj_bias"), &[3 * e])?;
        let part = |i: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                Tensor::from_f32(ctx, &inw.data[i * e * e..(i + 1) * e * e], &[e, e])?,
                Tensor::from_f32(ctx, &inb.data[i * e..(i + 1) * e], &[e])?,
            ))
        };
        let pair = |w: &str, b: &str, ws: &[usize], bs: &[usize]| -> Result<(Tensor, Tensor)> {
            Ok((up(take(sd, &format!("{prefix}.{w}"), ws)?)?, up(take(sd, &format!("{prefix}.{b}"), bs)?)?))
        };
        let ffw = &super::lookup("weights", sd, &format!("{prefix}.linear1.weight"), None)?.shape;
        let hidden = match ffw[..] {
            [h, w] if w == e => h,
            _ => {
                return Err(Error::Weights(format!(
                    "weights: \"{prefix}.linear1.weight\" has shape {ffw:?}, expected [H, {e}]"
                )))
            }
        };
        Ok(EncoderLayer {
            heads,
            eps,
            q: part(0)?,
            k: part(1)?,
            v: part(2)?,
            out: pair("self_attn.out_proj.weight", "self_attn.out_proj.bias", &[e, e], &[e])?,
            ff1: pair("linear1.weight", "linear1.bias", &[hidden, e], &[hidden])?,
            ff2: pair("linear2.weight", "linear2.bias", &[e, hidden], &[e])?,
            ln1: pair("norm1.weight", "norm1.bias", &[e], &[e])?,
            ln2: pair("norm2.weight", "norm2.bias", &[e], &[e])?,
        })
    }

    /// Records the layer on x [B, F, E].
    pub fn record(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let id = Activation::Identity;
        let q = ops::linear(rec, x, &self.q.0, Some(&self.q.1), id)?;
        let k = ops::linear(rec, x, &self.k.0, Some(&self.k.1), id)?;
        let v = ops::linear(rec, x, &self.v.0, Some(&self.v.1), id)?;
        let a = ops::attention(rec, &q, &k, &v, self.heads)?;
        let a = ops::linear(rec, &a, &self.out.0, Some(&self.out.1), id)?;
        let h = ops::add(rec, x, &a, id)?;
        let h = ops::layer_norm(rec, &h, 1, Some(&self.ln1.0), Some(&self.ln1.1), self.eps, id)?;
        let f = ops::linear(rec, &h, &self.ff1.0, Some(&self.ff1.1), Activation::Gelu)?;
        let f = ops::linear(rec, &f, &self.ff2.0, Some(&self.ff2.1), id)?;
        let y = ops::add(rec, &h, &f, id)?;
        ops::layer_norm(rec, &y, 1, Some(&self.ln2.0), Some(&self.ln2.1), self.eps, id)
    }
}

/// The same layer with the CPU reference ops, on host weights (for checks).
#[allow(clippy::too_many_arguments)]
pub fn reference_encoder_layer(
    sd: &BTreeMap<String, HostTensor>,
    prefix: &str,
    x: &[f32],
    b: usize,
    f: usize,
    e: usize,
    heads: usize,
    eps: f32,
) -> Result<Vec<f32>> {
    use crate::reference as r;
    let id = Activation::Identity;
    let rows = b * f;
    let g = |k: &str| -> Result<&HostTensor> {
        sd.get(&format!("{prefix}.{k}")).ok_or_else(|| Error::Weights(format!("weights: missing key {prefix}.{k}")))
    };
    let (inw, inb) = (g("self_attn.in_proj_weight")?, g("self_attn.in_proj_bias")?);
    let proj = |i: usize| {
        r::linear(x, rows, e, &inw.data[i * e * e..(i + 1) * e * e], e, Some(&inb.data[i * e..(i + 1) * e]), id)
    };
    let (q, k, v) = (proj(0), proj(1), proj(2));
    let a = r::matmul::attention(&q, &k, &v, b, f, e, heads);
    let a =
        r::linear(&a, rows, e, &g("self_attn.out_proj.weight")?.data, e, Some(&g("self_attn.out_proj.bias")?.data), id);
    let h: Vec<f32> = x.iter().zip(&a).map(|(p, q)| p + q).collect();
    let h = r::layer_norm(&h, e, Some(&g("norm1.weight")?.data), Some(&g("norm1.bias")?.data), eps, id);
    let hidden = g("linear1.weight")?.shape[0];
    let ff =
        r::linear(&h, rows, e, &g("linear1.weight")?.data, hidden, Some(&g("linear1.bias")?.data), Activation::Gelu);
    let ff = r::linear(&ff, rows, hidden, &g("linear2.weight")?.data, e, Some(&g("linear2.bias")?.data), id);
    let y: Vec<f32> = h.iter().zip(&ff).map(|(p, q)| p + q).collect();
    Ok(r::layer_norm(&y, e, Some(&g("norm2.weight")?.data), Some(&g("norm2.bias")?.data), eps, id))
}
