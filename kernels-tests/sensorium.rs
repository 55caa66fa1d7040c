//! The Sensorium model pipeline: GPU forward against the reference forward on random weights, the
//! committed neuralpredictors reference model (kernels-tests/data/sensorium, made by
//! scripts/golden_sensorium.py), the loader's refusals, and `vcortex predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{assert_close, ctx, refused_config, refused_length, refused_param, refused_shape, refused_weights};
use vcortex::io::{read_safetensors, read_weights, HostTensor};
use vcortex::models::sensorium::{CoreConfig, ReadoutConfig};
use vcortex::models::{Sensorium, SensoriumConfig};
use vcortex::rng::SplitMix;

fn small_config(depth_separable: bool, pad_input: bool) -> SensoriumConfig {
    SensoriumConfig {
        core: CoreConfig { pad_input, depth_separable, ..CoreConfig::new(2, 8, 5, 3, 3) },
        readouts: [
            (
                "a".to_string(),
                ReadoutConfig {
                    neurons: 13,
                    align_corners: true,
                    shifter: false,
                    grid_mean_final_tanh: None,
                    modulator: true,
                },
            ),
            (
                "b".to_string(),
                ReadoutConfig {
                    neurons: 7,
                    align_corners: false,
                    shifter: true,
                    grid_mean_final_tanh: None,
                    modulator: false,
                },
            ),
        ]
        .into(),
        elu_offset: 0.3,
    }
}

#[test]
fn random_models_match_the_reference_forward() {
    let mut rng = SplitMix::new(71);
    for (ds, pad) in [(true, false), (true, true)] {
        let mut m = Sensorium::random(small_config(ds, pad), 5).unwrap();
        m.upload(ctx()).unwrap();
        let shape = [3, 2, 12, 15];
        let x = rng.vec(3 * 2 * 12 * 15, -1.0, 1.0);
        let eye_d = rng.vec(3 * 2, -1.0, 1.0);
        let beh_d = rng.vec(3 * 3, -1.0, 2.0);
        for key in ["a", "b"] {
            // Key "b" has a shifter: the eye position goes through it in the same submit.
            let eye = (key == "b").then(|| vcortex::Tensor::from_f32(ctx(), &eye_d, &[3, 2]).unwrap());
            let t = vcortex::Tensor::from_f32(ctx(), &x, &shape).unwrap();
            let mut rec = ctx().recorder();
            // Key "a" has a behaviour modulator (3 behaviour variables).
            let beh = (key == "a").then(|| vcortex::Tensor::from_f32(ctx(), &beh_d, &[3, 3]).unwrap());
            let y = m.record_full(&mut rec, &t, eye.as_ref(), beh.as_ref(), key).unwrap();
            let h = rec.read_back(&y);
            let got = rec.submit().unwrap().f32(h);
            let want = m
                .reference_forward_full(
                    &x,
                    &shape,
                    (key == "b").then_some(&eye_d[..]),
                    (key == "a").then_some(&beh_d[..]),
                    key,
                )
                .unwrap();
            assert_close(&got, &want, 1e-5, 1e-4, &format!("sensorium depth_separable {ds} pad_input {pad} key {key}"));
            assert!(got.iter().all(|&r| r > 0.0), "ELU+1 rates are positive");
        }
        // The forward is one submit: 1 + 3 per hidden layer + the readout.
        let mut rec = ctx().recorder();
        let t = vcortex::Tensor::from_f32(ctx(), &x, &shape).unwrap();
        refused_param(m.record(&mut rec, &t, "a"), "sensorium", "behavior");
        assert_eq!(rec.dispatch_count(), 0, "key a needs its behaviour");
        let bt = vcortex::Tensor::from_f32(ctx(), &vec![0.5; 9], &[3, 3]).unwrap();
        m.record_full(&mut rec, &t, None, Some(&bt), "a").unwrap();
        // Core 1 + 3 per hidden layer, modulator 2 linear + ELU+1, readout, multiply.
        assert_eq!(rec.dispatch_count(), 1 + 3 * 2 + 3 + 1 + 1);
        rec.submit().unwrap();
    }
}

fn golden_dir() -> PathBuf {
    crate::common::data_dir("sensorium")
}

