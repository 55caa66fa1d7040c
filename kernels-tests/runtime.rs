//! The runtime: buffer pool reuse and budget, pipeline cache, one submit per chain, timing.

use crate::common::{assert_close, ctx, up};
use vcortex::ops::{self, Activation, Conv2dParams, Epilogue};
use vcortex::reference;
use vcortex::rng::SplitMix;
use vcortex::runtime::pool::size_class;
use vcortex::{DType, Tensor};

#[test]
fn pool_reuses_buffers_of_a_size_class() {
    // A size no other test uses, so its class is this test's alone.
    let n = 123_457;
    let before = ctx().pool_stats();
    let t = Tensor::empty(ctx(), &[n], DType::F32).unwrap();
    drop(t);
    let t2 = Tensor::empty(ctx(), &[n - 3], DType::F32).unwrap(); // same class
    let after = ctx().pool_stats();
    assert!(after.reuses > before.reuses, "no reuse: {before:?} -> {after:?}");
    assert!(size_class(4 * n as u64, u64::MAX) >= 4 * n as u64);
    drop(t2);
}

/// Six activations of one variant compile one pipeline, and a second variant one more: counted
/// on a context of its own, so no other test's compiles interleave.
#[test]
fn pipelines_are_compiled_once() {
    let own = vcortex::Context::new().unwrap();
    let x = Tensor::from_f32(&own, &[1.0, -1.0, 2.0], &[3]).unwrap();
    let act = Activation::Softplus { beta: 3.0, threshold: 7.0 };
    let mut rec = own.recorder();
    let mut y = ops::activation(&mut rec, &x, act).unwrap();
    for _ in 0..5 {
        y = ops::activation(&mut rec, &y, act).unwrap();
    }
    assert_eq!(rec.dispatch_count(), 6);
    assert_eq!(own.cached_kernels(), 1, "six dispatches of one variant");
    let z = ops::activation(&mut rec, &x, Activation::Relu).unwrap();
    assert_eq!(own.cached_kernels(), 2, "a second variant");
    rec.submit().unwrap();
    let softplus = |v: f64| if 3.0 * v > 7.0 { v } else { (1.0 + (3.0 * v).exp()).ln() / 3.0 };
    let want: Vec<f32> = [1.0f64, -1.0, 2.0].iter().map(|&v| (0..6).fold(v, |v, _| softplus(v)) as f32).collect();
    assert_close(&y.to_vec(&own).unwrap(), &want, 1e-5, 1e-5, "six softplus");
    assert_eq!(z.to_vec(&own).unwrap(), vec![1.0, 0.0, 2.0]);
}

/// The override constants key a pipeline by name, not by the order they were given in: the same
/// overrides in two orders compile one kernel, and a name set twice keeps its last value. Counted
/// on a context of its own, so no other test's compiles interleave.
#[test]
fn override_order_does_not_make_a_second_pipeline() {
    use vcortex::runtime::{Access, PipelineKey};
    use vcortex::shaders::overrides::common as ov;
    let own = vcortex::Context::new().unwrap();
    let base = || PipelineKey::new("activation", "activation", &[Access::Read, Access::ReadWrite]);
    let a = base().with(ov::ACT, 6.0).with(ov::ACT_A, 2.5).with(ov::ACT_B, 9.0);
    let b = base().with(ov::ACT_B, 9.0).with(ov::ACT_A, 2.5).with(ov::ACT, 6.0);
    let c = base().with(ov::ACT_A, 1.0).with(ov::ACT_B, 9.0).with(ov::ACT, 6.0).with(ov::ACT_A, 2.5);
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(
        a.constants().collect::<Vec<_>>(),
        [("ACT", 6.0), ("ACT_A", 2.5), ("ACT_B", 9.0)],
        "sorted by name, one value per name"
    );
    assert_eq!(own.cached_kernels(), 0);
    let ka = own.kernel(&a).unwrap();
    assert_eq!(own.cached_kernels(), 1);
    let kb = own.kernel(&b).unwrap();
    let kc = own.kernel(&c).unwrap();
    assert_eq!(own.cached_kernels(), 1, "the same overrides in another order compiled a second pipeline");
    assert!(std::sync::Arc::ptr_eq(&ka, &kb) && std::sync::Arc::ptr_eq(&ka, &kc));
    // A different value is a different pipeline.
    own.kernel(&base().with(ov::ACT, 6.0).with(ov::ACT_A, 3.5).with(ov::ACT_B, 9.0)).unwrap();
    assert_eq!(own.cached_kernels(), 2);
}

