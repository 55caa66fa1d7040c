//! The ZIG ops of the video-latent model (ops::zig, shaders/readout.wgsl): the ZIG readout, the
//! parameter maps, the moments, the latent shifts and the latent log-likelihood against the f64
//! references on random and awkward shapes, long reductions split, NaN, and refusals by name.

use crate::common::{assert_close, assert_close_nan, ctx, refused_param, refused_shape, run1, up};
use vcortex::ops::{self, ZigLatent, ZigMap, ZigMoment, ZigReadout};
use vcortex::reference::zig as rz;
use vcortex::rng::SplitMix;
use vcortex::{Recorder, Result, Tensor};

/// As `run1`, with the recorder's loop budget lowered to `budget` (None: left as it is).
fn run_budget(budget: Option<u64>, f: impl FnOnce(&mut Recorder) -> Result<Tensor>) -> Vec<f32> {
    let mut rec = ctx().recorder();
    if let Some(b) = budget {
        rec.set_loop_budget(b);
    }
    let y = f(&mut rec).expect("op refused valid input");
    let h = rec.read_back(&y);
    rec.submit().expect("submit").f32(h)
}

/// A readout case: x [B·T, C, H, W] and its parameters.
struct Case {
    dims: [usize; 4],
    frames: usize,
    kernel: [usize; 2],
    x: Vec<f32>,
    mu: Vec<f32>,
    w: Vec<f32>,
    cb: Vec<f32>,
    f: Vec<f32>,
    bias: Vec<f32>,
    shift: Vec<f32>,
}

fn case(rng: &mut SplitMix, b: usize, t: usize, c: usize, hw: [usize; 2], n: usize, kernel: [usize; 2]) -> Case {
    let bt = b * t;
    Case {
        dims: [bt, c, hw[0], hw[1]],
        frames: t,
        kernel,
        x: rng.vec(bt * c * hw[0] * hw[1], -1.0, 1.0),
        mu: rng.vec(n * 2, -1.2, 1.2),
        w: rng.vec(2 * kernel[0] * kernel[1], -0.5, 0.5),
        cb: rng.vec(2, -0.5, 0.5),
        f: rng.vec(c * n * 2, -0.5, 0.5),
        bias: rng.vec(n, -1.0, 1.0),
        shift: rng.vec(bt * 2, -0.2, 0.2),
    }
}

fn readout_pair(cs: &Case, opts: (bool, bool, bool, bool), budget: Option<u64>) -> (Vec<f32>, Vec<f32>) {
    let (conv_bias, bias, shift, align) = opts;
    let n = cs.mu.len() / 2;
    let ws = [2, 1, cs.kernel[0], cs.kernel[1]];
    let want = rz::zig_readout(
        &cs.x,
        &cs.dims,
        cs.frames,
        &rz::ZigReadout {
            mu: &cs.mu,
            conv_weight: &cs.w,
            conv_shape: &ws,
            conv_bias: conv_bias.then_some(&cs.cb[..]),
            features: &cs.f,
            bias: bias.then_some(&cs.bias[..]),
            align_corners: align,
        },
        shift.then_some(&cs.shift[..]),
    )
    .unwrap();
    let c = cs.dims[1];
    let (x, mu, w, cb, f, bi, sh) = (
        up(&cs.x, &cs.dims),
        up(&cs.mu, &[n, 2]),
        up(&cs.w, &ws),
        up(&cs.cb, &[2]),
        up(&cs.f, &[c, n, 2]),
        up(&cs.bias, &[n]),
        up(&cs.shift, &[cs.dims[0], 2]),
    );
    let got = run_budget(budget, |rec| {
        let r = ZigReadout {
            mu: &mu,
            conv_weight: &w,
            conv_bias: conv_bias.then_some(&cb),
            features: &f,
            bias: bias.then_some(&bi),
            align_corners: align,
        };
        ops::zig_readout(rec, &x, cs.frames, &r, shift.then_some(&sh))
    });
    (got, want)
}

