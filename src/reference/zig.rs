//! CPU mirror of `ops::zig` (f64): the ZIG readout as the literal padded conv, the parameter maps,
//! the moments, the latent logit shifts and the video-latent log-likelihood.

use super::check_len;
use super::readout::{bilinear, lgamma};
use crate::error::{Error, Result};
use crate::ops::zig::{per_neuron, zig_latent_shapes, zig_readout_shapes};
pub use crate::ops::{ZigMap, ZigMoment};

/// The ZIG readout's parameters as host data, as `ops::ZigReadout` (the conv weight with its shape).
#[derive(Clone, Copy, Debug)]
pub struct ZigReadout<'a> {
    pub mu: &'a [f32],
    pub conv_weight: &'a [f32],
    pub conv_shape: &'a [usize],
    pub conv_bias: Option<&'a [f32]>,
    pub features: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub align_corners: bool,
}

/// The shape a slice's length implies (rows × cols), else its length alone (for the checker).
fn implied(t: &[f32], dims: &[usize]) -> Vec<usize> {
    if dims.iter().product::<usize>() == t.len() {
        dims.to_vec()
    } else {
        vec![t.len()]
    }
}

/// The ZIG readout of x [B·T, C, H, W] (`frames` = T): what `ops::zig_readout` takes, with its
/// shape checker. The samples s[b, n, t, c], then PyTorch's Conv2d(1 → 2, (kt, kc), padding
/// (kt/2, kc/2)) per (b, n) as written, then Σ_c features[c, n, o]·conv + bias[n]. Output [2, B·T, N].
pub fn zig_readout(x: &[f32], xs: &[usize], frames: usize, r: &ZigReadout, shift: Option<&[f32]>) -> Result<Vec<f32>> {
    const OP: &str = "zig_readout";
    if !r.mu.len().is_multiple_of(2) {
        return Err(Error::shape(OP, "mu", &[r.mu.len()], "[N, 2]"));
    }
    let n = r.mu.len() / 2;
    let (bt, c) = (xs.first().copied().unwrap_or(0), xs.get(1).copied().unwrap_or(0));
    let d = zig_readout_shapes(
        xs,
        frames,
        &[n, 2],
        r.conv_shape,
        r.conv_bias.map(|b| [b.len()]).as_ref().map(|s| &s[..]),
        &implied(r.features, &[c, n, 2]),
        r.bias.map(|b| [b.len()]).as_ref().map(|s| &s[..]),
        shift.map(|s| implied(s, &[bt, 2])).as_deref(),
    )?;
    check_len(OP, "input", x, xs)?;
    check_len(OP, "conv_weight", r.conv_weight, r.conv_shape)?;
    let (h, w, t, kt, kc) = (d.h, d.w, d.t, d.kt, d.kc);
    let b = bt / t;
    // s[(b·N + n)·T + t][c]: the [B·N, 1, T, C] layout the upstream conv runs on.
    let mut s = vec![0f64; b * n * t * c];
    for bi in 0..bt {
        for ni in 0..n {
            let mut gx = (r.mu[2 * ni] as f64).clamp(-1.0, 1.0);
            let mut gy = (r.mu[2 * ni + 1] as f64).clamp(-1.0, 1.0);
            if r.mu[2 * ni].is_nan() {
                gx = f64::NAN;
            }
            if r.mu[2 * ni + 1].is_nan() {
                gy = f64::NAN;
            }
            if let Some(sh) = shift {
                gx += sh[2 * bi] as f64;
                gy += sh[2 * bi + 1] as f64;
            }
            let (bb, ti) = (bi / t, bi % t);
            for ci in 0..c {
                let plane = &x[(bi * c + ci) * h * w..][..h * w];
                s[((bb * n + ni) * t + ti) * c + ci] = bilinear(plane, h, w, gx, gy, r.align_corners);
            }
        }
    }
    let (pt, pc) = ((kt / 2) as isize, (kc / 2) as isize);
    let mut y = vec![0f32; 2 * bt * n];
    for o in 0..2 {
        let cb = r.conv_bias.map_or(0.0, |v| v[o] as f64);
        for bb in 0..b {
            for ni in 0..n {
                let plane = &s[(bb * n + ni) * t * c..][..t * c];
                for ti in 0..t {
                    let mut acc = r.bias.map_or(0.0, |v| v[ni] as f64);
                    for ci in 0..c {
                        let mut conv = cb;
                        for dt in 0..kt {
                            for dc in 0..kc {
                                let tt = ti as isize + dt as isize - pt;
                                let cc = ci as isize + dc as isize - pc;
                                let v = if tt >= 0 && tt < t as isize && cc >= 0 && cc < c as isize {
                                    plane[tt as usize * c + cc as usize]
                                } else {
                                    0.0
                                };
                                conv += r.conv_weight[(o * kt + dt) * kc + dc] as f64 * v;
                            }
                        }
                        acc += r.features[(ci * n + ni) * 2 + o] as f64 * conv;
                    }
                    y[(o * bt + bb * t + ti) * n + ni] = acc as f32;
                }
            }
        }
    }
    Ok(y)
}

