//! The latent video model: GPU forward vs the f64 CPU reference on random weights, in both modes
//! (conditioned on responses, prior samples), both against PyTorch (scripts/golden_latent.py, on
//! its saved noise), and refusals by name.

use crate::common::*;
use vcortex::models::latent::{LatentConfig, LatentCoreConfig, LatentEncoderConfig, LatentK, LatentReadoutConfig};
use vcortex::models::{Latent, LatentMode, LatentNoise};

fn small(neurons: usize) -> LatentConfig {
    LatentConfig {
        core: LatentCoreConfig {
            hidden_channels: vec![3, 5],
            spatial_input_kernel: 3,
            temporal_input_kernel: 3,
            spatial_hidden_kernel: 3,
            temporal_hidden_kernel: 2,
            batch_norm_eps: 1e-5,
        },
        readout: LatentReadoutConfig {
            data_key: "m".into(),
            neurons,
            kernel: [5, 3],
            bias: true,
            align_corners: true,
            grid_mean_final_tanh: None,
        },
        encoder: LatentEncoderConfig { hidden_dim: 6, hidden_gru: 4, output_dim: 3, layer_norm_eps: 1e-5 },
        samples: 7,
        seed: 3,
        k: LatentK::Logk,
        loc: 0.005,
    }
}

fn inputs(b: usize, t: usize, h: usize, w: usize, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = vcortex::rng::SplitMix::new(seed);
    let video = rng.vec(b * t * h * w, -1.0, 1.0);
    // Responses with zeros (below loc) and positive values.
    let resp = rng.vec(b * n * t, -0.5, 2.0).into_iter().map(|v| v.max(0.0)).collect();
    (video, resp)
}

#[test]
fn latent_gpu_matches_reference_both_modes() {
    for (b, t, h, w, n) in [(2usize, 9usize, 7usize, 6usize, 11usize), (1, 5, 5, 5, 1)] {
        let mut m = Latent::random(small(n), 17).unwrap();
        m.upload(ctx()).unwrap();
        let (video, resp) = inputs(b, t, h, w, n, 5);
        let shape = [b, 1, t, h, w];
        for (mode, s) in [(LatentMode::Conditioned, 7usize), (LatentMode::Prior, 7), (LatentMode::Prior, 1)] {
            let want = m.reference_forward(&video, &shape, Some(&resp), mode, s, 9).unwrap();
            let got = m.predict(ctx(), &video, &shape, Some(&resp), mode, s, 9).unwrap();
            assert_eq!(got.shape, want.shape);
            assert_eq!(got.shape, [b, t - 3, n]);
            assert_close(&got.mean, &want.mean, 1e-4, 1e-3, &format!("{mode:?} mean"));
            assert_close(got.loglik.as_ref().unwrap(), want.loglik.as_ref().unwrap(), 1e-3, 1e-3, "loglik");
        }
        // Prior without responses: the mean only.
        let got = m.predict(ctx(), &video, &shape, None, LatentMode::Prior, 4, 1).unwrap();
        let want = m.reference_forward(&video, &shape, None, LatentMode::Prior, 4, 1).unwrap();
        assert!(got.loglik.is_none());
        assert_close(&got.mean, &want.mean, 1e-4, 1e-3, "prior mean");
    }
}

