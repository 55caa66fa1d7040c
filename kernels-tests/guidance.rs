//! Platypose's energy guidance: the multi-view projection, energy and gradient kernel and the
//! plateau-scheduled SGD refinement against the f64 reference and against PyTorch autograd
//! (scripts/golden_platypose.py, data/platypose).

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::{assert_close, ctx, refused_length, refused_param, refused_shape, run1, up};
use vcortex::io::{read_safetensors, HostTensor};
use vcortex::ops::{self, Camera, Observations, Refinement};
use vcortex::reference::guidance as rg;
use vcortex::rng::SplitMix;

fn data(name: &str) -> (BTreeMap<String, HostTensor>, std::collections::HashMap<String, String>) {
    let f = read_safetensors(&crate::common::data_dir("platypose").join(name)).unwrap();
    (f.tensors, f.metadata)
}

/// The golden cameras (cameras.safetensors: R, t, intrinsics, radial, tangential).
pub fn golden_cameras() -> Vec<Camera> {
    let (t, _) = data("cameras.safetensors");
    vcortex::models::platypose::cameras_from(&t).unwrap()
}

#[test]
fn multiview_energy_gradient_and_projection_match_pytorch() {
    let cams = golden_cameras();
    let (t, _) = data("energy.safetensors");
    let (x0, root, x2d, w) = (&t["x0"], &t["root"], &t["x2d"], &t["weights"]);
    let (f, j) = (x0.shape[1], x0.shape[2] / 3);
    let obs = Observations::new(ctx(), cams.clone(), &x2d.data, Some(&w.data), Some(&root.data), f, j).unwrap();
    let x = up(&x0.data, &x0.shape);
    let mut rec = ctx().recorder();
    let (e, g) = ops::multiview_energy(&mut rec, &x, &obs).unwrap();
    let p = ops::guidance::project(&mut rec, &x, &obs).unwrap();
    let hs = [rec.read_back(&e), rec.read_back(&g), rec.read_back(&p)];
    let d = rec.submit().unwrap();
    assert_close(&d.f32(hs[0]), &t["energy"].data, 1e-4, 1e-4, "energy (GPU vs autograd)");
    assert_close(&d.f32(hs[1]), &t["grad"].data, 1e-4, 1e-4, "gradient (GPU vs autograd)");
    assert_close(&d.f32(hs[2]), &t["proj"].data, 1e-5, 1e-5, "projection (GPU)");
    let scene = rg::Scene::new(&cams, &x2d.data, &w.data, &root.data, f, j).unwrap();
    let (re, rgr) = scene.energy(&x0.data);
    let f32v = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<_>>();
    assert_close(&f32v(re), &t["energy"].data, 1e-5, 1e-5, "energy (reference vs autograd)");
    assert_close(&f32v(rgr), &t["grad"].data, 1e-5, 1e-5, "gradient (reference vs autograd)");
    assert_close(&scene.project(&x0.data), &t["proj"].data, 1e-6, 1e-6, "projection (reference)");
    // Monocular: camera 0, absolute coordinates, no weights (Platypose's monocular_2d_energy).
    let x2d0 = &x2d.data[..f * j * 2];
    let mono = Observations::new(ctx(), vec![cams[0]], x2d0, None, None, f, j).unwrap();
    let xm = up(&t["x_mono"].data, &x0.shape);
    let mut rec = ctx().recorder();
    let (e, g) = ops::multiview_energy(&mut rec, &xm, &mono).unwrap();
    let hs = [rec.read_back(&e), rec.read_back(&g)];
    let d = rec.submit().unwrap();
    assert_close(&d.f32(hs[0]), &t["energy_mono"].data, 1e-4, 1e-4, "monocular energy");
    assert_close(&d.f32(hs[1]), &t["grad_mono"].data, 1e-4, 1e-4, "monocular gradient");
}

