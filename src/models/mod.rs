//! Model pipelines composed of ops; weights loaded and folded once, at load time.

pub mod cgnf;
pub mod flow;
pub mod mdm;
pub mod platypose;
pub mod sensorium;
pub mod transformer;

pub use cgnf::{Cgnf, CgnfConfig};
pub use flow::{Flow, FlowConfig};
pub use sensorium::{Sensorium, SensoriumConfig};

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::io::HostTensor;

// State-dict helpers shared by the flow models.

/// Removes `key` from a state dict, checking its shape (where given) and that it is finite; the
/// error names `what` (the model's weights) and the key.
pub(crate) fn take_named(
    what: &str,
    sd: &mut BTreeMap<String, HostTensor>,
    key: &str,
    shape: Option<&[usize]>,
) -> Result<HostTensor> {
    let t = sd.remove(key).ok_or_else(|| Error::Case(format!("{what}: missing key {key:?}")))?;
    if let Some(s) = shape {
        if t.shape != s {
            return Err(Error::Case(format!("{what}: {key:?} has shape {:?}, expected {s:?}", t.shape)));
        }
    }
    if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Case(format!("{what}: {key:?} has a non-finite value at {i}")));
    }
    Ok(t)
}

/// A layer on the unmasked inputs, widened to all of them with zero columns where `mask` is true
/// (a coupling's conditioner on all D features; a layer reading half of a stacked output).
pub(crate) fn widen(w: &HostTensor, mask: &[bool]) -> HostTensor {
    let (rows, cols) = (w.shape[0], w.shape[1]);
    let d = mask.len();
    let mut out = vec![0f32; rows * d];
    for r in 0..rows {
        let mut c = 0;
        for (j, &m) in mask.iter().enumerate() {
            if !m {
                out[r * d + j] = w.data[r * cols + c];
                c += 1;
            }
        }
    }
    HostTensor::new(vec![rows, d], out)
}
