//! The command line: thin wrappers over the library; no math here. This file holds the
//! commands' definitions and the dispatch; each command is in the file of its name (`flow.rs`
//! and, for a cGNF config, `cgnf.rs`), with the progress reporter in `progress.rs` and what the
//! commands share to write their outputs in `output.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use vcortex::Result;

mod bench;
mod cgnf;
mod eval;
mod flow;
mod info;
mod latent;
mod output;
mod predict;
mod progress;
mod sample;
mod score;

#[derive(Parser)]
#[command(
    name = "vcortex",
    version,
    about = "GPU kernels for models of the visual system, checked against CPU references"
)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Adapters seen, the one chosen, its features and limits.
    Info,
    /// Runs one op from a case file (docs/eval-format.md) and writes its outputs.
    Eval {
        /// The case: a safetensors file with the op and its parameters in __metadata__.
        case: PathBuf,
        /// Where the outputs go (safetensors).
        #[arg(short, long)]
        output: PathBuf,
        /// Run the CPU reference instead of the GPU kernel.
        #[arg(long)]
        cpu: bool,
    },
    /// Predicts neuronal responses with a Sensorium-style model or the co-training twin (`"kind": "cotrain"`; weights as safetensors).
    Predict {
        /// The model's state_dict as safetensors (PyTorch key names).
        #[arg(long)]
        weights: PathBuf,
        /// The model's JSON config (core shape, readouts per data key).
        #[arg(long)]
        config: PathBuf,
        /// Images [N, C, H, W] (the tensor named "images", or the file's only tensor), and for
        /// readouts with a shifter the eye positions [N, 2] as "eye", for readouts with a modulator
        /// the behaviour [N, B] as "behavior".
        #[arg(long)]
        images: PathBuf,
        /// Only this data key (default: every key in the config).
        #[arg(long)]
        data_key: Option<String>,
        /// Where the responses go: one tensor [N, neurons] per data key.
        #[arg(short, long)]
        output: PathBuf,
        /// Images (videos, for the latent video model) per submit.
        #[arg(long, default_value_t = 128)]
        batch: usize,
        /// The latent video model: latent samples S (default: the config's `samples`).
        #[arg(long)]
        samples: Option<usize>,
        /// The latent video model: responses [B, N, T] (safetensors, the tensor "responses" or the
        /// file's only tensor) to condition on (the first half of the neurons zeroed, as upstream's
        /// evaluation); without it the latent state is drawn from the prior.
        #[arg(long, value_name = "R")]
        condition: Option<PathBuf>,
        /// The latent video model: responses [B, N, T] whose log-likelihood in bits under prior
        /// samples is written beside the mean (no conditioning; not with --condition).
        #[arg(long, value_name = "R", conflicts_with = "condition")]
        targets: Option<PathBuf>,
    },
    /// Platypose: S motion hypotheses [S, F, D] from the MDM denoiser, each x0 refined on the
    /// multi-view reprojection energy of the observations (models::platypose); one submit per
    /// step, with progress on stderr.
    Sample {
        /// MDM weights (models::mdm key names).
        #[arg(long)]
        weights: PathBuf,
        /// The sampler's JSON config (mdm sizes, steps, sampler, energy_scale, substeps).
        #[arg(long)]
        config: PathBuf,
        /// Cameras, 2-D keypoints [C, F, J, 2] and optional weights and root trajectory; without
        /// it the sampling is unguided.
        #[arg(long)]
        observations: Option<PathBuf>,
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Frames (from the observations when given).
        #[arg(long)]
        frames: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Writes `samples` [S, F, D] (and `energy` [S] of each final sample when guided).
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Sensorium scores of predictions against responses, per neuron over trials (ops::scores):
    /// the single-trial correlation and, with --repeats-by, the correlation to the average over
    /// repeats, FEV and FEVE. Prints the means as sensorium reports them (a NaN correlation counts
    /// as 0; FEVE over the neurons with FEV >= --fev-threshold).
    Score {
        /// Recorded responses [trials, neurons] (safetensors): the tensor named "responses" (or
        /// --key), or the file's only tensor besides image ids.
        #[arg(long)]
        responses: PathBuf,
        /// Predictions of the same shape: the tensor named "predictions" (or --key), or the file's
        /// only tensor besides image ids (the output of `vcortex predict` for one data key).
        #[arg(long)]
        predictions: PathBuf,
        /// Image ids [trials] (safetensors; integers, or floats holding whole numbers): the tensor
        /// "image_ids", "ids", or the file's only tensor. Trials of equal id are repeats of one
        /// image; every image needs at least 2.
        #[arg(long, value_name = "IDS")]
        repeats_by: Option<PathBuf>,
        /// The tensor of this name in both --responses and --predictions (a data key, say).
        #[arg(long)]
        key: Option<String>,
        /// FEVE's mean counts the neurons with FEV at least this (sensorium's get_fev).
        #[arg(long, default_value_t = 0.15)]
        fev_threshold: f64,
        /// Print the summary as one JSON object (NaN as null).
        #[arg(long)]
        json: bool,
        /// Also write the per-neuron arrays [neurons]: correlation, and with --repeats-by
        /// repeat_correlation, fev, feve.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Normalizing flows: density of data, or samples from the base (weights and config as in models::flow).
    Flow {
        #[command(subcommand)]
        cmd: FlowCmd,
    },
    /// Runs the standard kernel suite: median GPU time, GB/s, GFLOP/s and error against the CPU reference.
    Bench {
        /// Also write the results as JSON Lines to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Standard shapes even on a software adapter.
        #[arg(long)]
        full: bool,
        /// Timed repetitions per case (at least 20).
        #[arg(long, default_value_t = 20)]
        reps: usize,
        /// Also show each case's GPU time per kernel (dispatch label), in the table and the JSON.
        #[arg(long)]
        profile: bool,
    },
}

#[derive(Subcommand)]
enum FlowCmd {
    /// log p(x) of each row of the input [N, D]; writes `log_prob` [N] and `z` [N, D]. For a cGNF
    /// config (models::cgnf): the input holds `poses` [B, J, 3] and optionally `keypoints` [B, J, 2]
    /// and `observed` [B, J]; writes `log_prob` per joint [B, J] and `z` [B, J, 3].
    Density {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        config: PathBuf,
        /// The data [N, D] (the tensor named "input", or the file's only tensor).
        #[arg(long)]
        input: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// N samples (base draws scaled by the temperature, through the inverse flow); writes `samples` [N, D].
    /// For a cGNF: N hypotheses per pose of --input's keypoints (or from the prior without it).
    Sample {
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        n: usize,
        /// cGNF only: `keypoints` [B, J, 2] and optionally `observed` [B, J] (1 = observed) and, for a
        /// model with a root node, `root` [B, 3].
        #[arg(long)]
        input: Option<PathBuf>,
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(short, long)]
        output: PathBuf,
    },
}

pub fn main() -> std::process::ExitCode {
    quiet_wayland_probe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vcortex: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Mesa's Vulkan drivers probe for a Wayland display when the instance is created, and
/// libwayland-client prints "error: XDG_RUNTIME_DIR is invalid or not set in the environment." (twice)
/// where that variable is unset, as on a server or in a container: a false alarm, since vcortex
/// draws nothing. Pointing it at the temporary folder (where no Wayland socket is) lets the probe
/// fail quietly. Done first, before any thread exists; a set variable is left alone.
fn quiet_wayland_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Info => info::run(),
        Cmd::Eval { case, output, cpu } => eval::run(&case, &output, cpu),
        Cmd::Bench { json, filter, full, reps, profile } => bench::run(json, filter, full, reps, profile),
        Cmd::Flow { cmd } => flow::run(cmd),
        Cmd::Sample { weights, config, observations, samples, frames, seed, output } => {
            sample::run(weights, config, observations, samples, frames, seed, output)
        }
        Cmd::Score { responses, predictions, repeats_by, key, fev_threshold, json, output } => {
            score::run(score::ScoreArgs { responses, predictions, repeats_by, key, fev_threshold, json, output })
        }
        Cmd::Predict { weights, config, images, data_key, output, batch, samples, condition, targets } => predict::run(
            &weights,
            &config,
            &images,
            data_key,
            &output,
            batch,
            predict::LatentArgs { samples, condition, targets },
        ),
    }
}

/// A config file as JSON, for the commands that look at its `"kind"` before loading it.
fn read_json(path: &std::path::Path) -> Result<serde_json::Value> {
    let file_err = |reason: String| vcortex::Error::File { path: path.display().to_string(), reason };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| file_err(format!("not JSON: {e}")))
}
