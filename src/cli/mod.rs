//! The command line: thin wrappers over the library; no math here.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use vcortex::bench::{self, BenchOptions, BenchResult};
use vcortex::eval::{self, Backend};
use vcortex::io::check_output;
use vcortex::runtime::adapter;
use vcortex::{Context, Error, Result};

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
    /// Predicts neuronal responses with a Sensorium-style model (neuralpredictors weights as safetensors).
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
        /// Images per submit.
        #[arg(long, default_value_t = 128)]
        batch: usize,
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
        Cmd::Info => info(),
        Cmd::Eval { case, output, cpu } => {
            check_output(&output, &[("case", &case)])?;
            let ctx;
            let backend = if cpu {
                Backend::Cpu
            } else {
                ctx = Context::new()?;
                Backend::Gpu(&ctx)
            };
            let outs = eval::eval_file(&case, &output, &backend)?;
            let desc: Vec<String> = outs.iter().map(|(n, t)| format!("{n} {:?}", t.shape)).collect();
            println!("wrote {} ({})", output.display(), desc.join(", "));
            Ok(())
        }
        Cmd::Bench { json, filter, full, reps, profile } => bench_cmd(json, filter, full, reps, profile),
        Cmd::Flow { cmd } => flow_cmd(cmd),
        Cmd::Sample { weights, config, observations, samples, frames, seed, output } => {
            sample_cmd(weights, config, observations, samples, frames, seed, output)
        }
        Cmd::Predict { weights, config, images, data_key, output, batch } => {
            predict(&weights, &config, &images, data_key, &output, batch)
        }
    }
}

fn info() -> Result<()> {
    let instance = adapter::instance();
    let adapters = adapter::enumerate(&instance);
    println!("adapters seen:");
    for a in &adapters {
        println!("  {}", adapter::AdapterSummary::of(&a.get_info()));
    }
    let ctx = Context::with_adapter(adapter::choose(adapters)?)?;
    let a = ctx.adapter();
    println!("chosen: {a}\n  driver: {}", a.driver);
    let c = ctx.capabilities();
    println!("features: timestamp queries {}, shader-f16 {}, subgroups {}", c.timestamps, c.shader_f16, c.subgroups);
    let l = ctx.limits();
    println!("limits:");
    println!("  max_buffer_size {}", l.max_buffer_size);
    println!("  max_storage_buffer_binding_size {}", l.max_storage_buffer_binding_size);
    println!("  max_storage_buffers_per_shader_stage {}", l.max_storage_buffers_per_shader_stage);
    println!("  max_compute_workgroup_storage_size {}", l.max_compute_workgroup_storage_size);
    println!("  max_compute_invocations_per_workgroup {}", l.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroups_per_dimension {}", l.max_compute_workgroups_per_dimension);
    println!("  min_uniform_buffer_offset_alignment {}", l.min_uniform_buffer_offset_alignment);
    println!("pool budget: {} MiB of idle buffers (VCORTEX_POOL_BUDGET_MB)", ctx.pool_stats().budget >> 20);
    println!("shader checks: {:?} (VCORTEX_SHADER_CHECKS=full for all of wgpu's)", ctx.shader_checks());
    Ok(())
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "-".into())
}

