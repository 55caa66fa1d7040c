//! nflows' rational-quadratic spline and affine coupling, per element in f64, following
//! `unconstrained_rational_quadratic_spline` (tails linear) op for op.

use crate::error::{Error, Result};
use crate::ops::flows::{spline_shapes, SplineParams};

fn softmax(v: &[f32]) -> Vec<f64> {
    let m = v.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
    let e: Vec<f64> = v.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The knots of a spline's widths (or heights): −B, …, B.
pub fn spline_knots(v: &[f32], min: f32, bound: f32) -> Vec<f64> {
    knots(v, min as f64, bound as f64)
}

/// Knots -B..B from unnormalized sizes: min + (1 − K·min)·softmax, cumulated, ends pinned.
fn knots(v: &[f32], min: f64, b: f64) -> Vec<f64> {
    let k = v.len();
    let sm = softmax(v);
    let mut out = vec![-b];
    let mut cum = 0.0;
    for (j, s) in sm.iter().enumerate() {
        cum += min + (1.0 - min * k as f64) * s;
        out.push(if j == k - 1 { b } else { -b + 2.0 * b * cum });
    }
    out
}

/// The spline of one element: (y, log|dy/dx|) (inverse: (x, −log|dy/dx| at x)).
pub fn rq_spline_one(x: f32, w: &[f32], h: &[f32], d: &[f32], p: &SplineParams) -> (f32, f32) {
    let (y, l) = rq_spline_f64(x as f64, w, h, d, p);
    (y as f32, l as f32)
}

/// [`rq_spline_one`] in f64 throughout (for finite-difference checks).
pub fn rq_spline_f64(v: f64, w: &[f32], h: &[f32], d: &[f32], p: &SplineParams) -> (f64, f64) {
    let b = p.tail_bound as f64;
    // nflows' inside mask (v >= -B) & (v <= B) is false for NaN: the identity, log-det 0.
    if !(v >= -b && v <= b) {
        return (v, 0.0);
    }
    let k = w.len();
    let cw = knots(w, p.min_bin_width as f64, b);
    let ch = knots(h, p.min_bin_height as f64, b);
    let mut delta = vec![1.0; k + 1];
    for j in 1..k {
        delta[j] = p.min_derivative as f64 + softplus(d[j - 1] as f64);
    }
    let search = if p.inverse { &ch } else { &cw };
    let mut bin = 0;
    for j in 0..=k {
        let edge = if j == k { search[j] + 1e-6 } else { search[j] };
        if v >= edge {
            bin = j;
        }
    }
    let bin = bin.min(k - 1);
    let (xk, wk) = (cw[bin], cw[bin + 1] - cw[bin]);
    let (yk, hk) = (ch[bin], ch[bin + 1] - ch[bin]);
    let s = hk / wk;
    let (d0, d1) = (delta[bin], delta[bin + 1]);
    let lad_at = |xi: f64| {
        let t1 = xi * (1.0 - xi);
        let den = s + (d0 + d1 - 2.0 * s) * t1;
        let num = s * s * (d1 * xi * xi + 2.0 * s * t1 + d0 * (1.0 - xi).powi(2));
        (den, num.ln() - 2.0 * den.ln())
    };
    if p.inverse {
        let dy = v - yk;
        let a = dy * (d0 + d1 - 2.0 * s) + hk * (s - d0);
        let bq = hk * d0 - dy * (d0 + d1 - 2.0 * s);
        let c = -s * dy;
        let disc = (bq * bq - 4.0 * a * c).max(0.0);
        let xi = 2.0 * c / (-bq - disc.sqrt());
        (xi * wk + xk, -lad_at(xi).1)
    } else {
        let xi = (v - xk) / wk;
        let (den, lad) = lad_at(xi);
        (yk + hk * (s * xi * xi + d0 * xi * (1.0 - xi)) / den, lad)
    }
}

/// The spline over every element: input [..., D] with widths/heights [..., K], derivatives [..., K−1].
#[allow(clippy::too_many_arguments)]
pub fn rq_spline(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    h: &[f32],
    hs: &[usize],
    d: &[f32],
    ds: &[usize],
    p: &SplineParams,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let k = spline_shapes(xs, ws, hs, ds)?;
    p.validate(k)?;
    let (ys, lads) = (0..x.len())
        .map(|i| {
            rq_spline_one(x[i], &w[i * k..(i + 1) * k], &h[i * k..(i + 1) * k], &d[i * (k - 1)..(i + 1) * (k - 1)], p)
        })
        .unzip();
    Ok((ys, lads))
}

/// Affine coupling of x of shape `xs` [N, D] with shift and scale_raw [N, T]: what
/// `ops::affine_coupling` takes, with its shape checker. Returns (output [N, D], logdet [N]).
pub fn affine_coupling(
    x: &[f32],
    xs: &[usize],
    shift: &[f32],
    scale_raw: &[f32],
    mask: &[bool],
    inverse: bool,
) -> Result<(Vec<f32>, Vec<f32>)> {
    const OP: &str = "affine_coupling";
    let t = mask.iter().filter(|&&m| m).count();
    let n = xs.first().copied().unwrap_or(0);
    // The [N, T] shapes the data's lengths imply (a length that fits none is shown as it is).
    let implied = |v: &[f32]| if v.len() == n * t { vec![n, t] } else { vec![v.len()] };
    crate::ops::flows::affine_shapes(xs, &implied(shift), &implied(scale_raw), mask)?;
    super::check_len(OP, "input", x, xs)?;
    let d = xs[1];
    let mut y = x.to_vec();
    let mut ld = vec![0f32; n];
    for r in 0..n {
        let mut acc = 0f64;
        let mut tj = 0;
        for j in 0..d {
            if !mask[j] {
                continue;
            }
            let u = scale_raw[r * t + tj] as f64;
            let scale = 1.0 / (1.0 + (-(u + 2.0)).exp()) + 1e-3;
            let sh = shift[r * t + tj] as f64;
            let v = x[r * d + j] as f64;
            y[r * d + j] = (if inverse { (v - sh) / scale } else { v * scale + sh }) as f32;
            acc += scale.ln();
            tj += 1;
        }
        ld[r] = (if inverse { -acc } else { acc }) as f32;
    }
    Ok((y, ld))
}

/// ActNorm over the last axis of x of shape `xs` [..., F], log_s and b [F]: what `ops::actnorm`
/// takes, with its checks.
pub fn actnorm(x: &[f32], xs: &[usize], log_s: &[f32], b: &[f32], inverse: bool) -> Result<Vec<f32>> {
    const OP: &str = "actnorm";
    let f = *xs.last().ok_or_else(|| Error::shape(OP, "input", xs, "[..., F]"))?;
    for (v, name) in [(log_s, "log_s"), (b, "bias")] {
        if v.len() != f {
            return Err(Error::shape(OP, name, &[v.len()], format!("[{f}]")));
        }
    }
    super::check_len(OP, "input", x, xs)?;
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let (ls, bb) = (log_s[i % f] as f64, b[i % f] as f64);
            (if inverse { (v as f64 - bb) * (-ls).exp() } else { ls.exp() * v as f64 + bb }) as f32
        })
        .collect())
}

/// The standard-normal log-density −½|x|² − D/2·log 2π of each row of x [N, D], + `add` [N] and
/// `constant`: what `ops::normal_logprob` takes, with its checks. [N].
pub fn normal_logprob(x: &[f32], xs: &[usize], add: Option<&[f32]>, constant: f32) -> Result<Vec<f32>> {
    const OP: &str = "normal_logprob";
    let &[n, d] = xs else {
        return Err(Error::shape(OP, "input", xs, "[N, D]"));
    };
    if let Some(a) = add {
        if a.len() != n {
            return Err(Error::shape(OP, "add", &[a.len()], format!("[{n}]")));
        }
    }
    crate::ops::finite(OP, "constant", constant, false)?;
    super::check_len(OP, "input", x, xs)?;
    Ok(x.chunks(d.max(1))
        .take(n)
        .enumerate()
        .map(|(r, row)| {
            let base = -0.5 * row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln();
            (base + add.map_or(0.0, |a| a[r] as f64) + constant as f64) as f32
        })
        .collect())
}
