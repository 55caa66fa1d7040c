//! The one error type of the library. Every variant names what was wrong and where; the CLI prints
//! it as one line.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// No adapter at all: nothing wgpu can run on.
    #[error("no GPU or software adapter found{0}; install a Vulkan driver (on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers` for the lavapipe software rasterizer) or set WGPU_BACKEND=gl")]
    NoAdapter(String),
    #[error("no adapter matches VCORTEX_ADAPTER={wanted:?}; adapters seen: {seen}")]
    AdapterNotFound { wanted: String, seen: String },
    #[error("could not create a device on {adapter}: {reason}")]
    Device { adapter: String, reason: String },
    /// A GPU-side failure reported by wgpu (validation, out of memory, lost device).
    #[error("GPU error in {context}: {message}")]
    Gpu { context: String, message: String },
    #[error("{op}: {what} has shape {got:?}, expected {expected}")]
    Shape { op: &'static str, what: String, got: Vec<usize>, expected: String },
    #[error("{op}: invalid parameter {name}: {reason}")]
    Param { op: &'static str, name: String, reason: String },
    /// A size past a limit: `amount` and `limit` are counted in `unit` (bytes, workgroups, elements).
    #[error("{op}: {what} needs {amount} {unit}, past the limit of {limit} {unit} ({limit_name})")]
    TooLarge { op: &'static str, what: String, amount: u64, unit: &'static str, limit: u64, limit_name: &'static str },
    #[error("{op}: {what} is {got}, expected {expected}")]
    Dtype { op: &'static str, what: String, got: String, expected: String },
    #[error("{op}: {what} has {got} values but its shape {shape:?} holds {expected}")]
    DataLength { op: &'static str, what: String, got: usize, expected: usize, shape: Vec<usize> },
    #[error("the adapter lacks feature {0}")]
    MissingFeature(&'static str),
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("case file: {0}")]
    Case(String),
    /// A model's weights do not fit its config: a key missing, mis-shaped, non-finite, or one no
    /// layer takes. The message names the key, and the file when the weights came from one.
    #[error("{0}")]
    Weights(String),
    /// A model's config is malformed, or a field is out of range or missing; the message names the
    /// field, and the file when the config came from one.
    #[error("{0}")]
    Config(String),
    /// An input other than weights, configs and case files does not fit (Platypose's
    /// observations), or a run did not hold (a bench case off the reference).
    #[error("{0}")]
    Input(String),
    #[error("unknown op {0:?}; known ops: {1}")]
    UnknownOp(String, String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A loader's error as an error of the file it came from: the weights file for a weights
    /// problem, the config file for a config problem (a malformed file, a field out of range), the
    /// weights file otherwise (as the state dict is what did not load).
    pub fn in_files(self, weights: &std::path::Path, config: &std::path::Path) -> Error {
        let (path, reason) = match self {
            Error::Weights(m) => (weights, m),
            e @ (Error::Config(_) | Error::Param { .. }) => (config, e.to_string()),
            e @ Error::File { .. } => return e,
            e => (weights, e.to_string()),
        };
        Error::File { path: path.display().to_string(), reason }
    }

    /// An error a composite op's inner step raised, as the composite's own: it names the op the
    /// caller called, and the step in parentheses (attention's score matmul, say), never only an
    /// op the caller never called.
    pub fn within(self, outer: &'static str) -> Error {
        let step = |op: &str| if op == outer { String::new() } else { format!(" (in its {op} step)") };
        match self {
            Error::Shape { op, what, got, expected } => {
                Error::Shape { what: format!("{what}{}", step(op)), op: outer, got, expected }
            }
            Error::Param { op, name, reason } => {
                Error::Param { reason: format!("{reason}{}", step(op)), op: outer, name }
            }
            Error::TooLarge { op, what, amount, unit, limit, limit_name } => {
                Error::TooLarge { what: format!("{what}{}", step(op)), op: outer, amount, unit, limit, limit_name }
            }
            Error::Dtype { op, what, got, expected } => {
                Error::Dtype { what: format!("{what}{}", step(op)), op: outer, got, expected }
            }
            Error::DataLength { op, what, got, expected, shape } => {
                Error::DataLength { what: format!("{what}{}", step(op)), op: outer, got, expected, shape }
            }
            e => e,
        }
    }

    pub fn param(op: &'static str, name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Param { op, name: name.into(), reason: reason.into() }
    }
    pub fn shape(op: &'static str, what: impl Into<String>, got: &[usize], expected: impl Into<String>) -> Self {
        Error::Shape { op, what: what.into(), got: got.to_vec(), expected: expected.into() }
    }
}
