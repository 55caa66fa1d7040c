use super::check_len;
use crate::error::Result;
use crate::ops::pool::{pool_shape, Pool2dParams, PoolKind};

/// Max pooling of x [N, C, H, W] with PyTorch's semantics (`max_pool2d`): plain loops over each
/// window; a NaN in a window makes its output NaN. Returns the output and its shape.
pub fn max_pool2d(x: &[f32], shape: &[usize], p: &Pool2dParams) -> Result<(Vec<f32>, Vec<usize>)> {
    pool2d(x, shape, p, PoolKind::Max)
}

/// Average pooling of x [N, C, H, W] with PyTorch's semantics (`avg_pool2d`), the sums in f64.
pub fn avg_pool2d(x: &[f32], shape: &[usize], p: &Pool2dParams) -> Result<(Vec<f32>, Vec<usize>)> {
    pool2d(x, shape, p, PoolKind::Avg)
}

fn pool2d(x: &[f32], shape: &[usize], p: &Pool2dParams, kind: PoolKind) -> Result<(Vec<f32>, Vec<usize>)> {
    let out = pool_shape(kind, shape, p)?;
    check_len(kind.op(), "input", x, shape)?;
    let (h, w) = (shape[2] as i64, shape[3] as i64);
    let [kh, kw] = p.kernel.map(|v| v as i64);
    let [sh, sw] = p.strides().map(|v| v as i64);
    let [ph, pw] = p.padding.map(|v| v as i64);
    let [dh, dw] = p.dilation.map(|v| v as i64);
    let (oh, ow) = (out[2], out[3]);
    let mut y = Vec::with_capacity(out.iter().product());
    for plane in 0..out[0] * out[1] {
        let at = |r: i64, c: i64| x[plane * (h * w) as usize + (r * w + c) as usize];
        for oy in 0..oh as i64 {
            for ox in 0..ow as i64 {
                // The window's first cell, in input coordinates (negative: in the padding).
                let (r0, c0) = (oy * sh - ph, ox * sw - pw);
                let v = match kind {
                    PoolKind::Max => {
                        let mut m = f32::NEG_INFINITY;
                        for i in 0..kh {
                            for j in 0..kw {
                                let (r, c) = (r0 + i * dh, c0 + j * dw);
                                if (0..h).contains(&r) && (0..w).contains(&c) {
                                    let v = at(r, c);
                                    if v > m || v.is_nan() {
                                        m = v;
                                    }
                                }
                            }
                        }
                        m
                    }
                    PoolKind::Avg => {
                        let (r1, c1) = ((r0 + kh).min(h + ph), (c0 + kw).min(w + pw));
                        let pool_size = (r1 - r0) * (c1 - c0);
                        let (cr0, cc0, cr1, cc1) = (r0.max(0), c0.max(0), r1.min(h), c1.min(w));
                        if cr0 >= cr1 || cc0 >= cc1 {
                            0.0
                        } else {
                            let mut s = 0f64;
                            for r in cr0..cr1 {
                                for c in cc0..cc1 {
                                    s += at(r, c) as f64;
                                }
                            }
                            let d = match p.divisor_override {
                                Some(d) => d as i64,
                                None if p.count_include_pad => pool_size,
                                None => (cr1 - cr0) * (cc1 - cc0),
                            };
                            (s / d as f64) as f32
                        }
                    }
                };
                y.push(v);
            }
        }
    }
    Ok((y, out.to_vec()))
}
