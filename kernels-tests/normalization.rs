//! Divisive normalization (shaders/divisive_norm.wgsl), NeuRN (shaders/neurn.wgsl) and the box
//! filter they share (shaders/box_filter.wgsl) against the CPU reference, on awkward shapes:
//! windows even and odd, larger than the image, 1×1 images, one channel.

use crate::common::assert_close_nan;
use crate::common::{assert_close, ctx, is_param, refused, refused_param, refused_shape, run1, up};
use vcortex::ops::{
    self, Activation, Conv2dParams, DivNormParams, DnField, Epilogue, LocalPath, MaxScope, NeurnParams, SupDivisor,
};
use vcortex::reference;
use vcortex::rng::SplitMix;

#[test]
fn box_sum_matches_the_direct_window() {
    let mut rng = SplitMix::new(31);
    for (shape, win, square) in [
        (vec![2, 5, 7], [3, 3], false),
        (vec![1, 4, 6], [4, 2], true),
        (vec![3, 1, 1], [5, 5], false),
        (vec![2, 6, 9], [13, 11], false), // larger than the image
        (vec![1, 1, 17], [1, 17], true),
        (vec![2, 3, 4, 5], [2, 3], false), // leading dims are planes
    ] {
        let n: usize = shape.iter().product();
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let xd = rng.vec(n, -1.0, 1.0);
        let want = reference::box_sum(&xd, &[n / (h * w), h, w], win, 0.5, square).unwrap();
        let got = run1(|rec| ops::box_sum(rec, &up(&xd, &shape), win, 0.5, square));
        assert_close(&got, &want, 1e-5, 1e-5, &format!("box_sum {shape:?} {win:?} square {square}"));
    }
}

fn dn_case(rng: &mut SplitMix, shape: [usize; 4], p: DivNormParams, gamma: bool, beta: bool) {
    if p.field == DnField::Local {
        // Both paths where the one-pass kernel takes the windows; the separable one otherwise.
        let fits = ops::divisive_norm::local_tile(shape[2], shape[3], p.sum_window, p.sup_window).is_some();
        dn_case_on(rng, shape, p, gamma, beta, LocalPath::Separable);
        dn_case_on(rng, shape, p, gamma, beta, if fits { LocalPath::OnePass } else { LocalPath::Auto });
    } else {
        dn_case_on(rng, shape, p, gamma, beta, LocalPath::Auto);
    }
}

fn dn_case_on(rng: &mut SplitMix, shape: [usize; 4], p: DivNormParams, gamma: bool, beta: bool, path: LocalPath) {
    let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
    dn_check(rng, &xd, shape, p, gamma, beta, path, crate::common::budget());
}

/// GPU against the reference on x, with the recorder's loop budget set (NaN where the reference
/// has NaN).
#[allow(clippy::too_many_arguments)]
fn dn_check(
    rng: &mut SplitMix,
    xd: &[f32],
    shape: [usize; 4],
    p: DivNormParams,
    gamma: bool,
    beta: bool,
    path: LocalPath,
    budget: u64,
) {
    let c = shape[1];
    let xd = xd.to_vec();
    let (gd, bd) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -0.5, 0.5));
    let want = reference::divisive_norm(&xd, &shape, gamma.then_some(&gd[..]), beta.then_some(&bd[..]), &p).unwrap();
    let mut rec = ctx().recorder();
    rec.set_loop_budget(budget);
    let (gt, bt) = (up(&gd, &[c]), up(&bd, &[c]));
    let out = ops::divisive_norm_with(&mut rec, &up(&xd, &shape), gamma.then_some(&gt), beta.then_some(&bt), &p, path)
        .unwrap();
    let hy = rec.read_back(&out.output);
    let hv = out.centered.as_ref().map(|v| rec.read_back(v));
    let hl = out.l1.as_ref().map(|v| rec.read_back(v));
    let done = rec.submit().unwrap();
    let what = format!("divisive_norm {path:?} {shape:?} {p:?} gamma {gamma} beta {beta} budget {budget}");
    // NaN is accepted where the reference has it only when the input holds one: finite input must
    // give finite, close outputs.
    let close = if xd.iter().all(|v| v.is_finite()) { crate::common::assert_close } else { assert_close_nan };
    close(&done.f32(hy), &want.output, 1e-4, 1e-4, &what);
    if let Some(h) = hv {
        close(&done.f32(h), &want.centered, 1e-5, 1e-5, &format!("{what}: centered"));
    }
    match (hl, want.l1) {
        (Some(h), Some(w)) => close(&done.f32(h), &[w], 1e-6, 1e-4, &format!("{what}: l1")),
        (None, None) => {}
        _ => panic!("{what}: l1 asked for but not returned"),
    }
}

