//! `vcortex flow density` and `flow sample`: a composite normalizing flow (models::flow), or a
//! cGNF (models::cgnf, in `cgnf.rs`), as the config's `"kind"` says (docs/models.md).

use std::collections::HashMap;
use std::path::Path;

use vcortex::io::{check_output, read_safetensors};
use vcortex::models::Flow;
use vcortex::{Context, Error, Result};

use super::output::{device_meta, submit_and_write};
use super::FlowCmd;

/// Which model a flow config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    /// A composite flow (`models::Flow`): `"kind": "flow"`.
    Flow,
    /// A cGNF (`models::Cgnf`): `"kind": "cgnf"`.
    Cgnf,
}

/// A flow config as read by `vcortex flow`: its kind (the loaders read the file themselves).
pub struct FlowConfigFile {
    pub kind: FlowKind,
}

impl FlowConfigFile {
    /// Reads `path` and decides its kind: the `"kind"` field (`"flow"` or `"cgnf"`) when present;
    /// without it, a config with a `"joints"` key is a cGNF and any other a composite flow (the
    /// configs written before the field existed).
    pub fn read(path: &Path) -> Result<FlowConfigFile> {
        let v = super::read_json(path)?;
        let kind = match v.get("kind") {
            None if v.get("joints").is_some() => FlowKind::Cgnf,
            None => FlowKind::Flow,
            Some(k) => match k.as_str() {
                Some("flow") => FlowKind::Flow,
                Some("cgnf") => FlowKind::Cgnf,
                _ => {
                    return Err(Error::File {
                        path: path.display().to_string(),
                        reason: format!(
                            "\"kind\" is {k}; expected \"flow\" (a composite flow) or \"cgnf\" (a cGNF), or no \"kind\""
                        ),
                    })
                }
            },
        };
        Ok(FlowConfigFile { kind })
    }
}

pub fn run(cmd: FlowCmd) -> Result<()> {
    match &cmd {
        FlowCmd::Density { weights, config, input, output } => {
            check_output(output, &[("--weights", weights), ("--config", config), ("--input", input)])?
        }
        FlowCmd::Sample { weights, config, input, output, .. } => {
            let mut inputs = vec![("--weights", weights.as_path()), ("--config", config.as_path())];
            inputs.extend(input.as_deref().map(|i| ("--input", i)));
            check_output(output, &inputs)?
        }
    }
    let ctx = Context::new()?;
    let meta = device_meta(&ctx);
    let file = match &cmd {
        FlowCmd::Density { config, .. } | FlowCmd::Sample { config, .. } => FlowConfigFile::read(config)?,
    };
    match file.kind {
        FlowKind::Cgnf => super::cgnf::run(&ctx, cmd, meta),
        FlowKind::Flow => plain(&ctx, cmd, meta),
    }
}

/// The composite flow's density and samples.
fn plain(ctx: &Context, cmd: FlowCmd, meta: HashMap<String, String>) -> Result<()> {
    match cmd {
        FlowCmd::Density { weights, config, input, output } => {
            let flow = Flow::load(ctx, &weights, &config)?;
            let mut f = read_safetensors(&input)?.tensors;
            let n_t = f.len();
            let x = match f.remove("input") {
                Some(x) => x,
                None if n_t == 1 => f.into_values().next().expect("one tensor"),
                None => {
                    return Err(Error::File {
                        path: input.display().to_string(),
                        reason: "no tensor named \"input\"".into(),
                    })
                }
            };
            let xt = vcortex::Tensor::from_f32(ctx, &x.data, &x.shape)?;
            let mut rec = ctx.recorder();
            let (z, lp) = flow.record_log_prob(&mut rec, &xt)?;
            submit_and_write(rec, &[("log_prob", &lp), ("z", &z)], &output, &meta)?;
            println!("wrote {} (log_prob {:?})", output.display(), lp.shape());
        }
        FlowCmd::Sample { weights, config, n, temperature, seed, output, input } => {
            if n == 0 {
                return Err(Error::param("flow sample", "n", "must be >= 1"));
            }
            if input.is_some() {
                return Err(Error::param("flow sample", "input", "only a cGNF config takes an input"));
            }
            let flow = Flow::load(ctx, &weights, &config)?;
            let mut rec = ctx.recorder();
            let (x, _) = flow.record_sample(&mut rec, n, temperature, seed, 0)?;
            submit_and_write(rec, &[("samples", &x)], &output, &meta)?;
            println!("wrote {} (samples {:?})", output.display(), x.shape());
        }
    }
    Ok(())
}
