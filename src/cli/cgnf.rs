//! `vcortex flow` on a cGNF config (models::cgnf): per-joint density of poses, and pose hypotheses
//! given 2-D keypoints (or from the prior).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use vcortex::io::{read_safetensors, HostTensor};
use vcortex::models::Cgnf;
use vcortex::{Context, Error, Result, Tensor};

use super::output::submit_and_write;
use super::FlowCmd;

pub fn run(ctx: &Context, cmd: FlowCmd, meta: HashMap<String, String>) -> Result<()> {
    // The condition of an input file: its keypoints (all observed unless `observed` says).
    let condition = |m: &Cgnf,
                     rec: &mut vcortex::Recorder,
                     f: &mut BTreeMap<String, HostTensor>,
                     path: &Path|
     -> Result<Option<vcortex::models::cgnf::Condition>> {
        let root = f.remove("root").map(|r| Tensor::from_f32(ctx, &r.data, &r.shape)).transpose()?;
        let Some(kp) = f.remove("keypoints") else {
            if f.contains_key("observed") {
                return Err(Error::File {
                    path: path.display().to_string(),
                    reason: "\"observed\" without \"keypoints\"".into(),
                });
            }
            return match root {
                Some(r) => match *r.shape() {
                    [b, 3] => m.prior_condition(b, Some(&r)).map(Some),
                    _ => Err(Error::File {
                        path: path.display().to_string(),
                        reason: format!("\"root\" has shape {:?}, expected [B, 3]", r.shape()),
                    }),
                },
                None => Ok(None),
            };
        };
        let n = kp.data.len() / 2;
        let observed: Vec<bool> = match f.remove("observed") {
            None => vec![true; n],
            Some(o) => {
                if o.data.iter().any(|&v| v != 0.0 && v != 1.0) {
                    return Err(Error::File {
                        path: path.display().to_string(),
                        reason: "\"observed\" must hold only 0 and 1".into(),
                    });
                }
                o.data.iter().map(|&v| v == 1.0).collect()
            }
        };
        if let Some(i) = kp.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::File {
                path: path.display().to_string(),
                reason: format!("\"keypoints\" element {i} is not finite"),
            });
        }
        let kt = Tensor::from_f32(ctx, &kp.data, &kp.shape)?;
        m.record_condition_with_root(rec, &kt, &observed, root.as_ref()).map(Some)
    };
    let leftover = |f: &BTreeMap<String, HostTensor>, path: &Path| -> Result<()> {
        match f.keys().next() {
            Some(k) => {
                Err(Error::File { path: path.display().to_string(), reason: format!("unexpected tensor {k:?}") })
            }
            None => Ok(()),
        }
    };
    match cmd {
        FlowCmd::Density { weights, config, input, output } => {
            let m = Cgnf::load(ctx, &weights, &config)?;
            let mut f = read_safetensors(&input)?.tensors;
            let poses = f.remove("poses").ok_or_else(|| Error::File {
                path: input.display().to_string(),
                reason: "no tensor named \"poses\" [B, J, 3]".into(),
            })?;
            let mut rec = ctx.recorder();
            let cond = condition(&m, &mut rec, &mut f, &input)?;
            leftover(&f, &input)?;
            let pt = Tensor::from_f32(ctx, &poses.data, &poses.shape)?;
            let (z, lp) = m.record_log_prob(&mut rec, &pt, cond.as_ref())?;
            submit_and_write(rec, &[("log_prob", &lp), ("z", &z)], &output, &meta)?;
            println!("wrote {} (log_prob per joint {:?})", output.display(), lp.shape());
        }
        FlowCmd::Sample { weights, config, n, temperature, seed, output, input } => {
            if n == 0 {
                return Err(Error::param("flow sample", "n", "must be >= 1"));
            }
            let m = Cgnf::load(ctx, &weights, &config)?;
            let mut rec = ctx.recorder();
            let cond = match &input {
                Some(path) => {
                    let mut f = read_safetensors(path)?.tensors;
                    let c = condition(&m, &mut rec, &mut f, path)?;
                    leftover(&f, path)?;
                    c
                }
                None => None,
            };
            let (x, lp) = m.record_sample(&mut rec, cond.as_ref(), 1, n, temperature, seed, 0)?;
            let mode = m.record_mode(&mut rec, cond.as_ref(), 1)?;
            submit_and_write(rec, &[("samples", &x), ("log_prob", &lp), ("mode", &mode)], &output, &meta)?;
            println!("wrote {} (samples {:?}, log_prob per joint, mode)", output.display(), x.shape());
        }
    }
    Ok(())
}