#[test]
fn divisive_norm_local_windows() {
    let mut rng = SplitMix::new(32);
    let d = DivNormParams { centered: true, ..Default::default() };
    for (shape, sum, sup, div) in [
        ([2, 5, 7, 9], [3, 3], [3, 3], SupDivisor::SumWindow),
        ([1, 3, 6, 6], [5, 5], [3, 3], SupDivisor::SumWindow),
        ([1, 3, 6, 6], [5, 5], [3, 3], SupDivisor::SupWindow),
        ([2, 4, 5, 7], [4, 2], [2, 3], SupDivisor::SumWindow), // even windows
        ([1, 2, 4, 5], [9, 9], [11, 7], SupDivisor::SupWindow), // larger than the image
        ([3, 4, 1, 1], [3, 3], [5, 5], SupDivisor::SumWindow), // 1x1 images
        ([2, 1, 8, 8], [3, 5], [5, 3], SupDivisor::SumWindow), // one channel
        ([1, 67, 3, 300], [1, 7], [3, 1], SupDivisor::SumWindow), // many channels, wide
        ([2, 5, 40, 70], [5, 5], [5, 5], SupDivisor::SumWindow), // many tiles in both axes
        ([1, 3, 33, 17], [7, 3], [3, 9], SupDivisor::SupWindow), // tiles with overhang, uneven halos
        ([1, 2, 30, 30], [21, 21], [15, 15], SupDivisor::SumWindow), // too large for a tile
        ([2, 130, 9, 13], [1, 1], [1, 1], SupDivisor::SumWindow), // 1x1 windows, many channels
    ] {
        let p = DivNormParams { sum_window: sum, sup_window: sup, sup_divisor: div, sigma: 0.7, ..d };
        dn_case(&mut rng, shape, p, false, false);
    }
    // gamma, beta, activation and the L1 term.
    let p = DivNormParams { act: Activation::Elu, l1_alpha: Some(0.01), sigma: 1.0, ..d };
    dn_case(&mut rng, [2, 6, 5, 5], p, true, true);
    dn_case(&mut rng, [1, 6, 5, 5], DivNormParams { l1_alpha: Some(0.5), ..d }, true, false);
    // Without the centred output.
    dn_case(&mut rng, [2, 3, 4, 4], DivNormParams::default(), false, true);
}

