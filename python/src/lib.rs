//! `vcortex._vcortex`: the native half of the Python package. The public API (argument
//! conversion, PyTorch's keyword names, docstrings) is the pure-Python `vcortex/__init__.py`;
//! this module takes float32 C-contiguous numpy arrays, runs the engine with the GIL released,
//! and turns every engine error into a Python exception carrying the engine's message. A Rust
//! panic never crosses into Python: it is caught and raised as `InternalError`.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use vcortex::io::HostTensor;
use vcortex::runtime::adapter;
use vcortex::{Context, Error};

mod models;

pyo3::create_exception!(
    vcortex,
    VcortexError,
    PyValueError,
    "The engine refused an input: a shape, dtype, parameter, weight or config that does not fit. \
     The message is the engine's; `kind` is the engine's error variant (\"Shape\", \"Param\", \
     \"Weights\", ...), `op` the op or model that refused and `field` the argument it names, \
     where the variant has them."
);
pyo3::create_exception!(
    vcortex,
    DeviceError,
    PyRuntimeError,
    "No adapter, no device, or a failure reported by the GPU driver."
);
pyo3::create_exception!(
    vcortex,
    InternalError,
    PyRuntimeError,
    "A bug in vcortex (a Rust panic, caught before it reached Python). Please report it."
);

/// The variant name, op and named field of an engine error (for the exception's attributes).
fn describe(e: &Error) -> (&'static str, Option<String>, Option<String>) {
    match e {
        Error::NoAdapter(_) => ("NoAdapter", None, None),
        Error::AdapterNotFound { .. } => ("AdapterNotFound", None, None),
        Error::Device { .. } => ("Device", None, None),
        Error::Gpu { context, .. } => ("Gpu", Some(context.clone()), None),
        Error::Shape { op, what, .. } => ("Shape", Some(op.to_string()), Some(what.clone())),
        Error::Param { op, name, .. } => ("Param", Some(op.to_string()), Some(name.clone())),
        Error::TooLarge { op, what, .. } => ("TooLarge", Some(op.to_string()), Some(what.clone())),
        Error::Dtype { op, what, .. } => ("Dtype", Some(op.to_string()), Some(what.clone())),
        Error::DataLength { op, what, .. } => ("DataLength", Some(op.to_string()), Some(what.clone())),
        Error::MissingFeature(f) => ("MissingFeature", None, Some(f.to_string())),
        Error::File { path, .. } => ("File", None, Some(path.clone())),
        Error::Case(_) => ("Case", None, None),
        Error::Weights(_) => ("Weights", None, None),
        Error::Config(_) => ("Config", None, None),
        Error::Input(_) => ("Input", None, None),
        Error::UnknownOp(name, _) => ("UnknownOp", None, Some(name.clone())),
    }
}

/// An engine error as a Python exception: `DeviceError` for the adapter and the device,
/// `VcortexError` (a `ValueError`) for everything the engine refused.
pub(crate) fn py_err(e: Error) -> PyErr {
    let (kind, op, field) = describe(&e);
    let msg = e.to_string();
    let err = match kind {
        "NoAdapter" | "AdapterNotFound" | "Device" | "Gpu" | "MissingFeature" => DeviceError::new_err(msg),
        _ => VcortexError::new_err(msg),
    };
    Python::with_gil(|py| {
        let v = err.value(py);
        let _ = v.setattr("kind", kind);
        let _ = v.setattr("op", op);
        let _ = v.setattr("field", field);
    });
    err
}

fn panic_err(p: Box<dyn Any + Send>) -> PyErr {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    InternalError::new_err(format!("internal error in vcortex (a bug; please report it): {what}"))
}

/// Runs engine work with the GIL released; an engine error becomes its exception and a panic
/// an `InternalError`.
pub(crate) fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> vcortex::Result<T> + Send) -> PyResult<T> {
    match py.allow_threads(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(py_err(e)),
        Err(p) => Err(panic_err(p)),
    }
}

/// Runs host-side work that holds the GIL; a panic becomes an `InternalError`.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_err(p)))
}

/// The data of a float32 array, which must be C-contiguous (the Python layer converts).
pub(crate) fn slice<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>, what: &str) -> PyResult<&'a [f32]> {
    a.as_slice().map_err(|_| PyValueError::new_err(format!("{what}: the array must be C-contiguous")))
}

