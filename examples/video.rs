//! Streaming the Sensorium 2023 video twin as a rig would: one new frame at a time, each answered
//! with that frame's rates once the receptive field is full, and every frame's latency printed.
//!
//!     cargo run --release --example video -- [WEIGHTS.safetensors CONFIG.json [DATA_KEY]] [--frames N]
//!
//! Without weights it streams the benchmark's shape on random weights: the factorized core
//! (hidden [32, 64, 128], kernels 11/5 and 11/5, no padding, so 19 frames fill the receptive
//! field), one mouse of 8000 neurons with a shifter, frames of 36×64 with 3 channels (video,
//! pupil dilation, running speed).

use std::path::PathBuf;
use std::time::Instant;

use vcortex::models::{Video, VideoConfig};
use vcortex::Context;

const BENCHMARK: &str = r#"{"kind": "video",
  "core": {"type": "3D_factorised", "input_channels": 3, "hidden_channels": [32, 64, 128],
           "spatial_input_kernel": 11, "temporal_input_kernel": 11,
           "spatial_hidden_kernel": 5, "temporal_hidden_kernel": 5},
  "readouts": {"mouse0": {"neurons": 8000, "shifter": true}}}"#;

fn main() -> Result<(), vcortex::Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut frames = 30usize;
    if let Some(i) = args.iter().position(|a| a == "--frames") {
        frames = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(frames);
        args.drain(i..(i + 2).min(args.len()));
    }
    let ctx = Context::new()?;
    let model = match (args.first(), args.get(1)) {
        (Some(w), Some(c)) => Video::load(&ctx, &PathBuf::from(w), &PathBuf::from(c))?,
        _ => {
            let mut m = Video::random(VideoConfig::from_json(BENCHMARK)?, 1)?;
            m.upload(&ctx)?;
            m
        }
    };
    let key = args.get(2).cloned().unwrap_or_else(|| model.data_keys()[0].to_string());
    let (c, h, w) = (model.config.core.input_channels(), 36, 64);
    let shifter = model.has_shifter(&key);
    let mut stream = model.stream(&key, 1, h, w)?;
    let mut rng = vcortex::rng::SplitMix::new(2);
    let mut times = Vec::new();
    for t in 0..frames {
        let frame = rng.vec(c * h * w, -1.0, 1.0);
        let pupil = shifter.then(|| rng.vec(2, -0.5, 0.5));
        let start = Instant::now();
        let (rates, shape) = stream.push(&ctx, &frame, &[1, c, 1, h, w], pupil.as_deref())?;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if rates.is_empty() {
            println!("frame {t:3}: {ms:8.2} ms (filling the receptive field)");
        } else {
            let mean = rates.iter().map(|&r| r as f64).sum::<f64>() / rates.len() as f64;
            println!("frame {t:3}: {ms:8.2} ms, {} rates {shape:?}, mean {mean:.4}", rates.len());
            times.push(ms);
        }
    }
    if !times.is_empty() {
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "per-frame latency once the field is full: median {:.2} ms over {} frames",
            times[times.len() / 2],
            times.len()
        );
    }
    Ok(())
}