/// q = sigmoid(x)·0.99999 + 1e-6.
pub fn q_map(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp()) * 0.99999 + 1e-6
}

/// ELU(x) + 1 + 1e-6 (θ and k).
pub fn elu1_map(x: f64) -> f64 {
    (if x > 0.0 { x } else { x.exp_m1() }) + 1.0 + 1e-6
}

/// A ZIG parameter map per element, as `ops::zig_map`.
pub fn zig_map(x: &[f32], map: ZigMap) -> Vec<f32> {
    x.iter()
        .map(|&v| {
            let v = v as f64;
            (match map {
                ZigMap::Q => q_map(v),
                ZigMap::Theta | ZigMap::K => elu1_map(v),
                ZigMap::Loc => v.exp(),
            }) as f32
        })
        .collect()
}

/// The ZIG mean or variance, as `ops::zig_moments`: q and θ of shape `shape`, k and loc of that
/// shape or its last axis.
pub fn zig_moments(
    q: &[f32],
    theta: &[f32],
    k: &[f32],
    loc: &[f32],
    shape: &[usize],
    moment: ZigMoment,
) -> Result<Vec<f32>> {
    const OP: &str = "zig_moments";
    check_len(OP, "q", q, shape)?;
    check_len(OP, "theta", theta, shape)?;
    let whole_or_last = |t: &[f32]| if t.len() == q.len() { shape.to_vec() } else { vec![t.len()] };
    let nk = per_neuron(OP, "k", &whole_or_last(k), shape)?;
    let nl = per_neuron(OP, "loc", &whole_or_last(loc), shape)?;
    Ok((0..q.len())
        .map(|i| {
            let (q, th, k, l) = (q[i] as f64, theta[i] as f64, k[i % nk] as f64, loc[i % nl] as f64);
            (match moment {
                ZigMoment::Mean => (1.0 - q) * l / 2.0 + q * (k * th + l),
                ZigMoment::Variance => {
                    q * k * th * th + (1.0 - q) * l * l / 12.0 + q * (1.0 - q) * (k * th + l / 2.0).powi(2)
                }
            }) as f32
        })
        .collect())
}

/// The latent samples and weights as host data, as `ops::ZigLatent`: z [S, B·T, L] (its shape
/// given), w_q and w_theta [L, N].
#[derive(Clone, Copy, Debug)]
pub struct ZigLatent<'a> {
    pub z: &'a [f32],
    pub z_shape: [usize; 3],
    pub w_q: &'a [f32],
    pub w_theta: &'a [f32],
}

fn latent_check(op: &'static str, logits: &[f32], bt_n: [usize; 2], lat: &ZigLatent) -> Result<[usize; 4]> {
    let [bt, n] = bt_n;
    let l = lat.z_shape[2];
    let (bt, n, s, l) = zig_latent_shapes(
        op,
        &implied(logits, &[2, bt, n]),
        &lat.z_shape,
        &implied(lat.w_q, &[l, n]),
        &implied(lat.w_theta, &[l, n]),
    )?;
    check_len(op, "z", lat.z, &lat.z_shape)?;
    Ok([bt, n, s, l])
}

