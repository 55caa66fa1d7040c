//! Composite normalizing flows (docs/ops.md, affine coupling and spline; config in docs/models.md): a stack of ActNorm,
//! affine-coupling and rational-quadratic-spline-coupling layers on x [N, D], for density evaluation (data → base, the
//! log-dets accumulated) and sampling (base → data, with temperature), each recorded as one submit.
//!
//! Weights (safetensors) and their key names, for layer i:
//! - ActNorm: `layers.{i}.log_scale [D]`, `layers.{i}.bias [D]`.
//! - Couplings: `layers.{i}.mask [D]` (1 = transformed, T of them); the conditioner, an MLP on the
//!   D − T identity features in order: `layers.{i}.net.{j}.weight [H_j, H_{j−1}]` and `.bias` for its
//!   hidden layers (ReLU), `layers.{i}.net.out.weight [P, H]` and `.bias [P]` for the output, with
//!   P = 2T for affine (nflows order: T shifts, then T unconstrained scales) and T·(3K−1) for the
//!   spline (per transformed feature: K widths, K heights, K−1 derivatives, contiguous).
//!   As nflows' coupling does, spline widths and heights are divided by √H of the last hidden layer.
//!
//! Loading folds the conditioner so that no gather is needed: its first layer takes all D features
//! with zero columns for the transformed ones, and its output rows are split into one head per
//! parameter kind.

mod config;
mod load;
mod record;
mod reference;
mod weights;

pub use config::{FlowConfig, LayerConfig, MAX_TAIL_BOUND};

use crate::error::{Error, Result};
use crate::tensor::Tensor;

use weights::Layer;

const OP: &str = "flow";

pub struct Flow {
    pub config: FlowConfig,
    layers: Vec<Layer>,
}

impl Flow {
    fn check_input(&self, x: &Tensor) -> Result<usize> {
        match x.shape() {
            &[n, d] if d == self.config.features => Ok(n),
            s => Err(Error::shape(OP, "input", s, format!("[N, {}]", self.config.features))),
        }
    }
}
