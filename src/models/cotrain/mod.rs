//! The monkey V1 co-training twin (Safarani et al. 2021, `neural_cotraining`'s `MTL_VGG`) at
//! inference: torchvision's `vgg19_bn` `features[:layers]` (17 by default: four 3×3 convs with
//! batch norm and ReLU, two 2×2 max-pools, and the fifth conv block up to its ReLU) shared across
//! sessions, one legacy `Gaussian2d` readout per session (eval mode: each neuron reads the core at
//! its clamped mean position), and `elu(x + elu_offset) + 1` with `elu_offset` −1 (docs/models.md).
//!
//! Loading folds each batch norm into its conv's epilogue, a grey input's channel expansion into
//! the first conv (its weights summed over the three input channels: exactly the conv of the
//! grey image repeated three times), and the ELU offset into the readout bias; ELU+1 runs fused in
//! the readout kernel. A forward pass is one submit.

mod config;
mod fixtures;
mod load;
mod record;
mod reference;

pub use config::{CotrainConfig, CotrainCoreConfig, CotrainReadoutConfig};

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Conv2dParams};
use crate::tensor::Tensor;

const OP: &str = "cotrain";

/// A conv with its folded batch norm (ReLU after), host and device copies.
struct FoldedConv {
    w: HostTensor,
    bias: HostTensor,
    /// Folded batch norm: (scale, shift).
    bn: (Vec<f32>, Vec<f32>),
    params: Conv2dParams,
    dev: Option<(Tensor, Tensor, Tensor, Tensor)>,
}

/// One step of the core, in torchvision's order (a conv stands for its conv, BN and ReLU).
enum Layer {
    Conv(FoldedConv),
    MaxPool,
}

struct Readout {
    /// [M, 2], features [C, M], bias [M] with the ELU offset folded in.
    mu: HostTensor,
    features: HostTensor,
    bias: HostTensor,
    align_corners: bool,
    dev: Option<ops::SortedReadout>,
}

/// A loaded model.
pub struct Cotrain {
    pub config: CotrainConfig,
    layers: Vec<Layer>,
    readouts: BTreeMap<String, Readout>,
}

impl Cotrain {
    pub fn data_keys(&self) -> Vec<&str> {
        self.readouts.keys().map(|k| k.as_str()).collect()
    }

    fn readout(&self, key: &str) -> Result<&Readout> {
        self.readouts.get(key).ok_or_else(|| {
            Error::param(OP, "data_key", format!("{key:?} is not one of {}", self.data_keys().join(", ")))
        })
    }
}