/// The neuralpredictors model's responses, reproduced within 1e-4 relative.
#[test]
fn reproduces_the_neuralpredictors_reference_model() {
    let dir = golden_dir();
    let model = Sensorium::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
    let mut inputs = read_safetensors(&dir.join("images.safetensors")).unwrap().tensors;
    let (images, eye) = (inputs.remove("images").unwrap(), inputs.remove("eye").unwrap());
    let expected = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    let keys = model.data_keys().iter().map(|k| k.to_string()).collect::<Vec<_>>();
    assert!(keys.len() >= 2);
    for key in keys {
        let want = &expected.tensors[&key];
        let e = model.has_shifter(&key).then_some(&eye.data[..]);
        let got = model.predict_with_eye(ctx(), &images.data, &images.shape, e, &key).unwrap();
        assert_close(&got, &want.data, 1e-6, 1e-4, &format!("sensorium {key} (GPU)"));
        let cpu = model.reference_forward_with_eye(&images.data, &images.shape, e, &key).unwrap();
        assert_close(&cpu, &want.data, 1e-6, 1e-4, &format!("sensorium {key} (CPU reference)"));
    }
}

/// The behaviour modulator against a model built with neuralpredictors 0.3.0's core, readouts,
/// shifter and FiringRateEncoder plus a plain-PyTorch MLPModulator with later neuralpredictors'
/// structure and key names (scripts/golden_sensorium_modulator.py, data/sensorium_mod): gains
/// from 1 to 6.7, a non-zero ELU offset (not folded where a modulator exists), a readout with
/// both a shifter and a modulator; within 1e-4 relative.
#[test]
fn reproduces_the_modulated_reference_model() {
    let dir = crate::common::data_dir("sensorium_mod");
    let model = Sensorium::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
    let mut inputs = read_safetensors(&dir.join("images.safetensors")).unwrap().tensors;
    let (images, eye, behavior) =
        (inputs.remove("images").unwrap(), inputs.remove("eye").unwrap(), inputs.remove("behavior").unwrap());
    let expected = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    for key in ["sessA", "sessB"] {
        assert!(model.has_modulator(key), "{key} has a modulator");
        let e = model.has_shifter(key).then_some(&eye.data[..]);
        let want = &expected.tensors[key];
        let got = model.predict_full(ctx(), &images.data, &images.shape, e, Some(&behavior.data), key).unwrap();
        assert_close(&got, &want.data, 1e-6, 1e-4, &format!("modulated sensorium {key} (GPU)"));
        let cpu = model.reference_forward_full(&images.data, &images.shape, e, Some(&behavior.data), key).unwrap();
        assert_close(&cpu, &want.data, 1e-6, 1e-4, &format!("modulated sensorium {key} (CPU reference)"));
        // Without its behaviour a modulated readout is refused, not run unmodulated.
        refused_param(model.predict_full(ctx(), &images.data, &images.shape, e, None, key), "sensorium", "behavior");
    }
}

fn golden_state_dict() -> (SensoriumConfig, BTreeMap<String, HostTensor>) {
    let dir = golden_dir();
    let cfg = SensoriumConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    (cfg, read_weights(&dir.join("weights.safetensors")).unwrap().tensors)
}

