//! The Sensorium 2023 video twin: GPU forward against the f64 reference on random weights,
//! streaming against the clip forward, and bad input refused by name.

use crate::common::{assert_close, ctx, refused_config, refused_length, refused_param, refused_shape, refused_weights};
use vcortex::models::{Video, VideoConfig};
use vcortex::rng::SplitMix;

fn config(kind: &str, padding: bool) -> VideoConfig {
    let text = format!(
        r#"{{"kind": "video",
            "core": {{"type": "{kind}", "input_channels": 3, "hidden_channels": [4, 6],
                      "spatial_input_kernel": 5, "temporal_input_kernel": 3,
                      "spatial_hidden_kernel": 3, "temporal_hidden_kernel": 2,
                      "padding": {padding}, "final_nonlin": false}},
            "readouts": {{"m1": {{"neurons": 9, "shifter": true}}, "m2": {{"neurons": 5}}}},
            "elu_offset": 0.2}}"#
    );
    VideoConfig::from_json(&text).unwrap()
}

fn model(kind: &str, padding: bool) -> Video {
    let mut m = Video::random(config(kind, padding), 7).unwrap();
    m.upload(ctx()).unwrap();
    m
}

#[test]
fn video_forward_matches_reference() {
    let mut rng = SplitMix::new(3);
    for (kind, padding) in [("3D_factorised", false), ("3D_factorised", true), ("3D", false)] {
        let m = model(kind, padding);
        let shape = [2, 3, 9, 11, 13];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let pupil = rng.vec(2 * 2 * 9, -1.0, 1.0);
        for (key, p) in [("m1", Some(&pupil[..])), ("m2", None)] {
            let (got, gs) = m.predict(ctx(), &x, &shape, p, key).unwrap();
            let (want, ws) = m.reference_forward(&x, &shape, p, key).unwrap();
            let n = m.neurons(key).unwrap();
            assert_eq!(gs, vec![2, n, 9 - 3], "{kind} {key}");
            assert_eq!(gs, ws);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("video {kind} padding={padding} {key}"));
            assert!(got.iter().all(|&v| v > 0.0), "ELU+1 is positive");
        }
    }
}

/// Clip `x` [B, C, T, H, W] (with `pupil` [B, 2, T] for readouts with a shifter) fed to a fresh
/// stream into `key` in chunks of `chunks` frames: the outputs concatenated in time, [B, N, T'].
/// Checks that each push answers exactly its frames past the receptive field, and that after a
/// `reset` the same clip gives the same outputs.
fn stream_in_chunks(
    m: &Video,
    key: &str,
    x: &[f32],
    pupil: Option<&[f32]>,
    shape: [usize; 5],
    chunks: &[usize],
) -> Vec<f32> {
    let [b, c, t, h, w] = shape;
    let r = m.core().config.receptive_frames().unwrap();
    let n = m.neurons(key).unwrap();
    let mut s = m.stream(key, b, h, w).unwrap();
    let mut passes = Vec::new();
    // Twice, with a reset between: the second clip starts from a clean state (history and GRU).
    for pass in 0..2 {
        if pass == 1 {
            s.reset();
            assert_eq!(s.frames_seen(), 0);
        }
        let mut got = vec![Vec::new(); b * n];
        let mut t0 = 0;
        for &k in chunks {
            let frames: Vec<f32> =
                (0..b * c).flat_map(|bc| x[(bc * t + t0) * h * w..(bc * t + t0 + k) * h * w].to_vec()).collect();
            let p: Option<Vec<f32>> =
                pupil.map(|p| (0..b * 2).flat_map(|bc| p[bc * t + t0..bc * t + t0 + k].to_vec()).collect());
            let (y, ys) = s.push(ctx(), &frames, &[b, c, k, h, w], p.as_deref()).unwrap();
            let kk = ys[2];
            let want = (t0 + k).saturating_sub(r - 1) - t0.saturating_sub(r - 1);
            assert_eq!(ys, [b, n, want], "frames {t0}..{}", t0 + k);
            for row in 0..b * n {
                got[row].extend_from_slice(&y[row * kk..(row + 1) * kk]);
            }
            t0 += k;
        }
        assert_eq!(s.frames_seen(), t);
        passes.push(got.concat());
    }
    assert_close(&passes[1], &passes[0], 1e-6, 1e-6, "the same clip after a reset");
    passes.swap_remove(0)
}

