//! The latent model's GPU forward, recorded on a [`Recorder`], and `predict` (host in, one
//! submit, host out).

use super::{encoder_input, targets, Latent, LatentMode, LatentNoise, LatentOutput, OP};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, ZigLatent, ZigMoment, ZigReadout};
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

/// Which output frames a head covers: `count` frames per sample from absolute output frame
/// `first` (0 = the clip's or the stream's first), for `batch` samples.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frames {
    pub batch: usize,
    pub first: usize,
    pub count: usize,
}

impl Latent {
    /// The core and the ZIG readout on a video [B, 1, T, H, W]: logits [2, B·T', N].
    pub fn record_logits(&self, rec: &mut Recorder, video: &Tensor) -> Result<Tensor> {
        video.expect_f32(OP, "video")?;
        let [b, _, to, _] = self.check_inputs(video.shape(), None)?;
        let d = self.device()?;
        let x = self.core.record(rec, video)?;
        let &[_, c, _, h, w] = x.shape() else { unreachable!("conv3d output is 5-D") };
        // [B, C, T', H', W'] → [B·T', C, H', W']: the channel and time axes swapped, one dispatch.
        let x = ops::copy::swap_mid(rec, &x, [b, c, to, h * w], &[b * to, c, h, w])?;
        let r = ZigReadout {
            mu: &d.mu,
            conv_weight: &d.conv_weight,
            conv_bias: Some(&d.conv_bias),
            features: &d.features,
            bias: d.bias.as_ref(),
            align_corners: self.config.readout.align_corners,
        };
        ops::zig_readout(rec, &x, to, &r, None)
    }

    /// The encoder on its input [B, T, N] (see [`LatentMode`]): μ [1, B·T', L], the last T' steps.
    pub fn record_means(&self, rec: &mut Recorder, input: &Tensor, to: usize) -> Result<Tensor> {
        let &[b, t, _] = input.shape() else {
            return Err(Error::shape(OP, "responses", input.shape(), "[B, T, N]"));
        };
        if to == 0 || to > t {
            return Err(Error::param(OP, "frames", format!("{to} frames of {t}")));
        }
        let d = self.device()?;
        let eps = self.config.encoder.layer_norm_eps;
        let l = self.config.encoder.output_dim;
        let x = ops::linear(rec, input, &d.linear_w, Some(&d.linear_b), Activation::Identity)?;
        let x = ops::layer_norm(rec, &x, 1, Some(&d.norm_w), Some(&d.norm_b), eps, Activation::Elu)?;
        let (x, _) = ops::gru(rec, &d.gru, &x)?;
        let m = ops::linear(rec, &x, &d.final_w, Some(&d.final_b), Activation::Identity)?;
        // The last T' steps of m [B, T, L]: one copy dispatch, nothing uploaded.
        ops::copy::narrow_mid(rec, &m, b, t - to, to)?.reshape(&[1, b * to, l])
    }

    /// Records the forward pass: video [B, 1, T, H, W]; `responses` the encoder input [B, T, N]
    /// and the targets [B·T', N] (see [`encoder_input`]); returns the mean [B·T', N] and, with
    /// responses, the log-likelihood [B·T', N] in bits. ε: `samples` Philox normals of `seed`.
    pub fn record(
        &self,
        rec: &mut Recorder,
        video: &Tensor,
        responses: Option<(&Tensor, &Tensor)>,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.record_with(rec, video, responses, mode, Noise::Philox { samples, seed, first_video: 0 })
    }

    /// [`Latent::record`] on given standard normals ε [S, B·T', L] (S their first axis).
    pub fn record_given(
        &self,
        rec: &mut Recorder,
        video: &Tensor,
        responses: Option<(&Tensor, &Tensor)>,
        mode: LatentMode,
        noise: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        self.record_with(rec, video, responses, mode, Noise::Given(noise))
    }

