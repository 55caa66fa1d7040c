//! Flow couplings (shaders/flows.wgsl) against nflows' algorithm in the CPU reference: random and
//! awkward inputs (on knots, at ±B, far outside), inverse(forward(x)) = x, log-dets against
//! finite differences, refusals.

use crate::common::{assert_close, ctx, is_param, is_shape, refused, refused_param, refused_shape, up};
use vcortex::ops::{self, SplineParams};
use vcortex::reference::flows as rf;
use vcortex::rng::SplitMix;

struct Spline {
    n: usize,
    k: usize,
    x: Vec<f32>,
    w: Vec<f32>,
    h: Vec<f32>,
    d: Vec<f32>,
}

fn spline(rng: &mut SplitMix, n: usize, k: usize, lo: f32, hi: f32) -> Spline {
    // Unnormalized parameters spread like a conditioner's outputs. (Much wider logits make bins
    // near the minimum width, where f32 rounding of y is amplified by 1/(dy/dx) in the inverse: a
    // property of the spline, shared by nflows in float32.)
    Spline {
        n,
        k,
        x: rng.vec(n, lo, hi),
        w: rng.vec(n * k, -1.5, 1.5),
        h: rng.vec(n * k, -1.5, 1.5),
        d: rng.vec(n * (k - 1), -1.5, 1.5),
    }
}

fn gpu(s: &Spline, x: &[f32], p: &SplineParams) -> (Vec<f32>, Vec<f32>) {
    let (n, k) = (s.n, s.k);
    let mut rec = ctx().recorder();
    let (y, l) =
        ops::rq_spline(&mut rec, &up(x, &[n]), &up(&s.w, &[n, k]), &up(&s.h, &[n, k]), &up(&s.d, &[n, k - 1]), p)
            .unwrap();
    let (hy, hl) = (rec.read_back(&y), rec.read_back(&l));
    let done = rec.submit().unwrap();
    (done.f32(hy), done.f32(hl))
}

/// Compares GPU output and log-det with the f64 reference, allowing 1e-4 + 1e-4·|ref| plus what
/// moving the input by a few f32 ulps of B does at that point (measured on the f64 reference):
/// where bins are narrow the spline is steeply curved and f32 knots carry ~1e-7 relative error
/// from exp alone, as they do in nflows on float32.
fn assert_spline_close(s: &Spline, x: &[f32], p: &SplineParams, got: (&[f32], &[f32]), what: &str) {
    let k = s.k;
    let slack = 8.0 * f32::EPSILON as f64 * p.tail_bound as f64;
    for i in 0..s.n {
        let (w, h, d) = (&s.w[i * k..(i + 1) * k], &s.h[i * k..(i + 1) * k], &s.d[i * (k - 1)..(i + 1) * (k - 1)]);
        let v = x[i] as f64;
        let (y, l) = rf::rq_spline_f64(v, w, h, d, p);
        let (mut dy, mut dl) = (0f64, 0f64);
        for e in [-slack, slack] {
            let (y2, l2) = rf::rq_spline_f64(v + e, w, h, d, p);
            dy = dy.max((y2 - y).abs());
            dl = dl.max((l2 - l).abs());
        }
        let (gy, gl) = (got.0[i] as f64, got.1[i] as f64);
        assert!(
            (gy - y).abs() <= 1e-4 + 1e-4 * y.abs() + dy,
            "{what}: element {i} at {v}: output {gy} vs {y} (allowed {:.2e})",
            1e-4 + 1e-4 * y.abs() + dy
        );
        assert!(
            (gl - l).abs() <= 1e-4 + 1e-4 * l.abs() + dl,
            "{what}: element {i} at {v}: logabsdet {gl} vs {l} (allowed {:.2e})",
            1e-4 + 1e-4 * l.abs() + dl
        );
    }
}

#[allow(dead_code)]
fn cpu(s: &Spline, x: &[f32], p: &SplineParams) -> (Vec<f32>, Vec<f32>) {
    let (n, k) = (s.n, s.k);
    rf::rq_spline(x, &[n], &s.w, &[n, k], &s.h, &[n, k], &s.d, &[n, k - 1], p).unwrap()
}

#[test]
fn spline_matches_the_reference_both_ways() {
    let mut rng = SplitMix::new(51);
    for (k, bound) in [(2usize, 1.0f32), (5, 1.5), (10, 3.0), (17, 5.0)] {
        let s = spline(&mut rng, 2000, k, -1.3 * bound, 1.3 * bound);
        for inverse in [false, true] {
            let p = SplineParams { inverse, tail_bound: bound, ..Default::default() };
            let (gy, gl) = gpu(&s, &s.x, &p);
            assert_spline_close(&s, &s.x, &p, (&gy, &gl), &format!("spline K {k} B {bound} inverse {inverse}"));
        }
    }
}

