//! `cargo bench`: the standard suite of docs/bench.md, as `vcortex bench` runs it.

fn main() {
    let ctx = match vcortex::Context::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let opts = vcortex::bench::BenchOptions::default();
    println!("suite on {}", ctx.adapter());
    println!("{}", vcortex::bench::timing_line(&ctx));
    vcortex::bench::run_suite(&ctx, &opts, |r| println!("{}", r.to_json()));
}
