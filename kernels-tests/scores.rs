//! The Sensorium scores (shaders/scores.wgsl) against the f64 reference: random shapes with and
//! without repeats, lowered loop budgets (split images, merge levels), more than 65,535 trials,
//! constant and NaN neurons, the refusals, and the golden numpy port of upstream.

use crate::common::{assert_close_nan, ctx, data_dir, refused, refused_length, refused_param, refused_shape, up};
use vcortex::ops::{self, Repeats, ScoreParams, ScoreSummary};
use vcortex::reference;
use vcortex::rng::SplitMix;
use vcortex::Error;

/// Runs the op with `budget` (None: the device's), one submit, and reads the output back.
fn run_scores(r: &[f32], p: &[f32], shape: [usize; 2], rep: Option<&Repeats>, budget: Option<u64>) -> Vec<f32> {
    let mut rec = ctx().recorder();
    if let Some(b) = budget {
        rec.set_loop_budget(b);
    }
    let (rt, pt) = (up(r, &shape), up(p, &shape));
    let y = ops::scores(&mut rec, &rt, &pt, rep, &ScoreParams::default()).expect("op refused valid input");
    assert_eq!(y.shape(), [if rep.is_some() { 4 } else { 1 }, shape[1]]);
    let h = rec.read_back(&y);
    rec.submit().expect("submit").f32(h)
}

/// Random ids: `images` images of 2..=max_rep repeats each (or `fixed` repeats), trials shuffled,
/// ids spread out and negative too.
fn random_ids(rng: &mut SplitMix, images: usize, max_rep: usize, fixed: Option<usize>) -> Vec<i64> {
    let mut ids = Vec::new();
    for g in 0..images {
        let reps = fixed.unwrap_or_else(|| rng.range(2, max_rep));
        ids.extend(std::iter::repeat_n(g as i64 * 7919 - 5000, reps));
    }
    for i in (1..ids.len()).rev() {
        ids.swap(i, rng.range(0, i));
    }
    ids
}

/// Responses with an image signal (so that FEV is well away from 0) plus trial noise, and
/// predictions that follow the signal partly; `offset` shifts both.
fn data(rng: &mut SplitMix, ids: Option<&[i64]>, t: usize, m: usize, offset: f32) -> (Vec<f32>, Vec<f32>) {
    let sig: Vec<f32> = rng.vec(64 * m, -1.0, 1.0);
    let (mut r, mut p) = (Vec::with_capacity(t * m), Vec::with_capacity(t * m));
    for tr in 0..t {
        let img = ids.map_or(tr % 64, |ids| ids[tr].rem_euclid(64) as usize);
        for j in 0..m {
            let s = sig[img * m + j];
            let gain = 0.3 + 0.7 * (j as f32 / m as f32);
            r.push(offset + s + 0.5 * (rng.uniform() as f32 - 0.5));
            p.push(offset + gain * s + 0.3 * (rng.uniform() as f32 - 0.5));
        }
    }
    (r, p)
}

fn check(r: &[f32], p: &[f32], t: usize, m: usize, rep: Option<&Repeats>, budget: Option<u64>, what: &str) {
    let want = reference::scores(r, p, &[t, m], rep, &ScoreParams::default()).expect("reference");
    let got = run_scores(r, p, [t, m], rep, budget);
    assert_close_nan(&got, &want, 1e-5, 1e-5, what);
}

#[test]
fn scores_random_shapes() {
    let mut rng = SplitMix::new(140);
    for case in 0..24 {
        let m = [1, 1, 3, 255, 256, 257][case % 6].max(rng.range(1, if case % 3 == 0 { 300 } else { 8 }));
        let budget = if case % 2 == 0 { None } else { Some(rng.range(16, 64) as u64) };
        if case % 4 == 0 {
            let t = rng.range(1, 700);
            let (r, p) = data(&mut rng, None, t, m, 0.0);
            check(&r, &p, t, m, None, budget, &format!("scores T {t} M {m} budget {budget:?}"));
        } else {
            let images = rng.range(2, 40);
            let ids = random_ids(&mut rng, images, if case % 4 == 3 { 200 } else { 12 }, None);
            let rep = Repeats::from_ids(&ids).unwrap();
            let t = ids.len();
            let (r, p) = data(&mut rng, Some(&ids), t, m, 0.0);
            check(&r, &p, t, m, Some(&rep), budget, &format!("scores T {t} M {m} images {images} budget {budget:?}"));
        }
    }
}

