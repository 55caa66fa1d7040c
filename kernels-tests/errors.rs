//! Bad input gets a typed error with a clear message: never a panic, a hang or a silent answer;
//! a refused call records nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::{ctx, is_param, is_shape, refused_param, refused_shape, refused_too_large, refused_weights, up};
use vcortex::eval::{self, Backend};
use vcortex::io::{write_safetensors, HostTensor};
use vcortex::ops::{self, Activation, Conv2dParams, Epilogue};
use vcortex::{Error, Tensor};

fn conv_err(x: &[usize], w: &[usize], p: Conv2dParams) -> Error {
    let xt = up(&vec![0.0; x.iter().product()], x);
    let wt = up(&vec![0.0; w.iter().product()], w);
    let mut rec = ctx().recorder();
    let e = ops::conv2d(&mut rec, &xt, &wt, None, &p, &Epilogue::default()).expect_err("conv2d accepted bad input");
    assert_eq!(rec.dispatch_count(), 0, "a refused call recorded a dispatch");
    e
}

#[test]
fn conv2d_refuses_bad_shapes_and_parameters() {
    let d = Conv2dParams::default();
    let e = conv_err(&[1, 6, 5, 5], &[4, 3, 3, 3], d.with_groups(4));
    assert!(is_param(&e, "conv2d", "groups") && e.to_string().contains("not divisible by groups"), "{e:?}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 2, 3, 3], d);
    assert!(is_shape(&e, "conv2d", "weight"), "{e:?}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 3, 3, 3], d.with_stride(0, 1));
    assert!(is_param(&e, "conv2d", "stride"), "{e:?}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 3, 3, 3], d.with_dilation(1, 0));
    assert!(is_param(&e, "conv2d", "dilation"), "{e:?}");
    let e = conv_err(&[1, 3, 4, 4], &[4, 3, 5, 5], d);
    assert!(is_shape(&e, "conv2d", "weight"), "{e:?}");
    assert!(e.to_string().contains("padded input"), "{e}");
    let e = conv_err(&[1, 3, 4, 4], &[4, 3, 3, 3], d.with_dilation(2, 2));
    assert!(is_shape(&e, "conv2d", "weight"), "{e:?}");
    assert!(e.to_string().contains("padded input"), "{e}");
    let e = conv_err(&[3, 5, 5], &[4, 3, 3, 3], d);
    assert!(is_shape(&e, "conv2d", "input"), "{e:?}");
    assert!(e.to_string().contains("[N, C, H, W]"), "{e}");
    let e = conv_err(&[1, 4, 5, 5], &[4, 4, 3, 3], d.with_algo(ops::ConvAlgo::Depthwise));
    assert!(is_param(&e, "conv2d", "algo"), "{e:?}");
    assert!(e.to_string().contains("depthwise"), "{e}");
    let e = conv_err(&[1, 4, 5, 5], &[4, 4, 3, 3], d.with_algo(ops::ConvAlgo::OneByOne));
    assert!(is_param(&e, "conv2d", "algo"), "{e:?}");
    assert!(e.to_string().contains("1x1"), "{e}");
    // Bias of the wrong length.
    let (x, w, b) = (up(&[0.0; 25], &[1, 1, 5, 5]), up(&[0.0; 18], &[2, 1, 3, 3]), up(&[0.0; 3], &[3]));
    let e = ops::conv2d(&mut ctx().recorder(), &x, &w, Some(&b), &d, &Epilogue::default()).unwrap_err();
    assert!(is_shape(&e, "conv2d", "bias"), "{e:?}");
    // Scale without shift.
    let s = up(&[1.0; 2], &[2]);
    let epi = Epilogue { scale: Some(&s), shift: None, act: Activation::Identity };
    refused_param(ops::conv2d(&mut ctx().recorder(), &x, &w, None, &d, &epi), "conv2d", "epilogue");
}

/// A composite op that fails part-way takes back what it recorded; copies refuse aliasing.
#[test]
fn failed_composite_ops_leave_the_recorder_as_it_was() {
    let x = up(&[0.5; 2 * 3 * 12], &[2, 3, 12]);
    let mut rec = ctx().recorder();
    ops::activation(&mut rec, &x, Activation::Relu).unwrap();
    let before = rec.dispatch_count();
    // 2 x 70000 heads pass the shape checks but not the batched matmul's workgroup limit.
    let big = up(&vec![0.5; 70_000], &[1, 1, 70_000]);
    // Named as the caller's op, with the inner step in parentheses (not as matmul_nt alone).
    let e = refused_too_large(
        ops::attention(&mut rec, &big, &big, &big, 70_000),
        "attention",
        "batch (in its matmul_nt step)",
    );
    assert!(e.to_string().starts_with("attention: batch (in its matmul_nt step) needs"), "{e}");
    assert_eq!(rec.dispatch_count(), before, "a refused attention left dispatches behind");
    // A flow given the wrong width, after nothing; a divisive norm with a bad gamma.
    refused_shape(
        ops::divisive_norm(
            &mut rec,
            &up(&[0.0; 2 * 3 * 4 * 4], &[2, 3, 4, 4]),
            Some(&up(&[1.0; 2], &[2])),
            None,
            &Default::default(),
        ),
        "divisive_norm",
        "gamma",
    );
    assert_eq!(rec.dispatch_count(), before);
    rec.submit().unwrap();
    let e = ctx().recorder().copy(&x, &x.reshape(&[6, 12]).unwrap()).unwrap_err();
    assert!(is_param(&e, "copy", "destination"), "{e:?}");
    assert!(e.to_string().contains("shares"), "{e}");
}

#[test]
fn zero_sized_and_oversized_tensors_are_refused() {
    let e = Tensor::from_f32(ctx(), &[], &[0, 3]).unwrap_err();
    assert!(is_shape(&e, "upload", "tensor"), "{e:?}");
    assert!(e.to_string().contains("zero-sized"), "{e}");
    let e = Tensor::from_f32(ctx(), &[1.0, 2.0], &[3]).unwrap_err();
    assert!(matches!(&e, Error::DataLength { op: "upload", what, got: 2, expected: 3, .. } if what == "data"), "{e:?}");
    // Past the device's storage binding limit: refused before any allocation.
    let n = (ctx().max_tensor_bytes() / 4 + 1) as usize;
    let e = Tensor::empty(ctx(), &[n], vcortex::DType::F32).unwrap_err();
    assert!(matches!(e, Error::TooLarge { op: "tensor", limit_name: "max_storage_buffer_binding_size", .. }), "{e:?}");
    let e = Tensor::empty(ctx(), &[usize::MAX, 2], vcortex::DType::F32).unwrap_err();
    assert!(is_shape(&e, "tensor", "tensor") && e.to_string().contains("fits in memory"), "{e:?}");
}

#[test]
fn other_ops_refuse_bad_input() {
    let x = up(&[0.0; 12], &[3, 4]);
    let mut rec = ctx().recorder();
    refused_shape(ops::linear(&mut rec, &x, &up(&[0.0; 10], &[2, 5]), None, Activation::Identity), "linear", "weight");
    refused_shape(ops::matmul(&mut rec, &x, &up(&[0.0; 10], &[5, 2])), "matmul", "b");
    refused_param(ops::layer_norm(&mut rec, &x, 3, None, None, 1e-5, Activation::Identity), "layer_norm", "dims");
    refused_param(ops::layer_norm(&mut rec, &x, 1, None, None, f32::NAN, Activation::Identity), "layer_norm", "eps");
    refused_shape(
        ops::layer_norm(&mut rec, &x, 1, Some(&up(&[1.0; 3], &[3])), None, 1e-5, Activation::Identity),
        "layer_norm",
        "weight",
    );
    let c4 = up(&[1.0; 4], &[4]);
    let c3 = up(&[1.0; 3], &[3]);
    refused_shape(ops::batch_norm(&mut rec, &x, &c4, &c4, &c4, &c3, 1e-5, Activation::Identity), "batch_norm", "bias");
    refused_param(
        ops::batch_norm(&mut rec, &x, &c4, &c4, &c4, &c4, f32::INFINITY, Activation::Identity),
        "batch_norm",
        "eps",
    );
    refused_param(
        ops::activation(&mut rec, &x, Activation::Softplus { beta: 0.0, threshold: 20.0 }),
        "activation",
        "beta",
    );
    refused_param(
        ops::activation(&mut rec, &x, Activation::Softplus { beta: 1.0, threshold: f32::NAN }),
        "activation",
        "threshold",
    );
    assert_eq!(rec.dispatch_count(), 0);
    refused_param(Activation::parse("swish", |_, d| Ok(d)), "activation", "kind");
    refused_param(
        Activation::parse("adaptive_elu", |n, d| Ok(if n == "yshift" { f32::NAN } else { d })),
        "activation",
        "yshift",
    );
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vcortex-err-{}-{name}", std::process::id()))
}

fn write_case(name: &str, meta: &[(&str, &str)], tensors: &[(&str, Vec<usize>)]) -> PathBuf {
    let path = tmp(name);
    let t: Vec<(String, HostTensor)> = tensors
        .iter()
        .map(|(n, s)| (n.to_string(), HostTensor::new(s.clone(), vec![0.5; s.iter().product()])))
        .collect();
    let m: HashMap<String, String> = meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    write_safetensors(&path, &t, &m).unwrap();
    path
}

/// Each malformed case is refused with one clear line naming the problem, and no OUT is written.
#[test]
fn eval_refuses_malformed_cases() {
    let conv_t = || vec![("input", vec![1, 2, 5, 5]), ("weight", vec![3, 2, 3, 3])];
    let cases: Vec<(&str, PathBuf, &str)> = vec![
        ("unknown op", write_case("a", &[("op", "conv4d")], &conv_t()), "unknown op"),
        ("no op", write_case("b", &[], &conv_t()), "no \"op\""),
        (
            "missing tensor",
            write_case("c", &[("op", "conv2d")], &[("input", vec![1, 2, 5, 5])]),
            "missing tensor \"weight\"",
        ),
        (
            "extra tensor",
            write_case(
                "d",
                &[("op", "conv2d")],
                &[("input", vec![1, 2, 5, 5]), ("weight", vec![3, 2, 3, 3]), ("bogus", vec![1])],
            ),
            "unexpected tensor \"bogus\"",
        ),
        ("bad value", write_case("e", &[("op", "conv2d"), ("stride", "two")], &conv_t()), "stride"),
        (
            "unknown param",
            write_case("f", &[("op", "conv2d"), ("strides", "2")], &conv_t()),
            "unknown parameter \"strides\"",
        ),
        (
            "wrong rank",
            write_case("g", &[("op", "conv2d")], &[("input", vec![2, 5, 5]), ("weight", vec![3, 2, 3, 3])]),
            "[N, C, H, W]",
        ),
        (
            "groups",
            write_case(
                "h",
                &[("op", "conv2d"), ("groups", "2")],
                &[("input", vec![1, 3, 5, 5]), ("weight", vec![4, 1, 3, 3])],
            ),
            "groups",
        ),
        ("zero stride", write_case("i", &[("op", "conv2d"), ("stride", "0,1")], &conv_t()), "stride"),
        ("bad kind", write_case("j", &[("op", "activation"), ("kind", "swish")], &[("input", vec![3])]), "kind"),
        ("no kind", write_case("k", &[("op", "activation")], &[("input", vec![3])]), "kind"),
        ("nan eps", write_case("l", &[("op", "layer_norm"), ("eps", "nan")], &[("input", vec![2, 3])]), "eps"),
        ("bad dims", write_case("m", &[("op", "layer_norm"), ("dims", "3")], &[("input", vec![2, 3])]), "dims"),
        ("bad bool-like list", write_case("n", &[("op", "conv2d"), ("padding", "1,2,3")], &conv_t()), "padding"),
        ("zero-sized", write_case("o", &[("op", "layer_norm")], &[("input", vec![3, 0])]), "zero-sized"),
        (
            "huge padding",
            write_case("p", &[("op", "conv2d"), ("padding", "18446744073709551615,1,0,0")], &conv_t()),
            "padding",
        ),
        ("huge dilation", write_case("q", &[("op", "conv2d"), ("dilation", "4294967296")], &conv_t()), "dilation"),
        (
            "huge schedule",
            write_case(
                "r",
                &[("op", "ddim_step"), ("timestep", "0"), ("num_train_timesteps", "100000000000")],
                &[("sample", vec![2]), ("model_output", vec![2])],
            ),
            "num_train_timesteps",
        ),
    ];
    for (what, path, needle) in &cases {
        for backend in [Backend::Gpu(ctx()), Backend::Cpu] {
            let out = tmp(&format!("{what}.out"));
            let e = eval::eval_file(path, &out, &backend).expect_err(what);
            let msg = e.to_string();
            assert!(msg.contains(needle), "{what}: {msg:?} does not mention {needle:?}");
            assert!(!msg.contains('\n'), "{what}: not one line: {msg:?}");
            assert!(!out.exists(), "{what}: an OUT file was written");
        }
    }
    // Not a safetensors file; a file that does not exist; an integer tensor.
    let junk = tmp("junk");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    let e = eval::eval_file(&junk, &tmp("junk.out"), &Backend::Cpu).unwrap_err();
    assert!(matches!(&e, Error::File { path, .. } if path.ends_with("-junk")), "{e:?}");
    assert!(e.to_string().contains("not a safetensors file"), "{e}");
    let e = eval::eval_file(&tmp("absent"), &tmp("absent.out"), &Backend::Cpu).unwrap_err();
    assert!(matches!(&e, Error::File { path, .. } if path.ends_with("-absent")), "{e:?}");
    assert!(e.to_string().contains("cannot read"), "{e}");
    let ints = tmp("ints");
    let data = vec![0u8; 12];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![3], &data).unwrap();
    let meta: HashMap<String, String> = [("op".to_string(), "activation".to_string())].into();
    std::fs::write(&ints, safetensors::serialize([("input", view)], Some(meta)).unwrap()).unwrap();
    let e = eval::eval_file(&ints, &tmp("ints.out"), &Backend::Cpu).unwrap_err();
    assert!(matches!(&e, Error::File { path, .. } if path.ends_with("-ints")), "{e:?}");
    assert!(e.to_string().contains("I32"), "{e}");
}

/// The binary prints one line and exits non-zero on a malformed case.
#[test]
fn cli_eval_error_is_one_line() {
    let path = write_case(
        "cli",
        &[("op", "conv2d"), ("groups", "5")],
        &[("input", vec![1, 2, 5, 5]), ("weight", vec![3, 2, 3, 3])],
    );
    let out =
        crate::common::vcortex(&["eval", path.to_str().unwrap(), "-o", tmp("cli.out").to_str().unwrap(), "--cpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(err.contains("groups"), "{err}");
    assert!(!tmp("cli.out").exists());
}

fn param_name(e: &Error) -> &str {
    match e {
        Error::Param { name, .. } => name,
        _ => "",
    }
}

/// Sizes from a config are checked before anything is allocated or computed (issue 12 item 4):
/// mdm.max_len of 2^59 panicked (an overflowing product), 2^64 − 1 on capacity, 10^8 aborted on a
/// 12.8 GB allocation and 10^7 computed for 33 s before refusing. Each is refused at once, naming
/// the field, through the library and through a Platypose config.
#[test]
fn mdm_sizes_are_refused_before_allocating() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use vcortex::models::mdm::{Mdm, MdmConfig};
    use vcortex::models::platypose::{Platypose, PlatyposeConfig};
    let sd = vcortex::io::read_weights(&crate::common::data_dir("mdm").join("weights.safetensors")).unwrap().tensors;
    let base = MdmConfig { features: 51, latent: 32, heads: 4, layers: 2, max_len: 64 };
    let cases: Vec<(MdmConfig, &str)> = vec![
        (MdmConfig { max_len: 1 << 59, ..base }, "mdm.max_len"),
        (MdmConfig { max_len: usize::MAX, ..base }, "mdm.max_len"),
        (MdmConfig { max_len: 100_000_000, ..base }, "mdm.max_len"),
        (MdmConfig { max_len: 10_000_000, ..base }, "mdm.max_len"),
        (MdmConfig { max_len: 1, ..base }, "mdm.max_len"),
        (MdmConfig { latent: usize::MAX, ..base }, "mdm.latent"),
        (MdmConfig { latent: 0, ..base }, "mdm.latent"),
        (MdmConfig { heads: 0, ..base }, "mdm.heads"),
        (MdmConfig { heads: usize::MAX, ..base }, "mdm.heads"),
        (MdmConfig { layers: 1 << 40, ..base }, "mdm.layers"),
        (MdmConfig { features: 0, ..base }, "mdm.features"),
        (MdmConfig { features: usize::MAX, ..base }, "mdm.features"),
    ];
    for (cfg, field) in cases {
        let t0 = std::time::Instant::now();
        let e = catch_unwind(AssertUnwindSafe(|| Mdm::load(ctx(), &sd, cfg)))
            .unwrap_or_else(|_| panic!("{cfg:?}: Mdm::load panicked"))
            .err()
            .unwrap_or_else(|| panic!("{cfg:?} accepted"));
        assert_eq!(param_name(&e), field, "{cfg:?}: {e}");
        let json = format!(
            r#"{{"mdm": {{"features": {}, "latent": {}, "heads": {}, "layers": {}, "max_len": {}}}}}"#,
            cfg.features, cfg.latent, cfg.heads, cfg.layers, cfg.max_len
        );
        let r = catch_unwind(AssertUnwindSafe(|| {
            PlatyposeConfig::from_json(&json).and_then(|c| Platypose::new(ctx(), &sd, c).map(|_| ()))
        }));
        let e = r.unwrap_or_else(|_| panic!("{json}: Platypose::new panicked")).expect_err(&json);
        assert_eq!(param_name(&e), field, "{json}: {e}");
        assert!(!e.to_string().contains('\n'));
        assert!(t0.elapsed().as_secs_f64() < 2.0, "{cfg:?}: {:?} before refusing", t0.elapsed());
    }
    // A sampler whose training steps pass the table is refused before its schedule is built.
    let t0 = std::time::Instant::now();
    let e = PlatyposeConfig::from_json(
        r#"{"mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64}, "train_steps": 1000000000000}"#,
    )
    .unwrap()
    .schedule()
    .unwrap_err();
    assert_eq!(param_name(&e), "train_steps", "{e}");
    assert!(t0.elapsed().as_secs_f64() < 0.5);
    // The tokens a sampler needs: train_steps of them, however long the table (5000: MDM's own).
    let cfg = PlatyposeConfig::from_json(
        r#"{"mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 5000}, "train_steps": 50}"#,
    )
    .unwrap();
    Platypose::new(ctx(), &sd, cfg).unwrap();
}

/// Sensorium and flow configs bound every size by name (a product of them cannot overflow).
#[test]
fn sensorium_and_flow_configs_refuse_huge_sizes() {
    use vcortex::models::flow::{FlowConfig, LayerConfig};
    use vcortex::models::{Flow, SensoriumConfig};
    let dir = crate::common::data_dir("sensorium");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let sd = vcortex::io::read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
    for (field, v) in [
        ("hidden_kern", u64::MAX),
        ("hidden_dilation", 1 << 62),
        ("hidden_channels", 1 << 40),
        ("input_kern", u64::MAX),
        ("layers", 1 << 50),
        ("stride", u64::MAX),
    ] {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["core"][field] = v.into();
        let cfg = SensoriumConfig::from_json(&json.to_string()).unwrap_err();
        assert_eq!(param_name(&cfg), format!("core.{field}"), "{cfg}");
        let cfg: SensoriumConfig = serde_json::from_value(json).unwrap();
        let r = std::panic::catch_unwind(|| vcortex::models::Sensorium::from_state_dict(cfg, sd.clone()));
        let e = r.unwrap_or_else(|_| panic!("core.{field} = {v}: the loader panicked")).err().unwrap();
        assert_eq!(param_name(&e), format!("core.{field}"), "{e}");
    }
    // A zero size or neuron count is refused by its own field (the sizes were "core.channels" and
    // "core" for two and five fields at once).
    for field in [
        "layers",
        "input_channels",
        "hidden_channels",
        "input_kern",
        "hidden_kern",
        "hidden_dilation",
        "stride",
        "input_stride",
    ] {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["core"][field] = 0.into();
        let e = SensoriumConfig::from_json(&json.to_string()).unwrap_err();
        assert_eq!(param_name(&e), format!("core.{field}"), "{e}");
    }
    for neurons in [0, 1u64 << 40] {
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["readouts"]["sessB"]["neurons"] = neurons.into();
        let e = SensoriumConfig::from_json(&json.to_string()).unwrap_err();
        assert_eq!(param_name(&e), "readouts.sessB.neurons", "{e}");
    }
    let cfg = FlowConfig { features: 3, layers: vec![LayerConfig::Spline { bins: usize::MAX, tail_bound: 1.0 }] };
    let e = std::panic::catch_unwind(|| Flow::from_state_dict(cfg, Default::default()))
        .expect("the flow loader panicked")
        .err()
        .unwrap();
    assert_eq!(param_name(&e), "layers[0].bins", "{e}");
}

/// A tiny flow state dict (ActNorm, affine coupling) for the loader tests.
fn small_flow() -> (vcortex::models::flow::FlowConfig, std::collections::BTreeMap<String, HostTensor>) {
    use vcortex::models::flow::{FlowConfig, LayerConfig};
    let cfg = FlowConfig { features: 3, layers: vec![LayerConfig::Actnorm, LayerConfig::Affine] };
    let mut rng = vcortex::rng::SplitMix::new(5);
    let mut sd = std::collections::BTreeMap::new();
    let mut put = |k: &str, shape: Vec<usize>| {
        let n = shape.iter().product();
        sd.insert(k.to_string(), HostTensor::new(shape, rng.vec(n, -0.5, 0.5)));
    };
    put("layers.0.log_scale", vec![3]);
    put("layers.0.bias", vec![3]);
    put("layers.1.net.0.weight", vec![4, 2]);
    put("layers.1.net.0.bias", vec![4]);
    put("layers.1.net.out.weight", vec![2, 4]);
    put("layers.1.net.out.bias", vec![2]);
    sd.insert("layers.1.mask".into(), HostTensor::new(vec![3], vec![0.0, 1.0, 0.0]));
    (cfg, sd)
}

/// Every loader refuses a NaN or an Inf in any weight, naming the key (issue 12 item 5: the MDM
/// loader accepted a NaN in its timestep embedding and wrote 1,632 NaN samples): all models load
/// through models::StateDict's one check.
#[test]
fn every_loader_refuses_non_finite_weights() {
    use std::collections::BTreeMap;
    use vcortex::models::mdm::{Mdm, MdmConfig};
    use vcortex::models::{Cgnf, CgnfConfig, Flow, Sensorium, SensoriumConfig};
    let data = crate::common::data_dir;
    let weights = |d: &str| vcortex::io::read_weights(&data(d).join("weights.safetensors")).unwrap().tensors;
    type Loader = Box<dyn Fn(BTreeMap<String, HostTensor>) -> vcortex::Result<()>>;
    let mdm_cfg = MdmConfig { features: 51, latent: 32, heads: 4, layers: 2, max_len: 64 };
    let s_cfg =
        SensoriumConfig::from_json(&std::fs::read_to_string(data("sensorium").join("config.json")).unwrap()).unwrap();
    let c_cfg = CgnfConfig::from_json(&std::fs::read_to_string(data("cgnf").join("config.json")).unwrap()).unwrap();
    let (f_cfg, f_sd) = small_flow();
    let models: Vec<(&str, BTreeMap<String, HostTensor>, Loader)> = vec![
        ("mdm", weights("mdm"), Box::new(move |sd| Mdm::load(ctx(), &sd, mdm_cfg).map(|_| ()))),
        (
            "sensorium",
            weights("sensorium"),
            Box::new(move |sd| Sensorium::from_state_dict(s_cfg.clone(), sd).map(|_| ())),
        ),
        ("cgnf", weights("cgnf"), Box::new(move |sd| Cgnf::from_state_dict(c_cfg.clone(), sd).map(|_| ()))),
        ("flow", f_sd, Box::new(move |sd| Flow::from_state_dict(f_cfg.clone(), sd).map(|_| ()))),
    ];
    for (model, sd, load) in &models {
        load(sd.clone()).unwrap_or_else(|e| panic!("{model}: the clean weights were refused: {e}"));
        let mut tried = 0;
        for (i, key) in sd.keys().enumerate() {
            // Buffers that are never read (counters, index buffers) may hold anything.
            if key.ends_with("num_batches_tracked") || key.ends_with("_features") && *model == "cgnf" {
                continue;
            }
            let bad = if i % 2 == 0 { f32::NAN } else { f32::NEG_INFINITY };
            let mut nan = sd.clone();
            let t = nan.get_mut(key).unwrap();
            let at = t.data.len() / 2;
            t.data[at] = bad;
            let e = load(nan).err().unwrap_or_else(|| panic!("{model}: {bad} in {key:?} was accepted"));
            let msg = e.to_string();
            assert!(msg.contains(key.as_str()) && msg.contains("non-finite"), "{model}: {key}: {msg}");
            tried += 1;
        }
        assert!(tried >= 6, "{model}: only {tried} keys");
    }
}

/// MDM weights the config cannot place (a third layer for a two-layer config) are refused, not
/// silently ignored.
#[test]
fn mdm_refuses_weights_its_config_cannot_place() {
    use vcortex::models::mdm::{Mdm, MdmConfig};
    let mut sd =
        vcortex::io::read_weights(&crate::common::data_dir("mdm").join("weights.safetensors")).unwrap().tensors;
    let cfg = MdmConfig { features: 51, latent: 32, heads: 4, layers: 1, max_len: 64 };
    let e = refused_weights(Mdm::load(ctx(), &sd, cfg), "weights").to_string();
    assert!(e.contains("unexpected key") && e.contains("encoder.layers.1."), "{e}");
    sd.insert("sequence_pos_encoder.pe".into(), HostTensor::new(vec![4, 1, 32], vec![0.0; 128]));
    Mdm::load(ctx(), &sd, MdmConfig { layers: 2, ..cfg }).expect("a checkpoint's pe buffer is accepted");
    let mut wide = sd.clone();
    wide.insert("encoder.layers.0.linear1.weight".into(), HostTensor::new(vec![64, 31], vec![0.0; 64 * 31]));
    let e = refused_weights(Mdm::load(ctx(), &wide, MdmConfig { layers: 2, ..cfg }), "weights").to_string();
    assert!(e.contains("linear1.weight") && e.contains("[64, 31]"), "{e}");
}

/// Finite cameras and observations that drive the f32 projection out of range are refused with
/// the reason (issue 12 item 6: k1 = 1e30 or fx = −3.4e38 made every Platypose sample NaN with exit
/// 0); the golden cameras pass. check_samples names a non-finite sample.
#[test]
fn extreme_cameras_and_observations_are_refused() {
    use vcortex::models::platypose::{cameras_from, check_samples, observations_from};
    use vcortex::ops::Observations;
    let f = vcortex::io::read_safetensors(&crate::common::data_dir("platypose").join("cameras.safetensors")).unwrap();
    let t = f.tensors;
    observations_from(ctx(), &t).expect("the golden observations");
    let cams = cameras_from(&t).unwrap();
    let kp = vec![0.1f32; 2 * 8 * 17 * 2];
    let edit = |name: &str, i: usize, v: f32| {
        let mut t = t.clone();
        t.get_mut(name).unwrap().data[i] = v;
        observations_from(ctx(), &t).err().unwrap_or_else(|| panic!("{name}[{i}] = {v:e} was accepted"))
    };
    for (name, i, v, field) in [
        ("radial_k1_k2_k3", 0, 1e30, "intrinsics/distortion"),
        ("radial_k1_k2_k3", 5, -1e20, "intrinsics/distortion"),
        // The fuzz test's finding: k3 = 1e6 passed a 1e12 limit and every sample came out NaN.
        ("radial_k1_k2_k3", 2, 1e6, "intrinsics/distortion"),
        ("intrinsics_fx_fy_cx_cy_skew", 0, -3.4e38, "intrinsics/distortion"),
        ("intrinsics_fx_fy_cx_cy_skew", 3, 1e15, "intrinsics/distortion"),
        ("tangential_p1_p2", 1, 1e13, "intrinsics/distortion"),
        ("R", 0, 3.0, "rotation"),
        ("t", 2, 1e9, "centre"),
        ("x2d", 7, 1e30, "keypoints"),
        ("weights", 3, -1.0, "weights"),
        ("weights", 3, 1e20, "weights"),
        ("root", 4, -1e13, "root"),
    ] {
        let e = edit(name, i, v);
        assert_eq!(param_name(&e), field, "{name}[{i}] = {v:e}: {e}");
        assert!(!e.to_string().contains('\n'));
    }
    // The same through Observations::new directly.
    let mut c = cams[0];
    c.radial[0] = 1e30;
    let e = Observations::new(ctx(), vec![c], &kp[..8 * 17 * 2], None, None, 8, 17).err().unwrap();
    assert!(is_param(&e, "camera", "intrinsics/distortion"), "{e:?}");
    assert!(e.to_string().contains("k1") || e.to_string().contains("1e30") || e.to_string().contains("past"), "{e}");
    // A sampling result with a NaN in sample 2 of 3 is named.
    let mut x = vec![0.5f32; 3 * 4 * 6];
    x[2 * 24 + 7] = f32::NAN;
    let e = check_samples(&x, &[3, 4, 6]).unwrap_err();
    assert!(is_param(&e, "platypose", "samples"), "{e:?}");
    assert!(e.to_string().contains("sample 2 of 3") && e.to_string().contains("frame 1, feature 1"), "{e}");
    check_samples(&vec![0.5f32; 3 * 4 * 6], &[3, 4, 6]).unwrap();
}

/// A spline's tail bound past 1e6 (3.4e38 made the GPU density differ from the reference's: the
/// fuzz test's finding) is refused by name; 1e6 itself still matches the reference.
#[test]
fn flow_refuses_a_tail_bound_past_f32() {
    use vcortex::models::flow::{FlowConfig, LayerConfig};
    use vcortex::models::Flow;
    let (_, mut sd) = small_flow();
    let mut rng = vcortex::rng::SplitMix::new(8);
    sd.insert("layers.2.mask".into(), HostTensor::new(vec![3], vec![1.0, 0.0, 0.0]));
    sd.insert("layers.2.net.0.weight".into(), HostTensor::new(vec![4, 2], rng.vec(8, -0.5, 0.5)));
    sd.insert("layers.2.net.0.bias".into(), HostTensor::new(vec![4], rng.vec(4, -0.5, 0.5)));
    sd.insert("layers.2.net.out.weight".into(), HostTensor::new(vec![11, 4], rng.vec(44, -0.5, 0.5)));
    sd.insert("layers.2.net.out.bias".into(), HostTensor::new(vec![11], rng.vec(11, -0.5, 0.5)));
    let cfg = |b: f32| FlowConfig {
        features: 3,
        layers: vec![LayerConfig::Actnorm, LayerConfig::Affine, LayerConfig::Spline { bins: 4, tail_bound: b }],
    };
    for b in [3.4e38, 1e30, 1.5e6] {
        let e = Flow::from_state_dict(cfg(b), sd.clone()).err().unwrap();
        assert_eq!(param_name(&e), "layers[2].tail_bound", "{e}");
    }
    for b in [1e6f32, 2.0] {
        let mut f = Flow::from_state_dict(cfg(b), sd.clone()).unwrap();
        f.upload(ctx()).unwrap();
        let x = rng.vec(4 * 3, -1.0, 1.0);
        let want = f.reference_log_prob(&x, 4).unwrap();
        let got = crate::common::run1(|rec| f.record_log_prob(rec, &up(&x, &[4, 3])).map(|(_, lp)| lp));
        crate::common::assert_close(&got, &want, 1e-3, 1e-3, &format!("density, tail bound {b}"));
    }
}

/// The CPU backend of eval refuses outputs past its budget before allocating (a padding of 65,536
/// asked the reference for 206 GB and aborted), and a window far wider than the image costs no
/// more than the image (the reference looped over 4·10^9 skipped taps per element).
#[test]
fn eval_cpu_refuses_huge_outputs_and_clips_windows() {
    let conv = write_case(
        "cpu-pad",
        &[("op", "conv2d"), ("padding", "65536")],
        &[("input", vec![1, 2, 5, 5]), ("weight", vec![3, 2, 3, 3])],
    );
    let out = tmp("cpu-pad.out");
    let e = eval::eval_file(&conv, &out, &Backend::Cpu).unwrap_err();
    assert!(
        matches!(&e, Error::TooLarge { op: "conv2d", what, .. } if what.contains("CPU reference's output")),
        "{e:?}"
    );
    assert!(!out.exists());
    let dn = write_case(
        "cpu-window",
        &[("op", "divisive_norm"), ("sum_window", "65535"), ("sup_window", "65537,3")],
        &[("input", vec![1, 3, 6, 6])],
    );
    let t0 = std::time::Instant::now();
    let cpu = eval::eval_file(&dn, &tmp("cpu-window.out"), &Backend::Cpu).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let gpu = eval::eval_file(&dn, &tmp("gpu-window.out"), &Backend::Gpu(ctx())).unwrap();
    for ((n, c), (_, g)) in cpu.iter().zip(&gpu) {
        crate::common::assert_close(&g.data, &c.data, 1e-4, 1e-4, n);
    }
    assert!(secs < 1.0, "{secs} s for a 6x6 image");
}

/// A size past a limit says what it counts: a batch of more products than the device has
/// workgroups in a dimension needs that many workgroups (not "bytes", which the message said
/// before for every limit).
#[test]
fn too_large_names_its_unit() {
    let max = ctx().limits().max_compute_workgroups_per_dimension as usize;
    let n = max + 5;
    let (a, b) = (up(&vec![1.0; n], &[n, 1, 1]), up(&vec![1.0; n], &[n, 1, 1]));
    let mut rec = ctx().recorder();
    let e = vcortex::ops::matmul(&mut rec, &a, &b).err().expect("a batch past the workgroup limit is refused");
    match &e {
        Error::TooLarge { unit, amount, .. } => {
            assert_eq!((*unit, *amount), ("workgroups", n as u64), "{e}");
            let said = format!("needs {n} workgroups, past the limit of {max} workgroups");
            assert!(e.to_string().contains(&said), "{e}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// A model file that does not fit is named, with the key or field, and is not called a case file:
/// weights problems name the weights file, config problems the config file.
#[test]
fn loader_errors_name_their_file_not_a_case_file() {
    use vcortex::models::Sensorium;
    let data = crate::common::data_dir("sensorium");
    let (w, c) = (data.join("weights.safetensors"), data.join("config.json"));
    let dir = std::env::temp_dir().join(format!("vcortex-loader-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut sd = vcortex::io::read_weights(&w).unwrap().tensors;
    sd.remove("core.features.layer0.conv.weight").expect("the golden has the key");
    let bad_w = dir.join("w.safetensors");
    write_safetensors(&bad_w, &sd.into_iter().collect::<Vec<_>>(), &HashMap::new()).unwrap();
    let e = Sensorium::load(ctx(), &bad_w, &c).err().expect("a missing key is refused");
    let said = e.to_string();
    assert!(matches!(&e, Error::File { path, .. } if *path == bad_w.display().to_string()), "{e:?}");
    assert!(said.contains("core.features.layer0.conv.weight") && !said.contains("case file"), "{said}");
    let text = std::fs::read_to_string(&c).unwrap().replacen('{', r#"{"bogus": 1, "#, 1);
    let bad_c = dir.join("c.json");
    std::fs::write(&bad_c, text).unwrap();
    let e = Sensorium::load(ctx(), &w, &bad_c).err().expect("an unknown field is refused");
    let said = e.to_string();
    assert!(matches!(&e, Error::File { path, .. } if *path == bad_c.display().to_string()), "{e:?}");
    assert!(said.contains("bogus") && !said.contains("case file"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every model config reads its own `"kind"` (the CLI picks the loader by it and hands the file
/// over as it is): its own kind is accepted and changes nothing, another is refused naming
/// `kind`, and a config without the field loads as before.
#[test]
fn model_configs_accept_their_own_kind() {
    use crate::common::{data_dir, refused_config};
    use vcortex::models::{platypose::PlatyposeConfig, CgnfConfig, CotrainConfig, FlowConfig, SensoriumConfig};
    fn check<T: PartialEq + std::fmt::Debug>(text: &str, kind: &str, parse: impl Fn(&str) -> vcortex::Result<T>) {
        let mut v: serde_json::Value = serde_json::from_str(text).unwrap();
        v.as_object_mut().unwrap().remove("kind");
        let plain = parse(&v.to_string()).unwrap();
        v.as_object_mut().unwrap().insert("kind".into(), kind.into());
        assert_eq!(parse(&v.to_string()).unwrap(), plain, "\"kind\": {kind:?} changed the config");
        v.as_object_mut().unwrap().insert("kind".into(), "another".into());
        let e = refused_config(parse(&v.to_string()), "kind");
        assert!(e.to_string().contains(&format!("expected \"{kind}\"")), "{e}");
    }
    let read = |model: &str, file: &str| std::fs::read_to_string(data_dir(model).join(file)).unwrap();
    check(&read("sensorium", "config.json"), "sensorium", SensoriumConfig::from_json);
    check(&read("cotrain", "config.json"), "cotrain", CotrainConfig::from_json);
    check(&read("cgnf", "config.json"), "cgnf", CgnfConfig::from_json);
    let example = |model: &str| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(root.join("examples/data").join(model).join("config.json")).unwrap()
    };
    check(&example("platypose"), "platypose", PlatyposeConfig::from_json);
    check(&example("flow"), "flow", FlowConfig::from_json);
}
