//! The copy kernels' mirrors (`ops::copy`): plain loops over the same index maps.

use crate::error::{Error, Result};

/// `ops::copy::narrow_mid`: frames `first .. first + len` of the middle axis of x [A, T, ...]:
/// the data and its shape [A, len, ...].
pub fn narrow_mid(x: &[f32], xs: &[usize], a: usize, first: usize, len: usize) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "narrow_mid";
    super::check_len(OP, "input", x, xs)?;
    let t = xs.get(1).copied().unwrap_or(0);
    if a == 0 || xs.first() != Some(&a) || first.checked_add(len).is_none_or(|e| e > t) || len == 0 {
        return Err(Error::shape(OP, "input", xs, format!("[{a}, T >= {}, ...]", first.saturating_add(len))));
    }
    let d: usize = xs[2..].iter().product();
    let mut y = Vec::with_capacity(a * len * d);
    for i in 0..a {
        y.extend_from_slice(&x[(i * t + first) * d..(i * t + first + len) * d]);
    }
    let mut shape = xs.to_vec();
    shape[1] = len;
    Ok((y, shape))
}

/// `ops::copy::swap_mid`: x seen as [A, P, Q, D] with its middle axes swapped, [A, Q, P, D], under
/// `shape`.
pub fn swap_mid(x: &[f32], [a, p, q, d]: [usize; 4], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "swap_mid";
    let n = [a, p, q, d].iter().try_fold(1usize, |m, &v| m.checked_mul(v));
    if n != Some(x.len()) || crate::tensor::numel(OP, "shape", shape)? != x.len() {
        return Err(Error::shape(OP, "input", &[x.len()], format!("{a}·{p}·{q}·{d} elements, as `shape` holds")));
    }
    let mut y = vec![0f32; x.len()];
    for i in 0..a {
        for j in 0..p {
            for k in 0..q {
                let src = ((i * p + j) * q + k) * d;
                let dst = ((i * q + k) * p + j) * d;
                y[dst..dst + d].copy_from_slice(&x[src..src + d]);
            }
        }
    }
    Ok((y, shape.to_vec()))
}

/// `ops::copy::concat_mid`: a [A, T1, ...] then b [A, T2, ...] along the middle axis.
pub fn concat_mid(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "concat_mid";
    if sa.len() < 2 || sa.len() != sb.len() || sa[0] != sb[0] || sa[2..] != sb[2..] {
        return Err(Error::shape(OP, "b", sb, format!("{sa:?} but for axis 1")));
    }
    super::check_len(OP, "a", a, sa)?;
    super::check_len(OP, "b", b, sb)?;
    let d: usize = sa[2..].iter().product();
    let mut y = Vec::with_capacity(a.len() + b.len());
    for i in 0..sa[0] {
        y.extend_from_slice(&a[i * sa[1] * d..(i + 1) * sa[1] * d]);
        y.extend_from_slice(&b[i * sb[1] * d..(i + 1) * sb[1] * d]);
    }
    let mut shape = sa.to_vec();
    shape[1] += sb[1];
    Ok((y, shape))
}
