//! batch_norm and layer_norm (shaders/norm.wgsl) against the CPU reference.

use crate::common::{assert_close, assert_close_nan, run1, up};
use vcortex::ops::{self, Activation};
use vcortex::reference;
use vcortex::rng::SplitMix;
use vcortex::Recorder;

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
        let xd = rng.vec(n, -3.0, 3.0);
        let (md, vd, wd, bd) =
            (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.1, 2.0), rng.vec(c, -2.0, 2.0), rng.vec(c, -1.0, 1.0));
        for eps in [1e-5f32, 1e-3] {
            let want = reference::batch_norm(&xd, &shape, &md, &vd, &wd, &bd, eps, act).unwrap();
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
            let want = reference::layer_norm(
                &xd,
                &shape,
                dims,
                w.then_some(&wd[..]),
                b.then_some(&bd[..]),
                1e-5,
                Activation::Identity,
            )
            .unwrap();
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

fn layer_norm_case(
    rec: &mut Recorder,
    xd: &[f32],
    shape: &[usize],
    wd: &[f32],
    bd: &[f32],
    affine: bool,
) -> vcortex::Result<vcortex::Tensor> {
    let len = *shape.last().unwrap();
    let (wt, bt) = (up(wd, &[len]), up(bd, &[len]));
    let t = ops::layer_norm(
        rec,
        &up(xd, shape),
        1,
        affine.then_some(&wt),
        affine.then_some(&bt),
        1e-5,
        Activation::Identity,
    )?;
    Ok(t)
}

/// One row of 8,388,608 elements: one workgroup's three strided loops would run 3 x 32,768
/// iterations per invocation, past lavapipe's 65,535 (8.37M of the outputs came out wrong); the
/// op slices the row across workgroups.
#[test]
fn layer_norm_over_a_row_past_the_loop_budget() {
    let mut rng = SplitMix::new(23);
    let len = 8_388_608;
    let xd: Vec<f32> = rng.vec(len, -1.0, 1.0).iter().map(|v| v + 3.0).collect();
    let (wd, bd) = (rng.vec(len, 0.5, 1.5), rng.vec(len, -0.5, 0.5));
    let want = reference::layer_norm(&xd, &[1, len], 1, Some(&wd), Some(&bd), 1e-5, Activation::Identity).unwrap();
    let got = run1(|rec| layer_norm_case(rec, &xd, &[1, len], &wd, &bd, true));
    assert_close(&got, &want, 5e-4, 5e-4, "layer_norm [1, 8388608]");
}

/// Random odd shapes under small loop budgets: every split (one slice, several, a ragged last
/// one, the rows beside each other) against the reference.
#[test]
fn layer_norm_split_paths_under_small_budgets() {
    let mut rng = SplitMix::new(24);
    for case in 0..24 {
        let (budget, len, rows) = crate::common::row_split_case(&mut rng, case);
        let xd: Vec<f32> = rng.vec(rows * len, -1.0, 1.0).iter().map(|v| v + 50.0).collect();
        let (wd, bd) = (rng.vec(len, -2.0, 2.0), rng.vec(len, -1.0, 1.0));
        let affine = case % 3 != 0;
        let want = reference::layer_norm(
            &xd,
            &[rows, len],
            1,
            affine.then_some(&wd[..]),
            affine.then_some(&bd[..]),
            1e-5,
            Activation::Identity,
        )
        .unwrap();
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            layer_norm_case(rec, &xd, &[rows, len], &wd, &bd, affine)
        });
        assert_close(&got, &want, 5e-4, 5e-4, &format!("layer_norm [{rows}, {len}] budget {budget} affine {affine}"));
    }
}

/// A NaN or an infinity in a row makes that row NaN (as PyTorch); the other rows are untouched,
/// on the one-workgroup path and the split one.
#[test]
fn layer_norm_propagates_nan_and_inf_per_row() {
    let mut rng = SplitMix::new(25);
    for (len, budget) in [(777usize, crate::common::budget()), (5000, 16)] {
        let rows = 4;
        let mut xd = rng.vec(rows * len, -1.0, 1.0);
        xd[3] = f32::NAN;
        xd[len + len / 2] = f32::INFINITY;
        xd[2 * len + len - 1] = f32::NEG_INFINITY;
        let (wd, bd) = (rng.vec(len, -2.0, 2.0), rng.vec(len, -1.0, 1.0));
        let want =
            reference::layer_norm(&xd, &[rows, len], 1, Some(&wd), Some(&bd), 1e-5, Activation::Identity).unwrap();
        assert!(want[..3 * len].iter().all(|v| v.is_nan()) && want[3 * len..].iter().all(|v| v.is_finite()));
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            layer_norm_case(rec, &xd, &[rows, len], &wd, &bd, true)
        });
        assert_close_nan(&got, &want, 2e-4, 2e-4, &format!("layer_norm NaN/Inf rows of {len}, budget {budget}"));
    }
}

/// The batch-norm reference takes what the op takes and refuses what it refuses, by the same
/// name: a bias of the wrong length, an eps below 0, an input whose data does not fill its shape.
#[test]
fn norm_references_refuse_as_the_ops_do() {
    use crate::common::{ctx, refused_param, refused_shape};
    let (x, c4, c3) = (vec![0.5f32; 2 * 4 * 3], [1.0f32; 4], [1.0f32; 3]);
    let id = Activation::Identity;
    refused_shape(reference::batch_norm(&x, &[2, 4, 3], &c4, &c4, &c4, &c3, 1e-5, id), "batch_norm", "bias");
    let (xt, p4, p3) = (up(&x, &[2, 4, 3]), up(&c4, &[4]), up(&c3, &[3]));
    refused_shape(ops::batch_norm(&mut ctx().recorder(), &xt, &p4, &p4, &p4, &p3, 1e-5, id), "batch_norm", "bias");
    refused_param(reference::batch_norm(&x, &[2, 4, 3], &c4, &c4, &c4, &c4, -1.0, id), "batch_norm", "eps");
    let e = reference::batch_norm(&x[1..], &[2, 4, 3], &c4, &c4, &c4, &c4, 1e-5, id).unwrap_err();
    assert!(
        matches!(&e, vcortex::Error::DataLength { op: "batch_norm", what, got: 23, expected: 24, .. } if what == "input"),
        "{e:?}"
    );
    // Layer norm's reference likewise: dims past the rank, a weight of the wrong length.
    refused_param(reference::layer_norm(&x, &[2, 4, 3], 4, None, None, 1e-5, id), "layer_norm", "dims");
    refused_param(ops::layer_norm(&mut ctx().recorder(), &xt, 4, None, None, 1e-5, id), "layer_norm", "dims");
    let e = reference::layer_norm(&x, &[2, 4, 3], 2, Some(&c4), None, 1e-5, id).unwrap_err();
    assert!(
        matches!(&e, vcortex::Error::DataLength { op: "layer_norm", what, got: 4, expected: 12, .. } if what == "weight"),
        "{e:?}"
    );
}
