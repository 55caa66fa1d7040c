//! The cGNF: the graph kernels (shaders/graph.wgsl) against their references on random skeletons,
//! and the model (`models::Cgnf`) against its f64 reference, its round trip, and propose's golden.

use std::collections::BTreeMap;

use crate::common::{
    assert_close, ctx, refused_config, refused_param, refused_shape, refused_weights, run1, up, vcortex, write_tensors,
};
use vcortex::io::HostTensor;
use vcortex::models::{Cgnf, CgnfConfig};
use vcortex::ops::{self, GcnContext, KeypointPrep, Skeleton};
use vcortex::reference::graph as rg;
use vcortex::rng::SplitMix;

/// A random tree on j joints (each joint after the first hangs from an earlier one).
fn tree(rng: &mut SplitMix, j: usize) -> Vec<[usize; 2]> {
    (1..j).map(|c| [rng.range(0, c - 1), c]).collect()
}

#[test]
fn gcn_aggregate_matches_on_random_skeletons() {
    let mut rng = SplitMix::new(301);
    // (poses, samples, joints, hidden, extra columns, context, root)
    for (b, s, j, h, extra, with_ctx, with_root) in [
        (1usize, 1usize, 1usize, 1usize, 0usize, true, true),
        (3, 4, 16, 12, 0, true, true),
        (2, 5, 7, 5, 3, false, true),
        (1, 1, 33, 130, 1, true, false),
        (5, 2, 2, 3, 0, true, false),
    ] {
        let children: Vec<usize> = (0..j).filter(|c| c % 3 == 0).collect();
        let skel = Skeleton::new(j, &tree(&mut rng, j)).unwrap().with_root_children(&children).unwrap();
        let mr_stride = 2 * h + extra;
        let mr = rng.vec(b * mr_stride, -1.0, 1.0);
        let mr_t = up(&mr, &[b, mr_stride]);
        let stride = 2 * h + extra;
        let mx = rng.vec(b * s * j * stride, -1.0, 1.0);
        let mc_stride = h + extra;
        let mc = rng.vec(b * j * mc_stride, -1.0, 1.0);
        let obs: Vec<f32> = (0..b * j).map(|_| (rng.uniform() < 0.7) as u8 as f32).collect();
        let table = skel.upload(ctx()).unwrap();
        let (mx_t, mc_t, obs_t) = (up(&mx, &[b, s, j, stride]), up(&mc, &[b, j, mc_stride]), up(&obs, &[b, j]));
        let got = run1(|rec| {
            let c = with_ctx.then_some(GcnContext { message: &mc_t, observed: &obs_t });
            ops::gcn_aggregate(rec, &mx_t, h, &table, c, with_root.then_some(ops::GcnRoot { message: &mr_t }))
        });
        let want = rg::gcn_aggregate(
            &mx,
            &[b, s, j, stride],
            h,
            &skel,
            with_ctx.then_some(rg::GcnContext { message: &mc, message_shape: &[b, j, mc_stride], observed: &obs }),
            with_root.then_some(rg::GcnRoot { message: &mr, message_shape: &[b, mr_stride] }),
        )
        .unwrap();
        let what = format!("gcn_aggregate b {b} s {s} j {j} h {h} ctx {with_ctx} root {with_root}");
        assert_close(&got, &want, 1e-6, 1e-5, &what);
    }
}