#[test]
fn loader_refuses_keys_it_cannot_place() {
    let (cfg, sd) = golden_state_dict();
    Sensorium::from_state_dict(cfg.clone(), sd.clone()).unwrap();
    let key = "core.features.layer1.ds_conv.spatial_conv.weight";
    let mut missing = sd.clone();
    missing.remove(key);
    let e = refused_weights(Sensorium::from_state_dict(cfg.clone(), missing), "weights").to_string();
    assert!(e.contains("missing key") && e.contains(key), "{e}");
    let mut extra = sd.clone();
    extra.insert("core.features.layer9.conv.weight".into(), HostTensor::new(vec![1], vec![0.0]));
    let e = refused_weights(Sensorium::from_state_dict(cfg.clone(), extra), "weights").to_string();
    assert!(e.contains("unexpected key") && e.contains("layer9"), "{e}");
    let mut shaped = sd.clone();
    shaped.insert(key.into(), HostTensor::new(vec![2, 2], vec![0.0; 4]));
    let e = refused_weights(Sensorium::from_state_dict(cfg.clone(), shaped), "weights").to_string();
    assert!(e.contains(key) && e.contains("shape"), "{e}");
    let mut nan = sd.clone();
    nan.get_mut("core.features.layer0.norm.running_var").unwrap().data[0] = f32::NAN;
    refused_weights(Sensorium::from_state_dict(cfg.clone(), nan), "non-finite");
    // A config with more neurons than the weights hold, or an unknown field.
    let mut more = cfg.clone();
    more.readouts.values_mut().next().unwrap().neurons += 1;
    refused_weights(Sensorium::from_state_dict(more, sd), "readout.sessA._mu");
    refused_config(SensoriumConfig::from_json(r#"{"core": {}, "readouts": {}}"#), "missing field `input_channels`");
    let text = std::fs::read_to_string(golden_dir().join("config.json")).unwrap().replacen('{', r#"{"colour": 1, "#, 1);
    let e = refused_config(SensoriumConfig::from_json(&text), "model config").to_string();
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn wrong_images_and_keys_are_refused() {
    let mut m = Sensorium::random(small_config(true, false), 5).unwrap();
    m.upload(ctx()).unwrap();
    // Key "a" has a modulator: with its behaviour [1, 3] given, the image checks are what refuse.
    let beh = [0.5; 3];
    let a = |x: &[f32], shape: &[usize]| m.predict_full(ctx(), x, shape, None, Some(&beh), "a");
    let e = refused_shape(a(&[0.0; 2 * 3 * 3], &[1, 2, 3, 3]), "sensorium", "images");
    assert!(e.to_string().contains("5-wide kernel"), "smaller than the 5x5 input kernel: {e}");
    let e = refused_shape(a(&[0.0; 12 * 15], &[1, 1, 12, 15]), "sensorium", "images");
    assert!(e.to_string().contains("[N, 2, H, W]"), "wrong channel count: {e}");
    refused_param(m.predict(ctx(), &[0.0; 2 * 12 * 15], &[1, 2, 12, 15], "a"), "sensorium", "behavior");
    refused_param(m.predict(ctx(), &[0.0; 2 * 12 * 15], &[1, 2, 12, 15], "b"), "sensorium", "eye"); // key b needs the eye position
                                                                                                    // Host inputs of the wrong length are refused by their own name, not as the upload's "data".
    let e = refused_length(m.predict(ctx(), &[0.0; 2 * 12 * 14], &[1, 2, 12, 15], "b"), "sensorium", "images");
    assert!(e.to_string().contains("[1, 2, 12, 15]"), "{e}");
    let img = [0.0; 2 * 12 * 15];
    refused_length(m.predict_with_eye(ctx(), &img, &[1, 2, 12, 15], Some(&[0.0; 3]), "b"), "sensorium", "eye");
    let e = refused_shape(
        m.predict_full(ctx(), &[0.0; 4 * 12 * 15], &[2, 2, 12, 15], None, Some(&beh), "a"),
        "sensorium",
        "behavior",
    );
    assert!(e.to_string().contains("[3]") && e.to_string().contains("[2, B]"), "{e}");
    // The reference: a shape of another rank, and a behaviour of the wrong width.
    refused_shape(m.reference_forward(&img, &[2, 12, 15], "b"), "sensorium", "images");
    refused_length(
        m.reference_forward_full(&img, &[1, 2, 12, 15], None, Some(&[0.5; 2]), "a"),
        "sensorium",
        "behavior",
    );
    let e = refused_param(m.predict(ctx(), &[0.0; 2 * 12 * 15], &[1, 2, 12, 15], "zzz"), "sensorium", "data_key")
        .to_string();
    assert!(e.contains("zzz") && e.contains("a, b"), "{e}");
}

/// `vcortex predict` writes one tensor per data key, equal to the library's answer.
#[test]
fn cli_predict() {
    let dir = golden_dir();
    let out = std::env::temp_dir().join(format!("vcortex-predict-{}.safetensors", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_vcortex"))
        .args(["predict", "--weights"])
        .arg(dir.join("weights.safetensors"))
        .arg("--config")
        .arg(dir.join("config.json"))
        .arg("--images")
        .arg(dir.join("images.safetensors"))
        .args(["--batch", "2", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let got = read_safetensors(&out).unwrap();
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    for (k, t) in &got.tensors {
        assert_close(&t.data, &want.tensors[k].data, 1e-6, 1e-4, &format!("predict {k}"));
    }
    let _ = std::fs::remove_file(&out);
}

/// A readout whose positions come from a grid_mean_predictor (the Sensorium tutorial's
/// configuration): mu is computed from `source_grid` through `mu_transform` at load time.
/// scripts/golden_sensorium_gmp.py, data/sensorium_gmp.
#[test]
fn grid_mean_predictor_readout_matches_neuralpredictors() {
    let dir = crate::common::data_dir("sensorium_gmp");
    let model = Sensorium::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
    let images = read_safetensors(&dir.join("images.safetensors")).unwrap().tensors.remove("images").unwrap();
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors.remove("sessC").unwrap();
    let got = model.predict(ctx(), &images.data, &images.shape, "sessC").unwrap();
    assert_close(&got, &want.data, 1e-6, 1e-4, "grid_mean_predictor readout");
    // Without the config's final_tanh the loader refuses rather than guess.
    let text = std::fs::read_to_string(dir.join("config.json"))
        .unwrap()
        .replace(r#", "grid_mean_final_tanh": true"#, "")
        .replace(",\n      \"grid_mean_final_tanh\": true", "");
    let cfg = SensoriumConfig::from_json(&text).unwrap();
    let sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
    let e = refused_config(Sensorium::from_state_dict(cfg, sd), "grid_mean_final_tanh").to_string();
    assert!(e.contains("grid_mean_final_tanh"), "{e}");
}