/// The one-pass kernel's tile: the benchmark shape's, narrow and tall images, and windows past its
/// workgroup memory (the separable path, and the one-pass path refused when forced).
#[test]
fn divisive_norm_local_tiles() {
    use ops::divisive_norm::local_tile;
    assert_eq!(local_tile(28, 56, [5, 5], [5, 5]), Some((14, 28)));
    assert_eq!(local_tile(300, 3, [3, 3], [3, 3]).map(|t| t.1), Some(3));
    assert_eq!(local_tile(30, 30, [21, 21], [15, 15]), None);
    let x = up(&[0.5; 2 * 30 * 30], &[1, 2, 30, 30]);
    let p = DivNormParams { sum_window: [21, 21], sup_window: [15, 15], ..Default::default() };
    let mut rec = ctx().recorder();
    let e = ops::divisive_norm_with(&mut rec, &x, None, None, &p, LocalPath::OnePass).err().expect("accepted");
    assert!(is_param(&e, "divisive_norm", "path"), "{e:?}");
    assert!(e.to_string().contains("too large for the one-pass"), "{e}");
    let out = ops::divisive_norm(&mut rec, &x, None, None, &p).unwrap();
    assert_eq!(out.output.shape(), &[1, 2, 30, 30]);
    // The path concerns the local field only: a batch field ignores it.
    let pb = DivNormParams { field: DnField::Batch, ..p };
    ops::divisive_norm_with(&mut rec, &x, None, None, &pb, LocalPath::OnePass).unwrap();
    assert_eq!(rec.labels()[0], "divisive_norm/stats");
    let p = DivNormParams { sum_window: [5, 5], sup_window: [5, 5], ..Default::default() };
    ops::divisive_norm_with(&mut rec, &x, None, None, &p, LocalPath::OnePass).unwrap();
    assert_eq!(*rec.labels().last().unwrap(), "divisive_norm/local");
    ops::divisive_norm(&mut rec, &x, None, None, &p).unwrap();
    assert_eq!(*rec.labels().last().unwrap(), "divisive_norm/local", "Auto takes the one-pass kernel");
}

#[test]
fn divisive_norm_batch_and_layer_fields() {
    let mut rng = SplitMix::new(33);
    for field in [DnField::Batch, DnField::Layer] {
        for shape in [[3, 4, 5, 6], [1, 1, 1, 1], [2, 3, 1, 1], [5, 2, 17, 13]] {
            let p = DivNormParams { field, centered: true, sigma: 0.1, l1_alpha: Some(0.1), ..Default::default() };
            dn_case(&mut rng, shape, p, true, true);
        }
    }
}

#[test]
fn neurn_matches_the_reference() {
    let mut rng = SplitMix::new(34);
    for (shape, k, scope) in [
        ([2, 3, 11, 13], 3, MaxScope::Channel),
        ([1, 3, 9, 9], 5, MaxScope::Image),
        ([2, 2, 7, 6], 4, MaxScope::Channel),    // even k
        ([1, 2, 6, 8], 11, MaxScope::Channel),   // larger than the image: the box-filter path
        ([1, 2, 20, 24], 13, MaxScope::Image),   // box-filter path, inside the image
        ([2, 3, 1, 1], 3, MaxScope::Channel),    // 1x1: sigma 0, output 0
        ([1, 1, 16, 300], 3, MaxScope::Channel), // more than one workgroup per plane
        ([3, 1, 5, 5], 1, MaxScope::Image),
    ] {
        let n: usize = shape.iter().product();
        let xd = rng.vec(n, 0.0, 1.0);
        let p = NeurnParams { kernel: k, max_scope: scope, eps: 1e-8 };
        let want = reference::neurn(&xd, &shape, &p).unwrap();
        let tol = if k > ops::neurn::WINDOW_MAX_K { 1e-4 } else { 2e-5 };
        for reversed in [true, false] {
            let got = run1(|rec| ops::neurn::neurn_with(rec, &up(&xd, &shape), &p, reversed));
            assert_close(&got, &want, tol, 1e-4, &format!("neurn {shape:?} k {k} {scope:?} reversed {reversed}"));
        }
    }
    // 8-bit-range input and a constant plane.
    let mut xd: Vec<f32> = rng.vec(2 * 64, 0.0, 255.0).iter().map(|v| v.floor()).collect();
    xd[..64].iter_mut().for_each(|v| *v = 7.0);
    let p = NeurnParams::default();
    let want = reference::neurn(&xd, &[1, 2, 8, 8], &p).unwrap();
    let got = run1(|rec| ops::neurn(rec, &up(&xd, &[1, 2, 8, 8]), &p));
    assert_close(&got, &want, 2e-5, 1e-4, "neurn 8-bit with a constant plane");
}

