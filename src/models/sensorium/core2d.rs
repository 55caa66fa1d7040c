//! A `Stacked2dCore` (or `RotationEquivariant2dCore`) on its own, for models that put another
//! head on it: the video twin's `2D` cores, run on every frame of a clip.

use std::collections::BTreeMap;

use super::config::CoreConfig;
use super::load::{load_core, upload_layers};
use super::record::record_layers;
use super::reference::reference_layers;
use super::weights::CoreLayer;
use crate::error::Result;
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::rng::SplitMix;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

/// A loaded 2-D core: its folded layers, which of them it returns, and their channels.
pub(crate) struct Core2d {
    layers: Vec<CoreLayer>,
    stack: Vec<usize>,
    out_channels: usize,
}

impl Core2d {
    /// Takes `core.features.*` (and the input regularizer's buffer) from `sd`, as the Sensorium's
    /// loader does.
    pub(crate) fn load(config: &CoreConfig, sd: &mut StateDict) -> Result<Core2d> {
        let (layers, plan) = load_core(sd, config)?;
        Ok(Core2d { layers, stack: plan.stack, out_channels: plan.out_channels })
    }

    /// Random tensors under upstream's keys for `config`.
    pub(crate) fn random_tensors(config: &CoreConfig, rng: &mut SplitMix) -> Result<BTreeMap<String, HostTensor>> {
        super::fixtures::random_core(config, rng)
    }

    pub(crate) fn upload(&mut self, ctx: &Context) -> Result<()> {
        upload_layers(ctx, &mut self.layers)
    }

    /// Channels of the output (the stacked layers').
    pub(crate) fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// Records the core on images [N, C, H, W] that the caller has checked against the config.
    pub(crate) fn record(&self, rec: &mut Recorder, images: &Tensor) -> Result<Tensor> {
        record_layers(rec, &self.layers, &self.stack, images)
    }

    /// The core with the CPU reference ops on checked images [N, C, H, W]: data and shape.
    pub(crate) fn reference(&self, images: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        reference_layers(&self.layers, &self.stack, images, shape)
    }
}
