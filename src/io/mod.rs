//! Files: safetensors tensors (with their `__metadata__`), read and written on the host.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// A tensor on the host: f32 values and a shape.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        HostTensor { shape, data }
    }
}

/// The contents of a safetensors file: tensors (converted to f32) and metadata.
pub struct TensorFile {
    pub tensors: BTreeMap<String, HostTensor>,
    pub metadata: HashMap<String, String>,
}

fn file_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::File { path: path.display().to_string(), reason: reason.into() }
}

/// Reads a safetensors file; F32, F16, BF16 and F64 tensors are converted to f32.
pub fn read_safetensors(path: &Path) -> Result<TensorFile> {
    read_file(path, false)
}

/// Reads a weights file: as [`read_safetensors`], and integer tensors (a PyTorch state_dict's
/// `num_batches_tracked`, nflows' feature index buffers) and booleans (0/1) are converted to f32 too.
pub fn read_weights(path: &Path) -> Result<TensorFile> {
    read_file(path, true)
}

fn read_file(path: &Path, ints: bool) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    parse(&bytes, ints).map_err(|e| match e {
        Error::Case(reason) => file_err(path, reason),
        other => other,
    })
}

/// Parses safetensors bytes (see [`read_safetensors`]).
pub fn parse_safetensors(bytes: &[u8]) -> Result<TensorFile> {
    parse(bytes, false)
}

fn parse(bytes: &[u8], ints: bool) -> Result<TensorFile> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::Case(format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Case(format!("not a safetensors file: {e}")))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = to_f32(&name, &view, ints)?;
        tensors.insert(name, HostTensor { shape: view.shape().to_vec(), data });
    }
    Ok(TensorFile { tensors, metadata })
}

fn to_f32(name: &str, v: &TensorView, ints: bool) -> Result<Vec<f32>> {
    let b = v.data();
    Ok(match v.dtype() {
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::I64 if ints => b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        Dtype::BOOL if ints => b.iter().map(|&v| (v != 0) as u8 as f32).collect(),
        Dtype::I32 if ints => b.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32).collect(),
        other => {
            return Err(Error::Case(format!("tensor {name:?} has dtype {other:?}; F32, F16, BF16 or F64 expected")))
        }
    })
}

/// Writes f32 tensors and metadata as safetensors, atomically (a temporary file renamed into
/// place), so a failure never leaves a partial file.
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, HostTensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let bytes_of: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect(), t.shape.clone()))
        .collect();
    let views: Vec<(String, TensorView)> = bytes_of
        .iter()
        .map(|(n, b, s)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| file_err(path, format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let data = safetensors::serialize(views, Some(metadata.clone())).map_err(|e| file_err(path, e.to_string()))?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, data).map_err(|e| file_err(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| file_err(path, format!("cannot move into place: {e}")))
}
