//! The images file of a Sensorium prediction: images, and the eye positions and behaviour where
//! the readout needs them, by neuralpredictors' names.

use std::path::Path;

use super::{read_safetensors, HostTensor};
use crate::error::{Error, Result};

/// What an images file holds for a prediction.
pub struct ModelInputs {
    pub images: HostTensor,
    /// The shifter's input [N, 2]: `pupil_center` (neuralpredictors' name) or `eye`.
    pub eye: Option<HostTensor>,
    /// The modulator's input [N, B]: `behavior`.
    pub behavior: Option<HostTensor>,
    /// Every tensor name in the file, sorted (for messages about a missing input).
    pub names: Vec<String>,
}

/// Reads the images of a safetensors file (the tensor named `images`, or the only one), the eye
/// positions [N, 2] (`pupil_center` or `eye`; not both) and the behaviour [N, B] (`behavior`) when
/// the file has them.
pub fn read_images(path: &Path) -> Result<ModelInputs> {
    let f = read_safetensors(path)?;
    let names: Vec<String> = f.tensors.keys().cloned().collect();
    let mut t = f.tensors;
    let file_error = |reason: String| Error::File { path: path.display().to_string(), reason };
    let eye = match (t.remove("pupil_center"), t.remove("eye")) {
        (Some(_), Some(_)) => {
            return Err(file_error(
                "both \"pupil_center\" and \"eye\" are given: the shifter's input is one of them".into(),
            ))
        }
        (a, b) => a.or(b),
    };
    let behavior = t.remove("behavior");
    let images = match t.remove("images") {
        Some(x) => x,
        None if t.len() == 1 => t.into_values().next().expect("one tensor"),
        None => return Err(file_error(format!("no tensor named \"images\" among {}", names.join(", ")))),
    };
    Ok(ModelInputs { images, eye, behavior, names })
}
