//! conv2d (shaders/conv2d.wgsl: conv2d_gemm, conv2d_1x1, conv2d_depthwise) against the CPU
//! reference on random and awkward shapes, every path, with and without the fused epilogue.

use crate::common::{assert_close, is_param, run1, up};
use vcortex::ops::{self, Activation, Conv2dParams, ConvAlgo, Epilogue};
use vcortex::reference;
use vcortex::rng::SplitMix;

struct ConvCase {
    x: [usize; 4],
    w: [usize; 4],
    p: Conv2dParams,
    bias: bool,
    affine: bool,
    act: Activation,
}

/// Runs one case on the given paths and compares each with the reference.
fn check(c: &ConvCase, rng: &mut SplitMix, algos: &[ConvAlgo]) {
    check_with(c, rng, algos, crate::common::budget(), 2e-5);
}

/// [`check`] on a recorder with the given loop budget and absolute tolerance; returns the number of
/// parts each path's reduction took (its dispatches less the epilogue of a split one).
fn check_with(c: &ConvCase, rng: &mut SplitMix, algos: &[ConvAlgo], budget: u64, atol: f64) -> Vec<usize> {
    let xn: usize = c.x.iter().product();
    let wn: usize = c.w.iter().product();
    let fan = (c.w[1] * c.w[2] * c.w[3]) as f32;
    let xd = rng.vec(xn, -1.0, 1.0);
    let wd: Vec<f32> = rng.vec(wn, -1.0, 1.0).iter().map(|v| v / fan.sqrt()).collect();
    let o = c.w[0];
    let bd = rng.vec(o, -1.0, 1.0);
    let sd = rng.vec(o, 0.5, 1.5);
    let hd = rng.vec(o, -0.5, 0.5);
    let (want, shape) = reference::conv2d(
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
    let mut dispatches = Vec::new();
    for &algo in algos {
        let p = c.p.with_algo(algo);
        let epi = Epilogue { scale: c.affine.then_some(&s), shift: c.affine.then_some(&h), act: c.act };
        let mut rec = vcortex::Context::recorder(crate::common::ctx());
        rec.set_loop_budget(budget);
        let y = ops::conv2d(&mut rec, &x, &w, c.bias.then_some(&b), &p, &epi).expect("conv2d refused a valid case");
        assert_eq!(y.shape(), &shape[..]);
        dispatches.push(rec.labels().iter().filter(|l| !l.ends_with("_epilogue")).count());
        let hnd = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(hnd);
        let what = format!(
            "conv2d {algo:?} x{:?} w{:?} {:?} bias {} affine {} {:?}, loop budget {budget}, {} parts",
            c.x,
            c.w,
            c.p,
            c.bias,
            c.affine,
            c.act,
            dispatches.last().unwrap()
        );
        assert_close(&got, &want, atol, 2e-4, &what);
    }
    dispatches
}

fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n % d == 0).collect()
}

#[test]
fn random_shapes_all_paths() {
    let mut rng = SplitMix::new(2024);
    let acts = [Activation::Identity, Activation::Elu, Activation::Relu, Activation::Elu1, Activation::Gelu];
    for _ in 0..60 {
        let n = rng.range(1, 3);
        let c = [1, 2, 3, 4, 5, 7, 8, 12, 17][rng.range(0, 8)];
        let g = {
            let d = divisors(c);
            d[rng.range(0, d.len() - 1)]
        };
        let o = g * rng.range(1, 5);
        let h = rng.range(1, 13);
        let w = rng.range(1, 13);
        let pad = [rng.range(0, 2), rng.range(0, 2), rng.range(0, 2), rng.range(0, 2)];
        let dil = [rng.range(1, 2), rng.range(1, 2)];
        // A kernel that fits the padded input.
        let kh = rng.range(1, ((h + pad[0] + pad[1] - 1) / dil[0] + 1).min(5));
        let kw = rng.range(1, ((w + pad[2] + pad[3] - 1) / dil[1] + 1).min(5));
        let p = Conv2dParams {
            stride: [rng.range(1, 3), rng.range(1, 3)],
            padding: pad,
            dilation: dil,
            groups: g,
            algo: ConvAlgo::Auto,
        };
        let case = ConvCase {
            x: [n, c, h, w],
            w: [o, c / g, kh, kw],
            p,
            bias: rng.range(0, 1) == 1,
            affine: rng.range(0, 3) == 0,
            act: acts[rng.range(0, acts.len() - 1)],
        };
        let mut algos = vec![ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb];
        if g == c {
            algos.push(ConvAlgo::Depthwise);
            if p.stride == [1, 1] && p.dilation == [1, 1] {
                algos.push(ConvAlgo::DepthwiseTiled);
            }
        }
        check(&case, &mut rng, &algos);
    }
}

