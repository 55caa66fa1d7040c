use super::activation::apply;
use crate::ops::Activation;

/// Inference batch norm on x [N, C, inner...] (given as n, c, inner).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &[f32],
    n: usize,
    c: usize,
    inner: usize,
    mean: &[f32],
    var: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    act: Activation,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for ni in 0..n {
        for ci in 0..c {
            let s = weight[ci] as f64 / (var[ci] as f64 + eps as f64).sqrt();
            for k in 0..inner {
                let i = (ni * c + ci) * inner + k;
                y[i] = apply(act, (x[i] as f64 - mean[ci] as f64) * s + bias[ci] as f64) as f32;
            }
        }
    }
    y
}

/// Layer norm over rows of length `len` (biased variance, as PyTorch).
pub fn layer_norm(
    x: &[f32],
    len: usize,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    act: Activation,
) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (row, out) in x.chunks(len).zip(y.chunks_mut(len)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for i in 0..len {
            let mut v = (row[i] as f64 - mean) * rstd;
            if let Some(w) = weight {
                v *= w[i] as f64;
            }
            if let Some(b) = bias {
                v += b[i] as f64;
            }
            out[i] = apply(act, v) as f32;
        }
    }
    y
}
