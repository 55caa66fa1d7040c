//! Max and average pooling (shaders/pool.wgsl) against the CPU reference: random and awkward
//! shapes (odd sizes, 1-wide, windows past the borders, ceil_mode windows starting in the
//! padding, many channels), windows longer than the loop budget, NaN, and refusals by name.

use crate::common::{assert_close, assert_close_nan, ctx, refused_param, refused_shape, run1, up};
use vcortex::ops::{self, Pool2dParams};
use vcortex::reference;
use vcortex::rng::SplitMix;

/// GPU against the reference for both kinds (max where `max`, avg with both count_include_pad).
fn check(rng: &mut SplitMix, shape: [usize; 4], p: Pool2dParams, budget: Option<u64>) {
    let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
    let (want, ws) = reference::max_pool2d(&xd, &shape, &p).unwrap();
    let got = run1(|rec| {
        if let Some(b) = budget {
            rec.set_loop_budget(b);
        }
        let y = ops::max_pool2d(rec, &up(&xd, &shape), &p)?;
        assert_eq!(y.shape(), &ws[..]);
        Ok(y)
    });
    // Max picks one of its inputs: exact.
    assert_close(&got, &want, 0.0, 0.0, &format!("max_pool2d {shape:?} {p:?} budget {budget:?}"));
    if p.dilation != [1, 1] {
        return;
    }
    for count_include_pad in [true, false] {
        for divisor_override in [None, Some(3)] {
            let q = Pool2dParams { count_include_pad, divisor_override, ..p };
            let (want, _) = reference::avg_pool2d(&xd, &shape, &q).unwrap();
            let got = run1(|rec| {
                if let Some(b) = budget {
                    rec.set_loop_budget(b);
                }
                ops::avg_pool2d(rec, &up(&xd, &shape), &q)
            });
            // An f32 running sum over the window: its error grows about with the root of its taps.
            let rtol = 1e-5 * ((p.kernel[0] * p.kernel[1]) as f64).sqrt().max(1.0);
            assert_close(&got, &want, 1e-5, rtol, &format!("avg_pool2d {shape:?} {q:?} budget {budget:?}"));
        }
    }
}