/// Random cameras looking at random poses (awkward sizes: one frame, one joint, many samples),
/// GPU against the reference, and the reference's gradient against central differences.
#[test]
fn multiview_energy_on_random_cameras() {
    let mut rng = SplitMix::new(401);
    for (s, f, j, c) in [(1usize, 1usize, 1usize, 1usize), (7, 3, 17, 3), (300, 2, 5, 2)] {
        let cams = random_cameras(&mut rng, c);
        let x0 = rng.vec(s * f * j * 3, -0.5, 0.5);
        let root = rng.vec(f * 3, -0.3, 0.3);
        let kp = rng.vec(c * f * j * 2, -0.3, 0.3);
        let w = rng.vec(c * f * j * 2, 0.0, 2.0);
        let obs = Observations::new(ctx(), cams.clone(), &kp, Some(&w), Some(&root), f, j).unwrap();
        let x = up(&x0, &[s, f, j * 3]);
        let mut rec = ctx().recorder();
        let (e, g) = ops::multiview_energy(&mut rec, &x, &obs).unwrap();
        let hs = [rec.read_back(&e), rec.read_back(&g)];
        let d = rec.submit().unwrap();
        let scene = rg::Scene::new(&cams, &kp, &w, &root, f, j).unwrap();
        let (re, rgr) = scene.energy(&x0);
        let what = format!("random cameras s {s} f {f} j {j} c {c}");
        let f32v = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        assert_close(&d.f32(hs[0]), &f32v(&re), 1e-5, 1e-4, &format!("{what}: energy"));
        assert_close(&d.f32(hs[1]), &f32v(&rgr), 1e-5, 1e-4, &format!("{what}: gradient"));
        // Central differences of the reference energy on a few coordinates.
        for k in [0usize, x0.len() / 2, x0.len() - 1] {
            let h = 1e-3f32;
            let (mut xp, mut xm) = (x0.clone(), x0.clone());
            xp[k] += h;
            xm[k] -= h;
            let si = k / (f * j * 3);
            let ep = scene.energy(&xp).0[si];
            let em = scene.energy(&xm).0[si];
            let fd = (ep - em) / (xp[k] as f64 - xm[k] as f64);
            assert!((fd - rgr[k]).abs() <= 1e-3 * (1.0 + rgr[k].abs()), "{what}: d/dx{k} {fd} vs {}", rgr[k]);
        }
    }
}

#[test]
fn refinement_cuts_the_lr_on_plateaus_as_pytorch() {
    let cams = golden_cameras();
    let (t, meta) = data("refine.safetensors");
    let (e, _) = data("energy.safetensors");
    let (root, x2d, w) = (&e["root"], &e["x2d"], &e["weights"]);
    let x0 = &t["x0_in"];
    let (f, j) = (x0.shape[1], x0.shape[2] / 3);
    let info: serde_json::Value = serde_json::from_str(&meta["info"]).unwrap();
    let substeps: usize = info["num_substeps"].as_str().unwrap().parse().unwrap();
    let obs = Observations::new(ctx(), cams.clone(), &x2d.data, Some(&w.data), Some(&root.data), f, j).unwrap();
    for tag in ["a", "b"] {
        let scale: f32 = info[format!("energy_scale_{tag}")].as_str().unwrap().parse().unwrap();
        let r = Refinement::new(scale, substeps);
        let mut rec = ctx().recorder();
        let (y, trace) = ops::refine(&mut rec, &up(&x0.data, &x0.shape), &obs, &r).unwrap();
        let hy = rec.read_back(&y);
        let hl = rec.read_back(&trace.lrs);
        let he: Vec<_> = trace.energies.iter().map(|t| rec.read_back(t)).collect();
        let d = rec.submit().unwrap();
        let want_lrs = &t[&format!("lrs_{tag}")].data;
        assert_close(&d.f32(hl), want_lrs, 1e-6, 1e-5, &format!("refine {tag}: lr per substep"));
        let energies: Vec<f32> = he.iter().flat_map(|h| d.f32(*h)).collect();
        assert_close(&energies, &t[&format!("energies_{tag}")].data, 1e-4, 1e-4, &format!("refine {tag}: energies"));
        assert_close(&d.f32(hy), &t[&format!("x0_out_{tag}")].data, 1e-4, 1e-4, &format!("refine {tag}: x0"));
        // The reference follows the same path.
        let (ry, re, rl) = rg::Scene::new(&cams, &x2d.data, &w.data, &root.data, f, j).unwrap().refine(&x0.data, &r);
        assert_close(&rl.iter().map(|&v| v as f32).collect::<Vec<_>>(), want_lrs, 1e-6, 1e-5, "reference lrs");
        assert_close(
            &re.concat().iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &energies,
            1e-4,
            1e-4,
            "reference energies",
        );
        assert_close(&ry, &t[&format!("x0_out_{tag}")].data, 1e-4, 1e-4, "reference x0");
    }
    // A plateau cut needs a rise: the golden's lr sequences do fall.
    assert!(t["lrs_a"].data.windows(2).any(|p| p[1] < p[0]));
}

