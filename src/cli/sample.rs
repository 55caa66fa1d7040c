//! `vcortex sample`: Platypose motion hypotheses, one submit per sampler step with progress on stderr.

use std::path::PathBuf;

use vcortex::io::check_output;
use vcortex::{Context, Error, Result};

use super::output::{device_meta, read_outs};
use super::progress::Progress;

pub fn run(
    weights: PathBuf,
    config: PathBuf,
    observations: Option<PathBuf>,
    samples: usize,
    frames: Option<usize>,
    seed: u64,
    output: PathBuf,
) -> Result<()> {
    use vcortex::io::read_safetensors;
    use vcortex::models::platypose::{observations_from, Platypose, SamplerNoise};
    let mut inputs = vec![("--weights", weights.as_path()), ("--config", config.as_path())];
    inputs.extend(observations.as_deref().map(|o| ("--observations", o)));
    check_output(&output, &inputs)?;
    let ctx = Context::new()?;
    let model = Platypose::load(&ctx, &weights, &config)?;
    let obs = match &observations {
        Some(path) => {
            let t = read_safetensors(path)?.tensors;
            Some(
                observations_from(&ctx, &t)
                    .map_err(|e| Error::File { path: path.display().to_string(), reason: e.to_string() })?,
            )
        }
        None => None,
    };
    let f = match (&obs, frames) {
        (Some(o), Some(f)) if f != o.frames() => {
            return Err(Error::param(
                "sample",
                "frames",
                format!("{f}, but the observations have {} frames", o.frames()),
            ))
        }
        (Some(o), _) => o.frames(),
        (None, Some(f)) => f,
        (None, None) => return Err(Error::param("sample", "frames", "give --frames or --observations")),
    };
    let t0 = std::time::Instant::now();
    let mut rec = ctx.recorder();
    let (x, _) = model.record_sample(&mut rec, samples, f, obs.as_ref(), SamplerNoise::Philox { seed })?;
    let energy = obs.as_ref().map(|o| vcortex::ops::multiview_energy(&mut rec, &x, o)).transpose()?;
    let dispatches = rec.dispatch_count();
    let mut outs = vec![("samples", &x)];
    if let Some((e, _)) = &energy {
        outs.push(("energy", e));
    }
    let mut meta = device_meta(&ctx);
    let steps = model.indices().len();
    meta.insert("seed".to_string(), seed.to_string());
    meta.insert("steps".to_string(), steps.to_string());
    // One submit per sampler step (the samples are not independent: the refinement's plateau rule
    // follows their mean energy), the same dispatches as one submit. A skipped start adds one
    // step dispatch (the forward noising) before the first step.
    let parts = rec.labels().iter().filter(|l| **l == SAMPLER_STEP).count();
    let mut progress = Progress::new(steps, "steps");
    let tensors = submit_parts_and_read(rec, &outs, |done, _| {
        progress.update(done.saturating_sub(parts.saturating_sub(steps)), "sample")
    })?;
    progress.finish();
    // A sample the computation drove out of f32's range (a diverging refinement) is never written
    // silently: the run fails and names it, and no file is written.
    let (_, samples_out) = &tensors[0];
    vcortex::models::platypose::check_samples(&samples_out.data, &samples_out.shape)?;
    vcortex::io::write_safetensors(&output, &tensors, &meta)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    println!(
        "wrote {} (samples {:?}; {steps} steps, {dispatches} dispatches in {} submits, {ms:.1} ms)",
        output.display(),
        x.shape(),
        parts + 1
    );
    Ok(())
}

/// The label of a sampler step's dispatch (ops::sampler_step): where `sample` cuts its submits.
const SAMPLER_STEP: &str = "sampler_step";

/// Reads back the named tensors of `rec`, submitted in parts (one per sampler step), calling
/// `progress(steps done, steps)` after each.
fn submit_parts_and_read(
    mut rec: vcortex::Recorder,
    outs: &[(&str, &vcortex::Tensor)],
    progress: impl FnMut(usize, usize),
) -> Result<Vec<(String, vcortex::io::HostTensor)>> {
    let handles: Vec<_> = outs.iter().map(|(_, t)| rec.read_back(t)).collect();
    let done = rec.submit_in_parts(SAMPLER_STEP, progress)?;
    Ok(read_outs(outs, handles, &done))
}