#[test]
fn video_stream_equals_clip() {
    let mut rng = SplitMix::new(5);
    for kind in ["3D_factorised", "3D"] {
        let m = model(kind, false);
        let (b, t, h, w) = (2, 11, 11, 13);
        let shape = [b, 3, t, h, w];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let pupil = rng.vec(b * 2 * t, -1.0, 1.0);
        let (clip, cs) = m.predict(ctx(), &x, &shape, Some(&pupil), "m1").unwrap();
        let tout = cs[2];
        let r = m.core().config.receptive_frames().unwrap();
        assert_eq!(tout, t - r + 1);
        // Frames one at a time, then in chunks of 1, 3, 2, 5.
        for chunks in [vec![1; t], vec![1, 3, 2, 5]] {
            let got = stream_in_chunks(&m, "m1", &x, Some(&pupil), shape, &chunks);
            assert_close(&got, &clip, 1e-4, 1e-4, &format!("{kind} stream vs clip"));
        }
    }
}

/// A stream holding a share of the model (`stream_shared`, an `Arc`) gives exactly the borrowed
/// stream's rates, for a 3-D core (temporal history) and the 2-D + ConvGRU golden (GRU state),
/// and lives on its own: it is moved to another thread between pushes.
#[test]
fn video_shared_stream_equals_borrowed() {
    use std::sync::Arc;
    let mut rng = SplitMix::new(12);
    let gru = crate::common::data_dir("video").join("gru2d");
    let models = [
        (Arc::new(model("3D_factorised", false)), 3usize),
        (Arc::new(Video::load(ctx(), &gru.join("weights.safetensors"), &gru.join("config.json")).unwrap()), 3),
    ];
    for (m, c) in models {
        let (b, t, h, w) = (2, 8, 11, 13);
        let mut borrowed = m.stream("m1", b, h, w).unwrap();
        let mut shared = m.stream_shared("m1", b, h, w).unwrap();
        for k in [1, 3, 4] {
            let f = rng.vec(b * c * k * h * w, -1.0, 1.0);
            let p = rng.vec(b * 2 * k, -1.0, 1.0);
            let want = borrowed.push(ctx(), &f, &[b, c, k, h, w], Some(&p)).unwrap();
            let (got, back) = std::thread::spawn(move || {
                let got = shared.push(ctx(), &f, &[b, c, k, h, w], Some(&p)).unwrap();
                (got, shared)
            })
            .join()
            .unwrap();
            shared = back;
            assert_eq!(got, want, "shared vs borrowed, {k} frames");
        }
        assert_eq!(shared.frames_seen(), t);
        drop(m);
        // The stream keeps the model alive after the last other handle is gone.
        shared.reset();
        let f = rng.vec(b * c * h * w, -1.0, 1.0);
        let p = rng.vec(b * 2, -1.0, 1.0);
        shared.push(ctx(), &f, &[b, c, 1, h, w], Some(&p)).unwrap();
        assert_eq!(shared.frames_seen(), 1);
    }
}

#[test]
fn video_refusals() {
    let m = model("3D_factorised", false);
    let mut rng = SplitMix::new(9);
    // A clip shorter than the receptive field (4 frames).
    let short = [1, 3, 3, 11, 13];
    let x = rng.vec(short.iter().product(), -1.0, 1.0);
    refused_shape(m.predict(ctx(), &x, &short, None, "m2"), "video", "video");
    refused_shape(m.reference_forward(&x, &short, None, "m2"), "video", "video");
    // Channels that do not match the config.
    let bad = [1, 2, 6, 11, 13];
    let x = rng.vec(bad.iter().product(), -1.0, 1.0);
    refused_shape(m.predict(ctx(), &x, &bad, None, "m2"), "video", "video");
    // A missing pupil_center for a readout with a shifter; one given where there is none.
    let ok = [1, 3, 6, 11, 13];
    let x = rng.vec(ok.iter().product(), -1.0, 1.0);
    refused_param(m.predict(ctx(), &x, &ok, None, "m1"), "sensorium", "pupil_center");
    refused_param(m.reference_forward(&x, &ok, None, "m1"), "sensorium", "pupil_center");
    refused_param(m.predict(ctx(), &x, &ok, Some(&[0.0; 12]), "m2"), "sensorium", "pupil_center");
    refused_param(m.predict(ctx(), &x, &ok, None, "nope"), "video", "data_key");
    // A frame of the wrong size into a stream; the stream is unchanged after it.
    let mut s = m.stream("m2", 1, 11, 13).unwrap();
    let f = rng.vec(3 * 11 * 12, -1.0, 1.0);
    refused_shape(s.push(ctx(), &f, &[1, 3, 1, 11, 12], None), "video", "frames");
    let f = rng.vec(2 * 11 * 13, -1.0, 1.0);
    refused_shape(s.push(ctx(), &f, &[1, 2, 1, 11, 13], None), "video", "frames");
    assert_eq!(s.frames_seen(), 0);
    // A frame too small for the core.
    refused_shape(m.stream("m2", 1, 5, 13), "video", "video");
}

