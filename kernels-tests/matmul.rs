//! matmul and linear (shaders/matmul.wgsl) against the CPU reference.

use crate::common::{assert_close, run1, up};
use vcortex::ops::{self, Activation};
use vcortex::reference;
use vcortex::rng::SplitMix;

/// Each [k, n] matrix of a batch as [n, k].
fn transposed(b: &[f32], batch: usize, k: usize, n: usize) -> Vec<f32> {
    let mut t = vec![0f32; batch * n * k];
    for bi in 0..batch {
        for i in 0..k {
            for j in 0..n {
                t[(bi * n + j) * k + i] = b[(bi * k + i) * n + j];
            }
        }
    }
    t
}

#[test]
fn matmul_random_and_awkward_shapes() {
    let mut rng = SplitMix::new(5);
    // (batch dims of a, batch dims of b, m, k, n)
    let mut shapes: Vec<(Vec<usize>, Vec<usize>, usize, usize, usize)> = vec![
        (vec![], vec![], 1, 1, 1),
        (vec![], vec![], 1, 7, 1),
        (vec![], vec![], 130, 9, 257), // past one 128 tile on both sides
        (vec![], vec![], 3, 300, 5),   // long reduction, k not a multiple of 8
        (vec![4], vec![4], 17, 13, 19),
        (vec![2, 3], vec![2, 3], 5, 8, 6),
        (vec![3], vec![], 33, 12, 7), // b broadcast
        (vec![], vec![2], 6, 5, 129), // a broadcast
        // vec4 loads (K and N multiples of 4), partial tiles on every side.
        (vec![], vec![], 131, 12, 132),
        (vec![], vec![], 1, 4, 4),
        (vec![3], vec![], 7, 20, 8),
        (vec![], vec![2], 129, 36, 260),
    ];
    for _ in 0..12 {
        let b = rng.range(1, 3);
        shapes.push((vec![b], vec![b], rng.range(1, 70), rng.range(1, 40), rng.range(1, 150)));
    }
    for (ba, bb, m, k, n) in shapes {
        let sa: Vec<usize> = ba.iter().copied().chain([m, k]).collect();
        let sb: Vec<usize> = bb.iter().copied().chain([k, n]).collect();
        let (na, nb): (usize, usize) = (sa.iter().product(), sb.iter().product());
        let (ad, bd) = (rng.vec(na, -1.0, 1.0), rng.vec(nb, -1.0, 1.0));
        let batch = ba.iter().product::<usize>().max(bb.iter().product());
        let want = reference::matmul(
            &ad,
            &bd,
            batch,
            m,
            k,
            n,
            if ba.is_empty() { 0 } else { m * k },
            if bb.is_empty() { 0 } else { k * n },
        );
        let got = run1(|rec| ops::matmul(rec, &up(&ad, &sa), &up(&bd, &sb)));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul {sa:?} x {sb:?}"));
    }
}

#[test]
fn linear_with_bias_and_activation() {
    let mut rng = SplitMix::new(6);
    for (lead, i, o, bias, act) in [
        (vec![7], 13, 5, true, Activation::Identity),
        (vec![2, 3], 9, 4, false, Activation::Relu),
        (vec![1], 1, 1, true, Activation::Identity),
        (vec![200], 64, 130, true, Activation::Gelu),
        (vec![3, 1, 5], 129, 3, true, Activation::Tanh),
    ] {
        let sx: Vec<usize> = lead.iter().copied().chain([i]).collect();
        let rows: usize = lead.iter().product();
        let (xd, wd, bd) = (rng.vec(rows * i, -1.0, 1.0), rng.vec(o * i, -1.0, 1.0), rng.vec(o, -1.0, 1.0));
        let want = reference::linear(&xd, rows, i, &wd, o, bias.then_some(&bd[..]), act);
        let got = run1(|rec| {
            let b = up(&bd, &[o]);
            let y = ops::linear(rec, &up(&xd, &sx), &up(&wd, &[o, i]), bias.then_some(&b), act)?;
            let mut want_shape = lead.clone();
            want_shape.push(o);
            assert_eq!(y.shape(), &want_shape[..]);
            Ok(y)
        });
        assert_close(&got, &want, 1e-4, 1e-4, &format!("linear {sx:?} -> {o}"));
    }
}

