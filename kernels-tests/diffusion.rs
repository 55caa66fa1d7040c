//! The sampler kernels (shaders/diffusion.wgsl) against the per-element CPU reference of
//! diffusers' DDPM and DDIM steps, for every schedule, prediction type and spacing; Philox noise
//! fused into the step equals the same stream drawn by ops::random_normal; refusals.

use crate::common::{assert_close, ctx, is_param, is_shape, refused, run1, up};
use vcortex::diffusion::{BetaSchedule, DdimConfig, DdpmConfig, Prediction, Spacing, VarianceType};
use vcortex::ops::{self, Noise};
use vcortex::reference;
use vcortex::rng::SplitMix;

const SCHEDULES: [BetaSchedule; 3] = [BetaSchedule::Linear, BetaSchedule::ScaledLinear, BetaSchedule::SquaredCosCapV2];
const PREDICTIONS: [Prediction; 3] = [Prediction::Epsilon, Prediction::Sample, Prediction::VPrediction];

/// A DDPM config with diffusers' default beta endpoints, fixed-small variance, no clipping or
/// thresholding; each test states what it varies.
fn ddpm_cfg(t_train: usize, schedule: BetaSchedule, steps: usize, prediction: Prediction) -> DdpmConfig {
    DdpmConfig {
        num_train_timesteps: t_train,
        beta_schedule: schedule,
        beta_start: 1e-4,
        beta_end: 0.02,
        num_inference_steps: steps,
        prediction,
        variance: VarianceType::FixedSmall,
        clip: None,
        threshold: None,
    }
}

/// A DDIM config over 1000 training steps, eta 0, alpha-bar one at the end, leading spacing, no
/// clipping or thresholding.
fn ddim_cfg(schedule: BetaSchedule, steps: usize, prediction: Prediction) -> DdimConfig {
    DdimConfig {
        num_train_timesteps: 1000,
        beta_schedule: schedule,
        beta_start: 1e-4,
        beta_end: 0.02,
        num_inference_steps: steps,
        prediction,
        clip: None,
        threshold: None,
        eta: 0.0,
        set_alpha_to_one: true,
        steps_offset: 0,
        spacing: Spacing::Leading,
    }
}

fn data(rng: &mut SplitMix, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (rng.vec(n, -2.0, 2.0), rng.vec(n, -2.0, 2.0), reference::random::normal(rng.next_u64(), 0, n))
}

fn gpu_step(
    shape: &[usize],
    s: &[f32],
    m: &[f32],
    z: &[f32],
    f: impl FnOnce(
        &mut vcortex::Recorder,
        &vcortex::Tensor,
        &vcortex::Tensor,
        Noise,
    ) -> vcortex::Result<(vcortex::Tensor, vcortex::Tensor)>,
) -> (Vec<f32>, Vec<f32>) {
    let (st, mt, zt) = (up(s, shape), up(m, shape), up(z, shape));
    let mut rec = ctx().recorder();
    let (p, x) = f(&mut rec, &st, &mt, Noise::Tensor(&zt)).expect("step refused a valid case");
    let (hp, hx) = (rec.read_back(&p), rec.read_back(&x));
    let done = rec.submit().unwrap();
    (done.f32(hp), done.f32(hx))
}

#[test]
fn ddpm_steps_match_the_reference() {
    let mut rng = SplitMix::new(41);
    let shape = [3, 5, 7];
    let (s, m, z) = data(&mut rng, 105);
    for schedule in SCHEDULES {
        for prediction in PREDICTIONS {
            for (variance, clip, t_train, steps) in [
                (VarianceType::FixedSmall, Some(1.0), 1000, 50),
                (VarianceType::FixedLarge, None, 100, 100),
                (VarianceType::FixedSmall, Some(2.0), 50, 7),
            ] {
                let cfg = DdpmConfig { variance, clip, ..ddpm_cfg(t_train, schedule, steps, prediction) };
                let ts = cfg.timesteps().unwrap();
                for t in [ts[0], ts[ts.len() / 2], ts[ts.len() - 1]] {
                    let (wp, wx) = reference::diffusion::ddpm_step(&cfg, t, &s, &m, Some(&z)).unwrap();
                    let (gp, gx) =
                        gpu_step(&shape, &s, &m, &z, |rec, st, mt, n| ops::ddpm_step(rec, &cfg, t, st, mt, n));
                    let what = format!(
                        "ddpm {schedule:?} {prediction:?} {variance:?} clip {clip:?} T {t_train} n {steps} t {t}"
                    );
                    // x0 of epsilon prediction divides by sqrt(abar), large near t = T: relative tolerance.
                    assert_close(&gx, &wx, 1e-4, 1e-4, &format!("{what}: x0"));
                    assert_close(&gp, &wp, 1e-4, 1e-4, &format!("{what}: prev"));
                }
            }
        }
    }
}

