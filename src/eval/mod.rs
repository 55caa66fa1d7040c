//! `vcortex eval`: run one op from a case file (docs/eval-format.md) on the GPU or the
//! CPU reference. Each op is one row of [`OPS`]: its tensors, its parameters and two functions.

mod bindings;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::{check_output, read_safetensors, write_safetensors, HostTensor};
use crate::runtime::Context;

pub use bindings::OPS;

/// Where an op runs.
pub enum Backend<'a> {
    Gpu(&'a Context),
    Cpu,
}

/// One row of the op table.
pub struct OpSpec {
    pub name: &'static str,
    pub required: &'static [&'static str],
    pub optional: &'static [&'static str],
    pub params: &'static [&'static str],
    pub run: fn(&Backend, &Case) -> Result<Vec<(String, HostTensor)>>,
}

/// A parsed case: the op, its tensors and its parameters.
pub struct Case {
    pub op: String,
    pub tensors: BTreeMap<String, HostTensor>,
    pub params: HashMap<String, String>,
}

impl Case {
    /// Builds a case and checks it against the op table: the op exists, every required tensor is
    /// there, nothing unknown is.
    pub fn new(
        mut metadata: HashMap<String, String>,
        tensors: BTreeMap<String, HostTensor>,
    ) -> Result<(Case, &'static OpSpec)> {
        let op = metadata.remove("op").ok_or_else(|| Error::Case("metadata has no \"op\"".into()))?;
        let spec = OPS
            .iter()
            .find(|s| s.name == op)
            .ok_or_else(|| Error::UnknownOp(op.clone(), OPS.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")))?;
        if let Some((name, t)) = tensors.iter().find(|(_, t)| t.shape.contains(&0)) {
            return Err(Error::Case(format!(
                "{op}: tensor {name:?} has shape {:?}; zero-sized dimensions are not supported",
                t.shape
            )));
        }
        for r in spec.required {
            if !tensors.contains_key(*r) {
                return Err(Error::Case(format!("{op}: missing tensor {r:?}")));
            }
        }
        for name in tensors.keys() {
            if !spec.required.contains(&name.as_str()) && !spec.optional.contains(&name.as_str()) {
                let known: Vec<&str> = spec.required.iter().chain(spec.optional).copied().collect();
                return Err(Error::Case(format!(
                    "{op}: unexpected tensor {name:?} (this op takes {})",
                    known.join(", ")
                )));
            }
        }
        for key in metadata.keys() {
            if !spec.params.contains(&key.as_str()) {
                return Err(Error::Case(format!(
                    "{op}: unknown parameter {key:?} (this op takes {})",
                    if spec.params.is_empty() { "none".to_string() } else { spec.params.join(", ") }
                )));
            }
        }
        Ok((Case { op, tensors, params: metadata }, spec))
    }

    pub fn tensor(&self, name: &str) -> Result<&HostTensor> {
        self.tensors.get(name).ok_or_else(|| Error::Case(format!("{}: missing tensor {name:?}", self.op)))
    }
    pub fn opt(&self, name: &str) -> Option<&HostTensor> {
        self.tensors.get(name)
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(|s| s.trim())
    }
    fn bad(&self, name: &str, why: impl std::fmt::Display) -> Error {
        Error::Case(format!("{}: parameter {name}={:?}: {why}", self.op, self.raw(name).unwrap_or("")))
    }

    /// A parameter parsed by `parse` (an enum's names), or the op's own default when absent.
    pub fn parsed<T>(&self, name: &str, default: T, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        self.raw(name).map_or(Ok(default), parse)
    }
    pub fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or(default).to_string()
    }
    pub fn f32(&self, name: &str, default: f32) -> Result<f32> {
        match self.raw(name) {
            None => Ok(default),
            Some(s) => {
                let v: f32 = s.parse().map_err(|_| self.bad(name, "not a number"))?;
                if !v.is_finite() {
                    return Err(self.bad(name, "not finite"));
                }
                Ok(v)
            }
        }
    }
    pub fn f64(&self, name: &str, default: f64) -> Result<f64> {
        match self.raw(name) {
            None => Ok(default),
            Some(s) => {
                let v: f64 = s.parse().map_err(|_| self.bad(name, "not a number"))?;
                if !v.is_finite() {
                    return Err(self.bad(name, "not finite"));
                }
                Ok(v)
            }
        }
    }
    /// A required parameter.
    pub fn required(&self, name: &str) -> Result<&str> {
        self.raw(name).ok_or_else(|| Error::Case(format!("{}: missing parameter {name:?}", self.op)))
    }
    pub fn usize(&self, name: &str, default: usize) -> Result<usize> {
        match self.raw(name) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|_| self.bad(name, "not a non-negative integer")),
        }
    }
    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        match self.raw(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(self.bad(name, "expected true or false")),
        }
    }
    /// A comma-separated list of non-negative integers with one of the `allowed` lengths.
    pub fn usizes(&self, name: &str, default: &[usize], allowed: &[usize]) -> Result<Vec<usize>> {
        match self.raw(name) {
            None => Ok(default.to_vec()),
            Some(s) => {
                let v: Vec<usize> = s
                    .split(',')
                    .map(|p| p.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| self.bad(name, "expected comma-separated non-negative integers"))?;
                if !allowed.contains(&v.len()) {
                    return Err(self.bad(name, format!("expected {allowed:?} values")));
                }
                Ok(v)
            }
        }
    }
    /// A pair "a,b" (a single "a" means "a,a").
    pub fn pair(&self, name: &str, default: [usize; 2]) -> Result<[usize; 2]> {
        let v = self.usizes(name, &default, &[1, 2])?;
        Ok(if v.len() == 1 { [v[0], v[0]] } else { [v[0], v[1]] })
    }
}

