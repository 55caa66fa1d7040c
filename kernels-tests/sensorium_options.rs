//! Every Stacked2dCore option: the neuralpredictors models of scripts/golden_sensorium_options.py
//! (kernels-tests/data/sensorium_options/<name>, five built with 0.3.0, one with a port of
//! neuralpredictors' main branch) reproduced on the GPU and by the CPU reference, random models
//! with each option against the reference, the channel concatenation, the refusals by field name,
//! and `vcortex predict` with the shifter's input as `pupil_center`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{assert_close, ctx, refused_config, refused_param, refused_shape, refused_weights};
use vcortex::io::{read_images, read_safetensors, read_weights, HostTensor};
use vcortex::models::sensorium::{CoreConfig, PerLayer, ReadoutConfig, Semantics, Stack};
use vcortex::models::{Sensorium, SensoriumConfig};
use vcortex::rng::SplitMix;

const MODELS: [&str; 6] = ["skip_dilated", "linear_no_bn", "bias_layer", "scale_layer", "baseline_elu", "head_lists"];

fn dir(name: &str) -> PathBuf {
    crate::common::data_dir("sensorium_options").join(name)
}

fn golden(name: &str) -> (String, BTreeMap<String, HostTensor>) {
    let d = dir(name);
    (
        std::fs::read_to_string(d.join("config.json")).unwrap(),
        read_weights(&d.join("weights.safetensors")).unwrap().tensors,
    )
}

/// Each model's rates within 1e-4 relative of neuralpredictors' (float64), GPU and CPU reference,
/// and the core's output shape as PyTorch's.
#[test]
fn reproduces_every_option_golden() {
    for name in MODELS {
        let d = dir(name);
        let model = Sensorium::load(ctx(), &d.join("weights.safetensors"), &d.join("config.json")).unwrap();
        let inputs = read_images(&d.join("images.safetensors")).unwrap();
        let x = &inputs.images;
        let expected = read_safetensors(&d.join("expected.safetensors")).unwrap().tensors;
        let core: Vec<usize> = expected["core_shape"].data.iter().map(|&v| v as usize).collect();
        assert_eq!(model.config.core_output(x.shape[2], x.shape[3]).unwrap().to_vec(), core, "{name}: core output");
        let e = model.has_shifter("sess").then(|| &inputs.eye.as_ref().expect("pupil_center").data[..]);
        let want = &expected["sess"].data;
        let got = model.predict_with_eye(ctx(), &x.data, &x.shape, e, "sess").unwrap();
        assert_close(&got, want, 1e-6, 1e-4, &format!("{name} (GPU)"));
        let cpu = model.reference_forward_with_eye(&x.data, &x.shape, e, "sess").unwrap();
        assert_close(&cpu, want, 1e-6, 1e-4, &format!("{name} (CPU reference)"));
    }
}

fn random_config(core: CoreConfig) -> SensoriumConfig {
    let r = ReadoutConfig {
        neurons: 9,
        align_corners: false,
        shifter: false,
        grid_mean_final_tanh: None,
        modulator: false,
    };
    SensoriumConfig { core, readouts: [("k".to_string(), r)].into(), elu_offset: 0.2 }
}

/// Random weights with each option (odd sizes, one-pixel-wide images, many stacked channels)
/// against the reference forward.
#[test]
fn random_models_with_each_option_match_the_reference() {
    let base = || CoreConfig::new(2, 5, 3, 3, 4);
    let head = |c: CoreConfig| CoreConfig { semantics: Semantics::Head, ..c };
    let cases: Vec<(&str, CoreConfig, [usize; 4])> = vec![
        ("stack all, skip 3", CoreConfig { stack: Stack::All, skip: 3, pad_input: true, ..base() }, [2, 2, 9, 1]),
        (
            "stack list, dilation 2, plain convs",
            CoreConfig {
                stack: Stack::Layers(vec![-1, 0, 2]),
                hidden_dilation: 2,
                depth_separable: false,
                pad_input: true,
                ..base()
            },
            [3, 2, 7, 6],
        ),
        (
            "stride 2, kernel list, no final nonlinearity, shifted ELU",
            CoreConfig {
                stride: 2,
                hidden_kern: PerLayer::Each(vec![5, 3, 3]),
                final_nonlinearity: false,
                elu_xshift: Some(0.5),
                elu_yshift: Some(1.0),
                ..base()
            },
            [1, 2, 23, 19],
        ),
        (
            "linear, no batch norm, bias",
            CoreConfig {
                linear: true,
                batch_norm: PerLayer::All(false),
                bias: Some(PerLayer::All(true)),
                stack: Stack::From(1),
                ..base()
            },
            [2, 2, 8, 11],
        ),
        (
            "Bias2D and Scale2D layers (0.3)",
            CoreConfig { bias: Some(PerLayer::All(false)), independent_bn_bias: Some(false), ..base() },
            [2, 2, 10, 10],
        ),
        (
            "head lists, input stride",
            head(CoreConfig {
                hidden_channels: PerLayer::Each(vec![3, 7, 4, 6]),
                bias: Some(PerLayer::Each(vec![true, false, true, false])),
                batch_norm: PerLayer::Each(vec![true, true, false, true]),
                batch_norm_scale: PerLayer::Each(vec![false, true, true, false]),
                input_stride: 2,
                stack: Stack::Layers(vec![3, 1]),
                pad_input: true,
                ..base()
            }),
            [2, 2, 11, 9],
        ),
    ];
    let mut rng = SplitMix::new(404);
    for (what, core, shape) in cases {
        let mut m = Sensorium::random(random_config(core), 17).unwrap();
        m.upload(ctx()).unwrap();
        let x = rng.vec(shape.iter().product(), -1.5, 1.5);
        let got = m.predict(ctx(), &x, &shape, "k").unwrap();
        let want = m.reference_forward(&x, &shape, "k").unwrap();
        assert_close(&got, &want, 1e-5, 1e-4, what);
    }
}