#[test]
fn zig_readout_random_and_awkward_shapes() {
    let mut rng = SplitMix::new(1501);
    // (B, T, C, [H, W], N, kernel): the paper's (11, 5); T shorter than the kernel; one neuron; a
    // 1x1 kernel; one channel; many channels; a 1-wide image.
    for (b, t, c, hw, n, k) in [
        (2, 7, 5, [6, 8], 9, [11, 5]),
        (1, 3, 4, [5, 5], 1, [11, 5]),
        (3, 1, 3, [4, 3], 6, [11, 5]),
        (1, 4, 1, [3, 7], 5, [3, 5]),
        (2, 5, 3, [1, 1], 4, [1, 1]),
        (1, 12, 130, [3, 4], 7, [11, 5]),
        (2, 6, 9, [7, 1], 300, [5, 3]),
    ] {
        let cs = case(&mut rng, b, t, c, hw, n, k);
        for opts in [
            (true, true, true, true),
            (false, false, false, true),
            (true, false, true, false),
            (false, true, false, false),
        ] {
            let (got, want) = readout_pair(&cs, opts, None);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("zig_readout B{b} T{t} C{c} {hw:?} N{n} k{k:?} {opts:?}"));
        }
    }
}

/// Channels past the loop budget go in chunks across dispatches: the same result.
#[test]
fn zig_readout_channels_split() {
    let mut rng = SplitMix::new(1502);
    for (c, budget) in [(200, 66), (67, 66), (66, 66), (150, 70)] {
        let cs = case(&mut rng, 2, 6, c, [4, 5], 11, [11, 5]);
        let (got, want) = readout_pair(&cs, (true, true, true, true), Some(budget));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("zig_readout C{c} budget {budget}"));
    }
}

/// The (11, 5) conv is not causal in time: a change to frame t0 of one sample moves exactly frames
/// t0 − 5 … t0 + 5 of that sample, and nothing of the other samples. A streaming use can emit frame
/// t only once frame t + 5 has arrived.
#[test]
fn zig_readout_is_not_causal() {
    let mut rng = SplitMix::new(1503);
    let (b, t, c, h, w, n) = (2, 16, 3, 4, 4, 3);
    let mut cs = case(&mut rng, b, t, c, [h, w], n, [11, 5]);
    cs.mu = vec![0.0; n * 2]; // the centre: every frame's sample reads the changed pixels
    let (before, _) = readout_pair(&cs, (true, true, false, true), None);
    let t0 = 9;
    for v in &mut cs.x[t0 * c * h * w..(t0 + 1) * c * h * w] {
        *v += 1.0;
    }
    let (after, want) = readout_pair(&cs, (true, true, false, true), None);
    assert_close(&after, &want, 1e-4, 1e-4, "zig_readout after the change");
    for o in 0..2 {
        for bt in 0..b * t {
            let moved = (0..n).any(|j| {
                let i = (o * b * t + bt) * n + j;
                (after[i] - before[i]).abs() > 1e-6
            });
            let within = bt < t && (bt as i64 - t0 as i64).abs() <= 5;
            assert_eq!(moved, within, "output {o} frame {bt}: moved {moved}, expected {within}");
        }
    }
}

/// NaN in the feature map reaches the frames the conv window covers, as PyTorch's; a NaN conv
/// weight makes every output of its row NaN (0·NaN in the padding, as PyTorch).
#[test]
fn zig_readout_nan() {
    let mut rng = SplitMix::new(1504);
    let (c, h, w) = (4, 3, 3);
    let mut cs = case(&mut rng, 1, 14, c, [h, w], 2, [11, 5]);
    cs.mu = vec![0.0; 4];
    cs.x[(2 * c + 1) * h * w + 4] = f32::NAN; // frame 2, channel 1, the centre pixel
    let (got, want) = readout_pair(&cs, (true, true, false, true), None);
    assert!(want.iter().any(|v| v.is_nan()) && want.iter().any(|v| v.is_finite()));
    assert_close_nan(&got, &want, 1e-4, 1e-4, "zig_readout NaN input");
    cs.x[(2 * c + 1) * h * w + 4] = 0.5;
    cs.w[3] = f32::NAN; // a weight of row 0
    let (got, want) = readout_pair(&cs, (false, false, false, true), None);
    assert!(want[..14 * 2].iter().all(|v| v.is_nan()) && want[14 * 2..].iter().all(|v| v.is_finite()));
    assert_close_nan(&got, &want, 1e-4, 1e-4, "zig_readout NaN weight");
}

