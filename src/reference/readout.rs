//! CPU mirror of grid_sample, the Gaussian readout, Poisson NLL and the ZIG log-density (f64).

use super::activation::apply;
use super::check_len;
use crate::error::{Error, Result};
use crate::ops::Activation;

fn unnormalize(g: f64, size: usize, align: bool) -> f64 {
    if align {
        (g + 1.0) / 2.0 * (size as f64 - 1.0)
    } else {
        ((g + 1.0) * size as f64 - 1.0) / 2.0
    }
}

/// Bilinear sample of one plane [h, w] at normalized (gx, gy), zero outside.
pub fn bilinear(plane: &[f32], h: usize, w: usize, gx: f64, gy: f64, align: bool) -> f64 {
    let (ix, iy) = (unnormalize(gx, w, align), unnormalize(gy, h, align));
    let (x0, y0) = (ix.floor(), iy.floor());
    let (tx, ty) = (ix - x0, iy - y0);
    let mut s = 0.0;
    // The taps are tested in float, so a NaN or huge position samples nothing (PyTorch's mask).
    for (dy, wy) in [(0.0, 1.0 - ty), (1.0, ty)] {
        for (dx, wx) in [(0.0, 1.0 - tx), (1.0, tx)] {
            let (xx, yy) = (x0 + dx, y0 + dy);
            if xx >= 0.0 && yy >= 0.0 && xx < w as f64 && yy < h as f64 {
                s += wx * wy * plane[yy as usize * w + xx as usize] as f64;
            }
        }
    }
    s
}

/// Bilinear sampling of x [N, C, H, W] at grid [N, Ho, Wo, 2]: what `ops::grid_sample` takes,
/// with its shape checker. Returns the output and its shape [N, C, Ho, Wo].
pub fn grid_sample(x: &[f32], xs: &[usize], grid: &[f32], gs: &[usize], align: bool) -> Result<(Vec<f32>, Vec<usize>)> {
    let ([n, c, h, w], ho, wo) = crate::ops::readout::grid_sample_shapes(xs, gs)?;
    check_len("grid_sample", "input", x, xs)?;
    check_len("grid_sample", "grid", grid, gs)?;
    let mut y = vec![0f32; n * c * ho * wo];
    for ni in 0..n {
        for ci in 0..c {
            let plane = &x[(ni * c + ci) * h * w..][..h * w];
            for p in 0..ho * wo {
                let g = (ni * ho * wo + p) * 2;
                y[(ni * c + ci) * ho * wo + p] =
                    bilinear(plane, h, w, grid[g] as f64, grid[g + 1] as f64, align) as f32;
            }
        }
    }
    Ok((y, vec![n, c, ho, wo]))
}

/// The training-mode positions of [`gaussian_readout_sample`]: sigma [M, 2, 2] and the Philox
/// stream (seed, offset), as `ops::ReadoutSample`.
#[derive(Clone, Copy, Debug)]
pub struct ReadoutSample<'a> {
    pub sigma: &'a [f32],
    pub seed: u64,
    pub offset: u64,
}

/// The eval-mode Gaussian readout of x [N, C, H, W] with mu [M, 2], features [C, M], bias [M],
/// shift [N, 2], then `act`: what `ops::gaussian_readout` takes, with its shape checker. Output
/// [N, M].
#[allow(clippy::too_many_arguments)]
pub fn gaussian_readout(
    x: &[f32],
    xs: &[usize],
    mu: &[f32],
    features: &[f32],
    bias: Option<&[f32]>,
    shift: Option<&[f32]>,
    align: bool,
    act: Activation,
) -> Result<Vec<f32>> {
    readout(x, xs, mu, features, bias, shift, align, act, None)
}

/// The Gaussian readout in sampling mode: positions clamp(sigma·z + clamp(mu)) with z the
/// Philox normals (n·M + m)·2 + d of (seed, offset), as `ops::gaussian_readout_sample`.
#[allow(clippy::too_many_arguments)]
pub fn gaussian_readout_sample(
    x: &[f32],
    xs: &[usize],
    mu: &[f32],
    features: &[f32],
    bias: Option<&[f32]>,
    shift: Option<&[f32]>,
    align: bool,
    act: Activation,
    sample: ReadoutSample,
) -> Result<Vec<f32>> {
    readout(x, xs, mu, features, bias, shift, align, act, Some(sample))
}

