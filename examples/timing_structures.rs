//! What timing costs: two recordings submitted untimed (one compute pass for all their
//! dispatches), timed with timestamps inside that pass, and timed with one pass per dispatch; the
//! median wall time of each (recording to the queue going idle) and, timed, the median of the
//! summed GPU times (docs/bench.md, "What the timer measures"). The recordings: the bench's
//! `sensorium_forward_b128` (the Sensorium baseline, random weights, 8000 neurons; few large
//! dispatches), and a chain of 256 ELUs on 4096 values (many small ones, where a pass boundary
//! weighs most).
//!
//!     cargo run --release --example timing_structures -- [BATCH] [REPS]
//!
//! BATCH defaults to the bench's: 128, or 4 on a software adapter (the small suite); REPS to 20.

use std::time::Instant;

use vcortex::models::Sensorium;
use vcortex::runtime::TimingStructure;
use vcortex::{Context, Recorder, Tensor};

fn main() -> Result<(), vcortex::Error> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let ctx = Context::new()?;
    let small = ctx.adapter().device_type == "Cpu";
    let n = args.first().copied().unwrap_or(if small { 4 } else { 128 });
    let reps = args.get(1).copied().unwrap_or(20).max(1);
    println!("device: {} (timing structure {:?})", ctx.adapter(), ctx.timing_structure());
    let mut model = Sensorium::random(Sensorium::baseline_config(8000), 11)?;
    model.upload(&ctx)?;
    let images = vcortex::rng::SplitMix::new(128).vec(n * 36 * 64, -1.0, 1.0);
    let x = Tensor::from_f32(&ctx, &images, &[n, 1, 36, 64])?;

    let chain_in = Tensor::from_f32(&ctx, &vcortex::rng::SplitMix::new(3).vec(4096, -1.0, 1.0), &[4096])?;
    let chain = |rec: &mut Recorder| -> vcortex::Result<Tensor> {
        let mut y = vcortex::ops::activation(rec, &chain_in, vcortex::ops::Activation::Elu)?;
        for _ in 1..256 {
            y = vcortex::ops::activation(rec, &y, vcortex::ops::Activation::Elu)?;
        }
        Ok(y)
    };
    compare(&ctx, &format!("sensorium forward, batch {n}"), reps, &|rec| model.record(rec, &x, "bench"))?;
    compare(&ctx, "256 ELUs on 4096 values", reps, &chain)?;
    Ok(())
}

/// Times `record` in the three ways and prints the medians.
fn compare(
    ctx: &Context,
    what: &str,
    reps: usize,
    record: &dyn Fn(&mut Recorder) -> vcortex::Result<Tensor>,
) -> vcortex::Result<()> {
    let modes: [(&str, Option<TimingStructure>); 3] = [
        ("untimed, one pass", None),
        ("timed, timestamps inside the pass", Some(TimingStructure::OnePass)),
        ("timed, one pass per dispatch", Some(TimingStructure::PassPerDispatch)),
    ];
    let recorder = |mode: Option<TimingStructure>| -> Recorder<'_> {
        match mode {
            None => ctx.recorder(),
            Some(s) => ctx.recorder().timed_as(s),
        }
    };
    let dispatches = {
        let mut rec = ctx.recorder();
        record(&mut rec)?;
        rec.dispatch_count()
    };
    // Warm-up: pipelines compiled, buffers pooled, in every structure.
    for (_, mode) in modes {
        for _ in 0..3 {
            let mut rec = recorder(mode);
            record(&mut rec)?;
            rec.submit()?;
            ctx.wait()?;
        }
    }
    // The modes interleaved, so that a drift of the machine's speed reaches each alike.
    let mut wall = vec![Vec::new(); modes.len()];
    let mut gpu = vec![Vec::new(); modes.len()];
    for _ in 0..reps {
        for (i, (_, mode)) in modes.iter().enumerate() {
            let mut rec = recorder(*mode);
            if *mode != rec.timing() {
                println!("({} is not available here: skipped)", modes[i].0);
                continue;
            }
            let t0 = Instant::now();
            record(&mut rec)?;
            let done = rec.submit()?;
            ctx.wait()?;
            wall[i].push(t0.elapsed().as_secs_f64() * 1e3);
            if let Some(ms) = done.total_ms() {
                gpu[i].push(ms);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied()
    };
    println!("{what}: {dispatches} dispatches, median of {reps} runs:");
    let base = median(&mut wall[0].clone());
    for (i, (name, _)) in modes.iter().enumerate() {
        let (Some(w), g) = (median(&mut wall[i]), median(&mut gpu[i])) else { continue };
        let vs = base.map(|b| format!(" ({:+.1} % wall vs untimed)", 100.0 * (w / b - 1.0))).unwrap_or_default();
        let g = g.map(|g| format!(", GPU sum {g:.3} ms")).unwrap_or_default();
        println!("  {name:<36} wall {w:.3} ms{g}{vs}");
    }
    Ok(())
}
