//! batch_norm and layer_norm (shaders/norm.wgsl) against the CPU reference.

use crate::common::{assert_close, run1, up};
use vcortex::ops::{self, Activation};
use vcortex::reference;
use vcortex::rng::SplitMix;

#[test]
fn batch_norm_shapes() {
    let mut rng = SplitMix::new(21);
    for (shape, act) in [
        (vec![5, 3], Activation::Identity),
        (vec![2, 4, 9], Activation::Elu),
        (vec![4, 6, 5, 3], Activation::Identity),
        (vec![1, 1, 1, 1], Activation::Identity),
        (vec![3, 67, 7, 1], Activation::Relu),
        (vec![2, 3, 2, 2, 5], Activation::Identity),
    ] {
        let n: usize = shape.iter().product();
        let c = shape[1];
        let inner: usize = shape[2..].iter().product();
        let xd = rng.vec(n, -3.0, 3.0);
        let (md, vd, wd, bd) =
            (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.1, 2.0), rng.vec(c, -2.0, 2.0), rng.vec(c, -1.0, 1.0));
        for eps in [1e-5f32, 1e-3] {
            let want = reference::batch_norm(&xd, shape[0], c, inner, &md, &vd, &wd, &bd, eps, act);
            let got = run1(|rec| {
                let p = [&md, &vd, &wd, &bd].map(|d| up(d, &[c]));
                ops::batch_norm(rec, &up(&xd, &shape), &p[0], &p[1], &p[2], &p[3], eps, act)
            });
            assert_close(&got, &want, 1e-4, 1e-4, &format!("batch_norm {shape:?} eps {eps}"));
        }
    }
}

#[test]
fn layer_norm_shapes() {
    let mut rng = SplitMix::new(22);
    for (shape, dims) in [
        (vec![6, 10], 1),
        (vec![5, 1], 1),
        (vec![3, 255], 1),
        (vec![3, 256], 1),
        (vec![2, 257], 1),
        (vec![7, 1000], 1),
        (vec![2, 5003], 1),
        (vec![3, 4, 5, 6], 2),
        (vec![2, 3, 7], 3),
        (vec![300, 33], 1),
    ] {
        let n: usize = shape.iter().product();
        let len: usize = shape[shape.len() - dims..].iter().product();
        let trailing = shape[shape.len() - dims..].to_vec();
        // An offset mean makes a one-pass variance formula fail; the kernel centres first.
        let xd: Vec<f32> = rng.vec(n, -1.0, 1.0).iter().map(|v| v + 100.0).collect();
        let (wd, bd) = (rng.vec(len, -2.0, 2.0), rng.vec(len, -1.0, 1.0));
        for (w, b) in [(true, true), (false, false), (true, false), (false, true)] {
            let want =
                reference::layer_norm(&xd, len, w.then_some(&wd[..]), b.then_some(&bd[..]), 1e-5, Activation::Identity);
            let got = run1(|rec| {
                let (wt, bt) = (up(&wd, &trailing), up(&bd, &trailing));
                ops::layer_norm(
                    rec,
                    &up(&xd, &shape),
                    dims,
                    w.then_some(&wt),
                    b.then_some(&bt),
                    1e-5,
                    Activation::Identity,
                )
            });
            assert_close(&got, &want, 2e-4, 2e-4, &format!("layer_norm {shape:?} dims {dims} weight {w} bias {b}"));
        }
    }
}
