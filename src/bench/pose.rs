//! The pose models' cases (extra names beside the standard suite's; docs/bench.md): cGNF hypotheses and the guided
//! Platypose sampling, at the sizes of their issues.

use super::{max_abs_diff, Case, Run, Suite};
use crate::error::Result;
use crate::models::cgnf::{random_state_dict as cgnf_weights, Cgnf, CgnfConfig};
use crate::models::mdm::{random_state_dict as mdm_weights, MdmConfig};
use crate::models::platypose::{MdmJson, Platypose, PlatyposeConfig, SamplerKind, SamplerNoise};
use crate::ops::{Camera, Observations, Refinement};
use crate::reference;
use crate::rng::SplitMix;
use crate::runtime::Context;
use crate::tensor::Tensor;

/// `cgnf_sample_200x1000`: 200 hypotheses for each of 1000 poses from propose's production cGNF
/// (L 10, hidden 100, context 10, DenseSAGE 128; 16 joints), keypoint embedding included; the
/// first pose checked against the f64 reference from the same Philox draws.
pub fn cgnf_case<'c>(suite: &Suite<'c>) -> Result<Case<'c>> {
    let ctx = suite.ctx;
    // Small suite: 8 poses of 6 hypotheses (a software adapter takes seconds a run already).
    let (poses, s) = if suite.small { (8, 6) } else { (1000, 200) };
    {
        let cfg = CgnfConfig::propose();
        let j = cfg.joints;
        let mut m = Cgnf::from_state_dict(cfg, cgnf_weights(&CgnfConfig::propose(), 5, 0.5))?;
        m.upload(ctx)?;
        let mut rng = SplitMix::new(17);
        let kp = rng.vec(poses * j * 2, 400.0, 600.0); // a 200-px person around pixel 500
        let observed: Vec<bool> = (0..poses * j).map(|i| i % 7 != 3).collect();
        let kt = Tensor::from_f32(ctx, &kp, &[poses, j, 2])?;
        let (seed, tau) = (11u64, 0.8f32);
        let model = std::rc::Rc::new(m);
        let (m2, kp2, ob2) = (model.clone(), kp.clone(), observed.clone());
        Ok(Case {
            flops: 0.0,
            bytes: 0.0,
            run: Run::Record(Box::new(move |rec| {
                let cond = model.record_condition(rec, &kt, &observed)?;
                Ok(model.record_sample(rec, Some(&cond), 0, s, tau, seed, 0)?.0)
            })),
            check: Box::new(move |out| {
                let per = s * j * 3;
                let z: Vec<f32> = reference::random::normal(seed, 0, per).iter().map(|v| v * tau).collect();
                let (x, _) = m2.reference_sample(&z, 1, s, Some((&kp2[..j * 2], &ob2[..j])))?;
                Ok((max_abs_diff(&out[..per], &x), if poses > 1 { "slice" } else { "full" }))
            }),
        })
    }
}

/// One H36M-like camera (normalised intrinsics, mild distortion) and keypoints of a random pose
/// 5 units in front of it.
fn bench_observations(ctx: &Context, frames: usize) -> Result<Observations> {
    let cam = Camera {
        rotation: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        centre: [0.0, 0.0, 0.0],
        intrinsics: [2.29, 2.29, 0.01, -0.02, 0.0],
        radial: [-0.2, 0.24, -0.002],
        tangential: [-0.001, 0.001],
    };
    let mut rng = SplitMix::new(23);
    let kp = rng.vec(frames * 17 * 2, -0.4, 0.4);
    let w = rng.vec(frames * 17 * 2, 0.2, 2.0);
    let root: Vec<f32> = (0..frames).flat_map(|f| [0.01 * f as f32, 0.0, 5.0]).collect();
    Observations::new(ctx, vec![cam], &kp, Some(&w), Some(&root), frames, 17)
}

/// `platypose_sample_200x60`: 20-step η = 0 DDIM sampling of 200 hypotheses × 60 frames with
/// Platypose's MDM (d 512, 8 layers, 4 heads, FF 1024) and energy guidance (scale 30, 10 substeps)
/// on one camera; the last refinement and step checked against the f64 reference.
pub fn platypose_case<'c>(suite: &Suite<'c>) -> Result<Case<'c>> {
    let ctx = suite.ctx;
    // Small suite: 6 hypotheses × 10 frames and a 64-wide, 2-layer MDM (the full one takes over a
    // minute a run on a software adapter); same steps, substeps and kernels.
    let (s, f, latent, layers, ff) = if suite.small { (200 / 32, 60 / 6, 64, 2, 128) } else { (200, 60, 512, 8, 1024) };
    {
        let mdm = MdmConfig { features: 51, latent, heads: 4, layers, max_len: 64 };
        let cfg = PlatyposeConfig {
            mdm: MdmJson { features: 51, latent, heads: 4, layers, max_len: 64 },
            train_steps: 50,
            steps: 20,
            sampler: SamplerKind::Ddim,
            skip_timesteps: 0,
            energy_scale: 30.0,
            substeps: 10,
        };
        let p = std::rc::Rc::new(Platypose::new(ctx, &mdm_weights(&mdm, ff, 3), cfg)?);
        let obs = std::rc::Rc::new(bench_observations(ctx, f)?);
        let (p2, o2) = (p.clone(), obs.clone());
        Ok(Case {
            flops: 0.0,
            bytes: 0.0,
            run: Run::Record(Box::new(move |rec| {
                Ok(p.record_sample(rec, s, f, Some(&obs), SamplerNoise::Philox { seed: 8 })?.0)
            })),
            check: Box::new(move |out| {
                // The same run again, keeping every step's input and model output; a middle step
                // (where the DDIM step uses both x0 and eps) and the last one are recomputed on
                // the CPU from them: refinement in f64, then the step.
                let mut rec = ctx.recorder();
                let (_, tr) = p2.record_sample(&mut rec, s, f, Some(&o2), SamplerNoise::Philox { seed: 8 })?;
                let n = tr.x_t.len();
                let steps = [n / 2, n - 1];
                let hs: Vec<_> =
                    steps.iter().map(|&i| (rec.read_back(&tr.x_t[i]), rec.read_back(&tr.x0_model[i]))).collect();
                let next = rec.read_back(&tr.x_t[n / 2 + 1]);
                let done = rec.submit()?;
                let o = &*o2;
                let (kp, w, root) = (o.keypoints.to_vec(ctx)?, o.weights.to_vec(ctx)?, o.root.to_vec(ctx)?);
                let r = Refinement::new(p2.config().energy_scale, p2.config().substeps);
                let scene = reference::guidance::Scene::new(&o.cameras, &kp, &w, &root, f, 17)?;
                let indices = p2.indices();
                let mut err = 0f64;
                for (&i, (hx, hm)) in steps.iter().zip(hs) {
                    let (xt, m) = (done.f32(hx), done.f32(hm));
                    let (x0, _, _) = scene.refine(&m, &r);
                    let c = p2.step_coeffs(indices[i]);
                    let want: Vec<f32> = xt
                        .iter()
                        .zip(&x0)
                        .map(|(&x, &x0)| {
                            let (x, x0) = (x as f64, x0 as f64);
                            (c.p_x0 * x0 + c.p_eps * (c.e_s * x + c.e_m * x0) + c.p_s * x) as f32
                        })
                        .collect();
                    let got = if i == n - 1 { out.to_vec() } else { done.f32(next) };
                    err = err.max(max_abs_diff(&got, &want));
                }
                Ok((err, "slice"))
            }),
        })
    }
}
