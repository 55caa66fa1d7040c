use super::activation::apply;
use super::check_len;
use crate::error::Result;
use crate::ops::conv3d::{conv3d_shape, factorized_shape, Conv3dShape};
use crate::ops::{Activation, Conv3dParams, Factorized3dParams};

/// conv3d with PyTorch semantics, then act((acc + bias) * scale + shift). Returns the output and
/// its shape [N, O, To, Ho, Wo].
#[allow(clippy::too_many_arguments)]
pub fn conv3d(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    p: &Conv3dParams,
    scale_shift: Option<(&[f32], &[f32])>,
    act: Activation,
) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "conv3d";
    let s = conv3d_shape(xs, ws, p)?;
    check_len(OP, "input", x, xs)?;
    check_len(OP, "weight", w, ws)?;
    for (v, what) in [(bias, "bias"), (scale_shift.map(|s| s.0), "scale"), (scale_shift.map(|s| s.1), "shift")] {
        if let Some(v) = v {
            check_len(OP, what, v, &[s.o])?;
        }
    }
    Ok((run(x, w, bias, &s, p, scale_shift, act), s.output().to_vec()))
}

/// The factorized pair of `Factorized3dCore`: the spatial conv with its bias, then the temporal
/// conv with its bias, then act(· * scale + shift). Returns the output and its shape.
#[allow(clippy::too_many_arguments)]
pub fn factorized_conv3d(
    x: &[f32],
    xs: &[usize],
    spatial_w: &[f32],
    spatial_ws: &[usize],
    spatial_b: Option<&[f32]>,
    temporal_w: &[f32],
    temporal_ws: &[usize],
    temporal_b: Option<&[f32]>,
    p: &Factorized3dParams,
    scale_shift: Option<(&[f32], &[f32])>,
    act: Activation,
) -> Result<(Vec<f32>, Vec<usize>)> {
    const OP: &str = "factorized_conv3d";
    let (a, b) = factorized_shape(xs, spatial_ws, temporal_ws, p)?;
    check_len(OP, "input", x, xs)?;
    check_len(OP, "spatial_weight", spatial_w, spatial_ws)?;
    check_len(OP, "temporal_weight", temporal_w, temporal_ws)?;
    if let Some(v) = spatial_b {
        check_len(OP, "spatial_bias", v, &[a.o])?;
    }
    for (v, what) in
        [(temporal_b, "temporal_bias"), (scale_shift.map(|s| s.0), "scale"), (scale_shift.map(|s| s.1), "shift")]
    {
        if let Some(v) = v {
            check_len(OP, what, v, &[b.o])?;
        }
    }
    let mid = run(x, spatial_w, spatial_b, &a, &p.spatial, None, Activation::Identity);
    Ok((run(&mid, temporal_w, temporal_b, &b, &p.temporal, scale_shift, act), b.output().to_vec()))
}

/// The plain loops of a checked conv3d.
fn run(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    s: &Conv3dShape,
    p: &Conv3dParams,
    scale_shift: Option<(&[f32], &[f32])>,
    act: Activation,
) -> Vec<f32> {
    let g = p.groups;
    let (cg, og) = (s.c / g, s.o / g);
    // The input coordinate of output index i at kernel index k along axis a, or None in the padding.
    let at = |a: usize, i: usize, k: usize, len: usize| -> Option<usize> {
        let v = (i * p.stride[a] + k * p.dilation[a]) as isize - p.padding[2 * a] as isize;
        (v >= 0 && v < len as isize).then_some(v as usize)
    };
    let mut y = vec![0f32; s.n * s.o * s.to * s.ho * s.wo];
    let mut out = y.iter_mut();
    for n in 0..s.n {
        for o in 0..s.o {
            let grp = o / og;
            for ot in 0..s.to {
                for oh in 0..s.ho {
                    for ow in 0..s.wo {
                        let mut acc = 0f64;
                        for c in 0..cg {
                            let ci = grp * cg + c;
                            for dt in 0..s.kt {
                                let z = at(0, ot, dt, s.t);
                                for u in 0..s.kh {
                                    let yy = at(1, oh, u, s.h);
                                    for v in 0..s.kw {
                                        let xx = at(2, ow, v, s.w);
                                        let wv = w[(((o * cg + c) * s.kt + dt) * s.kh + u) * s.kw + v] as f64;
                                        match (z, yy, xx) {
                                            (Some(z), Some(yy), Some(xx)) => {
                                                let xv = x[(((n * s.c + ci) * s.t + z) * s.h + yy) * s.w + xx] as f64;
                                                acc += xv * wv;
                                            }
                                            // A padded zero still multiplies its weight, as in
                                            // PyTorch: 0 · Inf and 0 · NaN are NaN.
                                            _ => acc += 0.0 * wv,
                                        }
                                    }
                                }
                            }
                        }
                        if let Some(b) = bias {
                            acc += b[o] as f64;
                        }
                        if let Some((sc, sh)) = scale_shift {
                            acc = acc * sc[o] as f64 + sh[o] as f64;
                        }
                        *out.next().expect("one output per index") = apply(act, acc) as f32;
                    }
                }
            }
        }
    }
    y
}
