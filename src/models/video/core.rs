//! The video core on its own (`VideoCore`): neuralpredictors' `Factorized3dCore` or
//! `Basic3dCore` loaded from upstream's keys with each BatchNorm3d (and Bias3D / Scale3D layer)
//! folded into the last conv of its layer, or a 2-D core (the Sensorium's `Stacked2dCore` /
//! `RotationEquivariant2dCore`) run on every frame; its GPU forward on clips, its f64 CPU
//! reference, and a stream state ([`CoreStream`]) that keeps each temporal conv's last
//! `dilation · (kt − 1)` input frames on the device so that new frames cost only their own work (a
//! 2-D core keeps nothing: it has no lookback).

use super::config::{Core3dConfig, LayerPlan, VideoCoreConfig};
use super::OP;
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::sensorium::Core2d;
use crate::models::StateDict;
use crate::ops::{self, Activation, Conv3dParams, Epilogue};
use crate::reference;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

struct Conv {
    w: HostTensor,
    bias: Option<HostTensor>,
    params: Conv3dParams,
    lookback: usize,
    dev: Option<(Tensor, Option<Tensor>)>,
}

struct Layer {
    convs: Vec<Conv>,
    /// The folded norm: per-channel (scale, shift), host and device.
    bn: Option<(Vec<f32>, Vec<f32>)>,
    dev_bn: Option<(Tensor, Tensor)>,
    act: Activation,
}

enum Imp {
    ThreeD(Vec<Layer>),
    TwoD(Core2d),
}

/// A loaded video core.
pub struct VideoCore {
    pub config: VideoCoreConfig,
    imp: Imp,
}