#[test]
fn normalization_refuses_bad_parameters() {
    let x = up(&[1.0; 2 * 3 * 4 * 4], &[2, 3, 4, 4]);
    let mut rec = ctx().recorder();
    for (p, name) in [
        (DivNormParams { sum_window: [0, 3], ..Default::default() }, "sum_window"),
        (DivNormParams { sup_window: [3, 0], ..Default::default() }, "sup_window"),
        (DivNormParams { sigma: f32::NAN, ..Default::default() }, "sigma"),
        (DivNormParams { sigma: f32::INFINITY, ..Default::default() }, "sigma"),
        (DivNormParams { l1_alpha: Some(f32::NAN), ..Default::default() }, "l1_alpha"),
    ] {
        let e = ops::divisive_norm(&mut rec, &x, None, None, &p).err().expect("accepted bad parameters");
        assert!(is_param(&e, "divisive_norm", name), "{p:?}: expected {name}, got {e:?}");
    }
    let g = up(&[1.0; 4], &[4]);
    refused_shape(
        ops::divisive_norm(&mut rec, &x, Some(&g), None, &DivNormParams::default()),
        "divisive_norm",
        "gamma",
    );
    refused_shape(
        ops::divisive_norm(&mut rec, &up(&[1.0; 3], &[3]), None, None, &DivNormParams::default()),
        "divisive_norm",
        "input",
    );
    for (p, name) in [
        (NeurnParams { kernel: 0, ..Default::default() }, "kernel"),
        (NeurnParams { eps: f32::NAN, ..Default::default() }, "eps"),
        (NeurnParams { eps: -1.0, ..Default::default() }, "eps"),
    ] {
        let e = refused(ops::neurn(&mut rec, &x, &p));
        assert!(is_param(&e, "neurn", name), "{p:?}: expected {name}, got {e:?}");
    }
    assert_eq!(rec.dispatch_count(), 0);
    refused_param(ops::box_sum(&mut rec, &x, [0, 1], 1.0, false), "box_sum", "window");
}

/// A NeuRN front end, a conv core and DN after it: one recorder, one submit.
#[test]
fn neurn_conv_dn_pipeline_in_one_submit() {
    let mut rng = SplitMix::new(35);
    let xs = [2, 3, 12, 14];
    let xd = rng.vec(xs.iter().product(), 0.0, 1.0);
    let wd = rng.vec(8 * 3 * 9, -0.3, 0.3);
    let np = NeurnParams::default();
    let cp = Conv2dParams::default().with_padding(1, 1);
    let dp = DivNormParams { sum_window: [5, 5], sup_window: [5, 5], act: Activation::Elu, ..Default::default() };

    let a = reference::neurn(&xd, &xs, &np).unwrap();
    let (b, bs) = reference::conv2d(&a, &xs, &wd, &[8, 3, 3, 3], None, &cp, None, Activation::Identity).unwrap();
    let want = reference::divisive_norm(&b, &bs, None, None, &dp).unwrap().output;

    let mut rec = ctx().recorder();
    let y = ops::neurn(&mut rec, &up(&xd, &xs), &np).unwrap();
    let y = ops::conv2d(&mut rec, &y, &up(&wd, &[8, 3, 3, 3]), None, &cp, &Epilogue::default()).unwrap();
    let y = ops::divisive_norm_with(&mut rec, &y, None, None, &dp, LocalPath::OnePass).unwrap().output;
    assert_eq!(rec.dispatch_count(), 2 + 1 + 1); // NeuRN max and apply; conv; DN in one pass
    let h = rec.read_back(&y);
    assert_close(&rec.submit().unwrap().f32(h), &want, 1e-4, 1e-4, "neurn -> conv -> dn");
}

