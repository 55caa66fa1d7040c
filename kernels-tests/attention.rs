//! Softmax, A·Bᵀ and multi-head attention (shaders/attention.wgsl + matmul) against the reference.

use crate::common::{assert_close, ctx, run1, up};
use vcortex::ops;
use vcortex::reference::matmul as rm;
use vcortex::rng::SplitMix;

#[test]
fn softmax_rows_of_any_length_and_magnitude() {
    let mut rng = SplitMix::new(81);
    for (rows, len, scale) in [(1usize, 1usize, 1.0f32), (7, 61, 0.125), (3, 300, 1.0), (2, 1000, 30.0)] {
        let x = rng.vec(rows * len, -5.0, 5.0);
        let got = run1(|rec| ops::softmax(rec, &up(&x, &[rows, len]), scale));
        assert_close(&got, &rm::softmax(&x, len, scale), 1e-6, 1e-4, &format!("softmax {rows}x{len} scale {scale}"));
        for r in got.chunks(len) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}

#[test]
fn matmul_nt_matches() {
    let mut rng = SplitMix::new(82);
    for (b, m, n, k) in [(1usize, 1usize, 1usize, 1usize), (3, 17, 13, 8), (2, 130, 61, 33)] {
        let (a, bt) = (rng.vec(b * m * k, -1.0, 1.0), rng.vec(b * n * k, -1.0, 1.0));
        // B transposed to [K, N] per batch for the reference.
        let mut bk = vec![0f32; b * k * n];
        for bi in 0..b {
            for i in 0..n {
                for j in 0..k {
                    bk[bi * k * n + j * n + i] = bt[bi * n * k + i * k + j];
                }
            }
        }
        let want = rm::matmul(&a, &bk, b, m, k, n, m * k, k * n);
        let got = run1(|rec| ops::matmul_nt(rec, &up(&a, &[b, m, k]), &up(&bt, &[b, n, k])));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul_nt {b}x{m}x{n}x{k}"));
    }
}

#[test]
fn multi_head_attention() {
    let mut rng = SplitMix::new(83);
    for (b, f, e, heads) in [(1usize, 1usize, 4usize, 1usize), (2, 61, 32, 4), (3, 7, 12, 3)] {
        let (q, k, v) = (rng.vec(b * f * e, -1.0, 1.0), rng.vec(b * f * e, -1.0, 1.0), rng.vec(b * f * e, -1.0, 1.0));
        let want = rm::attention(&q, &k, &v, b, f, e, heads);
        let got = run1(|rec| ops::attention(rec, &up(&q, &[b, f, e]), &up(&k, &[b, f, e]), &up(&v, &[b, f, e]), heads));
        assert_close(&got, &want, 1e-5, 1e-4, &format!("attention b {b} f {f} e {e} heads {heads}"));
    }
    let x = up(&[0.0; 24], &[1, 2, 12]);
    assert!(ops::attention(&mut ctx().recorder(), &x, &x, &x, 5).is_err());
    assert!(ops::attention(&mut ctx().recorder(), &x, &x, &up(&[0.0; 12], &[1, 1, 12]), 3).is_err());
}
