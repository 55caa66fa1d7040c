use super::activation::apply;
use crate::error::Result;
use crate::ops::conv::conv_shape;
use crate::ops::{Activation, Conv2dParams};

/// conv2d with PyTorch semantics, then act((acc + bias) * scale + shift). Returns the output and
/// its shape [N, O, Ho, Wo].
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    p: &Conv2dParams,
    scale_shift: Option<(&[f32], &[f32])>,
    act: Activation,
) -> Result<(Vec<f32>, Vec<usize>)> {
    let s = conv_shape(xs, ws, p)?;
    for (data, shape, what) in [(x, xs, "input"), (w, ws, "weight")] {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(crate::error::Error::DataLength {
                op: "conv2d",
                what: what.into(),
                got: data.len(),
                expected: n,
                shape: shape.to_vec(),
            });
        }
    }
    for (v, what) in [(bias, "bias"), (scale_shift.map(|s| s.0), "scale"), (scale_shift.map(|s| s.1), "shift")] {
        if let Some(v) = v {
            if v.len() != s.o {
                return Err(crate::error::Error::DataLength {
                    op: "conv2d",
                    what: what.into(),
                    got: v.len(),
                    expected: s.o,
                    shape: vec![s.o],
                });
            }
        }
    }
    let g = p.groups;
    let (cg, og) = (s.c / g, s.o / g);
    let mut y = vec![0f32; s.n * s.o * s.ho * s.wo];
    for n in 0..s.n {
        for o in 0..s.o {
            let grp = o / og;
            for i in 0..s.ho {
                for j in 0..s.wo {
                    let mut acc = 0f64;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for u in 0..s.kh {
                            let ih = (i * p.stride[0] + u * p.dilation[0]) as isize - p.padding[0] as isize;
                            let row_out = ih < 0 || ih >= s.h as isize;
                            for v in 0..s.kw {
                                let iw = (j * p.stride[1] + v * p.dilation[1]) as isize - p.padding[2] as isize;
                                let wv = w[((o * cg + c) * s.kh + u) * s.kw + v] as f64;
                                if row_out || iw < 0 || iw >= s.w as isize {
                                    // A padded zero still multiplies its weight, as in PyTorch:
                                    // 0 · Inf and 0 · NaN are NaN.
                                    if !wv.is_finite() {
                                        acc += 0.0 * wv;
                                    }
                                    continue;
                                }
                                let xv = x[((n * s.c + ci) * s.h + ih as usize) * s.w + iw as usize] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    if let Some(b) = bias {
                        acc += b[o] as f64;
                    }
                    if let Some((sc, sh)) = scale_shift {
                        acc = acc * sc[o] as f64 + sh[o] as f64;
                    }
                    y[((n * s.o + o) * s.ho + i) * s.wo + j] = apply(act, acc) as f32;
                }
            }
        }
    }
    Ok((y, vec![s.n, s.o, s.ho, s.wo]))
}
