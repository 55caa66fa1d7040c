//! `vcortex bench`: the standard suite (docs/bench.md) as a table on stdout, and optionally JSON Lines.

use std::io::Write;
use std::path::PathBuf;

use vcortex::bench::{self, BenchOptions, BenchResult};
use vcortex::io::check_output;
use vcortex::{Context, Error, Result};

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map(|x| format!("{x:.prec$}")).unwrap_or_else(|| "-".into())
}

pub fn run(json: Option<PathBuf>, filter: Option<String>, full: bool, reps: usize, profile: bool) -> Result<()> {
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
    println!("{}", bench::timing_line(&ctx));
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
