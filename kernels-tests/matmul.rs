//! matmul and linear (shaders/matmul.wgsl) against the CPU reference.

use crate::common::{assert_close, assert_close_nan, is_param, run1, up};
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
        let (want, shape) = reference::matmul(&ad, &sa, &bd, &sb).unwrap();
        let batch = ba.iter().product::<usize>().max(bb.iter().product());
        let lead = if ba.is_empty() { &bb } else { &ba };
        assert_eq!(shape, [&lead[..], &[m, n]].concat(), "matmul {sa:?} x {sb:?}: shape");
        assert_eq!(want.len(), batch * m * n);
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
        let want = reference::linear(&xd, &[rows, i], &wd, &[o, i], bias.then_some(&bd[..]), act).unwrap().0;
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
            let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
            let mut rec = crate::common::ctx().recorder();
            let y = ops::matmul(&mut rec, &up(&ad, &[batch, m, k]), &up(&bd, &[batch, k, n])).unwrap();
            let label = rec.labels()[0].to_string();
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
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
        let want = reference::linear(&xd, &[rows, i], &wd, &[o, i], Some(&bd), Activation::Gelu).unwrap().0;
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
        let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
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
            let got = rec.submit().unwrap().f32(h);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{label} {batch}x{m}x{k}x{n}"));
        }
        // Transposed B: the double-buffered kernel's other loader.
        let bt = transposed(&bd, batch, k, n);
        let mut rec = ctx.recorder();
        let y = ops::matmul_nt(&mut rec, &a, &up(&bt, &[batch, n, k])).unwrap();
        assert!(rec.labels()[0].ends_with("matmul_db"), "{:?}", rec.labels());
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
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
            assert!(is_param(&e, "matmul", "kernel"), "{e:?}");
            assert!(e.to_string().contains("K % 4 == 0"), "{e}");
        }
    }
}

/// linear and matmul_nt with K = 70,000: longer than one invocation may loop on lavapipe (its loop
/// counter of 65,535 silently ended the dot product after the first 65,535 products), so the
/// reduction runs in chunks of at most the recorder's loop budget, bias on the last.
#[test]
fn reductions_past_the_loop_counter() {
    let mut rng = SplitMix::new(70_000);
    let (i, o) = (70_000, 3);
    let (xd, wd, bd) = (rng.vec(2 * i, -1.0, 1.0), rng.vec(o * i, -1.0, 1.0), rng.vec(o, -1.0, 1.0));
    for rows in [1, 2] {
        let want =
            reference::linear(&xd[..rows * i], &[rows, i], &wd, &[o, i], Some(&bd), Activation::Identity).unwrap().0;
        let mut rec = crate::common::ctx().recorder();
        let (x, w, b) = (up(&xd[..rows * i], &[rows, i]), up(&wd, &[o, i]), up(&bd, &[o]));
        let y = ops::linear(&mut rec, &x, &w, Some(&b), Activation::Identity).unwrap();
        let dispatches = rec.dispatch_count();
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
        assert_close(&got, &want, 1e-2, 1e-4, &format!("linear [{rows}, {i}] -> {o}"));
        assert_eq!(dispatches, i.div_ceil(crate::common::budget() as usize) + 1, "chunks and epilogue of linear");
    }
    // A·Bᵀ on the same data: x as [1, 2, K], W as [1, 3, K].
    let want = reference::linear(&xd, &[2, i], &wd, &[o, i], None, Activation::Identity).unwrap().0;
    let got = run1(|rec| ops::matmul_nt(rec, &up(&xd, &[1, 2, i]), &up(&wd, &[1, o, i])));
    assert_close(&got, &want, 1e-2, 1e-4, "matmul_nt [1, 2, 70000] x [1, 3, 70000]ᵀ");
}

