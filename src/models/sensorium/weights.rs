//! The Sensorium's weights as the model holds them: folded on the host (for the f64 reference)
//! with their device copies once uploaded.

use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::{self, Activation, Conv2dParams};
use crate::tensor::Tensor;

/// A conv with its folded batch norm and activation, on the host (for the reference) and device.
pub(super) struct FoldedConv {
    pub(super) w: HostTensor,
    pub(super) bias: Option<HostTensor>,
    /// Folded batch norm: (scale, shift).
    pub(super) bn: Option<(Vec<f32>, Vec<f32>)>,
    pub(super) params: Conv2dParams,
    pub(super) act: Activation,
    pub(super) dev: Option<(Tensor, Option<Tensor>, Option<(Tensor, Tensor)>)>,
}

/// One core layer: the outputs it reads (indices of earlier layers, concatenated along
/// channels; none: the images) and its conv chain, the last conv carrying the folded norm and the
/// activation.
pub(super) struct CoreLayer {
    pub(super) inputs: Vec<usize>,
    pub(super) convs: Vec<FoldedConv>,
}

/// A small MLP of a readout (the shifter: eye position → shift, Tanh after each layer; the
/// modulator: behaviour → gain, ReLU after each layer), host and device copies.
pub(crate) struct Mlp {
    pub(crate) layers: Vec<(HostTensor, HostTensor)>,
    pub(crate) dev: Vec<(Tensor, Tensor)>,
    pub(crate) act: Activation,
    /// What it is, for messages: "shifter" or "modulator".
    pub(crate) what: &'static str,
    /// What it takes: "the eye position [N, 2]" or "the behaviour [N, B]".
    pub(crate) input: &'static str,
}

/// A readout's side input is needed exactly where its MLP exists: pairs them, or refuses.
pub(crate) fn side_input<'a, T>(
    mlp: &'a Option<Mlp>,
    input: Option<T>,
    key: &str,
    op_name: &str,
) -> Result<Option<(&'a Mlp, T)>> {
    match (mlp, input) {
        (None, None) => Ok(None),
        (Some(m), Some(x)) => Ok(Some((m, x))),
        (Some(m), None) => {
            Err(Error::param(super::OP, op_name, format!("data key {key:?} has a {}: {} is needed", m.what, m.input)))
        }
        (None, Some(_)) => Err(Error::param(super::OP, op_name, format!("data key {key:?} has no {op_name} input"))),
    }
}

pub(crate) struct Readout {
    /// Behaviour → gain (ELU+1 of its output multiplies the readout before the output nonlinearity).
    pub(crate) modulator: Option<Mlp>,
    /// The ELU offset, applied after the modulation (folded into the bias when there is none).
    pub(crate) offset: f32,
    /// Eye position → shift of every neuron's position.
    pub(crate) shifter: Option<Mlp>,
    /// [M, 2], features [C, M], bias [M] with the ELU offset folded in.
    pub(crate) mu: HostTensor,
    pub(crate) features: HostTensor,
    pub(crate) bias: HostTensor,
    pub(crate) align_corners: bool,
    /// mu, features and bias on the device, neurons in Z-order of their positions.
    pub(crate) dev: Option<ops::SortedReadout>,
}
