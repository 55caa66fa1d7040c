//! Embedding vcortex in an experiment program: load a Sensorium-style model once, then answer each
//! new batch of stimuli with one submit.
//!
//!     cargo run --release --example predict -- WEIGHTS.safetensors CONFIG.json [DATA_KEY]
//!
//! With no arguments it runs the small reference model committed in kernels-tests/data/sensorium.

use std::path::PathBuf;
use std::time::Instant;

use vcortex::models::Sensorium;
use vcortex::Context;

fn main() -> Result<(), vcortex::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data/sensorium");
    let weights = args.first().map(PathBuf::from).unwrap_or_else(|| data.join("weights.safetensors"));
    let config = args.get(1).map(PathBuf::from).unwrap_or_else(|| data.join("config.json"));

    let ctx = Context::new()?;
    println!("device: {}", ctx.adapter());
    let model = Sensorium::load(&ctx, &weights, &config)?;
    let key = args.get(2).cloned().unwrap_or_else(|| model.data_keys()[0].to_string());
    let c = model.config.core.input_channels;

    // One stimulus at a time, as a closed-loop experiment would send them.
    let mut rng = vcortex::rng::SplitMix::new(1);
    let mut times = Vec::new();
    for trial in 0..20 {
        let image = rng.vec(c * 36 * 64, -1.0, 1.0);
        let t0 = Instant::now();
        let rates = model.predict(&ctx, &image, &[1, c, 36, 64], &key)?;
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        if trial == 0 {
            println!("{key}: {} neurons, first rates {:?}", rates.len(), &rates[..rates.len().min(4)]);
        }
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!("median latency, image in to rates out: {:.3} ms", times[times.len() / 2]);
    Ok(())
}