/// A repeated chain on the same buffers reuses the bind groups of its first submit, with the same
/// results; once the pool destroys a buffer the cache is emptied (it would keep the memory), and
/// the next submit builds its groups anew, still with the same results. On a context of its own.
#[test]
fn bind_groups_are_reused_across_submits() {
    let own = vcortex::Context::new().unwrap();
    let xd: Vec<f32> = (0..300).map(|i| (i as f32 * 0.41).sin() * 3.0).collect();
    let x = Tensor::from_f32(&own, &xd, &[300]).unwrap();
    let run = || {
        let mut rec = own.recorder();
        let a = ops::activation(&mut rec, &x, Activation::Tanh).unwrap();
        let b = ops::add(&mut rec, &a, &x, Activation::Relu).unwrap();
        let c = ops::mul(&mut rec, &b, &a, 0.5, Activation::Identity).unwrap();
        let h = rec.read_back(&c);
        let done = rec.submit().unwrap();
        done.f32(h)
    };
    let want: Vec<f32> = xd
        .iter()
        .map(|&v| {
            let a = (v as f64).tanh();
            ((a + v as f64).max(0.0) * a + 0.5) as f32
        })
        .collect();
    let first = run();
    assert_close(&first, &want, 1e-6, 1e-6, "first submit");
    assert_eq!(own.reused_bind_groups(), 0);
    for i in 1..=3 {
        assert_eq!(run(), first, "a submit on cached bind groups");
        assert_eq!(own.reused_bind_groups(), 3 * i, "every dispatch of a repeated chain reuses its group");
    }
    // Trimming destroys the idle intermediates: the cache is emptied, nothing stale is bound.
    own.trim_pool();
    assert_eq!(run(), first, "after the pool released buffers");
    assert_eq!(own.reused_bind_groups(), 9, "no group survives the pool destroying a buffer");
}

/// conv → batch-norm-folded epilogue → layer norm → linear, one recorder, one submit, against
/// the reference chain; with timing, every dispatch gets a labelled time.
#[test]
fn a_chain_of_ops_is_one_submit() {
    let mut rng = SplitMix::new(99);
    let (xs, ws) = ([2, 3, 9, 10], [4, 3, 3, 3]);
    let xd = rng.vec(2 * 3 * 9 * 10, -1.0, 1.0);
    let wd = rng.vec(4 * 27, -0.3, 0.3);
    let (sd, hd) = (rng.vec(4, 0.5, 1.5), rng.vec(4, -0.2, 0.2));
    let ld = rng.vec(5 * 10, -0.3, 0.3);
    let p = Conv2dParams::default().with_padding(1, 1);

    let (c, _) = reference::conv2d(&xd, &xs, &wd, &ws, None, &p, Some((&sd, &hd)), Activation::Elu).unwrap();
    let n = reference::layer_norm(&c, &[2, 4, 9, 10], 1, None, None, 1e-5, Activation::Identity).unwrap();
    let want = reference::linear(&n, &[2 * 4 * 9, 10], &ld, &[5, 10], None, Activation::Sigmoid).unwrap().0;

    let timed = ctx().capabilities().timestamps;
    let mut rec = ctx().recorder().timed(true);
    let (x, w, s, h, l) = (up(&xd, &xs), up(&wd, &ws), up(&sd, &[4]), up(&hd, &[4]), up(&ld, &[5, 10]));
    let y =
        ops::conv2d(&mut rec, &x, &w, None, &p, &Epilogue { scale: Some(&s), shift: Some(&h), act: Activation::Elu })
            .unwrap();
    let y = ops::layer_norm(&mut rec, &y, 1, None, None, 1e-5, Activation::Identity).unwrap();
    let y = ops::linear(&mut rec, &y, &l, None, Activation::Sigmoid).unwrap();
    assert_eq!(rec.dispatch_count(), 3);
    let hnd = rec.read_back(&y);
    let done = rec.submit().unwrap();
    assert_close(&done.f32(hnd), &want, 1e-4, 1e-4, "chain");
    if timed {
        let t = done.timings.as_ref().expect("timings");
        let labels: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["conv2d/conv2d_db", "layer_norm", "linear/matmul_dot"]);
        assert!(t.iter().all(|t| t.ms >= 0.0 && t.ms.is_finite()));
        assert!(done.ms_of("conv2d").unwrap() > 0.0);
    } else {
        assert!(done.timings.is_none());
    }
}

