//! The cGNF's weights as the model holds them: as stored (for the f64 reference) and folded (for
//! the GPU forward), each with its device copy once uploaded.

use crate::io::HostTensor;
use crate::ops;
use crate::tensor::Tensor;

/// A linear layer: weight [O, I] and optional bias [O], on the host (f32) and the device.
pub(super) struct Lin {
    pub(super) w: HostTensor,
    pub(super) b: Option<HostTensor>,
    pub(super) dev: Option<(Tensor, Option<Tensor>)>,
}

impl Lin {
    pub(super) fn new(w: HostTensor, b: Option<HostTensor>) -> Lin {
        Lin { w, b, dev: None }
    }
}

/// One CondGCN layer as propose stores it.
pub(super) struct Gcn {
    pub(super) x: Lin,
    pub(super) xx: Lin,
    pub(super) c: Lin,
    pub(super) cx: Lin,
    pub(super) pool: Lin,
    /// The root node's `r` and `r->x` layers, with a root config.
    pub(super) r: Option<(Lin, Lin)>,
}

/// A coupling's folded conditioner on the device.
pub(super) struct Folded {
    /// Layer 0: [W_x; W_xx] widened to the 3 coordinates, packed with its bias, [2H, 4] (its
    /// messages are computed inside the aggregation: `ops::gcn_aggregate_linear`).
    pub(super) nodes0: HostTensor,
    pub(super) nodes0_dev: Option<Tensor>,
    /// Layer 0: [W_cx; W_c], [2H, C].
    pub(super) ctx0: Lin,
    /// Layer 1: [W_x; W_xx] · pool0 (layer 0's pool folded in), [2H, H].
    pub(super) nodes1: Lin,
    /// Layer 1: W_cx on the c' half of ctx0's output, [H, 2H].
    pub(super) ctx1: Lin,
    pub(super) shift: Lin,
    pub(super) scale: Lin,
    /// Layer 0: [W_rx; W_r], [2H, 3]; layer 1: W_rx on the r' half, [H, 2H].
    pub(super) root0: Option<Lin>,
    pub(super) root1: Option<Lin>,
}

pub(super) struct Coupling {
    pub(super) mask: [bool; 3],
    pub(super) gcn: [Gcn; 2],
    pub(super) folded: Folded,
    /// The mask's feature map on the device (made at upload).
    pub(super) fmask: Option<ops::flows::FeatureMask>,
}

pub(super) struct ActNorm {
    pub(super) log_s: HostTensor,
    pub(super) shift: HostTensor,
    pub(super) dev: Option<(Tensor, Tensor)>,
}

pub(super) struct Sage {
    pub(super) adj: HostTensor,
    /// (lin_rel, lin_root) of each layer, as stored.
    pub(super) layers: [(Lin, Lin); 2],
    /// [W_rel | W_root] with lin_rel's bias, per layer.
    pub(super) folded: [Lin; 2],
    pub(super) dev_adj: Option<Tensor>,
}
