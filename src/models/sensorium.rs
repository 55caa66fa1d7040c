//! The Sensorium 2022 baseline (neuralpredictors `Stacked2dCore` + one `FullGaussian2d` readout per
//! data key, ELU+1; docs/models.md, docs/ops.md, Gaussian readout) at inference, loaded from a PyTorch `state_dict`
//! saved as safetensors with PyTorch's own key names plus a small JSON config.
//!
//! Loading folds each batch norm into the epilogue of the conv before it (scale and shift), the
//! `elu_offset` into the readout bias, and fuses ELU+1 into the readout kernel. A forward pass is
//! recorded on one [`Recorder`]: layer 0 is one conv dispatch, each depth-separable layer three
//! (1×1, depthwise, 1×1 with BN and ELU), the readout one.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StateDict;
use crate::error::{Error, Result};
use crate::io::{read_safetensors, read_weights, HostTensor};
use crate::ops::{self, Activation, Conv2dParams, Epilogue};
use crate::reference;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

fn default_eps() -> f32 {
    1e-5
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// `Stacked2dCore`'s shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    pub input_channels: usize,
    pub hidden_channels: usize,
    pub input_kern: usize,
    pub hidden_kern: usize,
    pub layers: usize,
    #[serde(default)]
    pub pad_input: bool,
    #[serde(default = "yes")]
    pub depth_separable: bool,
    /// Only −1 (the last layer's output) is supported.
    #[serde(default = "minus_one")]
    pub stack: i64,
    #[serde(default = "default_eps")]
    pub batch_norm_eps: f32,
    #[serde(default = "one")]
    pub hidden_dilation: usize,
    #[serde(default = "one")]
    pub input_stride: usize,
    #[serde(default = "one")]
    pub stride: usize,
    /// ELU after the last layer too.
    #[serde(default = "yes")]
    pub final_nonlinearity: bool,
}

fn minus_one() -> i64 {
    -1
}

/// One data key's readout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadoutConfig {
    pub neurons: usize,
    #[serde(default = "yes")]
    pub align_corners: bool,
    /// A shifter MLP (`shifter.<key>.mlp.{0,2,4,…}`, Linear → Tanh each) maps the eye position
    /// [N, 2] to a shift of every neuron's position.
    #[serde(default)]
    pub shifter: bool,
    /// For a readout whose positions come from a `grid_mean_predictor` (`mu_transform.*` and the
    /// `source_grid` buffer instead of `_mu`): whether its MLP ends in Tanh (`final_tanh`, which
    /// the state_dict cannot show). Required when such a predictor is present.
    #[serde(default)]
    pub grid_mean_final_tanh: Option<bool>,
    /// A behaviour modulator (`modulator.<key>.modulator_networks.0.{0,2,…}`, Linear → ReLU each):
    /// the readout is multiplied by ELU(MLP(behaviour)) + 1 before the output nonlinearity.
    #[serde(default)]
    pub modulator: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensoriumConfig {
    pub core: CoreConfig,
    pub readouts: BTreeMap<String, ReadoutConfig>,
    #[serde(default)]
    pub elu_offset: f32,
}