/// Both timing structures (timestamps inside the untimed passes, and one pass per dispatch) time
/// every dispatch of a chain that spans two runs of dispatches (a clear between them), in order
/// and under its label, and leave the results bit for bit those of the untimed submit; a
/// structure the adapter cannot give falls back (`OnePass` to one pass per dispatch, anything to
/// untimed without timestamp queries).
#[test]
fn timing_structures_time_every_dispatch_and_change_no_result() {
    use vcortex::runtime::TimingStructure::{OnePass, PassPerDispatch};
    let xd = SplitMix::new(7).vec(4 * 300, -2.0, 2.0);
    let run = |rec: &mut vcortex::Recorder| {
        let x = up(&xd, &[4, 300]);
        let a = ops::activation(rec, &x, Activation::Elu).unwrap();
        let b = ops::layer_norm(rec, &a, 1, None, None, 1e-5, Activation::Identity).unwrap();
        let z = Tensor::empty(ctx(), &[4, 300], DType::F32).unwrap();
        rec.clear(&z);
        let c = ops::activation(rec, &b, Activation::Sigmoid).unwrap();
        let labels: Vec<String> = rec.labels().iter().map(|l| l.to_string()).collect();
        (rec.read_back(&c), c, labels)
    };
    let mut plain = ctx().recorder();
    assert_eq!(plain.timing(), None);
    let (h, _c, labels) = run(&mut plain);
    let done = plain.submit().unwrap();
    assert!(done.timings.is_none());
    let want = done.f32(h);
    assert_eq!(ctx().recorder().timed(true).timing(), ctx().timing_structure());
    assert_eq!(ctx().recorder().timed(false).timing(), None);
    let caps = ctx().capabilities();
    for (asked, got) in
        [(OnePass, ctx().timing_structure()), (PassPerDispatch, caps.timestamps.then_some(PassPerDispatch))]
    {
        let mut rec = ctx().recorder().timed_as(asked);
        assert_eq!(rec.timing(), got, "{asked:?}");
        let (h, _c, _) = run(&mut rec);
        let done = rec.submit().unwrap();
        assert_eq!(done.f32(h), want, "{asked:?} changed the result");
        match (&done.timings, got) {
            (Some(t), Some(_)) => {
                let timed: Vec<&str> = t.iter().map(|t| t.label.as_str()).collect();
                assert_eq!(timed, labels, "{asked:?}");
                assert!(t.iter().all(|t| t.ms >= 0.0 && t.ms.is_finite()), "{asked:?}: {t:?}");
            }
            (None, None) => {}
            (t, g) => panic!("{asked:?}: structure {g:?} but timings {t:?}"),
        }
    }
    if caps.timestamps_inside_passes {
        assert_eq!(ctx().timing_structure(), Some(OnePass));
    }
}

#[test]
fn results_stay_on_the_device_until_read() {
    // A submit without readback returns at once; a later read sees the result.
    let x = up(&[-1.0, 2.0], &[2]);
    let mut rec = ctx().recorder();
    let y = ops::activation(&mut rec, &x, Activation::Relu).unwrap();
    let done = rec.submit().unwrap();
    assert!(done.timings.is_none());
    assert_eq!(y.to_vec(ctx()).unwrap(), vec![0.0, 2.0]);
}

/// The ladder's choices, as recorded: vec4 loads only where rows are 16-byte aligned.
#[test]
fn kernel_variants_follow_the_shape() {
    let mut rec = ctx().recorder();
    let d = Conv2dParams::default();
    let e = Epilogue::default();
    let x8 = up(&[0.5; 2 * 3 * 4 * 6], &[2, 3, 4, 6]); // H*W = 24
    let x5 = up(&[0.5; 2 * 3 * 5 * 5], &[2, 3, 5, 5]); // H*W = 25
    ops::conv2d(&mut rec, &x8, &up(&[0.1; 6], &[2, 3, 1, 1]), None, &d, &e).unwrap();
    ops::conv2d(&mut rec, &x5, &up(&[0.1; 6], &[2, 3, 1, 1]), None, &d, &e).unwrap();
    ops::conv2d(&mut rec, &x5, &up(&[0.1; 27], &[3, 1, 3, 3]), None, &d.with_groups(3), &e).unwrap();
    ops::conv2d(&mut rec, &x5, &up(&[0.1; 27], &[3, 1, 3, 3]), None, &d.with_groups(3).with_stride(2, 2), &e).unwrap();
    ops::conv2d(&mut rec, &x5, &up(&[0.1; 54], &[2, 3, 3, 3]), None, &d, &e).unwrap();
    let a = up(&[0.5; 1100 * 4], &[1100, 4]); // 9 row tiles: the tiled kernels
    ops::matmul(&mut rec, &a, &up(&[0.5; 8], &[4, 2])).unwrap(); // N = 2: scalar
    ops::matmul(&mut rec, &a, &up(&[0.5; 16], &[4, 4])).unwrap();
    ops::linear(&mut rec, &a, &up(&[0.5; 8], &[2, 4]), None, Activation::Identity).unwrap();
    ops::linear(&mut rec, &up(&[0.5; 6], &[2, 3]), &up(&[0.5; 6], &[2, 3]), None, Activation::Identity).unwrap();
    ops::matmul(&mut rec, &up(&[0.5; 12], &[3, 4]), &up(&[0.5; 16], &[4, 4])).unwrap(); // one tile
    assert_eq!(
        rec.labels(),
        [
            "conv2d/conv2d_1x1_db",
            "conv2d/conv2d_db",
            "conv2d/conv2d_depthwise_tile",
            "conv2d/conv2d_depthwise",
            "conv2d/conv2d_db",
            "matmul/matmul",
            "matmul/matmul_db",
            "linear/matmul_db",
            "linear/matmul_dot",
            "matmul/matmul_dot"
        ]
    );
    rec.submit().unwrap();
}

