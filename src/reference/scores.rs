//! The Sensorium scores in f64, written as upstream writes them (sensorium `utility/scores.py`,
//! neuralpredictors `measures/np_functions.py`): two-pass means and variances per neuron, the
//! images split by [`Repeats`].

use super::check_len;
use crate::error::Result;
use crate::ops::scores::score_shapes;
use crate::ops::{Repeats, ScoreParams};

/// neuralpredictors' `corr` of two columns: mean(za·zb), z = (x − mean)/(std + eps), ddof 0.
fn corr(a: &[f64], b: &[f64], eps: f64) -> f64 {
    let n = a.len() as f64;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / n;
    let std = |v: &[f64], mu: f64| (v.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / n).sqrt();
    let (ma, mb) = (mean(a), mean(b));
    let (sa, sb) = (std(a, ma) + eps, std(b, mb) + eps);
    a.iter().zip(b).map(|(x, y)| ((x - ma) / sa) * ((y - mb) / sb)).sum::<f64>() / n
}

/// numpy's var with `ddof`.
fn var(v: &[f64], ddof: usize) -> f64 {
    let n = v.len() as f64;
    let mu = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / (n - ddof as f64)
}

/// The scores of responses and predictions of `shape` [T, M], as [`crate::ops::scores`]: [1, M]
/// (single-trial correlation), or with `repeats` [4, M] (also the correlation of the repeat
/// averages, FEV and FEVE; upstream's `fev` with `return_exp_var`), row-major.
pub fn scores(
    responses: &[f32],
    predictions: &[f32],
    shape: &[usize],
    repeats: Option<&Repeats>,
    p: &ScoreParams,
) -> Result<Vec<f32>> {
    let [t, m] = score_shapes(shape, shape, repeats, p)?;
    check_len("scores", "responses", responses, shape)?;
    check_len("scores", "predictions", predictions, shape)?;
    let eps = p.eps as f64;
    let rows = if repeats.is_some() { 4 } else { 1 };
    let mut out = vec![0f32; rows * m];
    for j in 0..m {
        let col = |x: &[f32], trials: &mut dyn Iterator<Item = usize>| -> Vec<f64> {
            trials.map(|i| x[i * m + j] as f64).collect()
        };
        let (r, pr) = (col(responses, &mut (0..t)), col(predictions, &mut (0..t)));
        out[j] = corr(&r, &pr, eps) as f32;
        let Some(rep) = repeats else { continue };
        // split_images: per image, its trials' responses and predictions.
        let images: Vec<(Vec<f64>, Vec<f64>)> = (0..rep.images())
            .map(|g| {
                let ts = rep.trials_of(g);
                (
                    col(responses, &mut ts.iter().map(|&i| i as usize)),
                    col(predictions, &mut ts.iter().map(|&i| i as usize)),
                )
            })
            .collect();
        // get_signal_correlations: corr of the per-image means.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mr, mp): (Vec<f64>, Vec<f64>) = images.iter().map(|(a, b)| (mean(a), mean(b))).unzip();
        out[m + j] = corr(&mr, &mp, eps) as f32;
        // fev: total variance over all trials (ddof 1), noise = mean over images of the variance
        // across repeats (ddof 1), mse over all trials.
        let total = var(&r, 1);
        let noise = images.iter().map(|(a, _)| var(a, 1)).sum::<f64>() / images.len() as f64;
        let mse =
            images.iter().flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y))).sum::<f64>() / t as f64;
        out[2 * m + j] = ((total - noise) / total) as f32;
        out[3 * m + j] = (1.0 - (mse - noise) / (total - noise)) as f32;
    }
    Ok(out)
}