impl SensoriumConfig {
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: SensoriumConfig =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("model config: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        let c = &self.core;
        let bad = |name: &str, why: &str| Err(Error::param("sensorium", name, why.to_string()));
        if c.layers == 0 {
            return bad("core.layers", "must be >= 1");
        }
        if c.input_channels == 0 || c.hidden_channels == 0 {
            return bad("core.channels", "must be >= 1");
        }
        if c.input_kern == 0 || c.hidden_kern == 0 || c.hidden_dilation == 0 || c.stride == 0 || c.input_stride == 0 {
            return bad("core", "kernels, strides and dilation must be >= 1");
        }
        // Every size bounded (so that products of a few of them cannot overflow), by name.
        for (name, v) in [
            ("core.input_channels", c.input_channels),
            ("core.hidden_channels", c.hidden_channels),
            ("core.input_kern", c.input_kern),
            ("core.hidden_kern", c.hidden_kern),
            ("core.layers", c.layers),
            ("core.hidden_dilation", c.hidden_dilation),
            ("core.input_stride", c.input_stride),
            ("core.stride", c.stride),
        ] {
            if v > ops::MAX_GEOMETRY {
                return bad(name, &format!("{v} is past the supported maximum {}", ops::MAX_GEOMETRY));
            }
        }
        if let Some((k, r)) = self.readouts.iter().find(|(_, r)| r.neurons > ops::MAX_GEOMETRY) {
            return bad("readouts", &format!("data key {k:?} has {} neurons, past {}", r.neurons, ops::MAX_GEOMETRY));
        }
        if c.stack != -1 {
            return bad("core.stack", "only -1 (the last layer's output) is supported");
        }
        if !(c.batch_norm_eps >= 0.0 && c.batch_norm_eps.is_finite()) {
            return bad("core.batch_norm_eps", "must be finite and >= 0");
        }
        if !self.elu_offset.is_finite() {
            return bad("elu_offset", "must be finite");
        }
        if self.readouts.is_empty() {
            return bad("readouts", "at least one data key is needed");
        }
        if let Some((k, _)) = self.readouts.iter().find(|(_, r)| r.neurons == 0) {
            return bad("readouts", &format!("data key {k:?} has no neurons"));
        }
        Ok(())
    }

    /// The core's output [C, H, W] for images of `h`×`w`.
    pub fn core_output(&self, h: usize, w: usize) -> Result<[usize; 3]> {
        let c = &self.core;
        let p0 = if c.pad_input { c.input_kern / 2 } else { 0 };
        let step = |size: usize, k: usize, pad: usize, stride: usize, dil: usize| -> Result<usize> {
            let ext = dil * (k - 1) + 1;
            if size + 2 * pad < ext {
                return Err(Error::shape(
                    "sensorium",
                    "images",
                    &[h, w],
                    format!("at least {ext} pixels for a {k}-wide kernel"),
                ));
            }
            Ok((size + 2 * pad - ext) / stride + 1)
        };
        let (mut oh, mut ow) =
            (step(h, c.input_kern, p0, c.input_stride, 1)?, step(w, c.input_kern, p0, c.input_stride, 1)?);
        let ph = ((c.hidden_kern - 1) * c.hidden_dilation + 1) / 2;
        for _ in 1..c.layers {
            oh = step(oh, c.hidden_kern, ph, c.stride, c.hidden_dilation)?;
            ow = step(ow, c.hidden_kern, ph, c.stride, c.hidden_dilation)?;
        }
        Ok([c.hidden_channels, oh, ow])
    }
}

/// A conv with its folded batch norm and activation, on the host (for the reference) and device.
struct FoldedConv {
    w: HostTensor,
    bias: Option<HostTensor>,
    /// Folded batch norm: (scale, shift).
    bn: Option<(Vec<f32>, Vec<f32>)>,
    params: Conv2dParams,
    act: Activation,
    dev: Option<(Tensor, Option<Tensor>, Option<(Tensor, Tensor)>)>,
}

/// A small MLP of a readout (the shifter: eye position → shift, Tanh after each layer; the
/// modulator: behaviour → gain, ReLU after each layer), host and device copies.
struct Mlp {
    layers: Vec<(HostTensor, HostTensor)>,
    dev: Vec<(Tensor, Tensor)>,
    act: Activation,
    /// What it is, for messages: "shifter" or "modulator".
    what: &'static str,
    /// What it takes: "the eye position [N, 2]" or "the behaviour [N, B]".
    input: &'static str,
}

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
                return Err(Error::Weights(format!(
                    "weights: {k:?} has shape {shape:?}, expected [H, {}]",
                    width.unwrap_or(0)
                )));
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

    fn record(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (w, b) in &self.dev {
            h = ops::linear(rec, &h, w, Some(b), self.act)?;
        }
        Ok(h)
    }

    fn reference(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut h = x.to_vec();
        let mut width = x.len() / n.max(1);
        for (w, b) in &self.layers {
            h = reference::linear(&h, n, width, &w.data, w.shape[0], Some(&b.data), self.act);
            width = w.shape[0];
        }
        h
    }
}