#[test]
fn pooling_matches_the_reference_on_awkward_shapes() {
    let mut rng = SplitMix::new(71);
    let sq = Pool2dParams::square;
    for (shape, p) in [
        ([2, 3, 8, 8], sq(2)),                                                        // VGG's 2x2 / 2
        ([1, 2, 7, 9], sq(2)), // odd sizes drop the last row, column
        ([1, 2, 7, 9], Pool2dParams { ceil_mode: true, ..sq(2) }), // ... or keep them (ceil)
        ([2, 1, 5, 5], Pool2dParams { ceil_mode: true, ..sq(2) }.with_padding(1, 1)), // ceil windows starting in padding
        ([1, 3, 6, 6], Pool2dParams { ceil_mode: true, ..sq(3) }.with_stride(2, 2).with_padding(1, 1)),
        ([1, 1, 1, 1], sq(1)),                                    // 1x1
        ([1, 2, 1, 9], Pool2dParams { kernel: [1, 3], ..sq(1) }), // 1-high
        ([1, 2, 9, 1], Pool2dParams { kernel: [3, 1], ..sq(1) }.with_stride(1, 1)),
        ([1, 2, 10, 11], sq(3).with_stride(1, 2).with_padding(1, 0)), // overlapping windows, asymmetric stride
        ([1, 2, 10, 11], sq(3).with_stride(2, 1).with_dilation(2, 3)), // dilated (max only)
        ([1, 1, 12, 12], Pool2dParams { ceil_mode: true, ..sq(5).with_stride(4, 3).with_padding(2, 2) }),
        ([2, 300, 5, 6], sq(2)),                                    // many channels
        ([1, 1, 3, 4], sq(3).with_stride(1, 1).with_padding(1, 1)), // every window crosses the border
        ([1, 4, 17, 33], Pool2dParams { kernel: [4, 6], ..sq(1) }.with_stride(3, 5).with_padding(2, 3)),
    ] {
        check(&mut rng, shape, p, None);
    }
    // Random shapes and parameters.
    for _ in 0..24 {
        let kernel = [rng.range(1, 5), rng.range(1, 5)];
        let padding = [rng.range(0, kernel[0] / 2), rng.range(0, kernel[1] / 2)];
        let dilation = if rng.range(0, 2) == 0 { [rng.range(1, 3), rng.range(1, 3)] } else { [1, 1] };
        let stride = if rng.range(0, 2) == 0 { None } else { Some([rng.range(1, 4), rng.range(1, 4)]) };
        let ext = [(kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1];
        let h = rng.range(ext[0].saturating_sub(2 * padding[0]).max(1), 20);
        let w = rng.range(ext[1].saturating_sub(2 * padding[1]).max(1), 20);
        let p =
            Pool2dParams { kernel, stride, padding, dilation, ceil_mode: rng.range(0, 1) == 1, ..Default::default() };
        let shape = [rng.range(1, 2), rng.range(1, 5), h, w];
        check(&mut rng, shape, p, None);
    }
}

/// Windows of more taps than the loop budget: walked in ranges of taps, one dispatch each (first,
/// middle, ragged last), against the reference; and the real 65,536-tap window.
#[test]
fn pooling_long_windows_in_ranges() {
    let mut rng = SplitMix::new(72);
    for _ in 0..8 {
        let budget = rng.range(16, 40) as u64;
        let kernel = [rng.range(4, 9), rng.range(4, 9)];
        let padding = [rng.range(0, kernel[0] / 2), rng.range(0, kernel[1] / 2)];
        let p = Pool2dParams { kernel, padding, ceil_mode: true, ..Default::default() }.with_stride(2, 3);
        let shape = [1, 2, rng.range(kernel[0], 20), rng.range(kernel[1], 20)];
        check(&mut rng, shape, p, Some(budget));
    }
    let mut rec = ctx().recorder();
    rec.set_loop_budget(16);
    let x = up(&[0.5; 2 * 8 * 8], &[1, 2, 8, 8]);
    ops::max_pool2d(&mut rec, &x, &Pool2dParams::square(8)).unwrap();
    assert_eq!(rec.labels(), vec!["max_pool2d/taps"; 4]);

    // A global pool over 256 x 256 = 65,536 taps (past lavapipe's 65,535 iterations).
    let shape = [1, 2, 256, 256];
    check(&mut rng, shape, Pool2dParams::square(256), None);
}

#[test]
fn max_pooling_keeps_nan_and_infinities() {
    let mut x = vec![1.0f32; 16];
    x[5] = f32::NAN; // window (0, 0) of a 2x2 / 2 pool over 4x4
    x[2] = f32::INFINITY; // window (0, 1)
    x[10] = f32::NEG_INFINITY; // window (1, 1) still has finite values
    x[12] = f32::NAN;
    x[13] = 7.0; // window (1, 0): NaN after a larger value stays NaN
    let shape = [1, 1, 4, 4];
    let p = Pool2dParams::square(2);
    let (want, _) = reference::max_pool2d(&x, &shape, &p).unwrap();
    assert!(want[0].is_nan() && want[1] == f32::INFINITY && want[2].is_nan() && want[3] == 1.0);
    for budget in [None, Some(16)] {
        let got = run1(|rec| {
            if let Some(b) = budget {
                rec.set_loop_budget(b);
            }
            ops::max_pool2d(rec, &up(&x, &shape), &p)
        });
        assert_close_nan(&got, &want, 0.0, 0.0, "max_pool2d with NaN");
        let (wa, _) = reference::avg_pool2d(&x, &shape, &p).unwrap();
        let ga = run1(|rec| ops::avg_pool2d(rec, &up(&x, &shape), &p));
        assert_close_nan(&ga, &wa, 1e-6, 1e-6, "avg_pool2d with NaN");
    }
    // A window of -inf only gives -inf.
    let y = run1(|rec| ops::max_pool2d(rec, &up(&[f32::NEG_INFINITY; 4], &[1, 1, 2, 2]), &p));
    assert_eq!(y, vec![f32::NEG_INFINITY]);
}

#[test]
fn pooling_refuses_bad_parameters_by_name() {
    let x = up(&[1.0; 2 * 4 * 4], &[1, 2, 4, 4]);
    let mut rec = ctx().recorder();
    let sq = Pool2dParams::square;
    for (p, name) in [
        (sq(0), "kernel"),
        (sq(2).with_stride(0, 1), "stride"),
        (sq(2).with_dilation(1, 0), "dilation"),
        (sq(2).with_padding(2, 0), "padding"), // more than half the kernel
        (Pool2dParams { kernel: [1 << 21, 1], ..sq(1) }, "kernel"),
        (Pool2dParams { divisor_override: Some(2), ..sq(2) }, "divisor_override"), // max has no divisor
    ] {
        refused_param(ops::max_pool2d(&mut rec, &x, &p), "max_pool2d", name);
        let _ = reference::max_pool2d(&[1.0; 32], &[1, 2, 4, 4], &p).expect_err("the reference refuses too");
    }
    refused_param(ops::avg_pool2d(&mut rec, &x, &sq(2).with_dilation(2, 2)), "avg_pool2d", "dilation");
    refused_param(
        ops::avg_pool2d(&mut rec, &x, &Pool2dParams { divisor_override: Some(0), ..sq(2) }),
        "avg_pool2d",
        "divisor_override",
    );
    // A kernel larger than the padded input, a 3-D input.
    refused_shape(ops::max_pool2d(&mut rec, &x, &sq(5)), "max_pool2d", "input");
    refused_shape(ops::avg_pool2d(&mut rec, &up(&[1.0; 16], &[1, 4, 4]), &sq(2)), "avg_pool2d", "input");
    assert_eq!(rec.dispatch_count(), 0, "nothing recorded for refused input");
}