#[test]
fn ddim_steps_match_the_reference() {
    let mut rng = SplitMix::new(42);
    let shape = [2, 60, 3];
    let (s, m, z) = data(&mut rng, 360);
    for schedule in SCHEDULES {
        for prediction in PREDICTIONS {
            for (eta, one, offset, spacing, steps) in [
                (0.0, true, 0, Spacing::Leading, 50),
                (0.5, false, 1, Spacing::Leading, 20),
                (1.0, true, 0, Spacing::Trailing, 20),
                (0.3, false, 0, Spacing::Linspace, 7),
            ] {
                let cfg = DdimConfig {
                    clip: if eta > 0.4 { Some(1.5) } else { None },
                    eta,
                    set_alpha_to_one: one,
                    steps_offset: offset,
                    spacing,
                    ..ddim_cfg(schedule, steps, prediction)
                };
                let ts = cfg.timesteps().unwrap();
                for t in [ts[0], ts[ts.len() / 2], ts[ts.len() - 1]] {
                    let (wp, wx) = reference::diffusion::ddim_step(&cfg, t, &s, &m, Some(&z)).unwrap();
                    let (gp, gx) =
                        gpu_step(&shape, &s, &m, &z, |rec, st, mt, n| ops::ddim_step(rec, &cfg, t, st, mt, n));
                    let what = format!("ddim {schedule:?} {prediction:?} eta {eta} one {one} offset {offset} {spacing:?} n {steps} t {t}");
                    assert_close(&gx, &wx, 1e-4, 1e-4, &format!("{what}: x0"));
                    assert_close(&gp, &wp, 1e-4, 1e-4, &format!("{what}: prev"));
                }
            }
        }
    }
}

/// Noise drawn inside the step kernel is the stream ops::random_normal draws.
#[test]
fn fused_philox_noise_equals_the_drawn_stream() {
    let mut rng = SplitMix::new(43);
    let shape = [4, 60, 51];
    let n = 4 * 60 * 51;
    let (s, m) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
    let cfg = DdimConfig { eta: 1.0, ..ddim_cfg(BetaSchedule::SquaredCosCapV2, 20, Prediction::Sample) };
    let (st, mt) = (up(&s, &shape), up(&m, &shape));
    let mut rec = ctx().recorder();
    let z = ops::random_normal(&mut rec, &shape, 99, 5).unwrap();
    let (a, _) = ops::ddim_step(&mut rec, &cfg, 500, &st, &mt, Noise::Tensor(&z)).unwrap();
    let (b, _) = ops::ddim_step(&mut rec, &cfg, 500, &st, &mt, Noise::Philox { seed: 99, offset: 5 }).unwrap();
    let (ha, hb) = (rec.read_back(&a), rec.read_back(&b));
    let done = rec.submit().unwrap();
    assert_close(&done.f32(hb), &done.f32(ha), 1e-6, 1e-6, "fused Philox noise");
    // And equal to the CPU reference with the CPU's stream.
    let (want, _) =
        reference::diffusion::ddim_step(&cfg, 500, &s, &m, Some(&reference::random::normal(99, 5, n))).unwrap();
    assert_close(&done.f32(hb), &want, 1e-4, 1e-4, "fused Philox noise vs CPU");
}