#[test]
fn latent_refusals_name_the_argument() {
    let mut m = Latent::random(small(4), 1).unwrap();
    m.upload(ctx()).unwrap();
    let (video, resp) = inputs(1, 6, 5, 5, 4, 2);
    let shape = [1, 1, 6, 5, 5];
    refused_param(m.predict(ctx(), &video, &shape, None, LatentMode::Conditioned, 3, 0), "latent", "responses");
    refused_param(m.predict(ctx(), &video, &shape, Some(&resp), LatentMode::Prior, 0, 0), "latent", "samples");
    // Too few frames for the core (needs 4), wrong channels, mis-shaped responses.
    refused_shape(m.predict(ctx(), &video[..75], &[1, 1, 3, 5, 5], None, LatentMode::Prior, 3, 0), "latent", "video");
    refused_shape(m.predict(ctx(), &video, &[1, 2, 3, 5, 5], None, LatentMode::Prior, 3, 0), "latent", "video");
    refused_length(m.predict(ctx(), &video, &shape, Some(&resp[..20]), LatentMode::Prior, 3, 0), "latent", "responses");
    let mut cfg = small(4);
    cfg.readout.kernel = [4, 3];
    refused_param(Latent::random(cfg, 0), "latent", "readout.kernel");
    let mut cfg = small(4);
    cfg.core.hidden_channels.clear();
    refused_param(cfg.validate(), "latent", "core.hidden_channels");
    // A missing and an unexpected key.
    let mut sd = Latent::random_state_dict(&small(4), 0);
    sd.remove("sigma");
    refused_weights(Latent::from_state_dict(small(4), sd), "sigma");
    let mut sd = Latent::random_state_dict(&small(4), 0);
    sd.insert("encoder.GRU.weight_ih_l1".into(), vcortex::io::HostTensor::new(vec![1], vec![0.0]));
    refused_weights(Latent::from_state_dict(small(4), sd), "weight_ih_l1");
    refused_config(LatentConfig::from_json(r#"{"kind": "video"}"#), "kind");
    // The fitted k: missing, not positive, or present where k comes from logk; a bad loc; a
    // readout sigma of no gauss_type's shape.
    let mut fitted = small(4);
    fitted.k = LatentK::Fitted;
    let mut sd = Latent::random_state_dict(&fitted, 0);
    Latent::from_state_dict(fitted.clone(), sd.clone()).unwrap();
    sd.remove("fitted_k.m");
    refused_weights(Latent::from_state_dict(fitted.clone(), sd), "fitted_k.m");
    let mut sd = Latent::random_state_dict(&fitted, 0);
    sd.get_mut("fitted_k.m").unwrap().data[1] = 0.0;
    refused_weights(Latent::from_state_dict(fitted.clone(), sd.clone()), "fitted_k.m[1]");
    refused_weights(Latent::from_state_dict(small(4), sd), "fitted_k.m");
    fitted.loc = 0.0;
    refused_param(fitted.validate(), "latent", "loc");
    let mut sd = Latent::random_state_dict(&small(4), 0);
    sd.insert("readout.m.sigma".into(), vcortex::io::HostTensor::new(vec![1, 4, 2, 1], vec![0.1; 8]));
    refused_weights(Latent::from_state_dict(small(4), sd), "readout.m.sigma");
}

/// The plain-PyTorch port of upstream's modules (scripts/golden_latent.py, data/latent): the GPU
/// forward and the CPU reference on the golden's noise reproduce its means and log-likelihoods
/// (conditioned and prior) within 1e-4 relative, with the paper's fitted k (loc 0.005) and with k
/// and loc from logk and logloc. The weights are upstream's state dict (`_features`, a full
/// gauss_type sigma, int64 num_batches_tracked, an empty `mice.<key>`).
#[test]
fn latent_golden_matches_pytorch() {
    use vcortex::io::{read_safetensors, read_weights};
    let dir = data_dir("latent");
    let inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap().tensors;
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors;
    let (video, resp, noise) = (&inputs["videos"], &inputs["responses"], &inputs["noise"]);
    for (config, prefix) in [("config.json", ""), ("config_logk.json", "logk_")] {
        let cfg = LatentConfig::from_json(&std::fs::read_to_string(dir.join(config)).unwrap()).unwrap();
        let mut sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
        if cfg.k == LatentK::Logk {
            // Upstream keeps the fitted k outside the state dict; the golden's file carries it.
            sd.remove("fitted_k.m0");
        } else {
            let m = Latent::load(ctx(), &dir.join("weights.safetensors"), &dir.join(config)).unwrap();
            assert_eq!(m.config, cfg);
        }
        let mut m = Latent::from_state_dict(cfg, sd).unwrap();
        m.upload(ctx()).unwrap();
        let eps = LatentNoise::Given(&noise.data);
        for (mode, name) in [(LatentMode::Conditioned, "cond"), (LatentMode::Prior, "prior")] {
            let gpu = m.predict_with(ctx(), &video.data, &video.shape, Some(&resp.data), mode, eps).unwrap();
            let cpu = m.reference_forward_with(&video.data, &video.shape, Some(&resp.data), mode, eps).unwrap();
            for (out, dev) in [(&gpu, "GPU"), (&cpu, "reference")] {
                let (wm, wl) = (&want[&format!("{prefix}{name}_mean")], &want[&format!("{prefix}{name}_loglik")]);
                assert_eq!(out.shape[..], wm.shape[..], "{config} {name}");
                assert_close(&out.mean, &wm.data, 1e-6, 1e-4, &format!("{config} {name} mean ({dev})"));
                let ll = out.loglik.as_ref().unwrap();
                assert_close(ll, &wl.data, 1e-4, 1e-4, &format!("{config} {name} loglik ({dev})"));
            }
        }
    }
}

/// Given noise is checked: [S, B·T', L] with S >= 1, on the host and the device.
#[test]
fn latent_given_noise_refusals() {
    let mut m = Latent::random(small(4), 1).unwrap();
    m.upload(ctx()).unwrap();
    let (video, resp) = inputs(1, 6, 5, 5, 4, 2);
    let shape = [1, 1, 6, 5, 5];
    // T' = 3, L = 3: one sample is 9 normals.
    let eps = vec![0.5f32; 20];
    let mode = LatentMode::Prior;
    refused_shape(
        m.predict_with(ctx(), &video, &shape, Some(&resp), mode, LatentNoise::Given(&eps)),
        "latent",
        "noise",
    );
    refused_shape(m.predict_with(ctx(), &video, &shape, None, mode, LatentNoise::Given(&[])), "latent", "noise");
    refused_shape(m.reference_forward_with(&video, &shape, None, mode, LatentNoise::Given(&eps)), "latent", "noise");
    let x = up(&video, &shape);
    let bad = up(&eps[..18], &[3, 3, 2]);
    let mut rec = ctx().recorder();
    refused_shape(m.record_given(&mut rec, &x, None, mode, &bad), "latent", "noise");
    // Philox noise equals the same normals given (σ-scaled on the device when conditioned):
    // output frame j's [S, B, L] = [2, 1, 3] from Philox stream (4, j), laid out [S, B·T', L].
    let rows = vcortex::reference::random::normal_rows(4, 0, 3, 2 * 3);
    let mut philox = vec![0f32; 18];
    for j in 0..3 {
        for si in 0..2 {
            let (src, dst) = ((j * 2 + si) * 3, (si * 3 + j) * 3);
            philox[dst..dst + 3].copy_from_slice(&rows[src..src + 3]);
        }
    }
    for mode in [LatentMode::Prior, LatentMode::Conditioned] {
        let a = m.predict_with(ctx(), &video, &shape, Some(&resp), mode, LatentNoise::Given(&philox)).unwrap();
        let b = m.predict(ctx(), &video, &shape, Some(&resp), mode, 2, 4).unwrap();
        assert_close(&a.mean, &b.mean, 1e-6, 1e-5, &format!("{mode:?}: given = philox mean"));
        let (la, lb) = (a.loglik.as_ref().unwrap(), b.loglik.as_ref().unwrap());
        assert_close(la, lb, 1e-5, 1e-5, &format!("{mode:?}: given = philox loglik"));
    }
}

/// `vcortex predict` runs the latent model from its config (`"kind": "latent"`): prior samples
/// without `--condition` (the mean only), conditioned with it (the mean and the log-likelihood
/// in bits), outputs [B, N, T'] equal to `Latent::predict`'s [B, T', N] transposed; options the
/// other models do not take are refused by name.
#[test]
fn cli_predict_latent() {
    use vcortex::io::{write_safetensors, HostTensor};
    let dir = std::env::temp_dir().join(format!("vcortex-latent-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (b, t, h, w, n) = (2usize, 8usize, 6usize, 7usize, 5usize);
    let cfg = small(n);
    let sd: Vec<(String, HostTensor)> = Latent::random_state_dict(&cfg, 21).into_iter().collect();
    let (wp, cp, vp, rp) =
        (dir.join("w.safetensors"), dir.join("c.json"), dir.join("v.safetensors"), dir.join("r.safetensors"));
    write_safetensors(&wp, &sd, &Default::default()).unwrap();
    let mut json = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut().unwrap().insert("kind".into(), "latent".into());
    std::fs::write(&cp, json.to_string()).unwrap();
    let (video, resp) = inputs(b, t, h, w, n, 8);
    write_tensors(&vp, &[("videos", &HostTensor::new(vec![b, 1, t, h, w], video.clone()))]);
    write_tensors(&rp, &[("responses", &HostTensor::new(vec![b, n, t], resp.clone()))]);
    let mut m = Latent::from_state_dict(cfg.clone(), sd.into_iter().collect()).unwrap();
    m.upload(ctx()).unwrap();
    let to = t - 3;
    let transposed = |x: &[f32]| -> Vec<f32> {
        let mut y = vec![0f32; x.len()];
        for bi in 0..b {
            for ti in 0..to {
                for ni in 0..n {
                    y[(bi * n + ni) * to + ti] = x[(bi * to + ti) * n + ni];
                }
            }
        }
        y
    };
    let run = |extra: &[&str], out: &str| {
        let o = dir.join(out);
        let mut args = vec!["predict", "--weights", wp.to_str().unwrap(), "--config", cp.to_str().unwrap()];
        args.extend(["--images", vp.to_str().unwrap(), "-o", o.to_str().unwrap()]);
        args.extend_from_slice(extra);
        (vcortex(&args), o)
    };
    // Prior: 4 samples, the mean only.
    let (r, o) = run(&["--samples", "4"], "prior.safetensors");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = vcortex::io::read_safetensors(&o).unwrap().tensors;
    assert_eq!(got.len(), 1, "prior mode writes the mean only");
    let want = m.predict(ctx(), &video, &[b, 1, t, h, w], None, LatentMode::Prior, 4, cfg.seed).unwrap();
    assert_eq!(got["m"].shape, [b, n, to]);
    assert_close(&got["m"].data, &transposed(&want.mean), 1e-5, 1e-5, "cli prior mean");
    // Conditioned on the responses: the config's 7 samples for the log-likelihood.
    let (r, o) = run(&["--condition", rp.to_str().unwrap()], "cond.safetensors");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = vcortex::io::read_safetensors(&o).unwrap().tensors;
    let want = m.predict(ctx(), &video, &[b, 1, t, h, w], Some(&resp), LatentMode::Conditioned, 7, cfg.seed).unwrap();
    assert_close(&got["m"].data, &transposed(&want.mean), 1e-5, 1e-5, "cli conditioned mean");
    assert_close(&got["m.loglik_bits"].data, &transposed(want.loglik.as_ref().unwrap()), 1e-5, 1e-5, "cli loglik");
    // Prior samples with --targets: the mean and the log-likelihood of the responses, unconditioned.
    let (r, o) = run(&["--targets", rp.to_str().unwrap(), "--samples", "4"], "targets.safetensors");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = vcortex::io::read_safetensors(&o).unwrap().tensors;
    let want = m.predict(ctx(), &video, &[b, 1, t, h, w], Some(&resp), LatentMode::Prior, 4, cfg.seed).unwrap();
    assert_close(&got["m"].data, &transposed(&want.mean), 1e-5, 1e-5, "cli prior mean with targets");
    assert_close(
        &got["m.loglik_bits"].data,
        &transposed(want.loglik.as_ref().unwrap()),
        1e-5,
        1e-5,
        "cli prior loglik",
    );
    let (r, o) = run(&["--targets", rp.to_str().unwrap(), "--condition", rp.to_str().unwrap()], "both.safetensors");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("--targets") && !o.exists(), "{err}");
    // Responses of the wrong length, and --samples for a Sensorium model, are refused by name.
    write_tensors(&rp, &[("responses", &HostTensor::new(vec![b, n, t - 1], resp[..b * n * (t - 1)].to_vec()))]);
    let (r, o) = run(&["--condition", rp.to_str().unwrap()], "bad.safetensors");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("responses have shape") && !o.exists(), "{err}");
    let data = data_dir("sensorium");
    let (sw, sc, si) = (data.join("weights.safetensors"), data.join("config.json"), data.join("images.safetensors"));
    let o = dir.join("s.safetensors");
    let args = ["predict", "--weights", sw.to_str().unwrap(), "--config", sc.to_str().unwrap(), "--images"];
    let r = vcortex(&[&args[..], &[si.to_str().unwrap(), "-o", o.to_str().unwrap(), "--samples", "3"]].concat());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("--samples") && err.lines().count() == 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The paper's readout has no stored `_mu`: its positions come from a `grid_mean_predictor`
/// (`source_grid` [N, 2] through `mu_transform.*`). The golden's positions given that way — a
/// two-layer MLP whose first layer spreads the grid over 3 units and whose second undoes it, with
/// and without the final Tanh (then the grid holds atanh(mu)) — give the golden's outputs; a
/// predictor without `grid_mean_final_tanh` in the config is refused by name.
#[test]
fn latent_grid_mean_predictor_positions() {
    use vcortex::io::{read_safetensors, read_weights, HostTensor};
    let dir = data_dir("latent");
    let inputs = read_safetensors(&dir.join("inputs.safetensors")).unwrap().tensors;
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors;
    let (video, resp, noise) = (&inputs["videos"], &inputs["responses"], &inputs["noise"]);
    let base = LatentConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let key = format!("readout.{}", base.readout.data_key);
    for tanh in [false, true] {
        let mut sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
        let mu = sd.remove(&format!("{key}._mu")).unwrap();
        let n = base.readout.neurons;
        // Layer 0: [3, 2] with rows (x, y, x + y), all positive inputs (shifted by +2) so that
        // the ELU between the layers is the identity; layer 2: [2, 3] taking x and y back.
        let grid: Vec<f32> = mu.data.iter().map(|&v| if tanh { (v as f64).atanh() as f32 } else { v } + 2.0).collect();
        sd.insert(format!("{key}.source_grid"), HostTensor::new(vec![n, 2], grid));
        sd.insert(format!("{key}.mu_transform.0.weight"), HostTensor::new(vec![3, 2], vec![1., 0., 0., 1., 1., 1.]));
        sd.insert(format!("{key}.mu_transform.0.bias"), HostTensor::new(vec![3], vec![0.0; 3]));
        sd.insert(format!("{key}.mu_transform.2.weight"), HostTensor::new(vec![2, 3], vec![1., 0., 0., 0., 1., 0.]));
        sd.insert(format!("{key}.mu_transform.2.bias"), HostTensor::new(vec![2], vec![-2.0, -2.0]));
        let mut cfg = base.clone();
        refused_config(Latent::from_state_dict(cfg.clone(), sd.clone()), "grid_mean_final_tanh");
        cfg.readout.grid_mean_final_tanh = Some(tanh);
        let mut m = Latent::from_state_dict(cfg, sd).unwrap();
        m.upload(ctx()).unwrap();
        let eps = LatentNoise::Given(&noise.data);
        let got = m.predict_with(ctx(), &video.data, &video.shape, Some(&resp.data), LatentMode::Prior, eps).unwrap();
        assert_close(&got.mean, &want["prior_mean"].data, 1e-6, 1e-4, &format!("grid mean predictor, tanh {tanh}"));
    }
}

/// Frames [B, 1, T, H, W] → frames lo..hi, and responses [B, N, T] → lo..hi.
fn slice_time(x: &[f32], outer: usize, t: usize, inner: usize, lo: usize, hi: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(outer * (hi - lo) * inner);
    for o in 0..outer {
        out.extend_from_slice(&x[(o * t + lo) * inner..(o * t + hi) * inner]);
    }
    out
}

/// Appends [B, K, N] outputs to per-sample rows, so that the rows concatenate to [B, T', N].
fn collect(rows: &mut [Vec<f32>], got: &[f32], shape: [usize; 3]) {
    let [b, k, n] = shape;
    assert_eq!(got.len(), b * k * n);
    for (bi, row) in rows.iter_mut().enumerate() {
        row.extend_from_slice(&got[bi * k * n..(bi + 1) * k * n]);
    }
}

/// A stream fed the clip's frames one at a time and in chunks of several sizes gives, its
/// emissions and `finish` concatenated, the clip forward's mean and log-likelihood: both modes
/// (prior with and without responses), B = 1 and B > 1, a clip longer than the receptive field.
/// Frames come out kt/2 core frames late.
#[test]
fn latent_stream_equals_clip() {
    let (h, w, n, t) = (6usize, 7usize, 5usize, 15usize);
    let mut m = Latent::random(small(n), 23).unwrap();
    m.upload(ctx()).unwrap();
    let (r, half) = (4usize, 2usize); // the core's receptive field in frames, kt/2 of the readout
    for b in [1usize, 2] {
        let (video, resp) = inputs(b, t, h, w, n, 40 + b as u64);
        let shape = [b, 1, t, h, w];
        for (mode, with) in [(LatentMode::Conditioned, true), (LatentMode::Prior, true), (LatentMode::Prior, false)] {
            let clip = m.predict(ctx(), &video, &shape, with.then_some(&resp[..]), mode, 6, 11).unwrap();
            let to = t - (r - 1);
            assert_eq!(clip.shape, [b, to, n]);
            for chunks in [vec![1usize; t], vec![3, 3, 3, 3, 3], vec![5, 2, 7, 1], vec![t], vec![2, 13]] {
                let mut s = m.stream(b, h, w, mode, 6, 11).unwrap();
                let (mut means, mut lls) = (vec![Vec::new(); b], vec![Vec::new(); b]);
                let mut fed = 0;
                for &k in &chunks {
                    let f = slice_time(&video, b, t, h * w, fed, fed + k);
                    let rs = with.then(|| slice_time(&resp, b * n, t, 1, fed, fed + k));
                    let out = s.push(ctx(), &f, &[b, 1, k, h, w], rs.as_deref()).unwrap();
                    fed += k;
                    // Output frame j is final once core frame j + kt/2 exists.
                    let done = (fed + 1).saturating_sub(r + half);
                    assert_eq!(s.frames_emitted(), done.min(to), "{mode:?} chunks {chunks:?}");
                    assert_eq!(s.frames_seen(), fed);
                    collect(&mut means, &out.mean, out.shape);
                    assert_eq!(out.loglik.is_some(), with);
                    if let Some(ll) = &out.loglik {
                        collect(&mut lls, ll, out.shape);
                    }
                }
                let out = s.finish(ctx()).unwrap();
                assert_eq!(out.shape[1], half.min(to));
                assert_eq!(s.frames_seen(), 0, "finish starts over");
                collect(&mut means, &out.mean, out.shape);
                if let Some(ll) = &out.loglik {
                    collect(&mut lls, ll, out.shape);
                }
                let what = format!("B{b} {mode:?} responses {with} chunks {chunks:?}");
                assert_close(&means.concat(), &clip.mean, 1e-4, 1e-4, &format!("{what} mean"));
                if with {
                    assert_close(&lls.concat(), clip.loglik.as_ref().unwrap(), 1e-4, 1e-4, &format!("{what} loglik"));
                }
            }
        }
    }
}

/// A stream holding a share of the model (`stream_shared`) gives exactly the borrowed stream's
/// outputs, pushes and finish, in both modes; a clone of it continues on its own.
#[test]
fn latent_shared_stream_equals_borrowed() {
    use std::sync::Arc;
    let (b, h, w, n, t) = (2usize, 6usize, 7usize, 5usize, 11usize);
    let mut m = Latent::random(small(n), 31).unwrap();
    m.upload(ctx()).unwrap();
    let m = Arc::new(m);
    let (video, resp) = inputs(b, t, h, w, n, 8);
    for mode in [LatentMode::Conditioned, LatentMode::Prior] {
        let mut borrowed = m.stream(b, h, w, mode, 4, 5).unwrap();
        let mut shared = m.stream_shared(b, h, w, mode, 4, 5).unwrap();
        let mut fed = 0;
        for k in [1, 4, 6] {
            let f = slice_time(&video, b, t, h * w, fed, fed + k);
            let r = slice_time(&resp, b * n, t, 1, fed, fed + k);
            let want = borrowed.push(ctx(), &f, &[b, 1, k, h, w], Some(&r)).unwrap();
            let got = shared.push(ctx(), &f, &[b, 1, k, h, w], Some(&r)).unwrap();
            assert_eq!((got.mean, got.loglik, got.shape), (want.mean, want.loglik, want.shape), "{mode:?} {k}");
            assert_eq!(shared.frames_emitted(), borrowed.frames_emitted());
            fed += k;
        }
        let mut copy = shared.clone();
        let (want, got, again) =
            (borrowed.finish(ctx()).unwrap(), shared.finish(ctx()).unwrap(), copy.finish(ctx()).unwrap());
        assert_eq!((&got.mean, &got.loglik, got.shape), (&want.mean, &want.loglik, want.shape), "{mode:?} finish");
        assert_eq!((&again.mean, &again.loglik), (&want.mean, &want.loglik), "{mode:?} a clone's finish");
    }
}

/// The latent noise is defined per output frame: in the prior mode the frames of a clip that do
/// not see its end (all but the last kt/2) are the same in a longer clip of the same video.
#[test]
fn latent_noise_is_per_frame() {
    let (b, h, w, n) = (2usize, 5usize, 6usize, 4usize);
    let mut m = Latent::random(small(n), 5).unwrap();
    m.upload(ctx()).unwrap();
    let (video, _) = inputs(b, 12, h, w, n, 3);
    let short = slice_time(&video, b, 12, h * w, 0, 9);
    let long = m.predict(ctx(), &video, &[b, 1, 12, h, w], None, LatentMode::Prior, 5, 2).unwrap();
    let cut = m.predict(ctx(), &short, &[b, 1, 9, h, w], None, LatentMode::Prior, 5, 2).unwrap();
    let keep = 6 - 2; // T' = 6 of the short clip, less kt/2
    let first = |o: &[f32], to: usize| slice_time(o, b, to, n, 0, keep);
    assert_close(&first(&cut.mean, 6), &first(&long.mean, 9), 1e-5, 1e-5, "prior mean of the common frames");
}

/// Refusals by name, each leaving the stream unchanged; `reset` starts a new clip.
#[test]
fn latent_stream_refusals_and_reset() {
    let (b, h, w, n) = (2usize, 5usize, 5usize, 4usize);
    let mut m = Latent::random(small(n), 9).unwrap();
    let unloaded = Latent::random(small(n), 9).unwrap();
    refused_param(unloaded.stream(b, h, w, LatentMode::Prior, 3, 0), "latent", "weights");
    m.upload(ctx()).unwrap();
    refused_param(m.stream(0, h, w, LatentMode::Prior, 3, 0), "latent", "batch");
    refused_param(m.stream(b, h, w, LatentMode::Prior, 0, 0), "latent", "samples");
    refused_shape(m.stream(b, 2, w, LatentMode::Prior, 3, 0), "latent", "frames");
    let t = 9;
    let (video, resp) = inputs(b, t, h, w, n, 6);
    let clip = m.predict(ctx(), &video, &[b, 1, t, h, w], Some(&resp), LatentMode::Conditioned, 3, 4).unwrap();
    let mut s = m.stream(b, h, w, LatentMode::Conditioned, 3, 4).unwrap();
    let f1 = slice_time(&video, b, t, h * w, 0, 1);
    let r1 = slice_time(&resp, b * n, t, 1, 0, 1);
    let run = |s: &mut vcortex::models::LatentStream, lo: usize, hi: usize| {
        let f = slice_time(&video, b, t, h * w, lo, hi);
        let r = slice_time(&resp, b * n, t, 1, lo, hi);
        s.push(ctx(), &f, &[b, 1, hi - lo, h, w], Some(&r)).unwrap()
    };
    run(&mut s, 0, 3);
    // Wrong batch, channels, frame size; responses missing, mis-shaped.
    refused_shape(s.push(ctx(), &f1[..h * w], &[1, 1, 1, h, w], Some(&r1[..n])), "latent", "frames");
    let two: Vec<f32> = [f1.clone(), f1.clone()].concat();
    refused_shape(s.push(ctx(), &two, &[b, 2, 1, h, w], Some(&r1)), "latent", "frames");
    refused_shape(s.push(ctx(), &f1[..b * h * (w - 1)], &[b, 1, 1, h, w - 1], Some(&r1)), "latent", "frames");
    refused_shape(s.push(ctx(), &f1, &[b, 1, 0, h, w], Some(&r1)), "latent", "frames");
    refused_param(s.push(ctx(), &f1, &[b, 1, 1, h, w], None), "latent", "responses");
    refused_length(s.push(ctx(), &f1, &[b, 1, 1, h, w], Some(&r1[..n])), "latent", "responses");
    // On the device: responses of two frames with one frame.
    let x = vcortex::tensor::Tensor::from_f32(ctx(), &f1, &[b, 1, 1, h, w]).unwrap();
    let r2 = vcortex::tensor::Tensor::from_f32(ctx(), &[r1.clone(), r1.clone()].concat(), &[b, n, 2]).unwrap();
    let mut rec = ctx().recorder();
    refused_shape(s.record(&mut rec, &x, Some(&r2)), "latent", "responses");
    refused_length(s.push(ctx(), &f1[1..], &[b, 1, 1, h, w], Some(&r1)), "latent", "frames");
    assert_eq!(s.frames_seen(), 3, "unchanged by the refusals");
    let mut means = vec![Vec::new(); b];
    for o in [run(&mut s, 3, t), s.finish(ctx()).unwrap()] {
        collect(&mut means, &o.mean, o.shape);
    }
    assert_close(&means.concat(), &clip.mean, 1e-4, 1e-4, "after the refusals");
    // Reset mid-clip: the next frames are a new clip.
    run(&mut s, 0, 5);
    s.reset();
    assert_eq!((s.frames_seen(), s.frames_emitted()), (0, 0));
    let mut means = vec![Vec::new(); b];
    for o in [run(&mut s, 0, t), s.finish(ctx()).unwrap()] {
        collect(&mut means, &o.mean, o.shape);
    }
    assert_close(&means.concat(), &clip.mean, 1e-4, 1e-4, "after a reset");
    // The prior mode takes responses with every call or with none.
    let mut s = m.stream(b, h, w, LatentMode::Prior, 3, 4).unwrap();
    s.push(ctx(), &f1, &[b, 1, 1, h, w], None).unwrap();
    refused_param(s.push(ctx(), &f1, &[b, 1, 1, h, w], Some(&r1)), "latent", "responses");
    assert_eq!(s.frames_seen(), 1);
    // Finishing before the core has an output frame gives nothing.
    let o = s.finish(ctx()).unwrap();
    assert_eq!((o.shape, o.mean.len()), ([b, 0, n], 0));
}

/// Each video's noise is its own Philox stream: two videos run together give what each gives
/// alone with its index as `first_video`, on the GPU and the CPU reference, both modes; the CLI's
/// outputs do not depend on `--batch`.
#[test]
fn latent_noise_is_per_video() {
    let cfg = small(5);
    let mut m = Latent::random(cfg.clone(), 8).unwrap();
    m.upload(ctx()).unwrap();
    let (b, t, h, w, n) = (2usize, 7usize, 6usize, 7usize, 5usize);
    let (video, resp) = inputs(b, t, h, w, n, 12);
    let per_v = t * h * w;
    let per_r = n * t;
    for mode in [LatentMode::Prior, LatentMode::Conditioned] {
        let both = LatentNoise::Philox { samples: 3, seed: 6, first_video: 0 };
        let all = m.predict_with(ctx(), &video, &[b, 1, t, h, w], Some(&resp), mode, both).unwrap();
        let cpu = m.reference_forward_with(&video, &[b, 1, t, h, w], Some(&resp), mode, both).unwrap();
        assert_close(&all.mean, &cpu.mean, 1e-5, 1e-4, &format!("{mode:?} mean GPU vs reference"));
        let per = all.mean.len() / b;
        for v in 0..b {
            let one = LatentNoise::Philox { samples: 3, seed: 6, first_video: v as u64 };
            let (x, r) = (&video[v * per_v..(v + 1) * per_v], &resp[v * per_r..(v + 1) * per_r]);
            let alone = m.predict_with(ctx(), x, &[1, 1, t, h, w], Some(r), mode, one).unwrap();
            let what = format!("{mode:?} video {v}");
            assert_close(&alone.mean, &all.mean[v * per..(v + 1) * per], 1e-6, 1e-5, &format!("{what} mean"));
            let (la, lb) = (alone.loglik.unwrap(), all.loglik.as_ref().unwrap()[v * per..(v + 1) * per].to_vec());
            assert_close(&la, &lb, 1e-5, 1e-5, &format!("{what} loglik"));
            let cpu1 = m.reference_forward_with(x, &[1, 1, t, h, w], Some(r), mode, one).unwrap();
            assert_close(&cpu1.mean, &cpu.mean[v * per..(v + 1) * per], 1e-6, 1e-5, &format!("{what} reference"));
        }
    }
    // The second video alone as video 0 draws other noise (the prior mean differs).
    let x1 = &video[per_v..];
    let as0 = m.predict(ctx(), x1, &[1, 1, t, h, w], None, LatentMode::Prior, 3, 6).unwrap();
    let as1 = m
        .predict_with(
            ctx(),
            x1,
            &[1, 1, t, h, w],
            None,
            LatentMode::Prior,
            LatentNoise::Philox { samples: 3, seed: 6, first_video: 1 },
        )
        .unwrap();
    assert!(as0.mean.iter().zip(&as1.mean).any(|(a, b)| (a - b).abs() > 1e-6), "video 1's own stream");
    // vcortex predict with --batch 1 and with one batch: the same file.
    use vcortex::io::{write_safetensors, HostTensor};
    let dir = std::env::temp_dir().join(format!("vcortex-latent-batch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sd: Vec<(String, HostTensor)> = Latent::random_state_dict(&cfg, 8).into_iter().collect();
    let (wp, cp, vp) = (dir.join("w.safetensors"), dir.join("c.json"), dir.join("v.safetensors"));
    write_safetensors(&wp, &sd, &Default::default()).unwrap();
    let mut json = serde_json::to_value(&cfg).unwrap();
    json.as_object_mut().unwrap().insert("kind".into(), "latent".into());
    std::fs::write(&cp, json.to_string()).unwrap();
    write_tensors(&vp, &[("videos", &HostTensor::new(vec![b, 1, t, h, w], video.clone()))]);
    let mut outs = Vec::new();
    for batch in ["1", "2"] {
        let o = dir.join(format!("o{batch}.safetensors"));
        let args = ["predict", "--weights", wp.to_str().unwrap(), "--config", cp.to_str().unwrap()];
        let r = vcortex(
            &[&args[..], &["--images", vp.to_str().unwrap(), "-o", o.to_str().unwrap(), "--batch", batch]].concat(),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        outs.push(vcortex::io::read_safetensors(&o).unwrap().tensors.remove("m").unwrap());
    }
    assert_close(&outs[0].data, &outs[1].data, 1e-6, 1e-5, "predict --batch 1 = one batch");
    let _ = std::fs::remove_dir_all(&dir);
}