/// The tiled kernels and the dot-product kernel (products of fewer than `DOT_MAX_TILES` tiles) on
/// the same awkward shapes: a batch of `DOT_MAX_TILES` takes the tiled path, one matrix the dot
/// path; matmul, A·Bᵀ and linear layers with bias and activation, both against the reference.
#[test]
fn tiled_and_dot_paths_agree() {
    let mut rng = SplitMix::new(7);
    let tiled = ops::matmul::DOT_MAX_TILES;
    for (m, k, n) in [(1usize, 1usize, 1usize), (3, 300, 5), (130, 9, 257), (17, 12, 20), (1, 512, 512), (61, 33, 61)] {
        for batch in [1, tiled] {
            let (ad, bd) = (rng.vec(batch * m * k, -1.0, 1.0), rng.vec(batch * k * n, -1.0, 1.0));
            let want = reference::matmul(&ad, &bd, batch, m, k, n, m * k, k * n);
            let mut rec = crate::common::ctx().recorder();
            let y = ops::matmul(&mut rec, &up(&ad, &[batch, m, k]), &up(&bd, &[batch, k, n])).unwrap();
            let label = rec.labels()[0].to_string();
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h, &y);
            let tiles = batch * m.div_ceil(128) * n.div_ceil(128);
            assert_eq!(label.ends_with("matmul_dot"), tiles < tiled, "{label} for {tiles} tiles");
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{label} {batch}x{m}x{k}x{n}"));
            // A·Bᵀ on the same data (B read as [batch, n, k]).
            let bt = transposed(&bd, batch, k, n);
            let got = run1(|rec| ops::matmul_nt(rec, &up(&ad, &[batch, m, k]), &up(&bt, &[batch, n, k])));
            assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul_nt {batch}x{m}x{k}x{n}"));
        }
    }
    // Linear layers: few rows (dot) and 1100 rows (9 row tiles: tiled), bias and GELU.
    for rows in [5usize, 1100] {
        let (i, o) = (37, 23);
        let (xd, wd, bd) = (rng.vec(rows * i, -1.0, 1.0), rng.vec(o * i, -1.0, 1.0), rng.vec(o, -1.0, 1.0));
        let want = reference::linear(&xd, rows, i, &wd, o, Some(&bd), Activation::Gelu);
        let got = run1(|rec| {
            ops::linear(rec, &up(&xd, &[rows, i]), &up(&wd, &[o, i]), Some(&up(&bd, &[o])), Activation::Gelu)
        });
        assert_close(&got, &want, 1e-4, 1e-4, &format!("linear {rows} rows"));
    }
}

/// Every tiled kernel (`Scalar`, `Vec4`, `DoubleBuffered`) on products of at least `DOT_MAX_TILES`
/// tiles, so none falls to the dot kernel: partial tiles on every side, K a multiple of 4 but not of
/// 8 (a half step), K = 4 (one step), long reductions; B as [K, N] and transposed (matmul_nt), and
/// the kernels that do not fit a shape refused by name.
#[test]
fn every_tiled_kernel_on_many_tiles() {
    use ops::MatmulKernel::{self, DoubleBuffered, Scalar, Vec4};
    let mut rng = SplitMix::new(8);
    let ctx = crate::common::ctx();
    for (batch, m, k, n) in
        [(8, 1, 4, 4), (8, 130, 12, 132), (1, 300, 20, 388), (2, 257, 36, 260), (8, 17, 300, 8), (1, 1100, 4, 1000)]
    {
        let (ad, bd) = (rng.vec(batch * m * k, -1.0, 1.0), rng.vec(batch * k * n, -1.0, 1.0));
        let want = reference::matmul(&ad, &bd, batch, m, k, n, m * k, k * n);
        let (a, b) = (up(&ad, &[batch, m, k]), up(&bd, &[batch, k, n]));
        for kernel in [MatmulKernel::Auto, Scalar, Vec4, DoubleBuffered] {
            let mut rec = ctx.recorder();
            let y = ops::matmul_with(&mut rec, &a, &b, kernel).unwrap();
            let label = rec.labels()[0].to_string();
            assert!(!label.ends_with("matmul_dot"), "{label}");
            if matches!(kernel, MatmulKernel::Auto | DoubleBuffered) {
                assert!(label.ends_with("matmul_db"), "{kernel:?} ran {label}");
            }
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h, &y);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{label} {batch}x{m}x{k}x{n}"));
        }
        // Transposed B: the double-buffered kernel's other loader.
        let bt = transposed(&bd, batch, k, n);
        let mut rec = ctx.recorder();
        let y = ops::matmul_nt(&mut rec, &a, &up(&bt, &[batch, n, k])).unwrap();
        assert!(rec.labels()[0].ends_with("matmul_db"), "{:?}", rec.labels());
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h, &y);
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul_nt db {batch}x{m}x{k}x{n}"));
    }
    // K = 13 or N = 6: no vec4 rows, so Auto takes the scalar kernel and the vec4 ones are refused.
    for (k, n) in [(13, 8), (8, 6)] {
        let (a, b) = (up(&vec![0.5; 8 * 130 * k], &[8, 130, k]), up(&vec![0.5; 8 * k * n], &[8, k, n]));
        let mut rec = ctx.recorder();
        ops::matmul(&mut rec, &a, &b).unwrap();
        assert_eq!(rec.labels()[0], "matmul/matmul");
        for kernel in [Vec4, DoubleBuffered] {
            let e = ops::matmul_with(&mut rec, &a, &b, kernel).err().expect("a vec4 kernel took unaligned rows");
            assert!(e.to_string().contains("K % 4 == 0"), "{e}");
        }
    }
}