#[allow(clippy::too_many_arguments)]
fn readout(
    x: &[f32],
    xs: &[usize],
    mu: &[f32],
    features: &[f32],
    bias: Option<&[f32]>,
    shift: Option<&[f32]>,
    align: bool,
    act: Activation,
    sample: Option<ReadoutSample>,
) -> Result<Vec<f32>> {
    const OP: &str = "gaussian_readout";
    act.validate()?;
    if mu.len() % 2 != 0 {
        return Err(Error::shape(OP, "mu", &[mu.len()], "[M, 2]"));
    }
    let m = mu.len() / 2;
    let c = xs.get(1).copied().unwrap_or(0);
    let (n, h, w) =
        (xs.first().copied().unwrap_or(0), xs.get(2).copied().unwrap_or(0), xs.get(3).copied().unwrap_or(0));
    // The shapes the data's lengths imply, for the op's checker (a length that fits no shape
    // is shown as it is).
    let implied = |t: &[f32], rows: usize, cols: usize| {
        if rows * cols == t.len() {
            vec![rows, cols]
        } else {
            vec![t.len()]
        }
    };
    let fshape = implied(features, c, m);
    let sshape = shift.map(|s| implied(s, n, 2));
    crate::ops::readout::readout_shapes(
        xs,
        &[m, 2],
        &fshape,
        bias.map(|b| [b.len()]).as_ref().map(|s| &s[..]),
        sshape.as_deref(),
    )?;
    check_len(OP, "input", x, xs)?;
    if let Some(s) = sample {
        if s.sigma.len() != m * 4 {
            return Err(Error::shape(OP, "sigma", &[s.sigma.len()], format!("{:?}", [m, 2, 2])));
        }
    }
    let z = sample.map(|s| super::random::normal(s.seed, s.offset, n * m * 2));
    let mut y = vec![0f32; n * m];
    for ni in 0..n {
        for mi in 0..m {
            let mut gx = (mu[2 * mi] as f64).clamp(-1.0, 1.0);
            let mut gy = (mu[2 * mi + 1] as f64).clamp(-1.0, 1.0);
            if let (Some(s), Some(z)) = (sample, &z) {
                let (z0, z1) = (z[(ni * m + mi) * 2] as f64, z[(ni * m + mi) * 2 + 1] as f64);
                let sg = |k: usize| s.sigma[4 * mi + k] as f64;
                gx = (gx + sg(0) * z0 + sg(1) * z1).clamp(-1.0, 1.0);
                gy = (gy + sg(2) * z0 + sg(3) * z1).clamp(-1.0, 1.0);
            }
            if let Some(s) = shift {
                gx += s[2 * ni] as f64;
                gy += s[2 * ni + 1] as f64;
            }
            let mut acc = bias.map_or(0.0, |b| b[mi] as f64);
            for ci in 0..c {
                let plane = &x[(ni * c + ci) * h * w..][..h * w];
                acc += bilinear(plane, h, w, gx, gy, align) * features[ci * m + mi] as f64;
            }
            y[ni * m + mi] = apply(act, acc) as f32;
        }
    }
    Ok(y)
}

/// rate − target·log(rate + eps) per element of rate and target of `shape`, then `reduction`
/// (one value for sum and mean): what `ops::poisson_nll` takes, with its checks.
pub fn poisson_nll(
    rate: &[f32],
    target: &[f32],
    shape: &[usize],
    eps: f32,
    reduction: crate::ops::Reduction,
) -> Result<Vec<f64>> {
    const OP: &str = "poisson_nll";
    crate::ops::finite(OP, "eps", eps, false)?;
    if eps < 0.0 {
        return Err(Error::param(OP, "eps", format!("{eps} must be >= 0")));
    }
    check_len(OP, "rate", rate, shape)?;
    check_len(OP, "target", target, shape)?;
    let l = rate.iter().zip(target).map(|(&r, &t)| r as f64 - t as f64 * (r as f64 + eps as f64).ln());
    Ok(match reduction {
        crate::ops::Reduction::None => l.collect(),
        crate::ops::Reduction::Sum => vec![l.sum()],
        crate::ops::Reduction::Mean => vec![l.sum::<f64>() / rate.len() as f64],
    })
}

/// log Γ(x) for x > 0 (Lanczos, g = 7; ~1e-15 relative).
pub fn lgamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - lgamma(1.0 - x);
    }
    let x = x - 1.0;
    let a = C[0] + (1..9).map(|i| C[i] / (x + i as f64)).sum::<f64>();
    let t = x + 7.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The zero-inflated gamma log-density per element (masked form).
pub fn zig_loglik(target: &[f32], q: &[f32], theta: &[f32], k: &[f32], loc: &[f32]) -> Vec<f32> {
    (0..target.len())
        .map(|i| {
            let (y, q, th, k, l) = (target[i] as f64, q[i] as f64, theta[i] as f64, k[i] as f64, loc[i] as f64);
            // PyTorch's masked products: a NaN in any input gives NaN.
            if [y, q, th, k, l].iter().any(|v| v.is_nan()) {
                return f32::NAN;
            }
            (if y <= l {
                (1.0 - q).ln() - l.ln()
            } else {
                q.ln() + (k - 1.0) * (y - l).ln() - (y - l) / th - k * th.ln() - lgamma(k)
            }) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lgamma_known_values() {
        for (x, v) in
            [(1.0, 0.0), (2.0, 0.0), (0.5, 0.5723649429247001), (10.0, 12.801827480081469), (0.01, 4.599479878042022)]
        {
            assert!((super::lgamma(x) - v).abs() < 1e-12, "lgamma({x})");
        }
    }
}

/// Per-neuron correlation across trials of a, b of `shape` [trials, neurons] (ddof 0, eps added to
/// each std): what `ops::pearson` takes, with its checks. [neurons].
pub fn pearson(a: &[f32], b: &[f32], shape: &[usize], eps: f32) -> Result<Vec<f32>> {
    const OP: &str = "pearson";
    crate::ops::finite(OP, "eps", eps, false)?;
    let &[t, m] = shape else {
        return Err(Error::shape(OP, "a", shape, "[trials, neurons]"));
    };
    check_len(OP, "a", a, shape)?;
    check_len(OP, "b", b, shape)?;
    Ok((0..m)
        .map(|j| {
            let col = |x: &[f32]| (0..t).map(|i| x[i * m + j] as f64).collect::<Vec<f64>>();
            let (ca, cb) = (col(a), col(b));
            let mean = |v: &[f64]| v.iter().sum::<f64>() / t as f64;
            let (ma, mb) = (mean(&ca), mean(&cb));
            let sd = |v: &[f64], mu: f64| (v.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / t as f64).sqrt();
            let cov = ca.iter().zip(&cb).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / t as f64;
            (cov / ((sd(&ca, ma) + eps as f64) * (sd(&cb, mb) + eps as f64))) as f32
        })
        .collect())
}
