//! Philox-4x32-10 (shaders/random.wgsl) against the CPU reference: uniforms bit-identical,
//! Box–Muller normals equal up to float rounding, distinct streams, sane moments.

use crate::common::{assert_close, run1};
use vcortex::ops;
use vcortex::reference::random;

#[test]
fn uniforms_are_bit_identical_to_the_cpu() {
    for (n, seed, offset) in
        [(1usize, 0u64, 0u64), (7, 42, 0), (1001, 42, 1), (4096, u64::MAX, u64::MAX - 3), (70_003, 1 << 40, 123)]
    {
        let got = run1(|rec| ops::random_uniform(rec, &[n], seed, offset));
        let want = random::uniform(seed, offset, n);
        assert_eq!(got.len(), n);
        for i in 0..n {
            assert_eq!(got[i].to_bits(), want[i].to_bits(), "element {i} of (seed {seed}, offset {offset})");
        }
        assert!(got.iter().all(|&u| u > 0.0 && u <= 1.0));
    }
}

#[test]
fn normals_match_the_cpu_and_look_normal() {
    let n = 100_003;
    let got = run1(|rec| ops::random_normal(rec, &[n], 7, 3));
    let want = random::normal(7, 3, n);
    assert_close(&got, &want, 2e-5, 2e-5, "normals");
    let mean = got.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = got.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.02, "mean {mean}, var {var}");
    // Streams differ by seed and by offset; the same stream repeats.
    let a = run1(|rec| ops::random_normal(rec, &[64], 7, 4));
    let b = run1(|rec| ops::random_normal(rec, &[64], 8, 3));
    assert_ne!(a[..], got[..64]);
    assert_ne!(b[..], got[..64]);
    assert_eq!(run1(|rec| ops::random_normal(rec, &[64], 7, 3))[..], got[..64]);
}