/// The folded BatchNorm3d (eval: running statistics), then the Bias3DLayer or Scale3DLayer.
fn fold_norm(sd: &mut StateDict, cfg: &Core3dConfig, p: &LayerPlan) -> Result<Option<(Vec<f32>, Vec<f32>)>> {
    if !cfg.batch_norm {
        return Ok(None);
    }
    let (c, pre) = (p.channels, &p.prefix);
    let mean = sd.take(&format!("{pre}.norm.running_mean"), &[c])?;
    let var = sd.take(&format!("{pre}.norm.running_var"), &[c])?;
    if let Some(i) = var.data.iter().position(|&v| v < 0.0) {
        return Err(Error::Weights(format!("weights: {pre}.norm.running_var[{i}] is negative")));
    }
    sd.accept_unused(&format!("{pre}.norm.num_batches_tracked"))?;
    let affine = cfg.bias && cfg.batch_norm_scale;
    let (w, b) = if affine {
        (Some(sd.take(&format!("{pre}.norm.weight"), &[c])?), Some(sd.take(&format!("{pre}.norm.bias"), &[c])?))
    } else {
        (None, None)
    };
    let eps = cfg.batch_norm_eps as f64;
    let mut scale = vec![0f64; c];
    let mut shift = vec![0f64; c];
    for i in 0..c {
        let s = w.as_ref().map_or(1.0, |w| w.data[i] as f64) / (var.data[i] as f64 + eps).sqrt();
        scale[i] = s;
        shift[i] = b.as_ref().map_or(0.0, |b| b.data[i] as f64) - mean.data[i] as f64 * s;
    }
    let side = [1, c, 1, 1, 1];
    if cfg.bias && !cfg.batch_norm_scale {
        let b = sd.take(&format!("{pre}.bias.bias"), &side)?;
        shift.iter_mut().zip(&b.data).for_each(|(h, &b)| *h += b as f64);
    } else if !cfg.bias && cfg.batch_norm_scale {
        let g = sd.take(&format!("{pre}.scale.scale"), &side)?;
        for i in 0..c {
            scale[i] *= g.data[i] as f64;
            shift[i] *= g.data[i] as f64;
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    Ok(Some((f(scale), f(shift))))
}

impl VideoCore {
    /// Takes the core's keys (`core.features.layer{l}.…`, upstream's names) from `sd`. Conv
    /// biases of a 3-D core are read where the weights hold them (upstream's hidden convs carry
    /// one whatever `bias` says); a 2-D core's keys are the Sensorium core's; the regularizers'
    /// buffers are accepted unused.
    pub fn from_state_dict(config: VideoCoreConfig, sd: &mut StateDict) -> Result<VideoCore> {
        let c3 = match &config {
            VideoCoreConfig::ThreeD(c) => c,
            VideoCoreConfig::TwoD(c) => {
                config.validate()?;
                let core = Core2d::load(c, sd)?;
                return Ok(VideoCore { config, imp: Imp::TwoD(core) });
            }
        };
        let plan = c3.plan()?;
        let mut layers = Vec::with_capacity(plan.len());
        for p in &plan {
            let mut convs = Vec::new();
            for c in &p.convs {
                let w = sd.take(&format!("{}.weight", c.prefix), &c.shape)?;
                let bias = sd.take_if(&format!("{}.bias", c.prefix), &[c.shape[0]])?;
                convs.push(Conv { w, bias, params: c.params, lookback: c.lookback(), dev: None });
            }
            let bn = fold_norm(sd, c3, p)?;
            layers.push(Layer { convs, bn, dev_bn: None, act: p.act });
        }
        sd.accept_prefix("core._input_weight_regularizer.")?;
        sd.accept_prefix("core.temporal_regularizer.")?;
        Ok(VideoCore { config, imp: Imp::ThreeD(layers) })
    }

    /// Puts the folded weights on the device.
    pub fn upload(&mut self, ctx: &Context) -> Result<()> {
        let layers = match &mut self.imp {
            Imp::ThreeD(l) => l,
            Imp::TwoD(core) => return core.upload(ctx),
        };
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        for l in layers {
            for c in &mut l.convs {
                c.dev = Some((up(&c.w)?, c.bias.as_ref().map(up).transpose()?));
            }
            l.dev_bn = match &l.bn {
                Some((s, h)) => Some((Tensor::from_f32(ctx, s, &[s.len()])?, Tensor::from_f32(ctx, h, &[h.len()])?)),
                None => None,
            };
        }
        Ok(())
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        match (&self.imp, &self.config) {
            (Imp::TwoD(core), _) => core.out_channels(),
            (_, VideoCoreConfig::ThreeD(c)) => *c.hidden_channels.last().unwrap_or(&0),
            _ => 0,
        }
    }

    fn layers(&self) -> &[Layer] {
        match &self.imp {
            Imp::ThreeD(l) => l,
            Imp::TwoD(_) => &[],
        }
    }

    /// Records one conv of layer `l` (the last one with the norm and the activation).
    fn record_conv(&self, rec: &mut Recorder, l: usize, i: usize, x: &Tensor) -> Result<Tensor> {
        let layer = &self.layers()[l];
        let c = &layer.convs[i];
        let (w, b) = c.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let last = i + 1 == layer.convs.len();
        let epi = if last {
            Epilogue {
                scale: layer.dev_bn.as_ref().map(|p| &p.0),
                shift: layer.dev_bn.as_ref().map(|p| &p.1),
                act: layer.act,
            }
        } else {
            Epilogue::default()
        };
        ops::conv3d(rec, x, w, b.as_ref(), &c.params, &epi)
    }

    /// A 2-D core on clip frames [B, C, k, H, W] (checked): the frames as a batch [B·k, C, H, W]
    /// through the core, back to [B, C', k, H', W'].
    fn record_2d(&self, rec: &mut Recorder, core: &Core2d, video: &Tensor) -> Result<Tensor> {
        let [b, c, t, h, w] = video.shape()[..] else { unreachable!("5-D, checked") };
        let frames = ops::copy::swap_mid(rec, video, [b, c, t, h * w], &[b * t, c, h, w])?;
        let y = core.record(rec, &frames)?;
        let [_, co, ho, wo] = y.shape()[..] else { unreachable!("4-D") };
        ops::copy::swap_mid(rec, &y, [b, t, co, ho * wo], &[b, co, t, ho, wo])
    }

    /// Records the core on a clip [B, C, T, H, W]: [B, C', T', H', W'].
    pub fn record(&self, rec: &mut Recorder, video: &Tensor) -> Result<Tensor> {
        self.config.output_shape(video.shape())?;
        if let Imp::TwoD(core) = &self.imp {
            return rec.atomic(|rec| self.record_2d(rec, core, video));
        }
        let mut x = video.clone();
        for l in 0..self.layers().len() {
            for i in 0..self.layers()[l].convs.len() {
                x = self.record_conv(rec, l, i, &x)?;
            }
        }
        Ok(x)
    }

    /// The core with the CPU reference ops (f64 accumulation): data and shape [B, C', T', H', W'].
    pub fn reference(&self, video: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        self.config.output_shape(shape)?;
        reference::check_len(OP, "video", video, shape)?;
        if let Imp::TwoD(core) = &self.imp {
            let &[b, c, t, h, w] = shape else { unreachable!("5-D, checked") };
            let frames = swap_mid(video, b, c, t, h * w);
            let (y, ys) = core.reference(&frames, &[b * t, c, h, w])?;
            let [_, co, ho, wo] = ys[..] else { unreachable!("4-D") };
            return Ok((swap_mid(&y, b, t, co, ho * wo), vec![b, co, t, ho, wo]));
        }
        let (mut x, mut s) = (video.to_vec(), shape.to_vec());
        for layer in self.layers() {
            let n = layer.convs.len();
            for (i, c) in layer.convs.iter().enumerate() {
                let last = i + 1 == n;
                let bn = if last { layer.bn.as_ref().map(|(a, b)| (&a[..], &b[..])) } else { None };
                let act = if last { layer.act } else { Activation::Identity };
                (x, s) = reference::conv3d(
                    &x,
                    &s,
                    &c.w.data,
                    &c.w.shape,
                    c.bias.as_ref().map(|b| &b.data[..]),
                    &c.params,
                    bn,
                    act,
                )?;
            }
        }
        Ok((x, s))
    }

    /// A fresh stream state for clips of `batch` × H × W frames.
    pub fn stream(&self, batch: usize, h: usize, w: usize) -> Result<CoreStream> {
        let need = self.config.receptive_frames()?;
        // The frame size must give a core output: checked on a clip of the receptive field.
        self.config.output_shape(&[batch, self.config.input_channels(), need, h, w])?;
        let hist = self.layers().iter().map(|l| vec![None; l.convs.len()]).collect();
        Ok(CoreStream { batch, h, w, hist, seen: 0 })
    }

    /// Records `frames` [B, C, k, H, W] fed to `state`: the core's output for the new frames whose
    /// receptive field is complete, [B, C', k', H', W'] (None during the first R − 1 frames; a 2-D
    /// core has R = 1). The state changes only when everything was recorded.
    pub fn record_stream(&self, rec: &mut Recorder, state: &mut CoreStream, frames: &Tensor) -> Result<Option<Tensor>> {
        let c = self.config.input_channels();
        match frames.shape() {
            &[b, ch, k, h, w] if b == state.batch && ch == c && h == state.h && w == state.w && k > 0 => {}
            s => {
                return Err(Error::shape(
                    OP,
                    "frames",
                    s,
                    format!(
                        "[{}, {c}, k >= 1, {}, {}] (the stream's batch and frame size)",
                        state.batch, state.h, state.w
                    ),
                ))
            }
        }
        if let Imp::TwoD(core) = &self.imp {
            let y = rec.atomic(|rec| self.record_2d(rec, core, frames))?;
            state.seen += frames.shape()[2];
            return Ok(Some(y));
        }
        let mut hist = state.hist.clone();
        let out = rec.atomic(|rec| {
            let mut x = frames.clone();
            for l in 0..self.layers().len() {
                for i in 0..self.layers()[l].convs.len() {
                    let back = self.layers()[l].convs[i].lookback;
                    if back == 0 {
                        x = self.record_conv(rec, l, i, &x)?;
                        continue;
                    }
                    let cat = match &hist[l][i] {
                        Some(h) => concat_time(rec, h, &x)?,
                        None => x.clone(),
                    };
                    let t = cat.shape()[2];
                    if t <= back {
                        hist[l][i] = Some(cat);
                        return Ok(None);
                    }
                    let [b, ch, _, hh, ww] = cat.shape()[..] else { unreachable!("5-D") };
                    hist[l][i] = Some(
                        ops::copy::narrow_mid(rec, &cat.reshape(&[b * ch, t, hh, ww])?, b * ch, t - back, back)?
                            .reshape(&[b, ch, back, hh, ww])?,
                    );
                    x = self.record_conv(rec, l, i, &cat)?;
                }
            }
            Ok(Some(x))
        })?;
        state.hist = hist;
        state.seen += frames.shape()[2];
        Ok(out)
    }
}

/// [A, P, Q, D] → [A, Q, P, D] on the host (a clip's channel and time axes swapped).
pub(super) fn swap_mid(x: &[f32], a: usize, p: usize, q: usize, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for ai in 0..a {
        for pi in 0..p {
            for qi in 0..q {
                let src = ((ai * p + pi) * q + qi) * d;
                let dst = ((ai * q + qi) * p + pi) * d;
                out[dst..dst + d].copy_from_slice(&x[src..src + d]);
            }
        }
    }
    out
}

/// [B, C, T1, H, W] and [B, C, T2, H, W] concatenated in time.
fn concat_time(rec: &mut Recorder, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let [n, c, t1, h, w] = a.shape()[..] else { unreachable!("5-D") };
    let t2 = b.shape()[2];
    let y = ops::copy::concat_mid(rec, &a.reshape(&[n * c, t1, h, w])?, &b.reshape(&[n * c, t2, h, w])?)?;
    y.reshape(&[n, c, t1 + t2, h, w])
}

/// A [`VideoCore`]'s stream state: per temporal conv the last frames of its input, on the device.
#[derive(Clone)]
pub struct CoreStream {
    batch: usize,
    h: usize,
    w: usize,
    hist: Vec<Vec<Option<Tensor>>>,
    seen: usize,
}

impl CoreStream {
    /// Frames fed so far.
    pub fn frames_seen(&self) -> usize {
        self.seen
    }
    /// (batch, H, W) of the frames it takes.
    pub fn frame_shape(&self) -> (usize, usize, usize) {
        (self.batch, self.h, self.w)
    }
    /// Forgets every frame fed.
    pub fn reset(&mut self) {
        self.hist.iter_mut().flatten().for_each(|h| *h = None);
        self.seen = 0;
    }
}
