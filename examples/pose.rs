//! Embedding vcortex's pose models in a program: 3-D pose hypotheses for detected 2-D keypoints
//! from a cGNF, then motion hypotheses from the Platypose sampler guided by the cameras.
//!
//!     cargo run --release --example pose
//!
//! It runs the small reference models committed in kernels-tests/data (cgnf, mdm, platypose);
//! point the paths at your own propose / Platypose weights to use them.

use std::path::PathBuf;
use std::time::Instant;

use vcortex::io::read_safetensors;
use vcortex::models::platypose::{observations_from, Platypose, PlatyposeConfig, SamplerNoise};
use vcortex::models::Cgnf;
use vcortex::{Context, Tensor};

fn main() -> Result<(), vcortex::Error> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data");
    let ctx = Context::new()?;
    println!("device: {}", ctx.adapter());

    // cGNF: 100 hypotheses per detected pose, their log-densities and the posterior mode.
    let flow = Cgnf::load(&ctx, &data.join("cgnf/weights.safetensors"), &data.join("cgnf/config.json"))?;
    let io = read_safetensors(&data.join("cgnf/io.safetensors"))?.tensors;
    let (kp, obs) = (&io["keypoints"], &io["observed"]);
    let observed: Vec<bool> = obs.data.iter().map(|&v| v > 0.5).collect();
    let t0 = Instant::now();
    let mut rec = ctx.recorder();
    let cond = flow.record_condition(&mut rec, &Tensor::from_f32(&ctx, &kp.data, &kp.shape)?, &observed)?;
    let (samples, logp) = flow.record_sample(&mut rec, Some(&cond), 0, 100, 1.0, 7, 0)?;
    let mode = flow.record_mode(&mut rec, Some(&cond), 0)?;
    let (hs, hl, hm) = (rec.read_back(&samples), rec.read_back(&logp), rec.read_back(&mode));
    let done = rec.submit()?;
    let (lp, m) = (done.f32(hl), done.f32(hm));
    let j = flow.config().joints;
    let best: Vec<f32> = lp.chunks(j).map(|c| c.iter().sum()).collect();
    println!(
        "cgnf: {:?} hypotheses in {:.1} ms (one submit); pose 0: best log p {:.2}, mode joint 0 at {:?}",
        samples.shape(),
        t0.elapsed().as_secs_f64() * 1e3,
        best[..100].iter().cloned().fold(f32::MIN, f32::max),
        &m[..3]
    );
    let _ = done.f32(hs);

    // Platypose: 16 motion hypotheses of 8 frames, each step's x0 refined on the two cameras.
    let sd = vcortex::io::read_weights(&data.join("mdm/weights.safetensors"))?.tensors;
    let cfg = PlatyposeConfig::from_json(
        r#"{"mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64}, "steps": 10, "substeps": 5}"#,
    )?;
    let sampler = Platypose::new(&ctx, &sd, cfg)?;
    let obs = observations_from(&ctx, &read_safetensors(&data.join("platypose/cameras.safetensors"))?.tensors)?;
    let t0 = Instant::now();
    let mut rec = ctx.recorder();
    let (x, _) = sampler.record_sample(&mut rec, 16, obs.frames(), Some(&obs), SamplerNoise::Philox { seed: 3 })?;
    let (e, _) = vcortex::ops::multiview_energy(&mut rec, &x, &obs)?;
    let he = rec.read_back(&e);
    let done = rec.submit()?;
    let energy = done.f32(he);
    println!(
        "platypose: {:?} in {:.1} ms (one submit); reprojection energy min {:.4}, max {:.4}",
        x.shape(),
        t0.elapsed().as_secs_f64() * 1e3,
        energy.iter().cloned().fold(f32::MAX, f32::min),
        energy.iter().cloned().fold(f32::MIN, f32::max)
    );
    Ok(())
}