#[test]
fn guidance_refuses_bad_input() {
    let cams = golden_cameras();
    let obs =
        |kp: &[f32], w: Option<&[f32]>, root: Option<&[f32]>| Observations::new(ctx(), cams.clone(), kp, w, root, 2, 3);
    let kp = vec![0.0; 2 * 2 * 3 * 2];
    refused_shape(obs(&kp[1..], None, None), "multiview_energy", "keypoints"); // keypoints of the wrong size
    refused_shape(obs(&kp, Some(&kp[1..]), None), "multiview_energy", "weights"); // weights of the wrong size
    refused_shape(obs(&kp, None, Some(&[0.0; 5])), "multiview_energy", "root"); // root of the wrong size
    let mut nan = kp.clone();
    nan[3] = f32::NAN;
    refused_param(obs(&nan, None, None), "multiview_energy", "keypoints"); // non-finite keypoints
    refused_param(Observations::new(ctx(), vec![], &[], None, None, 2, 3), "multiview_energy", "cameras"); // no camera
    let mut singular = cams[0];
    singular.rotation = [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
    refused_param(Observations::new(ctx(), vec![singular], &kp[..12], None, None, 2, 3), "camera", "rotation"); // singular rotation
    let mut inf = cams[0];
    inf.radial[1] = f64::INFINITY;
    refused_param(Observations::new(ctx(), vec![inf], &kp[..12], None, None, 2, 3), "camera", "parameters"); // non-finite distortion
                                                                                                             // The reference's scene refuses the same: a singular camera, inputs of the wrong lengths.
    refused_param(rg::Scene::new(&[singular], &kp[..12], &kp[..12], &[0.0; 6], 2, 3), "camera", "rotation");
    refused_length(rg::Scene::new(&cams[..1], &kp[..11], &kp[..12], &[0.0; 6], 2, 3), "multiview_energy", "keypoints");
    refused_length(rg::Scene::new(&cams[..1], &kp[..12], &kp[..12], &[0.0; 5], 2, 3), "multiview_energy", "root");
    let o = obs(&kp, None, None).unwrap();
    let mut rec = ctx().recorder();
    refused_shape(ops::multiview_energy(&mut rec, &up(&[0.0; 2 * 2 * 8], &[2, 2, 8]), &o), "multiview_energy", "x0"); // x0 not [S, F, J*3]
    refused_param(
        ops::refine(&mut rec, &up(&[0.0; 18], &[1, 2, 9]), &o, &Refinement::new(f32::NAN, 3)),
        "refine",
        "energy_scale",
    );
    refused_param(
        ops::refine(&mut rec, &up(&[0.0; 18], &[1, 2, 9]), &o, &Refinement { factor: 1.5, ..Refinement::new(1.0, 3) }),
        "refine",
        "factor",
    );
    assert_eq!(rec.dispatch_count(), 0, "refusals record nothing");
    // A NaN energy stops the refinement (PyTorch's break): no lr is used and x0 comes back
    // unchanged, although its gradient is not finite. A joint at the camera centre projects to
    // 0/0, with a zero weight on it (0 · NaN) only the energy's NaN is left to see.
    let cam = cams[0];
    let mut x0 = vec![0.1f32; 2 * 9];
    x0[..3].copy_from_slice(&[cam.centre[0] as f32, cam.centre[1] as f32, cam.centre[2] as f32]);
    let one = Observations::new(ctx(), vec![cam], &kp[..12], Some(&[0.0; 12]), None, 2, 3).unwrap();
    let x = up(&x0, &[1, 2, 9]);
    let mut rec = ctx().recorder();
    let (y, tr) = ops::refine(&mut rec, &x, &one, &Refinement::new(1.0, 2)).unwrap();
    let (hy, hl, he) = (rec.read_back(&y), rec.read_back(&tr.lrs), rec.read_back(&tr.energies[0]));
    let d = rec.submit().unwrap();
    assert!(d.f32(he)[0].is_nan(), "the energy is NaN");
    assert_eq!(d.f32(hl), vec![0.0, 0.0], "stopped: no lr used");
    let got = d.f32(hy);
    assert!(got.iter().zip(&x0).all(|(a, b)| a.to_bits() == b.to_bits()), "x0 unchanged: {got:?}");
    let one_cam = [cam];
    let r =
        rg::Scene::new(&one_cam, &kp[..12], &[0.0; 12], &[0.0; 6], 2, 3).unwrap().refine(&x0, &Refinement::new(1.0, 2));
    assert!(r.0.iter().zip(&x0).all(|(a, b)| a.to_bits() == b.to_bits()), "the reference keeps x0 too");
    refused_param(Refinement { threshold: 1.0, ..Refinement::new(1.0, 2) }.validate(), "refine", "threshold");
    // threshold in [0, 1)
}

#[test]
fn respaced_schedule_matches_guided_diffusion() {
    use vcortex::diffusion::{BetaSchedule, SpacedSchedule};
    let (t, meta) = data("schedule.safetensors");
    let info: serde_json::Value = serde_json::from_str(&meta["info"]).unwrap();
    for n in [20usize, 5] {
        let s = SpacedSchedule::new(BetaSchedule::SquaredCosCapV2, 50, n).unwrap();
        let map: Vec<usize> = serde_json::from_str(info[format!("ddim{n}_timestep_map")].as_str().unwrap()).unwrap();
        assert_eq!(s.timestep_map, map, "ddim{n} timestep map");
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        for (name, got) in [
            ("betas", &s.betas),
            ("alphas_cumprod", &s.alphas_cumprod),
            ("alphas_cumprod_prev", &s.alphas_cumprod_prev),
            ("posterior_variance", &s.posterior_variance),
            ("posterior_log_variance_clipped", &s.posterior_log_variance_clipped),
            ("posterior_mean_coef1", &s.posterior_mean_coef1),
            ("posterior_mean_coef2", &s.posterior_mean_coef2),
        ] {
            assert_close(&f(got), &t[&format!("ddim{n}_{name}")].data, 1e-6, 1e-6, &format!("ddim{n} {name}"));
        }
    }
    // np.linspace(0, T - 1, n).astype(int) where truncation is fragile: (length, sum, first six)
    // printed by numpy 2.
    for (t, n, len, sum, first) in [
        (1000usize, 124usize, 124usize, 61876usize, [0usize, 8, 16, 24, 32, 40]),
        (1000, 244, 244, 121752, [0, 4, 8, 12, 16, 20]),
        (31, 23, 23, 334, [0, 1, 2, 4, 5, 6]),
        (1000, 50, 50, 24951, [0, 20, 40, 61, 81, 101]),
    ] {
        let m = SpacedSchedule::new(BetaSchedule::Linear, t, n).unwrap().timestep_map;
        assert_eq!(
            (m.len(), m.iter().sum::<usize>(), &m[..6]),
            (len, sum, &first[..]),
            "space_timesteps({t}, ddim{n})"
        );
    }
    refused_param(SpacedSchedule::new(BetaSchedule::SquaredCosCapV2, 50, 51), "schedule", "steps");
    refused_param(SpacedSchedule::new(BetaSchedule::SquaredCosCapV2, 50, 1), "schedule", "steps");
}

fn sampler(kind: &str, steps: usize, skip: usize, substeps: usize) -> vcortex::models::platypose::Platypose {
    use vcortex::models::platypose::{Platypose, PlatyposeConfig};
    let dir = crate::common::data_dir("mdm");
    let sd = vcortex::io::read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
    let cfg = PlatyposeConfig::from_json(&format!(
        r#"{{"mdm": {{"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64}},
            "train_steps": 50, "steps": {steps}, "sampler": "{kind}", "skip_timesteps": {skip},
            "energy_scale": 30.0, "substeps": {substeps}}}"#
    ))
    .unwrap();
    Platypose::new(ctx(), &sd, cfg).unwrap()
}