#[test]
fn guidance_and_forward_noising() {
    let mut rng = SplitMix::new(44);
    let (u, c, z) = (rng.vec(1000, -1.0, 1.0), rng.vec(1000, -1.0, 1.0), rng.vec(1000, -1.0, 1.0));
    let got = run1(|rec| ops::cfg_combine(rec, &up(&u, &[1000]), &up(&c, &[1000]), 2.5));
    let want: Vec<f32> = u.iter().zip(&c).map(|(&u, &c)| (u as f64 + 2.5 * (c as f64 - u as f64)) as f32).collect();
    assert_close(&got, &want, 1e-6, 1e-6, "cfg");
    let got = run1(|rec| ops::add_noise(rec, &up(&u, &[1000]), 0.3, Noise::Tensor(&up(&z, &[1000]))));
    let want: Vec<f32> =
        u.iter().zip(&z).map(|(&x, &z)| (0.3f64.sqrt() * x as f64 + 0.7f64.sqrt() * z as f64) as f32).collect();
    assert_close(&got, &want, 1e-6, 1e-6, "add_noise");
}

#[test]
fn steps_refuse_bad_input() {
    let x = up(&[0.0; 6], &[2, 3]);
    let y = up(&[0.0; 4], &[2, 2]);
    let ddpm = DdpmConfig { clip: Some(1.0), ..ddpm_cfg(1000, BetaSchedule::Linear, 10, Prediction::Epsilon) };
    let mut rec = ctx().recorder();
    let e = ops::ddpm_step(&mut rec, &ddpm, 901, &x, &x, Noise::Tensor(&x)).unwrap_err();
    assert!(is_param(&e, "ddpm_step", "timestep"), "{e:?}");
    assert!(e.to_string().contains("not on the schedule"), "{e}");
    let e = ops::ddpm_step(&mut rec, &ddpm, 900, &x, &y, Noise::Tensor(&x)).unwrap_err();
    assert!(is_shape(&e, "sampler_step", "model_output"), "{e:?}");
    let e = ops::ddpm_step(&mut rec, &ddpm, 900, &x, &x, Noise::None).unwrap_err();
    assert!(is_param(&e, "sampler_step", "noise"), "{e:?}");
    let e = ops::ddpm_step(&mut rec, &ddpm, 900, &x, &x, Noise::Tensor(&y)).unwrap_err();
    assert!(is_shape(&e, "sampler_step", "noise"), "{e:?}");
    // The last step adds no noise and needs none.
    ops::ddpm_step(&mut rec, &ddpm, 0, &x, &x, Noise::None).unwrap();
    for (bad, op, name) in [
        (DdpmConfig { num_inference_steps: 1001, ..ddpm.clone() }, "schedule", "num_inference_steps"),
        (DdpmConfig { beta_end: f64::NAN, ..ddpm.clone() }, "schedule", "beta_end"),
        (DdpmConfig { beta_start: 0.0, ..ddpm.clone() }, "schedule", "beta_start"),
        (DdpmConfig { clip: Some(f64::INFINITY), ..ddpm.clone() }, "ddpm_step", "clip_sample_range"),
        (DdpmConfig { num_train_timesteps: 0, ..ddpm.clone() }, "schedule", "num_train_timesteps"),
    ] {
        let e = refused(ops::ddpm_step(&mut rec, &bad, 900, &x, &x, Noise::Tensor(&x)));
        assert!(is_param(&e, op, name), "{bad:?}: expected {op} {name}, got {e:?}");
    }
    assert_eq!(rec.dispatch_count(), 1);
}

