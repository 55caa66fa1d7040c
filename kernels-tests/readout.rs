//! grid_sample, the Gaussian readout, Poisson NLL and the ZIG log-density (shaders/readout.wgsl)
//! against the CPU reference on random and awkward shapes.

use crate::common::{assert_close, ctx, is_param, refused_param, refused_shape, run1, up};
use vcortex::ops::{self, Reduction};
use vcortex::reference::readout as rr;
use vcortex::rng::SplitMix;

#[test]
fn grid_sample_random_shapes() {
    let mut rng = SplitMix::new(61);
    for _ in 0..20 {
        let (n, c, h, w) = (rng.range(1, 3), rng.range(1, 5), rng.range(1, 12), rng.range(1, 12));
        let (ho, wo) = (rng.range(1, 9), rng.range(1, 9));
        let x = rng.vec(n * c * h * w, -1.0, 1.0);
        let g = rng.vec(n * ho * wo * 2, -1.3, 1.3);
        for align in [false, true] {
            let want = rr::grid_sample(&x, &[n, c, h, w], &g, &[n, ho, wo, 2], align).unwrap().0;
            let got = run1(|rec| ops::grid_sample(rec, &up(&x, &[n, c, h, w]), &up(&g, &[n, ho, wo, 2]), align));
            assert_close(
                &got,
                &want,
                1e-5,
                1e-5,
                &format!("grid_sample [{n},{c},{h},{w}] -> [{ho},{wo}] align {align}"),
            );
        }
    }
}

/// Positions far outside the image (1e30) sample nothing, and NaN positions end without reading
/// anything out of range: the taps are tested in float before any conversion to an index.
#[test]
fn grid_sample_far_and_nan_positions() {
    let x = vec![1.0f32; 2 * 3 * 4];
    let grid = [1e30f32, 0.0, -1e30, 1e30, f32::NAN, 0.5, 0.0, f32::NAN];
    let got = run1(|rec| ops::grid_sample(rec, &up(&x, &[1, 2, 3, 4]), &up(&grid, &[1, 2, 2, 2]), false));
    assert_eq!(&got[..2], &[0.0, 0.0], "far outside samples zero");
    assert_eq!(&got[4..6], &[0.0, 0.0], "far outside samples zero (second channel)");
    let want = rr::grid_sample(&x, &[1, 2, 3, 4], &grid, &[1, 2, 2, 2], false).unwrap().0;
    assert_eq!(&want[..2], &[0.0, 0.0]);
}

#[test]
fn gaussian_readout_many_neurons() {
    let mut rng = SplitMix::new(62);
    for (n, c, h, w, m) in [(2, 64, 7, 11, 1000), (1, 1, 1, 1, 3), (3, 13, 5, 1, 257), (4, 3, 28, 56, 40)] {
        let x = rng.vec(n * c * h * w, -1.0, 1.0);
        let mu = rng.vec(m * 2, -1.2, 1.2);
        let f = rng.vec(c * m, -0.5, 0.5);
        let b = rng.vec(m, -1.0, 1.0);
        let s = rng.vec(n * 2, -0.3, 0.3);
        for (bias, shift, align) in
            [(true, true, true), (false, false, true), (true, false, false), (false, true, false)]
        {
            let want = rr::gaussian_readout(
                &x,
                &[n, c, h, w],
                &mu,
                &f,
                bias.then_some(&b[..]),
                shift.then_some(&s[..]),
                align,
                vcortex::ops::Activation::Identity,
            )
            .unwrap();
            // ELU+1 fused where there is a bias (the model's use), the raw readout otherwise.
            let act = if bias { ops::Activation::Elu1 } else { ops::Activation::Identity };
            let want = vcortex::reference::activation(&want, act);
            let got = run1(|rec| {
                let (bt, st) = (up(&b, &[m]), up(&s, &[n, 2]));
                ops::gaussian_readout(
                    rec,
                    &up(&x, &[n, c, h, w]),
                    &up(&mu, &[m, 2]),
                    &up(&f, &[c, m]),
                    bias.then_some(&bt),
                    shift.then_some(&st),
                    align,
                    act,
                )
            });
            assert_close(
                &got,
                &want,
                1e-4,
                1e-4,
                &format!("readout [{n},{c},{h},{w}] M {m} bias {bias} shift {shift} align {align}"),
            );
        }
    }
}

