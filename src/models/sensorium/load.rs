//! State dict → Sensorium: PyTorch's keys read through [`StateDict`], each batch norm folded into
//! its conv, the ELU offset into the readout bias, a grid-mean predictor evaluated once; and the
//! upload.

use std::collections::BTreeMap;
use std::path::Path;

use super::stacked::{ConvKind, CorePlan, Keys, LayerPlan};
use super::weights::{CoreLayer, FoldedConv, Mlp, Readout};
use super::{CoreConfig, Sensorium, SensoriumConfig};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::ops::{self, Activation, Conv2dParams};
use crate::runtime::Context;
use crate::tensor::Tensor;

const WHAT: &str = "weights";

impl Mlp {
    /// Reads `{prefix}.{0,2,4,…}.{weight,bias}` (the Linear layers of an nn.Sequential with an
    /// activation between them), checking that widths chain from `input_width` (if known) to
    /// `output_width`.
    fn load(
        sd: &mut StateDict,
        prefix: &str,
        input_width: Option<usize>,
        output_width: usize,
        act: Activation,
        what: &'static str,
        input: &'static str,
    ) -> Result<Mlp> {
        let mut layers = Vec::new();
        let mut width = input_width;
        let mut j = 0;
        while sd.has(&format!("{prefix}.{j}.weight")) {
            let k = format!("{prefix}.{j}.weight");
            let shape = sd.shape(&k).unwrap_or_default().to_vec();
            if shape.len() != 2 || width.is_some_and(|w| shape[1] != w) {
                let cols = width.map_or("I".to_string(), |w| w.to_string());
                return Err(Error::Weights(format!("{WHAT}: {k:?} has shape {shape:?}, expected [H, {cols}]")));
            }
            let w = sd.take(&k, &shape)?;
            let b = sd.take(&format!("{prefix}.{j}.bias"), &[shape[0]])?;
            width = Some(shape[0]);
            layers.push((w, b));
            j += 2;
        }
        if width != Some(output_width) || layers.is_empty() {
            return Err(Error::Weights(format!(
                "weights: the {what} needs {prefix}.0.weight … ending in {output_width} outputs"
            )));
        }
        Ok(Mlp { layers, dev: Vec::new(), act, what, input })
    }

    fn upload(&mut self, ctx: &Context) -> Result<()> {
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        self.dev = self.layers.iter().map(|(w, b)| Ok((up(w)?, up(b)?))).collect::<Result<_>>()?;
        Ok(())
    }
}

/// The eval-mode positions of a `grid_mean_predictor` readout: mu = mu_transform(source_grid),
/// with mu_transform = Linear, (ELU, Linear)*, then Tanh when `final_tanh`; computed once, in f64.
pub(crate) fn predicted_mu(
    sd: &mut StateDict,
    pre: &str,
    m: usize,
    final_tanh: Option<bool>,
    key: &str,
) -> Result<HostTensor> {
    let final_tanh = final_tanh.ok_or_else(|| {
        Error::Config(format!(
            "config: readout {key:?} has a grid_mean_predictor; say \"grid_mean_final_tanh\": true or false"
        ))
    })?;
    let grid_key = format!("{pre}.source_grid");
    let gshape = sd.shape(&grid_key).unwrap_or_default().to_vec();
    let dims = match gshape[..] {
        [n, d] if n == m => d,
        [n, 1, 1, d] | [1, n, 1, d] if n == m => d,
        _ => return Err(Error::Weights(format!("weights: {grid_key:?} has shape {gshape:?}, expected [{m}, D]"))),
    };
    let grid = sd.take(&grid_key, &gshape)?;
    let mut h: Vec<f64> = grid.data.iter().map(|&v| v as f64).collect();
    let mut width = dims;
    let mut j = 0;
    let mut layers = 0;
    while sd.has(&format!("{pre}.mu_transform.{j}.weight")) {
        let wk = format!("{pre}.mu_transform.{j}.weight");
        let shape = sd.shape(&wk).unwrap_or_default().to_vec();
        if shape.len() != 2 || shape[1] != width {
            return Err(Error::Weights(format!("weights: {wk:?} has shape {shape:?}, expected [H, {width}]")));
        }
        let w = sd.take(&wk, &shape)?;
        let b = sd.take(&format!("{pre}.mu_transform.{j}.bias"), &[shape[0]])?;
        let o = shape[0];
        let mut next = vec![0f64; m * o];
        for n in 0..m {
            for r in 0..o {
                let mut acc = b.data[r] as f64;
                for c in 0..width {
                    acc += w.data[r * width + c] as f64 * h[n * width + c];
                }
                next[n * o + r] = acc;
            }
        }
        h = next;
        width = o;
        layers += 1;
        j += 2;
        // ELU between linear layers: applied when another layer follows.
        if sd.has(&format!("{pre}.mu_transform.{j}.weight")) {
            h.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { v.exp_m1() });
        }
    }
    if layers == 0 || width != 2 {
        return Err(Error::Weights(format!(
            "weights: the grid_mean_predictor of {key:?} needs {pre}.mu_transform.0.weight … ending in 2 outputs"
        )));
    }
    if final_tanh {
        h.iter_mut().for_each(|v| *v = v.tanh());
    }
    Ok(HostTensor::new(vec![1, m, 1, 2], h.iter().map(|&v| v as f32).collect()))
}

