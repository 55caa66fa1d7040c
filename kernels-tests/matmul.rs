//! matmul and linear (shaders/matmul.wgsl) against the CPU reference.

use crate::common::{assert_close, run1, up};
use vcortex::ops::{self, Activation};
use vcortex::reference;
use vcortex::rng::SplitMix;

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
