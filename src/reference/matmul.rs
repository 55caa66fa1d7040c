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