/// Dynamic thresholding (diffusers `thresholding=True`): the per-sample quantile of |x̂0| by radix
/// select on the GPU against the sorted f64 reference, on rows of awkward lengths (1, odd, past
/// one workgroup's stride), with ties, and with s inside and outside [1, max].
#[test]
fn dynamic_thresholding_matches_the_reference() {
    use vcortex::diffusion::Threshold;
    let mut rng = SplitMix::new(47);
    for (rows, len, scale, ratio, max, pred) in [
        (3usize, 105usize, 3.0f32, 0.995, 1.5, Prediction::Sample),
        (1, 1, 5.0, 0.995, 2.0, Prediction::Sample),
        (7, 3060, 4.0, 0.9, 2.5, Prediction::Epsilon),
        (2, 257, 0.5, 0.995, 1.0, Prediction::VPrediction),
        (4, 1000, 10.0, 1.0, 20.0, Prediction::Sample),
        (5, 64, 3.0, 0.5, 3.0, Prediction::Sample),
    ] {
        let n = rows * len;
        let s = rng.vec(n, -scale, scale);
        let mut m = rng.vec(n, -scale, scale);
        // Ties: a run of equal magnitudes of both signs, large enough to straddle the selected
        // ranks (the top 20 of |x0| in each row, so both order statistics of the quantile sit
        // in the run or at its edge).
        for row in 0..rows {
            for k in 0..len.min(20) {
                m[row * len + k] = if k % 2 == 0 { 1.25 * scale } else { -1.25 * scale };
            }
        }
        let z = rng.vec(n, -1.0, 1.0);
        let th = Threshold { ratio, max };
        let ddpm = DdpmConfig {
            clip: Some(1.0),
            threshold: Some(th),
            ..ddpm_cfg(50, BetaSchedule::SquaredCosCapV2, 10, pred)
        };
        let t = ddpm.timesteps().unwrap()[3];
        let shape = [rows, len];
        let mut rec = ctx().recorder();
        let (prev, x0) =
            ops::ddpm_step(&mut rec, &ddpm, t, &up(&s, &shape), &up(&m, &shape), Noise::Tensor(&up(&z, &shape)))
                .unwrap();
        let (hp, hx) = (rec.read_back(&prev), rec.read_back(&x0));
        let done = rec.submit().unwrap();
        let (wp, wx) = reference::diffusion::ddpm_step_rows(&ddpm, t, &s, &m, Some(&z), rows, None).unwrap();
        let what = format!("threshold rows {rows} len {len} ratio {ratio} max {max} {pred:?}");
        assert_close(&done.f32(hx), &wx, 1e-5, 1e-4, &format!("{what}: x0"));
        assert_close(&done.f32(hp), &wp, 1e-5, 1e-4, &format!("{what}: prev"));
        let got = done.f32(hx);
        assert!(got.iter().all(|v| v.abs() <= 1.0 + 1e-6), "{what}: thresholded x0 within [-1, 1]");
        // DDIM thresholds the same way.
        let ddim = DdimConfig { threshold: Some(th), ..ddim_cfg(BetaSchedule::Linear, 20, pred) };
        let t = ddim.timesteps().unwrap()[4];
        let got = run1(|rec| ops::ddim_step(rec, &ddim, t, &up(&s, &shape), &up(&m, &shape), Noise::None).map(|r| r.1));
        let (_, wx) = reference::diffusion::ddim_step_rows(&ddim, t, &s, &m, None, rows, None).unwrap();
        assert_close(&got, &wx, 1e-5, 1e-4, &format!("{what}: ddim x0"));
    }
    // Bad parameters are refused before anything is recorded.
    let x = up(&[0.0; 6], &[2, 3]);
    for (th, name) in [
        (Threshold { ratio: 0.0, max: 1.0 }, "dynamic_thresholding_ratio"),
        (Threshold { ratio: 1.5, max: 1.0 }, "dynamic_thresholding_ratio"),
        (Threshold { ratio: 0.9, max: 0.5 }, "sample_max_value"),
        (Threshold { ratio: f64::NAN, max: 1.0 }, "dynamic_thresholding_ratio"),
    ] {
        let cfg = DdpmConfig { threshold: Some(th), ..ddpm_cfg(50, BetaSchedule::Linear, 10, Prediction::Sample) };
        let mut rec = ctx().recorder();
        let e = refused(ops::ddpm_step(&mut rec, &cfg, 45, &x, &x, Noise::Tensor(&x)));
        assert!(is_param(&e, "ddpm_step", name), "{th:?}: expected {name}, got {e:?}");
        assert_eq!(rec.dispatch_count(), 0);
    }
}