/// The direct form: node messages computed in the kernel from the features (F small).
#[test]
fn gcn_aggregate_linear_matches() {
    let mut rng = SplitMix::new(307);
    for (b, s, j, h, f, with_ctx) in
        [(1usize, 1usize, 1usize, 1usize, 1usize, false), (3, 4, 16, 12, 3, true), (2, 3, 7, 100, 5, true)]
    {
        let skel = Skeleton::new(j, &tree(&mut rng, j)).unwrap().with_root_children(&[0]).unwrap();
        let x = rng.vec(b * s * j * f, -1.0, 1.0);
        let packed = rng.vec(2 * h * (f + 1), -1.0, 1.0);
        let mc = rng.vec(b * j * h, -1.0, 1.0);
        let obs: Vec<f32> = (0..b * j).map(|i| (i % 3 != 0) as u8 as f32).collect();
        let mr = rng.vec(b * h, -1.0, 1.0);
        let table = skel.upload(ctx()).unwrap();
        let (xt, pt, mct, ot, mrt) = (
            up(&x, &[b, s, j, f]),
            up(&packed, &[2 * h, f + 1]),
            up(&mc, &[b, j, h]),
            up(&obs, &[b, j]),
            up(&mr, &[b, h]),
        );
        let got = run1(|rec| {
            let c = with_ctx.then_some(GcnContext { message: &mct, observed: &ot });
            ops::gcn_aggregate_linear(rec, &xt, &pt, h, &table, c, Some(ops::GcnRoot { message: &mrt }))
        });
        let want = rg::gcn_aggregate_linear(
            &x,
            &[b, s, j, f],
            &packed,
            h,
            &skel,
            with_ctx.then_some(rg::GcnContext { message: &mc, message_shape: &[b, j, h], observed: &obs }),
            Some(rg::GcnRoot { message: &mr, message_shape: &[b, h] }),
        )
        .unwrap();
        assert_close(&got, &want, 1e-5, 1e-5, &format!("gcn_aggregate_linear b {b} s {s} j {j} h {h} f {f}"));
    }
    let skel = Skeleton::new(3, &[[0, 1]]).unwrap();
    let table = skel.upload(ctx()).unwrap();
    let mut rec = ctx().recorder();
    let x = up(&[0.0; 9], &[1, 1, 3, 3]);
    refused_shape(
        ops::gcn_aggregate_linear(&mut rec, &x, &up(&[0.0; 12], &[4, 3]), 2, &table, None, None),
        "gcn_aggregate",
        "packed layer",
    ); // packed [2H, F + 1]
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn sage_aggregate_matches_with_and_without_preprocessing() {
    let mut rng = SplitMix::new(302);
    for (b, j, f, prep) in [
        (1usize, 1usize, 2usize, Some(KeypointPrep { root: Some(0), scale: [0.0139, -0.0139] })),
        (3, 16, 2, Some(KeypointPrep { root: Some(5), scale: [0.5, 2.0] })),
        (2, 16, 2, Some(KeypointPrep { root: None, scale: [1.0, -1.0] })),
        (4, 9, 7, None),
        (2, 17, 128, None),
    ] {
        let x = rng.vec(b * j * f, -50.0, 100.0);
        // A learned adjacency can have any sign; a row whose observed weights sum below 1 is
        // divided by 1 (PyG's clamp).
        let adj = rng.vec(j * j, -0.5, 1.5);
        let mut obs: Vec<f32> = (0..b * j).map(|_| (rng.uniform() < 0.75) as u8 as f32).collect();
        obs[0] = 0.0; // keypoint 0 of pose 0 (the root in the first cases) unobserved
        if b > 1 {
            obs[j..2 * j].iter_mut().for_each(|o| *o = 0.0); // a pose with no keypoint at all
        }
        let got =
            run1(|rec| ops::sage_aggregate(rec, &up(&x, &[b, j, f]), &up(&adj, &[j, j]), &up(&obs, &[b, j]), prep));
        let want = rg::sage_aggregate(&x, &[b, j, f], &adj, &obs, prep).unwrap();
        assert_close(&got, &want, 1e-4, 1e-5, &format!("sage_aggregate b {b} j {j} f {f} prep {prep:?}"));
    }
}

#[test]
fn skeleton_and_graph_ops_refuse_bad_input() {
    refused_param(Skeleton::new(3, &[[0, 3]]), "skeleton", "edges"); // joint out of range
    refused_param(Skeleton::new(3, &[[1, 1]]), "skeleton", "edges"); // self loop
    refused_param(Skeleton::new(3, &[[0, 1], [1, 0]]), "skeleton", "edges"); // edge twice
    refused_param(Skeleton::new(0, &[]), "skeleton", "joints"); // no joints
    let skel = Skeleton::new(4, &[[0, 1], [1, 2], [1, 3]]).unwrap();
    assert_eq!(skel.neighbours(1), &[0, 2, 3]);
    let table = skel.upload(ctx()).unwrap();
    let mut rec = ctx().recorder();
    let mx = up(&[0.0; 2 * 4 * 6], &[2, 1, 4, 6]);
    refused_shape(ops::gcn_aggregate(&mut rec, &mx, 4, &table, None, None), "gcn_aggregate", "node messages"); // too few columns for 2H
    let mx5 = up(&[0.0; 2 * 5 * 6], &[2, 1, 5, 6]);
    refused_shape(ops::gcn_aggregate(&mut rec, &mx5, 3, &table, None, None), "gcn_aggregate", "node messages"); // joints mismatch
    let mc = up(&[0.0; 3 * 4 * 3], &[3, 4, 3]);
    let obs = up(&[1.0; 2 * 4], &[2, 4]);
    let bad = GcnContext { message: &mc, observed: &obs };
    refused_shape(ops::gcn_aggregate(&mut rec, &mx, 3, &table, Some(bad), None), "gcn_aggregate", "context messages"); // context batch mismatch
    let mr = up(&[0.0; 3 * 3], &[3, 3]);
    let root = Some(ops::GcnRoot { message: &mr });
    refused_shape(ops::gcn_aggregate(&mut rec, &mx, 3, &table, None, root), "gcn_aggregate", "root messages"); // root batch mismatch
    refused_param(Skeleton::new(4, &[[0, 1]]).unwrap().with_root_children(&[4]), "skeleton", "root children"); // root child out of range
    refused_param(Skeleton::new(4, &[[0, 1]]).unwrap().with_root_children(&[1, 1]), "skeleton", "root children"); // root child twice
    let x = up(&[0.0; 2 * 4 * 3], &[2, 4, 3]);
    let adj = up(&[1.0; 16], &[4, 4]);
    let prep = Some(KeypointPrep { root: Some(0), scale: [1.0, 1.0] });
    refused_shape(ops::sage_aggregate(&mut rec, &x, &adj, &obs, prep), "sage_aggregate", "input"); // preprocessing needs 2-D keypoints
    let kp = up(&[0.0; 16], &[2, 4, 2]);
    let far = Some(KeypointPrep { root: Some(4), scale: [1.0, 1.0] });
    refused_param(ops::sage_aggregate(&mut rec, &kp, &adj, &obs, far), "sage_aggregate", "root"); // root past the keypoints
    let nan = Some(KeypointPrep { root: None, scale: [f32::NAN, 1.0] });
    refused_param(ops::sage_aggregate(&mut rec, &kp, &adj, &obs, nan), "sage_aggregate", "keypoint scale"); // non-finite scale
    assert_eq!(rec.dispatch_count(), 0, "refusals record nothing");
}

/// A random propose-style state dict for `cfg` (`models::cgnf::random_state_dict`), with nflows'
/// index buffers and ActNorm's `initialized` flag when `buffers` (masks by propose's rule).
fn random_state_dict(cfg: &CgnfConfig, seed: u64, buffers: bool) -> BTreeMap<String, HostTensor> {
    let mut sd = vcortex::models::cgnf::random_state_dict(cfg, seed, 2.0);
    if buffers {
        for i in 0..cfg.layers {
            let (a, p) = (format!("_transform._transforms.{}", 2 * i), format!("_transform._transforms.{}", 2 * i + 1));
            let t = i % 3;
            let ids: Vec<f32> = (0..3).filter(|&f| f != t).map(|f| f as f32).collect();
            sd.insert(format!("{p}.identity_features"), HostTensor::new(vec![2], ids));
            sd.insert(format!("{p}.transform_features"), HostTensor::new(vec![1], vec![t as f32]));
            sd.insert(format!("{a}.initialized"), HostTensor::new(vec![], vec![1.0]));
        }
    }
    sd
}

fn config(j: usize, layers: usize, hidden: usize, cf: usize, embedding: bool, seed: u64) -> CgnfConfig {
    let mut rng = SplitMix::new(seed);
    let edges = tree(&mut rng, j);
    let emb = if embedding { r#"{"hidden": 6}"# } else { "null" };
    let text = format!(
        r#"{{"joints": {j}, "layers": {layers}, "hidden": {hidden}, "context_features": {cf}, "edges": {edges:?}, "embedding": {emb}}}"#
    );
    CgnfConfig::from_json(&text).unwrap()
}

fn model(cfg: &CgnfConfig, seed: u64, buffers: bool) -> Cgnf {
    let mut m = Cgnf::from_state_dict(cfg.clone(), random_state_dict(cfg, seed, buffers)).unwrap();
    m.upload(ctx()).unwrap();
    m
}

#[test]
fn cgnf_density_and_sampling_match_the_reference() {
    let mut rng = SplitMix::new(303);
    // (joints, layers, hidden, context features, embedding, poses, samples)
    for (j, layers, hidden, cf, emb, b, s) in
        [(16usize, 4usize, 12usize, 5usize, true, 3usize, 4usize), (5, 3, 7, 2, false, 2, 3), (1, 2, 3, 3, true, 2, 1)]
    {
        let cfg = config(j, layers, hidden, cf, emb, 1000 + j as u64);
        let m = model(&cfg, 77 + j as u64, j == 16);
        let kp = rng.vec(b * j * 2, 0.0, 100.0);
        let mut observed: Vec<bool> = (0..b * j).map(|_| rng.uniform() < 0.8).collect();
        observed[0] = false;
        let poses = rng.vec(b * j * 3, -1.5, 1.5);
        for with_ctx in [true, false] {
            let cond_host = with_ctx.then_some((&kp[..], &observed[..]));
            let mut rec = ctx().recorder();
            let cond = with_ctx.then(|| m.record_condition(&mut rec, &up(&kp, &[b, j, 2]), &observed).unwrap());
            let (z, lp) = m.record_log_prob(&mut rec, &up(&poses, &[b, j, 3]), cond.as_ref()).unwrap();
            assert_eq!(z.shape(), &[b, j, 3]);
            assert_eq!(lp.shape(), &[b, j]);
            let zt = rng.vec(b * s * j * 3, -2.0, 2.0);
            let (x, slp) = m.record_sample_from(&mut rec, &up(&zt, &[b, s, j, 3]), cond.as_ref()).unwrap();
            let hs = [rec.read_back(&z), rec.read_back(&lp), rec.read_back(&x), rec.read_back(&slp)];
            let done = rec.submit().unwrap();
            let what = format!("cgnf j {j} layers {layers} ctx {with_ctx}");
            let (wz, wlp) = m.reference_log_prob(&poses, b, 1, cond_host).unwrap();
            assert_close(&done.f32(hs[0]), &wz, 1e-4, 1e-4, &format!("{what}: z"));
            assert_close(&done.f32(hs[1]), &wlp, 1e-4, 1e-4, &format!("{what}: log p"));
            let (wx, wslp) = m.reference_sample(&zt, b, s, cond_host).unwrap();
            assert_close(&done.f32(hs[2]), &wx, 1e-4, 1e-4, &format!("{what}: samples"));
            assert_close(&done.f32(hs[3]), &wslp, 1e-4, 1e-4, &format!("{what}: sample log p"));
            // The reference's own round trip: density of the samples = their sampling log p, and
            // their base points are z (to 1e-3: the samples pass through f32, and a random flow's
            // forward map amplifies that rounding by up to its Lipschitz constant).
            let (back, lp_back) = m.reference_log_prob(&wx, b, s, cond_host).unwrap();
            assert_close(&back, &zt, 1e-3, 1e-3, &format!("{what}: reference round trip"));
            assert_close(&lp_back, &wslp, 1e-3, 1e-3, &format!("{what}: reference log p round trip"));
        }
    }
}

#[test]
fn cgnf_gpu_round_trip_mode_and_seeded_sampling() {
    let cfg = config(16, 5, 10, 4, true, 9);
    let m = model(&cfg, 31, false);
    let (b, s, j) = (2usize, 6usize, 16usize);
    let mut rng = SplitMix::new(304);
    let kp = rng.vec(b * j * 2, 0.0, 64.0);
    let observed = vec![true; b * j];
    let mut rec = ctx().recorder();
    let cond = m.record_condition(&mut rec, &up(&kp, &[b, j, 2]), &observed).unwrap();
    let (x, lp) = m.record_sample(&mut rec, Some(&cond), 0, s, 0.7, 42, 0).unwrap();
    let (z, lp_back) = m.record_log_prob(&mut rec, &x, Some(&cond)).unwrap();
    let (x2, _) = m.record_sample(&mut rec, Some(&cond), 0, s, 0.7, 42, 0).unwrap();
    let mode = m.record_mode(&mut rec, Some(&cond), 0).unwrap();
    let hs = [
        rec.read_back(&x),
        rec.read_back(&lp),
        rec.read_back(&z),
        rec.read_back(&lp_back),
        rec.read_back(&x2),
        rec.read_back(&mode),
    ];
    let d = rec.submit().unwrap();
    let (xv, lpv, zv, lpb) = (d.f32(hs[0]), d.f32(hs[1]), d.f32(hs[2]), d.f32(hs[3]));
    assert_eq!(xv, d.f32(hs[4]), "same seed, same samples");
    assert_close(&lpb, &lpv, 1e-4, 1e-4, "density of the samples = their sampling log p");
    // z ~ N(0, 0.7²): its spread says the temperature was applied.
    let sd = (zv.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / zv.len() as f64).sqrt();
    assert!((sd - 0.7).abs() < 0.1, "base spread {sd}");
    let (want_mode, _) = m.reference_sample(&vec![0.0; b * j * 3], b, 1, Some((&kp, &observed))).unwrap();
    assert_close(&d.f32(hs[5]), &want_mode, 1e-4, 1e-4, "mode");
}

#[test]
fn cgnf_refuses_bad_weights_configs_and_inputs() {
    let cfg = config(4, 2, 5, 3, true, 5);
    let good = random_state_dict(&cfg, 1, true);
    let mut sd = good.clone();
    sd.remove("_transform._transforms.3.transform_net.layers.1.pool.bias");
    let e = refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "cgnf weights").to_string();
    assert!(e.contains("missing key") && e.contains("layers.1.pool.bias"), "{e}");
    let mut sd = good.clone();
    sd.insert("_transform._transforms.0.bogus".into(), HostTensor::new(vec![1], vec![0.0]));
    let e = refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "cgnf weights").to_string();
    assert!(e.contains("unexpected key") && e.contains("bogus"), "{e}");
    let mut sd = good.clone();
    sd.insert("_embedding_net.adj".into(), HostTensor::new(vec![3, 3], vec![1.0; 9]));
    let e = refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "cgnf weights").to_string();
    assert!(e.contains("_embedding_net.adj") && e.contains("[3, 3]"), "{e}");
    let mut sd = good.clone();
    sd.get_mut("_transform._transforms.0.log_scale").unwrap().data[1] = f32::INFINITY;
    refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "non-finite");
    let mut sd = good.clone();
    sd.insert("_transform._transforms.1.transform_features".into(), HostTensor::new(vec![1], vec![1.0]));
    let e = refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "cgnf weights").to_string();
    assert!(e.contains("split the 3 coordinates"), "{e}");
    // PyG 2 keeps DenseSAGEConv's bias on lin_root: accepted as well as lin_rel's; neither is
    // refused by name.
    let mut sd = good.clone();
    let b = sd.remove("_embedding_net.layers.1.lin_rel.bias").unwrap();
    sd.insert("_embedding_net.layers.1.lin_root.bias".into(), b.clone());
    Cgnf::from_state_dict(cfg.clone(), sd.clone()).unwrap();
    sd.remove("_embedding_net.layers.1.lin_root.bias");
    let e = refused_weights(Cgnf::from_state_dict(cfg.clone(), sd), "cgnf weights").to_string();
    assert!(e.contains("layers.1.lin_root.bias"), "{e}");
    let mut bad = cfg.clone();
    bad.edges.push([0, 9]);
    refused_param(Cgnf::from_state_dict(bad, good.clone()), "skeleton", "edges"); // edge past the joints
    let mut bad = cfg.clone();
    bad.embedding = None;
    refused_param(Cgnf::from_state_dict(bad, good.clone()), "cgnf", "context_features"); // no embedding needs 2 context features
    refused_config(CgnfConfig::from_json(r#"{"joints": 4, "layers": 2}"#), "missing field `hidden`"); // incomplete config
    refused_config(
        CgnfConfig::from_json(
            r#"{"joints": 4, "layers": 2, "hidden": 5, "context_features": 3, "edges": [], "extra": 1}"#,
        ),
        "unknown field `extra`",
    );

    let mut m = Cgnf::from_state_dict(cfg, good).unwrap();
    m.upload(ctx()).unwrap();
    let mut rec = ctx().recorder();
    let kp = up(&[0.0; 2 * 4 * 2], &[2, 4, 2]);
    refused_shape(m.record_condition(&mut rec, &kp, &[true; 7]), "cgnf", "observed"); // observed of the wrong length
    refused_shape(m.record_condition(&mut rec, &up(&[0.0; 2 * 5 * 2], &[2, 5, 2]), &[true; 10]), "cgnf", "keypoints"); // joints
    let cond = m.record_condition(&mut rec, &kp, &[true; 8]).unwrap();
    let n = rec.dispatch_count();
    refused_shape(m.record_log_prob(&mut rec, &up(&[0.0; 3 * 4 * 3], &[3, 4, 3]), Some(&cond)), "cgnf", "poses"); // batch mismatch
    refused_shape(m.record_log_prob(&mut rec, &up(&[0.0; 2 * 4 * 2], &[2, 4, 2]), None), "cgnf", "poses"); // 2-D poses
    refused_param(m.record_sample(&mut rec, Some(&cond), 0, 3, f32::NAN, 1, 0), "cgnf", "temperature"); // non-finite temperature
    refused_param(m.record_sample(&mut rec, Some(&cond), 0, 3, 0.0, 1, 0), "cgnf", "temperature"); // zero temperature
    assert_eq!(rec.dispatch_count(), n, "refusals record nothing");
}

/// A refusal names the tensor and the shape the caller passed, never a view made of it: poses
/// [3, 12, 3] for a 16-joint model were reported as [3, 1, 12, 3] (the one-sample view). Each
/// refusal names one thing (samples, batch, root) and records nothing.
#[test]
fn cgnf_refusals_name_the_callers_shapes() {
    use vcortex::Error;
    let cfg = config(16, 2, 5, 3, true, 8);
    let m = model(&cfg, 2, false);
    let mut rec = ctx().recorder();
    let names = |e: &Error, what: &str, got: &[usize]| {
        assert!(matches!(e, Error::Shape { op: "cgnf", what: w, got: g, .. } if w == what && g == got), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{what} has shape {got:?}")), "{msg}");
        msg
    };
    // Poses of the wrong joint count, per pose [B, J, 3] and with a samples axis [B, S, J, 3].
    let e = refused_shape(m.record_log_prob(&mut rec, &up(&[0.0; 3 * 12 * 3], &[3, 12, 3]), None), "cgnf", "poses");
    let msg = names(&e, "poses", &[3, 12, 3]);
    assert!(!msg.contains("[3, 1, 12, 3]") && msg.contains("[B, 16, 3] or [B, S, 16, 3]"), "{msg}");
    let e = refused_shape(m.record_log_prob(&mut rec, &up(&[0.0; 72], &[3, 2, 4, 3]), None), "cgnf", "poses");
    names(&e, "poses", &[3, 2, 4, 3]);
    // Poses of another batch than the condition's: [3, 16, 3] against a condition of 2 poses.
    let kp = up(&[0.0; 2 * 16 * 2], &[2, 16, 2]);
    let cond = m.record_condition(&mut rec, &kp, &[true; 32]).unwrap();
    let n = rec.dispatch_count();
    let e = m.record_log_prob(&mut rec, &up(&[0.0; 3 * 16 * 3], &[3, 16, 3]), Some(&cond)).unwrap_err();
    let msg = names(&e, "poses", &[3, 16, 3]);
    assert!(msg.contains("[2, 16, 3] (the condition's batch)") && !msg.contains("[3, 1, 16, 3]"), "{msg}");
    // Base points must have the samples axis: a [B, J, 3] tensor is named as given.
    let e = m.record_sample_from(&mut rec, &up(&[0.0; 2 * 16 * 3], &[2, 16, 3]), Some(&cond)).unwrap_err();
    let msg = names(&e, "base points", &[2, 16, 3]);
    assert!(msg.contains("[B, S, 16, 3]"), "{msg}");
    // No samples, or a prior of no poses: the parameter, not a made-up [B, 0, J, 3].
    refused_param(m.record_sample(&mut rec, Some(&cond), 0, 0, 1.0, 1, 0), "cgnf", "samples");
    refused_param(m.record_sample(&mut rec, None, 0, 3, 1.0, 1, 0), "cgnf", "batch");
    refused_param(m.record_mode(&mut rec, None, 0), "cgnf", "batch");
    assert_eq!(rec.dispatch_count(), n, "refusals record nothing");
    // The reference's flat slices: their own lengths, and the base points named as such.
    let e = m.reference_log_prob(&[0.0; 95], 2, 1, None).unwrap_err();
    names(&e, "poses", &[95]);
    let e = m.reference_sample(&[0.0; 95], 2, 1, None).unwrap_err();
    names(&e, "base points", &[95]);
    // Root features for a model without a root node: refused as such, whatever their length.
    let e = m.reference_log_prob_with_root(&[0.0; 96], 2, 1, None, Some(&[0.0; 6])).unwrap_err();
    assert!(matches!(&e, Error::Param { op: "cgnf", name, .. } if name == "root"), "{e:?}");
    let mut rcfg = cfg.clone();
    rcfg.root = Some(vcortex::models::cgnf::RootConfig { children: vec![0] });
    let rm = model(&rcfg, 2, false);
    let e = rm.reference_log_prob_with_root(&[0.0; 96], 2, 1, None, Some(&[0.0; 9])).unwrap_err();
    let msg = names(&e, "root", &[9]);
    assert!(msg.contains("expected [2, 3]"), "{msg}");
    let e = rm.prior_condition(2, Some(&up(&[0.0; 9], &[3, 3]))).err().expect("refused");
    names(&e, "root", &[3, 3]);
}

/// The golden cGNFs of scripts/golden_cgnf.py (plain PyTorch after docs/ops.md, cGNF message passing; propose's key
/// names, float64), without and with propose's separate root node: context, posterior and prior
/// densities, sampling from given base noise, mode.
#[test]
fn cgnf_reproduces_the_pytorch_golden() {
    use vcortex::io::read_safetensors;
    let dir = crate::common::data_dir("cgnf");
    for suffix in ["", "_root"] {
        let m = Cgnf::load(
            ctx(),
            &dir.join(format!("weights{suffix}.safetensors")),
            &dir.join(format!("config{suffix}.json")),
        )
        .unwrap();
        assert_eq!(m.config().root.is_some(), suffix == "_root");
        let io = read_safetensors(&dir.join(format!("io{suffix}.safetensors"))).unwrap();
        let t = |k: &str| io.tensors[k].clone();
        let tau: f32 = io.metadata["temperature"].parse().unwrap();
        let (kp, poses, eps) = (t("keypoints"), t("poses"), t("eps"));
        let (b, s) = (eps.shape[0], eps.shape[1]);
        let observed: Vec<bool> = t("observed").data.iter().map(|&v| v > 0.5).collect();
        let z: Vec<f32> = eps.data.iter().map(|v| v * tau).collect();
        let root = io.tensors.get("root").map(|r| r.data.clone());
        let mut rec = ctx().recorder();
        let rt = root.as_ref().map(|r| up(r, &[b, 3]));
        let cond = m.record_condition_with_root(&mut rec, &up(&kp.data, &kp.shape), &observed, rt.as_ref()).unwrap();
        let prior = m.prior_condition(b, rt.as_ref()).unwrap();
        let pt = up(&poses.data, &poses.shape);
        let (zp, lp) = m.record_log_prob(&mut rec, &pt, Some(&cond)).unwrap();
        let (zq, lq) = m.record_log_prob(&mut rec, &pt, Some(&prior)).unwrap();
        let (x, xl) = m.record_sample_from(&mut rec, &up(&z, &eps.shape), Some(&cond)).unwrap();
        let mode = m.record_mode(&mut rec, Some(&cond), 0).unwrap();
        let outs = [
            ("context", cond.context().unwrap().clone()),
            ("z", zp),
            ("logp", lp),
            ("z_prior", zq),
            ("logp_prior", lq),
            ("samples", x),
            ("sample_logp", xl),
            ("mode", mode),
        ];
        let hs: Vec<_> = outs.iter().map(|(_, t)| rec.read_back(t)).collect();
        let done = rec.submit().unwrap();
        for ((name, tensor), h) in outs.iter().zip(hs) {
            let want = t(name);
            assert_eq!(tensor.shape(), &want.shape[..], "{name} shape");
            assert_close(&done.f32(h), &want.data, 1e-4, 1e-4, &format!("golden cgnf{suffix} {name} (GPU)"));
        }
        // The CPU reference against the same golden.
        let (c, r) = (Some((&kp.data[..], &observed[..])), root.as_deref());
        let (rz, rl) = m.reference_log_prob_with_root(&poses.data, b, 1, c, r).unwrap();
        assert_close(&rz, &t("z").data, 1e-4, 1e-4, &format!("golden cgnf{suffix} z (reference)"));
        assert_close(&rl, &t("logp").data, 1e-4, 1e-4, &format!("golden cgnf{suffix} logp (reference)"));
        let (_, rlq) = m.reference_log_prob_with_root(&poses.data, b, 1, None, r).unwrap();
        assert_close(&rlq, &t("logp_prior").data, 1e-4, 1e-4, &format!("golden cgnf{suffix} logp_prior (reference)"));
        let (rx, rxl) = m.reference_sample_with_root(&z, b, s, c, r).unwrap();
        assert_close(&rx, &t("samples").data, 1e-4, 1e-4, &format!("golden cgnf{suffix} samples (reference)"));
        assert_close(&rxl, &t("sample_logp").data, 1e-4, 1e-4, &format!("golden cgnf{suffix} sample_logp (reference)"));
    }
}

/// `vcortex flow sample` / `flow density` on the golden cGNF: hypotheses for the golden keypoints,
/// whose density (per joint) equals the log p the sampler wrote; a bad input is refused.
#[test]
fn cli_cgnf_sample_and_density() {
    use vcortex::io::read_safetensors;
    let data = crate::common::data_dir("cgnf");
    let dir = std::env::temp_dir().join(format!("vcortex-cgnf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let io = read_safetensors(&data.join("io.safetensors")).unwrap().tensors;
    let cond = dir.join("cond.safetensors");
    write_tensors(&cond, &[("keypoints", &io["keypoints"]), ("observed", &io["observed"])]);
    let (w, c) = (data.join("weights.safetensors"), data.join("config.json"));
    let (ws, cs) = (w.to_str().unwrap(), c.to_str().unwrap());
    let flow = |cmd: &str, input: &std::path::Path, out: &std::path::Path, rest: &[&str]| {
        let mut args = vec!["flow", cmd, "--weights", ws, "--config", cs, "--input", input.to_str().unwrap()];
        args.extend_from_slice(rest);
        args.extend(["-o", out.to_str().unwrap()]);
        vcortex(&args)
    };
    let samples = dir.join("s.safetensors");
    let out = flow("sample", &cond, &samples, &["--n", "5", "--seed", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = read_safetensors(&samples).unwrap().tensors;
    assert_eq!(s["samples"].shape, vec![3, 5, 16, 3]);
    assert_eq!(s["log_prob"].shape, vec![3, 5, 16]);
    assert_close(&s["mode"].data, &io["mode"].data, 1e-4, 1e-4, "CLI mode");
    // Density of the hypotheses, given the same keypoints.
    let dens_in = dir.join("d_in.safetensors");
    write_tensors(
        &dens_in,
        &[("poses", &s["samples"]), ("keypoints", &io["keypoints"]), ("observed", &io["observed"])],
    );
    let dens = dir.join("d.safetensors");
    let out = flow("density", &dens_in, &dens, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let d = read_safetensors(&dens).unwrap().tensors;
    assert_close(&d["log_prob"].data, &s["log_prob"].data, 1e-3, 1e-3, "CLI density of the samples");
    // Refused with one line: an unexpected tensor, and observed values that are not 0/1.
    let bad = dir.join("bad.safetensors");
    write_tensors(&bad, &[("poses", &io["poses"]), ("junk", &io["observed"])]);
    let out = flow("density", &bad, &dens, &[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("junk"));
    let mut half = io["observed"].clone();
    half.data[0] = 0.5;
    write_tensors(&bad, &[("keypoints", &io["keypoints"]), ("observed", &half)]);
    let out = flow("sample", &bad, &samples, &["--n", "2"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("observed"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cGNF's log-det is the log |det| of its Jacobian: for one pose, Σ over the joints of
/// (log p − log N(z)) from the reference equals log |det ∂z/∂x| of the whole 3J × 3J map, by
/// central differences of the reference (the couplings mix joints through the graph, so only the
/// pose's total is a per-pose quantity).
#[test]
fn cgnf_logdet_equals_the_finite_difference_jacobian() {
    let cfg = config(6, 4, 8, 3, true, 12);
    let m = model(&cfg, 44, false);
    let mut rng = SplitMix::new(305);
    let j = 6;
    let kp = rng.vec(j * 2, 400.0, 600.0);
    let observed = vec![true, true, false, true, true, true];
    let x = rng.vec(j * 3, -1.0, 1.0);
    let cond = Some((&kp[..], &observed[..]));
    let (z, lp) = m.reference_log_prob(&x, 1, 1, cond).unwrap();
    let base: f64 =
        z.iter().map(|&v| -0.5 * (v as f64).powi(2)).sum::<f64>() - 1.5 * j as f64 * (2.0 * std::f64::consts::PI).ln();
    let logdet = lp.iter().map(|&v| v as f64).sum::<f64>() - base;
    let n = 3 * j;
    let h = 1e-2f32;
    let mut jac = vec![0f64; n * n];
    for c in 0..n {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[c] += h;
        xm[c] -= h;
        let zp = m.reference_log_prob(&xp, 1, 1, cond).unwrap().0;
        let zm = m.reference_log_prob(&xm, 1, 1, cond).unwrap().0;
        for r in 0..n {
            jac[r * n + c] = (zp[r] as f64 - zm[r] as f64) / (xp[c] as f64 - xm[c] as f64);
        }
    }
    // log |det| by Gaussian elimination with partial pivoting.
    let mut fd = 0f64;
    for k in 0..n {
        let p = (k..n).max_by(|&a, &b| jac[a * n + k].abs().total_cmp(&jac[b * n + k].abs())).unwrap();
        for c in 0..n {
            jac.swap(k * n + c, p * n + c);
        }
        let piv = jac[k * n + k];
        fd += piv.abs().ln();
        for r in k + 1..n {
            let f = jac[r * n + k] / piv;
            for c in k..n {
                jac[r * n + c] -= f * jac[k * n + c];
            }
        }
    }
    assert!(
        (fd - logdet).abs() < 2e-3 * (1.0 + logdet.abs()),
        "finite-difference log|det| {fd} vs flow log-det {logdet}"
    );
}

/// propose's separate root node: its message reaches the configured children in both CondGCN
/// layers; the GPU matches the reference with given and with default (zero) root features, and a
/// root changes the result.
#[test]
fn cgnf_root_node_matches_the_reference() {
    let mut cfg = config(9, 3, 7, 4, true, 21);
    cfg.root = Some(vcortex::models::cgnf::RootConfig { children: vec![0, 4, 8] });
    let m = model(&cfg, 66, false);
    let (b, s, j) = (2usize, 3usize, 9usize);
    let mut rng = SplitMix::new(306);
    let kp = rng.vec(b * j * 2, 400.0, 600.0);
    let observed: Vec<bool> = (0..b * j).map(|i| i % 4 != 1).collect();
    let root = rng.vec(b * 3, -0.5, 0.5);
    let poses = rng.vec(b * j * 3, -1.0, 1.0);
    let z = rng.vec(b * s * j * 3, -1.5, 1.5);
    let mut rec = ctx().recorder();
    let rt = up(&root, &[b, 3]);
    let cond = m.record_condition_with_root(&mut rec, &up(&kp, &[b, j, 2]), &observed, Some(&rt)).unwrap();
    let zero = m.record_condition(&mut rec, &up(&kp, &[b, j, 2]), &observed).unwrap();
    let (_, lp) = m.record_log_prob(&mut rec, &up(&poses, &[b, j, 3]), Some(&cond)).unwrap();
    let (_, lp0) = m.record_log_prob(&mut rec, &up(&poses, &[b, j, 3]), Some(&zero)).unwrap();
    let (_, lpp) = m.record_log_prob(&mut rec, &up(&poses, &[b, j, 3]), None).unwrap();
    let (x, xl) = m.record_sample_from(&mut rec, &up(&z, &[b, s, j, 3]), Some(&cond)).unwrap();
    let hs = [rec.read_back(&lp), rec.read_back(&lp0), rec.read_back(&lpp), rec.read_back(&x), rec.read_back(&xl)];
    let d = rec.submit().unwrap();
    let c = Some((&kp[..], &observed[..]));
    let (_, w) = m.reference_log_prob_with_root(&poses, b, 1, c, Some(&root)).unwrap();
    assert_close(&d.f32(hs[0]), &w, 1e-4, 1e-4, "root: log p");
    let (_, w0) = m.reference_log_prob(&poses, b, 1, c).unwrap();
    assert_close(&d.f32(hs[1]), &w0, 1e-4, 1e-4, "root zero: log p");
    let (_, wp) = m.reference_log_prob(&poses, b, 1, None).unwrap();
    assert_close(&d.f32(hs[2]), &wp, 1e-4, 1e-4, "root, prior: log p");
    let (wx, wxl) = m.reference_sample_with_root(&z, b, s, c, Some(&root)).unwrap();
    assert_close(&d.f32(hs[3]), &wx, 1e-4, 1e-4, "root: samples");
    assert_close(&d.f32(hs[4]), &wxl, 1e-4, 1e-4, "root: sample log p");
    assert!(w.iter().zip(&w0).any(|(a, b)| (a - b).abs() > 1e-3), "the root's features matter");
    // A root for a model without one is refused.
    let plain = model(&config(9, 3, 7, 4, true, 21), 66, false);
    let mut rec = ctx().recorder();
    refused_param(
        plain.record_condition_with_root(&mut rec, &up(&kp, &[b, j, 2]), &observed, Some(&rt)),
        "cgnf",
        "root",
    );
    refused_shape(
        m.record_condition_with_root(&mut rec, &up(&kp, &[b, j, 2]), &observed, Some(&up(&root[..3], &[1, 3]))),
        "cgnf",
        "root",
    );
}

/// gcn_aggregate (given or direct messages) with the recorder's loop budget at `budget`.
#[allow(clippy::too_many_arguments)]
fn gcn_case(
    budget: u64,
    skel: &Skeleton,
    (b, s, h): (usize, usize, usize),
    input: (&[f32], usize),
    packed: Option<&[f32]>,
    ctxm: Option<(&[f32], &[f32])>,
    root: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let j = skel.joints();
    let (x, width) = input;
    let table = skel.upload(ctx()).unwrap();
    let xt = up(x, &[b, s, j, width]);
    let ct = ctxm.map(|(m, o)| (up(m, &[b, j, h]), up(o, &[b, j])));
    let rt = root.map(|r| up(r, &[b, h]));
    let mut rec = ctx().recorder();
    rec.set_loop_budget(budget);
    let c = ct.as_ref().map(|(m, o)| GcnContext { message: m, observed: o });
    let r = rt.as_ref().map(|m| ops::GcnRoot { message: m });
    let y = match packed {
        Some(p) => {
            let pt = up(p, &[2 * h, width + 1]);
            ops::gcn_aggregate_linear(&mut rec, &xt, &pt, h, &table, c, r).unwrap()
        }
        None => ops::gcn_aggregate(&mut rec, &xt, h, &table, c, r).unwrap(),
    };
    let hy = rec.read_back(&y);
    let got = rec.submit().unwrap().f32(hy);
    let (cs, rs) = ([b, j, h], [b, h]);
    let cref = ctxm.map(|(m, o)| rg::GcnContext { message: m, message_shape: &cs, observed: o });
    let rref = root.map(|r| rg::GcnRoot { message: r, message_shape: &rs });
    let xs = [b, s, j, width];
    let want = match packed {
        Some(p) => rg::gcn_aggregate_linear(x, &xs, p, h, skel, cref, rref),
        None => rg::gcn_aggregate(x, &xs, h, skel, cref, rref),
    }
    .unwrap();
    (got, want)
}

/// A star of 70,000 neighbours around joint 0: its invocations looped over 70,000 neighbours
/// (280,000 iterations with the direct form's feature loop inside), past lavapipe's 65,535; the
/// neighbour lists now go in chunks across dispatches.
#[test]
fn gcn_aggregate_star_of_70000() {
    let mut rng = SplitMix::new(310);
    let j = 70_001;
    let edges: Vec<[usize; 2]> = (1..j).map(|c| [0, c]).collect();
    let skel = Skeleton::new(j, &edges).unwrap().with_root_children(&[0, 5]).unwrap();
    let (b, s, h, f) = (1, 1, 2, 3);
    let mx = rng.vec(b * s * j * 2 * h, 0.0, 1.0);
    let x = rng.vec(b * s * j * f, -1.0, 1.0);
    let packed = rng.vec(2 * h * (f + 1), -1.0, 1.0);
    let mr = rng.vec(b * h, -1.0, 1.0);
    let (got, want) = gcn_case(crate::common::budget(), &skel, (b, s, h), (&mx, 2 * h), None, None, Some(&mr));
    assert_close(&got, &want, 1e-2, 1e-5, "gcn_aggregate star 70000");
    let (got, want) = gcn_case(crate::common::budget(), &skel, (b, s, h), (&x, f), Some(&packed), None, Some(&mr));
    assert_close(&got, &want, 1e-2, 1e-5, "gcn_aggregate_linear star 70000");
}

/// Random skeletons with hubs and a lowered loop budget: every split of the neighbour lists (one
/// chunk, several, ragged) against the reference, given and direct messages, context and root.
#[test]
fn gcn_aggregate_split_neighbours() {
    let mut rng = SplitMix::new(311);
    for it in 0..10 {
        let budget = rng.range(16, 64) as u64;
        let j = rng.range(2, 90);
        // A tree plus a hub joined to every joint it is not yet joined to.
        let hub = rng.range(0, j - 1);
        let mut edges = tree(&mut rng, j);
        for v in 0..j {
            if v != hub && !edges.iter().any(|&[a, c]| (a == hub && c == v) || (a == v && c == hub)) {
                edges.push([hub, v]);
            }
        }
        let skel = Skeleton::new(j, &edges).unwrap().with_root_children(&[hub]).unwrap();
        let (b, s, h, f) = (rng.range(1, 2), rng.range(1, 3), rng.range(1, 6), rng.range(1, 4));
        let mx = rng.vec(b * s * j * 2 * h, -1.0, 1.0);
        let x = rng.vec(b * s * j * f, -1.0, 1.0);
        let packed = rng.vec(2 * h * (f + 1), -1.0, 1.0);
        let mc = rng.vec(b * j * h, -1.0, 1.0);
        let obs: Vec<f32> = (0..b * j).map(|i| (i % 3 != 0) as u8 as f32).collect();
        let mr = rng.vec(b * h, -1.0, 1.0);
        let (c, r) = ((it % 2 == 0).then_some((&mc[..], &obs[..])), (it % 3 != 0).then_some(&mr[..]));
        let what = format!("j {j} b {b} s {s} h {h} f {f} budget {budget}");
        let (got, want) = gcn_case(budget, &skel, (b, s, h), (&mx, 2 * h), None, c, r);
        assert_close(&got, &want, 1e-5, 1e-5, &format!("gcn_aggregate {what}"));
        let (got, want) = gcn_case(budget, &skel, (b, s, h), (&x, f), Some(&packed), c, r);
        assert_close(&got, &want, 1e-5, 1e-5, &format!("gcn_aggregate_linear {what}"));
    }
}

/// A NaN feature gives NaN messages (the direct form's ReLU keeps it, as PyTorch's does) in its
/// own node and its neighbours, and nowhere else.
#[test]
fn gcn_aggregate_linear_keeps_nan() {
    let skel = Skeleton::new(4, &[[0, 1], [1, 2], [2, 3]]).unwrap();
    let (h, f) = (2, 2);
    let mut x = vec![0.5f32; 4 * f];
    x[0] = f32::NAN; // joint 0
    let packed = vec![0.25f32; 2 * h * (f + 1)];
    let (got, want) = gcn_case(crate::common::budget(), &skel, (1, 1, h), (&x, f), Some(&packed), None, None);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let joint = i / h;
        assert_eq!(w.is_nan(), joint <= 1, "reference at joint {joint}: {w}");
        assert!(g.is_nan() == w.is_nan() && (w.is_nan() || (g - w).abs() < 1e-5), "joint {joint}: {g} vs {w}");
    }
}

/// sage_aggregate's loop over the keypoints in chunks across dispatches (a lowered budget: no
/// adjacency [J, J] that fits a buffer has J past the real one), against the reference.
#[test]
fn sage_aggregate_split_keypoints() {
    let mut rng = SplitMix::new(312);
    for it in 0..8 {
        let budget = rng.range(16, 64) as u64;
        let (b, j, f) = (rng.range(1, 3), rng.range(1, 150), rng.range(1, 4));
        let prep =
            (f == 2 && it % 2 == 0).then_some(KeypointPrep { root: Some(rng.range(0, j - 1)), scale: [0.5, -2.0] });
        let x = rng.vec(b * j * f, -5.0, 5.0);
        let adj = rng.vec(j * j, -0.5, 1.5);
        let obs: Vec<f32> = (0..b * j).map(|_| (rng.uniform() < 0.75) as u8 as f32).collect();
        let mut rec = ctx().recorder();
        rec.set_loop_budget(budget);
        let y =
            ops::sage_aggregate(&mut rec, &up(&x, &[b, j, f]), &up(&adj, &[j, j]), &up(&obs, &[b, j]), prep).unwrap();
        let hy = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(hy);
        let want = rg::sage_aggregate(&x, &[b, j, f], &adj, &obs, prep).unwrap();
        assert_close(&got, &want, 1e-4, 1e-5, &format!("sage_aggregate b {b} j {j} f {f} budget {budget}"));
    }
}

#[test]
fn graph_references_refuse_as_the_ops_do() {
    use crate::common::{refused_length, refused_param, refused_shape};
    let skel = Skeleton::new(3, &[[0, 1], [1, 2]]).unwrap();
    let mx = vec![0.5f32; 2 * 1 * 3 * 6];
    // Too few message columns for 2H, a context for another batch, root messages too narrow.
    refused_shape(rg::gcn_aggregate(&mx, &[2, 1, 3, 6], 4, &skel, None, None), "gcn_aggregate", "node messages");
    let ctx_bad = rg::GcnContext { message: &mx[..9], message_shape: &[1, 3, 3], observed: &mx[..3] };
    refused_shape(
        rg::gcn_aggregate(&mx, &[2, 1, 3, 6], 3, &skel, Some(ctx_bad), None),
        "gcn_aggregate",
        "context messages",
    );
    let root = rg::GcnRoot { message: &mx[..4], message_shape: &[2, 2] };
    refused_shape(rg::gcn_aggregate(&mx, &[2, 1, 3, 6], 3, &skel, None, Some(root)), "gcn_aggregate", "root messages");
    refused_length(rg::gcn_aggregate(&mx[1..], &[2, 1, 3, 6], 3, &skel, None, None), "gcn_aggregate", "node messages");
    // The direct form: a packed layer for another F.
    refused_shape(
        rg::gcn_aggregate_linear(&mx[..18], &[2, 1, 3, 3], &mx[..10], 1, &skel, None, None),
        "gcn_aggregate",
        "packed layer",
    );
    // sage_aggregate: an adjacency for other joints, a root past the keypoints.
    let x = vec![0.1f32; 2 * 3 * 2];
    refused_shape(rg::sage_aggregate(&x, &[2, 3, 2], &x[..4], &x[..6], None), "sage_aggregate", "adjacency");
    let far = Some(KeypointPrep { root: Some(3), scale: [1.0, 1.0] });
    refused_param(rg::sage_aggregate(&x, &[2, 3, 2], &x[..9], &x[..6], far), "sage_aggregate", "root");
}
