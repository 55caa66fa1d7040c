//! Sensorium-style models (neuralpredictors `Stacked2dCore` or `RotationEquivariant2dCore` + one
//! `FullGaussian2d` readout per data key, ELU+1; docs/models.md, docs/ops.md, Gaussian readout) at
//! inference, loaded from a PyTorch `state_dict` saved as safetensors with PyTorch's own key names
//! plus a small JSON config.
//!
//! The core's options resolve (`stacked.rs`, for either kind) into a list of layers, each a conv
//! chain (a plain conv, a depth-separable triple, or a Hermite conv whose weight `rot_eq.rs` builds
//! at load time) with its
//! normalisation and activation, and the wiring: which earlier outputs a layer reads (`skip`) and
//! which the core returns (`stack`), concatenated along channels. Loading folds each batch norm,
//! bias layer and scale layer into the epilogue of the conv before it, the `elu_offset` into the
//! readout bias, and fuses ELU+1 into the readout kernel. A forward pass is recorded on one
//! [`Recorder`](crate::runtime::Recorder): a plain layer is one conv dispatch, a depth-separable
//! one three (1×1, depthwise, 1×1 with the folded norm and the activation), a concatenation one
//! dispatch per part (none when one output is read), the readout one.

mod config;
mod core2d;
mod fixtures;
mod load;
mod record;
mod reference;
mod rot_eq;
mod stacked;
mod weights;

pub use config::{CoreConfig, CoreKind, PerLayer, ReadoutConfig, Semantics, SensoriumConfig, Stack};
#[doc(hidden)]
pub use rot_eq::hermite_tensors;

use std::collections::BTreeMap;

use crate::error::{Error, Result};

pub(crate) use core2d::Core2d;
pub(crate) use load::{load_readout, predicted_mu};
use weights::CoreLayer;
pub(crate) use weights::{side_input, Readout};

const OP: &str = "sensorium";

/// A loaded model.
pub struct Sensorium {
    pub config: SensoriumConfig,
    layers: Vec<CoreLayer>,
    /// The layers whose outputs the core returns, concatenated along channels.
    stack: Vec<usize>,
    readouts: BTreeMap<String, Readout>,
}

impl Sensorium {
    /// Whether the readout of `key` has a shifter (and so needs eye positions).
    pub fn has_shifter(&self, key: &str) -> bool {
        self.readouts.get(key).is_some_and(|r| r.shifter.is_some())
    }

    pub fn data_keys(&self) -> Vec<&str> {
        self.readouts.keys().map(|k| k.as_str()).collect()
    }

    fn readout(&self, key: &str) -> Result<&Readout> {
        self.readouts.get(key).ok_or_else(|| {
            Error::param(OP, "data_key", format!("{key:?} is not one of {}", self.data_keys().join(", ")))
        })
    }

    /// Whether the readout of `key` has a behaviour modulator.
    pub fn has_modulator(&self, key: &str) -> bool {
        self.readouts.get(key).is_some_and(|r| r.modulator.is_some())
    }
}
