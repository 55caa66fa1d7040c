//! The co-training twin (models::cotrain): the GPU forward against the f64 reference on random
//! weights, the PyTorch golden (scripts/golden_cotrain.py, data/cotrain) within 1e-4 relative,
//! MTL_VGG's own key names, refusals of bad configs, weights and images by name, and `predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{
    assert_close, ctx, refused_config, refused_length, refused_param, refused_shape, refused_weights, vcortex,
};
use vcortex::io::{read_safetensors, read_weights, HostTensor};
use vcortex::models::cotrain::{CotrainConfig, CotrainReadoutConfig};
use vcortex::models::Cotrain;
use vcortex::rng::SplitMix;

fn golden_dir() -> PathBuf {
    crate::common::data_dir("cotrain")
}

fn config(layers: usize, input_channels: usize) -> CotrainConfig {
    let mut c = CotrainConfig::paper(9);
    c.core.layers = layers;
    c.core.input_channels = input_channels;
    c.readouts.insert("b".into(), CotrainReadoutConfig { neurons: 5, bias: false, align_corners: true });
    c
}

#[test]
fn random_models_match_the_reference_forward() {
    let mut rng = SplitMix::new(91);
    // features[:17] on grey images (odd sizes: the pools drop a row, a column); 3-channel input;
    // shorter and longer cuts (after a pool, after the first ReLU, into the 512-channel block).
    for (layers, ch, n, h, w) in
        [(17, 1, 2, 13, 11), (17, 3, 1, 8, 8), (7, 1, 1, 9, 6), (3, 3, 2, 5, 4), (23, 1, 1, 16, 9)]
    {
        let cfg = config(layers, ch);
        let mut m = Cotrain::random(cfg, 3).unwrap();
        m.upload(ctx()).unwrap();
        let shape = [n, ch, h, w];
        let x = rng.vec(shape.iter().product(), 0.0, 1.0);
        for key in ["bench", "b"] {
            let want = m.reference_forward(&x, &shape, key).unwrap();
            let got = m.predict(ctx(), &x, &shape, key).unwrap();
            assert_close(&got, &want, 1e-5, 1e-4, &format!("cotrain layers {layers} {shape:?} key {key}"));
        }
    }
}

/// The grey input's expansion folded into the first conv is the conv of the repeated image.
#[test]
fn grey_input_equals_the_image_repeated_on_three_channels() {
    let grey = config(17, 1);
    let sd = Cotrain::random_state_dict(&grey, 4);
    let mut m1 = Cotrain::from_state_dict(grey, sd.clone()).unwrap();
    let mut m3 = Cotrain::from_state_dict(config(17, 3), sd).unwrap();
    m1.upload(ctx()).unwrap();
    m3.upload(ctx()).unwrap();
    let x = SplitMix::new(5).vec(2 * 12 * 12, 0.0, 1.0);
    let x3: Vec<f32> = x.chunks(144).flat_map(|img| img.repeat(3)).collect();
    let a = m1.predict(ctx(), &x, &[2, 1, 12, 12], "bench").unwrap();
    let b = m3.predict(ctx(), &x3, &[2, 3, 12, 12], "bench").unwrap();
    assert_close(&a, &b, 1e-5, 1e-4, "grey vs repeated");
}

/// The MTL_VGG model's responses (torchvision vgg19_bn features[:17], neuralpredictors'
/// Gaussian2d), reproduced within 1e-4 relative on the GPU and by the CPU reference.
#[test]
fn reproduces_the_pytorch_model() {
    let dir = golden_dir();
    let model = Cotrain::load(ctx(), &dir.join("weights.safetensors"), &dir.join("config.json")).unwrap();
    let images = read_safetensors(&dir.join("images.safetensors")).unwrap().tensors.remove("images").unwrap();
    let expected = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    assert_eq!(model.data_keys(), vec!["sessA", "sessB"]);
    for key in model.data_keys() {
        let want = &expected.tensors[key];
        let got = model.predict(ctx(), &images.data, &images.shape, key).unwrap();
        assert_close(&got, &want.data, 1e-6, 1e-4, &format!("cotrain {key} (GPU)"));
        let cpu = model.reference_forward(&images.data, &images.shape, key).unwrap();
        assert_close(&cpu, &want.data, 1e-6, 1e-4, &format!("cotrain {key} (CPU reference)"));
    }
}

fn golden_state_dict() -> (CotrainConfig, BTreeMap<String, HostTensor>) {
    let dir = golden_dir();
    let cfg = CotrainConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    (cfg, read_weights(&dir.join("weights.safetensors")).unwrap().tensors)
}