/// Golden `name` (data/video/NAME, written by scripts/golden_video.py or golden_video2d.py): the
/// GPU forward, the CPU reference and a stream fed one frame at a time (its outputs, the frames
/// past the receptive field, concatenated in time) each within 1e-4 relative of PyTorch's, for
/// both data keys (m1 with the shifter on `pupil_center`). Returns the golden's folder.
fn check_golden(name: &str) -> std::path::PathBuf {
    use vcortex::io::read_safetensors;
    let dir = crate::common::data_dir("video").join(name);
    let m = Video::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
    let mut inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap().tensors;
    let video = inputs.remove("video").unwrap();
    let pupil = inputs.remove("pupil_center").unwrap();
    let mut want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors;
    let [b, c, t, h, w] = video.shape[..] else { panic!("5-D") };
    for key in ["m1", "m2"] {
        let p = (key == "m1").then_some(&pupil.data[..]);
        let wt = want.remove(key).unwrap();
        let (got, gs) = m.predict(ctx(), &video.data, &video.shape, p, key).unwrap();
        assert_eq!(gs, wt.shape, "{name} {key}");
        assert_close(&got, &wt.data, 1e-5, 1e-4, &format!("golden {name} {key} (GPU)"));
        let (cpu, _) = m.reference_forward(&video.data, &video.shape, p, key).unwrap();
        assert_close(&cpu, &wt.data, 1e-5, 1e-4, &format!("golden {name} {key} (reference)"));
        let streamed = stream_in_chunks(&m, key, &video.data, p, [b, c, t, h, w], &vec![1; t]);
        assert_close(&streamed, &wt.data, 1e-5, 1e-4, &format!("golden {name} {key} (stream)"));
    }
    dir
}

/// The plain-PyTorch port of upstream's modules (scripts/golden_video.py, data/video/{factorised,
/// basic}): GPU, CPU reference and stream within 1e-4 relative; the weights hold int64 buffers
/// (num_batches_tracked) and a grid_mean_predictor readout.
#[test]
fn video_goldens_match_pytorch() {
    use vcortex::io::read_weights;
    for name in ["factorised", "basic"] {
        let dir = check_golden(name);
        // Empty tensors, as upstream's state dicts hold some, are accepted.
        let mut sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
        sd.insert("readout.m1.empty".into(), vcortex::io::HostTensor::new(vec![80, 0], Vec::new()));
        let cfg = VideoConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        Video::from_state_dict(cfg, sd).unwrap();
    }
}