/// Windows longer than small loop budgets: the box passes sum them in pieces (first, middle,
/// ragged last; windows past the image) against the direct window.
#[test]
fn box_sum_long_windows_in_pieces() {
    let mut rng = SplitMix::new(35);
    for case in 0..16 {
        let budget = rng.range(16, 64) as u64;
        let (h, w) = (rng.range(1, 90), rng.range(1, 90));
        let win = [rng.range(1, 2 * h + 5), rng.range(1, 2 * w + 5)];
        let planes = rng.range(1, 3);
        let square = case % 2 == 1;
        let xd = rng.vec(planes * h * w, -1.0, 1.0);
        let want = reference::box_sum(&xd, &[planes, h, w], win, 0.25, square).unwrap();
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            ops::box_sum(rec, &up(&xd, &[planes, h, w]), win, 0.25, square)
        });
        assert_close(&got, &want, 1e-5, 1e-5, &format!("box_sum [{planes}, {h}, {w}] {win:?} budget {budget}"));
    }
}

/// A local field over 65,536 channels: the per-pixel channel loops (the one-pass kernel's and the
/// separable path's) ran out of lavapipe's 65,535 iterations and left the last channels 0; the
/// channels now go in pieces of the loop budget.
#[test]
fn divisive_norm_local_over_65536_channels() {
    let mut rng = SplitMix::new(36);
    let shape = [1, 65_536, 2, 3];
    let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
    let p = DivNormParams { centered: true, l1_alpha: Some(0.3), ..Default::default() };
    for path in [LocalPath::Auto, LocalPath::Separable] {
        dn_check(&mut rng, &xd, shape, p, true, true, path, crate::common::budget());
    }
    // Forcing the one-pass kernel is refused, naming the path and the budget.
    let mut rec = ctx().recorder();
    let x = up(&xd, &shape);
    match ops::divisive_norm_with(&mut rec, &x, None, None, &p, LocalPath::OnePass) {
        Err(vcortex::Error::Param { name, reason, .. }) => {
            assert_eq!(name, "path");
            assert!(reason.contains("loop budget"), "{reason}");
        }
        other => panic!("one pass over 65,536 channels: {:?}", other.map(|_| ())),
    }
}

/// The batch and layer fields over one plane of 9M and 12M elements: one workgroup's two strided
/// loops per group ran past lavapipe's 65,535 iterations; the groups go in slices.
#[test]
fn divisive_norm_batch_and_layer_fields_over_large_planes() {
    let mut rng = SplitMix::new(37);
    for (field, shape) in [(DnField::Layer, [1, 1, 3000, 4000]), (DnField::Batch, [2, 1, 1500, 3000])] {
        let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
        let p = DivNormParams { field, sigma: 0.1, l1_alpha: Some(0.1), ..Default::default() };
        dn_check(&mut rng, &xd, shape, p, false, true, LocalPath::Auto, crate::common::budget());
    }
}

/// Random odd shapes under budgets of 16..64: channel pieces, tall and wide windows in box
/// pieces, sliced group moments and the L1 sum in levels, against the reference.
#[test]
fn divisive_norm_split_paths_under_small_budgets() {
    let mut rng = SplitMix::new(38);
    for case in 0..14 {
        let budget = rng.range(16, 64) as u64;
        let shape = [rng.range(1, 2), rng.range(1, 150), rng.range(1, 40), rng.range(1, 40)];
        let field = [DnField::Local, DnField::Local, DnField::Batch, DnField::Layer][case % 4];
        let p = DivNormParams {
            field,
            sum_window: [rng.range(1, 70), rng.range(1, 9)],
            sup_window: [rng.range(1, 9), rng.range(1, 70)],
            sup_divisor: if case % 3 == 0 { SupDivisor::SupWindow } else { SupDivisor::SumWindow },
            centered: true,
            l1_alpha: Some(0.2),
            ..Default::default()
        };
        let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
        for path in [LocalPath::Auto, LocalPath::Separable] {
            dn_check(&mut rng, &xd, shape, p, case % 2 == 0, true, path, budget);
        }
    }
    // The L1 sum past one workgroup's budget (4,400 partials at budget 16) and sliced moments.
    let shape = [1, 1, 1100, 1024];
    let xd = rng.vec(shape.iter().product(), -2.0, 2.0);
    for field in [DnField::Batch, DnField::Layer] {
        let p = DivNormParams { field, l1_alpha: Some(0.2), ..Default::default() };
        dn_check(&mut rng, &xd, shape, p, false, false, LocalPath::Auto, 16);
    }
}

