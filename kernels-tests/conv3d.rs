//! conv3d and the factorized pair (shaders/conv3d.wgsl: conv3d_gemm, conv3d_direct, the split
//! parts and conv3d_epilogue) against the CPU reference on random and awkward shapes, reductions
//! past the loop counter, NaN and Inf, and refusals by the named argument.

use crate::common::{assert_close, assert_close_nan, refused_length, refused_param, refused_shape, up};
use vcortex::ops::conv3d::{conv3d_shape, pick_algo};
use vcortex::ops::{self, Activation, Conv3dAlgo, Conv3dParams, Epilogue, Factorized3dParams};
use vcortex::reference;
use vcortex::rng::SplitMix;

struct Case {
    x: [usize; 5],
    w: [usize; 5],
    p: Conv3dParams,
    bias: bool,
    affine: bool,
    act: Activation,
}

const ALL: [Conv3dAlgo; 4] = [Conv3dAlgo::Auto, Conv3dAlgo::Gemm, Conv3dAlgo::GemmNarrow, Conv3dAlgo::Direct];

fn check(c: &Case, rng: &mut SplitMix, algos: &[Conv3dAlgo]) -> Vec<usize> {
    check_with(c, rng, algos, crate::common::budget(), 2e-5)
}

/// Runs `c` on each of `algos` with the given loop budget against the reference; returns the
/// number of parts each reduction took (dispatches less the epilogue of a split one).
fn check_with(c: &Case, rng: &mut SplitMix, algos: &[Conv3dAlgo], budget: u64, atol: f64) -> Vec<usize> {
    let fan = (c.w[1] * c.w[2] * c.w[3] * c.w[4]) as f32;
    let xd = rng.vec(c.x.iter().product(), -1.0, 1.0);
    let wd: Vec<f32> = rng.vec(c.w.iter().product(), -1.0, 1.0).iter().map(|v| v / fan.sqrt()).collect();
    let o = c.w[0];
    let (bd, sd, hd) = (rng.vec(o, -1.0, 1.0), rng.vec(o, 0.5, 1.5), rng.vec(o, -0.5, 0.5));
    let (want, shape) = reference::conv3d(
        &xd,
        &c.x,
        &wd,
        &c.w,
        c.bias.then_some(&bd[..]),
        &c.p,
        c.affine.then_some((&sd[..], &hd[..])),
        c.act,
    )
    .expect("reference accepts the case");
    let (x, w, b, s, h) = (up(&xd, &c.x), up(&wd, &c.w), up(&bd, &[o]), up(&sd, &[o]), up(&hd, &[o]));
    let mut parts = Vec::new();
    for &algo in algos {
        let epi = Epilogue { scale: c.affine.then_some(&s), shift: c.affine.then_some(&h), act: c.act };
        let mut rec = crate::common::ctx().recorder();
        rec.set_loop_budget(budget);
        let y = ops::conv3d(&mut rec, &x, &w, c.bias.then_some(&b), &c.p.with_algo(algo), &epi)
            .expect("conv3d refused a valid case");
        assert_eq!(y.shape(), &shape[..]);
        parts.push(rec.labels().iter().filter(|l| !l.ends_with("_epilogue")).count());
        let hnd = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(hnd);
        let what = format!(
            "conv3d {algo:?} x{:?} w{:?} {:?} bias {} affine {} {:?}, budget {budget}, {} parts",
            c.x,
            c.w,
            c.p,
            c.bias,
            c.affine,
            c.act,
            parts.last().unwrap()
        );
        assert_close(&got, &want, atol, 2e-4, &what);
    }
    parts
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

/// A random case: sizes, padding, stride, dilation per axis, groups; kernels that fit.
fn random_case(rng: &mut SplitMix, max_c: usize, max_len: usize) -> Case {
    let acts = [Activation::Identity, Activation::Elu, Activation::Relu, Activation::Gelu];
    let c = rng.range(1, max_c);
    let d = divisors(c);
    let g = d[rng.range(0, d.len() - 1)];
    let o = g * rng.range(1, 5);
    let dims = [rng.range(1, max_len), rng.range(1, max_len), rng.range(1, max_len)];
    let mut p = Conv3dParams { groups: g, ..Default::default() };
    let mut k = [0; 3];
    for a in 0..3 {
        p.padding[2 * a] = rng.range(0, 2);
        p.padding[2 * a + 1] = rng.range(0, 2);
        p.stride[a] = rng.range(1, 3);
        p.dilation[a] = rng.range(1, 2);
        let padded = dims[a] + p.padding[2 * a] + p.padding[2 * a + 1];
        k[a] = rng.range(1, ((padded - 1) / p.dilation[a] + 1).min(4));
    }
    Case {
        x: [rng.range(1, 2), c, dims[0], dims[1], dims[2]],
        w: [o, c / g, k[0], k[1], k[2]],
        p,
        bias: rng.range(0, 1) == 1,
        affine: rng.range(0, 2) == 0,
        act: acts[rng.range(0, acts.len() - 1)],
    }
}

#[test]
fn conv3d_random_shapes_both_kernels() {
    let mut rng = SplitMix::new(3003);
    for _ in 0..40 {
        let c = random_case(&mut rng, 9, 9);
        check(&c, &mut rng, &ALL);
    }
}

#[test]
fn conv3d_awkward_shapes() {
    let mut rng = SplitMix::new(31);
    let d = Conv3dParams::default();
    let case = |x, w, p, bias, affine, act| Case { x, w, p, bias, affine, act };
    let id = Activation::Identity;
    let cases = [
        // One frame, kt = 1 (a conv2d per frame); one frame with time padding and kt = 3.
        case([2, 3, 1, 7, 9], [4, 3, 1, 3, 3], d.with_padding(0, 1, 1), true, false, id),
        case([1, 2, 1, 5, 5], [3, 2, 3, 3, 3], d.with_padding(1, 1, 1), true, true, Activation::Elu),
        // Kernel as large as the input; as large as the padded input.
        case([2, 2, 4, 5, 6], [3, 2, 4, 5, 6], d, true, false, id),
        case([1, 2, 2, 3, 4], [2, 2, 4, 5, 6], d.with_padding(1, 1, 1), false, false, id),
        // 1-wide, 1-high, 1x1x1 volumes.
        case([3, 2, 9, 1, 17], [5, 2, 3, 1, 3], d.with_padding(1, 0, 1), true, false, Activation::Tanh),
        case([2, 3, 5, 11, 1], [2, 3, 2, 3, 1], d.with_stride(2, 2, 1), true, false, id),
        case([4, 5, 1, 1, 1], [7, 5, 1, 1, 1], d, true, true, id),
        case([2, 5, 1, 1, 1], [7, 5, 3, 3, 3], d.with_padding(1, 1, 1), true, false, id),
        // Large channels: past one 64-channel tile, a reduction not a multiple of 8.
        case([1, 70, 3, 5, 4], [130, 70, 2, 3, 3], d.with_padding(0, 1, 1), true, true, Activation::Elu),
        // Many voxels: tiles across image and frame boundaries.
        case([3, 2, 7, 11, 13], [6, 2, 3, 3, 3], d.with_padding(1, 1, 1), true, false, id),
        // Stride and dilation differing per axis, asymmetric padding.
        case(
            [2, 3, 11, 10, 9],
            [4, 3, 3, 2, 3],
            Conv3dParams { stride: [2, 1, 3], padding: [2, 0, 1, 3, 0, 1], dilation: [3, 2, 1], ..d },
            true,
            false,
            id,
        ),
        // Groups (not depthwise), depthwise, depthwise with a channel multiplier of 3.
        case([2, 6, 4, 7, 9], [9, 2, 2, 3, 3], d.with_groups(3).with_padding(1, 1, 1), true, false, Activation::Silu),
        case([2, 5, 6, 8, 7], [5, 1, 3, 3, 3], d.with_groups(5).with_padding(1, 1, 1), true, true, Activation::Elu),
        case(
            [1, 4, 5, 9, 8],
            [12, 1, 3, 3, 2],
            d.with_groups(4).with_stride(1, 2, 2).with_dilation(2, 1, 2),
            false,
            false,
            id,
        ),
        // The Sensorium 2023 input layer in small: one channel, an 11x11 spatial kernel, no padding.
        case([2, 1, 3, 14, 18], [8, 1, 1, 11, 11], d, true, false, id),
        // Its temporal conv: kt = 11 over 12 frames, 1x1 in space.
        case([1, 8, 12, 4, 6], [16, 8, 11, 1, 1], d, true, true, Activation::Elu),
    ];
    for c in &cases {
        check(c, &mut rng, &ALL);
    }
}

/// Auto takes the direct kernel for few output channels per group, the narrow GEMM up to 32, the
/// GEMM past that.
#[test]
fn conv3d_auto_picks_by_channels_per_group() {
    let d = Conv3dParams::default();
    let s = conv3d_shape(&[1, 8, 3, 5, 5], &[8, 1, 3, 3, 3], &d.with_groups(8)).unwrap();
    assert_eq!(pick_algo(&s, &d.with_groups(8)), Conv3dAlgo::Direct);
    let s = conv3d_shape(&[1, 8, 3, 5, 5], &[33, 8, 1, 3, 3], &d).unwrap();
    assert_eq!(pick_algo(&s, &d), Conv3dAlgo::Gemm);
    let s = conv3d_shape(&[1, 8, 3, 5, 5], &[64, 4, 1, 3, 3], &d.with_groups(2)).unwrap();
    assert_eq!(pick_algo(&s, &d.with_groups(2)), Conv3dAlgo::GemmNarrow);
    let s = conv3d_shape(&[1, 8, 3, 5, 5], &[32, 8, 1, 3, 3], &d).unwrap();
    assert_eq!(pick_algo(&s, &d), Conv3dAlgo::GemmNarrow);
    assert_eq!(pick_algo(&s, &d.with_algo(Conv3dAlgo::Direct)), Conv3dAlgo::Direct);
    assert_eq!(s.output(), [1, 32, 3, 3, 3]);
}

/// Reductions longer than one invocation may loop on lavapipe: the GEMM with C/G*KT*KH*KW =
/// 216,000 (27,000 steps of 8) and the direct kernel with 80,000 taps per output, at the full
/// loop budget, each split into parts.
#[test]
fn conv3d_reductions_past_the_loop_counter() {
    let mut rng = SplitMix::new(65_535);
    let d = Conv3dParams::default();
    let budget = crate::common::budget();
    let gemm = Case {
        x: [1, 8000, 3, 3, 3],
        w: [3, 8000, 3, 3, 3],
        p: d.with_padding(1, 1, 1),
        bias: true,
        affine: true,
        act: Activation::Elu,
    };
    let algos = [Conv3dAlgo::Gemm, Conv3dAlgo::GemmNarrow, Conv3dAlgo::Direct];
    let n = check_with(&gemm, &mut rng, &algos, budget, 1e-4);
    assert!(n.iter().all(|&n| n > 1), "{n:?}");
    let dw = Case {
        x: [1, 2, 50, 40, 41],
        w: [2, 1, 50, 40, 40],
        p: d.with_groups(2),
        bias: true,
        affine: false,
        act: Activation::Identity,
    };
    let n = check_with(&dw, &mut rng, &[Conv3dAlgo::Auto], budget, 1e-4);
    assert!(n[0] > 1, "{n:?}");
}

/// The split path of both kernels on a lowered loop budget (16..96 iterations a dispatch), so
/// reductions run in one part, two or many with a ragged last one, with and without epilogue.
#[test]
fn conv3d_split_reductions_on_a_lowered_loop_budget() {
    let mut rng = SplitMix::new(4243);
    let mut most = [0usize; 3];
    for _ in 0..20 {
        let c = random_case(&mut rng, 24, 6);
        let budget = rng.range(16, 96) as u64;
        let algos = [Conv3dAlgo::Gemm, Conv3dAlgo::GemmNarrow, Conv3dAlgo::Direct];
        let n = check_with(&c, &mut rng, &algos, budget, 2e-5);
        for (m, n) in most.iter_mut().zip(n) {
            *m = (*m).max(n);
        }
    }
    assert!(most.iter().all(|&n| n >= 3), "most parts: {most:?}");
}

/// NaN and ±Inf in the input reach exactly the outputs whose window covers them, and an Inf
/// weight makes every output NaN or Inf (padded zeros multiply it too, as in PyTorch), on both
/// kernels, whole and split on a loop budget of 16.
#[test]
fn conv3d_nan_and_inf_propagate() {
    let mut rng = SplitMix::new(23);
    let d = Conv3dParams::default();
    for (xs, ws, p, inf_weight) in [
        ([2, 3, 5, 6, 7], [4, 3, 3, 3, 3], d.with_padding(1, 1, 1), false),
        ([2, 3, 5, 6, 7], [6, 1, 2, 3, 3], d.with_groups(3).with_padding(0, 1, 1), false),
        ([1, 2, 4, 5, 5], [3, 2, 2, 3, 3], d.with_padding(1, 1, 1).with_stride(1, 2, 1), true),
    ] {
        let mut xd = rng.vec(xs.iter().product(), -1.0, 1.0);
        let mut wd = rng.vec(ws.iter().product(), -1.0, 1.0);
        let bd = rng.vec(ws[0], -1.0, 1.0);
        let vol = xs[2] * xs[3] * xs[4];
        xd[2 * xs[4] + 3] = f32::NAN; // image 0, channel 0, frame 0
        let at = xs[1] * vol + vol + 2 * xs[3] * xs[4] + 3 * xs[4] + 4; // image 1, channel 1
        if xs[0] > 1 {
            xd[at] = f32::INFINITY;
            xd[at + 1] = f32::NEG_INFINITY;
        }
        if inf_weight {
            let last = wd.len() - 1;
            wd[last] = f32::INFINITY;
        }
        let (want, _) =
            reference::conv3d(&xd, &xs, &wd, &ws, Some(&bd), &p, None, Activation::Identity).expect("a valid case");
        assert!(want.iter().any(|v| !v.is_finite()), "the reference keeps NaN");
        assert!(inf_weight || want.iter().any(|v| v.is_finite()));
        let (x, w, b) = (up(&xd, &xs), up(&wd, &ws), up(&bd, &[ws[0]]));
        for algo in [Conv3dAlgo::Gemm, Conv3dAlgo::GemmNarrow, Conv3dAlgo::Direct] {
            for budget in [crate::common::budget(), 16] {
                let mut rec = crate::common::ctx().recorder();
                rec.set_loop_budget(budget);
                let y = ops::conv3d(&mut rec, &x, &w, Some(&b), &p.with_algo(algo), &Epilogue::default()).unwrap();
                let h = rec.read_back(&y);
                let got = rec.submit().unwrap().f32(h);
                assert_close_nan(&got, &want, 2e-5, 2e-4, &format!("conv3d {algo:?} x{xs:?} w{ws:?} budget {budget}"));
            }
        }
    }
}

/// One Factorized3dCore layer: spatial (1, k, k) conv with bias, temporal (kt, 1, 1) conv with
/// bias, folded BN and ELU, against the reference pair and against two reference conv3d calls.
#[test]
fn factorized_pair_matches_two_convs() {
    let mut rng = SplitMix::new(15);
    let d = Conv3dParams::default();
    // (input, mid channels, out channels, k, kt, spatial params, temporal params)
    let cases = [
        // The paper's first layer in small: valid convs, 11x11 then kt 11.
        ([2, 1, 13, 16, 20], 8, 8, 11, 11, d, d),
        // A hidden layer: 5x5 then kt 5, with the latent-model padding (time kt/2, space k/2).
        ([1, 8, 7, 9, 11], 12, 16, 5, 5, d.with_padding(0, 2, 2), d.with_padding(2, 0, 0)),
        // Spatial stride 2, temporal dilation 2, a grouped temporal conv, T = kt.
        ([2, 4, 5, 8, 9], 6, 9, 3, 3, d.with_stride(1, 2, 2), d.with_dilation(2, 1, 1).with_groups(3)),
        // One frame, kt = 1, 1-wide.
        ([3, 3, 1, 6, 1], 5, 70, 1, 1, d.with_padding(0, 0, 0), d),
    ];
    for (xs, mid, out, k, kt, sp, tp) in cases {
        let kw = if xs[4] == 1 { 1 } else { k };
        let ss = [mid, xs[1], 1, k, kw];
        let ts = [out, mid / tp.groups, kt, 1, 1];
        let xd = rng.vec(xs.iter().product(), -1.0, 1.0);
        let swd = rng.vec(ss.iter().product(), -0.3, 0.3);
        let twd = rng.vec(ts.iter().product(), -0.3, 0.3);
        let (sb, tb) = (rng.vec(mid, -0.5, 0.5), rng.vec(out, -0.5, 0.5));
        let (sc, sh) = (rng.vec(out, 0.5, 1.5), rng.vec(out, -0.5, 0.5));
        let p = Factorized3dParams { spatial: sp, temporal: tp };
        let act = Activation::Elu;
        let (want, shape) = reference::factorized_conv3d(
            &xd,
            &xs,
            &swd,
            &ss,
            Some(&sb),
            &twd,
            &ts,
            Some(&tb),
            &p,
            Some((&sc, &sh)),
            act,
        )
        .unwrap();
        let (m, ms) = reference::conv3d(&xd, &xs, &swd, &ss, Some(&sb), &sp, None, Activation::Identity).unwrap();
        let (two, _) = reference::conv3d(&m, &ms, &twd, &ts, Some(&tb), &tp, Some((&sc, &sh)), act).unwrap();
        assert_eq!(want, two, "the reference pair is two reference convs");
        let t = |d: &[f32], s: &[usize]| up(d, s);
        let (x, sw, tw, sbt, tbt, sct, sht) =
            (t(&xd, &xs), t(&swd, &ss), t(&twd, &ts), t(&sb, &[mid]), t(&tb, &[out]), t(&sc, &[out]), t(&sh, &[out]));
        let epi = Epilogue { scale: Some(&sct), shift: Some(&sht), act };
        let mut rec = crate::common::ctx().recorder();
        let y = ops::factorized_conv3d(&mut rec, &x, &sw, Some(&sbt), &tw, Some(&tbt), &p, &epi).unwrap();
        assert_eq!(y.shape(), &shape[..]);
        assert_eq!(rec.labels().len(), 2, "two dispatches: {:?}", rec.labels());
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
        assert_close(&got, &want, 2e-5, 2e-4, &format!("factorized x{xs:?} s{ss:?} t{ts:?}"));
    }
}

/// Bad input is refused with the named argument, by the op and by the reference alike, before
/// anything is recorded.
#[test]
fn conv3d_refusals_name_the_argument() {
    let d = Conv3dParams::default();
    let x = up(&[0.5; 2 * 4 * 3 * 5 * 5], &[2, 4, 3, 5, 5]);
    let w = |s: &[usize]| up(&vec![0.1; s.iter().product()], s);
    let none = Epilogue::default();
    let conv = |x: &vcortex::Tensor, wt: &vcortex::Tensor, b: Option<&vcortex::Tensor>, p: &Conv3dParams, e| {
        let mut rec = crate::common::ctx().recorder();
        let r = ops::conv3d(&mut rec, x, wt, b, p, e);
        assert!(rec.labels().is_empty() || r.is_ok(), "recorded before refusing");
        r
    };
    let w3 = w(&[6, 4, 3, 3, 3]);
    // Groups that do not divide the channels, zero groups, weights of the wrong C/groups.
    refused_param(conv(&x, &w(&[6, 1, 3, 3, 3]), None, &d.with_groups(3), &none), "conv3d", "groups");
    refused_param(conv(&x, &w(&[6, 4, 3, 3, 3]), None, &d.with_groups(0), &none), "conv3d", "groups");
    refused_param(conv(&x, &w(&[5, 2, 3, 3, 3]), None, &d.with_groups(2), &none), "conv3d", "groups");
    refused_shape(conv(&x, &w(&[6, 2, 3, 3, 3]), None, &d, &none), "conv3d", "weight");
    // A kernel larger than the padded input along each axis (time with dilation).
    refused_shape(conv(&x, &w(&[6, 4, 4, 3, 3]), None, &d, &none), "conv3d", "weight");
    refused_shape(conv(&x, &w(&[6, 4, 2, 3, 3]), None, &d.with_dilation(3, 1, 1), &none), "conv3d", "weight");
    refused_shape(conv(&x, &w(&[6, 4, 1, 8, 3]), None, &d.with_padding(0, 1, 0), &none), "conv3d", "weight");
    refused_shape(conv(&x, &w(&[6, 4, 1, 3, 6]), None, &d, &none), "conv3d", "weight");
    // Zero sizes, wrong ranks.
    // (No tensor on the device has a zero-sized dimension: the shape checker and the reference.)
    refused_shape(conv3d_shape(&[2, 4, 0, 5, 5], &[6, 4, 3, 3, 3], &d), "conv3d", "input");
    refused_shape(conv3d_shape(&[2, 4, 3, 5, 5], &[6, 4, 0, 3, 3], &d), "conv3d", "weight");
    refused_shape(conv3d_shape(&[2, 4, 3, 5, 5], &[0, 4, 3, 3, 3], &d), "conv3d", "weight");
    let one = [1.0f32];
    refused_shape(
        reference::conv3d(&[], &[0, 4, 3, 5, 5], &one, &[1, 4, 1, 1, 1], None, &d, None, Activation::Identity),
        "conv3d",
        "input",
    );
    let x4 = up(&[0.5; 4 * 5 * 5], &[4, 1, 5, 5]);
    refused_shape(conv(&x4, &w3, None, &d, &none), "conv3d", "input");
    refused_shape(conv(&x, &w(&[6, 4, 3, 3]), None, &d, &none), "conv3d", "weight");
    // Zero stride or dilation, geometry past the maximum.
    refused_param(conv(&x, &w3, None, &d.with_stride(1, 0, 1), &none), "conv3d", "stride");
    refused_param(conv(&x, &w3, None, &d.with_dilation(0, 1, 1), &none), "conv3d", "dilation");
    refused_param(conv(&x, &w3, None, &d.with_padding(1 << 21, 0, 0), &none), "conv3d", "padding");
    // Bias and epilogue operands.
    let b5 = up(&[0.0; 5], &[5]);
    refused_shape(conv(&x, &w3, Some(&b5), &d, &none), "conv3d", "bias");
    let s6 = up(&[1.0; 6], &[6]);
    let half = Epilogue { scale: Some(&s6), shift: None, act: Activation::Identity };
    refused_param(conv(&x, &w3, None, &d, &half), "conv3d", "epilogue");
    let bad = Epilogue { scale: Some(&b5), shift: Some(&b5), act: Activation::Identity };
    refused_shape(conv(&x, &w3, None, &d, &bad), "conv3d", "scale");

    // The reference refuses the same way, and data of the wrong length.
    let xd = vec![0.5; 2 * 4 * 3 * 5 * 5];
    let xs = [2, 4, 3, 5, 5];
    let wd = vec![0.1; 6 * 4 * 27];
    let id = Activation::Identity;
    let r = |ws: &[usize], p: &Conv3dParams| reference::conv3d(&xd, &xs, &wd, ws, None, p, None, id);
    refused_param(r(&[6, 1, 3, 3, 3], &d.with_groups(3)), "conv3d", "groups");
    refused_shape(r(&[6, 4, 4, 3, 3], &d), "conv3d", "weight");
    refused_length(r(&[6, 4, 3, 3, 2], &d), "conv3d", "weight");
    refused_length(reference::conv3d(&xd, &xs, &wd, &[6, 4, 3, 3, 3], Some(&[0.0; 5]), &d, None, id), "conv3d", "bias");

    // The factorized pair: kernel shapes of the wrong kind, its parameters by conv, its biases.
    let f = |ws: &vcortex::Tensor, wt: &vcortex::Tensor, sb: Option<&vcortex::Tensor>, p: &Factorized3dParams| {
        let mut rec = crate::common::ctx().recorder();
        let r = ops::factorized_conv3d(&mut rec, &x, ws, sb, wt, None, p, &none);
        assert!(rec.labels().is_empty() || r.is_ok(), "recorded before refusing");
        r
    };
    let fp = Factorized3dParams::default();
    let (ws, wt) = (w(&[8, 4, 1, 3, 3]), w(&[6, 8, 2, 1, 1]));
    const F: &str = "factorized_conv3d";
    refused_shape(f(&w(&[8, 4, 2, 3, 3]), &wt, None, &fp), F, "spatial_weight");
    refused_shape(f(&ws, &w(&[6, 8, 2, 3, 1]), None, &fp), F, "temporal_weight");
    // A temporal kernel of 4 frames on the spatial output of 3.
    refused_shape(f(&ws, &w(&[6, 8, 4, 1, 1]), None, &fp), F, "temporal_weight");
    refused_shape(f(&w(&[8, 4, 1, 6, 3]), &wt, None, &fp), F, "spatial_weight");
    let g3 = Factorized3dParams { temporal: d.with_groups(3), ..fp };
    refused_param(f(&ws, &wt, None, &g3), F, "temporal.groups");
    let s0 = Factorized3dParams { spatial: d.with_stride(1, 0, 1), ..fp };
    refused_param(f(&ws, &wt, None, &s0), F, "spatial.stride");
    refused_shape(f(&ws, &wt, Some(&b5), &fp), F, "spatial_bias");
    let mut rec = crate::common::ctx().recorder();
    let r = ops::factorized_conv3d(&mut rec, &x, &ws, None, &wt, Some(&b5), &fp, &none);
    refused_shape(r, F, "temporal_bias");
    let r = ops::factorized_conv3d(&mut rec, &x, &ws, None, &wt, None, &fp, &bad);
    refused_shape(r, F, "scale");
    assert!(rec.labels().is_empty());
    let swd = vec![0.1; 8 * 4 * 9];
    let twd = vec![0.1; 6 * 8 * 2];
    let rf = |ts: &[usize]| {
        reference::factorized_conv3d(&xd, &xs, &swd, &[8, 4, 1, 3, 3], None, &twd, ts, None, &fp, None, id)
    };
    refused_shape(rf(&[6, 8, 4, 1, 1]), F, "temporal_weight");
    refused_length(rf(&[6, 8, 1, 1, 1]), F, "temporal_weight");
}
