//! State dict → co-training twin: torchvision's keys (`features.N.*`, or `MTL_VGG`'s
//! `mtl_vgg_core.v1_block.N.*`) and the readouts' (`readout.<key>.*`, or `v1_readout.<key>.*`)
//! read through [`StateDict`]; each batch norm folded into its conv, a grey input's expansion
//! into the first conv, the ELU offset into the readout bias; and the upload.

use std::collections::BTreeMap;
use std::path::Path;

use super::config::{plan, Module};
use super::{Cotrain, CotrainConfig, FoldedConv, Layer, Readout};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::ops::{self, Conv2dParams};
use crate::runtime::Context;
use crate::tensor::Tensor;

const WHAT: &str = "weights";

/// A batch norm's running statistics and affine parameters as (scale, shift), in f64.
fn fold_bn(sd: &mut StateDict, prefix: &str, c: usize, eps: f32) -> Result<(Vec<f32>, Vec<f32>)> {
    let mean = sd.take(&format!("{prefix}.running_mean"), &[c])?;
    let var = sd.take(&format!("{prefix}.running_var"), &[c])?;
    if let Some(i) = var.data.iter().position(|&v| v < 0.0) {
        return Err(Error::Weights(format!("{WHAT}: {prefix}.running_var[{i}] is negative")));
    }
    let w = sd.take(&format!("{prefix}.weight"), &[c])?;
    let b = sd.take(&format!("{prefix}.bias"), &[c])?;
    sd.accept_unused(&format!("{prefix}.num_batches_tracked"))?;
    let mut scale = vec![0f32; c];
    let mut shift = vec![0f32; c];
    for i in 0..c {
        let s = w.data[i] as f64 / (var.data[i] as f64 + eps as f64).sqrt();
        scale[i] = s as f32;
        shift[i] = (b.data[i] as f64 - mean.data[i] as f64 * s) as f32;
    }
    Ok((scale, shift))
}

/// The first conv's weights [O, 3, KH, KW] summed over the input channels: [O, 1, KH, KW], the
/// conv of a grey image expanded to three equal channels.
fn grey(w: &HostTensor) -> HostTensor {
    let (o, k) = (w.shape[0], w.shape[2] * w.shape[3]);
    let mut out = vec![0f32; o * k];
    for oc in 0..o {
        for t in 0..k {
            out[oc * k + t] = (0..3).map(|c| w.data[(oc * 3 + c) * k + t] as f64).sum::<f64>() as f32;
        }
    }
    HostTensor::new(vec![o, 1, w.shape[2], w.shape[3]], out)
}

impl Cotrain {
    /// Loads weights (safetensors, PyTorch key names) and a JSON config, and uploads them.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Cotrain> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = CotrainConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut m = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    /// Builds the model on the host from a state_dict; refuses missing, extra or mis-shaped keys.
    pub fn from_state_dict(config: CotrainConfig, tensors: BTreeMap<String, HostTensor>) -> Result<Cotrain> {
        Self::from_dict(config, StateDict::new(WHAT, tensors))
    }

    fn from_dict(config: CotrainConfig, mut sd: StateDict) -> Result<Cotrain> {
        config.validate()?;
        let c = &config.core;
        // MTL_VGG's own names, or torchvision's.
        let upstream = sd.has("mtl_vgg_core.v1_block.0.weight");
        let (core, head) = if upstream { ("mtl_vgg_core.v1_block", "v1_readout") } else { ("features", "readout") };
        let mut layers = Vec::new();
        let mut channels = 3;
        for m in plan(c.layers).unwrap_or_default() {
            match m {
                Module::Conv { index, cin, cout } => {
                    let mut w = sd.take(&format!("{core}.{index}.weight"), &[cout, cin, 3, 3])?;
                    if index == 0 && c.input_channels == 1 {
                        w = grey(&w);
                    }
                    let bias = sd.take(&format!("{core}.{index}.bias"), &[cout])?;
                    let bn = fold_bn(&mut sd, &format!("{core}.{}", index + 1), cout, c.batch_norm_eps)?;
                    let params = Conv2dParams::default().with_padding(1, 1);
                    layers.push(Layer::Conv(FoldedConv { w, bias, bn, params, dev: None }));
                    channels = cout;
                }
                Module::MaxPool => layers.push(Layer::MaxPool),
            }
        }
        if upstream {
            // The classification branch (not run here) a co-trained model saves.
            sd.accept_prefix("mtl_vgg_core.unshared_block.")?;
            sd.accept_prefix("classification_readout.")?;
        }
        let mut readouts = BTreeMap::new();
        for (key, r) in &config.readouts {
            let m = r.neurons;
            let pre = format!("{head}.{key}");
            let mu = sd.take(&format!("{pre}.mu"), &[1, m, 1, 2])?;
            let f = sd.take(&format!("{pre}.features"), &[1, channels, 1, m])?;
            let bias =
                if r.bias { sd.take(&format!("{pre}.bias"), &[m])? } else { HostTensor::new(vec![m], vec![0.0; m]) };
            // sigma only matters when sampling positions (training).
            if sd.has(&format!("{pre}.sigma")) {
                sd.take(&format!("{pre}.sigma"), &[1, m, 1, 2])?;
            }
            let bias = HostTensor::new(vec![m], bias.data.iter().map(|b| b + config.elu_offset).collect());
            readouts.insert(
                key.clone(),
                Readout {
                    mu: HostTensor::new(vec![m, 2], mu.data),
                    features: HostTensor::new(vec![channels, m], f.data),
                    bias,
                    align_corners: r.align_corners,
                    dev: None,
                },
            );
        }
        sd.finish()?;
        Ok(Cotrain { config, layers, readouts })
    }

    /// Puts the folded weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        let up = |d: &[f32], s: &[usize]| Tensor::from_f32(ctx, d, s);
        for layer in &mut self.layers {
            if let Layer::Conv(conv) = layer {
                let (s, h) = &conv.bn;
                conv.dev = Some((
                    up(&conv.w.data, &conv.w.shape)?,
                    up(&conv.bias.data, &conv.bias.shape)?,
                    up(s, &[s.len()])?,
                    up(h, &[h.len()])?,
                ));
            }
        }
        for r in self.readouts.values_mut() {
            let c = r.features.shape[0];
            r.dev = Some(ops::SortedReadout::new(ctx, &r.mu.data, &r.features.data, c, Some(&r.bias.data))?);
        }
        Ok(())
    }
}
