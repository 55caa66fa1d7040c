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

    /// The model's input clip [B, C0 + K, T, H, W] from a video [B, C0, T, H, W] and behaviour
    /// [B, K, T] (pupil dilation, running speed, …), each behaviour channel broadcast over H × W
    /// after the video's channels, as the Sensorium 2023 loaders build it. Refuses shapes that do
    /// not fit each other or `core.input_channels` by name (`video`, `behavior`).
    pub fn clip_with_behavior(
        &self,
        video: &[f32],
        shape: &[usize],
        behavior: &[f32],
        bshape: &[usize],
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let cin = self.config.core.input_channels();
        let &[b, c0, t, h, w] = shape else {
            return Err(Error::shape(OP, "video", shape, "[B, C, T, H, W]"));
        };
        crate::reference::check_len(OP, "video", video, shape)?;
        let k = cin.checked_sub(c0).filter(|&k| k > 0).ok_or_else(|| {
            Error::shape(
                OP,
                "video",
                shape,
                format!("fewer than {cin} channels (core.input_channels) to add behaviour to"),
            )
        })?;
        if bshape != [b, k, t] {
            return Err(Error::shape(
                OP,
                "behavior",
                bshape,
                format!("[{b}, {k}, {t}] (B and T of the video, {cin} − {c0} channels)"),
            ));
        }
        crate::reference::check_len(OP, "behavior", behavior, bshape)?;
        let full = [b, cin, t, h, w];
        let frame = h * w;
        let mut out = Vec::with_capacity(crate::tensor::numel(OP, "video", &full)?);
        for bi in 0..b {
            out.extend_from_slice(&video[bi * c0 * t * frame..(bi + 1) * c0 * t * frame]);
            for ki in 0..k {
                for ti in 0..t {
                    out.extend(std::iter::repeat_n(behavior[(bi * k + ki) * t + ti], frame));
                }
            }
        }
        Ok((out, full.to_vec()))
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
