//! The Sensorium's GPU forward, recorded on a [`Recorder`]: the core, the readout of a data key
//! (with its shifter and modulator), and `predict` (host in, one submit, host out).

use super::weights::{side_input, CoreLayer, Mlp};
use super::{Sensorium, OP};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, Epilogue};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

impl Mlp {
    pub(crate) fn record(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (w, b) in &self.dev {
            h = ops::linear(rec, &h, w, Some(b), self.act)?;
        }
        Ok(h)
    }
}

impl Sensorium {
    /// Records the core on `rec` for images [N, input_channels, H, W]: its output [N, C, H', W'].
    pub fn record_core(&self, rec: &mut Recorder, images: &Tensor) -> Result<Tensor> {
        let c = &self.config.core;
        match images.shape() {
            &[_, ch, h, w] if ch == c.input_channels => {
                self.config.core_output(h, w)?;
            }
            s => return Err(Error::shape(OP, "images", s, format!("[N, {}, H, W]", c.input_channels))),
        }
        record_layers(rec, &self.layers, &self.stack, images)
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
                ops::expect_shape(OP, "eye", e, &[n, 2])?;
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
        let sorted = r.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
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
        let x = Tensor::from_input(ctx, OP, "images", images, shape)?;
        let e = eye.map(|e| Tensor::from_input(ctx, OP, "eye", e, &[n, 2])).transpose()?;
        let bh = match behavior {
            Some(b) if n > 0 && b.len() % n == 0 => {
                Some(Tensor::from_input(ctx, OP, "behavior", b, &[n, b.len() / n])?)
            }
            Some(b) => {
                return Err(Error::shape(
                    OP,
                    "behavior",
                    &[b.len()],
                    format!("[{n}, B] (a row per image: a multiple of {n} values)"),
                ))
            }
            None => None,
        };
        let mut rec = ctx.recorder();
        let y = self.record_full(&mut rec, &x, e.as_ref(), bh.as_ref(), key)?;
        let h = rec.read_back(&y);
        Ok(rec.submit()?.f32(h))
    }
}

/// Records a core's layers on images [N, C, H, W] (checked by the caller): the outputs of the
/// `stack` layers, concatenated along channels.
pub(super) fn record_layers(
    rec: &mut Recorder,
    layers: &[CoreLayer],
    stack: &[usize],
    images: &Tensor,
) -> Result<Tensor> {
    // Every layer's output, for the layers that read several (skip) and for the stack.
    let mut outs: Vec<Tensor> = Vec::with_capacity(layers.len());
    for layer in layers {
        let mut x = if layer.inputs.is_empty() {
            images.clone()
        } else {
            let parts: Vec<&Tensor> = layer.inputs.iter().map(|&i| &outs[i]).collect();
            ops::concat_channels(rec, &parts)?
        };
        for conv in &layer.convs {
            let (w, b, bn) = conv.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
            let epi = Epilogue { scale: bn.as_ref().map(|p| &p.0), shift: bn.as_ref().map(|p| &p.1), act: conv.act };
            x = ops::conv2d(rec, &x, w, b.as_ref(), &conv.params, &epi)?;
        }
        outs.push(x);
    }
    let parts: Vec<&Tensor> = stack.iter().map(|&i| &outs[i]).collect();
    ops::concat_channels(rec, &parts)
}