/// `vcortex predict` with a `"kind": "video"` config: the golden clips [B, C, T, H, W] and their
/// `pupil_center` [B, 2, T] in, [B, N, T'] per data key out, equal to the PyTorch golden whether
/// the clips go one a submit or all at once; a file without `pupil_center` for a readout with a
/// shifter, videos that are not 5-D, and latent-only options are refused in one line by name.
#[test]
fn cli_predict_video() {
    use crate::common::{data_dir, vcortex, write_tensors};
    use vcortex::io::read_safetensors;
    let src = data_dir("video").join("factorised");
    let dir = std::env::temp_dir().join(format!("vcortex-video-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (wp, cp, ip) = (src.join("weights.safetensors"), src.join("config.json"), src.join("inputs.safetensors"));
    let want = read_safetensors(&src.join("expected.safetensors")).unwrap().tensors;
    let run = |images: &std::path::Path, extra: &[&str], out: &str| {
        let o = dir.join(out);
        let mut args = vec!["predict", "--weights", wp.to_str().unwrap(), "--config", cp.to_str().unwrap()];
        args.extend(["--images", images.to_str().unwrap(), "-o", o.to_str().unwrap()]);
        args.extend_from_slice(extra);
        (vcortex(&args), o)
    };
    for (batch, out) in [("1", "one.safetensors"), ("64", "all.safetensors")] {
        let (r, o) = run(&ip, &["--batch", batch], out);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let got = read_safetensors(&o).unwrap().tensors;
        assert_eq!(got.len(), 2, "one output per data key");
        for key in ["m1", "m2"] {
            assert_eq!(got[key].shape, want[key].shape, "{key} [B, N, T']");
            assert_close(&got[key].data, &want[key].data, 1e-5, 1e-4, &format!("cli video {key} batch {batch}"));
        }
    }
    // One data key only: the readout without a shifter needs no pupil_center.
    let inputs = read_safetensors(&ip).unwrap().tensors;
    let video = &inputs["video"];
    let no_pupil = dir.join("video_only.safetensors");
    write_tensors(&no_pupil, &[("video", video)]);
    let (r, o) = run(&no_pupil, &["--data-key", "m2"], "m2.safetensors");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = read_safetensors(&o).unwrap().tensors;
    assert_eq!(got.keys().collect::<Vec<_>>(), ["m2"]);
    assert_close(&got["m2"].data, &want["m2"].data, 1e-5, 1e-4, "cli video m2 alone");
    // The readout with a shifter without pupil_center; a 4-D file; --samples.
    let one_line = |r: &std::process::Output, needle: &str, o: &std::path::Path| {
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains(needle) && err.trim().lines().count() == 1, "{err}");
        assert!(!o.exists(), "nothing written on a refusal");
    };
    let (r, o) = run(&no_pupil, &[], "shifter.safetensors");
    one_line(&r, "pupil_center", &o);
    let flat = dir.join("flat.safetensors");
    let s = &video.shape;
    let frames = vcortex::io::HostTensor::new(vec![s[0], s[1] * s[2], s[3], s[4]], video.data.clone());
    write_tensors(&flat, &[("video", &frames)]);
    let (r, o) = run(&flat, &["--data-key", "m2"], "flat_out.safetensors");
    one_line(&r, "[B, C, T, H, W]", &o);
    let (r, o) = run(&ip, &["--samples", "3"], "samples.safetensors");
    one_line(&r, "--samples", &o);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `2D` (or `2D_equivariant`) core with a ConvGRU: `core` the core's extra JSON fields, `gru`
/// the GRU's (input_channels 6, rec_channels 5 are given).
fn config_2d(kind: &str, core: &str, gru: &str) -> VideoConfig {
    VideoConfig::from_json(&config_2d_text(kind, core, gru)).unwrap()
}

fn config_2d_text(kind: &str, core: &str, gru: &str) -> String {
    format!(
        r#"{{"kind": "video",
            "core": {{"type": "{kind}", "input_channels": 3, "hidden_channels": 6, "input_kern": 5,
                      "hidden_kern": 3, "layers": 3, "final_nonlinearity": false{core}}},
            "gru": {{"input_channels": 6, "rec_channels": 5{gru}}},
            "readouts": {{"m1": {{"neurons": 9, "shifter": true}}, "m2": {{"neurons": 5}},
                          "m3": {{"neurons": 1}}}},
            "elu_offset": 0.1}}"#
    )
}