/// The sorted readout gives the same responses, in the caller's neuron order, as the plain one and
/// the reference: many neurons, one neuron, shared positions (ties), positions past the border.
#[test]
fn gaussian_readout_sorted_matches() {
    let mut rng = SplitMix::new(63);
    for (n, c, h, w, m) in [(2, 64, 7, 11, 1000), (1, 1, 1, 1, 1), (3, 13, 5, 1, 257), (2, 3, 28, 56, 4001)] {
        let x = rng.vec(n * c * h * w, -1.0, 1.0);
        let mut mu = rng.vec(m * 2, -1.3, 1.3);
        // Some neurons share a position (ties keep their order), some sit on the corners.
        for i in (0..m).step_by(7) {
            mu[2 * i] = mu[0];
            mu[2 * i + 1] = mu[1];
        }
        if m > 3 {
            mu[2..6].copy_from_slice(&[1.0, 1.0, -1.0, -1.0]);
        }
        let f = rng.vec(c * m, -0.5, 0.5);
        let b = rng.vec(m, -1.0, 1.0);
        let s = rng.vec(n * 2, -0.3, 0.3);
        for (bias, shift, align) in [(true, true, true), (false, false, false), (true, false, false)] {
            let want = rr::gaussian_readout(
                &x,
                &[n, c, h, w],
                &mu,
                &f,
                bias.then_some(&b[..]),
                shift.then_some(&s[..]),
                align,
                vcortex::ops::Activation::Identity,
            )
            .unwrap();
            let want = vcortex::reference::activation(&want, ops::Activation::Elu1);
            let sorted = ops::SortedReadout::new(ctx(), &mu, &f, c, bias.then_some(&b[..])).unwrap();
            let mut seen = sorted.order().to_vec();
            seen.sort_unstable();
            assert_eq!(seen, (0..m as u32).collect::<Vec<_>>(), "the order is a permutation");
            let got = run1(|rec| {
                let st = up(&s, &[n, 2]);
                ops::gaussian_readout_sorted(
                    rec,
                    &up(&x, &[n, c, h, w]),
                    &sorted,
                    shift.then_some(&st),
                    align,
                    ops::Activation::Elu1,
                )
            });
            let what = format!("sorted readout [{n},{c},{h},{w}] M {m} bias {bias} shift {shift} align {align}");
            assert_close(&got, &want, 1e-4, 1e-4, &what);
        }
    }
}

/// Z-order keeps neighbours together: the 32 slots of a warp span a small part of the grid, where
/// the caller's random order spans all of it.
#[test]
fn readout_order_is_local() {
    let mut rng = SplitMix::new(64);
    let m = 8000;
    let mu = rng.vec(2 * m, -1.0, 1.0);
    let spread = |idx: &mut dyn Iterator<Item = usize>| {
        let pts: Vec<usize> = idx.collect();
        let mut total = 0.0;
        for chunk in pts.chunks(32) {
            let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
            for &i in chunk {
                x0 = x0.min(mu[2 * i]);
                x1 = x1.max(mu[2 * i]);
                y0 = y0.min(mu[2 * i + 1]);
                y1 = y1.max(mu[2 * i + 1]);
            }
            total += (x1 - x0) * (y1 - y0);
        }
        total / pts.len().div_ceil(32) as f32
    };
    let order = ops::readout::readout_order(&mu);
    let sorted = spread(&mut order.iter().map(|&i| i as usize));
    let plain = spread(&mut (0..m));
    assert!(sorted < plain / 20.0, "mean area of a warp's positions: sorted {sorted}, unsorted {plain}");
    // Refusals: mis-sized features or bias, non-finite positions.
    refused_shape(ops::SortedReadout::new(ctx(), &mu, &mu[..10], 3, None), "gaussian_readout", "features");
    refused_shape(ops::SortedReadout::new(ctx(), &mu, &mu, 2, Some(&mu[..5])), "gaussian_readout", "bias");
    let mut bad = mu.clone();
    bad[9] = f32::NAN;
    let e = ops::SortedReadout::new(ctx(), &bad, &mu, 2, None).err().expect("NaN position accepted");
    assert!(is_param(&e, "gaussian_readout", "mu"), "{e:?}");
    assert!(e.to_string().contains("mu[4][1]"), "{e}");
}

