//! The co-training twin's CPU reference forward (f64 accumulation), on the folded host weights,
//! for checks of the GPU forward.

use super::{Cotrain, Layer, OP};
use crate::error::{Error, Result};
use crate::ops::{Activation, Pool2dParams};
use crate::reference::{self, check_len};

impl Cotrain {
    /// The same forward pass with the CPU reference ops, for checks.
    pub fn reference_forward(&self, images: &[f32], shape: &[usize], key: &str) -> Result<Vec<f32>> {
        let r = self.readout(key)?;
        let c = &self.config.core;
        match shape {
            &[_, ch, h, w] if ch == c.input_channels => {
                self.config.core_output(h, w)?;
            }
            s => return Err(Error::shape(OP, "images", s, format!("[N, {}, H, W]", c.input_channels))),
        }
        check_len(OP, "images", images, shape)?;
        let mut x = images.to_vec();
        let mut s = shape.to_vec();
        for layer in &self.layers {
            (x, s) = match layer {
                Layer::Conv(conv) => reference::conv2d(
                    &x,
                    &s,
                    &conv.w.data,
                    &conv.w.shape,
                    Some(&conv.bias.data),
                    &conv.params,
                    Some((&conv.bn.0, &conv.bn.1)),
                    Activation::Relu,
                )?,
                Layer::MaxPool => reference::max_pool2d(&x, &s, &Pool2dParams::square(2))?,
            };
        }
        reference::readout::gaussian_readout(
            &x,
            &s,
            &r.mu.data,
            &r.features.data,
            Some(&r.bias.data),
            None,
            r.align_corners,
            Activation::Elu1,
        )
    }
}
