//! The recurrent cells of `ops::gru` on the CPU: plain loops, the hidden state and every sum in
//! f64. Same inputs as the ops, host weights in place of device ones, and the same shape checks.

use super::check_len;
use crate::error::{Error, Result};
use crate::ops::gru::{conv_gru_shape, gru_shape, ConvGruWeights, GruWeights};

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// A stride-1 conv2d with zero padding `pad` on every side and `groups` groups, f64: input
/// [n, ci, h, w], weight [co, ci/groups, k, k], bias [co]; output [n, co, h + 2pad − k + 1, …].
/// A padded zero multiplies its weight, as PyTorch's padding does.
#[allow(clippy::too_many_arguments)]
fn conv(
    x: &[f64],
    (n, ci, h, w): (usize, usize, usize, usize),
    wt: &[f32],
    bias: &[f32],
    co: usize,
    k: usize,
    pad: usize,
    groups: usize,
) -> Vec<f64> {
    let (ho, wo) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    let (cig, cog) = (ci / groups, co / groups);
    let mut y = vec![0f64; n * co * ho * wo];
    for b in 0..n {
        for o in 0..co {
            let g = o / cog;
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = bias[o] as f64;
                    for c in 0..cig {
                        let cin = g * cig + c;
                        for u in 0..k {
                            for v in 0..k {
                                let (yy, xx) = ((i + u) as isize - pad as isize, (j + v) as isize - pad as isize);
                                let inside = yy >= 0 && xx >= 0 && (yy as usize) < h && (xx as usize) < w;
                                let val =
                                    if inside { x[((b * ci + cin) * h + yy as usize) * w + xx as usize] } else { 0.0 };
                                acc += val * wt[((o * cig + c) * k + u) * k + v] as f64;
                            }
                        }
                    }
                    y[((b * co + o) * ho + i) * wo + j] = acc;
                }
            }
        }
    }
    y
}

/// neuralpredictors' `GRU_Module` over x [N, C, T, H, W] from h0 (zeros when None; else
/// [N, rec_channels, H', W']), what `ops::conv_gru_stream` takes: returns every hidden state
/// [N, rec_channels, T, H', W'], its shape, and the last state.
pub fn conv_gru(
    w: &ConvGruWeights,
    x: &[f32],
    xs: &[usize],
    h0: Option<&[f32]>,
) -> Result<(Vec<f32>, Vec<usize>, Vec<f32>)> {
    const OP: &str = "conv_gru";
    w.check()?;
    let p = w.params;
    let s = conv_gru_shape(&p, xs, true)?;
    check_len(OP, "input", x, xs)?;
    let (n, c, ch) = (s.n, p.input_channels, p.rec_channels);
    let state_shape = [n, ch, s.ho, s.wo];
    let mut h: Vec<f64> = match h0 {
        Some(h0) => {
            check_len(OP, "state", h0, &state_shape)?;
            h0.iter().map(|&v| v as f64).collect()
        }
        None => vec![0.0; n * ch * s.ho * s.wo],
    };
    let plane = s.ho * s.wo;
    let mut out = vec![0f32; n * ch * s.t * plane];
    let pin = if p.pad_input { p.input_kern / 2 } else { 0 };
    let pr = p.rec_kern / 2;
    let hdims = (n, ch, s.ho, s.wo);
    let cv = |name: &str, input: &[f64], dims, k, pad| {
        let (wt, b) = w.conv(name).expect("a conv of CONV_GRU_CONVS");
        conv(input, dims, &wt.data, &b.data, ch, k, pad, p.groups)
    };
    for t in 0..s.t {
        let mut frame = vec![0f64; n * c * s.h * s.w];
        for b in 0..n {
            for cc in 0..c {
                for q in 0..s.h * s.w {
                    frame[(b * c + cc) * s.h * s.w + q] = x[((b * c + cc) * s.t + t) * s.h * s.w + q] as f64;
                }
            }
        }
        let fdims = (n, c, s.h, s.w);
        let (ki, kr) = (p.input_kern, p.rec_kern);
        let ui = cv("update_gate_input", &frame, fdims, ki, pin);
        let uh = cv("update_gate_hidden", &h, hdims, kr, pr);
        let ri = cv("reset_gate_input", &frame, fdims, ki, pin);
        let rh = cv("reset_gate_hidden", &h, hdims, kr, pr);
        let z: Vec<f64> = ui.iter().zip(&uh).map(|(a, b)| sigmoid(a + b)).collect();
        let hr: Vec<f64> = ri.iter().zip(&rh).zip(&h).map(|((a, b), hv)| hv * sigmoid(a + b)).collect();
        let oi = cv("out_gate_input", &frame, fdims, ki, pin);
        let oh = cv("out_gate_hidden", &hr, hdims, kr, pr);
        for i in 0..h.len() {
            let hh = (oi[i] + oh[i]).tanh();
            h[i] = h[i] * (1.0 - z[i]) + hh * z[i];
        }
        for b in 0..n {
            for cc in 0..ch {
                for q in 0..plane {
                    out[((b * ch + cc) * s.t + t) * plane + q] = h[(b * ch + cc) * plane + q] as f32;
                }
            }
        }
    }
    let shape = vec![n, ch, s.t, s.ho, s.wo];
    Ok((out, shape, h.into_iter().map(|v| v as f32).collect()))
}