#[test]
fn poisson_nll_reductions_over_many_workgroups() {
    let mut rng = SplitMix::new(63);
    for n in [1usize, 255, 257, 70_001] {
        let r = rng.vec(n, 0.0, 3.0);
        let t: Vec<f32> = rng.vec(n, 0.0, 4.0).iter().map(|v| v.floor()).collect();
        let l = rr::poisson_nll(&r, &t, &[n], 1e-8, Reduction::None).unwrap();
        let none = run1(|rec| ops::poisson_nll(rec, &up(&r, &[n]), &up(&t, &[n]), 1e-8, Reduction::None));
        assert_close(
            &none,
            &l.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            1e-4,
            1e-4,
            &format!("poisson none n={n}"),
        );
        let sum: f64 = l.iter().sum();
        let got = run1(|rec| ops::poisson_nll(rec, &up(&r, &[n]), &up(&t, &[n]), 1e-8, Reduction::Sum));
        assert_close(&got, &[sum as f32], 1e-3, 1e-5, &format!("poisson sum n={n}"));
        let got = run1(|rec| ops::poisson_nll(rec, &up(&r, &[n]), &up(&t, &[n]), 1e-8, Reduction::Mean));
        assert_close(&got, &[(sum / n as f64) as f32], 1e-5, 1e-5, &format!("poisson mean n={n}"));
    }
}

#[test]
fn zig_loglik_random() {
    let mut rng = SplitMix::new(64);
    let n = 5000;
    let loc = rng.vec(n, 0.001, 0.1);
    let y: Vec<f32> = rng
        .vec(n, 0.0, 5.0)
        .iter()
        .zip(&loc)
        .enumerate()
        .map(|(i, (&v, &l))| {
            if i % 3 == 0 {
                l * 0.5
            } else if i % 7 == 0 {
                l
            } else {
                v
            }
        })
        .collect();
    let (q, th, k) = (rng.vec(n, 0.01, 0.99), rng.vec(n, 0.05, 3.0), rng.vec(n, 0.05, 8.0));
    let want = rr::zig_loglik(&y, &q, &th, &k, &loc);
    let got =
        run1(|rec| ops::zig_loglik(rec, &up(&y, &[n]), &up(&q, &[n]), &up(&th, &[n]), &up(&k, &[n]), &up(&loc, &[n])));
    assert_close(&got, &want, 1e-4, 1e-4, "zig_loglik");
    // Shapes k outside the domain (k <= 0, huge negative, NaN) end, and valid ones beside them
    // keep their values: the log-gamma shift is bounded.
    let k_bad = [-1e30, -5.5, 0.0, f32::NAN, 2.0];
    let y5 = [1.0f32; 5];
    let (q5, th5, loc5) = ([0.5f32; 5], [1.0f32; 5], [0.01f32; 5]);
    let got = run1(|rec| {
        let u = |v: &[f32]| up(v, &[5]);
        ops::zig_loglik(rec, &u(&y5), &u(&q5), &u(&th5), &u(&k_bad), &u(&loc5))
    });
    let want = rr::zig_loglik(&y5[4..], &q5[4..], &th5[4..], &k_bad[4..], &loc5[4..]);
    assert_close(&got[4..], &want, 1e-4, 1e-4, "zig_loglik beside invalid shapes");
}