/// The stored features [1, C, 2, N] are read as [C][N][2] (the same buffer, no transpose).
#[test]
fn zig_features_are_reinterpreted() {
    let (c, n) = (3, 4);
    let raw: Vec<f32> = (0..c * 2 * n).map(|i| i as f32).collect();
    assert_eq!(ops::zig_features_shape(&[1, c, 2, n]).unwrap(), [c, n, 2]);
    let t = ops::zig_features_view(&up(&raw, &[1, c, 2, n])).unwrap();
    assert_eq!(t.shape(), &[c, n, 2]);
    assert_eq!(t.to_vec(ctx()).unwrap(), raw);
    refused_shape(ops::zig_features_shape(&[1, c, n, 2]), "zig_readout", "features");
    refused_shape(ops::zig_features_view(&up(&raw, &[c, 2, n])), "zig_readout", "features");
}

#[test]
fn zig_readout_refusals() {
    let mut rng = SplitMix::new(1505);
    let cs = case(&mut rng, 2, 3, 4, [5, 5], 3, [11, 5]);
    let x = up(&cs.x, &cs.dims);
    let mu = up(&cs.mu, &[3, 2]);
    let w = up(&cs.w, &[2, 1, 11, 5]);
    let f = up(&cs.f, &[4, 3, 2]);
    let r = ZigReadout { mu: &mu, conv_weight: &w, conv_bias: None, features: &f, bias: None, align_corners: true };
    let mut rec = ctx().recorder();
    const OP: &str = "zig_readout";
    refused_param(ops::zig_readout(&mut rec, &x, 4, &r, None), OP, "frames");
    refused_param(ops::zig_readout(&mut rec, &x, 0, &r, None), OP, "frames");
    let even = up(&vec![0.0; 2 * 10 * 5], &[2, 1, 10, 5]);
    refused_param(ops::zig_readout(&mut rec, &x, 3, &ZigReadout { conv_weight: &even, ..r }, None), OP, "conv_weight");
    let three = up(&vec![0.0; 3 * 11 * 5], &[3, 11, 5]);
    refused_shape(ops::zig_readout(&mut rec, &x, 3, &ZigReadout { conv_weight: &three, ..r }, None), OP, "conv_weight");
    let f_stored = up(&cs.f, &[1, 4, 2, 3]);
    refused_shape(ops::zig_readout(&mut rec, &x, 3, &ZigReadout { features: &f_stored, ..r }, None), OP, "features");
    let cb = up(&[0.0; 3], &[3]);
    refused_shape(ops::zig_readout(&mut rec, &x, 3, &ZigReadout { conv_bias: Some(&cb), ..r }, None), OP, "conv_bias");
    let b2 = up(&[0.0; 2], &[2]);
    refused_shape(ops::zig_readout(&mut rec, &x, 3, &ZigReadout { bias: Some(&b2), ..r }, None), OP, "bias");
    let sh = up(&[0.0; 4], &[2, 2]);
    refused_shape(ops::zig_readout(&mut rec, &x, 3, &r, Some(&sh)), OP, "shift");
    refused_shape(ops::zig_readout(&mut rec, &up(&cs.x, &[6, 4, 25]), 3, &r, None), OP, "input");
    // The reference refuses as the op does.
    let ws = [2, 1, 10, 5];
    let bad = rz::ZigReadout {
        mu: &cs.mu,
        conv_weight: &cs.w[..100],
        conv_shape: &ws,
        conv_bias: None,
        features: &cs.f,
        bias: None,
        align_corners: true,
    };
    refused_param(rz::zig_readout(&cs.x, &cs.dims, 3, &bad, None), OP, "conv_weight");
}

