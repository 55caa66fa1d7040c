//! Model pipelines composed of ops; weights loaded and folded once, at load time.
//!
//! Each model is a folder whose files have one job each: `config.rs` (the serde config and its
//! validation), `load.rs` (state dict → model: the folding, and the upload), `record.rs` (the GPU
//! forward recorded on a [`Recorder`](crate::Recorder)), `reference.rs` (the f64 CPU reference
//! forward) and, where there are some, `fixtures.rs` (random weights for tests and benchmarks).
//! Every model reads its weights through [`StateDict`], the one loader.

pub mod cgnf;
pub mod cotrain;
pub mod flow;
mod handle;
pub mod latent;
pub mod mdm;
pub mod platypose;
pub mod sensorium;
mod state_dict;
pub mod transformer;
pub mod video;

pub use cgnf::{Cgnf, CgnfConfig};
pub use cotrain::{Cotrain, CotrainConfig};
pub use flow::{Flow, FlowConfig};
pub(crate) use handle::Handle;
pub use latent::{Latent, LatentConfig, LatentMode, LatentNoise, LatentOutput, LatentStream};
pub use sensorium::{Sensorium, SensoriumConfig};
pub(crate) use state_dict::widen;
pub use state_dict::StateDict;
pub use video::{Video, VideoConfig, VideoCore};

/// Parses a model config of `kind` (`"sensorium"`, `"cotrain"`, `"flow"`, `"cgnf"`, ...): a
/// `"kind"` field, when present, must name it (the configs written before the field have none);
/// `what` prefixes the errors ("cgnf config: ...").
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(text: &str, kind: &str, what: &str) -> crate::Result<T> {
    use crate::Error;
    let mut v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::Config(format!("{what} config: {e}")))?;
    if let Some(k) = v.as_object_mut().and_then(|m| m.remove("kind")) {
        if k.as_str() != Some(kind) {
            return Err(Error::Config(format!("{what} config: \"kind\" is {k}, expected \"{kind}\"")));
        }
    }
    serde_json::from_value(v).map_err(|e| Error::Config(format!("{what} config: {e}")))
}