/// Takes `key` when `keys` says it exists (or, `AsSaved`, when the weights hold it).
fn take_if(sd: &mut StateDict, keys: Keys, key: &str, shape: &[usize]) -> Result<Option<HostTensor>> {
    match keys {
        Keys::Present => Ok(Some(sd.take(key, shape)?)),
        Keys::AsSaved if sd.has(key) => Ok(Some(sd.take(key, shape)?)),
        _ => Ok(None),
    }
}

/// The layer's BatchNorm (running statistics, affine parameters where the plan has them), then its
/// Bias2DLayer and Scale2DLayer, folded into one per-channel (scale, shift); None without any. The
/// rotation-equivariant ones (`shared_norm`) hold F features, repeated over the R rotations.
fn fold_norm(sd: &mut StateDict, p: &LayerPlan, eps: f32) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    let pre = &p.prefix;
    let (c, prefix, side) = if p.shared_norm {
        let f = p.out_channels / p.rotations;
        (f, format!("{pre}.norm.batch_norm"), vec![1, 1, f, 1, 1])
    } else {
        (p.out_channels, format!("{pre}.norm"), vec![1, p.out_channels, 1, 1])
    };
    let mut scale = vec![1f64; c];
    let mut shift = vec![0f64; c];
    let mut any = false;
    if let Some(affine) = p.norm {
        let mean = sd.take(&format!("{prefix}.running_mean"), &[c])?;
        let var = sd.take(&format!("{prefix}.running_var"), &[c])?;
        if let Some(i) = var.data.iter().position(|&v| v < 0.0) {
            return Err(Error::Weights(format!("weights: {prefix}.running_var[{i}] is negative")));
        }
        // BatchNorm2d(affine=False) saves no weight or bias.
        let w = take_if(sd, affine, &format!("{prefix}.weight"), &[c])?;
        let b = take_if(sd, affine, &format!("{prefix}.bias"), &[c])?;
        sd.accept_unused(&format!("{prefix}.num_batches_tracked"))?;
        for i in 0..c {
            let s = w.as_ref().map_or(1.0, |w| w.data[i] as f64) / (var.data[i] as f64 + eps as f64).sqrt();
            scale[i] = s;
            shift[i] = b.as_ref().map_or(0.0, |b| b.data[i] as f64) - mean.data[i] as f64 * s;
        }
        any = true;
    }
    if let Some(b) = take_if(sd, p.bias_layer, &format!("{pre}.bias.bias"), &side)? {
        shift.iter_mut().zip(&b.data).for_each(|(h, &b)| *h += b as f64);
        any = true;
    }
    if let Some(g) = take_if(sd, p.scale_layer, &format!("{pre}.scale.scale"), &side)? {
        for i in 0..c {
            scale[i] *= g.data[i] as f64;
            shift[i] *= g.data[i] as f64;
        }
        any = true;
    }
    let r = if p.shared_norm { p.rotations } else { 1 };
    let per_channel = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>().repeat(r);
    Ok(any.then(|| (per_channel(&scale), per_channel(&shift))))
}