#[test]
fn readout_refuses_bad_shapes() {
    let x = up(&[0.0; 2 * 3 * 4 * 5], &[2, 3, 4, 5]);
    let mut rec = ctx().recorder();
    refused_shape(ops::grid_sample(&mut rec, &x, &up(&[0.0; 12], &[1, 3, 2, 2]), false), "grid_sample", "grid");
    refused_shape(ops::grid_sample(&mut rec, &x, &up(&[0.0; 18], &[2, 3, 1, 3]), false), "grid_sample", "grid");
    let mu = up(&[0.0; 8], &[4, 2]);
    let readout =
        |rec: &mut vcortex::Recorder, mu: &vcortex::Tensor, f: &[usize], bias: Option<usize>, shift: Option<usize>| {
            let (ft, bt, st) = (
                up(&vec![0.0; f.iter().product()], f),
                bias.map(|n| up(&vec![0.0; n], &[n])),
                shift.map(|n| up(&vec![0.0; n], &[n])),
            );
            ops::gaussian_readout(rec, &x, mu, &ft, bt.as_ref(), st.as_ref(), true, ops::Activation::Identity)
        };
    refused_shape(readout(&mut rec, &mu, &[2, 4], None, None), "gaussian_readout", "features"); // features [C, M] with the wrong C
    refused_shape(readout(&mut rec, &mu, &[3, 4], Some(3), None), "gaussian_readout", "bias"); // bias of the wrong length
    refused_shape(readout(&mut rec, &mu, &[3, 4], None, Some(3)), "gaussian_readout", "shift"); // shift not [N, 2]
    refused_shape(readout(&mut rec, &up(&[0.0; 12], &[4, 3]), &[3, 4], None, None), "gaussian_readout", "mu"); // mu not [M, 2]
    let a = up(&[1.0; 4], &[4]);
    refused_shape(ops::poisson_nll(&mut rec, &a, &up(&[1.0; 3], &[3]), 1e-8, Reduction::Sum), "poisson_nll", "target");
    refused_param(ops::poisson_nll(&mut rec, &a, &a, f32::NAN, Reduction::Sum), "poisson_nll", "eps");
    refused_shape(ops::zig_loglik(&mut rec, &a, &a, &a, &up(&[1.0; 3], &[3]), &a), "zig_loglik", "k");
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn pearson_per_neuron() {
    let mut rng = SplitMix::new(65);
    for (t, m) in [(2usize, 1usize), (50, 300), (1000, 7)] {
        let a = rng.vec(t * m, -1.0, 1.0);
        // b correlates with a to a degree that varies by neuron.
        let noise = rng.vec(t * m, -1.0, 1.0);
        let b: Vec<f32> = (0..t * m).map(|i| a[i] * ((i % m) as f32 / m as f32) + noise[i]).collect();
        let want = rr::pearson(&a, &b, &[t, m], 1e-8).unwrap();
        let got = run1(|rec| ops::pearson(rec, &up(&a, &[t, m]), &up(&b, &[t, m]), 1e-8));
        assert_close(&got, &want, 1e-5, 1e-4, &format!("pearson T {t} M {m}"));
        assert!(got.iter().all(|c| c.abs() <= 1.0 + 1e-5));
    }
    // Constant responses: correlation 0, not NaN.
    let got =
        run1(|rec| ops::pearson(rec, &up(&[1.0; 6], &[3, 2]), &up(&[0.5, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]), 1e-8));
    assert_eq!(got, vec![0.0, 0.0]);
}

/// Sampling mode: positions from each neuron's Gaussian with the engine's Philox normals, the
/// same on the GPU and the CPU reference; different seeds give different draws.
#[test]
fn gaussian_readout_sampling_mode() {
    let mut rng = SplitMix::new(66);
    let (n, c, h, w, m) = (3, 5, 9, 11, 200);
    let x = rng.vec(n * c * h * w, -1.0, 1.0);
    let mu = rng.vec(m * 2, -1.0, 1.0);
    let sigma = rng.vec(m * 4, -0.2, 0.2);
    let f = rng.vec(c * m, -0.5, 0.5);
    let b = rng.vec(m, -1.0, 1.0);
    let s = rng.vec(n * 2, -0.2, 0.2);
    let draw = |seed: u64| {
        run1(|rec| {
            let (bt, st, sg) = (up(&b, &[m]), up(&s, &[n, 2]), up(&sigma, &[m, 2, 2]));
            ops::gaussian_readout_sample(
                rec,
                &up(&x, &[n, c, h, w]),
                &up(&mu, &[m, 2]),
                &up(&f, &[c, m]),
                Some(&bt),
                Some(&st),
                true,
                ops::Activation::Identity,
                ops::ReadoutSample { sigma: &sg, seed, offset: 9 },
            )
        })
    };
    let got = draw(4);
    let want = rr::gaussian_readout_sample(
        &x,
        &[n, c, h, w],
        &mu,
        &f,
        Some(&b),
        Some(&s),
        true,
        vcortex::ops::Activation::Identity,
        rr::ReadoutSample { sigma: &sigma, seed: 4, offset: 9 },
    )
    .unwrap();
    assert_close(&got, &want, 1e-4, 1e-4, "sampled readout");
    let eval =
        rr::gaussian_readout(&x, &[n, c, h, w], &mu, &f, Some(&b), Some(&s), true, vcortex::ops::Activation::Identity)
            .unwrap();
    assert!(got.iter().zip(&eval).any(|(a, b)| (a - b).abs() > 1e-3), "sampling moved no position");
    assert_ne!(draw(5), got, "another seed, another draw");
    let mut rec = ctx().recorder();
    let bad = ops::ReadoutSample { sigma: &up(&sigma[..8], &[2, 2, 2]), seed: 1, offset: 0 };
    let r = ops::gaussian_readout_sample(
        &mut rec,
        &up(&x, &[n, c, h, w]),
        &up(&mu, &[m, 2]),
        &up(&f, &[c, m]),
        None,
        None,
        true,
        ops::Activation::Identity,
        bad,
    );
    refused_shape(r, "gaussian_readout", "sigma");
}

/// Records with `f` on a recorder whose loop budget is `budget`, submits, reads the result back.
fn run_budget(budget: u64, f: impl FnOnce(&mut vcortex::Recorder) -> vcortex::Result<vcortex::Tensor>) -> Vec<f32> {
    let mut rec = ctx().recorder();
    rec.set_loop_budget(budget);
    let y = f(&mut rec).expect("op refused valid input");
    let h = rec.read_back(&y);
    rec.submit().expect("submit").f32(h)
}

/// As assert_close, but NaN where the reference has NaN (and only there) passes.
#[track_caller]
fn assert_close_nan(got: &[f32], want: &[f32], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}: element {i}: got {g}, want {w}");
        } else if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}: element {i}");
        } else {
            let err = (g as f64 - w as f64).abs();
            assert!(err <= atol + rtol * (w as f64).abs(), "{what}: element {i}: got {g}, want {w}");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn readout_case(
    budget: u64,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    mu: &[f32],
    f: &[f32],
    b: Option<&[f32]>,
    s: Option<&[f32]>,
    align: bool,
    sorted: bool,
) -> Vec<f32> {
    let m = mu.len() / 2;
    if sorted {
        let r = ops::SortedReadout::new(ctx(), mu, f, c, b).unwrap();
        run_budget(budget, |rec| {
            let st = s.map(|s| up(s, &[n, 2]));
            ops::gaussian_readout_sorted(rec, &up(x, &[n, c, h, w]), &r, st.as_ref(), align, ops::Activation::Elu1)
        })
    } else {
        run_budget(budget, |rec| {
            let (bt, st) = (b.map(|b| up(b, &[m])), s.map(|s| up(s, &[n, 2])));
            ops::gaussian_readout(
                rec,
                &up(x, &[n, c, h, w]),
                &up(mu, &[m, 2]),
                &up(f, &[c, m]),
                bt.as_ref(),
                st.as_ref(),
                align,
                ops::Activation::Elu1,
            )
        })
    }
}

/// 70,000 channels: one invocation's channel loop is past lavapipe's 65,535 loop iterations, so
/// the sum is split across dispatches (before, it silently stopped at channel 65,535). Plain and
/// sorted parameters.
#[test]
fn gaussian_readout_70000_channels() {
    let mut rng = SplitMix::new(67);
    let (n, c, h, w, m) = (1, 70_000, 2, 2, 3);
    let x = rng.vec(n * c * h * w, 0.0, 1.0);
    let mu = rng.vec(m * 2, -0.8, 0.8);
    // Positive weights: a lost tail of channels shows as a clearly smaller sum.
    let f = rng.vec(c * m, 0.0, 1e-3);
    let b = rng.vec(m, -1.0, 1.0);
    let want =
        rr::gaussian_readout(&x, &[n, c, h, w], &mu, &f, Some(&b), None, false, vcortex::ops::Activation::Identity)
            .unwrap();
    let want = vcortex::reference::activation(&want, ops::Activation::Elu1);
    for sorted in [false, true] {
        let got = readout_case(crate::common::budget(), &x, [n, c, h, w], &mu, &f, Some(&b), None, false, sorted);
        assert_close(&got, &want, 1e-3, 1e-4, &format!("readout C 70000 sorted {sorted}"));
    }
}

/// Random odd shapes with a lowered loop budget: every split of the channel sum (one chunk, first,
/// middle and ragged last chunks) against the reference, plain, sorted and sampling mode.
#[test]
fn gaussian_readout_split_channels() {
    let mut rng = SplitMix::new(68);
    for it in 0..12 {
        let budget = rng.range(16, 64) as u64;
        let (n, c, h, w, m) = (rng.range(1, 3), rng.range(1, 200), rng.range(1, 6), rng.range(1, 6), rng.range(1, 40));
        let x = rng.vec(n * c * h * w, -1.0, 1.0);
        let mu = rng.vec(m * 2, -1.2, 1.2);
        let f = rng.vec(c * m, -0.5, 0.5);
        let b = rng.vec(m, -1.0, 1.0);
        let s = rng.vec(n * 2, -0.3, 0.3);
        let (bias, shift, align, sorted) = (it % 2 == 0, it % 3 == 0, it % 4 < 2, it % 5 < 2);
        let (bo, so) = (bias.then_some(&b[..]), shift.then_some(&s[..]));
        let want = rr::gaussian_readout(&x, &[n, c, h, w], &mu, &f, bo, so, align, vcortex::ops::Activation::Identity)
            .unwrap();
        let want = vcortex::reference::activation(&want, ops::Activation::Elu1);
        let got = readout_case(budget, &x, [n, c, h, w], &mu, &f, bo, so, align, sorted);
        let what = format!("readout [{n},{c},{h},{w}] M {m} budget {budget} bias {bias} shift {shift} sorted {sorted}");
        assert_close(&got, &want, 1e-4, 1e-4, &what);
        // Sampling mode takes the same split.
        let sigma = rng.vec(m * 4, -0.2, 0.2);
        let want = rr::gaussian_readout_sample(
            &x,
            &[n, c, h, w],
            &mu,
            &f,
            bo,
            so,
            align,
            vcortex::ops::Activation::Identity,
            rr::ReadoutSample { sigma: &sigma, seed: 3, offset: 1 },
        )
        .unwrap();
        let got = run_budget(budget, |rec| {
            let (bt, st, sg) = (up(&b, &[m]), up(&s, &[n, 2]), up(&sigma, &[m, 2, 2]));
            ops::gaussian_readout_sample(
                rec,
                &up(&x, &[n, c, h, w]),
                &up(&mu, &[m, 2]),
                &up(&f, &[c, m]),
                bias.then_some(&bt),
                shift.then_some(&st),
                align,
                ops::Activation::Identity,
                ops::ReadoutSample { sigma: &sg, seed: 3, offset: 1 },
            )
        });
        assert_close(&got, &want, 1e-4, 1e-4, &format!("sampled {what}"));
    }
}

/// NaN in the feature map gives NaN in exactly the neurons with a tap on it (a tap of weight 0
/// included, as PyTorch multiplies it), never in a neuron whose taps fall outside the image; a
/// NaN position samples nothing (only the bias); a NaN or infinite feature weight poisons its neuron.
#[test]
fn gaussian_readout_nan() {
    let (n, c, h, w) = (1, 3, 4, 5);
    let mut x: Vec<f32> = (0..n * c * h * w).map(|i| (i % 7) as f32 * 0.1).collect();
    x[0] = f32::NAN; // pixel (0, 0) of channel 0: read by neurons at the top-left corner only
    x[2 * h * w + 3 * w + 4] = f32::INFINITY; // pixel (4, 3) of channel 2
    let mu = [
        -1.0,
        -1.0, // on pixel (0, 0) (align_corners): NaN
        -0.9,
        -0.9, // taps (0, 0)..(1, 1): NaN
        0.0,
        0.0, // centre: finite
        1.0,
        1.0, // on pixel (4, 3): +inf
        f32::NAN,
        0.0, // NaN position: samples nothing
        0.5,
        -0.5, // finite, but its feature weight is NaN
    ];
    let m = mu.len() / 2;
    let mut f = vec![0.1f32; c * m];
    f[5] = f32::NAN;
    let b: Vec<f32> = (0..m).map(|i| i as f32 * 0.25).collect();
    // The raw readout: the activations' NaN rule is not this kernel's.
    let want =
        rr::gaussian_readout(&x, &[n, c, h, w], &mu, &f, Some(&b), None, true, vcortex::ops::Activation::Identity)
            .unwrap();
    assert!(want[0].is_nan() && want[1].is_nan() && want[5].is_nan(), "reference: {want:?}");
    assert!(want[2].is_finite() && want[3] == f32::INFINITY && want[4].is_finite(), "reference: {want:?}");
    for budget in [crate::common::budget(), 16] {
        let got = run_budget(budget, |rec| {
            ops::gaussian_readout(
                rec,
                &up(&x, &[n, c, h, w]),
                &up(&mu, &[m, 2]),
                &up(&f, &[c, m]),
                Some(&up(&b, &[m])),
                None,
                true,
                ops::Activation::Identity,
            )
        });
        assert_close_nan(&got, &want, 1e-5, 1e-5, "readout with NaN and inf");
    }
    // A NaN at pixel 0 does not reach a neuron whose outside taps used to read it with weight 0.
    let mut x1 = vec![1.0f32; h * w];
    x1[0] = f32::NAN;
    let mu1 = [1.0f32, 1.0, 0.99, -0.99];
    let want = rr::gaussian_readout(
        &x1,
        &[1, 1, h, w],
        &mu1,
        &[1.0, 1.0],
        None,
        None,
        false,
        vcortex::ops::Activation::Identity,
    )
    .unwrap();
    let got = run1(|rec| {
        ops::gaussian_readout(
            rec,
            &up(&x1, &[1, 1, h, w]),
            &up(&mu1, &[2, 2]),
            &up(&[1.0, 1.0], &[1, 2]),
            None,
            None,
            false,
            ops::Activation::Identity,
        )
    });
    assert!(want.iter().all(|v| v.is_finite()), "reference {want:?}");
    assert_close(&got, &want, 1e-5, 1e-5, "outside taps read nothing");
}

/// The Poisson sum over more partials than sum_partials' loop may cover (1.3M elements with the
/// budget at 16: a level of per-workgroup sums first), and random sizes around it.
#[test]
fn poisson_nll_sum_levels() {
    let mut rng = SplitMix::new(69);
    for (n, budget) in [(1_300_000usize, 16u64), (4097 * 256, 16), (70_001, 16), (5, 16)] {
        let r = rng.vec(n, 0.0, 3.0);
        let t: Vec<f32> = rng.vec(n, 0.0, 4.0).iter().map(|v| v.floor()).collect();
        let sum = rr::poisson_nll(&r, &t, &[n], 1e-8, Reduction::Sum).unwrap()[0];
        for (red, want) in [(Reduction::Sum, sum), (Reduction::Mean, sum / n as f64)] {
            let got = run_budget(budget, |rec| ops::poisson_nll(rec, &up(&r, &[n]), &up(&t, &[n]), 1e-8, red));
            assert_close(&got, &[want as f32], 1e-3, 1e-5, &format!("poisson {red:?} n={n} budget {budget}"));
        }
    }
}

/// NaN and ±inf through Poisson NLL (elementwise as PyTorch: NaN stays NaN, inf·0 is NaN; a NaN
/// anywhere makes the sum and mean NaN) and the ZIG log-density (a NaN in any input gives NaN, as
/// PyTorch's masked products do, even where the taken branch does not read it).
#[test]
fn likelihoods_nan_and_inf() {
    let inf = f32::INFINITY;
    let rate = [f32::NAN, 1.0, inf, inf, 0.0, 2.0, 1.0];
    let target = [1.0, f32::NAN, 0.0, 2.0, 0.0, inf, 3.0];
    let n = rate.len();
    let want: Vec<f32> = rr::poisson_nll(&rate, &target, &[rate.len()], 1e-8, Reduction::None)
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert!(want[0].is_nan() && want[1].is_nan() && want[2].is_nan() && want[5] == -inf, "{want:?}");
    let got = run1(|rec| ops::poisson_nll(rec, &up(&rate, &[n]), &up(&target, &[n]), 1e-8, Reduction::None));
    assert_close_nan(&got, &want, 1e-5, 1e-5, "poisson none with NaN/inf");
    for red in [Reduction::Sum, Reduction::Mean] {
        let got = run_budget(16, |rec| ops::poisson_nll(rec, &up(&rate, &[n]), &up(&target, &[n]), 1e-8, red));
        assert!(got[0].is_nan(), "poisson {red:?} with a NaN: {got:?}");
    }
    // Finite but for one +inf target: the sum is -inf.
    let got = run1(|rec| ops::poisson_nll(rec, &up(&rate[4..], &[3]), &up(&target[4..], &[3]), 1e-8, Reduction::Sum));
    assert_eq!(got, vec![-inf]);
    let nan = f32::NAN;
    // Columns: spike branch (y <= loc) and slab branch, a NaN in each input in turn, and a NaN target.
    let y = [0.001, 1.0, 0.001, 1.0, 0.001, 1.0, 0.001, 1.0, nan, 0.001, 2.0];
    let q = [nan, nan, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
    let th = [1.0, 1.0, nan, nan, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
    let k = [2.0, 2.0, 2.0, 2.0, nan, nan, 2.0, 2.0, 2.0, 2.0, 2.0];
    let loc = [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, nan, nan, 0.01, 0.01, 0.01];
    let n = y.len();
    let want = rr::zig_loglik(&y, &q, &th, &k, &loc);
    assert!(want[..9].iter().all(|v| v.is_nan()) && want[9..].iter().all(|v| v.is_finite()), "{want:?}");
    let got = run1(|rec| {
        let u = |v: &[f32]| up(v, &[n]);
        ops::zig_loglik(rec, &u(&y), &u(&q), &u(&th), &u(&k), &u(&loc))
    });
    assert_close_nan(&got, &want, 1e-4, 1e-4, "zig_loglik with NaN inputs");
}

/// Pearson over 40,000 trials (two loops of T per invocation: 80,000 iterations, past lavapipe's
/// 65,535) and over random trial counts with a lowered budget: both passes split in chunks of
/// trials, the running sums carried between dispatches.
#[test]
fn pearson_split_trials() {
    let mut rng = SplitMix::new(70);
    let mut cases = vec![(crate::common::budget(), 40_000usize, 3usize)];
    for _ in 0..8 {
        cases.push((rng.range(16, 64) as u64, rng.range(1, 150), rng.range(1, 300)));
    }
    for (budget, t, m) in cases {
        let a = rng.vec(t * m, -1.0, 1.0);
        let noise = rng.vec(t * m, -1.0, 1.0);
        // An offset, so that the means matter.
        let b: Vec<f32> = (0..t * m).map(|i| 3.0 + a[i] * ((i % m) as f32 / m as f32) + noise[i]).collect();
        let want = rr::pearson(&a, &b, &[t, m], 1e-8).unwrap();
        let got = run_budget(budget, |rec| ops::pearson(rec, &up(&a, &[t, m]), &up(&b, &[t, m]), 1e-8));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("pearson T {t} M {m} budget {budget}"));
    }
}

#[test]
fn readout_references_refuse_as_the_ops_do() {
    use crate::common::refused_length;
    use vcortex::ops::Activation::Identity;
    let x = vec![0.25f32; 2 * 3 * 4 * 5];
    // grid_sample: a grid for another batch, in the reference as in the op.
    let g = vec![0.0f32; 3 * 2 * 2 * 2];
    refused_shape(rr::grid_sample(&x, &[2, 3, 4, 5], &g, &[3, 2, 2, 2], true), "grid_sample", "grid");
    let op = ops::grid_sample(&mut ctx().recorder(), &up(&x, &[2, 3, 4, 5]), &up(&g, &[3, 2, 2, 2]), true);
    refused_shape(op, "grid_sample", "grid");
    refused_length(rr::grid_sample(&x[1..], &[2, 3, 4, 5], &g[..16], &[2, 2, 2, 2], true), "grid_sample", "input");
    // The Gaussian readout: features for another channel count, an odd mu, a bias of the wrong
    // width, a sigma that is not [M, 2, 2].
    let (mu, f) = (vec![0.1f32; 2 * 7], vec![0.5f32; 3 * 7]);
    refused_shape(
        rr::gaussian_readout(&x, &[2, 3, 4, 5], &mu, &f[..14], None, None, true, Identity),
        "gaussian_readout",
        "features",
    );
    refused_shape(
        rr::gaussian_readout(&x, &[2, 3, 4, 5], &mu[..13], &f, None, None, true, Identity),
        "gaussian_readout",
        "mu",
    );
    refused_shape(
        rr::gaussian_readout(&x, &[2, 3, 4, 5], &mu, &f, Some(&f[..6]), None, true, Identity),
        "gaussian_readout",
        "bias",
    );
    refused_shape(
        rr::gaussian_readout(&x, &[2, 3, 4], &mu, &f, None, None, true, Identity),
        "gaussian_readout",
        "input",
    );
    let sample = rr::ReadoutSample { sigma: &x[..27], seed: 1, offset: 0 };
    refused_shape(
        rr::gaussian_readout_sample(&x, &[2, 3, 4, 5], &mu, &f, None, None, true, Identity, sample),
        "gaussian_readout",
        "sigma",
    );
    refused_length(
        rr::gaussian_readout(&x[2..], &[2, 3, 4, 5], &mu, &f, None, None, true, Identity),
        "gaussian_readout",
        "input",
    );
    // box_sum: a zero window, a rank below 2.
    refused_param(vcortex::reference::box_sum(&x, &[2, 3, 4, 5], [0, 3], 1.0, false), "box_sum", "window");
    refused_shape(vcortex::reference::box_sum(&x, &[120], [3, 3], 1.0, false), "box_sum", "input");
}

#[test]
fn poisson_reference_reduces_and_refuses_as_the_op_does() {
    let (r, t) = ([0.5f32, 1.5, 2.0], [1.0f32, 0.0, 3.0]);
    let none = rr::poisson_nll(&r, &t, &[3], 1e-8, Reduction::None).unwrap();
    let sum = rr::poisson_nll(&r, &t, &[3], 1e-8, Reduction::Sum).unwrap();
    let mean = rr::poisson_nll(&r, &t, &[3], 1e-8, Reduction::Mean).unwrap();
    assert_eq!((none.len(), sum.len(), mean.len()), (3, 1, 1));
    assert!((sum[0] - none.iter().sum::<f64>()).abs() < 1e-12 && (mean[0] - sum[0] / 3.0).abs() < 1e-12);
    refused_param(rr::poisson_nll(&r, &t, &[3], -1.0, Reduction::Sum), "poisson_nll", "eps");
    let op = ops::poisson_nll(&mut ctx().recorder(), &up(&r, &[3]), &up(&t, &[3]), -1.0, Reduction::Sum);
    refused_param(op, "poisson_nll", "eps");
    crate::common::refused_length(rr::poisson_nll(&r, &t[..2], &[3], 1e-8, Reduction::None), "poisson_nll", "target");
}
