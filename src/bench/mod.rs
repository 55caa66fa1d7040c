//! The standard benchmark suite (docs/bench.md): every kernel on a fixed shape
//! suite, timed with GPU timestamps (wall clock where the adapter has none), checked against its
//! CPU reference (on a slice of the batch where the full reference would take too long).
//!
//! The suite is one table, [`cases::CASES`]: each case's name and the function that builds it
//! (its inputs, what it records, its reference check). `timing.rs` measures a built case;
//! `pose.rs` builds the pose models' cases.

mod cases;
mod pose;
mod timing;

use crate::error::Result;
use crate::runtime::{Context, Recorder, TimingStructure};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Standard shapes even on a software adapter.
    pub full: bool,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Timed repetitions (at least 20 are used).
    pub reps: usize,
    /// Keep each case's GPU time per dispatch label ([`BenchResult::profile`]).
    pub profile: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { full: false, filter: None, reps: 20, profile: false }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    pub case: String,
    pub ms: f64,
    pub gflops: Option<f64>,
    pub gbs: Option<f64>,
    pub max_err: Option<f64>,
    /// "slice" when only part of the batch was checked against the reference.
    pub checked: &'static str,
    /// "gpu" (timestamp queries) or "wall".
    pub timer: &'static str,
    pub error: Option<String>,
    /// With `profile` and timestamp queries: per dispatch label, in the order first recorded, the
    /// median over the repetitions of its summed GPU time and its dispatch count per run.
    pub profile: Vec<(String, f64, usize)>,
}

impl BenchResult {
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("case".into(), self.case.clone().into());
        if let Some(e) = &self.error {
            m.insert("error".into(), e.clone().into());
            return m.into();
        }
        m.insert("ms".into(), round(self.ms, 5).into());
        if let Some(v) = self.gflops {
            m.insert("gflops".into(), round(v, 1).into());
        }
        if let Some(v) = self.gbs {
            m.insert("gbs".into(), round(v, 1).into());
        }
        if let Some(v) = self.max_err {
            m.insert("max_err".into(), v.into());
        }
        m.insert("checked".into(), self.checked.into());
        if self.timer == "wall" {
            m.insert("timer".into(), "wall".into());
        }
        if !self.profile.is_empty() {
            let rows: Vec<serde_json::Value> = self
                .profile
                .iter()
                .map(|(l, ms, k)| serde_json::json!({"label": l, "ms": round(*ms, 5), "count": k}))
                .collect();
            m.insert("profile".into(), rows.into());
        }
        m.into()
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// Whether the suite shrinks (a software adapter, unless `full`).
pub fn is_small(ctx: &Context, opts: &BenchOptions) -> bool {
    !opts.full && ctx.adapter().device_type == "Cpu"
}

/// The device line of the JSON report.
pub fn device_json(ctx: &Context, small: bool) -> serde_json::Value {
    let a = ctx.adapter();
    let c = ctx.capabilities();
    serde_json::json!({
        "case": "device", "adapter": a.name, "backend": a.backend, "driver": a.driver,
        "device_type": a.device_type, "small": small, "timestamps": c.timestamps,
        "timing": timing_name(ctx), "shader_f16": c.shader_f16, "subgroups": c.subgroups,
    })
}

/// How the suite times a case on this device (docs/bench.md, "What the timer measures"):
/// `one_pass` (GPU timestamps inside the untimed pass structure), `pass_per_dispatch` (GPU
/// timestamps, one compute pass per dispatch) or `wall` (no timestamp queries).
pub fn timing_name(ctx: &Context) -> &'static str {
    ctx.timing_structure().map_or("wall", |t| t.name())
}

/// The report header's line saying the same.
pub fn timing_line(ctx: &Context) -> &'static str {
    match ctx.timing_structure() {
        Some(TimingStructure::OnePass) => {
            "timer: GPU timestamps inside each compute pass, before and after each dispatch (one_pass)"
        }
        Some(TimingStructure::PassPerDispatch) => {
            "timer: GPU timestamps, one compute pass per dispatch (pass_per_dispatch: the adapter cannot write timestamps inside a pass)"
        }
        None => "timer: wall clock (the adapter has no timestamp queries)",
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()))
}

/// What a case's builder sees: the context and whether the suite is the small one.
pub(crate) struct Suite<'c> {
    pub ctx: &'c Context,
    pub small: bool,
}

impl Suite<'_> {
    /// A batch of the standard suite, divided by 32 (at least 1) in the small one.
    fn b(&self, n: usize) -> usize {
        if self.small {
            (n / 32).max(1)
        } else {
            n
        }
    }
}

/// What is timed: a recording (GPU time of its dispatches, or wall clock without timestamps) or a
/// host-to-host call (always wall clock: a caller's latency).
pub(crate) enum Run<'a> {
    Record(Box<dyn Fn(&mut Recorder) -> Result<Tensor> + 'a>),
    Call(Box<dyn Fn() -> Result<Vec<f32>> + 'a>),
}

/// A built case: what runs, its byte and FLOP counts (0 for none), and its reference check.
pub(crate) struct Case<'a> {
    flops: f64,
    bytes: f64,
    run: Run<'a>,
    /// Given the output, the max error against the reference and whether it was a slice.
    check: Box<dyn Fn(&[f32]) -> Result<(f64, &'static str)> + 'a>,
}

/// One row of the suite's table: the case's name (as docs/bench.md lists it) and its builder.
pub(crate) struct Entry {
    name: &'static str,
    build: for<'c> fn(&Suite<'c>) -> Result<Case<'c>>,
}

/// Every case's name, in the order the suite runs them.
pub fn case_names() -> impl Iterator<Item = &'static str> {
    cases::CASES.iter().map(|e| e.name)
}

/// The cases a filter selects (their names contain it; every case without one), in order.
pub fn selected(filter: Option<&str>) -> Vec<&'static str> {
    case_names().filter(|n| filter.is_none_or(|f| n.contains(f))).collect()
}

/// Runs the suite (the cases `opts.filter` selects), calling `report` after each case.
pub fn run_suite(ctx: &Context, opts: &BenchOptions, mut report: impl FnMut(&BenchResult)) -> Vec<BenchResult> {
    let suite = Suite { ctx, small: is_small(ctx, opts) };
    let wanted = selected(opts.filter.as_deref());
    let mut results = Vec::new();
    for entry in cases::CASES.iter().filter(|e| wanted.contains(&e.name)) {
        let res = timing::measure(&suite, opts, entry);
        report(&res);
        results.push(res);
    }
    results
}