#[test]
fn spline_awkward_inputs() {
    let mut rng = SplitMix::new(52);
    let k = 8;
    let bound = 3.0;
    let mut s = spline(&mut rng, 64, k, 0.0, 0.0);
    // Element i sits on knot i % (K+1) of its own spline, at ±B, far outside, or 0.
    for i in 0..s.n {
        let kn = rf::spline_knots(&s.w[i * k..(i + 1) * k], 1e-3, bound);
        s.x[i] = match i % 12 {
            j if j <= k => kn[j] as f32,
            9 => -bound,
            10 => 1e4,
            _ => -100.0,
        };
    }
    for (inverse, min) in [(false, 1e-3f32), (true, 1e-3), (false, 0.05)] {
        let p =
            SplineParams { inverse, tail_bound: bound, min_bin_width: min, min_bin_height: min, min_derivative: min };
        let (gy, gl) = gpu(&s, &s.x, &p);
        assert_spline_close(&s, &s.x, &p, (&gy, &gl), &format!("awkward inverse {inverse}"));
        assert!(gy.iter().chain(&gl).all(|v| v.is_finite()));
    }
}

#[test]
fn spline_inverse_undoes_forward_on_the_gpu() {
    let mut rng = SplitMix::new(53);
    let s = spline(&mut rng, 5000, 10, -3.5, 3.5);
    let fwd = SplineParams { tail_bound: 3.0, ..Default::default() };
    let (y, lf) = gpu(&s, &s.x, &fwd);
    let (x, li) = gpu(&s, &y, &SplineParams { inverse: true, ..fwd });
    // To 1e-5, plus the f32 rounding of y carried back through the slope: |dx| = |dy| / (dy/dx).
    for i in 0..s.n {
        let k = s.k;
        let (w, h, d) = (&s.w[i * k..(i + 1) * k], &s.h[i * k..(i + 1) * k], &s.d[i * (k - 1)..(i + 1) * (k - 1)]);
        let (_, lad) = rf::rq_spline_f64(s.x[i] as f64, w, h, d, &fwd);
        let carried = 4.0 * f32::EPSILON as f64 * (y[i].abs() as f64).max(1.0) / lad.exp();
        let err = (x[i] as f64 - s.x[i] as f64).abs();
        assert!(
            err <= 1e-5 + carried,
            "element {i}: inverse(forward({})) = {} (|err| {err:.2e}, allowed {:.2e})",
            s.x[i],
            x[i],
            1e-5 + carried
        );
    }
    // The log-dets cancel, up to what the round trip's x error moves them (f64 reference).
    for i in 0..s.n {
        let k = s.k;
        let (w, h, d) = (&s.w[i * k..(i + 1) * k], &s.h[i * k..(i + 1) * k], &s.d[i * (k - 1)..(i + 1) * (k - 1)]);
        let (_, l0) = rf::rq_spline_f64(s.x[i] as f64, w, h, d, &fwd);
        let (_, l1) = rf::rq_spline_f64(x[i] as f64, w, h, d, &fwd);
        let allowed = 2e-4 + 2.0 * (l1 - l0).abs();
        let sum = (lf[i] + li[i]) as f64;
        assert!(sum.abs() <= allowed, "element {i}: logdet forward + inverse = {sum:.3e} (allowed {allowed:.2e})");
    }
}

#[test]
fn spline_logdet_is_the_derivative() {
    let mut rng = SplitMix::new(54);
    let s = spline(&mut rng, 300, 6, -2.2, 2.2);
    let p = SplineParams { tail_bound: 2.0, ..Default::default() };
    let eps = 1e-6;
    for i in 0..s.n {
        let (w, h, d) = (&s.w[i * 6..(i + 1) * 6], &s.h[i * 6..(i + 1) * 6], &s.d[i * 5..(i + 1) * 5]);
        let x = s.x[i] as f64;
        let (_, lad) = rf::rq_spline_f64(x, w, h, d, &p);
        // Central difference away from the knots (where the derivative is continuous anyway) and ±B.
        let (yp, _) = rf::rq_spline_f64(x + eps, w, h, d, &p);
        let (ym, _) = rf::rq_spline_f64(x - eps, w, h, d, &p);
        let fd = ((yp - ym) / (2.0 * eps)).ln();
        assert!((fd - lad).abs() < 1e-5, "element {i} at {x}: log|dy/dx| {lad} vs finite difference {fd}");
    }
}

#[test]
fn affine_coupling_both_ways() {
    let mut rng = SplitMix::new(55);
    for mask in [vec![true, false, true, false, false], vec![true, true, true], vec![false, false, false, true]] {
        let (n, d) = (33usize, mask.len());
        let t = mask.iter().filter(|&&m| m).count();
        let (x, sh, sc) = (rng.vec(n * d, -3.0, 3.0), rng.vec(n * t, -1.0, 1.0), rng.vec(n * t, -4.0, 4.0));
        let run = |inp: &[f32], inverse: bool| {
            let mut rec = ctx().recorder();
            let (y, l) =
                ops::affine_coupling(&mut rec, &up(inp, &[n, d]), &up(&sh, &[n, t]), &up(&sc, &[n, t]), &mask, inverse)
                    .unwrap();
            let (hy, hl) = (rec.read_back(&y), rec.read_back(&l));
            let done = rec.submit().unwrap();
            (done.f32(hy), done.f32(hl))
        };
        let (y, lf) = run(&x, false);
        let (wy, wl) = rf::affine_coupling(&x, &[n, d], &sh, &sc, &mask, false).unwrap();
        assert_close(&y, &wy, 1e-5, 1e-5, &format!("affine {mask:?}"));
        assert_close(&lf, &wl, 1e-5, 1e-5, &format!("affine {mask:?} logdet"));
        let (back, li) = run(&y, true);
        assert_close(&back, &x, 1e-4, 1e-4, &format!("affine {mask:?} inverse(forward)"));
        let sum: Vec<f32> = lf.iter().zip(&li).map(|(a, b)| a + b).collect();
        assert_close(&sum, &vec![0.0; n], 1e-5, 0.0, "affine logdets cancel");
    }
}