#[test]
fn zig_maps_and_moments() {
    let mut rng = SplitMix::new(1506);
    let mut x = rng.vec(1000, -8.0, 8.0);
    x.extend([0.0, -0.0, 30.0, -30.0, 88.0, -100.0, f32::NAN, 1e-7]);
    for map in [ZigMap::Q, ZigMap::Theta, ZigMap::K, ZigMap::Loc] {
        let want = rz::zig_map(&x, map);
        let got = run1(|rec| ops::zig_map(rec, &up(&x, &[x.len()]), map));
        assert_close_nan(&got, &want, 1e-6, 1e-5, &format!("zig_map {map:?}"));
    }
    for (rows, n) in [(7, 13), (1, 1), (300, 3)] {
        let len = rows * n;
        let q = rz::zig_map(&rng.vec(len, -5.0, 5.0), ZigMap::Q);
        let th = rz::zig_map(&rng.vec(len, -3.0, 3.0), ZigMap::Theta);
        for (kl, ll) in [(n, n), (len, len), (n, len)] {
            let k = rng.vec(kl, 0.1, 4.0);
            let loc = rng.vec(ll, 0.001, 0.1);
            for m in [ZigMoment::Mean, ZigMoment::Variance] {
                let want = rz::zig_moments(&q, &th, &k, &loc, &[rows, n], m).unwrap();
                let ks: &[usize] = if kl == n { &[n] } else { &[rows, n] };
                let ls: &[usize] = if ll == n { &[n] } else { &[rows, n] };
                let got = run1(|rec| {
                    ops::zig_moments(rec, &up(&q, &[rows, n]), &up(&th, &[rows, n]), &up(&k, ks), &up(&loc, ls), m)
                });
                assert_close(&got, &want, 1e-5, 1e-5, &format!("zig_moments {m:?} [{rows}, {n}] k {kl} loc {ll}"));
            }
        }
    }
    let a = up(&[0.5; 6], &[2, 3]);
    let mut rec = ctx().recorder();
    refused_shape(
        ops::zig_moments(&mut rec, &a, &up(&[1.0; 3], &[3]), &a, &a, ZigMoment::Mean),
        "zig_moments",
        "theta",
    );
    refused_shape(ops::zig_moments(&mut rec, &a, &a, &up(&[1.0; 2], &[2]), &a, ZigMoment::Mean), "zig_moments", "k");
    refused_shape(ops::zig_moments(&mut rec, &a, &a, &a, &up(&[1.0; 6], &[6]), ZigMoment::Mean), "zig_moments", "loc");
    refused_param(ZigMap::parse("sigma"), "zig_map", "map");
}

/// Latent inputs: logits [2, B·T, N], z [S, B·T, L], weights [L, N], a target with zeros, values at
/// loc exactly and slab values, k and loc per neuron.
struct Latent {
    bt: usize,
    n: usize,
    s: usize,
    l: usize,
    logits: Vec<f32>,
    z: Vec<f32>,
    wq: Vec<f32>,
    wt: Vec<f32>,
    y: Vec<f32>,
    k: Vec<f32>,
    loc: Vec<f32>,
}

fn latent(rng: &mut SplitMix, bt: usize, n: usize, s: usize, l: usize) -> Latent {
    let loc = (0..n).map(|j| if j % 2 == 0 { 0.005 } else { 0.02 }).collect::<Vec<f32>>();
    let y = (0..bt * n)
        .map(|i| match i % 5 {
            0 => 0.0,
            1 => loc[i % n],
            2 => loc[i % n] * 0.5,
            _ => loc[i % n] + rng.vec(1, 0.0, 3.0)[0],
        })
        .collect();
    Latent {
        bt,
        n,
        s,
        l,
        logits: rng.vec(2 * bt * n, -2.0, 2.0),
        z: rng.vec(s * bt * l, -2.0, 2.0),
        wq: rng.vec(l * n, -0.3, 0.3),
        wt: rng.vec(l * n, -0.3, 0.3),
        y,
        k: rng.vec(n, 0.3, 3.0),
        loc,
    }
}

fn lat_ref(c: &Latent) -> rz::ZigLatent<'_> {
    rz::ZigLatent { z: &c.z, z_shape: [c.s, c.bt, c.l], w_q: &c.wq, w_theta: &c.wt }
}