/// The channel concatenation against the reference: odd channel counts, 1×1 and wide images,
/// one part, several; mismatched parts refused by their index.
#[test]
fn concat_channels_matches_the_reference() {
    let mut rng = SplitMix::new(9);
    for (n, hw, cs) in
        [(1, [1, 1], vec![1, 1]), (3, [5, 7], vec![3, 1, 6]), (2, [1, 33], vec![5]), (4, [9, 2], vec![2, 7])]
    {
        let data: Vec<Vec<f32>> = cs.iter().map(|&c| rng.vec(n * c * hw[0] * hw[1], -1.0, 1.0)).collect();
        let shapes: Vec<[usize; 4]> = cs.iter().map(|&c| [n, c, hw[0], hw[1]]).collect();
        let ts: Vec<vcortex::Tensor> =
            data.iter().zip(&shapes).map(|(d, s)| vcortex::Tensor::from_f32(ctx(), d, s).unwrap()).collect();
        let mut rec = ctx().recorder();
        let y = vcortex::ops::concat_channels(&mut rec, &ts.iter().collect::<Vec<_>>()).unwrap();
        let h = rec.read_back(&y);
        let got = rec.submit().unwrap().f32(h);
        let parts: Vec<(&[f32], &[usize])> = data.iter().zip(&shapes).map(|(d, s)| (&d[..], &s[..])).collect();
        let (want, ws) = vcortex::reference::concat_channels(&parts).unwrap();
        assert_eq!(y.shape(), &ws[..]);
        assert_close(&got, &want, 0.0, 0.0, &format!("concat {n} {hw:?} {cs:?}"));
    }
    let a = vcortex::Tensor::from_f32(ctx(), &[0.0; 12], &[1, 2, 2, 3]).unwrap();
    let b = vcortex::Tensor::from_f32(ctx(), &[0.0; 12], &[1, 2, 3, 2]).unwrap();
    let mut rec = ctx().recorder();
    refused_shape(vcortex::ops::concat_channels(&mut rec, &[&a, &b]), "concat_channels", "parts[1]");
    refused_param(vcortex::ops::concat_channels(&mut rec, &[]), "concat_channels", "parts");
}

/// Options that are out of range, inconsistent or of the other version are refused by their name.
#[test]
fn bad_options_are_refused_by_name() {
    let (text, _) = golden("skip_dilated");
    let (head_text, _) = golden("head_lists");
    let with = |text: &str, edits: &[(&str, serde_json::Value)]| {
        let mut json: serde_json::Value = serde_json::from_str(text).unwrap();
        for (k, v) in edits {
            if v.is_null() && k.starts_with('-') {
                json["core"].as_object_mut().unwrap().remove(&k[1..]);
            } else {
                json["core"][*k] = v.clone();
            }
        }
        SensoriumConfig::from_json(&json.to_string())
    };
    use serde_json::json;
    type Case<'a> = (&'a str, Vec<(&'a str, serde_json::Value)>, &'a str);
    let cases: Vec<Case> = vec![
        ("0.3", vec![("stack", json!(4))], "core.stack"),
        ("0.3", vec![("stack", json!(-5))], "core.stack"),
        ("0.3", vec![("stack", json!([]))], "core.stack"),
        ("0.3", vec![("stack", json!([0, 4]))], "core.stack"),
        // Layers 0 and 3 differ in size without padding of the hidden convs.
        ("0.3", vec![("stack", json!([0, 3])), ("hidden_padding", json!(1)), ("skip", json!(0))], "core.stack"),
        ("0.3", vec![("stride", json!(2))], "core.skip"),
        ("0.3", vec![("skip", json!(0)), ("stride", json!(2))], "core.stack"),
        ("0.3", vec![("input_stride", json!(2))], "core.input_stride"),
        ("0.3", vec![("final_batchnorm_scale", json!(true))], "core.final_batchnorm_scale"),
        ("0.3", vec![("nonlinearity_type", json!("AdaptiveELU"))], "core.nonlinearity_type"),
        ("0.3", vec![("hidden_channels", json!([5, 5, 5, 5]))], "core.hidden_channels"),
        ("0.3", vec![("bias", json!([true, true, true, true]))], "core.bias"),
        ("0.3", vec![("hidden_kern", json!([3, 3]))], "core.hidden_kern"),
        ("0.3", vec![("elu_xshift", json!(0.1))], "core.elu_shift"),
        ("0.3", vec![("attention_conv", json!(true))], "core.attention_conv"),
        ("0.3", vec![("hidden_dilation", json!(0))], "core.hidden_dilation"),
        ("head", vec![("independent_bn_bias", json!(true))], "core.independent_bn_bias"),
        ("head", vec![("bias", json!([true, false]))], "core.bias"),
        ("head", vec![("batch_norm_scale", json!([true]))], "core.batch_norm_scale"),
        ("head", vec![("nonlinearity_type", json!("ReLU"))], "core.nonlinearity_type"),
        ("head", vec![("skip", json!(2))], "core.skip"),
        ("head", vec![("hidden_channels", json!([4, 6]))], "core.hidden_channels"),
    ];
    for (version, edits, name) in cases {
        let base = if version == "head" { &head_text } else { &text };
        refused_param(with(base, &edits), "sensorium", name);
    }
    // A misspelt training-only argument is still an unknown field.
    let e = refused_config(with(&text, &[("gama_input", json!(1.0))]), "gama_input").to_string();
    assert!(e.contains("unknown field"), "{e}");
    // The training-only arguments themselves are accepted (baseline_elu's config has them all).
    let (t, sd) = golden("baseline_elu");
    assert!(t.contains("gamma_input") && t.contains("laplace_padding"));
    Sensorium::from_state_dict(SensoriumConfig::from_json(&t).unwrap(), sd).unwrap();
}