/// The shifted logits (q̃ + z·W_q, θ̃ + z·W_θ) of sample s, frame bt, neuron n.
fn shifted(
    logits: &[f32],
    lat: &ZigLatent,
    [bt_all, n_all, _, l]: [usize; 4],
    s: usize,
    bt: usize,
    n: usize,
) -> (f64, f64) {
    let mut lq = logits[bt * n_all + n] as f64;
    let mut lt = logits[(bt_all + bt) * n_all + n] as f64;
    for j in 0..l {
        let z = lat.z[(s * bt_all + bt) * l + j] as f64;
        lq += z * lat.w_q[j * n_all + n] as f64;
        lt += z * lat.w_theta[j * n_all + n] as f64;
    }
    (lq, lt)
}

/// q and θ [S, B·T, N] of every latent sample, as `ops::zig_latent_params` (logits [2, B·T, N]).
pub fn zig_latent_params(logits: &[f32], bt_n: [usize; 2], lat: &ZigLatent) -> Result<(Vec<f32>, Vec<f32>)> {
    let d @ [bt, n, s, _] = latent_check("zig_latent_params", logits, bt_n, lat)?;
    let (mut q, mut th) = (vec![0f32; s * bt * n], vec![0f32; s * bt * n]);
    for si in 0..s {
        for b in 0..bt {
            for ni in 0..n {
                let (lq, lt) = shifted(logits, lat, d, si, b, ni);
                q[(si * bt + b) * n + ni] = q_map(lq) as f32;
                th[(si * bt + b) * n + ni] = elu1_map(lt) as f32;
            }
        }
    }
    Ok((q, th))
}

/// The video-latent branch's log-density (`get_slab_logl` on every entry, masks y ≥ loc and
/// y ≤ loc as 0/1 factors, exactly as written upstream).
pub fn slab_logl(y: f64, q: f64, theta: f64, k: f64, loc: f64) -> f64 {
    let nm = if y >= loc { 1.0 } else { 0.0 };
    let zm = if y <= loc { 1.0 } else { 0.0 };
    ((1.0 - q) * zm + nm).ln() + (q * nm + zm).ln() + (k - 1.0) * (y * nm - loc * nm + zm).ln()
        - (y * nm - loc * nm) / theta
        - k * theta.ln()
        - lgamma(k)
}

/// The video-latent log-likelihood in bits, as `ops::zig_latent_loglik`: target [B·T, N], logits
/// [2, B·T, N], k and loc [N]. Per element, (logsumexp_s slab_logl − log S) / ln 2.
pub fn zig_latent_loglik(
    target: &[f32],
    logits: &[f32],
    bt_n: [usize; 2],
    lat: &ZigLatent,
    k: &[f32],
    loc: &[f32],
) -> Result<Vec<f32>> {
    const OP: &str = "zig_latent_loglik";
    let d @ [bt, n, s, _] = latent_check(OP, logits, bt_n, lat)?;
    check_len(OP, "target", target, &[bt, n])?;
    check_len(OP, "k", k, &[n])?;
    check_len(OP, "loc", loc, &[n])?;
    let mut out = vec![0f32; bt * n];
    for b in 0..bt {
        for ni in 0..n {
            let y = target[b * n + ni] as f64;
            let (kk, l) = (k[ni] as f64, loc[ni] as f64);
            let ls: Vec<f64> = (0..s)
                .map(|si| {
                    let (lq, lt) = shifted(logits, lat, d, si, b, ni);
                    slab_logl(y, q_map(lq), elu1_map(lt), kk, l)
                })
                .collect();
            let v = if ls.iter().any(|v| v.is_nan()) || y.is_nan() || kk.is_nan() || l.is_nan() {
                f64::NAN
            } else {
                let m = ls.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                if m == f64::NEG_INFINITY {
                    m
                } else {
                    m + ls.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
                }
            };
            out[b * n + ni] = ((v - (s as f64).ln()) / std::f64::consts::LN_2) as f32;
        }
    }
    Ok(out)
}