fn loglik_pair(c: &Latent, budget: Option<u64>) -> (Vec<f32>, Vec<f32>) {
    let want = rz::zig_latent_loglik(&c.y, &c.logits, [c.bt, c.n], &lat_ref(c), &c.k, &c.loc).unwrap();
    let (y, lg, z, wq, wt, k, loc) = (
        up(&c.y, &[c.bt, c.n]),
        up(&c.logits, &[2, c.bt, c.n]),
        up(&c.z, &[c.s, c.bt, c.l]),
        up(&c.wq, &[c.l, c.n]),
        up(&c.wt, &[c.l, c.n]),
        up(&c.k, &[c.n]),
        up(&c.loc, &[c.n]),
    );
    let got = run_budget(budget, |rec| {
        ops::zig_latent_loglik(rec, &y, &lg, &ZigLatent { z: &z, w_q: &wq, w_theta: &wt }, &k, &loc)
    });
    (got, want)
}

#[test]
fn zig_latent_loglik_random_shapes() {
    let mut rng = SplitMix::new(1507);
    for (bt, n, s, l) in [(6, 9, 20, 12), (1, 1, 1, 12), (4, 300, 3, 1), (10, 7, 100, 12), (3, 5, 1, 3)] {
        let c = latent(&mut rng, bt, n, s, l);
        let (got, want) = loglik_pair(&c, None);
        assert_close(&got, &want, 2e-4, 2e-4, &format!("zig_latent_loglik BT{bt} N{n} S{s} L{l}"));
    }
}

/// Samples past the loop budget: chunks of samples, each its own logsumexp, combined.
#[test]
fn zig_latent_loglik_samples_split() {
    let mut rng = SplitMix::new(1508);
    // (S, L, budget): L = 3 and budget 64 take 16 samples per chunk.
    for (s, l, budget) in [(100, 3, Some(64)), (17, 3, Some(64)), (16, 3, Some(64)), (300, 12, Some(100))] {
        let c = latent(&mut rng, 5, 6, s, l);
        let (got, want) = loglik_pair(&c, budget);
        assert_close(&got, &want, 2e-4, 2e-4, &format!("zig_latent_loglik S{s} budget {budget:?}"));
    }
    // More samples than one shader loop may run on any adapter (65,535): split at the real budget.
    let c = latent(&mut rng, 2, 3, 70_000, 2);
    let (got, want) = loglik_pair(&c, None);
    assert_close(&got, &want, 2e-3, 2e-4, "zig_latent_loglik S 70000");
}

#[test]
fn zig_latent_loglik_nan() {
    let mut rng = SplitMix::new(1509);
    let mut c = latent(&mut rng, 4, 5, 10, 3);
    c.y[0] = f32::NAN; // a target
    c.logits[2 * 5 + 1] = f32::NAN; // q~ of (bt 2, n 1)
    c.z[(3 * 4 + 3) * 3] = f32::NAN; // sample 3 of frame 3: all its neurons
    c.k[4] = f32::NAN; // neuron 4 everywhere
    let (got, want) = loglik_pair(&c, None);
    let nan = want.iter().filter(|v| v.is_nan()).count();
    assert!(nan > 5 && nan < want.len(), "{nan} NaN of {}", want.len());
    assert_close_nan(&got, &want, 2e-4, 2e-4, "zig_latent_loglik NaN");
    let (got, _) = loglik_pair(&c, Some(16));
    assert_close_nan(&got, &want, 2e-4, 2e-4, "zig_latent_loglik NaN, split");
}

#[test]
fn zig_latent_params_match_reference() {
    let mut rng = SplitMix::new(1510);
    for (bt, n, s, l) in [(6, 9, 4, 12), (1, 1, 1, 1), (3, 257, 2, 5)] {
        let c = latent(&mut rng, bt, n, s, l);
        let (wq, wth) = rz::zig_latent_params(&c.logits, [bt, n], &lat_ref(&c)).unwrap();
        let (lg, z, a, b) = (up(&c.logits, &[2, bt, n]), up(&c.z, &[s, bt, l]), up(&c.wq, &[l, n]), up(&c.wt, &[l, n]));
        let mut rec = ctx().recorder();
        let (q, th) = ops::zig_latent_params(&mut rec, &lg, &ZigLatent { z: &z, w_q: &a, w_theta: &b }).unwrap();
        assert_eq!(q.shape(), &[s, bt, n]);
        let (hq, ht) = (rec.read_back(&q), rec.read_back(&th));
        let out = rec.submit().unwrap();
        assert_close(&out.f32(hq), &wq, 1e-5, 1e-5, "zig_latent_params q");
        assert_close(&out.f32(ht), &wth, 1e-5, 1e-5, "zig_latent_params theta");
    }
}

