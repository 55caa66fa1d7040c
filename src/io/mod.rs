//! Files: safetensors tensors (with their `__metadata__`), read and written on the host, and the
//! images file of a Sensorium prediction ([`read_images`]).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

mod images;

pub use images::{read_images, ModelInputs};

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

/// The tensor names [`read_ids`] looks for, in order, when none is given.
pub const ID_NAMES: [&str; 2] = ["image_ids", "ids"];

/// Reads a vector of image ids [T] (or [T, 1]) from a safetensors file: the tensor `name`, else
/// the first of [`ID_NAMES`] present, else the file's only tensor. Integer tensors (I64, I32,
/// I16, I8, U64, U32, U16, U8) are taken exactly; float tensors (F64, F32, F16, BF16) must hold
/// whole numbers. A refusal is an [`Error::File`] naming `path` and the tensor.
pub fn read_ids(path: &Path, name: Option<&str>) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| file_err(path, format!("cannot read: {e}")))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| file_err(path, format!("not a safetensors file: {e}")))?;
    let names = st.names();
    let pick = match name {
        Some(n) => names.iter().find(|k| **k == n).map(|k| k.to_string()),
        None => ID_NAMES.iter().find(|n| names.iter().any(|k| *k == **n)).map(|n| n.to_string()).or_else(|| {
            if names.len() == 1 {
                Some(names[0].to_string())
            } else {
                None
            }
        }),
    };
    let Some(key) = pick else {
        let want = name.map_or_else(|| format!("{ID_NAMES:?} (or a file of one tensor)"), |n| format!("{n:?}"));
        return Err(file_err(path, format!("no id tensor: expected {want} among {} tensors", names.len())));
    };
    let v = st.tensor(&key).map_err(|e| file_err(path, format!("tensor {key:?}: {e}")))?;
    let shape = v.shape().to_vec();
    if !(shape.len() == 1 || (shape.len() == 2 && shape[1] == 1)) || shape[0] == 0 {
        return Err(file_err(path, format!("ids {key:?} have shape {shape:?}, expected [trials]")));
    }
    let b = v.data();
    let ints = |size: usize, f: &dyn Fn(&[u8]) -> Option<i64>| -> Result<Vec<i64>> {
        b.chunks_exact(size)
            .map(f)
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| file_err(path, format!("ids {key:?}: a value does not fit in i64")))
    };
    let floats = |vals: Vec<f64>| -> Result<Vec<i64>> {
        match vals.iter().position(|x| !(x.fract() == 0.0 && x.abs() <= 9.0e15)) {
            Some(i) => Err(file_err(path, format!("ids {key:?}: element {i} is {}, not a whole number", vals[i]))),
            None => Ok(vals.into_iter().map(|x| x as i64).collect()),
        }
    };
    match v.dtype() {
        Dtype::I64 => ints(8, &|c| Some(i64::from_le_bytes(c.try_into().ok()?))),
        Dtype::U64 => ints(8, &|c| i64::try_from(u64::from_le_bytes(c.try_into().ok()?)).ok()),
        Dtype::I32 => ints(4, &|c| Some(i32::from_le_bytes(c.try_into().ok()?) as i64)),
        Dtype::U32 => ints(4, &|c| Some(u32::from_le_bytes(c.try_into().ok()?) as i64)),
        Dtype::I16 => ints(2, &|c| Some(i16::from_le_bytes(c.try_into().ok()?) as i64)),
        Dtype::U16 => ints(2, &|c| Some(u16::from_le_bytes(c.try_into().ok()?) as i64)),
        Dtype::I8 => ints(1, &|c| Some(c[0] as i8 as i64)),
        Dtype::U8 => ints(1, &|c| Some(c[0] as i64)),
        Dtype::F64 | Dtype::F32 | Dtype::F16 | Dtype::BF16 => {
            floats(to_f32_or_f64(&v).map_err(|e| file_err(path, format!("ids {key:?}: {e}")))?)
        }
        other => Err(file_err(path, format!("ids {key:?} have dtype {other:?}; an integer or float dtype expected"))),
    }
}

