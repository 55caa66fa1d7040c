use super::activation::apply;
use crate::error::Result;
use crate::ops::Activation;

/// Inference batch norm on x of `shape` [N, C, ...]: what `ops::batch_norm` takes, in its order,
/// with the same checks (its shape checker, then the data lengths).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm(
    x: &[f32],
    shape: &[usize],
    mean: &[f32],
    var: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
    act: Activation,
) -> Result<Vec<f32>> {
    act.validate()?;
    let lens = [mean, var, weight, bias].map(|t| [t.len()]);
    let (c, inner) = crate::ops::norm::batch_norm_shapes(shape, [&lens[0], &lens[1], &lens[2], &lens[3]], eps)?;
    super::check_len("batch_norm", "input", x, shape)?;
    let n = shape[0];
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
    Ok(y)
}

/// Layer norm of x of `shape` over its last `dims` dimensions (biased variance, as PyTorch): what
/// `ops::layer_norm` takes, in its order, with the same checks; weight and bias hold the
/// normalized dimensions' elements.
pub fn layer_norm(
    x: &[f32],
    shape: &[usize],
    dims: usize,
    weight: Option<&[f32]>,
    bias: Option<&[f32]>,
    eps: f32,
    act: Activation,
) -> Result<Vec<f32>> {
    act.validate()?;
    let len = crate::ops::norm::layer_norm_shapes(shape, dims, None, None, eps)?;
    super::check_len("layer_norm", "input", x, shape)?;
    for (t, name) in [(weight, "weight"), (bias, "bias")] {
        if let Some(t) = t {
            super::check_len("layer_norm", name, t, &shape[shape.len() - dims..])?;
        }
    }
    if len == 0 {
        return Ok(Vec::new());
    }
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
    Ok(y)
}
