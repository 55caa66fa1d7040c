use std::sync::OnceLock;

use vcortex::{Context, Error, Recorder, Result, Tensor};

/// The shared device of the GPU tests (whatever adapter wgpu finds; lavapipe on CI).
pub fn ctx() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| {
        Context::new().unwrap_or_else(|e| panic!("the GPU tests need an adapter (a software one will do): {e}"))
    })
}

pub fn up(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_f32(ctx(), data, shape).expect("upload")
}

/// Records with `f`, submits once, reads the result back.
pub fn run1(f: impl FnOnce(&mut Recorder) -> Result<Tensor>) -> Vec<f32> {
    let mut rec = ctx().recorder();
    let y = f(&mut rec).expect("op refused valid input");
    let h = rec.read_back(&y);
    rec.submit().expect("submit").f32(h)
}

/// |got − want| ≤ atol + rtol·|want| everywhere (NaN fails).
#[track_caller]
pub fn assert_close(got: &[f32], want: &[f32], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w as f64).abs();
        let ok = err <= atol + rtol * (w as f64).abs();
        if !ok {
            panic!("{what}: element {i}: got {g}, want {w} (|err| {err:.3e}); {} elements", got.len());
        }
    }
}

/// Runs the `vcortex` binary with `args`.
pub fn vcortex(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_vcortex")).args(args).output().expect("run vcortex")
}

/// Writes named host tensors to a safetensors file (no metadata).
pub fn write_tensors(path: &std::path::Path, tensors: &[(&str, &vcortex::io::HostTensor)]) {
    let owned: Vec<(String, vcortex::io::HostTensor)> =
        tensors.iter().map(|(n, t)| (n.to_string(), (*t).clone())).collect();
    vcortex::io::write_safetensors(path, &owned, &Default::default()).expect("write tensors");
}

/// kernels-tests/data/<sub>: under `VCORTEX_TEST_DATA` when set (a test binary run away from its
/// checkout, as on a GPU machine), else under this crate's directory.
pub fn data_dir(sub: &str) -> std::path::PathBuf {
    let root = match std::env::var_os("VCORTEX_TEST_DATA") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/data"),
    };
    if sub.is_empty() {
        root
    } else {
        root.join(sub)
    }
}

/// The loop budget the shared device's recorders start with (`LOOP_BUDGET`, or less with
/// `VCORTEX_SHADER_CHECKS=full`).
pub fn budget() -> u64 {
    ctx().max_loop_budget()
}

/// Whether the kernels run with the trusted checks, the compile the full-budget edge cases of the
/// suite are measured for (with all checks the budget is smaller, so those edges split further).
pub fn trusted_checks() -> bool {
    ctx().shader_checks() == vcortex::ShaderChecks::Trusted
}

/// As [`assert_close`], with NaN and infinities: `got` is NaN exactly where `want` is, holds the
/// same infinities, and is finite and within atol + rtol·|want| elsewhere (a zero's sign is not
/// compared).
#[track_caller]
pub fn assert_close_nan(got: &[f32], want: &[f32], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() {
            g.is_nan()
        } else if w.is_infinite() {
            g == w
        } else {
            g.is_finite() && (g as f64 - w as f64).abs() <= atol + rtol * (w as f64).abs()
        };
        assert!(ok, "{what}: element {i}: got {g}, want {w}; {} elements", got.len());
    }
}

/// The error of a call that must be refused; panics (at the caller) if it was accepted.
#[track_caller]
pub fn refused<T>(r: Result<T>) -> Error {
    match r {
        Ok(_) => panic!("accepted input it must refuse"),
        Err(e) => e,
    }
}

/// Whether `e` is `Error::Param` of `op` naming the parameter `name`.
pub fn is_param(e: &Error, op: &str, name: &str) -> bool {
    matches!(e, Error::Param { op: o, name: n, .. } if *o == op && n == name)
}

/// Whether `e` is `Error::Shape` of `op` about the operand `what`.
pub fn is_shape(e: &Error, op: &str, what: &str) -> bool {
    matches!(e, Error::Shape { op: o, what: w, .. } if *o == op && w == what)
}

/// Refused with `Error::Param { op, name, .. }`: the check of that parameter, not another one.
#[track_caller]
pub fn refused_param<T>(r: Result<T>, op: &str, name: &str) -> Error {
    let e = refused(r);
    assert!(is_param(&e, op, name), "expected Param {{ op: {op:?}, name: {name:?} }}, got {e:?}");
    e
}

/// Refused with `Error::Shape { op, what, .. }`: the check of that operand, not another one.
#[track_caller]
pub fn refused_shape<T>(r: Result<T>, op: &str, what: &str) -> Error {
    let e = refused(r);
    assert!(is_shape(&e, op, what), "expected Shape {{ op: {op:?}, what: {what:?} }}, got {e:?}");
    e
}

/// Refused with `Error::DataLength { op, what, .. }`.
#[track_caller]
pub fn refused_length<T>(r: Result<T>, op: &str, what: &str) -> Error {
    let e = refused(r);
    assert!(
        matches!(&e, Error::DataLength { op: o, what: w, .. } if *o == op && w == what),
        "expected DataLength {{ op: {op:?}, what: {what:?} }}, got {e:?}"
    );
    e
}

/// Refused with `Error::TooLarge { op, what, .. }`.
#[track_caller]
pub fn refused_too_large<T>(r: Result<T>, op: &str, what: &str) -> Error {
    let e = refused(r);
    assert!(
        matches!(&e, Error::TooLarge { op: o, what: w, .. } if *o == op && w == what),
        "expected TooLarge {{ op: {op:?}, what: {what:?} }}, got {e:?}"
    );
    e
}

/// Refused with `Error::Weights` (weights that do not fit the config) whose message holds
/// `needle` (the key, say).
#[track_caller]
pub fn refused_weights<T>(r: Result<T>, needle: &str) -> Error {
    let e = refused(r);
    assert!(matches!(&e, Error::Weights(m) if m.contains(needle)), "expected Weights naming {needle:?}, got {e:?}");
    e
}

/// Refused with `Error::Config` (a malformed config or a field out of range) whose message holds
/// `needle` (the field, say).
#[track_caller]
pub fn refused_config<T>(r: Result<T>, needle: &str) -> Error {
    let e = refused(r);
    assert!(matches!(&e, Error::Config(m) if m.contains(needle)), "expected Config naming {needle:?}, got {e:?}");
    e
}

/// A lowered loop budget (16..64) and a row shape for the row-split paths (layer norm, softmax):
/// by `case % 4` a row within one slice, a few slices, exactly a whole number of slices
/// (256 · budget/2 elements each), or many with a ragged last one; 1 to 3 rows.
pub fn row_split_case(rng: &mut vcortex::rng::SplitMix, case: usize) -> (u64, usize, usize) {
    let budget = rng.range(16, 64) as u64;
    let len = match case % 4 {
        0 => rng.range(1, 300),
        1 => rng.range(1300, 3000),
        2 => 256 * (budget as usize / 2) * rng.range(1, 3),
        _ => rng.range(3000, 20000),
    };
    (budget, len, rng.range(1, 4))
}