/// A float tensor's values as f64 (F64 exactly).
fn to_f32_or_f64(v: &TensorView) -> std::result::Result<Vec<f64>, String> {
    let b = v.data();
    Ok(match v.dtype() {
        Dtype::F64 => {
            b.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()
        }
        Dtype::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64).collect(),
        Dtype::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        Dtype::BF16 => b.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64()).collect(),
        other => return Err(format!("dtype {other:?} is not a float")),
    })
}

/// Writes f32 tensors and metadata as safetensors, atomically (see [`write_file_atomic`]): the
/// file at `path` is either the old one (or none) or the whole new one, never a part.
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
    write_file_atomic(path, &data)
}

/// The folder a file goes in (`.` for a bare name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary name in `path`'s own folder (so that the rename is atomic), unique to this process
/// and to this write: `.<file name>.<pid>.<n>.partial`.
fn temp_name(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| file_err(path, "not a file name"))?;
    let mut t = OsString::from(".");
    t.push(name);
    t.push(format!(".{}.{}.partial", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    Ok(folder_of(path).join(t))
}

/// Writes `bytes` to `path` atomically (see [`write_atomic_with`]).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Writes a file atomically, its contents from `fill`: a temporary file of a name unique to this
/// process and this write is created (never opened if it exists) in `path`'s folder, filled, flushed
/// to disk (fsync) and renamed onto `path`. On any failure (a write error such as a full disk, the
/// output being a folder, a failed rename) the temporary file is removed and `path` is left as it
/// was; the error names `path` and the reason.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_name(path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| file_err(path, format!("cannot create a file in {}: {e}", folder_of(path).display())))?;
    let written = fill(&mut f)
        .map_err(|e| format!("cannot write: {e}"))
        .and_then(|()| f.sync_all().map_err(|e| format!("cannot write (fsync): {e}")));
    drop(f);
    let placed = written.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| format!("cannot move into place: {e}")));
    if let Err(reason) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(file_err(path, reason));
    }
    // The rename itself reaches the disk with the folder (best effort: not every system can sync one).
    if let Ok(d) = File::open(folder_of(path)) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Checks, before any work, that an output file can be written at `path`: its folder exists and is
/// a folder, `path` is not a folder, a file can be created there (a probe file is created and
/// removed), and `path` is none of the `inputs` (flag, path) (by canonical path, and on Unix by
/// device and inode, so a link is caught too). A refusal is an [`Error::File`] naming `path`.
pub fn check_output(path: &Path, inputs: &[(&str, &Path)]) -> Result<()> {
    let dir = folder_of(path);
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(file_err(path, format!("cannot write here: folder {} does not exist", dir.display())))
        }
        Err(e) => return Err(file_err(path, format!("cannot write here: folder {}: {e}", dir.display()))),
        Ok(m) if !m.is_dir() => {
            return Err(file_err(path, format!("cannot write here: {} is not a folder", dir.display())))
        }
        Ok(_) => {}
    }
    if path.file_name().is_none() {
        return Err(file_err(path, "cannot write here: not a file name"));
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.is_dir() {
            return Err(file_err(path, "cannot write here: it is a folder"));
        }
        for (flag, input) in inputs {
            if same_file(path, &m, input) {
                return Err(file_err(
                    path,
                    format!("is the same file as the input {flag} {}; the output would replace it", input.display()),
                ));
            }
        }
    }
    let probe = temp_name(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| file_err(path, format!("cannot create a file in {}: {e}", dir.display())))?;
    std::fs::remove_file(&probe)
        .map_err(|e| file_err(path, format!("cannot remove the probe {}: {e}", probe.display())))
}

/// Whether `input` is the file `out` (whose metadata is `m`).
fn same_file(out: &Path, m: &std::fs::Metadata, input: &Path) -> bool {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(out), std::fs::canonicalize(input)) {
        if a == b {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(n) = std::fs::metadata(input) {
            return n.dev() == m.dev() && n.ino() == m.ino();
        }
    }
    let _ = m;
    false
}