    fn record_with(
        &self,
        rec: &mut Recorder,
        video: &Tensor,
        responses: Option<(&Tensor, &Tensor)>,
        mode: LatentMode,
        noise: Noise,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let [b, _, to, _] = self.check_inputs(video.shape(), None)?;
        let (bt, l) = (b * to, self.config.encoder.output_dim);
        let s = match noise {
            Noise::Philox { samples, .. } => samples,
            Noise::Given(eps) => {
                eps.expect_f32(OP, "noise")?;
                match eps.shape() {
                    &[s, r, c] if r == bt && c == l => s,
                    sh => return Err(Error::shape(OP, "noise", sh, format!("[S, {bt}, {l}] (S × B·T' × L normals)"))),
                }
            }
        };
        Self::check_mode(mode, s, responses.is_some())?;
        rec.atomic(|rec| {
            let logits = self.record_logits(rec, video)?;
            let mu = match (mode, responses) {
                (LatentMode::Conditioned, Some((x, _))) => Some(self.record_means(rec, x, to)?),
                _ => None,
            };
            let frames = Frames { batch: b, first: 0, count: to };
            self.record_heads(rec, &logits, mu.as_ref(), responses.map(|(_, y)| y), frames, noise)
        })
    }

    /// The latent noise of output frames `first .. first + count` of videos `first_video ..
    /// first_video + B`: video v's frame j takes the first S·L normals of Philox stream
    /// (seed, v · 2^32 + j), times `scale`; laid out as [S, B·count, L] (bt = b·count + frame −
    /// first) for the latent ops. A video's frame draws the same in a clip, a stream and any
    /// batch.
    pub(crate) fn philox_noise(
        &self,
        rec: &mut Recorder,
        f: Frames,
        samples: usize,
        seed: u64,
        first_video: u64,
        scale: f32,
    ) -> Result<Tensor> {
        let l = self.config.encoder.output_dim;
        let row =
            samples.checked_mul(l).ok_or_else(|| Error::param(OP, "samples", "samples × L are too many to count"))?;
        // Per video [count, S·L] (one Philox stream a frame), stacked to [B·count, S, L].
        let mut parts = Vec::with_capacity(f.batch);
        for v in 0..f.batch as u64 {
            let offset = ((first_video.wrapping_add(v)) << 32).wrapping_add(f.first as u64);
            let e = ops::random_normal_rows(rec, f.count, row, seed, offset, scale)?;
            parts.push(e.reshape(&[1, f.count * row, 1, 1])?);
        }
        let all = match &parts[..] {
            [one] => one.clone(),
            many => ops::concat_channels(rec, &many.iter().collect::<Vec<_>>())?,
        };
        let bk = f.batch * f.count;
        ops::copy::swap_mid(rec, &all, [1, bk, samples, l], &[samples, bk, l])
    }