/// The whole guided sampling loop against the PyTorch golden (the MDM of data/mdm, cameras.safetensors,
/// ddim5 respacing, energy scale 30, 3 substeps), ancestral and η = 0 DDIM, step by step.
#[test]
fn guided_sampling_reproduces_the_pytorch_loop() {
    use vcortex::models::platypose::{observations_from, SamplerNoise};
    let (cam, _) = data("cameras.safetensors");
    let obs = observations_from(ctx(), &cam).unwrap();
    for (file, kind, skip) in [("guided.safetensors", "ancestral", 0usize), ("guided_ddim.safetensors", "ddim", 1)] {
        let (g, meta) = data(file);
        let info: serde_json::Value = serde_json::from_str(&meta["info"]).unwrap();
        let p = sampler(kind, 5, skip, 3);
        let init = if kind == "ancestral" { &g["x_T"] } else { &g["z"] };
        let (s, f) = (init.shape[0], init.shape[1]);
        let z = up(&init.data, &init.shape);
        let steps: Vec<vcortex::Tensor> = match g.get("noise") {
            Some(n) => n.data.chunks(s * f * 51).map(|c| up(c, &init.shape)).collect(),
            None => Vec::new(),
        };
        let mut rec = ctx().recorder();
        let (x, trace) =
            p.record_sample(&mut rec, s, f, Some(&obs), SamplerNoise::Given { init: &z, steps: &steps }).unwrap();
        let want_t: Vec<usize> = serde_json::from_str(info["model_timestep_per_step"].as_str().unwrap()).unwrap();
        assert_eq!(trace.model_timesteps, want_t, "{file}: model timesteps");
        let hx = rec.read_back(&x);
        let hxt: Vec<_> = trace.x_t.iter().map(|t| rec.read_back(t)).collect();
        let hx0: Vec<_> = trace.x0.iter().map(|t| rec.read_back(t)).collect();
        let hl: Vec<_> = trace.refinements.iter().map(|r| rec.read_back(&r.lrs)).collect();
        let hm: Vec<_> = trace.x0_model.iter().map(|t| rec.read_back(t)).collect();
        let d = rec.submit().unwrap();
        let per = s * f * 51;
        // Step by step, so a mismatch names its step.
        for (i, h) in hxt.iter().enumerate() {
            assert_close(
                &d.f32(*h),
                &g["x_t"].data[i * per..(i + 1) * per],
                1e-4,
                1e-4,
                &format!("{file}: x_t of step {i}"),
            );
        }
        for (i, h) in hx0.iter().enumerate() {
            assert_close(
                &d.f32(*h),
                &g["x0_refined"].data[i * per..(i + 1) * per],
                1e-4,
                1e-4,
                &format!("{file}: refined x0 of step {i}"),
            );
        }
        if let Some(want) = g.get("x0_model") {
            for (i, h) in hm.iter().enumerate() {
                assert_close(
                    &d.f32(*h),
                    &want.data[i * per..(i + 1) * per],
                    1e-4,
                    1e-4,
                    &format!("{file}: model x0 of step {i}"),
                );
            }
        }
        let lrs: Vec<f32> = hl.iter().flat_map(|h| d.f32(*h)).collect();
        assert_close(&lrs, &g["lrs"].data, 1e-6, 1e-6, &format!("{file}: lrs"));
        assert_close(&d.f32(hx), &g["sample"].data, 1e-4, 1e-4, &format!("{file}: final sample"));
        if let Some(xi) = g.get("x_init") {
            assert_close(&d.f32(hxt[0]), &xi.data, 1e-5, 1e-5, "x_init = sqrt(1 - abar) z");
        }
    }
}