/// A config whose options imply keys the weights lack, or lack keys the weights hold, is refused
/// naming the key.
#[test]
fn options_decide_the_keys() {
    let load = |name: &str, edits: &[(&str, serde_json::Value)]| {
        let (text, sd) = golden(name);
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for (k, v) in edits {
            json["core"][*k] = v.clone();
        }
        Sensorium::from_state_dict(SensoriumConfig::from_json(&json.to_string()).unwrap(), sd)
    };
    use serde_json::json;
    load("scale_layer", &[]).unwrap();
    // bias=True with batch_norm_scale: affine norms, which scale_layer's weights do not have.
    let e = refused_weights(load("scale_layer", &[("bias", json!(true))]), "missing key").to_string();
    assert!(e.contains("core.features.layer0.norm.weight"), "{e}");
    // batch norm on where the model had none.
    let e = refused_weights(load("linear_no_bn", &[("batch_norm", json!(true))]), "missing key").to_string();
    assert!(e.contains("norm.running_mean"), "{e}");
    // bias=False: the Bias2D layers (and the hidden conv biases) have no place.
    let e = refused_weights(load("bias_layer", &[("bias", json!(false))]), "unexpected key").to_string();
    assert!(e.contains("bias"), "{e}");
    // independent_bn_bias=True (the default): affine norms instead of the Bias2D layers.
    refused_weights(load("bias_layer", &[("independent_bn_bias", json!(true))]), "norm.weight");
    // head: final_batchnorm_scale true puts a scale into the last norm, which head_lists lacks.
    refused_weights(load("head_lists", &[("final_batchnorm_scale", json!(true))]), "layer2");
    // Depth-separable where the weights hold plain convs.
    refused_weights(load("skip_dilated", &[("depth_separable", json!(true))]), "ds_conv");
}

/// `vcortex predict` on a model with a shifter reads `pupil_center`; without it, the message
/// names the tensors the file has.
#[test]
fn cli_predict_reads_pupil_center() {
    let d = dir("skip_dilated");
    let tmp = std::env::temp_dir();
    let out = tmp.join(format!("vcortex-options-{}.safetensors", std::process::id()));
    let run = |images: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_vcortex"))
            .args(["predict", "--weights"])
            .arg(d.join("weights.safetensors"))
            .arg("--config")
            .arg(d.join("config.json"))
            .arg("--images")
            .arg(images)
            .args(["--batch", "2", "-o"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let r = run(&d.join("images.safetensors"));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = read_safetensors(&out).unwrap();
    let want = read_safetensors(&d.join("expected.safetensors")).unwrap();
    assert_close(&got.tensors["sess"].data, &want.tensors["sess"].data, 1e-6, 1e-4, "predict skip_dilated");
    let _ = std::fs::remove_file(&out);
    // The images alone (and an unrelated tensor): refused, naming what the file has.
    let inputs = read_images(&d.join("images.safetensors")).unwrap();
    let only = tmp.join(format!("vcortex-options-images-{}.safetensors", std::process::id()));
    let extra = HostTensor::new(vec![3], vec![0.0; 3]);
    vcortex::io::write_safetensors(
        &only,
        &[("images".to_string(), inputs.images), ("running".to_string(), extra)],
        &Default::default(),
    )
    .unwrap();
    let r = run(&only);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("pupil_center") && err.contains("images, running"), "{err}");
    let _ = std::fs::remove_file(&only);
}