    /// From the logits [2, B·K, N] of K output frames (`f`): the ZIG mean [B·K, N] (from z = μ
    /// [1, B·K, L] when given, else from q and θ averaged over the prior samples) and, with the
    /// targets [B·K, N], their log-likelihood in bits (z = μ + σε, or ε).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_heads(
        &self,
        rec: &mut Recorder,
        logits: &Tensor,
        mu: Option<&Tensor>,
        targets: Option<&Tensor>,
        f: Frames,
        noise: Noise,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let d = self.device()?;
        let (bt, n, l) = (f.batch * f.count, self.config.readout.neurons, self.config.encoder.output_dim);
        let s = match noise {
            Noise::Philox { samples, .. } => samples,
            Noise::Given(e) => e.shape()[0],
        };
        let ctx = rec.context();
        // ε [S, B·K, L] times `scale`: Philox per frame, or the given normals.
        let eps = |rec: &mut Recorder, scale: f32| -> Result<Tensor> {
            match noise {
                Noise::Philox { samples, seed, first_video } => {
                    self.philox_noise(rec, f, samples, seed, first_video, scale)
                }
                Noise::Given(e) if scale == 1.0 => Ok(e.clone()),
                Noise::Given(e) => {
                    let w = Tensor::from_f32(rec.context(), &[scale], &[1, 1])?;
                    ops::linear(rec, &e.reshape(&[s * bt * l, 1])?, &w, None, Activation::Identity)?
                        .reshape(&[s, bt, l])
                }
            }
        };
        let (zm, ns) = match mu {
            Some(mu) => (mu.clone(), 1),
            None => (eps(rec, 1.0)?, s),
        };
        let lat = ZigLatent { z: &zm, w_q: &d.w_q, w_theta: &d.w_theta };
        let (q, th) = ops::zig_latent_params(rec, logits, &lat)?;
        let (q, th) = if ns == 1 {
            (q.reshape(&[bt, n])?, th.reshape(&[bt, n])?)
        } else {
            let avg = Tensor::from_f32(ctx, &vec![1.0 / ns as f32; ns], &[1, ns])?;
            let qa = ops::matmul(rec, &avg, &q.reshape(&[ns, bt * n])?)?.reshape(&[bt, n])?;
            let ta = ops::matmul(rec, &avg, &th.reshape(&[ns, bt * n])?)?.reshape(&[bt, n])?;
            (qa, ta)
        };
        let mean = ops::zig_moments(rec, &q, &th, &d.k, &d.loc, ZigMoment::Mean)?;
        let loglik = match targets {
            Some(y) => {
                let z = match mu {
                    Some(mu) => {
                        let ones = Tensor::from_f32(ctx, &vec![1.0; s], &[s, 1])?;
                        let rep = ops::matmul(rec, &ones, &mu.reshape(&[1, bt * l])?)?;
                        let noise = eps(rec, self.sigma)?.reshape(&[s, bt * l])?;
                        ops::add(rec, &rep, &noise, Activation::Identity)?.reshape(&[s, bt, l])?
                    }
                    None => zm.clone(),
                };
                let lat = ZigLatent { z: &z, w_q: &d.w_q, w_theta: &d.w_theta };
                Some(ops::zig_latent_loglik(rec, y, logits, &lat, &d.k, &d.loc)?)
            }
            None => None,
        };
        Ok((mean, loglik))
    }

    /// Host video [B, 1, T, H, W] and responses [B, N, T] in, host mean and log-likelihood
    /// [B, T', N] out: one upload, one submit, one readback. ε: `samples` Philox normals of `seed`.
    #[allow(clippy::too_many_arguments)]
    pub fn predict(
        &self,
        ctx: &Context,
        video: &[f32],
        shape: &[usize],
        responses: Option<&[f32]>,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<LatentOutput> {
        self.predict_with(ctx, video, shape, responses, mode, LatentNoise::Philox { samples, seed, first_video: 0 })
    }

    /// [`Latent::predict`] with the noise ε [S, B·T', L] drawn or given (see [`LatentNoise`]).
    pub fn predict_with(
        &self,
        ctx: &Context,
        video: &[f32],
        shape: &[usize],
        responses: Option<&[f32]>,
        mode: LatentMode,
        noise: LatentNoise,
    ) -> Result<LatentOutput> {
        let n = self.config.readout.neurons;
        let rshape = [shape.first().copied().unwrap_or(0), n, shape.get(2).copied().unwrap_or(0)];
        let [b, t, to, _] = self.check_inputs(shape, responses.map(|_| &rshape[..]))?;
        let s = self.noise_samples(noise, b * to)?;
        Self::check_mode(mode, s, responses.is_some())?;
        crate::reference::check_len(OP, "video", video, shape)?;
        let x = Tensor::from_f32(ctx, video, shape)?;
        let inputs = match responses {
            Some(r) => {
                crate::reference::check_len(OP, "responses", r, &rshape)?;
                let enc = Tensor::from_f32(ctx, &encoder_input(r, b, n, t, mode), &[b, t, n])?;
                let y = Tensor::from_f32(ctx, &targets(r, b, n, t, to), &[b * to, n])?;
                Some((enc, y))
            }
            None => None,
        };
        let inputs = inputs.as_ref().map(|(a, b)| (a, b));
        let mut rec = ctx.recorder();
        let (mean, ll) = match noise {
            LatentNoise::Philox { samples, seed, first_video } => {
                self.record_with(&mut rec, &x, inputs, mode, Noise::Philox { samples, seed, first_video })?
            }
            LatentNoise::Given(eps) => {
                let e = Tensor::from_f32(ctx, eps, &[s, b * to, self.config.encoder.output_dim])?;
                self.record_given(&mut rec, &x, inputs, mode, &e)?
            }
        };
        let hm = rec.read_back(&mean);
        let hl = ll.as_ref().map(|t| rec.read_back(t));
        let out = rec.submit()?;
        Ok(LatentOutput { mean: out.f32(hm), loglik: hl.map(|h| out.f32(h)), shape: [b, to, n] })
    }
}

/// The noise of a recorded forward: Philox normals per video and output frame, or given
/// ε [S, B·T', L].
#[derive(Clone, Copy)]
pub(crate) enum Noise<'a> {
    Philox { samples: usize, seed: u64, first_video: u64 },
    Given(&'a Tensor),
}