/// Images much larger than a segment (pieces merged in levels, then closed), mixed with small
/// ones around them, on a lowered budget.
#[test]
fn scores_split_images() {
    let mut rng = SplitMix::new(141);
    for budget in [16u64, 23, 40] {
        let mut ids: Vec<i64> = Vec::new();
        for (g, reps) in [3usize, 900, 2, 2, 17, 5000, 4, 40].into_iter().enumerate() {
            ids.extend(std::iter::repeat_n(g as i64, reps));
        }
        let rep = Repeats::from_ids(&ids).unwrap();
        let (t, m) = (ids.len(), 5);
        let (r, p) = data(&mut rng, Some(&ids), t, m, 0.0);
        check(&r, &p, t, m, Some(&rep), Some(budget), &format!("split images budget {budget}"));
    }
}

/// More than 65,535 trials (lavapipe's loop counter) with few neurons, with and without repeats,
/// one image of 40,000 trials among them, and an offset of 100 (means far from 0).
#[test]
fn scores_past_65535_trials() {
    let mut rng = SplitMix::new(142);
    let m = 3;
    let mut ids = random_ids(&mut rng, 600, 0, Some(50));
    ids.extend(std::iter::repeat_n(123_456_789, 40_000));
    let rep = Repeats::from_ids(&ids).unwrap();
    let t = ids.len();
    let (r, p) = data(&mut rng, Some(&ids), t, m, 100.0);
    check(&r, &p, t, m, None, None, "70,000 trials");
    check(&r, &p, t, m, Some(&rep), None, "70,000 trials in 601 images");
}

/// One neuron, one trial (correlation 0 as numpy gives it: 0 / eps²), two trials.
#[test]
fn scores_tiny() {
    assert_eq!(run_scores(&[2.0], &[3.0], [1, 1], None, None), vec![0.0]);
    check(&[1.0, 2.0], &[2.0, 5.0], 2, 1, None, None, "T 2");
    let rep = Repeats::from_ids(&[4, 4]).unwrap();
    check(&[1.0, 2.0], &[2.0, 5.0], 2, 1, Some(&rep), None, "one image of two trials");
    let rep = Repeats::from_ids(&[0, 1, 0, 1]).unwrap();
    check(&[1.0, 2.0, 3.0, 0.5], &[0.0, 1.0, 2.0, 4.0], 4, 1, Some(&rep), None, "two images");
}

/// A constant neuron: correlations 0 (eps), FEV 0/0 = NaN and FEVE −Inf (or NaN when the
/// predictions are exact), as numpy divides; the other neurons are untouched.
#[test]
fn scores_constant_neurons() {
    let mut rng = SplitMix::new(143);
    let ids = random_ids(&mut rng, 10, 6, None);
    let rep = Repeats::from_ids(&ids).unwrap();
    let (t, m) = (ids.len(), 4);
    let (mut r, mut p) = data(&mut rng, Some(&ids), t, m, 0.0);
    for tr in 0..t {
        r[tr * m] = 0.75;
        r[tr * m + 1] = -2.0;
        p[tr * m + 1] = -2.0;
        p[tr * m + 2] = 5.0;
    }
    let want = reference::scores(&r, &p, &[t, m], Some(&rep), &ScoreParams::default()).unwrap();
    assert_eq!([want[0], want[m], want[1], want[m + 1], want[m + 2]], [0.0; 5]);
    assert!(want[2 * m].is_nan() && want[3 * m] == f32::NEG_INFINITY && want[3 * m + 1].is_nan());
    check(&r, &p, t, m, Some(&rep), None, "constant neurons");
    check(&r, &p, t, m, Some(&rep), Some(16), "constant neurons, budget 16");
}

/// A NaN or an infinity in a neuron's responses or predictions makes that neuron's scores NaN
/// (FEV only from the responses), and only that neuron's.
#[test]
fn scores_nan_propagates() {
    let mut rng = SplitMix::new(144);
    let ids = random_ids(&mut rng, 8, 40, None);
    let rep = Repeats::from_ids(&ids).unwrap();
    let (t, m) = (ids.len(), 6);
    let (mut r, mut p) = data(&mut rng, Some(&ids), t, m, 0.0);
    r[(t / 2) * m + 1] = f32::NAN;
    p[(t - 1) * m + 3] = f32::NAN;
    r[m + 4] = f32::INFINITY;
    let got = run_scores(&r, &p, [t, m], Some(&rep), Some(16));
    for j in 0..m {
        for row in 0..4 {
            // FEV reads only the responses: a NaN prediction leaves it finite.
            let bad = [1, 4].contains(&j) || (j == 3 && row != 2);
            assert_eq!(got[row * m + j].is_nan(), bad, "row {row} neuron {j}: {}", got[row * m + j]);
        }
    }
    check(&r, &p, t, m, Some(&rep), None, "NaN neurons");
}

