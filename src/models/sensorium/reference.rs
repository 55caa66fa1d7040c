//! The Sensorium's CPU reference forward (f64 accumulation), on the folded host weights, for
//! checks of the GPU forward.

use super::weights::{side_input, CoreLayer, Mlp};
use super::{Sensorium, OP};
use crate::error::{Error, Result};
use crate::ops::Activation;
use crate::reference::{self, check_len};

impl Mlp {
    pub(crate) fn reference(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        let mut h = x.to_vec();
        let mut shape = vec![n, x.len() / n.max(1)];
        for (w, b) in &self.layers {
            (h, shape) = reference::linear(&h, &shape, &w.data, &w.shape, Some(&b.data), self.act)?;
        }
        Ok(h)
    }
}

impl Sensorium {
    /// The core's output (data, [N, C, H', W']) with the CPU reference ops.
    pub fn reference_core(&self, images: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        // The images against the core, as `record_core` checks them.
        let c = &self.config.core;
        match *shape {
            [_, ch, h, w] if ch == c.input_channels => {
                self.config.core_output(h, w)?;
            }
            _ => return Err(Error::shape(OP, "images", shape, format!("[N, {}, H, W]", c.input_channels))),
        }
        check_len(OP, "images", images, shape)?;
        reference_layers(&self.layers, &self.stack, images, shape)
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
        if shape.len() != 4 {
            return Err(Error::shape(OP, "images", shape, "[N, C, H, W]"));
        }
        check_len(OP, "images", images, shape)?;
        if let Some(e) = eye {
            check_len(OP, "eye", e, &[shape[0], 2])?;
        }
        let shift = side_input(&r.shifter, eye, key, "eye")?.map(|(mlp, e)| mlp.reference(e, shape[0])).transpose()?;
        if let (Some(m), Some(b)) = (&r.modulator, behavior) {
            // A row of the modulator's input width per image.
            let width = m.layers.first().map_or(0, |(w, _)| w.shape[1]);
            check_len(OP, "behavior", b, &[shape[0], width])?;
        }
        let gain = side_input(&r.modulator, behavior, key, "behavior")?
            .map(|(mlp, bh)| Ok(reference::activation(&mlp.reference(bh, shape[0])?, Activation::Elu1)))
            .transpose()?;
        let (x, s) = self.reference_core(images, shape)?;
        let y = reference::readout::gaussian_readout(
            &x,
            &s,
            &r.mu.data,
            &r.features.data,
            Some(&r.bias.data),
            shift.as_deref(),
            r.align_corners,
            Activation::Identity,
        )?;
        match gain {
            Some(g) => {
                let z: Vec<f32> =
                    y.iter().zip(&g).map(|(a, b)| (*a as f64 * *b as f64 + r.offset as f64) as f32).collect();
                Ok(reference::activation(&z, Activation::Elu1))
            }
            None => Ok(reference::activation(&y, Activation::Elu1)),
        }
    }
}

/// A core's layers with the CPU reference ops on images [N, C, H, W] (checked by the caller): the
/// outputs of the `stack` layers, concatenated along channels, and their shape.
pub(super) fn reference_layers(
    layers: &[CoreLayer],
    stack: &[usize],
    images: &[f32],
    shape: &[usize],
) -> Result<(Vec<f32>, Vec<usize>)> {
    let mut outs: Vec<(Vec<f32>, Vec<usize>)> = Vec::with_capacity(layers.len());
    for layer in layers {
        let (mut x, mut s) = if layer.inputs.is_empty() {
            (images.to_vec(), shape.to_vec())
        } else {
            let parts: Vec<(&[f32], &[usize])> =
                layer.inputs.iter().map(|&i| (&outs[i].0[..], &outs[i].1[..])).collect();
            reference::concat_channels(&parts)?
        };
        for conv in &layer.convs {
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
        outs.push((x, s));
    }
    let parts: Vec<(&[f32], &[usize])> = stack.iter().map(|&i| (&outs[i].0[..], &outs[i].1[..])).collect();
    reference::concat_channels(&parts)
}