/// Classifier (mean) and score guidance against the reference, on DDPM and DDIM steps of every
/// prediction type, with clipping, at the first, a middle and the last step; scale 0 and the
/// noiseless last step leave a mean-guided step as it was; bad guidance is refused.
#[test]
fn classifier_and_score_guidance_match_the_reference() {
    use ops::{Guidance, GuidanceKind};
    let mut rng = SplitMix::new(44);
    let shape = [4, 6, 5];
    let (s, m, z) = data(&mut rng, 120);
    let g = rng.vec(120, -1.0, 1.0);
    let gt = up(&g, &shape);
    for prediction in PREDICTIONS {
        let ddpm = DdpmConfig { clip: Some(1.0), ..ddpm_cfg(1000, BetaSchedule::SquaredCosCapV2, 20, prediction) };
        let ddim = DdimConfig { eta: 0.7, ..ddim_cfg(BetaSchedule::Linear, 20, prediction) };
        // The guided GPU step on coefficients c against the reference's (prev, x0).
        let check = |what: &str, c: &vcortex::diffusion::StepCoeffs, kind, want: &(Vec<f32>, Vec<f32>)| {
            let (gp, gx) = gpu_step(&shape, &s, &m, &z, |rec, st, mt, n| {
                ops::sampler_step_guided(rec, st, mt, n, c, Guidance { grad: &gt, scale: 0.8, kind })
            });
            assert_close(&gx, &want.1, 1e-4, 1e-4, &format!("{what}: x0"));
            assert_close(&gp, &want.0, 1e-4, 1e-4, &format!("{what}: prev"));
        };
        for kind in [GuidanceKind::Mean, GuidanceKind::Score] {
            let rg = Some((&g[..], kind, 0.8));
            let ts = ddpm.timesteps().unwrap();
            for t in [ts[0], ts[ts.len() / 2], ts[ts.len() - 1]] {
                let want = reference::diffusion::ddpm_step_rows(&ddpm, t, &s, &m, Some(&z), 1, rg).unwrap();
                let what = format!("ddpm {prediction:?} {kind:?} t {t}");
                check(&what, &ddpm.coeffs(t).unwrap(), kind, &want);
                let wp = &want.0;
                let (up_, _) = reference::diffusion::ddpm_step(&ddpm, t, &s, &m, Some(&z)).unwrap();
                let moved = wp.iter().zip(&up_).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                // Guidance moves the first (noisiest) step; mean guidance leaves the noiseless last
                // step (t = 0) exactly as it was.
                if t == ts[0] {
                    assert!(moved > 1e-3, "{what}: guidance moved the step by {moved}");
                }
                if t == 0 && kind == GuidanceKind::Mean {
                    assert_eq!(*wp, up_, "{what}");
                }
            }
            let ts = ddim.timesteps().unwrap();
            for t in [ts[0], ts[ts.len() / 2], ts[ts.len() - 1]] {
                let want = reference::diffusion::ddim_step_rows(&ddim, t, &s, &m, Some(&z), 1, rg).unwrap();
                check(&format!("ddim {prediction:?} {kind:?} t {t}"), &ddim.coeffs(t).unwrap(), kind, &want);
            }
        }
    }
    // Scale 0 is the unguided step, bit for bit.
    let ddpm = ddpm_cfg(1000, BetaSchedule::Linear, 10, Prediction::Epsilon);
    let t = ddpm.timesteps().unwrap()[3];
    let c = ddpm.coeffs(t).unwrap();
    let plain = gpu_step(&shape, &s, &m, &z, |rec, st, mt, n| ops::sampler_step(rec, st, mt, n, &c));
    for kind in [GuidanceKind::Mean, GuidanceKind::Score] {
        let zero = gpu_step(&shape, &s, &m, &z, |rec, st, mt, n| {
            ops::sampler_step_guided(rec, st, mt, n, &c, Guidance { grad: &gt, scale: 0.0, kind })
        });
        assert_eq!(zero, plain, "{kind:?} with scale 0");
    }
    // Refusals: a non-finite scale, a mis-shaped gradient, score guidance without alpha-bar.
    let (st, mt, zt) = (up(&s, &shape), up(&m, &shape), up(&z, &shape));
    let mut rec = ctx().recorder();
    let bad = [
        (c, Guidance { grad: &gt, scale: f64::NAN, kind: GuidanceKind::Mean }, "not finite"),
        (c, Guidance { grad: &up(&g[..60], &[60]), scale: 1.0, kind: GuidanceKind::Mean }, "gradient"),
        (
            vcortex::diffusion::StepCoeffs { a_m: 1.0, p_x0: 1.0, ..Default::default() },
            Guidance { grad: &gt, scale: 1.0, kind: GuidanceKind::Score },
            "alpha-bar",
        ),
    ];
    for (c, guide, msg) in bad {
        let e = ops::sampler_step_guided(&mut rec, &st, &mt, Noise::Tensor(&zt), &c, guide).err().expect(msg);
        assert!(e.to_string().contains(msg), "{e}");
    }
    assert_eq!(rec.dispatch_count(), 0);
}