/// Every kernel's split-K path on a lowered loop budget (16..64 iterations a dispatch): matmul with
/// B as [K, N] (also broadcast), matmul_nt, and linear layers with and without bias and activation,
/// on the dot kernel and every tiled one, with K in one chunk, in exactly two, and in many with a
/// ragged last chunk; each against the reference.
#[test]
fn split_k_on_a_lowered_loop_budget() {
    use ops::MatmulKernel::{self, DoubleBuffered, Scalar, Vec4};
    use std::collections::HashMap;
    let mut rng = SplitMix::new(99);
    let ctx = crate::common::ctx();
    let acts = [Activation::Identity, Activation::Relu, Activation::Gelu, Activation::Tanh];
    let mut most: HashMap<String, usize> = HashMap::new();
    // Runs one op on a recorder with the budget; returns the output and notes its chunk count.
    let mut run = |budget: u64, f: &dyn Fn(&mut vcortex::Recorder) -> vcortex::Result<vcortex::Tensor>| {
        let mut rec = ctx.recorder();
        rec.set_loop_budget(budget);
        let y = f(&mut rec).expect("a valid product refused");
        let labels: Vec<String> = rec.labels().iter().map(|l| l.to_string()).collect();
        let parts = labels.iter().filter(|l| !l.ends_with("_epilogue")).count();
        let e = most.entry(labels[0].clone()).or_default();
        *e = (*e).max(parts);
        let h = rec.read_back(&y);
        (rec.submit().unwrap().f32(h), format!("{labels:?}, budget {budget}"))
    };
    for i in 0..12 {
        let budget = rng.range(16, 64) as u64;
        let tiled = i % 2 == 1;
        // One loop iteration per product (dot) or per step of 8 (tiled).
        let chunk = budget as usize * if tiled { 8 } else { 1 };
        let aligned = i % 4 == 1;
        let mut k = match i % 3 {
            0 => rng.range(1, chunk),
            1 => 2 * chunk,
            _ => rng.range(2 * chunk + 1, 3 * chunk),
        };
        if aligned {
            k = k.div_ceil(4) * 4;
        } else if tiled {
            k |= 1; // no vec4 rows: the scalar kernel
        }
        let batch = if tiled { 8 } else { rng.range(1, 3) };
        let (m, mut n) = (rng.range(1, 40), rng.range(1, 40));
        if aligned {
            n = n.div_ceil(4) * 4;
        }
        let (ad, bd) = (rng.vec(batch * m * k, -1.0, 1.0), rng.vec(batch * k * n, -1.0, 1.0));
        let (a, b) = (up(&ad, &[batch, m, k]), up(&bd, &[batch, k, n]));
        let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
        let kernels: &[MatmulKernel] = match (tiled, aligned) {
            (false, _) => &[MatmulKernel::Auto],
            (true, false) => &[MatmulKernel::Auto, Scalar],
            (true, true) => &[MatmulKernel::Auto, Scalar, Vec4, DoubleBuffered],
        };
        for &kernel in kernels {
            let (got, what) = run(budget, &|rec| ops::matmul_with(rec, &a, &b, kernel));
            assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul {batch}x{m}x{k}x{n} {kernel:?}: {what}"));
        }
        let bt = up(&transposed(&bd, batch, k, n), &[batch, n, k]);
        let (got, what) = run(budget, &|rec| ops::matmul_nt(rec, &a, &bt));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul_nt {batch}x{m}x{k}x{n}: {what}"));
        // B broadcast: one [K, N] for every matrix of the batch.
        let want = reference::matmul(&ad, &[batch, m, k], &bd[..k * n], &[k, n]).unwrap().0;
        let (got, what) = run(budget, &|rec| ops::matmul(rec, &a, &up(&bd[..k * n], &[k, n])));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul {batch}x{m}x{k} x [{k}, {n}]: {what}"));
        // A linear layer on the same K: a few rows (dot) or 900 (8 tiles: tiled), bias and activation.
        let rows = if tiled { 900 } else { rng.range(1, 20) };
        let (xd, bias) = (rng.vec(rows * k, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let act = acts[rng.range(0, acts.len() - 1)];
        let with_bias = i % 4 < 2;
        let want =
            reference::linear(&xd, &[rows, k], &bd[..n * k], &[n, k], with_bias.then_some(&bias[..]), act).unwrap().0;
        let (x, w, bt) = (up(&xd, &[rows, k]), up(&bd[..n * k], &[n, k]), up(&bias, &[n]));
        let (got, what) = run(budget, &|rec| ops::linear(rec, &x, &w, with_bias.then_some(&bt), act));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("linear [{rows}, {k}] -> {n} {act:?}: {what}"));
    }
    // Every kernel ran in first, middle and last chunks at least once.
    for l in [
        "matmul/matmul_dot",
        "matmul/matmul",
        "matmul/matmul_vec4",
        "matmul/matmul_db",
        "matmul_nt/matmul_dot",
        "matmul_nt/matmul_db",
        "linear/matmul_dot",
        "linear/matmul",
    ] {
        assert!(most.get(l).is_some_and(|&n| n >= 3), "{l}: at most {:?} chunks ({most:?})", most.get(l));
    }
}

/// NaN and ±Inf in A (or x) reach the outputs they feed, as in PyTorch (NaN·0 and Inf·0 are NaN,
/// Inf + −Inf is NaN), on the dot kernel, the tiled ones and their split-K paths.
#[test]
fn nan_and_inf_propagate() {
    let mut rng = SplitMix::new(13);
    let ctx = crate::common::ctx();
    for (batch, m, k, n, budget) in
        [(1, 3, 20, 5, 32_768), (1, 3, 100, 5, 16), (8, 9, 24, 12, 32_768), (8, 9, 300, 12, 16)]
    {
        let mut ad = rng.vec(batch * m * k, -1.0, 1.0);
        let mut bd = rng.vec(batch * k * n, -1.0, 1.0);
        // Row 0: a NaN; row 1: +Inf where B's row has a zero (Inf·0 = NaN there); row 2: +Inf and
        // −Inf (Inf − Inf = NaN where B's rows agree in sign, else ±Inf).
        ad[1] = f32::NAN;
        ad[k + 2] = f32::INFINITY;
        bd[2 * n] = 0.0;
        ad[2 * k + 3] = f32::INFINITY;
        ad[2 * k + 4] = f32::NEG_INFINITY;
        let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
        assert!(want[..n].iter().all(|v| v.is_nan()), "the reference keeps NaN");
        assert!(want[n].is_nan() && want[n + 1].is_infinite(), "{:?}", &want[n..2 * n]);
        let (a, b) = (up(&ad, &[batch, m, k]), up(&bd, &[batch, k, n]));
        for kernel in [ops::MatmulKernel::Auto, ops::MatmulKernel::Scalar] {
            let mut rec = ctx.recorder();
            rec.set_loop_budget(budget);
            let y = ops::matmul_with(&mut rec, &a, &b, kernel).unwrap();
            let what = format!("matmul {batch}x{m}x{k}x{n} {kernel:?} {:?}", rec.labels());
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
            assert_close_nan(&got, &want, 1e-4, 1e-4, &what);
        }
        // linear with bias (Identity): the same rows of x.
        let w = transposed(&bd[..k * n], 1, k, n);
        let bias = rng.vec(n, -1.0, 1.0);
        let rows = batch * m;
        let want = reference::linear(&ad, &[rows, k], &w, &[n, k], Some(&bias), Activation::Identity).unwrap().0;
        let mut rec = ctx.recorder();
        rec.set_loop_budget(budget);
        let y =
            ops::linear(&mut rec, &up(&ad, &[rows, k]), &up(&w, &[n, k]), Some(&up(&bias, &[n])), Activation::Identity)
                .unwrap();
        let what = format!("linear [{rows}, {k}] -> {n} {:?}", rec.labels());
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
        assert_close_nan(&got, &want, 1e-4, 1e-4, &what);
    }
}

/// Every split-K pipeline of matmul.wgsl at the full loop budget, against the reference: K = 15,504
/// is more than one chunk for every tiled kernel (17 or 21 counted iterations a step of 8), so the
/// first chunk is as long as the host allows; for the dot kernel K = LOOP_BUDGET + 1. What the driver
/// unrolls, and so how many iterations a kernel's constant loops add, is a property of each
/// pipeline: this checks that the host's count covers each split one on lavapipe.
///
/// In the suite: the dot kernel, `matmul_db` and the transposed scalar kernel (seconds); the ignored
/// `every_pipeline_at_the_full_loop_budget` adds the rest (a minute on lavapipe).
#[test]
fn split_pipelines_at_the_full_loop_budget() {
    full_budget_checks(false);
}

#[test]
#[ignore = "a minute on lavapipe: run after changing shaders/matmul.wgsl"]
fn every_pipeline_at_the_full_loop_budget() {
    full_budget_checks(true);
}

fn full_budget_checks(all: bool) {
    let budget = crate::common::budget() as usize;
    let mut rng = SplitMix::new(1);
    let ctx = crate::common::ctx();
    // (batch, m, k, n): the dot kernel; the tiled ones (8 tiles), K a multiple of 4, and K odd.
    for (batch, m, k, n) in [(1, 2, budget + 1, 3), (8, 1, 15_504, 4), (8, 1, 15_505, 4)] {
        let (ad, bd) = (rng.vec(batch * m * k, -1.0, 1.0), rng.vec(batch * k * n, -1.0, 1.0));
        let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
        let (a, b) = (up(&ad, &[batch, m, k]), up(&bd, &[batch, k, n]));
        let bt = up(&transposed(&bd, batch, k, n), &[batch, n, k]);
        // A kernel for matmul, or None for matmul_nt (B transposed).
        let runs: &[Option<ops::MatmulKernel>] = match (batch, k % 4, all) {
            (1, _, _) => &[Some(ops::MatmulKernel::Auto), None],
            (_, 0, false) => &[Some(ops::MatmulKernel::DoubleBuffered)],
            (_, 0, true) => &[Some(ops::MatmulKernel::Vec4), Some(ops::MatmulKernel::DoubleBuffered), None],
            (_, _, false) => &[None],
            (_, _, true) => &[Some(ops::MatmulKernel::Scalar), None],
        };
        for kernel in runs {
            let mut rec = ctx.recorder();
            let y = match kernel {
                Some(kernel) => ops::matmul_with(&mut rec, &a, &b, *kernel).unwrap(),
                None => ops::matmul_nt(&mut rec, &a, &bt).unwrap(),
            };
            let what = format!("{batch}x{m}x{k}x{n} {:?}", rec.labels());
            assert!(rec.dispatch_count() >= 2, "{what}");
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
            assert_close(&got, &want, 1e-2, 1e-4, &what);
        }
    }
    // The longest reductions that still run in one dispatch (steps of 8: the budget over 17 counted
    // iterations a step for the scalar kernel, over 21 for the double-buffered one; 1927 and 1560
    // with the trusted checks, 240 and 195 with all of them), through a linear layer's bias and
    // activation: the normal pipelines at the most iterations the host gives them, on the compile
    // the suite runs (with all checks the driver unrolls less, so these edges are checked there too).
    let (scalar, db) = (budget / 17, budget / 21);
    if crate::common::trusted_checks() {
        assert_eq!((scalar, db), (1927, 1560), "the trusted compile's edges");
    }
    let longest: Vec<(usize, &str)> = if all || !crate::common::trusted_checks() {
        vec![(scalar * 8 - 1, "linear/matmul"), (db * 8, "linear/matmul_db")]
    } else {
        vec![(db * 8, "linear/matmul_db")]
    };
    for (k, entry) in longest {
        let (rows, o) = (900, 4);
        let (xd, wd, bd) = (rng.vec(rows * k, -1.0, 1.0), rng.vec(o * k, -1.0, 1.0), rng.vec(o, -1.0, 1.0));
        let want = reference::linear(&xd, &[rows, k], &wd, &[o, k], Some(&bd), Activation::Relu).unwrap().0;
        let mut rec = ctx.recorder();
        let y = ops::linear(&mut rec, &up(&xd, &[rows, k]), &up(&wd, &[o, k]), Some(&up(&bd, &[o])), Activation::Relu)
            .unwrap();
        assert_eq!(rec.labels(), [entry], "K = {k}");
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
        assert_close(&got, &want, 1e-2, 1e-4, &format!("{entry} K = {k}"));
    }
}

/// ±Inf at the edges of partial tiles: the last row of A (m = M - 1, in a partial 128 tile), the
/// last column of B (n = N - 1, partial tile) and the last k (in a partial step of 8, and at a
/// split chunk's end on a lowered budget). A tile padded past M, N or K that held real data next
/// to a zero (Inf·0 = NaN) would turn a finite output NaN; only the outputs the infinities feed
/// may be non-finite, exactly as in the reference. Every tiled kernel, B as [K, N] and as [N, K]
/// (matmul_nt and linear), unsplit and split.
#[test]
fn infinities_at_partial_tile_edges() {
    use ops::MatmulKernel::{Auto, DoubleBuffered, Scalar, Vec4};
    let mut rng = SplitMix::new(31);
    let ctx = crate::common::ctx();
    // (batch, m, k, n): 2 x 2 x 2 = 8 tiles (tiled, not dot); K odd (scalar) or aligned (vec4, db).
    for (batch, m, k, n) in [(2, 130, 21, 133), (2, 131, 20, 132)] {
        let mut ad = rng.vec(batch * m * k, -1.0, 1.0);
        let mut bd = rng.vec(batch * k * n, -1.0, 1.0);
        for bi in 0..batch {
            ad[(bi * m + m - 1) * k + k - 1] = f32::INFINITY; // last row, last k
            ad[(bi * m + m - 2) * k] = f32::NEG_INFINITY; // a row before it, first k
            bd[(bi * k + k - 1) * n + n - 1] = f32::INFINITY; // last k, last column
            bd[(bi * k + k - 1) * n + 3] = 0.0; // Inf·0: NaN at (m - 1, 3)
        }
        let want = reference::matmul(&ad, &[batch, m, k], &bd, &[batch, k, n]).unwrap().0;
        assert!(want.iter().any(|v| v.is_nan()) && want.iter().filter(|v| v.is_finite()).count() > m * n);
        let (a, b) = (up(&ad, &[batch, m, k]), up(&bd, &[batch, k, n]));
        let bt = up(&transposed(&bd, batch, k, n), &[batch, n, k]);
        let kernels: &[ops::MatmulKernel] = if k % 4 == 0 { &[Auto, Scalar, Vec4, DoubleBuffered] } else { &[Auto] };
        for budget in [crate::common::budget(), 16] {
            let mut runs: Vec<(String, Vec<f32>)> = Vec::new();
            for &kernel in kernels {
                let mut rec = ctx.recorder();
                rec.set_loop_budget(budget);
                let y = ops::matmul_with(&mut rec, &a, &b, kernel).unwrap();
                let what = format!("matmul {batch}x{m}x{k}x{n} {kernel:?} {:?}", rec.labels());
                let h = rec.read_back(&y);
                runs.push((what, rec.submit().unwrap().f32(h)));
            }
            let mut rec = ctx.recorder();
            rec.set_loop_budget(budget);
            let y = ops::matmul_nt(&mut rec, &a, &bt).unwrap();
            let what = format!("matmul_nt {batch}x{m}x{k}x{n} {:?}", rec.labels());
            let h = rec.read_back(&y);
            runs.push((what, rec.submit().unwrap().f32(h)));
            for (what, got) in runs {
                assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("{what}, budget {budget}"));
            }
            // linear: x [batch * m, K] through W [N, K] (3 x 2 tiles), bias and ReLU.
            let rows = batch * m;
            let w = transposed(&bd[..k * n], 1, k, n);
            let bias = rng.vec(n, -1.0, 1.0);
            let want = reference::linear(&ad, &[rows, k], &w, &[n, k], Some(&bias), Activation::Relu).unwrap().0;
            let mut rec = ctx.recorder();
            rec.set_loop_budget(budget);
            let (x, wt, bt) = (up(&ad, &[rows, k]), up(&w, &[n, k]), up(&bias, &[n]));
            let y = ops::linear(&mut rec, &x, &wt, Some(&bt), Activation::Relu).unwrap();
            let what = format!("linear [{rows}, {k}] -> {n} {:?}, budget {budget}", rec.labels());
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
            assert_close_nan(&got, &want, 1e-4, 1e-4, &what);
        }
    }
}