/// The state dict of MTL_VGG itself (`mtl_vgg_core.v1_block.N.*`, `v1_readout.<key>.*`, with
/// the classification branch's keys, which are not run) loads to the same model.
#[test]
fn loads_mtl_vgg_key_names() {
    let (cfg, sd) = golden_state_dict();
    let mut up: BTreeMap<String, HostTensor> = sd
        .into_iter()
        .map(|(k, t)| {
            let k = match (k.strip_prefix("features."), k.strip_prefix("readout.")) {
                (Some(rest), _) => format!("mtl_vgg_core.v1_block.{rest}"),
                (_, Some(rest)) => format!("v1_readout.{rest}"),
                _ => k,
            };
            (k, t)
        })
        .collect();
    up.insert("mtl_vgg_core.unshared_block.17.weight".into(), HostTensor::new(vec![2], vec![0.5; 2]));
    up.insert("classification_readout.0.bias".into(), HostTensor::new(vec![2], vec![0.5; 2]));
    let mut m = Cotrain::from_state_dict(cfg, up).unwrap();
    m.upload(ctx()).unwrap();
    let dir = golden_dir();
    let images = read_safetensors(&dir.join("images.safetensors")).unwrap().tensors.remove("images").unwrap();
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap().tensors.remove("sessA").unwrap();
    let got = m.predict(ctx(), &images.data, &images.shape, "sessA").unwrap();
    assert_close(&got, &want.data, 1e-6, 1e-4, "MTL_VGG key names");
}

#[test]
fn loader_refuses_keys_it_cannot_place() {
    let (cfg, sd) = golden_state_dict();
    Cotrain::from_state_dict(cfg.clone(), sd.clone()).unwrap();
    let key = "features.10.weight";
    let mut missing = sd.clone();
    missing.remove(key);
    let e = refused_weights(Cotrain::from_state_dict(cfg.clone(), missing), key).to_string();
    assert!(e.contains("missing key"), "{e}");
    let mut extra = sd.clone();
    extra.insert("features.17.weight".into(), HostTensor::new(vec![1], vec![0.0]));
    let e = refused_weights(Cotrain::from_state_dict(cfg.clone(), extra), "features.17.weight").to_string();
    assert!(e.contains("unexpected key"), "{e}");
    let mut shaped = sd.clone();
    shaped.insert(key.into(), HostTensor::new(vec![2, 2], vec![0.0; 4]));
    let e = refused_weights(Cotrain::from_state_dict(cfg.clone(), shaped), key).to_string();
    assert!(e.contains("shape"), "{e}");
    let mut nan = sd.clone();
    nan.get_mut("features.4.running_var").unwrap().data[3] = f32::NAN;
    refused_weights(Cotrain::from_state_dict(cfg.clone(), nan), "features.4.running_var");
    let mut negative = sd.clone();
    negative.get_mut("features.1.running_var").unwrap().data[0] = -1.0;
    refused_weights(Cotrain::from_state_dict(cfg.clone(), negative), "features.1.running_var");
    // sessB has no bias: one in the weights is a key the config cannot place; a config asking
    // for more neurons than the weights hold names the readout's key.
    let mut biased = sd.clone();
    biased.insert("readout.sessB.bias".into(), HostTensor::new(vec![17], vec![0.0; 17]));
    refused_weights(Cotrain::from_state_dict(cfg.clone(), biased), "readout.sessB.bias");
    let mut more = cfg.clone();
    more.readouts.get_mut("sessA").unwrap().neurons += 1;
    refused_weights(Cotrain::from_state_dict(more, sd.clone()), "readout.sessA.mu");
    // A longer cut than the weights hold.
    let mut longer = cfg.clone();
    longer.core.layers = 20;
    refused_weights(Cotrain::from_state_dict(longer, sd), "features.17.weight");
}