/// Seeded sampling: reproducible, one submit, and the unguided sampler runs without observations.
#[test]
fn seeded_sampling_is_reproducible_and_checked() {
    use vcortex::models::platypose::SamplerNoise;
    let (cam, _) = data("cameras.safetensors");
    let obs = vcortex::models::platypose::observations_from(ctx(), &cam).unwrap();
    let p = sampler("ddim", 5, 0, 2);
    let run = |o: Option<&Observations>, seed| {
        let mut rec = ctx().recorder();
        let (x, _) = p.record_sample(&mut rec, 4, 8, o, SamplerNoise::Philox { seed }).unwrap();
        let h = rec.read_back(&x);
        rec.submit().unwrap().f32(h)
    };
    let (a, b, c) = (run(Some(&obs), 9), run(Some(&obs), 9), run(Some(&obs), 10));
    assert_eq!(a, b, "same seed, same sample");
    assert_ne!(a, c, "another seed, another sample");
    assert!(a.iter().all(|v| v.is_finite()));
    let free = run(None, 9);
    assert_ne!(free, a, "guidance changes the sample");
    // Refusals: frames that disagree with the observations, zero samples, too few noise tensors.
    let mut rec = ctx().recorder();
    refused_shape(
        p.record_sample(&mut rec, 4, 7, Some(&obs), SamplerNoise::Philox { seed: 1 }),
        "platypose",
        "observations",
    );
    refused_shape(p.record_sample(&mut rec, 0, 8, None, SamplerNoise::Philox { seed: 1 }), "platypose", "sample");
    let anc = sampler("ancestral", 5, 0, 1);
    let z = up(&vec![0.0; 2 * 8 * 51], &[2, 8, 51]);
    refused_param(
        anc.record_sample(&mut rec, 2, 8, None, SamplerNoise::Given { init: &z, steps: &[] }),
        "platypose",
        "noise",
    );
    assert_eq!(rec.dispatch_count(), 0, "refusals record nothing");
}

