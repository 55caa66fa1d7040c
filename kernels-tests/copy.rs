//! The copy kernels the video models are built from (`ops::copy::{narrow_mid, swap_mid,
//! concat_mid}`), against their plain-loop mirrors (`reference::copy`): random and awkward shapes
//! (1-wide axes, odd sizes, a tensor past the 65,535-workgroup grid), NaN and infinities carried
//! bit for bit, refusals by name.

use crate::common::{ctx, refused_shape, run1, up};
use vcortex::ops::copy;
use vcortex::reference;
use vcortex::rng::SplitMix;

/// Random values with a NaN, +Inf and −Inf among them: a copy must move each bit for bit.
fn values(rng: &mut SplitMix, n: usize) -> Vec<f32> {
    let mut v = rng.vec(n, -2.0, 2.0);
    for (i, s) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY].into_iter().enumerate() {
        if n > i * 7 {
            v[i * 7] = s;
        }
    }
    v
}

fn same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: got {g}, want {w}");
    }
}

#[test]
fn narrow_mid_matches_the_reference() {
    let mut rng = SplitMix::new(61);
    // [A, T, ...rest], first, len: 1-wide axes, the whole axis, its last frame, odd sizes, 5-D.
    let cases: [(&[usize], usize, usize); 7] = [
        (&[1, 1, 1], 0, 1),
        (&[3, 7, 5], 2, 4),
        (&[2, 9, 1], 8, 1),
        (&[4, 6, 3, 5], 0, 6),
        (&[5, 11, 13, 1], 3, 7),
        (&[1, 40, 17, 19], 21, 19),
        (&[6, 5, 2, 3, 7], 1, 3),
    ];
    for (shape, first, len) in cases {
        let x = values(&mut rng, shape.iter().product());
        let (want, ws) = reference::copy::narrow_mid(&x, shape, shape[0], first, len).unwrap();
        let t = up(&x, shape);
        let got = run1(|rec| {
            let y = copy::narrow_mid(rec, &t, shape[0], first, len)?;
            assert_eq!(y.shape(), &ws[..]);
            Ok(y)
        });
        same_bits(&got, &want, &format!("narrow_mid {shape:?} {first}+{len}"));
    }
}

#[test]
fn swap_mid_matches_the_reference() {
    let mut rng = SplitMix::new(62);
    for dims in [[1, 1, 1, 1], [1, 3, 1, 5], [2, 1, 7, 3], [3, 5, 7, 1], [2, 13, 11, 9], [1, 64, 33, 1]] {
        let n: usize = dims.iter().product();
        let x = values(&mut rng, n);
        let out = [dims[0] * dims[2], dims[1], dims[3]];
        let (want, _) = reference::copy::swap_mid(&x, dims, &out).unwrap();
        let t = up(&x, &[n]);
        let got = run1(|rec| copy::swap_mid(rec, &t, dims, &out));
        same_bits(&got, &want, &format!("swap_mid {dims:?}"));
    }
}

#[test]
fn concat_mid_matches_the_reference() {
    let mut rng = SplitMix::new(63);
    let cases: [(&[usize], &[usize]); 4] =
        [(&[1, 1, 1], &[1, 1, 1]), (&[3, 2, 5], &[3, 7, 5]), (&[2, 9, 4, 3], &[2, 1, 4, 3]), (&[5, 3], &[5, 4])];
    for (sa, sb) in cases {
        let a = values(&mut rng, sa.iter().product());
        let b = values(&mut rng, sb.iter().product());
        let (want, ws) = reference::copy::concat_mid(&a, sa, &b, sb).unwrap();
        let (ta, tb) = (up(&a, sa), up(&b, sb));
        let got = run1(|rec| {
            let y = copy::concat_mid(rec, &ta, &tb)?;
            assert_eq!(y.shape(), &ws[..]);
            Ok(y)
        });
        same_bits(&got, &want, &format!("concat_mid {sa:?} + {sb:?}"));
    }
}

/// 17 M elements: more than 65,535 workgroups of 256, so the grid has a second dimension.
#[test]
fn copies_past_one_grid_dimension() {
    let (a, t, d) = (2usize, 4usize, (1usize << 21) + 3);
    let n = a * t * d;
    let x: Vec<f32> = (0..n).map(|i| (i % 1009) as f32 - 500.0).collect();
    let tx = up(&x, &[a, t, d]);
    let got = run1(|rec| copy::narrow_mid(rec, &tx, a, 1, 3));
    let (want, _) = reference::copy::narrow_mid(&x, &[a, t, d], a, 1, 3).unwrap();
    same_bits(&got, &want, "narrow_mid, 2-D grid");
    let got = run1(|rec| copy::swap_mid(rec, &tx, [1, a, t, d], &[t, a, d]));
    let (want, _) = reference::copy::swap_mid(&x, [1, a, t, d], &[t, a, d]).unwrap();
    same_bits(&got, &want, "swap_mid, 2-D grid");
}

#[test]
fn copy_refusals_name_the_argument() {
    let x = up(&[0.0; 24], &[2, 3, 4]);
    let mut rec = ctx().recorder();
    refused_shape(copy::narrow_mid(&mut rec, &x, 2, 2, 2), "narrow_mid", "input");
    refused_shape(copy::narrow_mid(&mut rec, &x, 2, 0, 0), "narrow_mid", "input");
    refused_shape(copy::narrow_mid(&mut rec, &x, 3, 0, 1), "narrow_mid", "input");
    refused_shape(copy::narrow_mid(&mut rec, &x, 2, usize::MAX, 2), "narrow_mid", "input");
    refused_shape(copy::swap_mid(&mut rec, &x, [2, 3, 2, 1], &[12]), "swap_mid", "input");
    refused_shape(copy::swap_mid(&mut rec, &x, [usize::MAX, 3, 2, 2], &[24]), "swap_mid", "input");
    refused_shape(copy::concat_mid(&mut rec, &x, &up(&[0.0; 10], &[2, 1, 5])), "concat_mid", "b");
    refused_shape(copy::concat_mid(&mut rec, &x, &up(&[0.0; 12], &[3, 1, 4])), "concat_mid", "b");
    assert!(rec.labels().is_empty(), "nothing recorded before a refusal");
    refused_shape(reference::copy::narrow_mid(&[0.0; 24], &[2, 3, 4], 2, 2, 2), "narrow_mid", "input");
    refused_shape(reference::copy::swap_mid(&[0.0; 24], [2, 3, 2, 1], &[12]), "swap_mid", "input");
    refused_shape(reference::copy::concat_mid(&[0.0; 24], &[2, 3, 4], &[0.0; 10], &[2, 1, 5]), "concat_mid", "b");
}