/// A float32 array copied into a host tensor.
pub(crate) fn host(a: &Bound<'_, PyAny>, what: &str) -> PyResult<HostTensor> {
    let arr: PyReadonlyArrayDyn<f32> = a
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{what}: expected a float32 numpy array, got {}", type_name(a))))?;
    let data = slice(&arr, what)?.to_vec();
    Ok(HostTensor::new(arr.shape().to_vec(), data))
}

/// A dict of name → float32 array as host tensors.
pub(crate) fn host_dict(d: &Bound<'_, PyAny>, what: &str) -> PyResult<BTreeMap<String, HostTensor>> {
    let d = d.downcast::<PyDict>().map_err(|_| PyTypeError::new_err(format!("{what}: expected a dict of arrays")))?;
    let mut out = BTreeMap::new();
    for (k, v) in d.iter() {
        let k: String = k.extract().map_err(|_| PyTypeError::new_err(format!("{what}: keys must be strings")))?;
        let t = host(&v, &format!("{what}[{k:?}]"))?;
        out.insert(k, t);
    }
    Ok(out)
}

fn type_name(a: &Bound<'_, PyAny>) -> String {
    a.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A host vector as a numpy array of `shape` (no copy: numpy takes the vector).
pub(crate) fn array<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyArray1::from_vec(py, data).reshape(shape.to_vec())?.into_any())
}

/// Named host tensors as a dict of numpy arrays.
pub(crate) fn array_dict<'py>(py: Python<'py>, outs: Vec<(String, HostTensor)>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, t) in outs {
        let shape = t.shape.clone();
        d.set_item(k, array(py, t.data, &shape)?)?;
    }
    Ok(d)
}

/// A device and everything that lives as long as it (`vcortex.Context`).
#[pyclass(name = "Context", module = "vcortex._vcortex", frozen)]
pub struct PyContext {
    pub(crate) ctx: Arc<Context>,
}

fn adapter_dict<'py>(py: Python<'py>, s: &adapter::AdapterSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &s.name)?;
    d.set_item("backend", &s.backend)?;
    d.set_item("device_type", &s.device_type)?;
    d.set_item("driver", &s.driver)?;
    Ok(d)
}

#[pymethods]
impl PyContext {
    #[new]
    #[pyo3(signature = (adapter = None))]
    fn new(py: Python<'_>, adapter: Option<String>) -> PyResult<Self> {
        let ctx = compute(py, move || {
            let instance = adapter::instance();
            let wanted = adapter.or_else(|| std::env::var("VCORTEX_ADAPTER").ok());
            Context::with_adapter(adapter::choose_named(adapter::enumerate(&instance), wanted)?)
        })?;
        Ok(PyContext { ctx: Arc::new(ctx) })
    }

