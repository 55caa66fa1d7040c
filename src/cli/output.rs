//! What the commands share to write their outputs: the device metadata, and reading back a
//! recorder's named tensors and writing them.

use std::collections::HashMap;
use std::path::Path;

use vcortex::io::HostTensor;
use vcortex::runtime::{Finished, ReadHandle};
use vcortex::{Context, Recorder, Result, Tensor};

/// The output file's metadata: the device it ran on.
pub fn device_meta(ctx: &Context) -> HashMap<String, String> {
    let mut meta = HashMap::new();
    meta.insert("adapter".to_string(), ctx.adapter().name.clone());
    meta.insert("backend".to_string(), ctx.adapter().backend.clone());
    meta
}

/// Reads back the named tensors of `rec`, submits it once and writes them to `path`.
pub fn submit_and_write(
    mut rec: Recorder,
    outs: &[(&str, &Tensor)],
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<()> {
    let handles: Vec<_> = outs.iter().map(|(_, t)| rec.read_back(t)).collect();
    let done = rec.submit()?;
    vcortex::io::write_safetensors(path, &read_outs(outs, handles, &done), meta)
}

/// The named tensors' values from a finished submit, as host tensors of their shapes.
pub fn read_outs(outs: &[(&str, &Tensor)], handles: Vec<ReadHandle>, done: &Finished) -> Vec<(String, HostTensor)> {
    outs.iter()
        .zip(handles)
        .map(|((name, t), h)| (name.to_string(), HostTensor::new(t.shape().to_vec(), done.f32(h))))
        .collect()
}
