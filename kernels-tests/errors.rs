//! Bad input gets a typed error with a clear message: never a panic, a hang or a silent answer;
//! a refused call records nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::common::{ctx, up};
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
    assert!(matches!(e, Error::Param { .. }) && e.to_string().contains("not divisible by groups"), "{e}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 2, 3, 3], d);
    assert!(matches!(e, Error::Shape { .. }) && e.to_string().contains("weight"), "{e}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 3, 3, 3], d.with_stride(0, 1));
    assert!(e.to_string().contains("stride"), "{e}");
    let e = conv_err(&[1, 3, 5, 5], &[4, 3, 3, 3], d.with_dilation(1, 0));
    assert!(e.to_string().contains("dilation"), "{e}");
    let e = conv_err(&[1, 3, 4, 4], &[4, 3, 5, 5], d);
    assert!(e.to_string().contains("padded input"), "{e}");
    let e = conv_err(&[1, 3, 4, 4], &[4, 3, 3, 3], d.with_dilation(2, 2));
    assert!(e.to_string().contains("padded input"), "{e}");
    let e = conv_err(&[3, 5, 5], &[4, 3, 3, 3], d);
    assert!(e.to_string().contains("[N, C, H, W]"), "{e}");
    let e = conv_err(&[1, 4, 5, 5], &[4, 4, 3, 3], d.with_algo(ops::ConvAlgo::Depthwise));
    assert!(e.to_string().contains("depthwise"), "{e}");
    let e = conv_err(&[1, 4, 5, 5], &[4, 4, 3, 3], d.with_algo(ops::ConvAlgo::OneByOne));
    assert!(e.to_string().contains("1x1"), "{e}");
    // Bias of the wrong length.
    let (x, w, b) = (up(&[0.0; 25], &[1, 1, 5, 5]), up(&[0.0; 18], &[2, 1, 3, 3]), up(&[0.0; 3], &[3]));
    let e = ops::conv2d(&mut ctx().recorder(), &x, &w, Some(&b), &d, &Epilogue::default()).unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    // Scale without shift.
    let s = up(&[1.0; 2], &[2]);
    let epi = Epilogue { scale: Some(&s), shift: None, act: Activation::Identity };
    assert!(ops::conv2d(&mut ctx().recorder(), &x, &w, None, &d, &epi).is_err());
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
    assert!(ops::attention(&mut rec, &big, &big, &big, 70_000).is_err());
    assert_eq!(rec.dispatch_count(), before, "a refused attention left dispatches behind");
    // A flow given the wrong width, after nothing; a divisive norm with a bad gamma.
    assert!(ops::divisive_norm(
        &mut rec,
        &up(&[0.0; 2 * 3 * 4 * 4], &[2, 3, 4, 4]),
        Some(&up(&[1.0; 2], &[2])),
        None,
        &Default::default()
    )
    .is_err());
    assert_eq!(rec.dispatch_count(), before);
    rec.submit().unwrap();
    let e = ctx().recorder().copy(&x, &x.reshape(&[6, 12]).unwrap()).unwrap_err();
    assert!(e.to_string().contains("shares"), "{e}");
}

#[test]
fn zero_sized_and_oversized_tensors_are_refused() {
    let e = Tensor::from_f32(ctx(), &[], &[0, 3]).unwrap_err();
    assert!(e.to_string().contains("zero-sized"), "{e}");
    let e = Tensor::from_f32(ctx(), &[1.0, 2.0], &[3]).unwrap_err();
    assert!(matches!(e, Error::DataLength { .. }), "{e}");
    // Past the device's storage binding limit: refused before any allocation.
    let n = (ctx().max_tensor_bytes() / 4 + 1) as usize;
    let e = Tensor::empty(ctx(), &[n], vcortex::DType::F32).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }) && e.to_string().contains("max_storage_buffer_binding_size"), "{e}");
    let e = Tensor::empty(ctx(), &[usize::MAX, 2], vcortex::DType::F32).unwrap_err();
    assert!(matches!(e, Error::Shape { .. }), "{e}");
}

#[test]
fn other_ops_refuse_bad_input() {
    let x = up(&[0.0; 12], &[3, 4]);
    let mut rec = ctx().recorder();
    assert!(ops::linear(&mut rec, &x, &up(&[0.0; 10], &[2, 5]), None, Activation::Identity).is_err());
    assert!(ops::matmul(&mut rec, &x, &up(&[0.0; 10], &[5, 2])).is_err());
    assert!(ops::layer_norm(&mut rec, &x, 3, None, None, 1e-5, Activation::Identity).is_err());
    assert!(ops::layer_norm(&mut rec, &x, 1, None, None, f32::NAN, Activation::Identity).is_err());
    assert!(ops::layer_norm(&mut rec, &x, 1, Some(&up(&[1.0; 3], &[3])), None, 1e-5, Activation::Identity).is_err());
    let c4 = up(&[1.0; 4], &[4]);
    let c3 = up(&[1.0; 3], &[3]);
    assert!(ops::batch_norm(&mut rec, &x, &c4, &c4, &c4, &c3, 1e-5, Activation::Identity).is_err());
    assert!(ops::batch_norm(&mut rec, &x, &c4, &c4, &c4, &c4, f32::INFINITY, Activation::Identity).is_err());
    assert!(ops::activation(&mut rec, &x, Activation::Softplus { beta: 0.0, threshold: 20.0 }).is_err());
    assert!(ops::activation(&mut rec, &x, Activation::Softplus { beta: 1.0, threshold: f32::NAN }).is_err());
    assert_eq!(rec.dispatch_count(), 0);
    assert!(Activation::parse("swish", 1.0, 20.0).is_err());
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
        ("unknown op", write_case("a", &[("op", "conv3d")], &conv_t()), "unknown op"),
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
    assert!(e.to_string().contains("not a safetensors file"), "{e}");
    let e = eval::eval_file(&tmp("absent"), &tmp("absent.out"), &Backend::Cpu).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
    let ints = tmp("ints");
    let data = vec![0u8; 12];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![3], &data).unwrap();
    let meta: HashMap<String, String> = [("op".to_string(), "activation".to_string())].into();
    std::fs::write(&ints, safetensors::serialize([("input", view)], Some(meta)).unwrap()).unwrap();
    let e = eval::eval_file(&ints, &tmp("ints.out"), &Backend::Cpu).unwrap_err();
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