#[test]
fn scores_refusals() {
    let p = ScoreParams::default();
    let (a, b) = (up(&[1.0; 12], &[4, 3]), up(&[1.0; 12], &[3, 4]));
    let flat = up(&[1.0; 12], &[12]);
    let rep = Repeats::from_ids(&[0, 0, 1, 1]).unwrap();
    let mut rec = ctx().recorder();
    refused_shape(ops::scores(&mut rec, &a, &b, None, &p), "scores", "predictions");
    refused_shape(ops::scores(&mut rec, &flat, &flat, None, &p), "scores", "responses");
    let rep3 = Repeats::from_ids(&[0, 0, 1, 1, 1]).unwrap();
    refused_shape(ops::scores(&mut rec, &a, &a, Some(&rep3), &p), "scores", "ids");
    for eps in [f32::NAN, -1e-8, f32::INFINITY] {
        refused_param(ops::scores(&mut rec, &a, &a, Some(&rep), &ScoreParams { eps }), "scores", "eps");
    }
    assert_eq!(rec.dispatch_count(), 0, "a refused call records nothing");
    // A single repeat of an image, and no ids at all.
    let e = refused_param(Repeats::from_ids(&[0, 0, 1, 2, 2]), "scores", "ids");
    assert!(e.to_string().contains("image id 1"), "{e}");
    refused_param(Repeats::from_ids(&[]), "scores", "ids");
    // The reference: empty data, and data that does not fill the shape.
    refused_shape(reference::scores(&[], &[], &[0, 3], None, &p), "scores", "responses");
    refused_length(reference::scores(&[1.0; 11], &[1.0; 12], &[4, 3], None, &p), "scores", "responses");
    refused_length(reference::scores(&[1.0; 12], &[1.0; 13], &[4, 3], None, &p), "scores", "predictions");
    refused_shape(reference::scores(&[1.0; 12], &[1.0; 12], &[4, 3], Some(&rep3), &p), "scores", "ids");
    // An empty tensor never reaches the op: the upload refuses it.
    let e = refused(vcortex::Tensor::from_f32(ctx(), &[], &[0, 3]));
    assert!(matches!(e, Error::Shape { .. }), "{e:?}");
}

/// The summary follows sensorium: NaN correlations count as 0, FEVE only over FEV >= threshold.
#[test]
fn scores_summary_as_upstream() {
    let v = [0.5, f32::NAN, 0.1, 0.3, 0.2, 0.4, 0.1, 0.2, 0.5, 0.9, 0.8, 0.7];
    let s = ScoreSummary::new(&v, 3, 0.15).unwrap();
    assert!((s.correlation - 0.2).abs() < 1e-7 && s.correlation_nan == 1);
    assert!((s.repeat_correlation.unwrap() - 0.3).abs() < 1e-7);
    assert_eq!(s.feve_neurons, 2);
    assert!((s.feve.unwrap() - 0.75).abs() < 1e-7, "{s:?}");
    let one = ScoreSummary::new(&v[..3], 3, 0.15).unwrap();
    assert!(one.repeat_correlation.is_none() && one.feve.is_none());
    refused_shape(ScoreSummary::new(&v[..5], 3, 0.15), "scores", "scores");
}

/// The golden case of scripts/golden_scores.py (a plain-numpy port of upstream's functions): the
/// GPU op within 1e-5 of it, and the reference within 1e-6.
#[test]
fn scores_golden_numpy() {
    let f = vcortex::io::read_weights(&data_dir("scores").join("scores.safetensors")).expect("golden file");
    let get = |k: &str| f.tensors.get(k).unwrap_or_else(|| panic!("golden tensor {k}")).clone();
    let (r, p, ids) = (get("responses"), get("predictions"), get("image_ids"));
    let (t, m) = (r.shape[0], r.shape[1]);
    let ids: Vec<i64> = ids.data.iter().map(|&v| v as i64).collect();
    let rep = Repeats::from_ids(&ids).unwrap();
    let want: Vec<f32> =
        ["correlation", "repeat_correlation", "fev", "feve"].iter().flat_map(|k| get(k).data).collect();
    let refr = reference::scores(&r.data, &p.data, &[t, m], Some(&rep), &ScoreParams::default()).unwrap();
    assert_close_nan(&refr, &want, 1e-6, 1e-6, "reference vs numpy");
    for budget in [None, Some(16)] {
        let got = run_scores(&r.data, &p.data, [t, m], Some(&rep), budget);
        assert_close_nan(&got, &want, 1e-5, 1e-5, &format!("GPU vs numpy, budget {budget:?}"));
    }
    let single = run_scores(&r.data, &p.data, [t, m], None, None);
    assert_close_nan(&single, &want[..m], 1e-5, 1e-5, "GPU single-trial vs numpy");
    let s = ScoreSummary::new(&want, m, 0.15).unwrap();
    let means = get("means").data;
    assert!((s.correlation - means[0] as f64).abs() < 1e-6, "{s:?} {means:?}");
    assert!((s.repeat_correlation.unwrap() - means[1] as f64).abs() < 1e-6);
    assert!((s.feve.unwrap() - means[2] as f64).abs() < 1e-6);
}