#[test]
fn bad_configs_are_refused_by_field() {
    let text = std::fs::read_to_string(golden_dir().join("config.json")).unwrap();
    CotrainConfig::from_json(&text).unwrap();
    let with = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        CotrainConfig::from_json(&text.replacen(from, to, 1))
    };
    // A cut between a conv and its BN or ReLU, or past features' end.
    for layers in ["16", "15", "0", "54"] {
        let e = refused_param(with("\"layers\": 17", &format!("\"layers\": {layers}")), "cotrain", "core.layers");
        assert!(e.to_string().contains("17"), "the message lists the cuts: {e}");
    }
    refused_param(with("\"vgg_type\": \"vgg19_bn\"", "\"vgg_type\": \"vgg16\""), "cotrain", "core.vgg_type");
    refused_param(with("\"input_channels\": 1", "\"input_channels\": 2"), "cotrain", "core.input_channels");
    refused_param(with("\"neurons\": 20", "\"neurons\": 0"), "cotrain", "readouts.sessA.neurons");
    refused_param(with("\"batch_norm_eps\": 1e-05", "\"batch_norm_eps\": -1"), "cotrain", "core.batch_norm_eps");
    refused_config(with("\"kind\": \"cotrain\"", "\"kind\": \"flow\""), "kind");
    refused_config(with("\"elu_offset\"", "\"elu_offst\""), "elu_offst");
    refused_config(CotrainConfig::from_json("{\"core\": {}}"), "readouts");
    let mut empty = CotrainConfig::paper(3);
    empty.readouts.clear();
    refused_param(empty.validate(), "cotrain", "readouts");
}

#[test]
fn wrong_images_and_keys_are_refused() {
    let mut m = Cotrain::random(config(17, 1), 6).unwrap();
    m.upload(ctx()).unwrap();
    let e = refused_shape(m.predict(ctx(), &[0.0; 3 * 8 * 8], &[1, 3, 8, 8], "b"), "cotrain", "images");
    assert!(e.to_string().contains("[N, 1, H, W]"), "{e}");
    // Too small for the second 2x2 pool.
    refused_shape(m.predict(ctx(), &[0.0; 3 * 3], &[1, 1, 3, 3], "b"), "cotrain", "images");
    refused_shape(m.reference_forward(&[0.0; 3 * 3], &[1, 1, 3, 3], "b"), "cotrain", "images");
    refused_shape(m.reference_forward(&[0.0; 64], &[1, 64], "b"), "cotrain", "images");
    refused_length(m.predict(ctx(), &[0.0; 63], &[1, 1, 8, 8], "b"), "cotrain", "images");
    refused_length(m.reference_forward(&[0.0; 63], &[1, 1, 8, 8], "b"), "cotrain", "images");
    let e = refused_param(m.predict(ctx(), &[0.0; 64], &[1, 1, 8, 8], "zzz"), "cotrain", "data_key").to_string();
    assert!(e.contains("zzz") && e.contains("b, bench"), "{e}");
}

/// `vcortex predict` runs the twin from its config (`"kind": "cotrain"`): one tensor per session;
/// a bad config is refused in one line naming the field, and nothing is written.
#[test]
fn cli_predict() {
    let dir = golden_dir();
    let tmp = std::env::temp_dir().join(format!("vcortex-cotrain-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("rates.safetensors");
    let (w, c, i) = (dir.join("weights.safetensors"), dir.join("config.json"), dir.join("images.safetensors"));
    let s = |p: &PathBuf| p.display().to_string();
    let args = |cfg: &str| {
        vec![
            "predict".to_string(),
            "--weights".into(),
            s(&w),
            "--config".into(),
            cfg.to_string(),
            "--images".into(),
            s(&i),
            "--batch".into(),
            "2".into(),
            "-o".into(),
            s(&out),
        ]
    };
    let run = |a: Vec<String>| vcortex(&a.iter().map(|x| x.as_str()).collect::<Vec<_>>());
    let r = run(args(&s(&c)));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = read_safetensors(&out).unwrap();
    let want = read_safetensors(&dir.join("expected.safetensors")).unwrap();
    assert_eq!(got.tensors.keys().collect::<Vec<_>>(), vec!["sessA", "sessB"]);
    for (k, t) in &got.tensors {
        assert_eq!(t.shape, want.tensors[k].shape, "{k}");
        assert_close(&t.data, &want.tensors[k].data, 1e-6, 1e-4, &format!("predict {k}"));
    }
    std::fs::remove_file(&out).unwrap();
    let text = std::fs::read_to_string(&c).unwrap();
    for (from, to, needle) in [
        ("\"layers\": 17", "\"layers\": 16", "core.layers"),
        ("\"kind\": \"cotrain\"", "\"kind\": \"vgg\"", "kind"),
        ("\"neurons\": 20", "\"neurons\": 21", "readout.sessA.mu"),
    ] {
        let bad = tmp.join("bad.json");
        std::fs::write(&bad, text.replacen(from, to, 1)).unwrap();
        let r = run(args(&s(&bad)));
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success() && err.contains(needle) && err.lines().count() == 1, "{from}: {err}");
        assert!(!out.exists(), "{from}: an output was written");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