/// One layer's conv chain with its folded norm and activation on the last conv.
fn load_layer(sd: &mut StateDict, p: &LayerPlan, eps: f32) -> Result<CoreLayer> {
    let (o, i, k) = (p.out_channels, p.in_channels, p.kern);
    let pre = &p.prefix;
    let mut take_conv = |name: &str, shape: [usize; 4]| -> Result<(HostTensor, Option<HostTensor>)> {
        let w = sd.take(&format!("{pre}.{name}.weight"), &shape)?;
        let b = take_if(sd, p.conv_bias, &format!("{pre}.{name}.bias"), &[shape[0]])?;
        Ok((w, b))
    };
    let spatial = Conv2dParams::default()
        .with_padding(p.padding, p.padding)
        .with_stride(p.stride, p.stride)
        .with_dilation(p.dilation, p.dilation);
    let conv = |(w, bias): (HostTensor, Option<HostTensor>), params: Conv2dParams| FoldedConv {
        w,
        bias,
        bn: None,
        params,
        act: Activation::Identity,
        dev: None,
    };
    let mut convs = match p.conv {
        ConvKind::DepthSeparable => vec![
            conv(take_conv("ds_conv.in_depth_conv", [o, i, 1, 1])?, Conv2dParams::default()),
            conv(take_conv("ds_conv.spatial_conv", [o, 1, k, k])?, spatial.with_groups(o)),
            conv(take_conv("ds_conv.out_depth_conv", [o, o, 1, 1])?, Conv2dParams::default()),
        ],
        ConvKind::Plain => vec![conv(take_conv("conv", [o, i, k, k])?, spatial)],
        // The kernels built from the Hermite coefficients (rot_eq.rs), no bias.
        ConvKind::Hermite { .. } => vec![conv((super::rot_eq::load_conv(sd, p)?, None), spatial)],
    };
    let last = convs.last_mut().expect("a conv");
    last.bn = fold_norm(sd, p, eps)?;
    last.act = p.act;
    Ok(CoreLayer { inputs: p.inputs.clone(), convs })
}

/// One `FullGaussian2d` readout of `key` on `hc` core channels (`readout.{key}.*`, with its
/// shifter `shifter.{key}.mlp.*` and modulator where `r` says so): positions from `_mu` or from a
/// `grid_mean_predictor`, the ELU offset folded into the bias where there is no modulator.
pub(crate) fn load_readout(
    sd: &mut StateDict,
    key: &str,
    r: &super::ReadoutConfig,
    hc: usize,
    elu_offset: f32,
) -> Result<Readout> {
    let m = r.neurons;
    let pre = format!("readout.{key}");
    let mu = if sd.has(&format!("{pre}._mu")) {
        sd.take(&format!("{pre}._mu"), &[1, m, 1, 2])?
    } else if sd.has(&format!("{pre}.source_grid")) {
        predicted_mu(sd, &pre, m, r.grid_mean_final_tanh, key)?
    } else {
        return Err(Error::Weights(format!(
            "weights: missing key \"{pre}._mu\" (or a grid_mean_predictor's \"{pre}.source_grid\")"
        )));
    };
    let f = sd.take(&format!("{pre}._features"), &[1, hc, 1, m])?;
    let bias = if sd.has(&format!("{pre}.bias")) {
        sd.take(&format!("{pre}.bias"), &[m])?
    } else {
        HostTensor::new(vec![m], vec![0.0; m])
    };
    // sigma only matters when sampling positions (training).
    if sd.has(&format!("{pre}.sigma")) {
        let s = sd.shape(&format!("{pre}.sigma")).unwrap_or_default();
        if s.len() != 4 || s[1] != m {
            return Err(Error::Weights(format!("weights: {pre}.sigma has shape {s:?}, expected [1, {m}, ., .]")));
        }
        sd.accept_unused(&format!("{pre}.sigma"))?;
    }
    let modulator = if r.modulator {
        let prefix = format!("modulator.{key}.modulator_networks.0");
        Some(Mlp::load(sd, &prefix, None, m, Activation::Relu, "modulator", "the behaviour [N, B]")?)
    } else {
        None
    };
    // Without a modulator the ELU offset folds into the bias.
    let offset = if modulator.is_none() { 0.0 } else { elu_offset };
    let fold = elu_offset - offset;
    let bias = HostTensor::new(vec![m], bias.data.iter().map(|b| b + fold).collect());
    let shifter = if r.shifter {
        let prefix = format!("shifter.{key}.mlp");
        Some(Mlp::load(sd, &prefix, Some(2), 2, Activation::Tanh, "shifter", "the eye position [N, 2]")?)
    } else {
        None
    };
    Ok(Readout {
        modulator,
        offset,
        shifter,
        mu: HostTensor::new(vec![m, 2], mu.data),
        features: HostTensor::new(vec![hc, m], f.data),
        bias,
        align_corners: r.align_corners,
        dev: None,
    })
}

