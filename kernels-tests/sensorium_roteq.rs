//! The Sensorium model with neuralpredictors' RotationEquivariant2dCore: the committed reference
//! models (kernels-tests/data/rot_eq/{a,b}, made by scripts/golden_rot_eq.py) on the GPU and the CPU
//! reference, the kernels built at load time against the module's own, the Hermite basis and
//! rotations against the saved ones, random models against the reference forward, 90-degree
//! equivariance of the core, refusals by name, and `vcortex predict`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::common::{
    assert_close, ctx, refused_config, refused_param, refused_shape, refused_too_large, refused_weights, run1, vcortex,
};
use vcortex::io::{read_safetensors, read_weights, HostTensor};
use vcortex::models::sensorium::{hermite_tensors, CoreConfig, CoreKind, PerLayer, ReadoutConfig, Semantics, Stack};
use vcortex::models::{Sensorium, SensoriumConfig};
use vcortex::rng::SplitMix;

fn dir(name: &str) -> PathBuf {
    crate::common::data_dir("rot_eq").join(name)
}

fn golden(name: &str) -> (SensoriumConfig, BTreeMap<String, HostTensor>) {
    let d = dir(name);
    let cfg = SensoriumConfig::from_json(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    (cfg, read_weights(&d.join("weights.safetensors")).unwrap().tensors)
}

/// A rotation-equivariant config: `r` rotations of `f` features, `cin` input channels, kernels
/// `k0`/`k1`, `layers` layers.
#[allow(clippy::too_many_arguments)]
fn config(
    r: usize,
    f: usize,
    cin: usize,
    k0: usize,
    k1: usize,
    layers: usize,
    up: usize,
    stride: usize,
) -> SensoriumConfig {
    SensoriumConfig {
        core: CoreConfig {
            kind: CoreKind::RotationEquivariant,
            num_rotations: Some(r),
            upsampling: Some(up),
            stride,
            // neuralpredictors 0.3 drops this core's stride; head gives it to every layer.
            semantics: if stride > 1 { Semantics::Head } else { Semantics::V0_3 },
            ..CoreConfig::new(cin, f, k0, k1, layers)
        },
        readouts: [
            (
                "a".to_string(),
                ReadoutConfig {
                    neurons: 13,
                    align_corners: true,
                    shifter: false,
                    grid_mean_final_tanh: None,
                    modulator: false,
                },
            ),
            (
                "b".to_string(),
                ReadoutConfig {
                    neurons: 6,
                    align_corners: false,
                    shifter: true,
                    grid_mean_final_tanh: None,
                    modulator: false,
                },
            ),
        ]
        .into(),
        elu_offset: 0.1,
    }
}

/// The three neuralpredictors models' rates within 1e-4 relative, on the GPU and on the CPU
/// reference (c: hidden kernels [3, 5], stack [-2, 0], AdaptiveELU shifts, a scale layer).
#[test]
fn rot_eq_reproduces_the_neuralpredictors_models() {
    for name in ["a", "b", "c"] {
        let d = dir(name);
        let model = Sensorium::load(ctx(), &d.join("weights.safetensors"), &d.join("config.json")).unwrap();
        let inputs = read_safetensors(&d.join("images.safetensors")).unwrap().tensors;
        let images = &inputs["images"];
        let expected = read_safetensors(&d.join("expected.safetensors")).unwrap().tensors;
        for key in model.data_keys() {
            let want = &expected[key];
            let eye = model.has_shifter(key).then(|| &inputs["eye"].data[..]);
            let got = model.predict_with_eye(ctx(), &images.data, &images.shape, eye, key).unwrap();
            assert_close(&got, &want.data, 1e-6, 1e-4, &format!("rot_eq {name} {key} (GPU)"));
            let cpu = model.reference_forward_with_eye(&images.data, &images.shape, eye, key).unwrap();
            assert_close(&cpu, &want.data, 1e-6, 1e-4, &format!("rot_eq {name} {key} (CPU reference)"));
        }
    }
}

/// The kernels built from the coefficients, basis and rotations equal the module's own
/// `weights_all_rotations` (saved by the script for model a's layers 0 and 1).
#[test]
fn built_kernels_match_the_modules_own() {
    let (cfg, sd) = golden("a");
    let model = Sensorium::from_state_dict(cfg, sd).unwrap();
    let expected = read_safetensors(&dir("a").join("expected.safetensors")).unwrap().tensors;
    let weights = model.core_weights();
    assert_eq!(weights.len(), 3, "one conv per layer");
    for l in 0..2 {
        let want = &expected[&format!("weights.layer{l}")];
        assert_eq!(weights[l].shape, want.shape, "layer {l}: [R*F, Cin_total, k, k]");
        assert_close(&weights[l].data, &want.data, 1e-6, 1e-5, &format!("built kernels of layer {l}"));
    }
    assert_eq!(weights[1].shape, [24, 24, 3, 3]);
}

/// The Hermite basis and rotations built here are the ones neuralpredictors saves.
#[test]
fn hermite_basis_and_rotations_match_the_saved_ones() {
    for (name, layers) in [("a", vec![(0, 5), (1, 3), (2, 3)]), ("b", vec![(0, 7), (1, 5)])] {
        let (cfg, sd) = golden(name);
        let (r, up) = (cfg.core.rotations(), cfg.core.upsampling_factor());
        for (l, k) in layers {
            let pre = format!("core.features.layer{l}.hermite_conv.rotate_hermite");
            let (h, rs) = hermite_tensors(k, up, r);
            let saved = &sd[&format!("{pre}.H")];
            assert_eq!(h.shape, saved.shape, "{name} layer {l}");
            assert_close(&h.data, &saved.data, 2e-6, 1e-5, &format!("{name} layer {l} basis"));
            assert_eq!(rs.len(), r);
            for (i, t) in rs.iter().enumerate() {
                let saved = &sd[&format!("{pre}.Rs.{i}")];
                assert_close(&t.data, &saved.data, 1e-6, 0.0, &format!("{name} layer {l} rotation {i}"));
            }
        }
    }
}

/// Random rotation-equivariant models (the basis built here): the GPU forward against the CPU
/// reference forward, for odd sizes, 1 to 8 rotations, strides 1 and 2, padded or not, with and
/// without the last ELU, a readout with a shifter.
#[test]
fn random_rot_eq_models_match_the_reference_forward() {
    let mut rng = SplitMix::new(77);
    for (i, (mut cfg, shape)) in [
        (config(4, 3, 1, 5, 3, 3, 2, 1), [2, 1, 13, 17]),
        (config(8, 2, 2, 3, 3, 2, 1, 1), [1, 2, 9, 8]),
        (config(3, 2, 3, 4, 5, 2, 3, 2), [3, 3, 16, 11]),
        (config(1, 5, 1, 7, 1, 3, 2, 1), [2, 1, 11, 12]),
    ]
    .into_iter()
    .enumerate()
    {
        cfg.core.pad_input = i % 2 == 1;
        cfg.core.final_nonlinearity = i != 2;
        let mut m = Sensorium::random(cfg.clone(), 9 + i as u64).unwrap();
        m.upload(ctx()).unwrap();
        let n = shape[0];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let eye = rng.vec(n * 2, -1.0, 1.0);
        for key in ["a", "b"] {
            let e = (key == "b").then_some(&eye[..]);
            let got = m.predict_with_eye(ctx(), &x, &shape, e, key).unwrap();
            let want = m.reference_forward_with_eye(&x, &shape, e, key).unwrap();
            assert_close(&got, &want, 1e-5, 1e-4, &format!("random rot_eq case {i} key {key}"));
        }
        let (core, s) = m.reference_core(&x, &shape).unwrap();
        let [c, h, w] = cfg.core_output(shape[2], shape[3]).unwrap();
        assert_eq!(s, [n, c, h, w], "case {i}: core output");
        assert_eq!(c, cfg.core.rotations() * cfg.core.hidden_channels.get(0));
        let t = vcortex::Tensor::from_f32(ctx(), &x, &shape).unwrap();
        let gpu = run1(|rec| m.record_core(rec, &t));
        assert_close(&gpu, &core, 1e-5, 1e-4, &format!("random rot_eq case {i} core"));
    }
}

/// torch.rot90(x, 1, (2, 3)) of [N, C, S, S]: out[i][j] = x[j][S-1-i].
fn rot90(x: &[f32], n: usize, c: usize, s: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for p in 0..n * c {
        for i in 0..s {
            for j in 0..s {
                out[(p * s + i) * s + j] = x[(p * s + j) * s + s - 1 - i];
            }
        }
    }
    out
}

/// The core output of a rotated input, against the rotated core output with rotation block r
/// moved to block r + R/4 (mod R): `y_rot[(r + R/4) mod R, f] = rot90(y[r, f])`.
fn check_equivariance(y: &[f32], y_rot: &[f32], shape: &[usize], r_count: usize, what: &str) {
    let [n, c, s, s2] = shape[..] else { panic!("{what}: rank") };
    assert_eq!(s, s2, "{what}: square output");
    let f = c / r_count;
    let turned = rot90(y, n, c, s);
    let mut moved = vec![0f32; y.len()];
    let plane = s * s;
    for b in 0..n {
        for r in 0..r_count {
            for k in 0..f {
                let from = ((b * c) + r * f + k) * plane;
                let to = ((b * c) + ((r + r_count / 4) % r_count) * f + k) * plane;
                moved[to..to + plane].copy_from_slice(&turned[from..from + plane]);
            }
        }
    }
    let scale = y.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    assert!(scale > 1e-3, "{what}: a non-trivial output");
    assert_close(y_rot, &moved, 1e-5 * scale, 1e-4, what);
    // And not by accident: the output is not itself rotation-invariant.
    let err = y.iter().zip(&turned).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    assert!(err > 1e-3 * scale, "{what}: the plain rotation already matches");
}

/// Rotating a square input by 90 degrees rotates the core's output the same way and cycles its
/// channels by R/4 blocks of F: on the GPU and the CPU reference, for random models (8 and 4
/// rotations, stride 1 and 2, padded or not) and the neuralpredictors model a (whose script checks
/// the same convention in PyTorch and saves both outputs).
#[test]
fn rotating_the_input_rotates_the_core_output() {
    let mut rng = SplitMix::new(78);
    let mut cases = Vec::new();
    for (i, cfg) in [config(8, 2, 2, 5, 3, 3, 2, 1), config(4, 3, 1, 7, 5, 2, 3, 2)].into_iter().enumerate() {
        let mut cfg = cfg;
        cfg.core.pad_input = i == 1;
        let mut m = Sensorium::random(cfg, 21 + i as u64).unwrap();
        m.upload(ctx()).unwrap();
        let c = m.config.core.input_channels;
        // Odd sizes at every layer, so that stride 2 samples symmetric positions (19 and 17 → 9 → 5).
        let side = [19, 17][i];
        let shape = vec![2, c, side, side];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        cases.push((format!("random {i}"), m, x, shape));
    }
    let (cfg, sd) = golden("a");
    let mut m = Sensorium::from_state_dict(cfg, sd).unwrap();
    m.upload(ctx()).unwrap();
    let square = read_safetensors(&dir("a").join("images.safetensors")).unwrap().tensors.remove("square").unwrap();
    let expected = read_safetensors(&dir("a").join("expected.safetensors")).unwrap().tensors;
    let core = m.reference_core(&square.data, &square.shape).unwrap().0;
    assert_close(&core, &expected["core_square"].data, 1e-6, 1e-4, "model a's core on the square image");
    cases.push(("neuralpredictors a".into(), m, square.data, square.shape));
    for (what, m, x, shape) in &cases {
        let (n, c, s) = (shape[0], shape[1], shape[2]);
        let xr = rot90(x, n, c, s);
        let r = m.config.core.rotations();
        let (y, ys) = m.reference_core(x, shape).unwrap();
        let (y_rot, _) = m.reference_core(&xr, shape).unwrap();
        check_equivariance(&y, &y_rot, &ys, r, &format!("{what} (CPU reference)"));
        let (t, tr) = (
            vcortex::Tensor::from_f32(ctx(), x, shape).unwrap(),
            vcortex::Tensor::from_f32(ctx(), &xr, shape).unwrap(),
        );
        let g = run1(|rec| m.record_core(rec, &t));
        let g_rot = run1(|rec| m.record_core(rec, &tr));
        check_equivariance(&g, &g_rot, &ys, r, &format!("{what} (GPU)"));
        if what.starts_with("neuralpredictors") {
            assert_close(
                &g_rot,
                &expected["core_square_rot90"].data,
                1e-6,
                1e-4,
                "model a's core on the rotated image",
            );
        }
    }
}

/// A rotation count the weights do not hold or that does not divide the channels, missing or
/// mis-shaped keys, and fields a rotation-equivariant core does not have: refused by name.
#[test]
fn rot_eq_refusals_name_the_field_or_key() {
    let (cfg, sd) = golden("a");
    Sensorium::from_state_dict(cfg.clone(), sd.clone()).unwrap();
    let with = |f: &dyn Fn(&mut CoreConfig)| {
        let mut c = cfg.clone();
        f(&mut c.core);
        c
    };
    // The config's rotation count against the weights' 8 (fewer and more).
    for r in [6, 16] {
        let e = refused_param(
            Sensorium::from_state_dict(with(&|c| c.num_rotations = Some(r)), sd.clone()),
            "sensorium",
            "core.num_rotations",
        );
        assert!(e.to_string().contains("8 rotation(s)"), "{e}");
    }
    // Hidden coefficients whose input channels 8 rotations do not divide.
    let key = "core.features.layer1.hermite_conv.coeffs";
    let mut odd = sd.clone();
    odd.insert(key.into(), HostTensor::new(vec![6, 25, 3], vec![0.1; 6 * 25 * 3]));
    let e = refused_param(Sensorium::from_state_dict(cfg.clone(), odd), "sensorium", "core.num_rotations");
    assert!(e.to_string().contains("25 input channels") && e.to_string().contains(key), "{e}");
    // Missing and mis-shaped keys, named.
    for key in [
        "core.features.layer1.hermite_conv.rotate_hermite.H",
        "core.features.layer2.hermite_conv.rotate_hermite.Rs.3",
        "core.features.layer0.hermite_conv.rotate_hermite.Rs.0",
        "core.features.layer2.norm.batch_norm.running_var",
        "core.features.layer0.hermite_conv.coeffs",
    ] {
        let mut missing = sd.clone();
        missing.remove(key);
        let e = refused_weights(Sensorium::from_state_dict(cfg.clone(), missing), key).to_string();
        assert!(e.contains("missing key"), "{e}");
    }
    let mut shaped = sd.clone();
    let h = "core.features.layer1.hermite_conv.rotate_hermite.H";
    shaped.insert(h.into(), HostTensor::new(vec![6, 3, 3], vec![0.0; 54]));
    let e = refused_weights(Sensorium::from_state_dict(cfg.clone(), shaped), h).to_string();
    assert!(e.contains("[6, 6, 6]"), "the basis is upsampled: {e}");
    // A config with another upsampling or kernel than the weights' basis.
    let e =
        refused_weights(Sensorium::from_state_dict(with(&|c| c.upsampling = Some(3)), sd.clone()), "rotate_hermite.H");
    assert!(e.to_string().contains("[15, 15, 15]"), "{e}");
    let e = refused_weights(Sensorium::from_state_dict(with(&|c| c.hidden_kern = 5.into()), sd.clone()), "layer1");
    assert!(e.to_string().contains("coeffs"), "{e}");
    // The stacked core's keys are not taken for a rotation-equivariant core's, nor the other way.
    let mut stacked = cfg.clone();
    stacked.core.kind = CoreKind::Stacked2d;
    stacked.core.num_rotations = None;
    stacked.core.upsampling = None;
    refused_weights(Sensorium::from_state_dict(stacked, sd.clone()), "core.features.layer0.conv.weight");
    // Fields out of range, or that a rotation-equivariant core does not have.
    for (c, name) in [
        (with(&|c| c.num_rotations = Some(0)), "core.num_rotations"),
        (with(&|c| c.upsampling = Some(0)), "core.upsampling"),
        (with(&|c| c.num_rotations = Some(1 << 20)), "core.num_rotations"),
        (with(&|c| c.upsampling = Some(1 << 19)), "core.upsampling"),
        (with(&|c| c.input_stride = 2), "core.input_stride"),
        (with(&|c| c.hidden_dilation = 2), "core.hidden_dilation"),
        (with(&|c| c.kind = CoreKind::Stacked2d), "core.num_rotations"),
    ] {
        refused_param(c.validate(), "sensorium", name);
        refused_param(Sensorium::from_state_dict(c, sd.clone()), "sensorium", name);
    }
    // Kernels past the largest tensor, refused before anything is built.
    let huge = with(&|c| (c.input_channels, c.input_kern) = (1 << 20, 10));
    refused_too_large(
        Sensorium::from_state_dict(huge, sd.clone()),
        "sensorium",
        "layer 0's kernels [24, 1048576, 10, 10]",
    );
    let mut up_only = with(&|c| c.kind = CoreKind::Stacked2d);
    up_only.core.num_rotations = None;
    refused_param(up_only.validate(), "sensorium", "core.upsampling");
    // An unknown kind, in the JSON.
    let text = std::fs::read_to_string(dir("a").join("config.json")).unwrap();
    let bad = text.replace("\"rotation_equivariant\"", "\"hexagonal\"");
    let e = refused_config(SensoriumConfig::from_json(&bad), "hexagonal").to_string();
    assert!(e.contains("rotation_equivariant") && e.contains("stacked2d"), "{e}");
    // Without num_rotations and upsampling the defaults (8, 2) are neuralpredictors'.
    let defaults = text.replace("\"num_rotations\": 8,", "").replace("\"upsampling\": 2,", "");
    let c = SensoriumConfig::from_json(&defaults).unwrap();
    assert_eq!((c.core.rotations(), c.core.upsampling_factor()), (8, 2));
    Sensorium::from_state_dict(c, sd.clone()).unwrap();
    // Images too small for the kernels, or with the wrong channels.
    let m = Sensorium::from_state_dict(cfg.clone(), sd).unwrap();
    let e = refused_shape(m.reference_forward(&[0.0; 16], &[1, 1, 4, 4], "sessA"), "sensorium", "images");
    assert!(e.to_string().contains("5-wide kernel"), "{e}");
    refused_shape(m.reference_core(&[0.0; 2 * 36], &[1, 2, 6, 6]), "sensorium", "images");
}

/// `vcortex predict` runs the rotation-equivariant model from its config.
#[test]
fn cli_predict_runs_the_rot_eq_model() {
    let d = dir("a");
    let out = std::env::temp_dir().join(format!("vcortex-predict-roteq-{}.safetensors", std::process::id()));
    let (w, c, i) = (d.join("weights.safetensors"), d.join("config.json"), d.join("images.safetensors"));
    let run = vcortex(&[
        "predict",
        "--weights",
        w.to_str().unwrap(),
        "--config",
        c.to_str().unwrap(),
        "--images",
        i.to_str().unwrap(),
        "--batch",
        "3",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let got = read_safetensors(&out).unwrap().tensors;
    let want = read_safetensors(&d.join("expected.safetensors")).unwrap().tensors;
    assert_eq!(got.keys().collect::<Vec<_>>(), ["sessA", "sessB"]);
    for (k, t) in &got {
        assert_close(&t.data, &want[k].data, 1e-6, 1e-4, &format!("predict {k}"));
    }
    let _ = std::fs::remove_file(&out);
}

/// The Stacked2dCore options RotationEquivariant2dCore honours, on random models against the
/// reference forward (GPU and CPU, core and rates): `stack` as an int, a list and null, `linear`,
/// AdaptiveELU shifts, `hidden_padding` (0 and 2), hidden kernels and (head) channels as lists, no
/// batch norm, the bias and scale layers after a non-affine norm, and `rot_eq_batch_norm` false
/// with one rotation (a plain BatchNorm2d). Each core's output channels are the stacked layers'
/// R·F; `depth_separable` does not change the model.
#[test]
fn rot_eq_options_follow_the_layer_plan() {
    let mut rng = SplitMix::new(79);
    let base = || config(4, 2, 1, 5, 3, 3, 2, 1);
    let with = |f: &dyn Fn(&mut CoreConfig)| {
        let mut c = base();
        f(&mut c.core);
        c
    };
    // (what, config, the core's output channels: 4 rotations × 2 features per stacked layer)
    let cases: Vec<(&str, SensoriumConfig, usize)> = vec![
        ("stack -2", with(&|c| c.stack = Stack::From(-2)), 16),
        ("stack null, padded", with(&|c| (c.stack, c.pad_input) = (Stack::All, true)), 24),
        ("stack [2, 0, -2]", with(&|c| (c.stack, c.pad_input) = (Stack::Layers(vec![2, 0, -2]), true)), 24),
        ("linear", with(&|c| c.linear = true), 8),
        ("elu shifts", with(&|c| (c.elu_xshift, c.elu_yshift) = (Some(0.3), Some(-0.4))), 8),
        ("elu_shift, no last", with(&|c| (c.elu_shift, c.final_nonlinearity) = (Some([-0.2, 0.5]), false)), 8),
        ("hidden_padding 0", with(&|c| c.hidden_padding = Some(0)), 8),
        ("hidden_padding 2", with(&|c| c.hidden_padding = Some(2)), 8),
        ("hidden kernels [5, 3]", with(&|c| c.hidden_kern = PerLayer::Each(vec![5, 3])), 8),
        (
            "head: channels [3, 2, 4]",
            with(&|c| (c.semantics, c.hidden_channels) = (Semantics::Head, PerLayer::Each(vec![3, 2, 4]))),
            16,
        ),
        ("no batch norm", with(&|c| c.batch_norm = false.into()), 8),
        (
            "bias layer",
            with(&|c| {
                (c.bias, c.batch_norm_scale, c.independent_bn_bias) = (Some(true.into()), false.into(), Some(false))
            }),
            8,
        ),
        (
            "head: scale layer, batch norm per layer",
            with(&|c| {
                c.semantics = Semantics::Head;
                (c.bias, c.batch_norm) = (Some(false.into()), PerLayer::Each(vec![true, false, true]));
            }),
            8,
        ),
        (
            "rot_eq_batch_norm false, 1 rotation",
            with(&|c| (c.num_rotations, c.rot_eq_batch_norm) = (Some(1), Some(false))),
            2,
        ),
    ];
    for (i, (what, cfg, channels)) in cases.into_iter().enumerate() {
        let mut m = Sensorium::random(cfg.clone(), 40 + i as u64).unwrap();
        m.upload(ctx()).unwrap();
        let shape = [2, 1, 15, 13];
        let x = rng.vec(shape.iter().product(), -1.0, 1.0);
        let (core, s) = m.reference_core(&x, &shape).unwrap();
        let [c, h, w] = cfg.core_output(15, 13).unwrap();
        assert_eq!(s, [2, c, h, w], "{what}: core output");
        assert_eq!(c, channels, "{what}: R·F of each stacked layer");
        let t = vcortex::Tensor::from_f32(ctx(), &x, &shape).unwrap();
        let gpu = run1(|rec| m.record_core(rec, &t));
        assert_close(&gpu, &core, 1e-5, 1e-4, &format!("{what}: core"));
        let e = rng.vec(4, -1.0, 1.0);
        for key in ["a", "b"] {
            let eye = (key == "b").then_some(&e[..]);
            let got = m.predict_with_eye(ctx(), &x, &shape, eye, key).unwrap();
            let want = m.reference_forward_with_eye(&x, &shape, eye, key).unwrap();
            assert_close(&got, &want, 1e-5, 1e-4, &format!("{what}: key {key}"));
        }
        // The plan's activations: linear has none, so the core is a linear map of its input.
        if what == "linear" {
            let twice: Vec<f32> = x.iter().map(|v| 2.0 * v).collect();
            let (y2, _) = m.reference_core(&twice, &shape).unwrap();
            let (y0, _) = m.reference_core(&vec![0.0; x.len()], &shape).unwrap();
            let lin: Vec<f32> = core.iter().zip(&y0).map(|(a, b)| 2.0 * a - b).collect();
            assert_close(&y2, &lin, 1e-4, 1e-4, "linear: affine in the input");
        }
    }
    // The golden model a with depth_separable either way: the same weights load to the same kernels.
    let (cfg, sd) = golden("a");
    let mut other = cfg.clone();
    other.core.depth_separable = !cfg.core.depth_separable;
    let (m1, m2) =
        (Sensorium::from_state_dict(cfg, sd.clone()).unwrap(), Sensorium::from_state_dict(other, sd).unwrap());
    let w = |m: &Sensorium| m.core_weights().iter().map(|t| t.data.clone()).collect::<Vec<_>>();
    assert_eq!(w(&m1), w(&m2), "depth_separable is ignored by a rotation-equivariant core");
}

/// The options RotationEquivariant2dCore does not honour or its version does not have, and the
/// rotation-equivariant fields on a stacked core: refused by name.
#[test]
fn rot_eq_refuses_the_options_it_does_not_honour() {
    let base = || config(4, 2, 1, 5, 3, 3, 2, 1);
    let with = |f: &dyn Fn(&mut CoreConfig)| {
        let mut c = base();
        f(&mut c.core);
        c
    };
    base().validate().unwrap();
    let head = |c: &mut CoreConfig| c.semantics = Semantics::Head;
    for (what, cfg, field, says) in [
        ("0.3 skip 2", with(&|c| c.skip = 2), "core.skip", "ignores"),
        ("head skip 1", with(&|c| (head(c), c.skip = 1).1), "core.skip", "raises"),
        ("0.3 stride 2", with(&|c| (c.semantics, c.stride) = (Semantics::V0_3, 2)), "core.stride", "drops"),
        ("0.3 init_std", with(&|c| c.init_std = Some(0.1.into())), "core.init_std", "head"),
        ("input_stride", with(&|c| (head(c), c.input_stride = 2).1), "core.input_stride", "every layer"),
        ("hidden_dilation", with(&|c| c.hidden_dilation = 2), "core.hidden_dilation", "no dilation"),
        (
            "attention_conv",
            with(&|c| (c.attention_conv, c.depth_separable) = (true, false)),
            "core.attention_conv",
            "not supported",
        ),
        (
            "rot_eq_batch_norm false",
            with(&|c| c.rot_eq_batch_norm = Some(false)),
            "core.rot_eq_batch_norm",
            "4 rotations",
        ),
        (
            "hidden_channels list under 0.3",
            with(&|c| c.hidden_channels = PerLayer::Each(vec![2, 2, 2])),
            "core.hidden_channels",
            "list",
        ),
        ("stack out of range", with(&|c| c.stack = Stack::Layers(vec![3])), "core.stack", "out of range"),
        (
            "stack of two sizes",
            with(&|c| (c.stack, c.hidden_padding) = (Stack::All, Some(0))),
            "core.stack",
            "differ in size",
        ),
    ] {
        let e = refused_param(cfg.validate(), "sensorium", field);
        assert!(e.to_string().contains(says), "{what}: {e}");
        refused_param(Sensorium::random(cfg, 1), "sensorium", field);
    }
    // Under head: init_std accepted (and ignored), rot_eq_batch_norm false with no batch norm too.
    with(&|c| (head(c), c.init_std = Some(0.1.into())).1).validate().unwrap();
    with(&|c| (c.rot_eq_batch_norm, c.batch_norm) = (Some(false), false.into())).validate().unwrap();
    // The rotation-equivariant fields on a stacked core.
    for (field, f) in [
        (
            "core.rot_eq_batch_norm",
            &(|c: &mut CoreConfig| c.rot_eq_batch_norm = Some(true)) as &dyn Fn(&mut CoreConfig),
        ),
        ("core.init_std", &|c: &mut CoreConfig| c.init_std = Some(0.1.into())),
        ("core.num_rotations", &|c: &mut CoreConfig| c.num_rotations = Some(4)),
    ] {
        let mut c = Sensorium::baseline_config(3);
        f(&mut c.core);
        refused_param(c.validate(), "sensorium", field);
    }
    // A list of hidden channels past the limit once multiplied by the rotations.
    let e = refused_param(
        with(&|c| (head(c), c.hidden_channels = PerLayer::Each(vec![2, 1 << 19, 2])).1).validate(),
        "sensorium",
        "core.num_rotations",
    );
    assert!(e.to_string().contains("524288 hidden_channels"), "{e}");
}
