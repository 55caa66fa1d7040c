//! The one loader path of every model: a state dict consumed key by key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::HostTensor;

/// A state dict consumed key by key. [`StateDict::take`] checks that the key is there, has the
/// expected shape and holds only finite values, and names the key when it does not;
/// [`StateDict::finish`] names the keys no layer took. Every model (Sensorium, Flow, cGNF,
/// MDM/Platypose and the transformer layer) reads its weights through it, from a file with
/// [`StateDict::read`] or from tensors given in memory, so a NaN, an Inf or a mis-shaped tensor is
/// refused the same way everywhere.
pub struct StateDict<'a> {
    /// What the tensors are, for messages ("weights", "flow weights", …).
    what: &'static str,
    tensors: BTreeMap<String, Cow<'a, HostTensor>>,
}

/// Checks a state-dict tensor: present, of `shape` (where given), finite; the error names `what`
/// and the key.
fn checked<'t>(what: &str, key: &str, t: Option<&'t HostTensor>, shape: Option<&[usize]>) -> Result<&'t HostTensor> {
    let t = t.ok_or_else(|| match shape {
        Some(s) => Error::Weights(format!("{what}: missing key {key:?} (shape {s:?})")),
        None => Error::Weights(format!("{what}: missing key {key:?}")),
    })?;
    if let Some(s) = shape {
        if t.shape != s {
            return Err(Error::Weights(format!("{what}: {key:?} has shape {:?}, expected {s:?}", t.shape)));
        }
    }
    if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Weights(format!("{what}: {key:?} has a non-finite value ({}) at {i}", t.data[i])));
    }
    Ok(t)
}

impl StateDict<'static> {
    /// A state dict that owns its tensors.
    pub fn new(what: &'static str, tensors: BTreeMap<String, HostTensor>) -> StateDict<'static> {
        StateDict { what, tensors: tensors.into_iter().map(|(k, t)| (k, Cow::Owned(t))).collect() }
    }

    /// Reads a weights file (safetensors; integer and boolean buffers converted to f32): the one
    /// place a model's weights are read from a file.
    pub fn read(what: &'static str, path: &Path) -> Result<StateDict<'static>> {
        Ok(Self::new(what, crate::io::read_weights(path)?.tensors))
    }
}

impl<'a> StateDict<'a> {
    /// A state dict over tensors the caller keeps (each taken tensor is copied out of the map).
    pub fn borrowed(what: &'static str, tensors: &'a BTreeMap<String, HostTensor>) -> StateDict<'a> {
        StateDict { what, tensors: tensors.iter().map(|(k, t)| (k.clone(), Cow::Borrowed(t))).collect() }
    }

    /// The keys not taken yet, in order.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.tensors.keys().cloned()
    }

    pub fn has(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The shape of `key`, if present (to read a width before taking it).
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| &t.shape[..])
    }

    /// Removes `key`, checked: present, of `shape`, finite.
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Result<HostTensor> {
        self.take_opt_shape(key, Some(shape))
    }

    /// Removes `key` of any shape, checked for finiteness (the caller checks its shape).
    pub fn take_any(&mut self, key: &str) -> Result<HostTensor> {
        self.take_opt_shape(key, None)
    }

    fn take_opt_shape(&mut self, key: &str, shape: Option<&[usize]>) -> Result<HostTensor> {
        checked(self.what, key, self.tensors.get(key).map(|t| t.as_ref()), shape)?;
        Ok(self.tensors.remove(key).expect("checked above").into_owned())
    }

    /// Takes `key` if it is there (an optional tensor), checked as [`StateDict::take`].
    pub fn take_if(&mut self, key: &str, shape: &[usize]) -> Result<Option<HostTensor>> {
        if self.has(key) {
            self.take(key, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Removes a key a real model saves that inference does not use; never read, but still
    /// refused when it holds a NaN or an Inf (a sign of a corrupt or diverged checkpoint).
    pub fn accept_unused(&mut self, key: &str) -> Result<()> {
        if let Some(t) = self.tensors.get(key) {
            checked(self.what, key, Some(t.as_ref()), None)?;
            self.tensors.remove(key);
        }
        Ok(())
    }

    /// Removes, unchecked, a buffer the caller validates itself (index buffers, flags).
    pub fn remove_raw(&mut self, key: &str) -> Option<HostTensor> {
        self.tensors.remove(key).map(Cow::into_owned)
    }

    /// Accepts (unused) every key under `prefix`.
    pub fn accept_prefix(&mut self, prefix: &str) -> Result<()> {
        let keys: Vec<String> = self.tensors.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        for k in keys {
            self.accept_unused(&k)?;
        }
        Ok(())
    }

    /// Refuses keys no layer took, naming up to five of them.
    pub fn finish(&self) -> Result<()> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        let shown: Vec<String> = self.tensors.keys().take(5).map(|k| format!("{k:?}")).collect();
        Err(Error::Weights(format!(
            "{}: {} unexpected key(s) this config cannot place: {}{}",
            self.what,
            self.tensors.len(),
            shown.join(", "),
            if self.tensors.len() > 5 { ", …" } else { "" }
        )))
    }
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