#[test]
fn matmul_references_refuse_as_the_ops_do() {
    use crate::common::{ctx, refused_length, refused_param, refused_shape};
    let d = vec![0.5f32; 24];
    let id = Activation::Identity;
    // A K that does not match, batch dims that neither equal nor broadcast: op and reference alike.
    refused_shape(reference::matmul(&d[..12], &[3, 4], &d[..15], &[5, 3]), "matmul", "b");
    refused_shape(ops::matmul(&mut ctx().recorder(), &up(&d[..12], &[3, 4]), &up(&d[..15], &[5, 3])), "matmul", "b");
    refused_shape(reference::matmul(&d, &[2, 3, 4], &d, &[3, 4, 2]), "matmul", "b");
    refused_length(reference::matmul(&d[..11], &[3, 4], &d[..8], &[4, 2]), "matmul", "a");
    // linear: a weight whose I differs, a bias of the wrong width, data that does not fill its shape.
    refused_shape(reference::linear(&d, &[4, 6], &d[..10], &[2, 5], None, id), "linear", "weight");
    let w = up(&d[..10], &[2, 5]);
    refused_shape(ops::linear(&mut ctx().recorder(), &up(&d, &[4, 6]), &w, None, id), "linear", "weight");
    refused_shape(reference::linear(&d, &[4, 6], &d[..12], &[2, 6], Some(&d[..3]), id), "linear", "bias");
    refused_length(reference::linear(&d[..23], &[4, 6], &d[..12], &[2, 6], None, id), "linear", "input");
    // softmax: a non-finite scale; attention: heads that do not divide E, q that does not fill [B, F, E].
    refused_param(reference::matmul::softmax(&d, &[4, 6], f32::NAN), "softmax", "scale");
    refused_param(ops::softmax(&mut ctx().recorder(), &up(&d, &[4, 6]), f32::NAN), "softmax", "scale");
    refused_param(reference::matmul::attention(&d, &d, &d, &[2, 3, 4], 3), "attention", "heads");
    refused_length(reference::matmul::attention(&d[..20], &d, &d, &[2, 3, 4], 2), "attention", "q");
    // The shapes they give back are the ops'.
    let (_, s) = reference::linear(&d, &[2, 2, 6], &d[..12], &[2, 6], None, id).unwrap();
    assert_eq!(s, [2, 2, 2]);
}