/// A thresholded DDPM step on `shape` under `budget`: (prev, x0) from the GPU and the reference.
fn threshold_case(
    s: &[f32],
    m: &[f32],
    shape: &[usize],
    th: vcortex::diffusion::Threshold,
    budget: u64,
) -> ((Vec<f32>, Vec<f32>), (Vec<f32>, Vec<f32>)) {
    let cfg = DdpmConfig { threshold: Some(th), ..ddpm_cfg(50, BetaSchedule::Linear, 10, Prediction::Sample) };
    let t = cfg.timesteps().unwrap()[2];
    let z = vec![0.25f32; s.len()];
    let got = gpu_step(shape, s, m, &z, |rec, st, mt, noise| {
        rec.set_loop_budget(budget);
        ops::ddpm_step(rec, &cfg, t, st, mt, noise)
    });
    let want = reference::diffusion::ddpm_step_rows(&cfg, t, s, m, Some(&z), shape[0], None).unwrap();
    (got, want)
}

/// Dynamic thresholding over one sample of 8,000,000 elements: one workgroup's radix select ran
/// 8 strided loops of 31,250 iterations per invocation, past lavapipe's 65,535 (the last rounds
/// saw empty histograms); the rounds' histograms now come from slices in workgroups of their own.
#[test]
fn dynamic_thresholding_over_one_large_sample() {
    use vcortex::diffusion::Threshold;
    let mut rng = SplitMix::new(48);
    let len = 8_000_000;
    let (s, m) = (rng.vec(len, -2.0, 2.0), rng.vec(len, -3.0, 3.0));
    let th = Threshold { ratio: 0.995, max: 5.0 };
    let ((gp, gx), (wp, wx)) = threshold_case(&s, &m, &[1, len], th, crate::common::budget());
    assert_close(&gx, &wx, 1e-5, 1e-4, "threshold [1, 8000000]: x0");
    assert_close(&gp, &wp, 1e-5, 1e-4, "threshold [1, 8000000]: prev");
}

/// Random odd rows (ties straddling the ranks, whole and fractional positions) under budgets of
/// 16..64: the split select in slices (one, several, ragged) against the reference.
#[test]
fn dynamic_thresholding_under_small_budgets() {
    use vcortex::diffusion::Threshold;
    let mut rng = SplitMix::new(49);
    for case in 0..16 {
        let budget = rng.range(16, 64) as u64;
        let rows = rng.range(1, 4);
        let len =
            [rng.range(1, 50), rng.range(200, 3000), rng.range(3000, 9000), 256 * (budget as usize / 2)][case % 4];
        let ratio = [0.5, 0.9, 0.995, 1.0][case / 4];
        let n = rows * len;
        let s = rng.vec(n, -2.0, 2.0);
        let mut m = rng.vec(n, -3.0, 3.0);
        for row in 0..rows {
            for k in 0..len.min(30) {
                m[row * len + k] = if k % 2 == 0 { 2.75 } else { -2.75 };
            }
        }
        let th = Threshold { ratio, max: 4.0 };
        let ((gp, gx), (wp, wx)) = threshold_case(&s, &m, &[rows, len], th, budget);
        let what = format!("threshold rows {rows} len {len} ratio {ratio} budget {budget}");
        assert_close(&gx, &wx, 1e-5, 1e-4, &format!("{what}: x0"));
        assert_close(&gp, &wp, 1e-5, 1e-4, &format!("{what}: prev"));
    }
}

