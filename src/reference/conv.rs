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

/// Channel concatenation (`torch.cat(parts, 1)`) of `parts`, each (data, [N, C_i, H, W]) with one
/// N, H and W: [N, ΣC_i, H, W], plain loops.
pub fn concat_channels(parts: &[(&[f32], &[usize])]) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "concat_channels";
    let Some(&(_, f)) = parts.first() else {
        return Err(crate::error::Error::param(OP, "parts", "at least one tensor is needed"));
    };
    let mut channels = 0usize;
    for (i, &(data, s)) in parts.iter().enumerate() {
        if s.len() != 4 || f.len() != 4 || s[0] != f[0] || s[2] != f[2] || s[3] != f[3] {
            return Err(crate::error::Error::shape(
                OP,
                format!("parts[{i}]"),
                s,
                "[N, C, H, W] with the first part's N, H, W",
            ));
        }
        super::check_len(OP, &format!("parts[{i}]"), data, s)?;
        channels += s[1];
    }
    let (n, hw) = (f[0], f[2] * f[3]);
    let mut out = Vec::with_capacity(n * channels * hw);
    for b in 0..n {
        for &(data, s) in parts {
            let chw = s[1] * hw;
            out.extend_from_slice(&data[b * chw..(b + 1) * chw]);
        }
    }
    Ok((out, vec![n, channels, f[2], f[3]]))
}