/// A NaN in x: the statistics that include it are NaN, and so is every output they reach (the
/// local windows around it; the whole group of a batch or layer field) and the L1 term.
#[test]
fn divisive_norm_propagates_nan() {
    let mut rng = SplitMix::new(39);
    let shape = [2, 5, 9, 11];
    let mut xd = rng.vec(shape.iter().product(), -2.0, 2.0);
    xd[2 * 99 + 4 * 11 + 5] = f32::NAN; // example 0, channel 2, pixel (4, 5)
    for field in [DnField::Local, DnField::Batch, DnField::Layer] {
        let p = DivNormParams { field, centered: true, l1_alpha: Some(0.2), ..Default::default() };
        let want = reference::divisive_norm(&xd, &shape, None, None, &p).unwrap();
        let nans = want.output.iter().filter(|v| v.is_nan()).count();
        assert!(nans > 0 && nans < xd.len(), "{field:?}: {nans} NaN");
        for (path, budget) in [(LocalPath::Auto, crate::common::budget()), (LocalPath::Separable, 16)] {
            dn_check(&mut rng, &xd, shape, p, true, true, path, budget);
        }
    }
}

/// Random odd shapes and kernels under budgets of 16..64: the in-kernel window where it fits the
/// budget, else the box passes in pieces, against the reference.
#[test]
fn neurn_under_small_budgets() {
    let mut rng = SplitMix::new(40);
    for case in 0..14 {
        let budget = rng.range(16, 64) as u64;
        let shape = [rng.range(1, 2), rng.range(1, 3), rng.range(1, 40), rng.range(1, 40)];
        let k = [1, 2, 3, 4, 5, 9, 17, 40][case % 8];
        let scope = if case % 2 == 0 { MaxScope::Channel } else { MaxScope::Image };
        let xd = rng.vec(shape.iter().product(), 0.0, 1.0);
        let p = NeurnParams { kernel: k, max_scope: scope, eps: 1e-8 };
        let want = reference::neurn(&xd, &shape, &p).unwrap();
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            ops::neurn(rec, &up(&xd, &shape), &p)
        });
        assert_close(&got, &want, 1e-4, 1e-4, &format!("neurn {shape:?} k {k} {scope:?} budget {budget}"));
    }
}

/// A NaN or an infinity makes the sigma of the windows around it NaN, hence the scope's maximum
/// (torch's max keeps NaN) and every output of that scope; other scopes are untouched. Both the
/// in-kernel window and the box path.
#[test]
fn neurn_propagates_nan_and_inf() {
    let mut rng = SplitMix::new(41);
    let shape = [2, 3, 8, 10];
    let mut xd = rng.vec(shape.iter().product(), 0.0, 1.0);
    xd[80 + 3 * 10 + 4] = f32::NAN; // example 0, channel 1
    xd[3 * 80 + 2 * 80 + 7] = f32::INFINITY; // example 1, channel 2
    for (k, scope) in [(3, MaxScope::Channel), (3, MaxScope::Image), (11, MaxScope::Channel), (11, MaxScope::Image)] {
        let p = NeurnParams { kernel: k, max_scope: scope, eps: 1e-8 };
        let want = reference::neurn(&xd, &shape, &p).unwrap();
        let planes_nan = want.chunks(80).filter(|pl| pl.iter().all(|v| v.is_nan())).count();
        assert_eq!(planes_nan, if scope == MaxScope::Channel { 2 } else { 6 }, "{k} {scope:?}");
        let got = run1(|rec| ops::neurn(rec, &up(&xd, &shape), &p));
        assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("neurn NaN/Inf k {k} {scope:?}"));
    }
}
