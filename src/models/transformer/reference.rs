//! An encoder layer with the CPU reference ops, on host weights (for checks).

use std::collections::BTreeMap;

use super::EncoderWeights;
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::ops::Activation;

/// The layer `{prefix}.*` of `sd` (read as [`EncoderLayer::load`](super::EncoderLayer::load)
/// reads it) on x [b, f, e] with the CPU reference ops.
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
    let w = EncoderWeights::take(&mut StateDict::borrowed("weights", sd), prefix, e, heads)?;
    if x.len() != b * f * e {
        return Err(Error::shape("encoder_layer", "x", &[x.len()], format!("[{b}, {f}, {e}]")));
    }
    let id = Activation::Identity;
    let rows = b * f;
    let lin = |x: &[f32], i: usize, (wt, bt): &(HostTensor, HostTensor), act: Activation| -> Result<Vec<f32>> {
        Ok(r::linear(x, &[rows, i], &wt.data, &wt.shape, Some(&bt.data), act)?.0)
    };
    let (q, k, v) = (lin(x, e, &w.q, id)?, lin(x, e, &w.k, id)?, lin(x, e, &w.v, id)?);
    let a = r::matmul::attention(&q, &k, &v, &[b, f, e], heads)?;
    let a = lin(&a, e, &w.out, id)?;
    let h: Vec<f32> = x.iter().zip(&a).map(|(p, q)| p + q).collect();
    let h = r::layer_norm(&h, &[b, f, e], 1, Some(&w.ln1.0.data), Some(&w.ln1.1.data), eps, id)?;
    let hidden = w.ff1.0.shape[0];
    let ff = lin(&h, e, &w.ff1, Activation::Gelu)?;
    let ff = lin(&ff, hidden, &w.ff2, id)?;
    let y: Vec<f32> = h.iter().zip(&ff).map(|(p, q)| p + q).collect();
    r::layer_norm(&y, &[b, f, e], 1, Some(&w.ln2.0.data), Some(&w.ln2.1.data), eps, id)
}
