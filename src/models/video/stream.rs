//! Streaming: a video model fed frames as they come. The core's stream state keeps each temporal
//! conv's last input frames on the device (a 2-D core keeps none), the ConvGRU's state its last
//! hidden state, so a new frame costs one frame's work; the outputs equal the clip forward's for
//! the same frames.

use super::core::CoreStream;
use super::{Video, OP};
use crate::error::{Error, Result};
use crate::models::sensorium::side_input;
use crate::models::Handle;
use crate::ops::{self, ConvGruState};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A stream of frames into the readout of one data key. It borrows its model (made by
/// [`Video::stream`]) or, as a `VideoStream<'static>`, shares it (made by
/// [`Video::stream_shared`]); the two behave alike. A clone continues from the same state on its
/// own.
#[derive(Clone)]
pub struct VideoStream<'m> {
    model: Handle<'m, Video>,
    key: String,
    core: CoreStream,
    gru: ConvGruState,
}

impl Video {
    /// A stream into the readout of `key` for `batch` videos of H × W frames, borrowing the
    /// model.
    pub fn stream(&self, key: &str, batch: usize, h: usize, w: usize) -> Result<VideoStream<'_>> {
        VideoStream::open(Handle::Borrowed(self), key, batch, h, w)
    }

    /// [`stream`](Self::stream) holding a share of the model, so that the stream can live on its
    /// own (in a struct, another thread, a Python object).
    pub fn stream_shared(
        self: &Arc<Self>,
        key: &str,
        batch: usize,
        h: usize,
        w: usize,
    ) -> Result<VideoStream<'static>> {
        VideoStream::open(Handle::Shared(Arc::clone(self)), key, batch, h, w)
    }
}

impl<'m> VideoStream<'m> {
    fn open(model: Handle<'m, Video>, key: &str, batch: usize, h: usize, w: usize) -> Result<Self> {
        model.readout(key)?;
        let core = model.core.stream(batch, h, w)?;
        // The frame size must give the readouts an input (the GRU's unpadded input convs too).
        let need = model.config.core.receptive_frames()?;
        model.config.features_shape(&[batch, model.config.core.input_channels(), need, h, w])?;
        Ok(VideoStream { model, key: key.to_string(), core, gru: ConvGruState::new() })
    }
}

impl VideoStream<'_> {
    /// Records new frames [B, C, k, H, W] (with their `pupil_center` [B, 2, k] where the readout
    /// has a shifter): rates [B, N, k'] for the new frames past the receptive field (None while
    /// the first R − 1 frames fill it). On a refusal the stream is unchanged.
    pub fn record(
        &mut self,
        rec: &mut Recorder,
        frames: &Tensor,
        pupil_center: Option<&Tensor>,
    ) -> Result<Option<Tensor>> {
        let r = self.model.readout(&self.key)?;
        let pupil = side_input(&r.shifter, pupil_center, &self.key, "pupil_center")?;
        if let (Some((_, p)), &[b, _, k, _, _]) = (pupil, frames.shape()) {
            crate::ops::expect_shape(OP, "pupil_center", p, &[b, 2, k])?;
        }
        let model = &*self.model;
        let key = self.key.clone();
        let mut core = self.core.clone();
        let mut gru = self.gru.clone();
        let out = rec.atomic(|rec| match model.core.record_stream(rec, &mut core, frames)? {
            Some(x) => {
                let x = match &model.gru {
                    Some(g) => ops::conv_gru_stream(rec, g.dev()?, &mut gru, &x)?,
                    None => x,
                };
                model.record_readout(rec, &x, pupil.map(|(_, p)| p), &key).map(Some)
            }
            None => Ok(None),
        })?;
        self.core = core;
        self.gru = gru;
        Ok(out)
    }

    /// Host frames in, host rates out (one submit): the rates [B, N, k'] and their shape, empty
    /// with k' = 0 while the receptive field fills.
    pub fn push(
        &mut self,
        ctx: &Context,
        frames: &[f32],
        shape: &[usize],
        pupil_center: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let x = Tensor::from_input(ctx, OP, "frames", frames, shape)?;
        let (b, k) = match *shape {
            [b, _, k, _, _] => (b, k),
            _ => return Err(Error::shape(OP, "frames", shape, "[B, C, k, H, W]")),
        };
        let p = pupil_center.map(|p| Tensor::from_input(ctx, OP, "pupil_center", p, &[b, 2, k])).transpose()?;
        let mut rec = ctx.recorder();
        match self.record(&mut rec, &x, p.as_ref())? {
            Some(y) => {
                let s = y.shape().to_vec();
                let h = rec.read_back(&y);
                Ok((rec.submit()?.f32(h), s))
            }
            None => {
                rec.submit()?;
                let n = self.model.neurons(&self.key)?;
                Ok((Vec::new(), vec![b, n, 0]))
            }
        }
    }

    /// Frames fed so far.
    pub fn frames_seen(&self) -> usize {
        self.core.frames_seen()
    }

    /// Forgets every frame fed.
    pub fn reset(&mut self) {
        self.core.reset();
        self.gru.reset();
    }
}