/// A readout's side input is needed exactly where its MLP exists: pairs them, or refuses.
fn side_input<'a, T>(mlp: &'a Option<Mlp>, input: Option<T>, key: &str, op_name: &str) -> Result<Option<(&'a Mlp, T)>> {
    match (mlp, input) {
        (None, None) => Ok(None),
        (Some(m), Some(x)) => Ok(Some((m, x))),
        (Some(m), None) => {
            Err(Error::param("sensorium", op_name, format!("data key {key:?} has a {}: {} is needed", m.what, m.input)))
        }
        (None, Some(_)) => Err(Error::param("sensorium", op_name, format!("data key {key:?} has no {op_name} input"))),
    }
}

struct Readout {
    /// Behaviour → gain (ELU+1 of its output multiplies the readout before the output nonlinearity).
    modulator: Option<Mlp>,
    /// The ELU offset, applied after the modulation (folded into the bias when there is none).
    offset: f32,
    /// Eye position → shift of every neuron's position.
    shifter: Option<Mlp>,
    /// [M, 2], features [C, M], bias [M] with the ELU offset folded in.
    mu: HostTensor,
    features: HostTensor,
    bias: HostTensor,
    align_corners: bool,
    /// mu, features and bias on the device, neurons in Z-order of their positions.
    dev: Option<ops::SortedReadout>,
}

/// A loaded model.
pub struct Sensorium {
    pub config: SensoriumConfig,
    layers: Vec<Vec<FoldedConv>>,
    readouts: BTreeMap<String, Readout>,
}