/// `torch.nn.GRU(batch_first=True)` (one layer) over x [B, T, I] from h0 (zeros when None; else
/// [B, H]), what `ops::gru_stream` takes: returns output [B, T, H], its shape, and h_n [B, H].
pub fn gru(w: &GruWeights, x: &[f32], xs: &[usize], h0: Option<&[f32]>) -> Result<(Vec<f32>, Vec<usize>, Vec<f32>)> {
    const OP: &str = "gru";
    let (i_size, hs) = w.sizes()?;
    let (b, t) = gru_shape(i_size, hs, xs)?;
    check_len(OP, "input", x, xs)?;
    let mut h: Vec<f64> = match h0 {
        Some(h0) => {
            check_len(OP, "state", h0, &[b, hs])?;
            h0.iter().map(|&v| v as f64).collect()
        }
        None => vec![0.0; b * hs],
    };
    if w.bias_ih.is_some() != w.bias_hh.is_some() {
        return Err(Error::param(OP, "bias", "bias_ih and bias_hh go together"));
    }
    let bias = |bt: &Option<crate::io::HostTensor>, row: usize| bt.as_ref().map_or(0.0, |b| b.data[row] as f64);
    let mut out = vec![0f32; b * t * hs];
    for step in 0..t {
        let mut next = vec![0f64; b * hs];
        for bi in 0..b {
            let xr = &x[(bi * t + step) * i_size..(bi * t + step + 1) * i_size];
            let hr = &h[bi * hs..(bi + 1) * hs];
            // Gate g's pre-activations for unit j: (x W_ih[row]ᵀ + b_ih, h W_hh[row]ᵀ + b_hh).
            let pre = |g: usize, j: usize| {
                let row = g * hs + j;
                let gi: f64 =
                    (0..i_size).map(|k| xr[k] as f64 * w.weight_ih.data[row * i_size + k] as f64).sum::<f64>()
                        + bias(&w.bias_ih, row);
                let gh: f64 =
                    (0..hs).map(|k| hr[k] * w.weight_hh.data[row * hs + k] as f64).sum::<f64>() + bias(&w.bias_hh, row);
                (gi, gh)
            };
            for j in 0..hs {
                let (ir, hr_) = pre(0, j);
                let (iz, hz) = pre(1, j);
                let (inn, hn) = pre(2, j);
                let r = sigmoid(ir + hr_);
                let z = sigmoid(iz + hz);
                let nn = (inn + r * hn).tanh();
                let v = (hr[j] - nn) * z + nn; // PyTorch's form of (1 − z)·n + z·h
                next[bi * hs + j] = v;
                out[(bi * t + step) * hs + j] = v as f32;
            }
        }
        h = next;
    }
    Ok((out, vec![b, t, hs], h.into_iter().map(|v| v as f32).collect()))
}
