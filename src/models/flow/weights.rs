//! The flow's weights as the model holds them: the conditioners folded (module docs of
//! `models::flow`) on the host, with their device copies once uploaded.

use crate::io::HostTensor;
use crate::ops::{self, SplineParams};
use crate::tensor::Tensor;

/// A linear layer with host and device copies.
pub(super) struct Linear {
    pub(super) w: HostTensor,
    pub(super) b: HostTensor,
    pub(super) dev: Option<(Tensor, Tensor)>,
}

impl Linear {
    pub(super) fn new(w: HostTensor, b: HostTensor) -> Self {
        Linear { w, b, dev: None }
    }
}

/// The conditioner: hidden layers (ReLU) on all D features, then one output head per parameter kind.
pub(super) struct Conditioner {
    pub(super) hidden: Vec<Linear>,
    pub(super) heads: Vec<Linear>,
    /// The coupling's mask on the device (made at upload).
    pub(super) fmask: Option<ops::flows::FeatureMask>,
}

pub(super) enum Layer {
    Actnorm { log_s: HostTensor, b: HostTensor, dev: Option<(Tensor, Tensor)> },
    Affine { mask: Vec<bool>, net: Conditioner },
    Spline { mask: Vec<bool>, bins: usize, params: SplineParams, net: Conditioner },
}