/// The eval-mode positions of a `grid_mean_predictor` readout: mu = mu_transform(source_grid),
/// with mu_transform = Linear, (ELU, Linear)*, then Tanh when `final_tanh`; computed once, in f64.
fn predicted_mu(sd: &mut StateDict, pre: &str, m: usize, final_tanh: Option<bool>, key: &str) -> Result<HostTensor> {
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

fn fold_bn(sd: &mut StateDict, prefix: &str, c: usize, eps: f32) -> Result<(Vec<f32>, Vec<f32>)> {
    let mean = sd.take(&format!("{prefix}.running_mean"), &[c])?;
    let var = sd.take(&format!("{prefix}.running_var"), &[c])?;
    if let Some(i) = var.data.iter().position(|&v| v < 0.0) {
        return Err(Error::Weights(format!("weights: {prefix}.running_var[{i}] is negative")));
    }
    // Affine parameters are optional (BatchNorm2d(affine=False) saves none).
    let w = if sd.has(&format!("{prefix}.weight")) { Some(sd.take(&format!("{prefix}.weight"), &[c])?) } else { None };
    let b = if sd.has(&format!("{prefix}.bias")) { Some(sd.take(&format!("{prefix}.bias"), &[c])?) } else { None };
    sd.accept_unused(&format!("{prefix}.num_batches_tracked"))?;
    let mut scale = vec![0f32; c];
    let mut shift = vec![0f32; c];
    for i in 0..c {
        let s = w.as_ref().map_or(1.0, |w| w.data[i] as f64) / (var.data[i] as f64 + eps as f64).sqrt();
        scale[i] = s as f32;
        shift[i] = (b.as_ref().map_or(0.0, |b| b.data[i] as f64) - mean.data[i] as f64 * s) as f32;
    }
    Ok((scale, shift))
}

impl Sensorium {
    /// Loads weights (safetensors, PyTorch key names) and a JSON config, and uploads them.
    pub fn load(ctx: &Context, weights: &Path, config: &Path) -> Result<Sensorium> {
        let text = std::fs::read_to_string(config)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: format!("cannot read: {e}") })?;
        let cfg = SensoriumConfig::from_json(&text)
            .map_err(|e| Error::File { path: config.display().to_string(), reason: e.to_string() })?;
        let w = read_weights(weights)?;
        let mut m = Self::from_state_dict(cfg, w.tensors).map_err(|e| e.in_files(weights, config))?;
        m.upload(ctx)?;
        Ok(m)
    }

    /// Builds the model on the host from a state_dict; refuses missing, extra or mis-shaped keys.
    pub fn from_state_dict(config: SensoriumConfig, tensors: BTreeMap<String, HostTensor>) -> Result<Sensorium> {
        config.validate()?;
        let mut sd = StateDict::new("weights", tensors);
        let c = &config.core;
        let hc = c.hidden_channels;
        let act_of =
            |l: usize| if l + 1 < c.layers || c.final_nonlinearity { Activation::Elu } else { Activation::Identity };
        let mut layers = Vec::new();
        // Layer 0: conv (no bias with batch norm), BN, ELU.
        let w0 = sd.take("core.features.layer0.conv.weight", &[hc, c.input_channels, c.input_kern, c.input_kern])?;
        let bias0 = if sd.has("core.features.layer0.conv.bias") {
            Some(sd.take("core.features.layer0.conv.bias", &[hc])?)
        } else {
            None
        };
        let bn0 = fold_bn(&mut sd, "core.features.layer0.norm", hc, c.batch_norm_eps)?;
        let p0 = if c.pad_input { c.input_kern / 2 } else { 0 };
        layers.push(vec![FoldedConv {
            w: w0,
            bias: bias0,
            bn: Some(bn0),
            params: Conv2dParams::default().with_padding(p0, p0).with_stride(c.input_stride, c.input_stride),
            act: act_of(0),
            dev: None,
        }]);
        let pad = ((c.hidden_kern - 1) * c.hidden_dilation + 1) / 2;
        let spatial = Conv2dParams::default()
            .with_padding(pad, pad)
            .with_stride(c.stride, c.stride)
            .with_dilation(c.hidden_dilation, c.hidden_dilation);
        for l in 1..c.layers {
            let pre = format!("core.features.layer{l}");
            let bn = fold_bn(&mut sd, &format!("{pre}.norm"), hc, c.batch_norm_eps)?;
            let mut take_conv = |name: &str, shape: [usize; 4]| -> Result<(HostTensor, Option<HostTensor>)> {
                let w = sd.take(&format!("{pre}.{name}.weight"), &shape)?;
                let b = if sd.has(&format!("{pre}.{name}.bias")) {
                    Some(sd.take(&format!("{pre}.{name}.bias"), &[shape[0]])?)
                } else {
                    None
                };
                Ok((w, b))
            };
            if c.depth_separable {
                let (wi, bi) = take_conv("ds_conv.in_depth_conv", [hc, hc, 1, 1])?;
                let (ws, bs) = take_conv("ds_conv.spatial_conv", [hc, 1, c.hidden_kern, c.hidden_kern])?;
                let (wo, bo) = take_conv("ds_conv.out_depth_conv", [hc, hc, 1, 1])?;
                layers.push(vec![
                    FoldedConv {
                        w: wi,
                        bias: bi,
                        bn: None,
                        params: Conv2dParams::default(),
                        act: Activation::Identity,
                        dev: None,
                    },
                    FoldedConv {
                        w: ws,
                        bias: bs,
                        bn: None,
                        params: spatial.with_groups(hc),
                        act: Activation::Identity,
                        dev: None,
                    },
                    FoldedConv {
                        w: wo,
                        bias: bo,
                        bn: Some(bn),
                        params: Conv2dParams::default(),
                        act: act_of(l),
                        dev: None,
                    },
                ]);
            } else {
                let (w, b) = take_conv("conv", [hc, hc, c.hidden_kern, c.hidden_kern])?;
                layers.push(vec![FoldedConv { w, bias: b, bn: Some(bn), params: spatial, act: act_of(l), dev: None }]);
            }
        }
        // The input regularizer's Laplace filter is a buffer a real model saves.
        sd.accept_unused("core._input_weights_regularizer.laplace.filter")?;
        let mut readouts = BTreeMap::new();
        for (key, r) in &config.readouts {
            let m = r.neurons;
            let pre = format!("readout.{key}");
            let mu = if sd.has(&format!("{pre}._mu")) {
                sd.take(&format!("{pre}._mu"), &[1, m, 1, 2])?
            } else if sd.has(&format!("{pre}.source_grid")) {
                predicted_mu(&mut sd, &pre, m, r.grid_mean_final_tanh, key)?
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
                    return Err(Error::Weights(format!(
                        "weights: {pre}.sigma has shape {s:?}, expected [1, {m}, ., .]"
                    )));
                }
                sd.accept_unused(&format!("{pre}.sigma"))?;
            }
            let modulator = if r.modulator {
                let prefix = format!("modulator.{key}.modulator_networks.0");
                Some(Mlp::load(&mut sd, &prefix, None, m, Activation::Relu, "modulator", "the behaviour [N, B]")?)
            } else {
                None
            };
            // Without a modulator the ELU offset folds into the bias.
            let offset = if modulator.is_none() { 0.0 } else { config.elu_offset };
            let fold = config.elu_offset - offset;
            let bias = HostTensor::new(vec![m], bias.data.iter().map(|b| b + fold).collect());
            let shifter = if r.shifter {
                let prefix = format!("shifter.{key}.mlp");
                Some(Mlp::load(&mut sd, &prefix, Some(2), 2, Activation::Tanh, "shifter", "the eye position [N, 2]")?)
            } else {
                None
            };
            readouts.insert(
                key.clone(),
                Readout {
                    modulator,
                    offset,
                    shifter,
                    mu: HostTensor::new(vec![m, 2], mu.data),
                    features: HostTensor::new(vec![hc, m], f.data),
                    bias,
                    align_corners: r.align_corners,
                    dev: None,
                },
            );
        }
        sd.finish()?;
        Ok(Sensorium { config, layers, readouts })
    }

    /// Puts the folded weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        for layer in &mut self.layers {
            for conv in layer.iter_mut() {
                let w = up(&conv.w)?;
                let b = conv.bias.as_ref().map(up).transpose()?;
                let bn = match &conv.bn {
                    Some((s, h)) => {
                        Some((Tensor::from_f32(ctx, s, &[s.len()])?, Tensor::from_f32(ctx, h, &[h.len()])?))
                    }
                    None => None,
                };
                conv.dev = Some((w, b, bn));
            }
        }
        for r in self.readouts.values_mut() {
            let c = r.features.shape[0];
            r.dev = Some(ops::SortedReadout::new(ctx, &r.mu.data, &r.features.data, c, Some(&r.bias.data))?);
            for mlp in r.shifter.iter_mut().chain(r.modulator.iter_mut()) {
                mlp.upload(ctx)?;
            }
        }
        Ok(())
    }

    /// Whether the readout of `key` has a shifter (and so needs eye positions).
    pub fn has_shifter(&self, key: &str) -> bool {
        self.readouts.get(key).is_some_and(|r| r.shifter.is_some())
    }

    pub fn data_keys(&self) -> Vec<&str> {
        self.readouts.keys().map(|k| k.as_str()).collect()
    }

    fn readout(&self, key: &str) -> Result<&Readout> {
        self.readouts.get(key).ok_or_else(|| {
            Error::param("sensorium", "data_key", format!("{key:?} is not one of {}", self.data_keys().join(", ")))
        })
    }

    /// Records the core on `rec` for images [N, input_channels, H, W]: its output [N, C, H', W'].
    pub fn record_core(&self, rec: &mut Recorder, images: &Tensor) -> Result<Tensor> {
        let c = &self.config.core;
        match images.shape() {
            &[_, ch, h, w] if ch == c.input_channels => {
                self.config.core_output(h, w)?;
            }
            s => return Err(Error::shape("sensorium", "images", s, format!("[N, {}, H, W]", c.input_channels))),
        }
        let mut x = images.clone();
        for layer in &self.layers {
            for conv in layer {
                let (w, b, bn) =
                    conv.dev.as_ref().ok_or_else(|| Error::param("sensorium", "weights", "not uploaded"))?;
                let epi =
                    Epilogue { scale: bn.as_ref().map(|p| &p.0), shift: bn.as_ref().map(|p| &p.1), act: conv.act };
                x = ops::conv2d(rec, &x, w, b.as_ref(), &conv.params, &epi)?;
            }
        }
        Ok(x)
    }

    /// Records the whole forward pass (core, readout of `key`, ELU+1): firing rates [N, neurons].
    pub fn record(&self, rec: &mut Recorder, images: &Tensor, key: &str) -> Result<Tensor> {
        self.record_with_eye(rec, images, None, key)
    }

    /// As [`Sensorium::record`], with the eye position [N, 2] for a readout that has a shifter
    /// (required there, refused elsewhere).
    pub fn record_with_eye(
        &self,
        rec: &mut Recorder,
        images: &Tensor,
        eye: Option<&Tensor>,
        key: &str,
    ) -> Result<Tensor> {
        self.record_full(rec, images, eye, None, key)
    }

    /// The forward pass with the eye position [N, 2] (readouts with a shifter) and the behaviour
    /// [N, B] (readouts with a modulator), each required exactly where its part exists.
    pub fn record_full(
        &self,
        rec: &mut Recorder,
        images: &Tensor,
        eye: Option<&Tensor>,
        behavior: Option<&Tensor>,
        key: &str,
    ) -> Result<Tensor> {
        rec.atomic(|rec| self.forward_unit(rec, images, eye, behavior, key))
    }

    /// Whether the readout of `key` has a behaviour modulator.
    pub fn has_modulator(&self, key: &str) -> bool {
        self.readouts.get(key).is_some_and(|r| r.modulator.is_some())
    }

    fn forward_unit(
        &self,
        rec: &mut Recorder,
        images: &Tensor,
        eye: Option<&Tensor>,
        behavior: Option<&Tensor>,
        key: &str,
    ) -> Result<Tensor> {
        let r = self.readout(key)?;
        let n = images.shape().first().copied().unwrap_or(0);
        let shift = match side_input(&r.shifter, eye, key, "eye")? {
            Some((mlp, e)) => {
                ops::expect_shape("sensorium", "eye", e, &[n, 2])?;
                Some(mlp.record(rec, e)?)
            }
            None => None,
        };
        let gain = match side_input(&r.modulator, behavior, key, "behavior")? {
            Some((mlp, bh)) => {
                let h = mlp.record(rec, bh)?;
                Some(ops::activation(rec, &h, Activation::Elu1)?)
            }
            None => None,
        };
        let core = self.record_core(rec, images)?;
        let sorted = r.dev.as_ref().ok_or_else(|| Error::param("sensorium", "weights", "not uploaded"))?;
        match gain {
            None => ops::gaussian_readout_sorted(rec, &core, sorted, shift.as_ref(), r.align_corners, Activation::Elu1),
            Some(g) => {
                let y = ops::gaussian_readout_sorted(
                    rec,
                    &core,
                    sorted,
                    shift.as_ref(),
                    r.align_corners,
                    Activation::Identity,
                )?;
                ops::mul(rec, &y, &g, r.offset, Activation::Elu1)
            }
        }
    }

    /// Host images [n, C, H, W] in, host responses [n, neurons] out: one upload, one submit, one
    /// readback.
    pub fn predict(&self, ctx: &Context, images: &[f32], shape: &[usize], key: &str) -> Result<Vec<f32>> {
        self.predict_with_eye(ctx, images, shape, None, key)
    }

    /// [`Sensorium::predict`] with eye positions [n, 2] for a readout with a shifter.
    pub fn predict_with_eye(
        &self,
        ctx: &Context,
        images: &[f32],
        shape: &[usize],
        eye: Option<&[f32]>,
        key: &str,
    ) -> Result<Vec<f32>> {
        self.predict_full(ctx, images, shape, eye, None, key)
    }

    /// [`Sensorium::predict`] with eye positions [n, 2] and behaviour [n, B] where the readout has a
    /// shifter or a modulator.
    pub fn predict_full(
        &self,
        ctx: &Context,
        images: &[f32],
        shape: &[usize],
        eye: Option<&[f32]>,
        behavior: Option<&[f32]>,
        key: &str,
    ) -> Result<Vec<f32>> {
        let n = shape.first().copied().unwrap_or(0);
        let x = Tensor::from_f32(ctx, images, shape)?;
        let e = eye.map(|e| Tensor::from_f32(ctx, e, &[n, 2])).transpose()?;
        let bh = match behavior {
            Some(b) if n > 0 && b.len() % n == 0 => Some(Tensor::from_f32(ctx, b, &[n, b.len() / n])?),
            Some(b) => {
                return Err(Error::DataLength {
                    op: "sensorium",
                    what: "behavior".into(),
                    got: b.len(),
                    expected: n,
                    shape: vec![n],
                })
            }
            None => None,
        };
        let mut rec = ctx.recorder();
        let y = self.record_full(&mut rec, &x, e.as_ref(), bh.as_ref(), key)?;
        let h = rec.read_back(&y);
        Ok(rec.submit()?.f32(h))
    }

    /// The same forward pass with the CPU reference ops (f64 accumulation), for checks.
    pub fn reference_forward(&self, images: &[f32], shape: &[usize], key: &str) -> Result<Vec<f32>> {
        self.reference_forward_with_eye(images, shape, None, key)
    }

    /// [`Sensorium::reference_forward`] with the eye position [N, 2] for a shifter.
    pub fn reference_forward_with_eye(
        &self,
        images: &[f32],
        shape: &[usize],
        eye: Option<&[f32]>,
        key: &str,
    ) -> Result<Vec<f32>> {
        self.reference_forward_full(images, shape, eye, None, key)
    }

    /// [`Sensorium::reference_forward`] with the eye position and the behaviour [N, B].
    pub fn reference_forward_full(
        &self,
        images: &[f32],
        shape: &[usize],
        eye: Option<&[f32]>,
        behavior: Option<&[f32]>,
        key: &str,
    ) -> Result<Vec<f32>> {
        let r = self.readout(key)?;
        let n: usize = shape.iter().product();
        if shape.len() != 4 || images.len() != n {
            return Err(Error::DataLength {
                op: "sensorium",
                what: "images".into(),
                got: images.len(),
                expected: n,
                shape: shape.to_vec(),
            });
        }
        if let Some(e) = eye {
            if e.len() != 2 * shape[0] {
                return Err(Error::DataLength {
                    op: "sensorium",
                    what: "eye".into(),
                    got: e.len(),
                    expected: 2 * shape[0],
                    shape: vec![shape[0], 2],
                });
            }
        }
        let shift = side_input(&r.shifter, eye, key, "eye")?.map(|(mlp, e)| mlp.reference(e, shape[0]));
        let gain = side_input(&r.modulator, behavior, key, "behavior")?
            .map(|(mlp, bh)| reference::activation(&mlp.reference(bh, shape[0]), Activation::Elu1));
        let mut x = images.to_vec();
        let mut s = shape.to_vec();
        for layer in &self.layers {
            for conv in layer {
                let bn = conv.bn.as_ref().map(|(a, b)| (&a[..], &b[..]));
                let (y, ys) = reference::conv2d(
                    &x,
                    &s,
                    &conv.w.data,
                    &conv.w.shape,
                    conv.bias.as_ref().map(|b| &b.data[..]),
                    &conv.params,
                    bn,
                    conv.act,
                )?;
                x = y;
                s = ys;
            }
        }
        let y = reference::readout::gaussian_readout(
            &x,
            s[0],
            s[1],
            s[2],
            s[3],
            &r.mu.data,
            &r.features.data,
            Some(&r.bias.data),
            shift.as_deref(),
            r.align_corners,
        );
        match gain {
            Some(g) => {
                let z: Vec<f32> =
                    y.iter().zip(&g).map(|(a, b)| (*a as f64 * *b as f64 + r.offset as f64) as f32).collect();
                Ok(reference::activation(&z, Activation::Elu1))
            }
            None => Ok(reference::activation(&y, Activation::Elu1)),
        }
    }

    /// A model with random weights (for benchmarks), as `from_state_dict` would build it.
    pub fn random(config: SensoriumConfig, seed: u64) -> Result<Sensorium> {
        let mut rng = crate::rng::SplitMix::new(seed);
        let mut sd = BTreeMap::new();
        let c = config.core.clone();
        let hc = c.hidden_channels;
        let mut put = |k: String, shape: Vec<usize>, lo: f32, hi: f32| {
            let n = shape.iter().product();
            sd.insert(k, HostTensor::new(shape, rng.vec(n, lo, hi)));
        };
        let s0 = 1.0 / ((c.input_channels * c.input_kern * c.input_kern) as f32).sqrt();
        put("core.features.layer0.conv.weight".into(), vec![hc, c.input_channels, c.input_kern, c.input_kern], -s0, s0);
        for l in 0..c.layers {
            let pre = format!("core.features.layer{l}");
            put(format!("{pre}.norm.running_mean"), vec![hc], -0.5, 0.5);
            put(format!("{pre}.norm.running_var"), vec![hc], 0.5, 2.0);
            put(format!("{pre}.norm.weight"), vec![hc], 0.5, 1.5);
            put(format!("{pre}.norm.bias"), vec![hc], -0.2, 0.2);
            if l == 0 {
                continue;
            }
            let s1 = 1.0 / (hc as f32).sqrt();
            let sk = 1.0 / (c.hidden_kern as f32);
            for (name, shape, s) in [
                ("ds_conv.in_depth_conv", vec![hc, hc, 1, 1], s1),
                ("ds_conv.spatial_conv", vec![hc, 1, c.hidden_kern, c.hidden_kern], sk),
                ("ds_conv.out_depth_conv", vec![hc, hc, 1, 1], s1),
            ] {
                put(format!("{pre}.{name}.weight"), shape, -s, s);
                put(format!("{pre}.{name}.bias"), vec![hc], -0.1, 0.1);
            }
        }
        for (key, r) in &config.readouts {
            if r.modulator {
                for (j, (o, i)) in [(6, 3), (r.neurons, 6)].into_iter().enumerate() {
                    put(format!("modulator.{key}.modulator_networks.0.{}.weight", 2 * j), vec![o, i], -0.5, 0.5);
                    put(format!("modulator.{key}.modulator_networks.0.{}.bias", 2 * j), vec![o], -0.2, 0.2);
                }
            }
            if r.shifter {
                for (j, (o, i)) in [(5, 2), (5, 5), (2, 5)].into_iter().enumerate() {
                    put(format!("shifter.{key}.mlp.{}.weight", 2 * j), vec![o, i], -0.7, 0.7);
                    put(format!("shifter.{key}.mlp.{}.bias", 2 * j), vec![o], -0.2, 0.2);
                }
            }
            put(format!("readout.{key}._mu"), vec![1, r.neurons, 1, 2], -1.0, 1.0);
            put(format!("readout.{key}._features"), vec![1, hc, 1, r.neurons], -0.2, 0.2);
            put(format!("readout.{key}.bias"), vec![r.neurons], -0.5, 0.5);
        }
        Self::from_state_dict(config, sd)
    }

    /// The Sensorium 2022 baseline's shape with `neurons` neurons under data key "bench".
    pub fn baseline_config(neurons: usize) -> SensoriumConfig {
        SensoriumConfig {
            core: CoreConfig {
                input_channels: 1,
                hidden_channels: 64,
                input_kern: 9,
                hidden_kern: 7,
                layers: 4,
                pad_input: false,
                depth_separable: true,
                stack: -1,
                batch_norm_eps: 1e-5,
                hidden_dilation: 1,
                input_stride: 1,
                stride: 1,
                final_nonlinearity: true,
            },
            readouts: [(
                "bench".to_string(),
                ReadoutConfig {
                    neurons,
                    align_corners: true,
                    shifter: false,
                    grid_mean_final_tanh: None,
                    modulator: false,
                },
            )]
            .into(),
            elu_offset: 0.0,
        }
    }
}

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
