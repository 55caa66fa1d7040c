use super::activation::apply;
use super::check_len;
use crate::error::{Error, Result};
use crate::ops::Activation;

/// C = A · B for A [..., M, K] and B [..., K, N]: what `ops::matmul` takes, with its shape checker
/// (equal batch dims, or one side 2-D and broadcast). Returns C and its shape [..., M, N].
pub fn matmul(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
    let s = crate::ops::matmul::matmul_shapes(sa, sb)?;
    check_len("matmul", "a", a, sa)?;
    check_len("matmul", "b", b, sb)?;
    let ((batch, m, n, k), (a_stride, b_stride)) = (s.dims, s.strides);
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
    Ok((c, s.out))
}

/// y = act(x Wᵀ + b) for x [..., I], W [O, I], b [O]: what `ops::linear` takes, with its checks.
/// Returns y and its shape [..., O].
pub fn linear(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    act: Activation,
) -> Result<(Vec<f32>, Vec<usize>)> {
    act.validate()?;
    let (rows, i, o) = crate::ops::matmul::linear_shapes(xs, ws, bias.map(|b| [b.len()]).as_ref().map(|s| &s[..]))?;
    check_len("linear", "input", x, xs)?;
    check_len("linear", "weight", w, ws)?;
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
    let mut out = xs[..xs.len() - 1].to_vec();
    out.push(o);
    Ok((y, out))
}

/// softmax(scale · x) over the last axis of x of shape `xs`: what `ops::softmax` takes.
pub fn softmax(x: &[f32], xs: &[usize], scale: f32) -> Result<Vec<f32>> {
    const OP: &str = "softmax";
    crate::ops::finite(OP, "scale", scale, false)?;
    let len = *xs.last().ok_or_else(|| Error::shape(OP, "input", xs, "[..., L]"))?;
    check_len(OP, "input", x, xs)?;
    Ok(x.chunks(len.max(1))
        .flat_map(|r| {
            let m = r.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(scale as f64 * v as f64));
            let e: Vec<f64> = r.iter().map(|&v| (scale as f64 * v as f64 - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect())
}

/// Multi-head attention of q, k, v, each of `shape` [B, F, E], with `heads` heads of E/heads:
/// what `ops::attention` takes, with its checks (f64).
pub fn attention(q: &[f32], k: &[f32], v: &[f32], shape: &[usize], heads: usize) -> Result<Vec<f32>> {
    const OP: &str = "attention";
    let &[b, f, e] = shape else {
        return Err(Error::shape(OP, "q", shape, "[B, F, E]"));
    };
    for (t, name) in [(q, "q"), (k, "k"), (v, "v")] {
        check_len(OP, name, t, shape)?;
    }
    if heads == 0 || e % heads != 0 {
        return Err(Error::param(OP, "heads", format!("{heads} must divide the embedding size {e}")));
    }
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
    Ok(out)
}