fn bench_cmd(json: Option<PathBuf>, filter: Option<String>, full: bool, reps: usize, profile: bool) -> Result<()> {
    if let Some(path) = &json {
        check_output(path, &[])?;
    }
    let started = std::time::Instant::now();
    let ctx = Context::new()?;
    let opts = BenchOptions { full, filter, reps, profile };
    let small = bench::is_small(&ctx, &opts);
    if small {
        println!(
            "small suite on a software adapter ({}): batches / 32, matmul sides / 4; --full for the standard shapes",
            ctx.adapter()
        );
    } else {
        println!("standard suite on {}", ctx.adapter());
    }
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>7} {:>10} {:>6}",
        "case", "ms", "GB/s", "GFLOP/s", "% copy", "max err", "check"
    );
    let mut copy_gbs = None;
    let results = bench::run_suite(&ctx, &opts, |r: &BenchResult| {
        if let Some(e) = &r.error {
            println!("{:<30} error: {e}", r.case);
            return;
        }
        if r.case == "copy_256mib" {
            copy_gbs = r.gbs;
        }
        let share = match (r.gbs, copy_gbs) {
            (Some(g), Some(c)) => format!("{:.0}", 100.0 * g / c),
            _ => "-".into(),
        };
        println!(
            "{:<30} {:>10.4} {:>10} {:>10} {:>7} {:>10.2e} {:>6}{}",
            r.case,
            r.ms,
            fmt_opt(r.gbs, 1),
            fmt_opt(r.gflops, 1),
            share,
            r.max_err.unwrap_or(f64::NAN),
            r.checked,
            if r.timer == "wall" { " (wall clock)" } else { "" }
        );
        for (label, ms, count) in &r.profile {
            let share = if r.ms > 0.0 { 100.0 * ms / r.ms } else { 0.0 };
            println!("    {label:<40} {ms:>10.4} ms {share:>5.1} %  x{count}");
        }
        let _ = std::io::stdout().flush();
    });
    if let Some(path) = json {
        let mut text = String::new();
        for r in &results {
            text.push_str(&r.to_json().to_string());
            text.push('\n');
        }
        text.push_str(&bench::device_json(&ctx, small).to_string());
        text.push('\n');
        vcortex::io::write_file_atomic(&path, text.as_bytes())?;
    }
    // The closing line: how many cases ran, how long, and whether every checked one stayed within
    // BENCH_TOLERANCE of the CPU reference.
    let failed: Vec<&str> = results.iter().filter(|r| r.error.is_some()).map(|r| r.case.as_str()).collect();
    let over: Vec<String> = results
        .iter()
        .filter(|r| r.max_err.is_some_and(|e| !(e <= BENCH_TOLERANCE)))
        .map(|r| format!("{} ({:.2e})", r.case, r.max_err.unwrap_or(f64::NAN)))
        .collect();
    let secs = started.elapsed().as_secs_f64();
    if results.is_empty() {
        println!("no case matched the filter");
    } else if failed.is_empty() && over.is_empty() {
        println!(
            "{} cases in {secs:.1} s; every checked output within {BENCH_TOLERANCE:e} of the CPU reference",
            results.len()
        );
    } else {
        println!(
            "{} cases in {secs:.1} s; failed: {}; past {BENCH_TOLERANCE:e} of the CPU reference: {}",
            results.len(),
            if failed.is_empty() { "none".to_string() } else { failed.join(", ") },
            if over.is_empty() { "none".to_string() } else { over.join(", ") },
        );
        return Err(Error::Input("bench: some cases failed or were off the reference (see above)".into()));
    }
    Ok(())
}

/// The largest |GPU − CPU reference| a bench case may show (f32 sums of these sizes land between
/// 1e-7 and 1e-4).
const BENCH_TOLERANCE: f64 = 1e-3;

/// A one-line progress bar on stderr, shown once a run is expected to take more than a second.
struct Progress {
    total: usize,
    /// What is counted ("images", "steps").
    unit: &'static str,
    start: std::time::Instant,
    shown: bool,
    /// Whether stderr is a terminal: a bar redrawn in place (`\r`) there, else plain lines of the
    /// form `[what] done/total unit, N s left`, at most one a second, for logs.
    terminal: bool,
    last_line: f64,
    /// `VCORTEX_PROGRESS`: `always` shows it from the first update, `never` not at all; otherwise
    /// once the run is expected to take more than a second.
    mode: Option<bool>,
}