/// A NaN in a sample makes its quantile NaN (torch.quantile), so the whole thresholded sample is
/// NaN; an infinite top element makes torch.lerp's upper form NaN too; other samples are
/// untouched. Clipping keeps a NaN where it is (torch.clamp). One workgroup and the split select.
#[test]
fn thresholding_and_clipping_propagate_nan() {
    use vcortex::diffusion::Threshold;
    let mut rng = SplitMix::new(50);
    let (rows, len) = (3, 3000);
    let s = rng.vec(rows * len, -2.0, 2.0);
    let mut m = rng.vec(rows * len, -3.0, 3.0);
    m[17] = f32::NAN;
    m[len + 5] = f32::INFINITY;
    let th = Threshold { ratio: 0.9999, max: 4.0 };
    for budget in [crate::common::budget(), 16] {
        let ((gp, gx), (wp, wx)) = threshold_case(&s, &m, &[rows, len], th, budget);
        assert!(wx[..2 * len].iter().all(|v| v.is_nan()) && wx[2 * len..].iter().all(|v| v.is_finite()));
        crate::common::assert_close_nan(&gx, &wx, 1e-5, 1e-4, &format!("threshold NaN/Inf budget {budget}: x0"));
        crate::common::assert_close_nan(&gp, &wp, 1e-5, 1e-4, &format!("threshold NaN/Inf budget {budget}: prev"));
    }
    let cfg = DdpmConfig { clip: Some(1.0), ..ddpm_cfg(50, BetaSchedule::Linear, 10, Prediction::Sample) };
    let t = cfg.timesteps().unwrap()[2];
    let z = vec![0.0f32; s.len()];
    let (gp, gx) = gpu_step(&[rows, len], &s, &m, &z, |rec, st, mt, noise| ops::ddpm_step(rec, &cfg, t, st, mt, noise));
    let (wp, wx) = reference::diffusion::ddpm_step_rows(&cfg, t, &s, &m, Some(&z), rows, None).unwrap();
    assert!(wx[17].is_nan() && wx.iter().filter(|v| v.is_nan()).count() == 1);
    crate::common::assert_close_nan(&gx, &wx, 1e-5, 1e-4, "clip NaN: x0");
    crate::common::assert_close_nan(&gp, &wp, 1e-5, 1e-4, "clip NaN: prev");
}

/// The thresholding quantile reads x̂0 as the step does: with Prediction::Sample x̂0 is the model
/// output alone (its sample coefficient is 0), so an infinite sample element must not make the
/// quantile's |0 · inf| = NaN and the whole sample NaN (diffusers' x̂0 = model_output is finite).
/// One workgroup and the split select.
#[test]
fn thresholding_quantile_drops_a_zero_coefficient_term() {
    use vcortex::diffusion::Threshold;
    let mut rng = SplitMix::new(51);
    let (rows, len) = (2, 3000);
    let mut s = rng.vec(rows * len, -2.0, 2.0);
    let m = rng.vec(rows * len, -3.0, 3.0);
    s[11] = f32::INFINITY;
    let th = Threshold { ratio: 0.99, max: 4.0 };
    for budget in [crate::common::budget(), 16] {
        let ((gp, gx), (wp, wx)) = threshold_case(&s, &m, &[rows, len], th, budget);
        assert!(wx.iter().all(|v| v.is_finite()), "reference x0 is finite");
        crate::common::assert_close_nan(&gx, &wx, 1e-5, 1e-4, &format!("threshold inf sample budget {budget}: x0"));
        crate::common::assert_close_nan(&gp, &wp, 1e-5, 1e-4, &format!("threshold inf sample budget {budget}: prev"));
    }
}