#[test]
fn flows_refuse_bad_input() {
    let x = up(&[0.0; 6], &[2, 3]);
    let w = up(&[0.0; 60], &[2, 3, 10]);
    let h9 = up(&[0.0; 54], &[2, 3, 9]);
    let d9 = up(&[0.0; 54], &[2, 3, 9]);
    let d8 = up(&[0.0; 48], &[2, 3, 8]);
    let mut rec = ctx().recorder();
    let p = SplineParams::default();
    let e = ops::rq_spline(&mut rec, &x, &w, &h9, &d9, &p).unwrap_err();
    assert!(is_shape(&e, "rq_spline", "heights"), "{e:?}");
    let e = ops::rq_spline(&mut rec, &x, &w, &w, &d8, &p).unwrap_err();
    assert!(is_shape(&e, "rq_spline", "derivatives"), "{e:?}");
    for (bad, name) in [
        (SplineParams { tail_bound: f32::INFINITY, ..p }, "tail_bound"),
        (SplineParams { tail_bound: 0.0, ..p }, "tail_bound"),
        (SplineParams { min_bin_width: 0.1, ..p }, "min_bin_width"),
        (SplineParams { min_derivative: f32::NAN, ..p }, "min_derivative"),
    ] {
        let e = refused(ops::rq_spline(&mut rec, &x, &w, &w, &d9, &bad));
        assert!(is_param(&e, "rq_spline", name), "{bad:?}: expected {name}, got {e:?}");
    }
    // A finite tail bound past f32's reach for the spline's arithmetic is refused by name.
    let far = SplineParams { tail_bound: 3.4e38, ..p };
    match ops::rq_spline(&mut rec, &x, &w, &w, &d9, &far) {
        Err(vcortex::Error::Param { op: "rq_spline", name, .. }) => assert_eq!(name, "tail_bound"),
        other => panic!("tail_bound 3.4e38: expected a refusal, got {:?}", other.map(|_| ())),
    }
    let s2 = up(&[0.0; 4], &[2, 2]);
    refused_shape(ops::affine_coupling(&mut rec, &x, &s2, &s2, &[true, false], false), "affine_coupling", "mask");
    refused_param(
        ops::affine_coupling(&mut rec, &x, &s2, &s2, &[false, false, false], false),
        "affine_coupling",
        "mask",
    );
    refused_shape(
        ops::affine_coupling(&mut rec, &x, &s2, &up(&[0.0; 2], &[2, 1]), &[true, true, false], false),
        "affine_coupling",
        "scale_raw",
    );
    assert_eq!(rec.dispatch_count(), 0);
}

#[test]
fn actnorm_and_base_density() {
    let mut rng = SplitMix::new(56);
    let (n, f) = (37, 5);
    let (x, ls, b) = (rng.vec(n * f, -2.0, 2.0), rng.vec(f, -1.0, 1.0), rng.vec(f, -0.5, 0.5));
    let (xt, lt, bt) = (up(&x, &[n, f]), up(&ls, &[f]), up(&b, &[f]));
    let mut rec = ctx().recorder();
    let y = ops::actnorm(&mut rec, &xt, &lt, &bt, false).unwrap();
    let back = ops::actnorm(&mut rec, &y, &lt, &bt, true).unwrap();
    let lp = ops::normal_logprob(&mut rec, &xt, None, 0.0).unwrap();
    let add = up(&rng.vec(n, -1.0, 1.0), &[n]);
    let lp2 = ops::normal_logprob(&mut rec, &xt, Some(&add), 0.25).unwrap();
    let (hy, hb, hl, hl2, ha) =
        (rec.read_back(&y), rec.read_back(&back), rec.read_back(&lp), rec.read_back(&lp2), rec.read_back(&add));
    let done = rec.submit().unwrap();
    assert_close(&done.f32(hy), &rf::actnorm(&x, &[x.len() / f, f], &ls, &b, false).unwrap(), 1e-5, 1e-5, "actnorm");
    assert_close(&done.f32(hb), &x, 1e-5, 1e-5, "actnorm inverse(forward)");
    let want = rf::normal_logprob(&x, &[x.len() / f, f], None, 0.0).unwrap();
    assert_close(&done.f32(hl), &want, 1e-5, 1e-5, "normal_logprob");
    let a = done.f32(ha);
    let want2: Vec<f32> = want.iter().zip(&a).map(|(w, a)| w + a + 0.25).collect();
    assert_close(&done.f32(hl2), &want2, 1e-5, 1e-5, "normal_logprob + logdet");
    assert_eq!(ops::flows::actnorm_logdet(&[0.5, -0.25], 4, true), -1.0);
    refused_shape(ops::actnorm(&mut ctx().recorder(), &xt, &up(&[0.0; 4], &[4]), &bt, false), "actnorm", "log_s");
    refused_shape(
        ops::normal_logprob(&mut ctx().recorder(), &xt, Some(&up(&[0.0; 3], &[3])), 0.0),
        "normal_logprob",
        "add",
    );
}

