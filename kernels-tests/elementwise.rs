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
    ]
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