/// `vcortex score` on the golden file (responses, predictions and I64 image ids in one file):
/// the JSON means are upstream's, `-o` holds the per-neuron arrays; float ids from another file
/// give the same; a single-repeat image is refused in one line, naming the file, writing nothing.
#[test]
fn score_cli() {
    let dir = std::env::temp_dir().join(format!("vcortex-score-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let golden = data_dir("scores").join("scores.safetensors");
    let g = golden.to_str().unwrap();
    let f = vcortex::io::read_weights(&golden).unwrap();
    let out = dir.join("scores.safetensors");
    let o = out.to_str().unwrap();
    let run =
        crate::common::vcortex(&["score", "--responses", g, "--predictions", g, "--repeats-by", g, "--json", "-o", o]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("one JSON object");
    let means = &f.tensors["means"].data;
    for (k, i) in [("correlation", 0), ("repeat_correlation", 1), ("feve", 2)] {
        let got = v[k].as_f64().unwrap();
        assert!((got - means[i] as f64).abs() < 1e-5, "{k}: {got} vs {}", means[i]);
    }
    assert_eq!((v["trials"].as_u64(), v["neurons"].as_u64(), v["images"].as_u64()), (Some(60), Some(21), Some(13)));
    let written = vcortex::io::read_safetensors(&out).unwrap();
    for k in ops::SCORE_ROWS {
        assert_close_nan(&written.tensors[k].data, &f.tensors[k].data, 1e-5, 1e-5, k);
    }

    // Float ids in their own file, the tensors picked as the only ones of their files.
    let t = |k: &str| f.tensors[k].clone();
    let (r, p, ids) = (dir.join("r.safetensors"), dir.join("p.safetensors"), dir.join("ids.safetensors"));
    crate::common::write_tensors(&r, &[("spikes", &t("responses"))]);
    crate::common::write_tensors(&p, &[("mouse1", &t("predictions"))]);
    crate::common::write_tensors(&ids, &[("frame", &t("image_ids"))]);
    let args = |ids: &std::path::Path| {
        let v = ["score", "--responses", r.to_str().unwrap(), "--predictions", p.to_str().unwrap()];
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.extend(["--repeats-by".into(), ids.to_str().unwrap().into()]);
        v
    };
    let a = args(&ids);
    let run = crate::common::vcortex(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = String::from_utf8_lossy(&run.stdout);
    let feve_line = text.lines().find(|l| l.trim_start().starts_with("feve")).expect("a feve line");
    let feve: f64 = feve_line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(text.contains("13 images") && (feve - means[2] as f64).abs() < 2e-6, "{text}");

    let mut single = t("image_ids");
    single.data[0] = 1e6;
    let bad = dir.join("single.safetensors");
    crate::common::write_tensors(&bad, &[("ids", &single)]);
    let mut a = args(&bad);
    a.extend(["-o".into(), dir.join("never.safetensors").to_str().unwrap().into()]);
    let run = crate::common::vcortex(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("single.safetensors") && err.contains("image id 1000000"), "{err}");
    assert!(!dir.join("never.safetensors").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The eval row: a case with image ids gives the four named outputs on both backends, within the
/// golden values; ids that are not whole numbers are refused by name.
#[test]
fn scores_eval_row() {
    use vcortex::eval::{self, Backend};
    let f = vcortex::io::read_weights(&data_dir("scores").join("scores.safetensors")).unwrap();
    let mut tensors = std::collections::BTreeMap::new();
    for k in ["responses", "predictions", "image_ids"] {
        tensors.insert(k.to_string(), f.tensors[k].clone());
    }
    let meta: std::collections::HashMap<String, String> = [("op".to_string(), "scores".to_string())].into();
    let (case, spec) = eval::Case::new(meta.clone(), tensors.clone()).unwrap();
    for b in [Backend::Gpu(ctx()), Backend::Cpu] {
        let out = eval::run(&case, spec, &b).unwrap();
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ops::SCORE_ROWS);
        for (n, t) in &out {
            assert_close_nan(&t.data, &f.tensors[n].data, 1e-5, 1e-5, n);
        }
    }
    tensors.get_mut("image_ids").unwrap().data[3] = 0.5;
    let (case, spec) = eval::Case::new(meta, tensors).unwrap();
    for b in [Backend::Gpu(ctx()), Backend::Cpu] {
        refused_param(eval::run(&case, spec, &b), "scores", "image_ids");
    }
}
