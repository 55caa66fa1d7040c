//! The Sensorium 2023 video twin: GPU forward against the f64 reference on random weights,
//! streaming against the clip forward, and bad input refused by name.

use crate::common::{assert_close, ctx, refused_param, refused_shape};
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
        let (n, tout) = (cs[1], cs[2]);
        let r = m.core().config.receptive_frames().unwrap();
        assert_eq!(tout, t - r + 1);
        // Frames one at a time, then in chunks of 1, 3, 2, 5.
        for chunks in [vec![1; t], vec![1, 3, 2, 5]] {
            let mut s = m.stream("m1", b, h, w).unwrap();
            let mut got = vec![Vec::new(); b * n];
            let mut t0 = 0;
            for k in chunks {
                let frames: Vec<f32> =
                    (0..b * 3).flat_map(|bc| x[(bc * t + t0) * h * w..(bc * t + t0 + k) * h * w].to_vec()).collect();
                let p: Vec<f32> = (0..b * 2).flat_map(|bc| pupil[bc * t + t0..bc * t + t0 + k].to_vec()).collect();
                let (y, ys) = s.push(ctx(), &frames, &[b, 3, k, h, w], Some(&p)).unwrap();
                let kk = ys[2];
                assert_eq!(kk, (t0 + k).saturating_sub(r - 1) - t0.saturating_sub(r - 1));
                for row in 0..b * n {
                    got[row].extend_from_slice(&y[row * kk..(row + 1) * kk]);
                }
                t0 += k;
            }
            assert_eq!(s.frames_seen(), t);
            let got: Vec<f32> = got.concat();
            assert_close(&got, &clip, 1e-4, 1e-4, &format!("{kind} stream vs clip"));
        }
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

/// The plain-PyTorch port of upstream's modules (scripts/golden_video.py, data/video/{factorised,
/// basic}): GPU and CPU reference within 1e-4 relative; the weights hold int64 buffers
/// (num_batches_tracked) and a grid_mean_predictor readout.
#[test]
fn video_goldens_match_pytorch() {
    use vcortex::io::{read_safetensors, read_weights};
    for name in ["factorised", "basic"] {
        let dir = crate::common::data_dir("video").join(name);
        let m = Video::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
        let mut inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap().tensors;
        let video = inputs.remove("video").unwrap();
        let pupil = inputs.remove("pupil_center").unwrap();
        let mut want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors;
        for key in ["m1", "m2"] {
            let p = (key == "m1").then_some(&pupil.data[..]);
            let w = want.remove(key).unwrap();
            let (got, gs) = m.predict(ctx(), &video.data, &video.shape, p, key).unwrap();
            assert_eq!(gs, w.shape, "{name} {key}");
            assert_close(&got, &w.data, 1e-5, 1e-4, &format!("golden {name} {key} (GPU)"));
            let (cpu, _) = m.reference_forward(&video.data, &video.shape, p, key).unwrap();
            assert_close(&cpu, &w.data, 1e-5, 1e-4, &format!("golden {name} {key} (reference)"));
        }
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