impl Progress {
    fn new(total: usize, unit: &'static str) -> Self {
        use std::io::IsTerminal;
        Progress {
            total,
            unit,
            start: std::time::Instant::now(),
            shown: false,
            terminal: std::io::stderr().is_terminal(),
            last_line: f64::NEG_INFINITY,
            mode: match std::env::var("VCORTEX_PROGRESS").as_deref() {
                Ok("always") => Some(true),
                Ok("never") => Some(false),
                _ => None,
            },
        }
    }
    fn update(&mut self, done: usize, what: &str) {
        let el = self.start.elapsed().as_secs_f64();
        let left = self.total.saturating_sub(done);
        let eta = if done > 0 { el / done as f64 * left as f64 } else { 0.0 };
        let wanted = self.mode.unwrap_or(self.shown || el + eta >= 1.0);
        if !wanted {
            return;
        }
        self.shown = true;
        if !self.terminal {
            if el - self.last_line >= 1.0 || left == 0 {
                self.last_line = el;
                eprintln!("[{what}] {done}/{} {}, {eta:.1} s left", self.total, self.unit);
            }
            return;
        }
        let width = 30;
        let fill = (width * done / self.total.max(1)).min(width);
        eprint!(
            "\r{what} [{}{}] {done}/{} {}, {eta:.1} s left ",
            "#".repeat(fill),
            " ".repeat(width - fill),
            self.total,
            self.unit
        );
        let _ = std::io::stderr().flush();
    }
    fn finish(&self) {
        if self.shown && self.terminal {
            eprintln!();
        }
    }
}

fn predict(
    weights: &std::path::Path,
    config: &std::path::Path,
    images: &std::path::Path,
    key: Option<String>,
    output: &std::path::Path,
    batch: usize,
) -> Result<()> {
    use vcortex::io::{read_images, write_safetensors, HostTensor};
    use vcortex::models::Sensorium;
    if batch == 0 {
        return Err(Error::param("predict", "batch", "must be >= 1"));
    }
    check_output(output, &[("--weights", weights), ("--config", config), ("--images", images)])?;
    let ctx = Context::new()?;
    let model = Sensorium::load(&ctx, weights, config)?;
    let (x, eye, behavior) = read_images(images)?;
    if x.shape.len() != 4 || x.shape[0] == 0 {
        return Err(Error::File {
            path: images.display().to_string(),
            reason: format!("images have shape {:?}, expected [N, C, H, W]", x.shape),
        });
    }
    let keys: Vec<String> = match key {
        Some(k) => vec![k],
        None => model.data_keys().iter().map(|k| k.to_string()).collect(),
    };
    let n = x.shape[0];
    let per: usize = x.shape[1..].iter().product();
    let mut outputs = Vec::new();
    for key in &keys {
        let mut progress = Progress::new(n, "images");
        let mut responses = Vec::new();
        let mut neurons = 0;
        for start in (0..n).step_by(batch) {
            let b = batch.min(n - start);
            let mut shape = x.shape.clone();
            shape[0] = b;
            let e = match (&eye, model.has_shifter(key)) {
                (Some(e), true) => {
                    if e.shape != [n, 2] {
                        return Err(Error::File {
                            path: images.display().to_string(),
                            reason: format!("eye has shape {:?}, expected [{n}, 2]", e.shape),
                        });
                    }
                    Some(&e.data[start * 2..(start + b) * 2])
                }
                (None, true) => {
                    return Err(Error::File {
                        path: images.display().to_string(),
                        reason: format!("data key {key:?} has a shifter: an \"eye\" tensor [N, 2] is needed"),
                    })
                }
                _ => None,
            };
            let bh = match (&behavior, model.has_modulator(key)) {
                (Some(t), true) => {
                    if t.shape.len() != 2 || t.shape[0] != n {
                        return Err(Error::File {
                            path: images.display().to_string(),
                            reason: format!("behavior has shape {:?}, expected [{n}, B]", t.shape),
                        });
                    }
                    let w = t.shape[1];
                    Some(&t.data[start * w..(start + b) * w])
                }
                (None, true) => {
                    return Err(Error::File {
                        path: images.display().to_string(),
                        reason: format!("data key {key:?} has a modulator: a \"behavior\" tensor [N, B] is needed"),
                    })
                }
                _ => None,
            };
            let y = model.predict_full(&ctx, &x.data[start * per..(start + b) * per], &shape, e, bh, key)?;
            neurons = y.len() / b;
            responses.extend(y);
            progress.update(start + b, key);
        }
        progress.finish();
        outputs.push((key.clone(), HostTensor::new(vec![n, neurons], responses)));
    }
    write_safetensors(output, &outputs, &device_meta(&ctx))?;
    let desc: Vec<String> = outputs.iter().map(|(k, t)| format!("{k} {:?}", t.shape)).collect();
    println!("wrote {} ({})", output.display(), desc.join(", "));
    Ok(())
}