    /// The adapter, its optional features, its limits, the buffer pool and the shader checks.
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guarded(|| {
            let c = &self.ctx;
            let d = adapter_dict(py, c.adapter())?;
            let caps = c.capabilities();
            let f = PyDict::new(py);
            f.set_item("timestamps", caps.timestamps)?;
            f.set_item("shader_f16", caps.shader_f16)?;
            f.set_item("subgroups", caps.subgroups)?;
            d.set_item("features", f)?;
            let l = c.limits();
            let lim = PyDict::new(py);
            lim.set_item("max_buffer_size", l.max_buffer_size)?;
            lim.set_item("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size)?;
            lim.set_item("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage)?;
            lim.set_item("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size)?;
            lim.set_item("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup)?;
            lim.set_item("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension)?;
            d.set_item("limits", lim)?;
            let p = c.pool_stats();
            let pool = PyDict::new(py);
            pool.set_item("budget_bytes", p.budget)?;
            pool.set_item("idle_bytes", p.idle_bytes)?;
            pool.set_item("live_bytes", p.live_bytes)?;
            pool.set_item("allocations", p.allocations)?;
            pool.set_item("reuses", p.reuses)?;
            d.set_item("pool", pool)?;
            let checks = match c.shader_checks() {
                vcortex::ShaderChecks::Full => "full",
                vcortex::ShaderChecks::Trusted => "trusted",
            };
            d.set_item("shader_checks", checks)?;
            Ok(d)
        })
    }

    /// Frees the idle buffers of the pool.
    fn trim(&self) {
        self.ctx.trim_pool();
    }

    fn __repr__(&self) -> String {
        format!("vcortex.Context({})", self.ctx.adapter())
    }
}

/// Every adapter wgpu sees, as dicts (name, backend, device_type, driver).
#[pyfunction]
fn adapters<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
    let seen = compute(py, || {
        let instance = adapter::instance();
        Ok(adapter::enumerate(&instance).iter().map(|a| adapter::AdapterSummary::of(&a.get_info())).collect::<Vec<_>>())
    })?;
    let l = PyList::empty(py);
    for s in &seen {
        l.append(adapter_dict(py, s)?)?;
    }
    Ok(l)
}

/// Runs one op of the engine's op table (the ops of `vcortex eval`) in one submit: `tensors`
/// maps the op's tensor names to float32 arrays, `params` its parameter names to strings.
#[pyfunction]
fn run_op<'py>(
    py: Python<'py>,
    ctx: &PyContext,
    op: &str,
    tensors: &Bound<'py, PyAny>,
    params: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    guarded(|| {
        let tensors = host_dict(tensors, op)?;
        let mut meta: HashMap<String, String> = HashMap::new();
        for (k, v) in params.iter() {
            let k: String = k.extract()?;
            let v = v.downcast::<PyString>().map_err(|_| PyTypeError::new_err(format!("{op}: parameter {k}")))?;
            meta.insert(k, v.extract::<String>()?);
        }
        meta.insert("op".into(), op.to_string());
        let ctx = self_ctx(ctx);
        let outs = compute(py, move || {
            let (case, spec) = vcortex::eval::Case::new(meta, tensors)?;
            vcortex::eval::run(&case, spec, &vcortex::eval::Backend::Gpu(&ctx))
        })?;
        array_dict(py, outs)
    })
}

fn self_ctx(c: &PyContext) -> Arc<Context> {
    c.ctx.clone()
}

/// The names of the ops `run_op` takes, each with its tensors and parameters.
#[pyfunction]
fn op_table<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for s in vcortex::eval::OPS {
        let e = PyDict::new(py);
        e.set_item("required", s.required.to_vec())?;
        e.set_item("optional", s.optional.to_vec())?;
        e.set_item("params", s.params.to_vec())?;
        d.set_item(s.name, e)?;
    }
    Ok(d)
}

/// The tensors of a safetensors file as float32 arrays (the engine's own reader: F32, F16, BF16,
/// F64; integer and boolean tensors too with `weights`, as a state dict's buffers), and its
/// metadata.
#[pyfunction]
#[pyo3(signature = (path, weights = false))]
fn read_safetensors<'py>(
    py: Python<'py>,
    path: &str,
    weights: bool,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    guarded(|| {
        let p = std::path::PathBuf::from(path);
        let f =
            compute(py, || if weights { vcortex::io::read_weights(&p) } else { vcortex::io::read_safetensors(&p) })?;
        let meta = PyDict::new(py);
        for (k, v) in &f.metadata {
            meta.set_item(k, v)?;
        }
        Ok((array_dict(py, f.tensors.into_iter().collect())?, meta))
    })
}

/// Writes float32 arrays (a dict of name → array) as a safetensors file with string metadata.
#[pyfunction]
fn write_safetensors(
    py: Python<'_>,
    path: &str,
    tensors: &Bound<'_, PyAny>,
    metadata: &Bound<'_, PyDict>,
) -> PyResult<()> {
    guarded(|| {
        let t: Vec<(String, HostTensor)> = host_dict(tensors, "tensors")?.into_iter().collect();
        let mut meta = HashMap::new();
        for (k, v) in metadata.iter() {
            let (k, v): (String, String) = (k.extract()?, v.extract()?);
            meta.insert(k, v);
        }
        let p = std::path::PathBuf::from(path);
        compute(py, || vcortex::io::write_safetensors(&p, &t, &meta))
    })
}

/// Raises a Rust panic inside the guard (for the test that no panic reaches Python).
#[pyfunction]
fn _panic_for_test(py: Python<'_>) -> PyResult<()> {
    compute(py, || -> vcortex::Result<()> { panic!("a deliberate panic") })
}

#[pymodule]
fn _vcortex(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("VcortexError", py.get_type::<VcortexError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_class::<PyContext>()?;
    m.add_function(wrap_pyfunction!(adapters, m)?)?;
    m.add_function(wrap_pyfunction!(run_op, m)?)?;
    m.add_function(wrap_pyfunction!(op_table, m)?)?;
    m.add_function(wrap_pyfunction!(read_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(write_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_test, m)?)?;
    models::register(m)?;
    Ok(())
}