/// A recorder gives an op's output a buffer only it still holds (every tensor on it dropped):
/// a chain of 40 ops whose intermediates are dropped as it goes reuses buffers, and every value
/// read back is still what the chain computes in order, including a tensor kept alive across the
/// reuse (never handed out) and one read back before its buffer was reused.
#[test]
fn recorder_reuses_dead_buffers_in_order() {
    let n = 1000;
    let x0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut rec = ctx().recorder();
    let x = up(&x0, &[n]);
    let kept = ops::activation(&mut rec, &x, Activation::Relu).unwrap();
    let mut h = ops::add(&mut rec, &kept, &x, Activation::Identity).unwrap();
    let early = rec.read_back(&h);
    let early_t = h.clone();
    let mut want_h: Vec<f32> = x0.iter().map(|&v| v.max(0.0) + v).collect();
    let want_early = want_h.clone();
    drop(early_t); // its buffer may now be reused; the readback recorded above still sees its value
    for i in 0..40 {
        let next = if i % 2 == 0 {
            ops::activation(&mut rec, &h, Activation::Tanh).unwrap()
        } else {
            ops::add(&mut rec, &h, &x, Activation::Identity).unwrap()
        };
        want_h = want_h
            .iter()
            .zip(&x0)
            .map(|(&v, &xv)| if i % 2 == 0 { (v as f64).tanh() as f32 } else { v + xv })
            .collect();
        h = next; // the previous intermediate is dropped here
    }
    assert!(rec.reused_buffers() >= 30, "only {} outputs reused a dead buffer", rec.reused_buffers());
    let (hk, hh) = (rec.read_back(&kept), rec.read_back(&h));
    let done = rec.submit().unwrap();
    assert_close(&done.f32(early), &want_early, 1e-6, 1e-6, "read back before its buffer was reused");
    assert_close(&done.f32(hk), &x0.iter().map(|v| v.max(0.0)).collect::<Vec<_>>(), 0.0, 0.0, "kept tensor");
    assert_close(&done.f32(hh), &want_h, 1e-5, 1e-5, "end of the chain");
}

/// The kernels compile with the trusted checks unless VCORTEX_SHADER_CHECKS=full asks for all:
/// the setting's values, then the shared context (opened under this process's environment, which
/// CI runs once unset and once with `full`) and the loop budget its recorders get.
#[test]
fn shader_checks_follow_the_environment() {
    use vcortex::ShaderChecks;
    assert_eq!(ShaderChecks::from_setting(Some("full")), ShaderChecks::Full);
    for other in [None, Some(""), Some("trusted"), Some("FULL"), Some("full ")] {
        assert_eq!(ShaderChecks::from_setting(other), ShaderChecks::Trusted, "{other:?}");
    }
    let env = std::env::var("VCORTEX_SHADER_CHECKS").ok();
    let want = if env.as_deref() == Some("full") { ShaderChecks::Full } else { ShaderChecks::Trusted };
    assert_eq!(ctx().shader_checks(), want, "VCORTEX_SHADER_CHECKS={env:?}");
    let budget = match want {
        ShaderChecks::Full => vcortex::runtime::LOOP_BUDGET / 8,
        ShaderChecks::Trusted => vcortex::runtime::LOOP_BUDGET,
    };
    assert_eq!(ctx().max_loop_budget(), budget);
    assert_eq!(ctx().recorder().loop_budget(), budget, "a new recorder starts from the context's budget");
}

/// A readback handle carries its tensor's dtype and element count: the values come back exactly
/// as that tensor's, never padded to the buffer's size class, and two reads of one submit stay
/// apart.
#[test]
fn a_read_handle_decodes_its_own_tensor() {
    let a = up(&[1.0, 2.0, 3.0], &[3]);
    let b = up(&[4.0; 1000], &[10, 100]);
    let mut rec = ctx().recorder();
    let y = ops::activation(&mut rec, &a, Activation::Relu).unwrap();
    let (ha, hb) = (rec.read_back(&y), rec.read_back(&b));
    assert_eq!((ha.len(), ha.dtype(), hb.len()), (3, DType::F32, 1000));
    let done = rec.submit().unwrap();
    assert_eq!(done.f32(ha), vec![1.0, 2.0, 3.0]);
    assert_eq!(done.bytes(ha).len(), 12, "exactly the tensor's bytes");
    assert_eq!(done.f32(hb), vec![4.0; 1000]);
}
