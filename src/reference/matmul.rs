use super::activation::apply;
use crate::ops::Activation;

/// C = A · B for row-major A [batch, M, K] and B [batch, K, N] (batch strides of 0 broadcast).
pub fn matmul(
    a: &[f32],
    b: &[f32],
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a_stride: usize,
    b_stride: usize,
) -> Vec<f32> {
    let mut c = vec![0f32; batch * m * n];
    for bi in 0..batch {
        let (ab, bb) = (bi * a_stride, bi * b_stride);
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f64;
                for kk in 0..k {
                    acc += a[ab + i * k + kk] as f64 * b[bb + kk * n + j] as f64;
                }
                c[(bi * m + i) * n + j] = acc as f32;
            }
        }
    }
    c
}

/// y = act(x Wᵀ + b) for x [rows, I], W [O, I].
pub fn linear(
    x: &[f32],
    rows: usize,
    i: usize,
    w: &[f32],
    o: usize,
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let mut y = vec![0f32; rows * o];
    for r in 0..rows {
        for oo in 0..o {
            let mut acc = 0f64;
            for ii in 0..i {
                acc += x[r * i + ii] as f64 * w[oo * i + ii] as f64;
            }
            if let Some(b) = bias {
                acc += b[oo] as f64;
            }
            y[r * o + oo] = apply(act, acc) as f32;
        }
    }
    y
}

/// softmax(scale · x) over rows of length `len`.
pub fn softmax(x: &[f32], len: usize, scale: f32) -> Vec<f32> {
    x.chunks(len)
        .flat_map(|r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(scale as f64 * v as f64));
            let e: Vec<f64> = r.iter().map(|&v| (scale as f64 * v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}

/// Multi-head attention of q, k, v [b, f, e] with `heads` heads (f64).
pub fn attention(q: &[f32], k: &[f32], v: &[f32], b: usize, f: usize, e: usize, heads: usize) -> Vec<f32> {
    let dh = e / heads;
    let mut out = vec![0f32; b * f * e];
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..f {
                let at = |x: &[f32], t: usize, d: usize| x[(bi * f + t) * e + h * dh + d] as f64;
                let s: Vec<f64> = (0..f)
                    .map(|j| (0..dh).map(|d| at(q, i, d) * at(k, j, d)).sum::<f64>() / (dh as f64).sqrt())
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = w.iter().sum();
                for d in 0..dh {
                    out[(bi * f + i) * e + h * dh + d] = ((0..f).map(|j| w[j] * at(v, j, d)).sum::<f64>() / z) as f32;
                }
            }
        }
    }
    out
}