#[test]
fn awkward_shapes() {
    let mut rng = SplitMix::new(7);
    let d = Conv2dParams::default();
    let cases = [
        // Kernel as large as the input; as large as the padded input.
        ConvCase { x: [2, 3, 5, 5], w: [4, 3, 5, 5], p: d, bias: true, affine: false, act: Activation::Identity },
        ConvCase {
            x: [1, 2, 3, 4],
            w: [3, 2, 5, 6],
            p: d.with_padding(1, 1),
            bias: false,
            affine: false,
            act: Activation::Identity,
        },
        // 1-wide and 1-high inputs, 1x1 images.
        ConvCase {
            x: [3, 2, 1, 17],
            w: [5, 2, 1, 3],
            p: d.with_padding(0, 1),
            bias: true,
            affine: false,
            act: Activation::Tanh,
        },
        ConvCase {
            x: [2, 3, 19, 1],
            w: [2, 3, 3, 1],
            p: d.with_stride(2, 1),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        ConvCase { x: [4, 5, 1, 1], w: [7, 5, 1, 1], p: d, bias: true, affine: true, act: Activation::Identity },
        ConvCase {
            x: [4, 5, 1, 1],
            w: [7, 5, 3, 3],
            p: d.with_padding(1, 1),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        // Large channels: output channels past one 64-wide tile, reduction not a multiple of 8.
        ConvCase {
            x: [1, 130, 6, 7],
            w: [129, 130, 3, 3],
            p: d.with_padding(1, 1),
            bias: true,
            affine: true,
            act: Activation::Elu,
        },
        // Many pixels: tiles that cross image boundaries (M = 9 * 11 * 13 not a multiple of 128).
        ConvCase {
            x: [9, 3, 11, 13],
            w: [6, 3, 3, 3],
            p: d.with_padding(1, 1),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        // The Sensorium input layer shape in small: 9x9, one channel, no padding.
        ConvCase { x: [2, 1, 18, 20], w: [16, 1, 9, 9], p: d, bias: false, affine: true, act: Activation::Elu },
        // Dilation and stride together, asymmetric padding.
        ConvCase {
            x: [2, 4, 13, 11],
            w: [6, 4, 3, 3],
            p: Conv2dParams { stride: [2, 3], padding: [2, 0, 1, 3], dilation: [3, 2], ..d },
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        // Grouped (not depthwise) with channels not a multiple of 4.
        ConvCase {
            x: [2, 6, 7, 9],
            w: [9, 2, 3, 3],
            p: d.with_groups(3).with_padding(1, 1),
            bias: true,
            affine: false,
            act: Activation::Silu,
        },
    ];
    for c in &cases {
        check(c, &mut rng, &[ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb]);
    }
}

#[test]
fn depthwise_path() {
    let mut rng = SplitMix::new(11);
    let d = Conv2dParams::default();
    let cases = [
        // The Sensorium hidden layer's 7x7, padding 3, channels not a multiple of 4.
        ConvCase {
            x: [2, 13, 14, 15],
            w: [13, 1, 7, 7],
            p: d.with_groups(13).with_padding(3, 3),
            bias: true,
            affine: true,
            act: Activation::Elu,
        },
        // Channel multiplier 3, stride 2, dilation 2.
        ConvCase {
            x: [3, 4, 9, 8],
            w: [12, 1, 3, 3],
            p: d.with_groups(4).with_stride(2, 2).with_dilation(2, 2).with_padding(2, 1),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        // Kernel larger than the image, all padding.
        ConvCase {
            x: [1, 2, 2, 3],
            w: [2, 1, 7, 7],
            p: d.with_groups(2).with_padding(3, 3),
            bias: false,
            affine: false,
            act: Activation::Identity,
        },
        // One channel.
        ConvCase {
            x: [5, 1, 6, 1],
            w: [1, 1, 3, 1],
            p: d.with_padding(1, 0),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
    ];
    for c in &cases {
        check(c, &mut rng, &[ConvAlgo::Depthwise, ConvAlgo::Gemm, ConvAlgo::GemmDb]);
    }
}

/// The tiled depthwise kernel (stride 1, dilation 1) on every layout it picks: 32, 16 and 8
/// invocations along the columns, one or four output channels per invocation, images that span
/// several tiles in both axes, asymmetric padding, kernels larger than the image.
#[test]
fn depthwise_tiled_path() {
    use vcortex::ops::conv::{conv_shape, depthwise_tile};
    let mut rng = SplitMix::new(17);
    let d = Conv2dParams::default();
    let case = |x: [usize; 4], w: [usize; 4], p: Conv2dParams, act| ConvCase {
        x,
        w,
        p,
        bias: true,
        affine: x[0] % 2 == 0,
        act,
    };
    let cases = [
        // Sensorium's hidden depthwise 7x7 (28x56 feature maps, two column tiles), 5 channels.
        (case([2, 5, 28, 56], [5, 1, 7, 7], d.with_groups(5).with_padding(3, 3), Activation::Elu), (32, 1)),
        // Sensorium's input layer: one channel to 8 (a multiplier of 8: four per invocation), 9x9.
        (case([3, 1, 36, 64], [8, 1, 9, 9], d, Activation::Identity), (32, 4)),
        // Multiplier 3 (one per invocation), rows past one tile (70 > 32), asymmetric padding.
        (
            case(
                [1, 2, 70, 33],
                [6, 1, 3, 5],
                Conv2dParams { padding: [0, 3, 2, 1], ..d.with_groups(2) },
                Activation::Relu,
            ),
            (32, 1),
        ),
        // Narrow and tall: 8 invocations along the columns, 128 rows a tile, two row tiles.
        (case([2, 3, 150, 6], [3, 1, 5, 3], d.with_groups(3).with_padding(2, 1), Activation::Identity), (8, 1)),
        // 16 columns, multiplier 4.
        (case([1, 2, 64, 16], [8, 1, 3, 3], d.with_groups(2).with_padding(1, 1), Activation::Gelu), (16, 4)),
        // Kernel larger than the image (all padding), 1x1 and 1-wide images (ties: the widest layout).
        (case([2, 3, 2, 3], [3, 1, 7, 7], d.with_groups(3).with_padding(3, 3), Activation::Identity), (32, 1)),
        (case([4, 2, 1, 1], [8, 1, 1, 1], d.with_groups(2), Activation::Identity), (32, 4)),
        (case([1, 1, 9, 1], [1, 1, 3, 1], d.with_padding(1, 0), Activation::Identity), (32, 1)),
        // The largest kernel the taps fit (16x16 = 256), even sizes.
        (case([1, 2, 20, 20], [2, 1, 16, 16], d.with_groups(2).with_padding(8, 7), Activation::Identity), (32, 1)),
    ];
    for (c, layout) in &cases {
        let s = conv_shape(&c.x, &c.w, &c.p).unwrap();
        assert_eq!(depthwise_tile(&s, &c.p), Some(*layout), "layout of x{:?} w{:?}", c.x, c.w);
        check(c, &mut rng, &[ConvAlgo::Auto, ConvAlgo::DepthwiseTiled, ConvAlgo::Depthwise]);
    }
    // Past the kernel's capacity (17x17 taps), strided or dilated: the direct kernel, and the tiled
    // one refused when forced.
    let x = up(&[0.5; 2 * 20 * 20], &[1, 2, 20, 20]);
    for (w, p) in [
        ([2, 1, 17, 17], d.with_groups(2).with_padding(8, 8)),
        ([2, 1, 3, 3], d.with_groups(2).with_stride(2, 1)),
        ([2, 1, 3, 3], d.with_groups(2).with_dilation(1, 2)),
    ] {
        let s = conv_shape(&[1, 2, 20, 20], &w, &p).unwrap();
        assert_eq!(vcortex::ops::conv::pick_algo(&s, &p), ConvAlgo::Depthwise);
        let wt = up(&vec![0.1; w.iter().product()], &w);
        let mut rec = vcortex::Context::recorder(crate::common::ctx());
        let err = ops::conv2d(&mut rec, &x, &wt, None, &p.with_algo(ConvAlgo::DepthwiseTiled), &Epilogue::default())
            .expect_err("the tiled path accepted a shape it cannot run");
        assert!(is_param(&err, "conv2d", "algo"), "{err:?}");
        assert!(err.to_string().contains("tiled depthwise"), "{err}");
    }
}

#[test]
fn one_by_one_path() {
    let mut rng = SplitMix::new(13);
    let d = Conv2dParams::default();
    for (n, c, o, h, w) in
        [(1, 1, 1, 1, 1), (2, 16, 12, 7, 5), (3, 67, 70, 9, 11), (1, 9, 130, 16, 9), (5, 64, 64, 4, 8)]
    {
        let case = ConvCase {
            x: [n, c, h, w],
            w: [o, c, 1, 1],
            p: d,
            bias: true,
            affine: n % 2 == 1,
            act: Activation::Identity,
        };
        check(&case, &mut rng, &[ConvAlgo::OneByOne, ConvAlgo::OneByOneDb, ConvAlgo::Gemm, ConvAlgo::GemmDb]);
    }
}

/// The auto ladder picks the path the shape calls for.
#[test]
fn ladder_picks_the_specialised_kernels() {
    use vcortex::ops::conv::{conv_shape, pick_algo};
    let d = Conv2dParams::default();
    let s = conv_shape(&[1, 8, 9, 9], &[8, 1, 3, 3], &d.with_groups(8)).unwrap();
    assert_eq!(pick_algo(&s, &d.with_groups(8)), ConvAlgo::DepthwiseTiled);
    assert_eq!(pick_algo(&s, &d.with_groups(8).with_stride(2, 2)), ConvAlgo::Depthwise);
    let s = conv_shape(&[1, 8, 9, 9], &[4, 8, 1, 1], &d).unwrap();
    assert_eq!(pick_algo(&s, &d), ConvAlgo::OneByOneDb);
    let s = conv_shape(&[1, 8, 9, 9], &[4, 8, 1, 1], &d.with_stride(2, 2)).unwrap();
    assert_eq!(pick_algo(&s, &d.with_stride(2, 2)), ConvAlgo::GemmDb);
    let out = run1(|rec| {
        let x = up(&[1.0; 4], &[1, 1, 2, 2]);
        let w = up(&[1.0; 4], &[1, 1, 2, 2]);
        ops::conv2d(rec, &x, &w, None, &d, &Epilogue::default())
    });
    assert_eq!(out, vec![4.0]);
}

/// The GEMM kernels on shapes past one tile in every axis: pixels past 128, channels past 64 (two
/// 128-channel tiles, three 64-channel ones), reductions of hundreds with a partial last step,
/// groups, stride and dilation.
#[test]
fn gemm_kernels_on_many_tiles() {
    let mut rng = SplitMix::new(19);
    let d = Conv2dParams::default();
    let cases = [
        ConvCase {
            x: [2, 67, 20, 23],
            w: [130, 67, 3, 3],
            p: d.with_padding(1, 1),
            bias: true,
            affine: true,
            act: Activation::Elu,
        },
        ConvCase {
            x: [3, 12, 15, 17],
            w: [70, 6, 3, 2],
            p: d.with_groups(2).with_stride(2, 1).with_dilation(1, 2).with_padding(2, 0),
            bias: true,
            affine: false,
            act: Activation::Identity,
        },
        ConvCase { x: [4, 1, 36, 64], w: [64, 1, 9, 9], p: d, bias: true, affine: false, act: Activation::Identity },
    ];
    for c in &cases {
        check(c, &mut rng, &[ConvAlgo::GemmDb, ConvAlgo::GemmDbWide, ConvAlgo::Gemm]);
    }
    // 1x1 past one tile, with and without vec4 rows (H*W = 144 and 99).
    for (h, w) in [(16, 9), (9, 11)] {
        let c =
            ConvCase { x: [3, 70, h, w], w: [131, 70, 1, 1], p: d, bias: true, affine: true, act: Activation::Relu };
        check(&c, &mut rng, &[ConvAlgo::Auto, ConvAlgo::OneByOneDb, ConvAlgo::OneByOne, ConvAlgo::GemmDbWide]);
    }
}

/// Reductions longer than one invocation may loop on lavapipe (one counter of 65,535 iterations
/// for all its loops): a 300x300 depthwise kernel (90,000 taps per output) and implicit GEMMs with
/// C/G*KH*KW = 540,000 (67,500 steps of 8). Each splits its reduction
/// into parts within the recorder's loop budget (the other kernels' splits: on a lowered budget).
#[test]
fn reductions_past_the_loop_counter() {
    let mut rng = SplitMix::new(65_535);
    let d = Conv2dParams::default();
    let budget = crate::common::budget();
    let dw = ConvCase {
        x: [1, 2, 300, 300],
        w: [2, 1, 300, 300],
        p: d.with_groups(2).with_padding(1, 1),
        bias: true,
        affine: true,
        act: Activation::Identity,
    };
    let n = check_with(&dw, &mut rng, &[ConvAlgo::Auto], budget, 1e-4);
    assert!(n[0] > 1, "{n:?}");
    let gemm = ConvCase {
        x: [1, 60_000, 3, 3],
        w: [2, 60_000, 3, 3],
        p: d.with_padding(1, 1),
        bias: true,
        affine: true,
        act: Activation::Identity,
    };
    let n = check_with(&gemm, &mut rng, &[ConvAlgo::Auto], budget, 1e-4);
    assert!(n.iter().all(|&n| n > 1), "{n:?}");
}

/// Every kernel's split path on a lowered loop budget (16..64 iterations a dispatch): random
/// batches, groups, stride, dilation, padding, with and without bias, scale/shift and activation,
/// so that reductions run as one part, two, or many with a ragged last one (the GEMMs split K; the
/// depthwise kernels the kernel window into rows and columns), each compared with the reference.
#[test]
fn split_reductions_on_a_lowered_loop_budget() {
    use std::collections::HashMap;
    let mut rng = SplitMix::new(4242);
    let acts = [Activation::Identity, Activation::Relu, Activation::Elu, Activation::Gelu];
    let d = Conv2dParams::default();
    let mut most: HashMap<String, usize> = HashMap::new();
    let mut run = |c: ConvCase, algos: &[ConvAlgo], rng: &mut SplitMix| {
        let budget = rng.range(16, 64) as u64;
        for (a, n) in algos.iter().zip(check_with(&c, rng, algos, budget, 2e-5)) {
            let e = most.entry(format!("{a:?}")).or_default();
            *e = (*e).max(n);
        }
    };
    for i in 0..30 {
        let bias = rng.range(0, 1) == 1;
        let affine = rng.range(0, 2) == 0;
        let act = acts[rng.range(0, acts.len() - 1)];
        let n = rng.range(1, 2);
        let h = rng.range(1, 11);
        let w = rng.range(1, 11);
        let pad = [rng.range(0, 2), rng.range(0, 2), rng.range(0, 2), rng.range(0, 2)];
        let stride = [rng.range(1, 2), rng.range(1, 2)];
        let dil = [rng.range(1, 2), rng.range(1, 2)];
        let kmax = |len: usize, p0: usize, p1: usize, dl: usize, cap: usize| ((len + p0 + p1 - 1) / dl + 1).min(cap);
        match i % 3 {
            // Implicit GEMM: C/G*KH*KW up to 40 * 16, so 80 steps of 8.
            0 | 1 => {
                let g = rng.range(1, 3);
                let (cg, og) = (rng.range(1, 40), rng.range(1, 6));
                let kh = rng.range(1, kmax(h, pad[0], pad[1], dil[0], 4));
                let kw = rng.range(1, kmax(w, pad[2], pad[3], dil[1], 4));
                let p = Conv2dParams { stride, padding: pad, dilation: dil, groups: g, algo: ConvAlgo::Auto };
                let c = ConvCase { x: [n, g * cg, h, w], w: [g * og, cg, kh, kw], p, bias, affine, act };
                run(c, &[ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb], &mut rng);
            }
            // Depthwise, channel multiplier 1..4 (4: four channels an invocation in the tiled kernel).
            _ => {
                let ch = rng.range(1, 3);
                let mult = [1, 2, 4][rng.range(0, 2)];
                let (h, w) = (h + 4, w + 4);
                let kh = rng.range(1, kmax(h, pad[0], pad[1], dil[0], 9));
                let kw = rng.range(1, kmax(w, pad[2], pad[3], dil[1], 9));
                let tiled = i % 2 == 0;
                let (stride, dil) = if tiled { ([1, 1], [1, 1]) } else { (stride, dil) };
                let p = Conv2dParams { stride, padding: pad, dilation: dil, groups: ch, algo: ConvAlgo::Auto };
                let c = ConvCase { x: [n, ch, h, w], w: [ch * mult, 1, kh, kw], p, bias, affine, act };
                if tiled {
                    run(c, &[ConvAlgo::DepthwiseTiled, ConvAlgo::Depthwise], &mut rng);
                } else {
                    run(c, &[ConvAlgo::Depthwise], &mut rng);
                }
            }
        }
    }
    // 1x1 GEMMs with and without vec4 rows (H*W = 12 and 7), C/G*KH*KW = 1080 (135 steps: at least
    // three parts) with 128 channels a tile and 64, a kernel wider than the budget (columns split
    // too), a 16x16 tiled depthwise kernel (rows split).
    for (h, w) in [(3, 4), (7, 1)] {
        let c =
            ConvCase { x: [2, 1100, h, w], w: [5, 1100, 1, 1], p: d, bias: true, affine: true, act: Activation::Elu };
        run(c, &[ConvAlgo::OneByOne, ConvAlgo::OneByOneDb], &mut rng);
    }
    let c = ConvCase {
        x: [1, 120, 5, 6],
        w: [70, 120, 3, 3],
        p: d.with_padding(1, 1),
        bias: true,
        affine: false,
        act: Activation::Relu,
    };
    run(c, &[ConvAlgo::GemmDbWide, ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb], &mut rng);
    let c = ConvCase {
        x: [2, 2, 3, 80],
        w: [2, 1, 2, 70],
        p: d.with_groups(2).with_padding(0, 1),
        bias: true,
        affine: true,
        act: Activation::Identity,
    };
    run(c, &[ConvAlgo::Depthwise], &mut rng);
    let c = ConvCase {
        x: [1, 2, 20, 20],
        w: [8, 1, 16, 16],
        p: d.with_groups(2).with_padding(8, 7),
        bias: false,
        affine: true,
        act: Activation::Gelu,
    };
    run(c, &[ConvAlgo::DepthwiseTiled, ConvAlgo::Depthwise], &mut rng);
    // Every kernel ran split into first, middle and last parts at least once.
    for a in ["Auto", "Gemm", "GemmDb", "GemmDbWide", "OneByOne", "OneByOneDb", "Depthwise", "DepthwiseTiled"] {
        assert!(most.get(a).is_some_and(|&n| n >= 3), "{a}: at most {:?} parts", most.get(a));
    }
}

/// NaN and ±Inf in the input image reach exactly the outputs whose window covers them, as in
/// PyTorch (Inf·w + −Inf·w' is NaN), on every kernel and on the split paths (a loop budget of 16),
/// with a bias and Identity.
#[test]
fn nan_and_inf_in_the_input_propagate() {
    let mut rng = SplitMix::new(23);
    let d = Conv2dParams::default();
    let cases = [
        ([2, 3, 9, 10], [4, 3, 3, 3], d.with_padding(1, 1), vec![ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDbWide]),
        ([2, 3, 9, 10], [4, 3, 1, 1], d, vec![ConvAlgo::OneByOne, ConvAlgo::OneByOneDb]),
        ([2, 3, 8, 8], [4, 3, 1, 1], d, vec![ConvAlgo::OneByOne, ConvAlgo::OneByOneDb]),
        (
            [2, 3, 9, 10],
            [6, 1, 5, 3],
            d.with_groups(3).with_padding(2, 1),
            vec![ConvAlgo::Depthwise, ConvAlgo::DepthwiseTiled, ConvAlgo::GemmDb],
        ),
        (
            [2, 3, 9, 10],
            [3, 1, 3, 3],
            d.with_groups(3).with_stride(2, 1).with_dilation(1, 2),
            vec![ConvAlgo::Depthwise],
        ),
    ];
    for (xs, ws, p, algos) in cases {
        let mut xd = rng.vec(xs.iter().product(), -1.0, 1.0);
        let wd = rng.vec(ws.iter().product(), -1.0, 1.0);
        let bd = rng.vec(ws[0], -1.0, 1.0);
        let plane = xs[2] * xs[3];
        xd[2 * xs[3] + 3] = f32::NAN; // image 0, channel 0
        xd[plane * xs[1] + plane + 5 * xs[3] + 6] = f32::INFINITY; // image 1, channel 1
        xd[plane * xs[1] + plane + 5 * xs[3] + 7] = f32::NEG_INFINITY;
        let (want, _) =
            reference::conv2d(&xd, &xs, &wd, &ws, Some(&bd), &p, None, Activation::Identity).expect("a valid case");
        assert!(want.iter().any(|v| v.is_nan()) && want.iter().any(|v| v.is_finite()), "the reference keeps NaN");
        nan_case_on(&xd, xs, &wd, ws, &bd, p, &algos, &want);
    }
}

/// Every split pipeline of conv2d.wgsl at the full loop budget, against the reference (see matmul's
/// `split_pipelines_at_the_full_loop_budget`): the GEMMs with C/G*KH*KW = 30,000, more than one part
/// for each (13 to 19 counted iterations a step of 8), so the first part is as long as the host
/// allows, on 1x1 images (one workgroup; 2x2 for the vec4 loads) with 64 and 128 channels a tile;
/// the direct depthwise kernel on a 1 x 40,000 kernel (parts of 32,767 columns). The tiled
/// depthwise kernel runs at most 13 + 16 * 17 iterations (its capacities), so it splits only on a
/// lowered budget.
#[test]
fn split_pipelines_at_the_full_loop_budget() {
    let budget = crate::common::budget();
    let mut rng = SplitMix::new(2);
    let d = Conv2dParams::default();
    let c = |x, w| ConvCase { x, w, p: d, bias: false, affine: false, act: Activation::Identity };
    let k = 30_000;
    for (case, algos) in [
        (
            c([1, k, 1, 1], [2, k, 1, 1]),
            vec![ConvAlgo::Gemm, ConvAlgo::OneByOne, ConvAlgo::GemmDb, ConvAlgo::OneByOneDb],
        ),
        (c([1, k, 2, 2], [2, k, 1, 1]), vec![ConvAlgo::OneByOne, ConvAlgo::OneByOneDb]),
        // 12,500 steps: in one dispatch they ran past 65,535 iterations (9 to 10 a step).
        (c([1, 100_000, 1, 1], [65, 100_000, 1, 1]), vec![ConvAlgo::GemmDbWide]),
        (c([1, 1, 1, 40_000], [1, 1, 1, 40_000]), vec![ConvAlgo::Depthwise]),
    ] {
        let n = check_with(&case, &mut rng, &algos, budget, 1e-4);
        assert!(n.iter().all(|&n| n >= 2), "x{:?} w{:?} {algos:?}: {n:?} parts", case.x, case.w);
    }
    // The longest reductions that still run in one dispatch (steps of 8: the budget over 19 counted
    // iterations a step for conv2d_gemm, over 17 less the last pass for conv2d_db, over 15 for
    // conv2d_1x1, over 13 less the last pass for conv2d_1x1_db; 1724, 1926, 2184 and 2519 with the
    // trusted checks), and the direct depthwise kernel's longest row (KW + 1 <= budget), with bias,
    // scale/shift and activation: the normal pipelines at the most iterations the host gives them,
    // on the compile the suite runs (with all checks the driver unrolls less: checked there too).
    let b = budget as usize;
    let (gemm, db, one, one_db) = (b / 19, b / 17 - 1, b / 15, b / 13 - 1);
    if crate::common::trusted_checks() {
        assert_eq!((gemm, db, one, one_db), (1724, 1926, 2184, 2519), "the trusted compile's edges");
    }
    for (k, hw, algo) in [
        (gemm * 8, 1, ConvAlgo::Gemm),
        (db * 8, 1, ConvAlgo::GemmDb),
        (db * 8, 1, ConvAlgo::GemmDbWide),
        (one * 8, 1, ConvAlgo::OneByOne),
        (one_db * 8, 2, ConvAlgo::OneByOneDb),
    ] {
        let o = if algo == ConvAlgo::GemmDbWide { 65 } else { 2 };
        let (x, w) = ([1, k, hw, hw], [o, k, 1, 1]);
        let case = ConvCase { x, w, p: d, bias: true, affine: true, act: Activation::Elu };
        assert_eq!(check_with(&case, &mut rng, &[algo], budget, 1e-4), [1], "{algo:?} C = {k}");
    }
    let kw = b - 1;
    let case = ConvCase { x: [1, 1, 1, kw], w: [1, 1, 1, kw], p: d, bias: true, affine: true, act: Activation::Elu };
    assert_eq!(check_with(&case, &mut rng, &[ConvAlgo::Depthwise], budget, 1e-4), [1], "depthwise KW = {kw}");
}

/// ±Inf at the edges of partial tiles of the GEMMs: the input's last pixel of the last image and
/// channel (a partial 128-pixel tile, a partial step of 8 of K) and a weight of the last output
/// channel at the last k (a partial 64- and 128-channel tile). A tile padded past M, O/G or K that
/// held real data next to a zero (Inf·0 = NaN) would turn a finite output NaN; GPU and reference
/// must agree element by element (NaN, the same infinities, finite elsewhere), unsplit and split.
#[test]
fn infinities_at_partial_tile_edges() {
    let mut rng = SplitMix::new(29);
    let d = Conv2dParams::default();
    let gemm = [ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb, ConvAlgo::GemmDbWide];
    let one = [ConvAlgo::Auto, ConvAlgo::OneByOne, ConvAlgo::OneByOneDb, ConvAlgo::GemmDb];
    let cases = [
        ([1, 3, 12, 11], [70, 3, 3, 3], d.with_padding(1, 1), &gemm[..]),
        ([2, 4, 9, 10], [6, 2, 2, 3], d.with_groups(2).with_padding(0, 1), &gemm[..]),
        ([1, 5, 12, 12], [70, 5, 1, 1], d, &one[..]),
        ([1, 5, 11, 13], [70, 5, 1, 1], d, &one[..]),
    ];
    for (xs, ws, p, algos) in cases {
        let mut xd = rng.vec(xs.iter().product(), -1.0, 1.0);
        let mut wd = rng.vec(ws.iter().product(), -1.0, 1.0);
        let last = xd.len() - 1;
        xd[last] = f32::INFINITY; // last image, channel, row and column
        xd[last - xs[3] - 1] = f32::NEG_INFINITY; // the pixel up and left of it
        let wl = wd.len() - 1;
        wd[wl] = f32::INFINITY; // last output channel, last k
        let bd = rng.vec(ws[0], -1.0, 1.0);
        let (want, _) =
            reference::conv2d(&xd, &xs, &wd, &ws, Some(&bd), &p, None, Activation::Identity).expect("a valid case");
        assert!(want.iter().any(|v| !v.is_finite()) && want.iter().any(|v| v.is_finite()), "{xs:?} {ws:?}");
        nan_case_on(&xd, xs, &wd, ws, &bd, p, algos, &want);
    }
}

/// The conv of (x, w, b) on each of `algos`, whole and split on a loop budget of 16, against the
/// reference's `want` with NaN and infinities where it has them.
#[allow(clippy::too_many_arguments)]
fn nan_case_on(
    xd: &[f32],
    xs: [usize; 4],
    wd: &[f32],
    ws: [usize; 4],
    bd: &[f32],
    p: Conv2dParams,
    algos: &[ConvAlgo],
    want: &[f32],
) {
    let ctx = crate::common::ctx();
    let (x, w, b) = (up(xd, &xs), up(wd, &ws), up(bd, &[ws[0]]));
    for &algo in algos {
        for budget in [crate::common::budget(), 16] {
            let mut rec = ctx.recorder();
            rec.set_loop_budget(budget);
            let y = ops::conv2d(&mut rec, &x, &w, Some(&b), &p.with_algo(algo), &Epilogue::default()).unwrap();
            let what = format!("conv2d {algo:?} x{xs:?} w{ws:?} {p:?} budget {budget}: {:?}", rec.labels());
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
            crate::common::assert_close_nan(&got, want, 2e-5, 2e-4, &what);
        }
    }
}
