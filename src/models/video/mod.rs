//! The Sensorium 2023 video twin (ecker-lab's `make_video_model`): a 3-D core (`3D_factorised`,
//! neuralpredictors' `Factorized3dCore`, or `3D`, `Basic3dCore`) or a 2-D core on every frame
//! (`2D`, `Stacked2dCore`, or `2D_equivariant`, `RotationEquivariant2dCore`), an optional
//! convolutional GRU over time after it (`GRU_Module`; required after a 2-D core), one
//! `FullGaussian2d` readout per data key run on every output frame, an optional MLP shifter per
//! frame fed with `pupil_center`, and ELU+1 (docs/models.md, "Video twin").
//!
//! Input `[B, C, T, H, W]`: the video plus behaviour channels broadcast over H × W. A 3-D core has
//! no temporal padding, so its output keeps the last T' = T − R + 1 frames (R the receptive field
//! in frames; a 2-D core has R = 1); the output is `[B, N, T']`, frame j of it aligned with input
//! frame R − 1 + j. [`VideoStream`] feeds frames one at a time (or in chunks) and gives the same
//! outputs, the GRU's hidden state kept on the device between calls.

mod config;
mod core;
mod fixtures;
mod load;
mod record;
mod reference;
mod stream;

pub use self::core::{CoreStream, VideoCore};
pub use config::{Core3dConfig, GruConfig, VideoConfig, VideoCoreConfig, VideoCoreKind};
pub use stream::VideoStream;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::models::sensorium::Readout;
use crate::ops::{ConvGru, ConvGruWeights};

const OP: &str = "video";

/// A loaded video model.
pub struct Video {
    pub config: VideoConfig,
    core: VideoCore,
    gru: Option<GruStage>,
    readouts: BTreeMap<String, Readout>,
}

/// The ConvGRU between the core and the readouts: host weights (for the reference), device cell.
struct GruStage {
    weights: ConvGruWeights,
    dev: Option<ConvGru>,
}

impl GruStage {
    fn dev(&self) -> Result<&ConvGru> {
        self.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))
    }
}

impl Video {
    pub fn data_keys(&self) -> Vec<&str> {
        self.readouts.keys().map(|k| k.as_str()).collect()
    }

    /// The core alone.
    pub fn core(&self) -> &VideoCore {
        &self.core
    }

    /// Whether the readout of `key` has a shifter (and so needs `pupil_center`).
    pub fn has_shifter(&self, key: &str) -> bool {
        self.readouts.get(key).is_some_and(|r| r.shifter.is_some())
    }

    /// Neurons of the readout of `key`.
    pub fn neurons(&self, key: &str) -> Result<usize> {
        Ok(self.readout(key)?.mu.shape[0])
    }

    fn readout(&self, key: &str) -> Result<&Readout> {
        self.readouts.get(key).ok_or_else(|| {
            Error::param(OP, "data_key", format!("{key:?} is not one of {}", self.data_keys().join(", ")))
        })
    }
}
