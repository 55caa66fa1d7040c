//! The co-training twin's GPU forward, recorded on a [`Recorder`]: the VGG core, a session's
//! readout with ELU+1, and `predict` (host in, one submit, host out).

use super::{Cotrain, Layer, OP};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, Epilogue, Pool2dParams};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

impl Cotrain {
    /// Records the core on `rec` for images [N, input_channels, H, W]: its output [N, C, H', W'].
    pub fn record_core(&self, rec: &mut Recorder, images: &Tensor) -> Result<Tensor> {
        let c = &self.config.core;
        match images.shape() {
            &[_, ch, h, w] if ch == c.input_channels => {
                self.config.core_output(h, w)?;
            }
            s => return Err(Error::shape(OP, "images", s, format!("[N, {}, H, W]", c.input_channels))),
        }
        let mut x = images.clone();
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(conv) => {
                    let (w, b, s, h) = conv.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                    let epi = Epilogue { scale: Some(s), shift: Some(h), act: Activation::Relu };
                    ops::conv2d(rec, &x, w, Some(b), &conv.params, &epi)?
                }
                Layer::MaxPool => ops::max_pool2d(rec, &x, &Pool2dParams::square(2))?,
            };
        }
        Ok(x)
    }

    /// Records the whole forward pass (core, readout of session `key`, ELU+1 with the offset):
    /// firing rates [N, neurons].
    pub fn record(&self, rec: &mut Recorder, images: &Tensor, key: &str) -> Result<Tensor> {
        rec.atomic(|rec| {
            let r = self.readout(key)?;
            let core = self.record_core(rec, images)?;
            let sorted = r.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
            ops::gaussian_readout_sorted(rec, &core, sorted, None, r.align_corners, Activation::Elu1)
        })
    }

    /// Host images [n, C, H, W] in, host responses [n, neurons] out: one upload, one submit, one
    /// readback.
    pub fn predict(&self, ctx: &Context, images: &[f32], shape: &[usize], key: &str) -> Result<Vec<f32>> {
        let x = Tensor::from_input(ctx, OP, "images", images, shape)?;
        let mut rec = ctx.recorder();
        let y = self.record(&mut rec, &x, key)?;
        let h = rec.read_back(&y);
        Ok(rec.submit()?.f32(h))
    }
}
