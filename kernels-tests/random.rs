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

/// Row r of `random_normal_rows` is stream (seed, offset + r) from element 0, whatever the rows
/// drawn with it: odd and 1-wide rows, a single row, the offset's carry into its high word and its
/// wrap at 2^64; scaled; refusals by name.
#[test]
fn normal_rows_are_one_stream_per_row() {
    for (rows, len, seed, offset) in [
        (1usize, 1usize, 0u64, 0u64),
        (5, 7, 3, 0),
        (3, 1, 9, 11),
        (4, 4, 1, u32::MAX as u64 - 1),
        (3, 13, 2, u64::MAX),
    ] {
        let got = run1(|rec| ops::random_normal_rows(rec, rows, len, seed, offset, 1.0));
        let want = random::normal_rows(seed, offset, rows, len);
        assert_eq!(got.len(), rows * len);
        assert_close(&got, &want, 2e-5, 2e-5, &format!("rows {rows}×{len} offset {offset}"));
        for r in 0..rows {
            let one = run1(|rec| ops::random_normal(rec, &[len], seed, offset.wrapping_add(r as u64)));
            assert_eq!(got[r * len..(r + 1) * len], one[..], "row {r} is its own stream");
        }
    }
    let got = run1(|rec| ops::random_normal_rows(rec, 2, 5, 4, 6, 0.5));
    let want: Vec<f32> = random::normal_rows(4, 6, 2, 5).iter().map(|v| 0.5 * v).collect();
    assert_close(&got, &want, 2e-5, 2e-5, "scaled rows");
    let mut rec = crate::common::ctx().recorder();
    crate::common::refused_shape(ops::random_normal_rows(&mut rec, 0, 3, 0, 0, 1.0), "random_normal_rows", "shape");
    crate::common::refused_param(
        ops::random_normal_rows(&mut rec, 2, 3, 0, 0, f32::NAN),
        "random_normal_rows",
        "scale",
    );
}