impl Readout {
    /// Puts the readout (neurons sorted by position) and its MLPs on the device.
    pub(crate) fn upload(&mut self, ctx: &Context) -> Result<()> {
        let c = self.features.shape[0];
        self.dev = Some(ops::SortedReadout::new(ctx, &self.mu.data, &self.features.data, c, Some(&self.bias.data))?);
        for mlp in self.shifter.iter_mut().chain(self.modulator.iter_mut()) {
            mlp.upload(ctx)?;
        }
        Ok(())
    }
}

impl Sensorium {
    /// Loads weights (safetensors, PyTorch key names) and a JSON config, and uploads them.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Sensorium> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = SensoriumConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let sd = StateDict::read(WHAT, weights)?;
        let mut m = Self::from_dict(cfg, sd).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    /// Builds the model on the host from a state_dict; refuses missing, extra or mis-shaped keys.
    pub fn from_state_dict(config: SensoriumConfig, tensors: BTreeMap<String, HostTensor>) -> Result<Sensorium> {
        Self::from_dict(config, StateDict::new(WHAT, tensors))
    }

    fn from_dict(config: SensoriumConfig, mut sd: StateDict) -> Result<Sensorium> {
        config.validate()?;
        let (layers, plan) = load_core(&mut sd, &config.core)?;
        let hc = plan.out_channels;
        let mut readouts = BTreeMap::new();
        for (key, r) in &config.readouts {
            readouts.insert(key.clone(), load_readout(&mut sd, key, r, hc, config.elu_offset)?);
        }
        sd.finish()?;
        Ok(Sensorium { config, layers, stack: plan.stack, readouts })
    }

    /// Puts the folded weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        upload_layers(ctx, &mut self.layers)?;
        for r in self.readouts.values_mut() {
            r.upload(ctx)?;
        }
        Ok(())
    }
}

/// A core's layers as `core` plans them (`core.features.*`, and the input regularizer's buffer a
/// real model saves), with the plan.
pub(super) fn load_core(sd: &mut StateDict, core: &CoreConfig) -> Result<(Vec<CoreLayer>, CorePlan)> {
    let plan = core.plan()?;
    let layers = plan.layers.iter().map(|p| load_layer(sd, p, core.batch_norm_eps)).collect::<Result<Vec<_>>>()?;
    // The input regularizer's Laplace filter is a buffer a real model saves.
    sd.accept_unused("core._input_weights_regularizer.laplace.filter")?;
    Ok((layers, plan))
}

/// Puts a core's folded weights on the device.
pub(super) fn upload_layers(ctx: &Context, layers: &mut [CoreLayer]) -> Result<()> {
    let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
    for layer in layers.iter_mut() {
        for conv in layer.convs.iter_mut() {
            let w = up(&conv.w)?;
            let b = conv.bias.as_ref().map(up).transpose()?;
            let bn = match &conv.bn {
                Some((s, h)) => Some((Tensor::from_f32(ctx, s, &[s.len()])?, Tensor::from_f32(ctx, h, &[h.len()])?)),
                None => None,
            };
            conv.dev = Some((w, b, bn));
        }
    }
    Ok(())
}
