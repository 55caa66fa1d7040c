//! Activations (shaders/activation.wgsl), copy (shaders/copy.wgsl) and f16 casts
//! (shaders/cast_f16.wgsl) against the CPU reference.

use crate::common::{assert_close, ctx, run1, up};
use vcortex::ops::{self, Activation};
use vcortex::reference;
use vcortex::rng::SplitMix;
use vcortex::DType;

fn all_activations() -> Vec<Activation> {
    vec![
        Activation::Identity,
        Activation::Relu,
        Activation::Elu,
        Activation::Elu1,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softplus { beta: 1.0, threshold: 20.0 },
        Activation::Softplus { beta: 2.0, threshold: 5.0 },
        Activation::Softplus { beta: 0.5, threshold: 1.0 },
        Activation::Gelu,
        Activation::Silu,
        Activation::AdaptiveElu { xshift: 1.0, yshift: 1.0 },
        Activation::AdaptiveElu { xshift: -0.5, yshift: 2.0 },
        Activation::AdaptiveElu { xshift: 0.0, yshift: 0.0 },
    ]
}

/// AdaptiveELU is elu(x − xshift) + yshift (neuralpredictors' `AdaptiveELU`): with xshift 0 and
/// yshift 1 it is ELU+1, with both 0 plain ELU; NaN stays NaN, −inf gives yshift − 1, +inf +inf;
/// fused into linear's epilogue it is the same function.
#[test]
fn adaptive_elu_is_a_shifted_elu() {
    let xs = [-3.0f32, -1.0, -0.25, 0.0, 0.5, 1.0, 1.5, 4.0];
    let a = |xshift, yshift| Activation::AdaptiveElu { xshift, yshift };
    for (got, want) in [(a(0.0, 1.0), Activation::Elu1), (a(0.0, 0.0), Activation::Elu)] {
        let g = run1(|rec| ops::activation(rec, &up(&xs, &[xs.len()]), got));
        assert_close(&g, &reference::activation(&xs, want), 1e-6, 1e-6, &format!("{got:?} vs {want:?}"));
    }
    let by_hand: Vec<f32> = xs
        .iter()
        .map(|&x| {
            let s = x as f64 - 1.5;
            (if s > 0.0 { s } else { s.exp_m1() } - 0.75) as f32
        })
        .collect();
    assert_close(&reference::activation(&xs, a(1.5, -0.75)), &by_hand, 0.0, 1e-7, "reference by hand");
    let special = [f32::NAN, f32::NEG_INFINITY, f32::INFINITY, 1.5];
    let g = run1(|rec| ops::activation(rec, &up(&special, &[4]), a(1.5, -0.75)));
    crate::common::assert_close_nan(&g, &[f32::NAN, -1.75, f32::INFINITY, -0.75], 0.0, 1e-6, "special values");
    // Fused: linear's epilogue.
    let mut rng = SplitMix::new(21);
    let (rows, i, o) = (7, 33, 5);
    let (x, w, b) = (rng.vec(rows * i, -1.0, 1.0), rng.vec(o * i, -1.0, 1.0), rng.vec(o, -1.0, 1.0));
    let act = a(0.3, 1.0);
    let got = run1(|rec| ops::linear(rec, &up(&x, &[rows, i]), &up(&w, &[o, i]), Some(&up(&b, &[o])), act));
    let want = reference::linear(&x, &[rows, i], &w, &[o, i], Some(&b), act).unwrap().0;
    assert_close(&got, &want, 1e-5, 1e-5, "linear + adaptive_elu");
}

#[test]
fn every_activation_matches_the_reference() {
    let mut rng = SplitMix::new(3);
    // Ordinary values, exact zeros, large magnitudes (overflow of exp), tiny ones.
    let mut xs = rng.vec(1000, -8.0, 8.0);
    xs.extend([0.0, -0.0, 1e-7, -1e-7, 30.0, -30.0, 88.0, -88.0, 100.0, -100.0, 1e4, -1e4, 2.5, 10.0, 2.0]);
    for act in all_activations() {
        let want = reference::activation(&xs, act);
        let got = run1(|rec| ops::activation(rec, &up(&xs, &[xs.len()]), act));
        // docs/eval-format.md's elementwise tolerance.
        assert_close(&got, &want, 1e-4, 1e-4, &format!("{act:?}"));
        assert!(got.iter().all(|v| v.is_finite()), "{act:?} produced a non-finite value");
    }
}

#[test]
fn sizes_around_the_workgroup() {
    let mut rng = SplitMix::new(4);
    for n in [1usize, 2, 255, 256, 257, 511, 4099, 70001] {
        let xs = rng.vec(n, -3.0, 3.0);
        let got = run1(|rec| ops::activation(rec, &up(&xs, &[n]), Activation::Elu1));
        assert_close(&got, &reference::activation(&xs, Activation::Elu1), 1e-4, 1e-4, &format!("n={n}"));
    }
}

/// Past 65535 workgroups in x the dispatch folds into y; every element is still visited once.
#[test]
fn dispatch_past_the_per_dimension_limit() {
    let max = ctx().limits().max_compute_workgroups_per_dimension as usize;
    let n = max * 256 + 1000;
    if (n * 4) as u64 > ctx().max_tensor_bytes() {
        return; // cannot be expressed on this device
    }
    let xs: Vec<f32> = (0..n).map(|i| (i % 1013) as f32 - 500.0).collect();
    let got = run1(|rec| ops::activation(rec, &up(&xs, &[n]), Activation::Relu));
    for (i, (&g, &x)) in got.iter().zip(&xs).enumerate() {
        assert_eq!(g, x.max(0.0), "element {i}");
    }
}

#[test]
fn copy_is_exact_for_aligned_and_unaligned_sizes() {
    let mut rng = SplitMix::new(8);
    for n in [4usize, 7, 1024, 1027] {
        let xs = rng.vec(n, -1.0, 1.0);
        let got = run1(|rec| ops::copy(rec, &up(&xs, &[n])));
        assert_eq!(got, xs, "n={n}");
    }
}

#[test]
fn f16_storage_round_trips() {
    if !ctx().capabilities().shader_f16 {
        eprintln!("adapter has no shader-f16; f16 storage not tested");
        return;
    }
    let mut rng = SplitMix::new(9);
    for n in [1usize, 3, 256, 1001] {
        let xs = rng.vec(n, -100.0, 100.0);
        let want: Vec<f32> = xs.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect();
        let mut rec = ctx().recorder();
        let x = up(&xs, &[n]);
        let h = ops::cast(&mut rec, &x, DType::F16).unwrap();
        assert_eq!(h.dtype(), DType::F16);
        let back = ops::cast(&mut rec, &h, DType::F32).unwrap();
        let rh = rec.read_back(&h);
        let rb = rec.read_back(&back);
        let done = rec.submit().unwrap();
        assert_eq!(done.f32(rh), want, "f16 values, n={n}");
        assert_eq!(done.f32(rb), want, "widened back, n={n}");
        // Upload of f16 values directly.
        let halves: Vec<half::f16> = xs.iter().map(|&v| half::f16::from_f32(v)).collect();
        let t = vcortex::Tensor::from_f16(ctx(), &halves, &[n]).unwrap();
        assert_eq!(t.to_vec(ctx()).unwrap(), want);
    }
}
