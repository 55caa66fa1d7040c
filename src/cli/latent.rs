//! `vcortex predict` with a latent video model's config (`"kind": "latent"`): videos
//! [B, 1, T, H, W] in, the ZIG mean [B, N, T'] out (the last T' frames), and with `--condition`
//! (conditioned on them) or `--targets` (prior samples) the log-likelihood in bits of those
//! responses, batch by batch.

use std::path::Path;

use vcortex::io::{read_safetensors, HostTensor};
use vcortex::models::latent::{Latent, LatentMode, LatentNoise};
use vcortex::{Context, Error, Result};

use super::predict::{Job, LatentArgs};
use super::progress::Progress;

/// The tensor of one of `names` in `path`, or the file's only tensor.
fn one_tensor(path: &Path, names: &[&str]) -> Result<HostTensor> {
    let mut t = read_safetensors(path)?.tensors;
    let found: Vec<String> = t.keys().cloned().collect();
    if let Some(name) = names.iter().find(|n| t.contains_key(**n)) {
        return Ok(t.remove(*name).expect("present"));
    }
    if t.len() == 1 {
        return Ok(t.into_values().next().expect("one tensor"));
    }
    Err(Error::File {
        path: path.display().to_string(),
        reason: format!("no tensor named {} among {}", names.join(" or "), found.join(", ")),
    })
}

/// [B, T', N] → [B, N, T'].
fn frames_last(x: &[f32], [b, t, n]: [usize; 3]) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for bi in 0..b {
        for ti in 0..t {
            for ni in 0..n {
                y[(bi * n + ni) * t + ti] = x[(bi * t + ti) * n + ni];
            }
        }
    }
    y
}

pub fn run(ctx: &Context, model: &Latent, job: &Job, args: LatentArgs) -> Result<()> {
    let (videos, batch) = (job.images, job.batch);
    let cfg = &model.config;
    if let Some(k) = job.key.as_ref().filter(|k| **k != cfg.readout.data_key) {
        return Err(Error::param(
            "predict",
            "--data-key",
            format!("{k:?}: the model's data key is {:?}", cfg.readout.data_key),
        ));
    }
    let x = one_tensor(videos, &["videos", "video", "images"])?;
    let &[n, _, t, _, _] = &x.shape[..] else {
        return Err(Error::File {
            path: videos.display().to_string(),
            reason: format!("videos have shape {:?}, expected [B, 1, T, H, W]", x.shape),
        });
    };
    let given = args.condition.as_ref().or(args.targets.as_ref());
    let responses = match given {
        Some(p) => {
            let r = one_tensor(p, &["responses"])?;
            let want = [n, cfg.readout.neurons, t];
            if r.shape != want {
                return Err(Error::File {
                    path: p.display().to_string(),
                    reason: format!("responses have shape {:?}, expected {want:?} (videos' B and T)", r.shape),
                });
            }
            Some(r)
        }
        None => None,
    };
    let mode = if args.condition.is_some() { LatentMode::Conditioned } else { LatentMode::Prior };
    let samples = args.samples.unwrap_or(cfg.samples);
    let per_video: usize = x.shape[1..].iter().product();
    let per_resp = cfg.readout.neurons * t;
    let mut progress = Progress::new(n, "videos");
    let (mut mean, mut loglik, mut frames) = (Vec::new(), Vec::new(), 0);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let mut shape = x.shape.clone();
        shape[0] = b;
        let xs = &x.data[start * per_video..(start + b) * per_video];
        let rs = responses.as_ref().map(|r| &r.data[start * per_resp..(start + b) * per_resp]);
        // Each video's noise is its own Philox stream (its index in the file), so the outputs do
        // not depend on --batch.
        let noise = LatentNoise::Philox { samples, seed: cfg.seed, first_video: start as u64 };
        let out = model.predict_with(ctx, xs, &shape, rs, mode, noise)?;
        frames = out.shape[1];
        mean.extend(frames_last(&out.mean, out.shape));
        if let Some(l) = &out.loglik {
            loglik.extend(frames_last(l, out.shape));
        }
        progress.update(start + b, &cfg.readout.data_key);
    }
    progress.finish();
    let shape = vec![n, cfg.readout.neurons, frames];
    let mut outputs = vec![(cfg.readout.data_key.clone(), HostTensor::new(shape.clone(), mean))];
    if responses.is_some() {
        outputs.push((format!("{}.loglik_bits", cfg.readout.data_key), HostTensor::new(shape, loglik)));
    }
    job.write(ctx, &outputs, &format!("; {samples} samples, {mode:?}"))
}
