//! How a case is measured (docs/bench.md, "How a case is measured"): warm-up runs, then the
//! median of the timed runs, then one more run checked against the CPU reference.

use std::time::Instant;

use super::{BenchOptions, BenchResult, Entry, Run, Suite};
use crate::error::Result;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

/// What [`time_op`] measured: the median time, its timer, and the per-label profile.
struct Timed {
    ms: f64,
    timer: &'static str,
    profile: Vec<(String, f64, usize)>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median time of `reps` submits of what `record` records (GPU time of every dispatch of the op).
fn time_op(ctx: &Context, reps: usize, record: &dyn Fn(&mut Recorder) -> Result<Tensor>) -> Result<Timed> {
    for _ in 0..3 {
        let mut rec = ctx.recorder();
        let y = record(&mut rec)?;
        let h = rec.read_back(&y);
        rec.submit()?.bytes(h);
    }
    let gpu = ctx.capabilities().timestamps;
    let mut ts = Vec::with_capacity(reps);
    // Per label: (dispatches per run, each run's summed time).
    let mut labels: Vec<(String, usize, Vec<f64>)> = Vec::new();
    for _ in 0..reps.max(20) {
        let mut rec = ctx.recorder().timed(gpu);
        let t0 = Instant::now();
        record(&mut rec)?;
        let done = rec.submit()?;
        match &done.timings {
            Some(t) => {
                ts.push(t.iter().map(|x| x.ms).sum());
                let mut run: Vec<(usize, usize, f64)> = Vec::new();
                for x in t {
                    let i = match labels.iter().position(|(l, _, _)| *l == x.label) {
                        Some(i) => i,
                        None => {
                            labels.push((x.label.clone(), 0, Vec::new()));
                            labels.len() - 1
                        }
                    };
                    match run.iter_mut().find(|r| r.0 == i) {
                        Some(r) => {
                            r.1 += 1;
                            r.2 += x.ms;
                        }
                        None => run.push((i, 1, x.ms)),
                    }
                }
                for (i, k, ms) in run {
                    labels[i].1 = k;
                    labels[i].2.push(ms);
                }
            }
            None => {
                ctx.wait()?;
                ts.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let profile = labels
        .into_iter()
        .map(|(l, k, mut v)| {
            let m = median(&mut v);
            (l, m, k)
        })
        .collect();
    Ok(Timed { ms: median(&mut ts), timer: if gpu { "gpu" } else { "wall" }, profile })
}

/// Median wall time of `reps` calls (after three untimed ones), and the last call's output.
fn time_call(reps: usize, call: &dyn Fn() -> Result<Vec<f32>>) -> Result<(f64, Vec<f32>)> {
    for _ in 0..3 {
        call()?;
    }
    let mut ts = Vec::new();
    let mut last = Vec::new();
    for _ in 0..reps.max(20) {
        let t0 = Instant::now();
        last = call()?;
        ts.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(&mut ts), last))
}

/// Builds the entry's case, times it, checks it against the reference; a failure becomes the
/// row's error.
pub(super) fn measure(suite: &Suite, opts: &BenchOptions, entry: &Entry) -> BenchResult {
    let ctx = suite.ctx;
    let mut res = BenchResult { case: entry.name.to_string(), ..Default::default() };
    let outcome = (|| -> Result<()> {
        let case = (entry.build)(suite)?;
        let (ms, timer, out) = match &case.run {
            Run::Record(record) => {
                let Timed { ms, timer, profile } = time_op(ctx, opts.reps, &**record)?;
                if opts.profile {
                    res.profile = profile;
                }
                let mut rec = ctx.recorder();
                let y = record(&mut rec)?;
                let h = rec.read_back(&y);
                (ms, timer, rec.submit()?.f32(h))
            }
            Run::Call(call) => {
                let (ms, out) = time_call(opts.reps, &**call)?;
                (ms, "wall", out)
            }
        };
        let (err, checked) = (case.check)(&out)?;
        res.ms = ms;
        res.timer = timer;
        res.gflops = (case.flops > 0.0).then(|| case.flops / ms / 1e6);
        res.gbs = (case.bytes > 0.0).then(|| case.bytes / ms / 1e6);
        res.max_err = Some(err);
        res.checked = checked;
        Ok(())
    })();
    if let Err(e) = outcome {
        res.error = Some(e.to_string());
    }
    res
}