#[test]
fn zig_latent_refusals() {
    let mut rng = SplitMix::new(1511);
    let c = latent(&mut rng, 4, 5, 3, 2);
    let (y, lg, z, wq, k) =
        (up(&c.y, &[4, 5]), up(&c.logits, &[2, 4, 5]), up(&c.z, &[3, 4, 2]), up(&c.wq, &[2, 5]), up(&c.k, &[5]));
    let lat = ZigLatent { z: &z, w_q: &wq, w_theta: &wq };
    let mut rec = ctx().recorder();
    const OP: &str = "zig_latent_loglik";
    let z_bad = up(&c.z, &[3, 2, 4]);
    refused_shape(ops::zig_latent_loglik(&mut rec, &y, &lg, &ZigLatent { z: &z_bad, ..lat }, &k, &k), OP, "z");
    let w_bad = up(&c.wq, &[5, 2]);
    refused_shape(
        ops::zig_latent_loglik(&mut rec, &y, &lg, &ZigLatent { w_theta: &w_bad, ..lat }, &k, &k),
        OP,
        "w_theta",
    );
    refused_shape(ops::zig_latent_loglik(&mut rec, &y, &up(&c.logits, &[4, 10]), &lat, &k, &k), OP, "logits");
    refused_shape(ops::zig_latent_loglik(&mut rec, &up(&c.y, &[5, 4]), &lg, &lat, &k, &k), OP, "target");
    refused_shape(ops::zig_latent_loglik(&mut rec, &y, &lg, &lat, &y, &k), OP, "k");
    refused_shape(ops::zig_latent_loglik(&mut rec, &y, &lg, &lat, &k, &up(&[1.0; 4], &[4])), OP, "loc");
    refused_shape(ops::zig_latent_params(&mut rec, &lg, &ZigLatent { z: &z_bad, ..lat }), "zig_latent_params", "z");
    let bad = rz::ZigLatent { z: &c.z, z_shape: [3, 2, 4], w_q: &c.wq, w_theta: &c.wq };
    refused_shape(rz::zig_latent_loglik(&c.y, &c.logits, [4, 5], &bad, &c.k, &c.k), OP, "z");
}

/// The PyTorch goldens of scripts/golden_zig.py (a port of the upstream readout, maps, moments and
/// the latent log-likelihood; kernels-tests/data/zig) through `vcortex eval` on the GPU and on the
/// CPU reference, held to docs/eval-format.md's tolerances (the readout and the log-likelihood as
/// reductions, the rest elementwise).
#[test]
fn zig_goldens_through_eval() {
    use vcortex::eval::{self, check_tolerance, Backend};
    use vcortex::io::read_safetensors;
    let dir = crate::common::data_dir("zig");
    let mut cases: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("zig golden directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".case.safetensors")))
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 13, "the 13 committed ZIG cases");
    let out_dir = std::env::temp_dir().join(format!("vcortex-zig-golden-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for (backend, label) in [(Backend::Gpu(ctx()), "gpu"), (Backend::Cpu, "cpu")] {
        for case in &cases {
            let name = case.file_name().unwrap().to_str().unwrap().replace(".case.safetensors", "");
            let out = out_dir.join(format!("{name}.{label}.safetensors"));
            eval::eval_file(case, &out, &backend).unwrap_or_else(|e| panic!("{label} {name}: {e}"));
            let got = read_safetensors(&out).unwrap();
            let want = read_safetensors(&dir.join(format!("{name}.expected.safetensors"))).unwrap();
            let op = got.metadata.get("op").cloned().unwrap_or_default();
            let elementwise = !matches!(op.as_str(), "zig_readout" | "zig_latent_loglik");
            assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>(), "{name}");
            for (k, w) in &want.tensors {
                let g = &got.tensors[k];
                assert_eq!(g.shape, w.shape, "{label} {name} {k}: shape");
                let (excess, maxerr) = check_tolerance(&g.data, &w.data, elementwise);
                assert!(excess <= 0.0, "{label} {name} {k}: max |err| {maxerr:.3e} past the tolerance");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
