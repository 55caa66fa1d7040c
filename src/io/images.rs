//! The images file of a Sensorium prediction: images, and the eye positions and behaviour where
//! the readout needs them.

use std::path::Path;

use super::{read_safetensors, HostTensor};
use crate::error::{Error, Result};

/// Reads the images of a safetensors file (the tensor named `images`, or the only one) and the eye
/// positions [N, 2] (`eye`) and behaviour [N, B] (`behavior`) when the file has them.
pub fn read_images(path: &Path) -> Result<(HostTensor, Option<HostTensor>, Option<HostTensor>)> {
    let f = read_safetensors(path)?;
    let n = f.tensors.len();
    let mut t = f.tensors;
    let eye = t.remove("eye");
    let behavior = t.remove("behavior");
    let images = match t.remove("images") {
        Some(x) => x,
        None if t.len() == 1 => t.into_values().next().expect("one tensor"),
        None => {
            return Err(Error::File {
                path: path.display().to_string(),
                reason: format!("no tensor named \"images\" among {n}"),
            })
        }
    };
    Ok((images, eye, behavior))
}
