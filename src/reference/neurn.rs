use super::box_filter::window_sum;
use crate::error::{Error, Result};
use crate::ops::{MaxScope, NeurnParams};

/// NeuRN of x [N, C, H, W] (docs/ops.md, NeuRN): per-pixel population std over the k×k window with zero
/// padding (the zeros count, divisor k²), two-pass; divided by the scope's maximum plus eps.
pub fn neurn(x: &[f32], shape: &[usize], p: &NeurnParams) -> Result<Vec<f32>> {
    if shape.len() != 4 || shape.contains(&0) {
        return Err(Error::shape("neurn", "input", shape, "[N, C, H, W]"));
    }
    p.validate()?;
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let k = p.kernel;
    let k2 = (k * k) as f64;
    let hw = h * w;
    let mut sd = vec![0f64; x.len()];
    for pl in 0..n * c {
        let at = |r: usize, cc: usize| x[pl * hw + r * w + cc] as f64;
        for i in 0..h {
            for j in 0..w {
                let mean = window_sum(h, w, [k, k], i, j, at) / k2;
                let inside = window_sum(h, w, [k, k], i, j, |_, _| 1.0);
                let sq =
                    window_sum(h, w, [k, k], i, j, |r, cc| (at(r, cc) - mean).powi(2)) + (k2 - inside) * mean * mean;
                // max(0) keeping a NaN (f64::max drops it).
                let var = sq / k2;
                sd[pl * hw + i * w + j] = if var.is_nan() { var } else { var.max(0.0).sqrt() };
            }
        }
    }
    let scope = |e: usize| match p.max_scope {
        MaxScope::Channel => e / hw,
        MaxScope::Image => e / (c * hw),
    };
    let mut maxes = vec![
        0f64;
        match p.max_scope {
            MaxScope::Channel => n * c,
            MaxScope::Image => n,
        }
    ];
    for (e, &s) in sd.iter().enumerate() {
        // torch's max: a NaN makes the maximum NaN.
        let m = &mut maxes[scope(e)];
        *m = if m.is_nan() || s.is_nan() { f64::NAN } else { m.max(s) };
    }
    Ok(sd.iter().enumerate().map(|(e, &s)| (s / (maxes[scope(e)] + p.eps as f64)) as f32).collect())
}
