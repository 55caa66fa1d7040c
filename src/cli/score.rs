//! `vcortex score`: the Sensorium scores of predictions against recorded responses
//! (ops::scores): per-neuron arrays on the GPU in one submit, the means as sensorium reports them.

use std::path::{Path, PathBuf};

use vcortex::io::{check_output, read_ids, read_weights, write_safetensors, HostTensor, ID_NAMES};
use vcortex::ops::{self, Repeats, ScoreParams, ScoreSummary, SCORE_ROWS};
use vcortex::{Context, Error, Result, Tensor};

use super::output::device_meta;

pub struct ScoreArgs {
    pub responses: PathBuf,
    pub predictions: PathBuf,
    pub repeats_by: Option<PathBuf>,
    pub key: Option<String>,
    pub fev_threshold: f64,
    pub json: bool,
    pub output: Option<PathBuf>,
}

/// The [trials, neurons] tensor of a file: `key`, else `preferred`, else the only tensor besides
/// image ids.
fn pick(path: &Path, preferred: &str, key: Option<&str>) -> Result<HostTensor> {
    let mut f = read_weights(path)?;
    let err = |reason: String| Error::File { path: path.display().to_string(), reason };
    let t = match key {
        Some(k) => f.tensors.remove(k).ok_or_else(|| err(format!("no tensor named {k:?} (--key)")))?,
        None => match f.tensors.remove(preferred) {
            Some(t) => t,
            None => {
                let others: Vec<String> =
                    f.tensors.keys().filter(|k| !ID_NAMES.contains(&k.as_str())).cloned().collect();
                match others.as_slice() {
                    [one] => f.tensors.remove(one).expect("listed"),
                    _ => {
                        return Err(err(format!(
                            "no tensor named {preferred:?} and {} others; name one with --key",
                            others.len()
                        )))
                    }
                }
            }
        },
    };
    if t.shape.len() != 2 {
        return Err(err(format!("the tensor has shape {:?}, expected [trials, neurons]", t.shape)));
    }
    Ok(t)
}

pub fn run(a: ScoreArgs) -> Result<()> {
    if !a.fev_threshold.is_finite() {
        return Err(Error::param("score", "--fev-threshold", format!("{} is not finite", a.fev_threshold)));
    }
    if let Some(out) = &a.output {
        let mut inputs = vec![("--responses", a.responses.as_path()), ("--predictions", a.predictions.as_path())];
        if let Some(ids) = &a.repeats_by {
            inputs.push(("--repeats-by", ids.as_path()));
        }
        check_output(out, &inputs)?;
    }
    let r = pick(&a.responses, "responses", a.key.as_deref())?;
    let p = pick(&a.predictions, "predictions", a.key.as_deref())?;
    if p.shape != r.shape {
        return Err(Error::File {
            path: a.predictions.display().to_string(),
            reason: format!("predictions have shape {:?}, the responses {:?}", p.shape, r.shape),
        });
    }
    let (t, m) = (r.shape[0], r.shape[1]);
    let repeats = match &a.repeats_by {
        None => None,
        Some(path) => {
            let in_file = |e: Error| Error::File { path: path.display().to_string(), reason: e.to_string() };
            let ids = read_ids(path, None)?;
            if ids.len() != t {
                return Err(in_file(Error::shape("score", "ids", &[ids.len()], format!("[{t}] (one per trial)"))));
            }
            Some(Repeats::from_ids(&ids).map_err(in_file)?)
        }
    };
    let ctx = Context::new()?;
    let (rt, pt) = (Tensor::from_f32(&ctx, &r.data, &r.shape)?, Tensor::from_f32(&ctx, &p.data, &p.shape)?);
    drop((r, p));
    let mut rec = ctx.recorder();
    let y = ops::scores(&mut rec, &rt, &pt, repeats.as_ref(), &ScoreParams::default())?;
    let h = rec.read_back(&y);
    let values = rec.submit()?.f32(h);
    let s = ScoreSummary::new(&values, m, a.fev_threshold)?;
    if let Some(out) = &a.output {
        let rows = values.len() / m;
        let tensors: Vec<(String, HostTensor)> = (0..rows)
            .map(|i| (SCORE_ROWS[i].to_string(), HostTensor::new(vec![m], values[i * m..(i + 1) * m].to_vec())))
            .collect();
        write_safetensors(out, &tensors, &device_meta(&ctx))?;
    }
    print_summary(&s, t, repeats.as_ref(), a.json);
    if let Some(out) = &a.output {
        if !a.json {
            println!("wrote {} (per neuron: {})", out.display(), SCORE_ROWS[..values.len() / m].join(", "));
        }
    }
    Ok(())
}

fn print_summary(s: &ScoreSummary, t: usize, rep: Option<&Repeats>, json: bool) {
    if json {
        let mut v = serde_json::json!({
            "trials": t, "neurons": s.neurons, "correlation": s.correlation,
            "correlation_nan": s.correlation_nan,
        });
        if let Some(r) = rep {
            v["images"] = r.images().into();
            v["repeat_correlation"] = serde_json::json!(s.repeat_correlation);
            v["feve"] = serde_json::json!(s.feve);
            v["feve_neurons"] = s.feve_neurons.into();
            v["fev_threshold"] = s.fev_threshold.into();
        }
        println!("{v}");
        return;
    }
    let images = match rep {
        Some(r) => {
            let reps: Vec<usize> = (0..r.images()).map(|g| r.trials_of(g).len()).collect();
            let (lo, hi) = (reps.iter().min().unwrap_or(&0), reps.iter().max().unwrap_or(&0));
            format!(", {} images ({lo} to {hi} repeats)", r.images())
        }
        None => String::new(),
    };
    println!("{t} trials, {} neurons{images}", s.neurons);
    println!(
        "  correlation         {:>9.6}  single-trial, mean over neurons ({} NaN counted as 0)",
        s.correlation, s.correlation_nan
    );
    if let (Some(c), Some(f)) = (s.repeat_correlation, s.feve) {
        println!("  repeat_correlation  {c:>9.6}  to the average over repeats, mean over neurons");
        println!(
            "  feve                {f:>9.6}  mean over the {} neurons with FEV >= {}",
            s.feve_neurons, s.fev_threshold
        );
    }
}