fn flow_cmd(cmd: FlowCmd) -> Result<()> {
    use vcortex::io::read_safetensors;
    use vcortex::models::Flow;
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
    let cfg_path = match &cmd {
        FlowCmd::Density { config, .. } | FlowCmd::Sample { config, .. } => config.clone(),
    };
    if is_cgnf_config(&cfg_path)? {
        return cgnf_cmd(&ctx, cmd, meta);
    }
    match cmd {
        FlowCmd::Density { weights, config, input, output } => {
            let flow = Flow::load(&ctx, &weights, &config)?;
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
            let xt = vcortex::Tensor::from_f32(&ctx, &x.data, &x.shape)?;
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
            let flow = Flow::load(&ctx, &weights, &config)?;
            let mut rec = ctx.recorder();
            let (x, _) = flow.record_sample(&mut rec, n, temperature, seed, 0)?;
            submit_and_write(rec, &[("samples", &x)], &output, &meta)?;
            println!("wrote {} (samples {:?})", output.display(), x.shape());
        }
    }
    Ok(())
}

/// A cGNF config names its joints; a composite flow's names its features.
fn is_cgnf_config(path: &std::path::Path) -> Result<bool> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::File { path: path.display().to_string(), reason: format!("cannot read: {e}") })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::File { path: path.display().to_string(), reason: format!("not JSON: {e}") })?;
    Ok(v.get("joints").is_some())
}

fn cgnf_cmd(ctx: &Context, cmd: FlowCmd, meta: std::collections::HashMap<String, String>) -> Result<()> {
    use vcortex::io::{read_safetensors, HostTensor};
    use vcortex::models::Cgnf;
    use vcortex::Tensor;
    // The condition of an input file: its keypoints (all observed unless `observed` says).
    let condition = |m: &Cgnf,
                     rec: &mut vcortex::Recorder,
                     f: &mut std::collections::BTreeMap<String, HostTensor>,
                     path: &std::path::Path|
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
    let leftover = |f: &std::collections::BTreeMap<String, HostTensor>, path: &std::path::Path| -> Result<()> {
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

fn sample_cmd(
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

/// The output file's metadata: the device it ran on.
fn device_meta(ctx: &Context) -> std::collections::HashMap<String, String> {
    let mut meta = std::collections::HashMap::new();
    meta.insert("adapter".to_string(), ctx.adapter().name.clone());
    meta.insert("backend".to_string(), ctx.adapter().backend.clone());
    meta
}

/// The label of a sampler step's dispatch (ops::sampler_step): where `sample` cuts its submits.
const SAMPLER_STEP: &str = "sampler_step";

/// Reads back the named tensors of `rec`, submits it once and writes them to `path`.
fn submit_and_write(
    mut rec: vcortex::Recorder,
    outs: &[(&str, &vcortex::Tensor)],
    path: &std::path::Path,
    meta: &std::collections::HashMap<String, String>,
) -> Result<()> {
    let handles: Vec<_> = outs.iter().map(|(_, t)| rec.read_back(t)).collect();
    let done = rec.submit()?;
    vcortex::io::write_safetensors(path, &read_outs(outs, handles, &done), meta)
}

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

fn read_outs(
    outs: &[(&str, &vcortex::Tensor)],
    handles: Vec<vcortex::runtime::ReadHandle>,
    done: &vcortex::runtime::Finished,
) -> Vec<(String, vcortex::io::HostTensor)> {
    outs.iter()
        .zip(handles)
        .map(|((name, t), h)| (name.to_string(), vcortex::io::HostTensor::new(t.shape().to_vec(), done.f32(h))))
        .collect()
}
