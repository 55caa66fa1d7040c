use super::activation::apply;
use super::box_filter::window_sum;
use crate::error::{Error, Result};
use crate::ops::{DivNormParams, DnField};

/// What the reference gives back: y, v = x − μ, and α · mean |v| when asked.
pub struct DivNormRef {
    pub output: Vec<f32>,
    pub centered: Vec<f32>,
    pub l1: Option<f32>,
}

/// Divisive normalization of x [N, C, H, W] (docs/ops.md, divisive normalization), straight from the formulas.
pub fn divisive_norm(
    x: &[f32],
    shape: &[usize],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    p: &DivNormParams,
) -> Result<DivNormRef> {
    if shape.len() != 4 || shape.contains(&0) {
        return Err(Error::shape("divisive_norm", "input", shape, "[N, C, H, W]"));
    }
    p.validate()?;
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    for (t, name) in [(gamma, "gamma"), (beta, "beta")] {
        if let Some(t) = t {
            if t.len() != c {
                return Err(Error::shape("divisive_norm", name, &[t.len()], format!("[{c}]")));
            }
        }
    }
    let hw = h * w;
    let at = |ni: usize, ci: usize, i: usize, j: usize| x[((ni * c + ci) * h + i) * w + j] as f64;
    let sigma2 = p.sigma as f64 * p.sigma as f64;
    let mut mu = vec![0f64; x.len()];
    let mut s2 = vec![0f64; x.len()];
    match p.field {
        DnField::Local => {
            let area = (p.sum_window[0] * p.sum_window[1]) as f64;
            for ni in 0..n {
                let m: Vec<f64> =
                    (0..hw).map(|q| (0..c).map(|ci| at(ni, ci, q / w, q % w)).sum::<f64>() / c as f64).collect();
                let mu_px: Vec<f64> = (0..hw)
                    .map(|q| window_sum(h, w, p.sum_window, q / w, q % w, |r, cc| m[r * w + cc]) / area)
                    .collect();
                // q = mean over channels of v² at each pixel, v taken with that pixel's own mu.
                let qv: Vec<f64> = (0..hw)
                    .map(|q| (0..c).map(|ci| (at(ni, ci, q / w, q % w) - mu_px[q]).powi(2)).sum::<f64>() / c as f64)
                    .collect();
                for q in 0..hw {
                    let sup = window_sum(h, w, p.sup_window, q / w, q % w, |r, cc| qv[r * w + cc]) / p.divisor() as f64;
                    for ci in 0..c {
                        let e = (ni * c + ci) * hw + q;
                        mu[e] = mu_px[q];
                        s2[e] = sup;
                    }
                }
            }
        }
        DnField::Batch => {
            for ci in 0..c {
                let idx: Vec<usize> = (0..n).flat_map(|ni| (0..hw).map(move |q| (ni * c + ci) * hw + q)).collect();
                let mean = idx.iter().map(|&e| x[e] as f64).sum::<f64>() / idx.len() as f64;
                let var = idx.iter().map(|&e| (x[e] as f64 - mean).powi(2)).sum::<f64>() / idx.len() as f64;
                for &e in &idx {
                    mu[e] = mean;
                    s2[e] = var;
                }
            }
        }
        DnField::Layer => {
            let len = c * hw;
            for ni in 0..n {
                let sl = &x[ni * len..(ni + 1) * len];
                let mean = sl.iter().map(|&v| v as f64).sum::<f64>() / len as f64;
                let var = sl.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / len as f64;
                for e in ni * len..(ni + 1) * len {
                    mu[e] = mean;
                    s2[e] = var;
                }
            }
        }
    }
    let mut output = vec![0f32; x.len()];
    let mut centered = vec![0f32; x.len()];
    let mut l1 = 0f64;
    for e in 0..x.len() {
        let ci = (e / hw) % c;
        let v = x[e] as f64 - mu[e];
        l1 += v.abs();
        let mut y = v / (s2[e] + sigma2).sqrt();
        if let Some(g) = gamma {
            y *= g[ci] as f64;
        }
        if let Some(b) = beta {
            y += b[ci] as f64;
        }
        output[e] = apply(p.act, y) as f32;
        centered[e] = v as f32;
    }
    let l1 = p.l1_alpha.map(|a| (a as f64 * l1 / x.len() as f64) as f32);
    Ok(DivNormRef { output, centered, l1 })
}
