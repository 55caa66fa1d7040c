//! The video model's GPU forward: the core on the clip, the ConvGRU over its frames where there
//! is one, the frames as a batch for the readout of a data key (with the shifter on
//! `pupil_center` of the same frames), ELU+1, `[B, N, T']`.

use super::{Video, OP};
use crate::error::{Error, Result};
use crate::models::sensorium::side_input;
use crate::ops::{self, copy, Activation};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

impl Video {
    /// Records the forward pass on a clip [B, C, T, H, W] for the readout of `key`, with
    /// `pupil_center` [B, 2, T] where it has a shifter: rates [B, N, T'], aligned with the last T'
    /// frames.
    pub fn record(
        &self,
        rec: &mut Recorder,
        video: &Tensor,
        pupil_center: Option<&Tensor>,
        key: &str,
    ) -> Result<Tensor> {
        rec.atomic(|rec| {
            let r = self.readout(key)?;
            let pupil = side_input(&r.shifter, pupil_center, key, "pupil_center")?;
            let [b, _, t, _, _] = self.config.features_shape(video.shape())?;
            if let Some((_, p)) = pupil {
                let t_in = video.shape()[2];
                ops::expect_shape(OP, "pupil_center", p, &[b, 2, t_in])?;
            }
            let core = self.core.record(rec, video)?;
            let core = match &self.gru {
                Some(g) => ops::conv_gru(rec, g.dev()?, &core)?,
                None => core,
            };
            let y = self.record_readout(rec, &core, pupil.map(|(_, p)| p), key)?;
            debug_assert_eq!(y.shape()[2], t, "the readout's frames are the features' frames");
            Ok(y)
        })
    }

    /// The readout of `key` on core frames [B, C', T', H', W'], the shifter on the last T' frames
    /// of `pupil` [B, 2, Tp] (Tp >= T'): [B, N, T'].
    pub(crate) fn record_readout(
        &self,
        rec: &mut Recorder,
        core: &Tensor,
        pupil: Option<&Tensor>,
        key: &str,
    ) -> Result<Tensor> {
        let r = self.readout(key)?;
        let [b, c, t, h, w] = core.shape()[..] else { unreachable!("5-D") };
        let frames = copy::swap_mid(rec, core, [b, c, t, h * w], &[b * t, c, h, w])?;
        let shift = match side_input(&r.shifter, pupil, key, "pupil_center")? {
            Some((mlp, p)) => {
                let tp = p.shape()[2];
                let last = copy::narrow_mid(rec, &p.reshape(&[b * 2, tp])?, b * 2, tp - t, t)?;
                let rows = copy::swap_mid(rec, &last, [b, 2, t, 1], &[b * t, 2])?;
                Some(mlp.record(rec, &rows)?)
            }
            None => None,
        };
        let sorted = r.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let y = ops::gaussian_readout_sorted(rec, &frames, sorted, shift.as_ref(), r.align_corners, Activation::Elu1)?;
        let n = y.shape()[1];
        copy::swap_mid(rec, &y, [b, t, n, 1], &[b, n, t])
    }

    /// Host clip [B, C, T, H, W] (and `pupil_center` [B, 2, T]) in, host rates [B, N, T'] out:
    /// one upload, one submit, one readback. Returns the rates and their shape.
    pub fn predict(
        &self,
        ctx: &Context,
        video: &[f32],
        shape: &[usize],
        pupil_center: Option<&[f32]>,
        key: &str,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        // The clip against the model first, so that a refusal names it (an empty clip too).
        self.config.features_shape(shape)?;
        let x = Tensor::from_input(ctx, OP, "video", video, shape)?;
        let (b, t) = (shape.first().copied().unwrap_or(0), shape.get(2).copied().unwrap_or(0));
        let p = pupil_center.map(|p| Tensor::from_input(ctx, OP, "pupil_center", p, &[b, 2, t])).transpose()?;
        let mut rec = ctx.recorder();
        let y = self.record(&mut rec, &x, p.as_ref(), key)?;
        let s = y.shape().to_vec();
        let h = rec.read_back(&y);
        Ok((rec.submit()?.f32(h), s))
    }
}