/// A spline coupling on [N, D]: transformed features through the spline with their parameter
/// rows, the others copied; the row's log-det accumulated onto a running one.
#[test]
fn spline_coupling_and_logdet_accumulation() {
    let mut rng = SplitMix::new(57);
    let (n, k) = (41usize, 6usize);
    for mask in [vec![true, false, true], vec![false, true, false, false, true], vec![true]] {
        let d = mask.len();
        let t = mask.iter().filter(|&&m| m).count();
        let x = rng.vec(n * d, -2.5, 2.5);
        let (w, h, dv) =
            (rng.vec(n * t * k, -1.5, 1.5), rng.vec(n * t * k, -1.5, 1.5), rng.vec(n * t * (k - 1), -1.5, 1.5));
        let acc0 = rng.vec(n, -1.0, 1.0);
        let p = SplineParams { tail_bound: 2.0, ..Default::default() };
        let mut rec = ctx().recorder();
        let (y, lad) = ops::rq_spline_coupling(
            &mut rec,
            &up(&x, &[n, d]),
            &up(&w, &[n, t, k]),
            &up(&h, &[n, t, k]),
            &up(&dv, &[n, t, k - 1]),
            &mask,
            &p,
        )
        .unwrap();
        // Scale 2 and a constant 0.5 (ActNorm-style) on top of the running value.
        let acc = ops::row_sum_add(&mut rec, &lad, Some(&up(&acc0, &[n])), 2.0, 0.5).unwrap();
        let (hy, ha) = (rec.read_back(&y), rec.read_back(&acc));
        let done = rec.submit().unwrap();
        let (gy, ga) = (done.f32(hy), done.f32(ha));
        for r in 0..n {
            let mut tj = 0;
            let mut want_acc = acc0[r] as f64 + 0.5;
            for j in 0..d {
                let i = r * d + j;
                if !mask[j] {
                    assert_eq!(gy[i], x[i], "copied feature {j} of row {r}");
                    continue;
                }
                let e = r * t + tj;
                let (wy, wl) = rf::rq_spline_f64(
                    x[i] as f64,
                    &w[e * k..(e + 1) * k],
                    &h[e * k..(e + 1) * k],
                    &dv[e * (k - 1)..(e + 1) * (k - 1)],
                    &p,
                );
                assert!((gy[i] as f64 - wy).abs() < 1e-4 + 1e-4 * wy.abs(), "row {r} feature {j}: {} vs {wy}", gy[i]);
                want_acc += 2.0 * wl;
                tj += 1;
            }
            assert!((ga[r] as f64 - want_acc).abs() < 1e-3, "row {r}: accumulated log-det {} vs {want_acc}", ga[r]);
        }
    }
}

mod composite {
    use std::collections::BTreeMap;

    use crate::common::{assert_close, ctx, refused_param, refused_shape, refused_weights};
    use vcortex::io::HostTensor;
    use vcortex::models::flow::{FlowConfig, LayerConfig};
    use vcortex::models::Flow;
    use vcortex::ops;
    use vcortex::rng::SplitMix;

    fn config() -> FlowConfig {
        FlowConfig {
            features: 3,
            layers: vec![
                LayerConfig::Actnorm,
                LayerConfig::Affine,
                LayerConfig::Spline { bins: 5, tail_bound: 3.0 },
                LayerConfig::Affine,
                LayerConfig::Spline { bins: 4, tail_bound: 2.0 },
            ],
        }
    }

    fn put(sd: &mut BTreeMap<String, HostTensor>, rng: &mut SplitMix, k: String, shape: Vec<usize>, lo: f32, hi: f32) {
        let n = shape.iter().product();
        sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
    }