/// `vcortex sample` on the golden MDM and cameras: writes [S, F, 51] and the final energies,
/// which guidance brings well below the unguided run's; bad input gets one line.
#[test]
fn cli_sample() {
    let root = crate::common::data_dir("");
    let dir = std::env::temp_dir().join(format!("vcortex-sample-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("c.json");
    std::fs::write(
        &cfg,
        r#"{"mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64}, "steps": 5, "substeps": 4}"#,
    )
    .unwrap();
    let w = root.join("mdm/weights.safetensors");
    let obs = root.join("platypose/cameras.safetensors");
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "sample",
            "--weights",
            w.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--samples",
            "6",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        crate::common::vcortex(&args)
    };
    let (g, u) = (dir.join("g.safetensors"), dir.join("u.safetensors"));
    let out = run(&["--observations", obs.to_str().unwrap(), "--seed", "4"], &g);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gt = read_safetensors(&g).unwrap().tensors;
    assert_eq!(gt["samples"].shape, vec![6, 8, 51]);
    assert_eq!(gt["energy"].shape, vec![6]);
    let out = run(&["--frames", "8", "--seed", "4"], &u);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The unguided samples' energy under the same observations.
    let (c, _) = data("cameras.safetensors");
    let o = vcortex::models::platypose::observations_from(ctx(), &c).unwrap();
    let ut = read_safetensors(&u).unwrap().tensors;
    let eu = run1(|rec| Ok(ops::multiview_energy(rec, &up(&ut["samples"].data, &[6, 8, 51]), &o)?.0));
    let (mg, mu) = (gt["energy"].data.iter().sum::<f32>(), eu.iter().sum::<f32>());
    assert!(mg < 0.5 * mu, "guided energy {mg} vs unguided {mu}");
    let out = run(&["--frames", "7", "--observations", obs.to_str().unwrap()], &u);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("frames"));
    let out = run(&[], &u);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--frames"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// c random cameras around the origin: a rotation about the vertical axis, the camera 5 units back
/// along its optical axis (P = R (X - t), so P.z = 5 + R_z . X stays near 5).
fn random_cameras(rng: &mut SplitMix, c: usize) -> Vec<Camera> {
    (0..c)
        .map(|_| {
            let a = rng.uniform() * std::f64::consts::TAU;
            let (sa, ca) = (a.sin(), a.cos());
            Camera {
                rotation: [[ca, 0.0, -sa], [0.0, 1.0, 0.0], [sa, 0.0, ca]],
                centre: [-5.0 * sa, 0.1, -5.0 * ca],
                intrinsics: [1.1 + rng.uniform() * 0.2, 1.0 + rng.uniform() * 0.2, 0.02, -0.03, 0.004],
                radial: [-0.2, 0.05, -0.001],
                tangential: [0.001, -0.002],
            }
        })
        .collect()
}

/// Energy, gradient and projections with the loop budget at `budget`, against the reference.
fn energy_case(rng: &mut SplitMix, budget: u64, (s, f, j, c): (usize, usize, usize, usize)) {
    let cams = random_cameras(rng, c);
    let x0 = rng.vec(s * f * j * 3, -0.5, 0.5);
    let root = rng.vec(f * 3, -0.3, 0.3);
    let kp = rng.vec(c * f * j * 2, -0.3, 0.3);
    let w = rng.vec(c * f * j * 2, 0.0, 2.0);
    let obs = Observations::new(ctx(), cams.clone(), &kp, Some(&w), Some(&root), f, j).unwrap();
    let x = up(&x0, &[s, f, j * 3]);
    let mut rec = ctx().recorder();
    rec.set_loop_budget(budget);
    let (e, g) = ops::multiview_energy(&mut rec, &x, &obs).unwrap();
    let p = ops::guidance::project(&mut rec, &x, &obs).unwrap();
    let hs = [rec.read_back(&e), rec.read_back(&g), rec.read_back(&p)];
    let d = rec.submit().unwrap();
    let scene = rg::Scene::new(&cams, &kp, &w, &root, f, j).unwrap();
    let (re, rgr) = scene.energy(&x0);
    let what = format!("s {s} f {f} j {j} cameras {c} budget {budget}");
    let f32v = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    assert_close(&d.f32(hs[0]), &f32v(&re), 1e-5, 1e-4, &format!("{what}: energy"));
    assert_close(&d.f32(hs[1]), &f32v(&rgr), 1e-4, 1e-4, &format!("{what}: gradient"));
    assert_close(&d.f32(hs[2]), &scene.project(&x0), 1e-5, 1e-5, &format!("{what}: projection"));
}

/// 70,000 cameras: each invocation's camera loop ran past lavapipe's 65,535 iterations; the
/// cameras now go in chunks across dispatches. And random camera counts with a lowered budget.
#[test]
fn multiview_energy_split_cameras() {
    let mut rng = SplitMix::new(402);
    energy_case(&mut rng, crate::common::budget(), (2, 1, 2, 70_000));
    for _ in 0..6 {
        let budget = rng.range(16, 64) as u64;
        let shape = (rng.range(1, 5), rng.range(1, 3), rng.range(1, 6), rng.range(1, 150));
        energy_case(&mut rng, budget, shape);
    }
}

/// The plateau scheduler's mean over more samples than 256 × the budget (5,000 samples at budget
/// 16: two chunks), with and without a NaN energy in the second chunk, against the reference.
#[test]
fn refinement_split_samples() {
    let mut rng = SplitMix::new(403);
    let (s, f, j, c) = (5000usize, 1usize, 1usize, 2usize);
    let cams = random_cameras(&mut rng, c);
    let kp = rng.vec(c * f * j * 2, -0.3, 0.3);
    let (w, root) = (vec![1.0f32; c * f * j * 2], vec![0.0f32; 3]);
    let obs = Observations::new(ctx(), cams.clone(), &kp, Some(&w), Some(&root), f, j).unwrap();
    let scene = rg::Scene::new(&cams, &kp, &w, &root, f, j).unwrap();
    for nan in [false, true] {
        let mut x0 = rng.vec(s * f * j * 3, -0.5, 0.5);
        if nan {
            x0[4500 * 3] = f32::NAN;
        }
        let r = Refinement::new(0.05, 4);
        for budget in [16u64, crate::common::budget()] {
            let mut rec = ctx().recorder();
            rec.set_loop_budget(budget);
            let (y, trace) = ops::refine(&mut rec, &up(&x0, &[s, f, j * 3]), &obs, &r).unwrap();
            let (hy, hl) = (rec.read_back(&y), rec.read_back(&trace.lrs));
            let d = rec.submit().unwrap();
            let (ry, _, rl) = scene.refine(&x0, &r);
            let what = format!("refine S {s} budget {budget} nan {nan}");
            let lrs: Vec<f32> = rl.iter().map(|&v| v as f32).collect();
            assert_close(&d.f32(hl), &lrs, 1e-7, 1e-5, &format!("{what}: lrs"));
            let (gy, ry): (Vec<f32>, Vec<f32>) =
                d.f32(hy).iter().zip(&ry).filter(|(_, r)| !r.is_nan()).map(|(&g, &r)| (g, r)).unzip();
            assert_close(&gy, &ry, 1e-4, 1e-4, &format!("{what}: x0"));
        }
    }
}