/// Reads a case file.
pub fn read_case(path: &Path) -> Result<(Case, &'static OpSpec)> {
    let f = read_safetensors(path)?;
    Case::new(f.metadata, f.tensors).map_err(|e| match e {
        Error::Case(r) => Error::File { path: path.display().to_string(), reason: r },
        other => other,
    })
}

/// Runs a case and returns its named outputs.
pub fn run(case: &Case, spec: &OpSpec, backend: &Backend) -> Result<Vec<(String, HostTensor)>> {
    (spec.run)(backend, case)
}

/// Reads CASE, runs it, writes OUT (only when everything succeeded). OUT is checked first (see
/// [`check_output`]: its folder, that it can be created there, that it is not CASE).
pub fn eval_file(case_path: &Path, out_path: &Path, backend: &Backend) -> Result<Vec<(String, HostTensor)>> {
    check_output(out_path, &[("case", case_path)])?;
    let (case, spec) = read_case(case_path)?;
    let outputs = run(&case, spec, backend)?;
    let mut meta = HashMap::new();
    meta.insert("op".to_string(), case.op.clone());
    match backend {
        Backend::Gpu(ctx) => {
            meta.insert("adapter".into(), ctx.adapter().name.clone());
            meta.insert("backend".into(), ctx.adapter().backend.clone());
        }
        Backend::Cpu => {
            meta.insert("adapter".into(), "cpu reference".into());
            meta.insert("backend".into(), "cpu".into());
        }
    }
    write_safetensors(out_path, &outputs, &meta)?;
    Ok(outputs)
}

/// The tolerance of docs/eval-format.md: elementwise ops are held to 1e-4 + 1e-4·|ref| per element;
/// reductions and convolutions to 1e-3·max|ref| + 1e-4. Returns the worst excess (≤ 0 passes)
/// and the largest absolute error.
pub fn check_tolerance(got: &[f32], want: &[f32], elementwise: bool) -> (f64, f64) {
    let maxref = want.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let mut worst = f64::NEG_INFINITY;
    let mut maxerr = 0f64;
    for (&g, &w) in got.iter().zip(want) {
        let err = (g as f64 - w as f64).abs();
        let err = if err.is_nan() { f64::INFINITY } else { err };
        let tol = if elementwise { 1e-4 + 1e-4 * (w as f64).abs() } else { 1e-3 * maxref + 1e-4 };
        worst = worst.max(err - tol);
        maxerr = maxerr.max(err);
    }
    (worst, maxerr)
}