    fn weights(seed: u64) -> BTreeMap<String, HostTensor> {
        let mut rng = SplitMix::new(seed);
        let mut sd = BTreeMap::new();
        let masks = [vec![], vec![1.0, 0.0, 1.0], vec![0.0, 1.0, 0.0], vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 0.0]];
        for (i, lc) in config().layers.iter().enumerate() {
            let out_per_feature = match lc {
                LayerConfig::Actnorm => {
                    put(&mut sd, &mut rng, format!("layers.{i}.log_scale"), vec![3], -0.5, 0.5);
                    put(&mut sd, &mut rng, format!("layers.{i}.bias"), vec![3], -0.5, 0.5);
                    continue;
                }
                LayerConfig::Affine => 2,
                LayerConfig::Spline { bins, .. } => 3 * bins - 1,
            };
            let m = &masks[i];
            let ident = m.iter().filter(|&&v| v == 0.0).count();
            let t = 3 - ident;
            sd.insert(format!("layers.{i}.mask"), HostTensor::new(vec![3], m.clone()));
            put(&mut sd, &mut rng, format!("layers.{i}.net.0.weight"), vec![8, ident], -0.8, 0.8);
            put(&mut sd, &mut rng, format!("layers.{i}.net.0.bias"), vec![8], -0.3, 0.3);
            put(&mut sd, &mut rng, format!("layers.{i}.net.out.weight"), vec![out_per_feature * t, 8], -0.5, 0.5);
            put(&mut sd, &mut rng, format!("layers.{i}.net.out.bias"), vec![out_per_feature * t], -0.3, 0.3);
        }
        sd
    }

    fn flow() -> Flow {
        let mut f = Flow::from_state_dict(config(), weights(3)).unwrap();
        f.upload(ctx()).unwrap();
        f
    }

    #[test]
    fn log_prob_matches_the_reference() {
        let f = flow();
        let n = 64;
        let x = SplitMix::new(8).vec(n * 3, -2.5, 2.5);
        let mut rec = ctx().recorder();
        let (_, lp) = f.record_log_prob(&mut rec, &crate::common::up(&x, &[n, 3])).unwrap();
        let h = rec.read_back(&lp);
        let got = rec.submit().unwrap().f32(h);
        let want = f.reference_log_prob(&x, n).unwrap();
        assert_close(&got, &want, 1e-3, 1e-4, "flow log p(x)");
    }

    /// Sampling then mapping back recovers the base draw; all of it one submit each.
    #[test]
    fn sampling_inverts_density_evaluation() {
        let f = flow();
        let n = 100;
        let mut rec = ctx().recorder();
        let (x, inv_ld) = f.record_sample(&mut rec, n, 1.0, 21, 0).unwrap();
        let z = ops::random_normal(&mut rec, &[n, 3], 21, 0).unwrap();
        let (z_back, lp) = f.record_log_prob(&mut rec, &x).unwrap();
        let (hz, hb, hl, hi) = (rec.read_back(&z), rec.read_back(&z_back), rec.read_back(&lp), rec.read_back(&inv_ld));
        let done = rec.submit().unwrap();
        let (z, zb) = (done.f32(hz), done.f32(hb));
        assert_close(&zb, &z, 1e-3, 1e-3, "forward(sample(z)) = z");
        // log p(x) = log N(z) − log|det| of the inverse pass.
        let base = vcortex::reference::flows::normal_logprob(&z, &[z.len() / 3, 3], None, 0.0).unwrap();
        let want: Vec<f32> = base.iter().zip(done.f32(hi)).map(|(b, l)| b - l).collect();
        assert_close(&done.f32(hl), &want, 1e-3, 1e-3, "change of variables");
        // Temperature scales the base draw.
        let mut rec = ctx().recorder();
        let (x2, _) = f.record_sample(&mut rec, n, 0.5, 21, 0).unwrap();
        let (z2, _) = f.record_log_prob(&mut rec, &x2).unwrap();
        let h2 = rec.read_back(&z2);
        let half: Vec<f32> = z.iter().map(|v| v * 0.5).collect();
        assert_close(&rec.submit().unwrap().f32(h2), &half, 1e-3, 1e-3, "temperature 0.5");
    }

    /// `vcortex flow sample` then `vcortex flow density` on a weights file: the density pass maps
    /// the samples back to the base draws (the Philox stream of the seed).
    #[test]
    fn cli_flow_sample_and_density() {
        let dir = std::env::temp_dir().join(format!("vcortex-flow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (w, c) = (dir.join("w.safetensors"), dir.join("c.json"));
        let sd: Vec<(String, HostTensor)> = weights(3).into_iter().collect();
        vcortex::io::write_safetensors(&w, &sd, &Default::default()).unwrap();
        std::fs::write(&c, serde_json::to_string(&config()).unwrap()).unwrap();
        let run = |args: &[&str]| {
            let out = crate::common::vcortex(args);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        let (samples, dens) = (dir.join("s.safetensors"), dir.join("d.safetensors"));
        let ws = w.to_str().unwrap();
        let cs = c.to_str().unwrap();
        run(&[
            "flow",
            "sample",
            "--weights",
            ws,
            "--config",
            cs,
            "--n",
            "10",
            "--seed",
            "5",
            "-o",
            samples.to_str().unwrap(),
        ]);
        run(&[
            "flow",
            "density",
            "--weights",
            ws,
            "--config",
            cs,
            "--input",
            samples.to_str().unwrap(),
            "-o",
            dens.to_str().unwrap(),
        ]);
        let z = vcortex::io::read_safetensors(&dens).unwrap().tensors.remove("z").unwrap();
        assert_close(&z.data, &vcortex::reference::random::normal(5, 0, 30), 1e-3, 1e-3, "CLI round trip");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A flow config's `"kind"` says which model `vcortex flow` loads: `"flow"` gives the samples
    /// of the same config without the field, bit for bit; `"cgnf"` reads it as a cGNF (refused for
    /// its missing cGNF fields); any other value is refused naming the field and the file; a cGNF
    /// config marked `"flow"` is refused for a cGNF field, and one marked `"cgnf"` gives the
    /// mode of the same config without the field.
    #[test]
    fn cli_flow_config_kind_picks_the_model() {
        let dir = std::env::temp_dir().join(format!("vcortex-flow-kind-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = dir.join("w.safetensors");
        let sd: Vec<(String, HostTensor)> = weights(3).into_iter().collect();
        vcortex::io::write_safetensors(&w, &sd, &Default::default()).unwrap();
        let with_kind = |name: &str, cfg: &serde_json::Value, kind: serde_json::Value| {
            let mut cfg = cfg.clone();
            cfg.as_object_mut().unwrap().insert("kind".into(), kind);
            let p = dir.join(name);
            std::fs::write(&p, cfg.to_string()).unwrap();
            p
        };
        let sample = |w: &std::path::Path, c: &std::path::Path, extra: &[&str], out: &str| {
            let o = dir.join(out);
            let mut args = vec!["flow", "sample", "--weights", w.to_str().unwrap(), "--config", c.to_str().unwrap()];
            args.extend_from_slice(extra);
            args.extend(["-o", o.to_str().unwrap()]);
            (crate::common::vcortex(&args), o)
        };
        let plain = serde_json::to_value(config()).unwrap();
        let c0 = dir.join("c.json");
        std::fs::write(&c0, plain.to_string()).unwrap();
        let (r, o0) = sample(&w, &c0, &["--n", "10", "--seed", "5"], "s0.safetensors");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let c1 = with_kind("c_flow.json", &plain, "flow".into());
        let (r, o1) = sample(&w, &c1, &["--n", "10", "--seed", "5"], "s1.safetensors");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let read = |p: &std::path::Path| vcortex::io::read_safetensors(p).unwrap().tensors.remove("samples").unwrap();
        assert_eq!(read(&o0).data, read(&o1).data, "\"kind\": \"flow\" changed the samples");
        let c2 = with_kind("c_cgnf.json", &plain, "cgnf".into());
        let (r, _) = sample(&w, &c2, &["--n", "10"], "s2.safetensors");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains("cgnf config") && err.contains(c2.to_str().unwrap()), "{err}");
        for bad in [serde_json::json!("gnf"), serde_json::json!(3), serde_json::json!(null)] {
            let c = with_kind("c_bad.json", &plain, bad.clone());
            let (r, o) = sample(&w, &c, &["--n", "10"], "s3.safetensors");
            let err = String::from_utf8_lossy(&r.stderr);
            assert!(
                !r.status.success()
                    && err.starts_with(&format!("vcortex: {}: \"kind\" is {bad}", c.display()))
                    && err.lines().count() == 1
                    && !o.exists(),
                "kind {bad}: {err}"
            );
        }
        // The golden cGNF: its config marked "cgnf" gives the mode of the unmarked one; marked
        // "flow", it is refused as a flow config.
        let data = crate::common::data_dir("cgnf");
        let cw = data.join("weights.safetensors");
        let cgnf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("config.json")).unwrap()).unwrap();
        let (r, m0) = sample(&cw, &data.join("config.json"), &["--n", "2"], "m0.safetensors");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let cc = with_kind("g_cgnf.json", &cgnf, "cgnf".into());
        let (r, m1) = sample(&cw, &cc, &["--n", "2"], "m1.safetensors");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let mode = |p: &std::path::Path| vcortex::io::read_safetensors(p).unwrap().tensors.remove("mode").unwrap();
        assert_eq!(mode(&m0).data, mode(&m1).data, "\"kind\": \"cgnf\" changed the mode");
        let cf = with_kind("g_flow.json", &cgnf, "flow".into());
        let (r, _) = sample(&cw, &cf, &["--n", "2"], "m2.safetensors");
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains("flow config: unknown field"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flow_loader_refuses_bad_weights() {
        Flow::from_state_dict(config(), weights(3)).unwrap();
        let mut missing = weights(3);
        missing.remove("layers.2.net.out.bias");
        refused_weights(Flow::from_state_dict(config(), missing), "layers.2.net.out.bias");
        let mut extra = weights(3);
        extra.insert("layers.9.bias".into(), HostTensor::new(vec![3], vec![0.0; 3]));
        refused_weights(Flow::from_state_dict(config(), extra), "layers.9.bias");
        let mut all = weights(3);
        all.insert("layers.1.mask".into(), HostTensor::new(vec![3], vec![1.0; 3]));
        refused_weights(Flow::from_state_dict(config(), all), "layers.1.mask");
        let mut shaped = weights(3);
        shaped.insert("layers.1.net.out.weight".into(), HostTensor::new(vec![3, 8], vec![0.0; 24]));
        refused_weights(Flow::from_state_dict(config(), shaped), "layers.1.net.out.weight");
        let f = flow();
        refused_param(f.record_sample(&mut ctx().recorder(), 4, 0.0, 1, 0), "flow", "temperature");
        refused_shape(
            f.record_log_prob(&mut ctx().recorder(), &crate::common::up(&[0.0; 8], &[2, 4])),
            "flow",
            "input",
        );
    }
}

/// The spline with the recorder's loop budget set to `budget`; `coupling` = (D, mask) for a
/// coupling on x [N, D] (parameters [N, T, K]), else x [n].
fn gpu_budget(
    budget: u64,
    x: &[f32],
    (w, h, d): (&[f32], &[f32], &[f32]),
    k: usize,
    coupling: Option<&[bool]>,
    p: &SplineParams,
) -> (Vec<f32>, Vec<f32>) {
    let mut rec = ctx().recorder();
    rec.set_loop_budget(budget);
    let (y, l) = match coupling {
        None => {
            let n = x.len();
            ops::rq_spline(&mut rec, &up(x, &[n]), &up(w, &[n, k]), &up(h, &[n, k]), &up(d, &[n, k - 1]), p).unwrap()
        }
        Some(mask) => {
            let dd = mask.len();
            let n = x.len() / dd;
            let t = mask.iter().filter(|&&m| m).count();
            ops::rq_spline_coupling(
                &mut rec,
                &up(x, &[n, dd]),
                &up(w, &[n, t, k]),
                &up(h, &[n, t, k]),
                &up(d, &[n, t, k - 1]),
                mask,
                p,
            )
            .unwrap()
        }
    };
    let (hy, hl) = (rec.read_back(&y), rec.read_back(&l));
    let done = rec.submit().unwrap();
    (done.f32(hy), done.f32(hl))
}

/// 70,000 bins: the fused kernel's loops over the bins (softmax, knots, search) are far past
/// lavapipe's 65,535 iterations per invocation; the knots are built in chunks of bins across
/// dispatches and binary-searched instead. Forward and inverse, against the f64 reference.
#[test]
fn spline_70000_bins() {
    let mut rng = SplitMix::new(58);
    let (n, k, bound) = (3usize, 70_000usize, 3.0f32);
    let mut s = spline(&mut rng, n, k, -1.1 * bound, 1.1 * bound);
    s.x[0] = 0.37;
    s.x[1] = -2.9;
    let min = 1e-6;
    for inverse in [false, true] {
        let p =
            SplineParams { inverse, tail_bound: bound, min_bin_width: min, min_bin_height: min, min_derivative: 1e-3 };
        let (gy, gl) = gpu_budget(crate::common::budget(), &s.x, (&s.w, &s.h, &s.d), k, None, &p);
        assert_spline_close(&s, &s.x, &p, (&gy, &gl), &format!("spline K 70000 inverse {inverse}"));
    }
}

/// Random odd shapes with a lowered loop budget: the large-K path (knots in 1, 2 or more chunks of
/// bins, ragged last chunk) against the reference, forward and inverse, plain and in a coupling,
/// on knots and at the bounds too.
#[test]
fn spline_split_random() {
    let mut rng = SplitMix::new(59);
    for it in 0..16 {
        let budget = rng.range(16, 64) as u64;
        let (n, k) = (rng.range(1, 40), rng.range(2, 40));
        let bound = 2.0;
        let mut s = spline(&mut rng, n, k, -1.2 * bound, 1.2 * bound);
        if n > 3 {
            let kn = rf::spline_knots(&s.w[..k], 1e-3, bound);
            s.x[0] = kn[rng.range(0, k)] as f32;
            s.x[1] = bound;
            s.x[2] = -bound;
        }
        let inverse = it % 2 == 1;
        let p = SplineParams { inverse, tail_bound: bound, ..Default::default() };
        let (gy, gl) = gpu_budget(budget, &s.x, (&s.w, &s.h, &s.d), k, None, &p);
        assert_spline_close(&s, &s.x, &p, (&gy, &gl), &format!("spline n {n} K {k} budget {budget} inverse {inverse}"));
        // A coupling over [N, D]: the parameter rows are N·T.
        let dd = rng.range(1, 5);
        let mut mask: Vec<bool> = (0..dd).map(|_| rng.range(0, 1) == 1).collect();
        mask[rng.range(0, dd - 1)] = true;
        let t = mask.iter().filter(|&&m| m).count();
        let rows = rng.range(1, 9);
        let x = rng.vec(rows * dd, -1.2 * bound, 1.2 * bound);
        let (w, h, dv) = (
            rng.vec(rows * t * k, -1.5, 1.5),
            rng.vec(rows * t * k, -1.5, 1.5),
            rng.vec(rows * t * (k - 1), -1.5, 1.5),
        );
        let (gy, gl) = gpu_budget(budget, &x, (&w, &h, &dv), k, Some(&mask), &p);
        for r in 0..rows {
            let mut tj = 0;
            for j in 0..dd {
                let i = r * dd + j;
                if !mask[j] {
                    assert_eq!((gy[i], gl[i]), (x[i], 0.0), "copied feature {j} of row {r}");
                    continue;
                }
                let e = r * t + tj;
                let one = Spline {
                    n: 1,
                    k,
                    x: vec![x[i]],
                    w: w[e * k..(e + 1) * k].to_vec(),
                    h: h[e * k..(e + 1) * k].to_vec(),
                    d: dv[e * (k - 1)..(e + 1) * (k - 1)].to_vec(),
                };
                let what = format!("coupling {mask:?} K {k} budget {budget} row {r} feature {j}");
                assert_spline_close(&one, &one.x, &p, (&gy[i..i + 1], &gl[i..i + 1]), &what);
                tj += 1;
            }
        }
    }
}

/// Rows of 70,000 features (past 65,535 loop iterations per invocation) and random odd rows with a
/// lowered budget: the affine coupling's log-det, row_sum_add and normal_logprob are split in
/// feature chunks across dispatches.
#[test]
fn row_loops_split() {
    let mut rng = SplitMix::new(60);
    let mut cases = vec![(crate::common::budget(), 2usize, 70_000usize)];
    for _ in 0..10 {
        cases.push((rng.range(16, 64) as u64, rng.range(1, 5), rng.range(1, 200)));
    }
    for (budget, n, d) in cases {
        let mut mask: Vec<bool> = (0..d).map(|j| j % 3 != 1).collect();
        mask[0] = true;
        let t = mask.iter().filter(|&&m| m).count();
        let (x, sh, sc) = (rng.vec(n * d, -3.0, 3.0), rng.vec(n * t, -1.0, 1.0), rng.vec(n * t, -4.0, 4.0));
        let acc0 = rng.vec(n, -1.0, 1.0);
        for inverse in [false, true] {
            let mut rec = ctx().recorder();
            rec.set_loop_budget(budget);
            let xt = up(&x, &[n, d]);
            let (y, l) =
                ops::affine_coupling(&mut rec, &xt, &up(&sh, &[n, t]), &up(&sc, &[n, t]), &mask, inverse).unwrap();
            let rs = ops::row_sum_add(&mut rec, &xt, Some(&up(&acc0, &[n])), 0.5, 0.25).unwrap();
            let lp = ops::normal_logprob(&mut rec, &xt, None, 0.0).unwrap();
            let hs = [rec.read_back(&y), rec.read_back(&l), rec.read_back(&rs), rec.read_back(&lp)];
            let done = rec.submit().unwrap();
            let what = format!("[{n}, {d}] budget {budget} inverse {inverse}");
            let (wy, wl) = rf::affine_coupling(&x, &[n, d], &sh, &sc, &mask, inverse).unwrap();
            assert_close(&done.f32(hs[0]), &wy, 1e-5, 1e-5, &format!("affine {what}"));
            assert_close(&done.f32(hs[1]), &wl, 1e-3, 1e-5, &format!("affine logdet {what}"));
            let want: Vec<f32> = (0..n)
                .map(|r| {
                    (acc0[r] as f64 + 0.25 + 0.5 * x[r * d..(r + 1) * d].iter().map(|&v| v as f64).sum::<f64>()) as f32
                })
                .collect();
            assert_close(&done.f32(hs[2]), &want, 1e-3, 1e-5, &format!("row_sum_add {what}"));
            assert_close(
                &done.f32(hs[3]),
                &rf::normal_logprob(&x, &[n, d], None, 0.0).unwrap(),
                1e-3,
                1e-4,
                &format!("normal_logprob {what}"),
            );
        }
    }
}

/// A NaN input takes nflows' outside branch (its inside mask is false for NaN): output NaN,
/// log-det 0; ±inf are outside too. Fused and large-K paths.
#[test]
fn spline_nan_input() {
    let mut rng = SplitMix::new(61);
    let k = 6;
    let mut s = spline(&mut rng, 4, k, -0.5, 0.5);
    s.x[1] = f32::NAN;
    s.x[2] = f32::INFINITY;
    s.x[3] = f32::NEG_INFINITY;
    for inverse in [false, true] {
        let p = SplineParams { inverse, ..Default::default() };
        let (want_y, want_l) = rf::rq_spline_one(s.x[1], &s.w[k..2 * k], &s.h[k..2 * k], &s.d[k - 1..2 * (k - 1)], &p);
        assert!(want_y.is_nan() && want_l == 0.0, "reference: {want_y} {want_l}");
        for budget in [crate::common::budget(), 16] {
            let (gy, gl) = gpu_budget(budget, &s.x, (&s.w, &s.h, &s.d), k, None, &p);
            assert!(gy[1].is_nan() && gl[1] == 0.0, "NaN input, budget {budget}: {} {}", gy[1], gl[1]);
            assert_eq!((gy[2], gy[3], gl[2], gl[3]), (f32::INFINITY, f32::NEG_INFINITY, 0.0, 0.0));
            let (wy, wl) = rf::rq_spline_one(s.x[0], &s.w[..k], &s.h[..k], &s.d[..k - 1], &p);
            assert!((gy[0] - wy).abs() < 1e-4 && (gl[0] - wl).abs() < 1e-4, "finite neighbour: {} {}", gy[0], gl[0]);
        }
    }
}

#[test]
fn flow_references_refuse_as_the_ops_do() {
    use crate::common::{ctx, refused_length, refused_param, refused_shape, up};
    let x = vec![0.5f32; 4 * 5];
    let mask = [true, false, true, false, false];
    // A shift for another row count; a mask of another width: the reference and the op alike.
    refused_shape(rf::affine_coupling(&x, &[4, 5], &x[..6], &x[..8], &mask, false), "affine_coupling", "shift");
    let (xt, st) = (up(&x, &[4, 5]), up(&x[..8], &[4, 2]));
    let op = vcortex::ops::affine_coupling(&mut ctx().recorder(), &xt, &up(&x[..6], &[3, 2]), &st, &mask, false);
    refused_shape(op, "affine_coupling", "shift");
    refused_length(rf::affine_coupling(&x[1..], &[4, 5], &x[..8], &x[..8], &mask, false), "affine_coupling", "input");
    // ActNorm: a log_s of the wrong width; normal_logprob: an `add` for another row count, a
    // constant that is not finite.
    refused_shape(rf::actnorm(&x, &[4, 5], &x[..4], &x[..5], false), "actnorm", "log_s");
    refused_shape(rf::normal_logprob(&x, &[4, 5], Some(&x[..3]), 0.0), "normal_logprob", "add");
    refused_param(rf::normal_logprob(&x, &[4, 5], None, f32::INFINITY), "normal_logprob", "constant");
    // normal_logprob adds `add` and `constant` as the op does.
    let lp = rf::normal_logprob(&x, &[4, 5], Some(&[1.0, 2.0, 3.0, 4.0]), 0.5).unwrap();
    let base = rf::normal_logprob(&x, &[4, 5], None, 0.0).unwrap();
    for (r, (a, b)) in lp.iter().zip(&base).enumerate() {
        assert!((a - b - (r as f32 + 1.5)).abs() < 1e-5, "row {r}: {a} vs {b}");
    }
}