/// Head semantics, every layer stacked (18 channels into the GRU), the last norm without scale.
fn config_2d_stacked() -> VideoConfig {
    let text = config_2d_text(
        "2D",
        r#", "semantics": "head", "depth_separable": false, "stack": null, "final_batchnorm_scale": false"#,
        r#", "input_kern": 5, "rec_kern": 3"#,
    );
    VideoConfig::from_json(&text.replace(r#""input_channels": 6"#, r#""input_channels": 18"#)).unwrap()
}

fn model_of(config: VideoConfig, seed: u64) -> Video {
    let mut m = Video::random(config, seed).unwrap();
    m.upload(ctx()).unwrap();
    m
}

/// The 2-D + GRU models (and a 3-D core with a GRU) on random weights: GPU against the f64
/// reference on odd sizes, one frame, batch 1, frames one pixel wide (padded convs), every data
/// key.
#[test]
fn video_2d_gru_forward_matches_reference() {
    let mut rng = SplitMix::new(21);
    let ker = r#", "input_kern": 3, "rec_kern": 3"#;
    let cases: Vec<(&str, VideoConfig, [usize; 5])> = vec![
        ("2D plain", config_2d("2D", r#", "depth_separable": false, "bias": true"#, ker), [2, 3, 5, 13, 11]),
        (
            "2D depth-separable, gru unpadded",
            config_2d("2D", "", r#", "input_kern": 3, "rec_kern": 5, "pad_input": false"#),
            [1, 3, 4, 12, 15],
        ),
        ("2D head, stack all", config_2d_stacked(), [1, 3, 3, 9, 10]),
        ("2D one frame, batch 3", config_2d("2D", r#", "depth_separable": false"#, ker), [3, 3, 1, 9, 9]),
        (
            "2D 1-wide, padded",
            config_2d("2D", r#", "pad_input": true, "input_kern": 3, "depth_separable": false"#, ker),
            [2, 3, 4, 7, 1],
        ),
        (
            "2D_equivariant",
            config_2d("2D_equivariant", r#", "num_rotations": 2, "hidden_channels": 3, "stack": -1"#, ker),
            [1, 3, 3, 12, 11],
        ),
    ];
    for (name, cfg, shape) in cases {
        let m = model_of(cfg, 3);
        let t = shape[2];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let pupil = rng.vec(shape[0] * 2 * t, -1.0, 1.0);
        for key in ["m1", "m2", "m3"] {
            let p = (key == "m1").then_some(&pupil[..]);
            let (got, gs) = m.predict(ctx(), &x, &shape, p, key).unwrap();
            let (want, ws) = m.reference_forward(&x, &shape, p, key).unwrap();
            assert_eq!(gs, vec![shape[0], m.neurons(key).unwrap(), t], "{name} {key}: a 2-D core keeps every frame");
            assert_eq!(gs, ws);
            assert_close(&got, &want, 1e-4, 1e-4, &format!("{name} {key}"));
        }
    }
    // A 3-D core with a GRU after it (upstream allows use_gru with any core).
    let text = r#"{"kind": "video",
        "core": {"type": "3D_factorised", "input_channels": 3, "hidden_channels": [4, 6],
                 "spatial_input_kernel": 5, "temporal_input_kernel": 3,
                 "spatial_hidden_kernel": 3, "temporal_hidden_kernel": 2},
        "gru": {"input_channels": 6, "rec_channels": 4, "input_kern": 3, "rec_kern": 3},
        "readouts": {"m1": {"neurons": 7, "shifter": true}}}"#;
    let m = model_of(VideoConfig::from_json(text).unwrap(), 4);
    let shape = [2, 3, 7, 11, 12];
    let x = rng.vec(shape.iter().product(), -1.0, 1.0);
    let pupil = rng.vec(2 * 2 * 7, -1.0, 1.0);
    let (got, gs) = m.predict(ctx(), &x, &shape, Some(&pupil), "m1").unwrap();
    let (want, _) = m.reference_forward(&x, &shape, Some(&pupil), "m1").unwrap();
    assert_eq!(gs, vec![2, 7, 7 - 3]);
    assert_close(&got, &want, 1e-4, 1e-4, "3D_factorised + GRU");
}

/// Streaming a 2-D + GRU model (and a 3-D core with a GRU): frames one at a time and in chunks
/// equal the clip forward; every frame answers at once (a 2-D core has no lookback); reset starts
/// over from h = 0.
#[test]
fn video_2d_gru_stream_equals_clip() {
    let mut rng = SplitMix::new(22);
    let text3d = r#"{"kind": "video",
        "core": {"type": "3D", "input_channels": 3, "hidden_channels": [4, 6],
                 "spatial_input_kernel": 3, "temporal_input_kernel": 3,
                 "spatial_hidden_kernel": 3, "temporal_hidden_kernel": 2},
        "gru": {"input_channels": 6, "rec_channels": 4, "input_kern": 3, "rec_kern": 3, "pad_input": false},
        "readouts": {"m1": {"neurons": 9, "shifter": true}}}"#;
    let models = [
        ("2D", model_of(config_2d("2D", r#", "depth_separable": false"#, r#", "input_kern": 3, "rec_kern": 3"#), 5)),
        (
            "2D gru unpadded",
            model_of(config_2d("2D", "", r#", "input_kern": 3, "rec_kern": 5, "pad_input": false"#), 6),
        ),
        ("3D + GRU", model_of(VideoConfig::from_json(text3d).unwrap(), 7)),
    ];
    for (name, m) in &models {
        let (b, t, h, w) = (2, 9, 11, 13);
        let shape = [b, 3, t, h, w];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let pupil = rng.vec(b * 2 * t, -1.0, 1.0);
        let (clip, cs) = m.predict(ctx(), &x, &shape, Some(&pupil), "m1").unwrap();
        let tout = cs[2];
        let r = m.core().config.receptive_frames().unwrap();
        assert_eq!(tout, t - r + 1, "{name}");
        for chunks in [vec![1; t], vec![2, 3, 1, 3], vec![t]] {
            let got = stream_in_chunks(m, "m1", &x, Some(&pupil), shape, &chunks);
            assert_close(&got, &clip, 1e-4, 1e-4, &format!("{name} stream vs clip"));
        }
    }
}

/// Bad 2-D configs, weights and inputs refused by name; a refused frame leaves the stream as it
/// was.
#[test]
fn video_2d_gru_refusals() {
    let cfg = |core: &str, gru: &str| {
        let text = format!(
            r#"{{"kind": "video",
                "core": {{"type": "2D", "input_channels": 3, "hidden_channels": 6, "input_kern": 5,
                          "hidden_kern": 3, "layers": 2{core}}}{gru},
                "readouts": {{"m1": {{"neurons": 4, "shifter": true}}}}}}"#
        );
        VideoConfig::from_json(&text)
    };
    let gru = |extra: &str| {
        format!(r#", "gru": {{"input_channels": 6, "rec_channels": 5, "input_kern": 3, "rec_kern": 3{extra}}}"#)
    };
    // Upstream's 2D core without a GRU misreads the frames; refused.
    refused_param(cfg("", ""), "video", "gru");
    refused_param(
        cfg("", &gru("").replace(r#""input_channels": 6"#, r#""input_channels": 7"#)),
        "video",
        "gru.input_channels",
    );
    refused_param(cfg("", &gru("").replace("\"rec_kern\": 3", "\"rec_kern\": 4")), "video", "gru.rec_kern");
    refused_param(cfg("", &gru(r#", "groups": 4"#)), "video", "gru.groups");
    refused_param(cfg(r#", "layers": 0"#, &gru("")), "video", "core.layers");
    refused_param(cfg(r#", "stack": 5"#, &gru("")), "video", "core.stack");
    refused_config(cfg(r#", "kind": "stacked2d""#, &gru("")), "core.kind");
    refused_config(cfg(r#", "spatial_input_kernel": 3"#, &gru("")), "spatial_input_kernel");
    refused_config(cfg("", &gru(r#", "rec_kernel": 3"#)), "rec_kernel");
    let m = model_of(cfg("", &gru("")).unwrap(), 1);
    let mut rng = SplitMix::new(2);
    // Channels that do not match, a clip with no frames, frames too small.
    for bad in [[1, 2, 3, 11, 13], [1, 3, 0, 11, 13], [1, 3, 2, 4, 13]] {
        let x = rng.vec(bad.iter().product(), -1.0, 1.0);
        let p = vec![0.0; 2 * bad[2]];
        refused_shape(m.predict(ctx(), &x, &bad, Some(&p), "m1"), "video", "video");
        refused_shape(m.reference_forward(&x, &bad, Some(&p), "m1"), "video", "video");
    }
    // A missing pupil_center where the readout has a shifter.
    let ok = [1, 3, 2, 11, 13];
    let x = rng.vec(ok.iter().product(), -1.0, 1.0);
    refused_param(m.predict(ctx(), &x, &ok, None, "m1"), "sensorium", "pupil_center");
    refused_param(m.reference_forward(&x, &ok, None, "m1"), "sensorium", "pupil_center");
    // pupil_center of the wrong length.
    refused_length(m.predict(ctx(), &x, &ok, Some(&[0.0; 2]), "m1"), "video", "pupil_center");
    // Streams: frames of the wrong size or channels refused, the state unchanged.
    let mut s = m.stream("m1", 1, 11, 13).unwrap();
    let f = rng.vec(3 * 11 * 13, -1.0, 1.0);
    s.push(ctx(), &f, &[1, 3, 1, 11, 13], Some(&[0.1, 0.2])).unwrap();
    let bad = rng.vec(3 * 11 * 12, -1.0, 1.0);
    refused_shape(s.push(ctx(), &bad, &[1, 3, 1, 11, 12], Some(&[0.1, 0.2])), "video", "frames");
    let bad = rng.vec(2 * 11 * 13, -1.0, 1.0);
    refused_shape(s.push(ctx(), &bad, &[1, 2, 1, 11, 13], Some(&[0.1, 0.2])), "video", "frames");
    refused_param(s.push(ctx(), &f, &[1, 3, 1, 11, 13], None), "sensorium", "pupil_center");
    assert_eq!(s.frames_seen(), 1);
    refused_shape(m.stream("m1", 1, 4, 13), "video", "video");
    // The GRU unpadded: frames whose core output is not larger than input_kern − 1.
    let mu = model_of(cfg("", &gru(r#", "pad_input": false"#)).unwrap(), 2);
    refused_shape(mu.stream("m1", 1, 6, 13), "video", "video");
    let small = [1, 3, 2, 6, 13];
    let x = rng.vec(small.iter().product(), -1.0, 1.0);
    refused_shape(mu.predict(ctx(), &x, &small, Some(&[0.0; 4]), "m1"), "video", "video");
    // One pixel more gives a 1 × 9 state.
    mu.stream("m1", 1, 7, 13).unwrap();
}

/// The 2-D core + ConvGRU goldens (scripts/golden_video2d.py, data/video/{gru2d, gru2d_ds,
/// roteq2d}: neuralpredictors 0.3's Stacked2dCore or RotationEquivariant2dCore, a port of
/// upstream's GRU_Module): GPU and CPU reference
/// within 1e-4 relative, the stream frame by frame too; a missing or extra GRU key is refused by
/// name.
#[test]
fn video_2d_goldens_match_pytorch() {
    use vcortex::io::read_weights;
    for name in ["gru2d", "gru2d_ds", "roteq2d"] {
        let dir = check_golden(name);
        let cfg = VideoConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
        let mut missing = sd.clone();
        missing.remove("gru_module.gru.update_gate_hidden.bias");
        refused_weights(Video::from_state_dict(cfg.clone(), missing), "gru_module.gru.update_gate_hidden.bias");
        let mut extra = sd.clone();
        extra.insert("gru_module.gru.extra".into(), vcortex::io::HostTensor::new(vec![1], vec![0.0]));
        refused_weights(Video::from_state_dict(cfg.clone(), extra), "gru_module.gru.extra");
        let mut no_gru = cfg.clone();
        no_gru.gru = None;
        refused_param(Video::from_state_dict(no_gru, sd), "video", "gru");
    }
}

/// The competition demo's 2-D + GRU baseline config (docs/models.md) parses, round-trips through
/// serde, and gives 64 × 28 × 56 per 36 × 64 frame, every frame kept.
#[test]
fn video_2d_baseline_config() {
    let text = r#"{"kind": "video",
        "core": {"type": "2D", "semantics": "head", "input_channels": 3, "hidden_channels": 64,
                 "input_kern": 9, "hidden_kern": 7, "layers": 4, "pad_input": false,
                 "final_nonlinearity": false, "bias": true, "batch_norm": true, "depth_separable": false,
                 "stack": -1, "skip": 0, "hidden_dilation": 1, "final_batchnorm_scale": true,
                 "momentum": 0.9, "gamma_input": 500, "gamma_hidden": 500000},
        "gru": {"input_channels": 64, "rec_channels": 64, "input_kern": 7, "rec_kern": 7, "gamma_rec": 0},
        "readouts": {"mouse0": {"neurons": 7863, "shifter": true, "grid_mean_final_tanh": true}}}"#;
    let c = VideoConfig::from_json(text).unwrap();
    assert_eq!(c.core.kind(), vcortex::models::video::VideoCoreKind::Stacked2d);
    assert_eq!(c.features_shape(&[2, 3, 80, 36, 64]).unwrap(), [2, 64, 80, 28, 56]);
    assert_eq!(c.core.receptive_frames().unwrap(), 1);
    let back = VideoConfig::from_json(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    // The equivariant core's type round-trips too.
    let eq = text
        .replace(r#""type": "2D""#, r#""type": "2D_equivariant", "num_rotations": 8"#)
        .replace(r#""hidden_channels": 64"#, r#""hidden_channels": 8"#);
    let c = VideoConfig::from_json(&eq).unwrap();
    assert_eq!(c.core.kind(), vcortex::models::video::VideoCoreKind::Equivariant2d);
    assert_eq!(VideoConfig::from_json(&serde_json::to_string(&c).unwrap()).unwrap(), c);
}

/// Behaviour [B, K, T] broadcast over H × W after the video's channels (the Sensorium 2023
/// loaders' input), by `Video::clip_with_behavior` and by `vcortex predict` when the inputs file
/// holds `behavior`; shapes that do not fit are refused by name.
#[test]
fn video_behavior_channels() {
    use crate::common::{data_dir, refused_length, vcortex, write_tensors};
    use vcortex::io::{read_safetensors, HostTensor};
    let m = model("3D_factorised", false);
    let mut rng = SplitMix::new(31);
    let (b, t, h, w) = (2, 7, 11, 13);
    let video = rng.vec(b * t * h * w, -1.0, 1.0);
    let behavior = rng.vec(b * 2 * t, -1.0, 1.0);
    let (clip, shape) = m.clip_with_behavior(&video, &[b, 1, t, h, w], &behavior, &[b, 2, t]).unwrap();
    assert_eq!(shape, [b, 3, t, h, w]);
    for bi in 0..b {
        for c in 0..3 {
            for ti in 0..t {
                for p in [0, h * w / 2, h * w - 1] {
                    let got = clip[((bi * 3 + c) * t + ti) * h * w + p];
                    let want =
                        if c == 0 { video[(bi * t + ti) * h * w + p] } else { behavior[(bi * 2 + c - 1) * t + ti] };
                    assert_eq!(got, want, "b {bi} c {c} t {ti} p {p}");
                }
            }
        }
    }
    refused_shape(m.clip_with_behavior(&video, &[b, 1, t, h, w], &behavior, &[b, 2, t - 1]), "video", "behavior");
    refused_shape(m.clip_with_behavior(&clip, &shape, &behavior, &[b, 2, t]), "video", "video");
    refused_length(m.clip_with_behavior(&video, &[b, 1, t, h, w], &behavior[1..], &[b, 2, t]), "video", "behavior");
    // From the command line: the golden model, its video's first channel plus behaviour.
    let src = data_dir("video").join("factorised");
    let g = Video::load(ctx(), &src.join("weights.safetensors"), &src.join("config.json")).unwrap();
    let inputs = read_safetensors(&src.join("inputs.safetensors")).unwrap().tensors;
    let (v, pupil) = (&inputs["video"], &inputs["pupil_center"]);
    let [gb, _, gt, gh, gw] = v.shape[..] else { panic!("5-D") };
    let first: Vec<f32> = (0..gb).flat_map(|bi| v.data[bi * 3 * gt * gh * gw..][..gt * gh * gw].to_vec()).collect();
    let beh = rng.vec(gb * 2 * gt, -1.0, 1.0);
    let (clip, cs) = g.clip_with_behavior(&first, &[gb, 1, gt, gh, gw], &beh, &[gb, 2, gt]).unwrap();
    let dir = std::env::temp_dir().join(format!("vcortex-video-behavior-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ip, op) = (dir.join("in.safetensors"), dir.join("out.safetensors"));
    write_tensors(
        &ip,
        &[
            ("video", &HostTensor::new(vec![gb, 1, gt, gh, gw], first)),
            ("behavior", &HostTensor::new(vec![gb, 2, gt], beh)),
            ("pupil_center", pupil),
        ],
    );
    let (wp, cp) = (src.join("weights.safetensors"), src.join("config.json"));
    let args = ["predict", "--weights", wp.to_str().unwrap(), "--config", cp.to_str().unwrap()];
    let r = vcortex(&[&args[..], &["--images", ip.to_str().unwrap(), "-o", op.to_str().unwrap()]].concat());
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = read_safetensors(&op).unwrap().tensors;
    for key in ["m1", "m2"] {
        let p = (key == "m1").then_some(&pupil.data[..]);
        let (want, ws) = g.predict(ctx(), &clip, &cs, p, key).unwrap();
        assert_eq!(got[key].shape, ws);
        assert_close(&got[key].data, &want, 1e-6, 1e-5, &format!("cli video with behaviour, {key}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
