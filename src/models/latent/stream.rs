//! Streaming for the latent model: frames (and responses) fed as they come, the ZIG mean (and
//! log-likelihood) out for the frames that are final. A new frame costs one frame's work: the
//! stream keeps on the device each temporal conv's last kt − 1 input frames, the readout's pass-1
//! columns of its last kt − 1 core frames, the encoder's GRU state, and the latent means and
//! targets of the frames not yet emitted.
//!
//! The readout's (time, channel) conv is not causal: output frame t needs core frames up to
//! t + kt/2, so frames come out kt/2 core frames late, and [`LatentStream::finish`] emits the last
//! kt/2 with the zero padding the clip forward uses at its end.

use super::record::{Frames, Noise};
use super::{Latent, LatentMode, LatentOutput, OP};
use crate::error::{Error, Result};
use crate::models::video::CoreStream;
use crate::models::Handle;
use crate::ops::{self, Activation, GruState, ZigReadout};
use crate::runtime::{Context, Recorder};
use crate::tensor::{DType, Tensor};
use std::sync::Arc;

/// Everything a stream keeps between calls (cloned, changed, and put back only when a call
/// recorded everything).
#[derive(Clone)]
struct State {
    core: CoreStream,
    /// The readout's pass-1 columns of the last core frames, [2·(kc + 1)·B, W, N].
    columns: Option<Tensor>,
    gru: GruState,
    /// μ [B, P, L] and the targets [B, P, N] of the P core frames not yet emitted.
    means: Option<Tensor>,
    targets: Option<Tensor>,
    /// Whether the frames since the last reset came with responses (None before the first).
    with_responses: Option<bool>,
    /// Core frames made and output frames emitted so far.
    made: usize,
    emitted: usize,
}

/// A stream of frames into a [`Latent`] model (see [`Latent::stream`]). A clone continues from
/// the same state on its own. It borrows its model or, as a `LatentStream<'static>` made by
/// [`Latent::stream_shared`], shares it; the two behave alike.
#[derive(Clone)]
pub struct LatentStream<'m> {
    model: Handle<'m, Latent>,
    mode: LatentMode,
    samples: usize,
    seed: u64,
    st: State,
}

/// Outputs of one call, on the device: the ZIG mean [B, K, N] and, with responses, the
/// log-likelihood in bits [B, K, N] of K output frames.
pub type LatentFrames = (Tensor, Option<Tensor>);

/// [A, T1, D] then [A, T2, D] along the middle axis (`a` None: `b` alone).
fn append(rec: &mut Recorder, a: Option<&Tensor>, b: Tensor) -> Result<Tensor> {
    match a {
        Some(a) => ops::copy::concat_mid(rec, a, &b),
        None => Ok(b),
    }
}

/// Frames `first .. first + len` of the middle axis of x [A, T, D] (None when len = 0).
fn window(rec: &mut Recorder, x: &Tensor, first: usize, len: usize) -> Result<Option<Tensor>> {
    let [a, t, _] = x.shape()[..] else { unreachable!("3-D") };
    if len == 0 {
        return Ok(None);
    }
    if first == 0 && len == t {
        return Ok(Some(x.clone()));
    }
    ops::copy::narrow_mid(rec, x, a, first, len).map(Some)
}

impl Latent {
    /// A stream of `batch` videos of H × W frames, in `mode`, with `samples` latent samples and
    /// the Philox `seed` (see [`LatentStream`]). Refuses a model not uploaded, `batch` 0, frames
    /// too small for the core and `samples` out of range, by name.
    pub fn stream(
        &self,
        batch: usize,
        h: usize,
        w: usize,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<LatentStream<'_>> {
        LatentStream::open(Handle::Borrowed(self), batch, h, w, mode, samples, seed)
    }

    /// [`stream`](Self::stream) holding a share of the model, so that the stream can live on its
    /// own (in a struct, another thread, a Python object).
    pub fn stream_shared(
        self: &Arc<Self>,
        batch: usize,
        h: usize,
        w: usize,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<LatentStream<'static>> {
        LatentStream::open(Handle::Shared(Arc::clone(self)), batch, h, w, mode, samples, seed)
    }
}

impl<'m> LatentStream<'m> {
    fn open(
        model: Handle<'m, Latent>,
        batch: usize,
        h: usize,
        w: usize,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<Self> {
        model.device()?;
        Latent::check_mode(mode, samples, true)?;
        if batch == 0 {
            return Err(Error::param(OP, "batch", "must be >= 1"));
        }
        let r = model.core.config.receptive_frames()?;
        crate::tensor::numel(OP, "frames", &[batch, 1, r, h, w])?;
        if model.config.core_output(r, h, w).is_err() {
            return Err(Error::shape(
                OP,
                "frames",
                &[batch, 1, 1, h, w],
                "frames large enough for the core's valid convs",
            ));
        }
        let core = model.core.stream(batch, h, w)?;
        let st = State {
            core,
            columns: None,
            gru: GruState::new(),
            means: None,
            targets: None,
            with_responses: None,
            made: 0,
            emitted: 0,
        };
        Ok(LatentStream { model, mode, samples, seed, st })
    }
}

impl LatentStream<'_> {
    /// Checks new frames [B, 1, k, H, W] and responses [B, N, k] against the stream; returns k.
    fn check(&self, frames: &[usize], responses: Option<&[usize]>) -> Result<usize> {
        let (b, ch, cw) = self.st.core.frame_shape();
        let n = self.model.config.readout.neurons;
        let k = match *frames {
            [fb, 1, k, h, w] if fb == b && h == ch && w == cw && k > 0 => k,
            _ => {
                return Err(Error::shape(
                    OP,
                    "frames",
                    frames,
                    format!("[{b}, 1, k >= 1, {ch}, {cw}] (the stream's batch and frame size)"),
                ))
            }
        };
        match responses {
            Some(r) if r != [b, n, k] => {
                return Err(Error::shape(OP, "responses", r, format!("[{b}, {n}, {k}] (B, neurons, the frames' k)")));
            }
            None if self.mode == LatentMode::Conditioned => {
                return Err(Error::param(OP, "responses", "conditioning needs the responses of every frame"));
            }
            _ => {}
        }
        if let Some(had) = self.st.with_responses {
            if had != responses.is_some() {
                let why =
                    if had { "missing: the earlier frames came with them" } else { "the earlier frames came without" };
                return Err(Error::param(OP, "responses", format!("{why} (every call since the reset alike)")));
            }
        }
        Ok(k)
    }

    /// Records new frames [B, 1, k, H, W] and, in the conditioned mode (optionally in the prior
    /// mode, then with every call), their responses [B, N, k]: the ZIG mean [B, K, N] (and the
    /// log-likelihood in bits) of the K output frames that became final, None while none did.
    /// On a refusal the stream is unchanged.
    pub fn record(
        &mut self,
        rec: &mut Recorder,
        frames: &Tensor,
        responses: Option<&Tensor>,
    ) -> Result<Option<LatentFrames>> {
        frames.expect_f32(OP, "frames")?;
        if let Some(r) = responses {
            r.expect_f32(OP, "responses")?;
        }
        let k = self.check(frames.shape(), responses.map(|r| r.shape()))?;
        let m = &*self.model;
        let (b, n) = (self.st.core.frame_shape().0, m.config.readout.neurons);
        let mut st = self.st.clone();
        let out = rec.atomic(|rec| {
            let core = m.core.record_stream(rec, &mut st.core, frames)?;
            let k2 = core.as_ref().map_or(0, |x| x.shape()[2]);
            // The responses as [B, k, N] (time before neurons), the frames with a core frame last.
            let rt = match responses {
                Some(r) => Some(ops::copy::swap_mid(rec, r, [b, n, k, 1], &[b, k, n])?),
                None => None,
            };
            if self.mode == LatentMode::Conditioned {
                let rt = rt.as_ref().expect("checked: conditioning has responses");
                let mu = self.record_encoder(rec, &mut st.gru, rt)?;
                if let Some(mu) = window(rec, &mu, k - k2, k2)? {
                    st.means = Some(append(rec, st.means.as_ref(), mu)?);
                }
            }
            if let Some(rt) = &rt {
                if let Some(y) = window(rec, rt, k - k2, k2)? {
                    st.targets = Some(append(rec, st.targets.as_ref(), y)?);
                }
            }
            if let Some(x) = core {
                let &[_, c, _, h, w] = x.shape() else { unreachable!("conv3d output is 5-D") };
                let x = ops::copy::swap_mid(rec, &x, [b, c, k2, h * w], &[b * k2, c, h, w])?;
                let g = ops::zig::zig_readout_columns(rec, &x, &self.readout())?;
                let a = g.numel() / (k2 * n);
                st.columns = Some(append(rec, st.columns.as_ref(), g.reshape(&[a, k2, n])?)?);
            }
            st.made += k2;
            let half = m.config.readout.kernel[0] / 2;
            let end = st.made.saturating_sub(half);
            self.emit(rec, &mut st, end)
        })?;
        st.with_responses = Some(responses.is_some());
        self.st = st;
        Ok(out)
    }

    /// Ends the clip: the output frames still held back (the last kt/2, or all of them in a clip
    /// shorter than that), with the zero padding the clip forward has past its last frame; None
    /// when there are none. The stream then starts over, as after [`reset`](Self::reset).
    pub fn record_finish(&mut self, rec: &mut Recorder) -> Result<Option<LatentFrames>> {
        let mut st = self.st.clone();
        let end = st.made;
        let out = rec.atomic(|rec| self.emit(rec, &mut st, end))?;
        self.reset();
        Ok(out)
    }

    /// The readout's device weights.
    fn readout(&self) -> ZigReadout<'_> {
        let d = self.model.dev.as_ref().expect("checked when the stream was made");
        ZigReadout {
            mu: &d.mu,
            conv_weight: &d.conv_weight,
            conv_bias: Some(&d.conv_bias),
            features: &d.features,
            bias: d.bias.as_ref(),
            align_corners: self.model.config.readout.align_corners,
        }
    }

    /// The encoder on responses [B, k, N] (the first ⌊N/2⌋ neurons zeroed), continuing `gru`:
    /// μ [B, k, L].
    fn record_encoder(&self, rec: &mut Recorder, gru: &mut GruState, rt: &Tensor) -> Result<Tensor> {
        let m = &*self.model;
        let d = m.device()?;
        let &[b, k, n] = rt.shape() else { unreachable!("3-D") };
        let masked = n / 2;
        let x = if masked == 0 {
            rt.clone()
        } else {
            let x4 = rt.reshape(&[b * k, n, 1, 1])?;
            let kept = ops::copy::narrow_mid(rec, &x4, b * k, masked, n - masked)?;
            let zeros = rec.alloc(OP, &[b * k, masked, 1, 1], DType::F32)?;
            rec.clear(&zeros);
            ops::concat_channels(rec, &[&zeros, &kept])?.reshape(&[b, k, n])?
        };
        let eps = m.config.encoder.layer_norm_eps;
        let x = ops::linear(rec, &x, &d.linear_w, Some(&d.linear_b), Activation::Identity)?;
        let x = ops::layer_norm(rec, &x, 1, Some(&d.norm_w), Some(&d.norm_b), eps, Activation::Elu)?;
        let x = ops::gru_stream(rec, &d.gru, gru, &x)?;
        ops::linear(rec, &x, &d.final_w, Some(&d.final_b), Activation::Identity)
    }

    /// Emits output frames `st.emitted .. end` from the held columns, means and targets, and
    /// keeps what later frames need (the last kt − 1 columns, the means and targets past `end`).
    fn emit(&self, rec: &mut Recorder, st: &mut State, end: usize) -> Result<Option<LatentFrames>> {
        if end <= st.emitted {
            return Ok(None);
        }
        let m = &*self.model;
        let (b, n) = (st.core.frame_shape().0, m.config.readout.neurons);
        let count = end - st.emitted;
        let cols = st.columns.clone().expect("columns of every core frame not yet emitted");
        let &[a, w, _] = cols.shape() else { unreachable!("3-D") };
        let first = st.emitted - (st.made - w);
        let g = cols.reshape(&[2, a / (2 * b), b * w, n])?;
        let logits = ops::zig::zig_readout_window(rec, &g, b, first, count, &self.readout())?;
        let pending = st.made - st.emitted;
        let take = |rec: &mut Recorder, x: &Option<Tensor>| -> Result<(Option<Tensor>, Option<Tensor>)> {
            match x {
                Some(x) => Ok((window(rec, x, 0, count)?, window(rec, x, count, pending - count)?)),
                None => Ok((None, None)),
            }
        };
        let (mu, means) = take(rec, &st.means)?;
        let (y, targets) = take(rec, &st.targets)?;
        let l = m.config.encoder.output_dim;
        let mu = mu.map(|t| t.reshape(&[1, b * count, l])).transpose()?;
        let y = y.map(|t| t.reshape(&[b * count, n])).transpose()?;
        let f = Frames { batch: b, first: st.emitted, count };
        let (mean, ll) = m.record_heads(
            rec,
            &logits,
            mu.as_ref(),
            y.as_ref(),
            f,
            Noise::Philox { samples: self.samples, seed: self.seed, first_video: 0 },
        )?;
        let keep = w.min(m.config.readout.kernel[0] - 1);
        st.columns = window(rec, &cols, w - keep, keep)?;
        st.means = means;
        st.targets = targets;
        st.emitted = end;
        Ok(Some((mean.reshape(&[b, count, n])?, ll.map(|t| t.reshape(&[b, count, n])).transpose()?)))
    }

    /// Reads a call's outputs back (one submit): [B, K, N] each, empty with K = 0.
    fn submit(&self, mut rec: Recorder, out: Option<LatentFrames>, with_responses: bool) -> Result<LatentOutput> {
        let (b, n) = (self.st.core.frame_shape().0, self.model.config.readout.neurons);
        let Some((mean, ll)) = out else {
            rec.submit()?;
            return Ok(LatentOutput { mean: Vec::new(), loglik: with_responses.then(Vec::new), shape: [b, 0, n] });
        };
        let k = mean.shape()[1];
        let hm = rec.read_back(&mean);
        let hl = ll.as_ref().map(|t| rec.read_back(t));
        let done = rec.submit()?;
        Ok(LatentOutput { mean: done.f32(hm), loglik: hl.map(|h| done.f32(h)), shape: [b, k, n] })
    }

    /// Host frames [B, 1, k, H, W] (and responses [B, N, k]) in, the ZIG mean (and log-likelihood)
    /// [B, K, N] of the frames that became final out, one submit; K = 0 while none did.
    pub fn push(
        &mut self,
        ctx: &Context,
        frames: &[f32],
        shape: &[usize],
        responses: Option<&[f32]>,
    ) -> Result<LatentOutput> {
        let rshape = [
            shape.first().copied().unwrap_or(0),
            self.model.config.readout.neurons,
            shape.get(2).copied().unwrap_or(0),
        ];
        self.check(shape, responses.map(|_| &rshape[..]))?;
        crate::reference::check_len(OP, "frames", frames, shape)?;
        let x = Tensor::from_f32(ctx, frames, shape)?;
        let r = match responses {
            Some(r) => {
                crate::reference::check_len(OP, "responses", r, &rshape)?;
                Some(Tensor::from_f32(ctx, r, &rshape)?)
            }
            None => None,
        };
        let mut rec = ctx.recorder();
        let out = self.record(&mut rec, &x, r.as_ref())?;
        self.submit(rec, out, responses.is_some())
    }

    /// [`record_finish`](Self::record_finish) with the outputs read back (one submit).
    pub fn finish(&mut self, ctx: &Context) -> Result<LatentOutput> {
        let with = self.st.with_responses == Some(true);
        let mut rec = ctx.recorder();
        let out = self.record_finish(&mut rec)?;
        self.submit(rec, out, with)
    }

    /// Frames fed since the stream was made or reset.
    pub fn frames_seen(&self) -> usize {
        self.st.core.frames_seen()
    }

    /// Output frames emitted since the stream was made or reset.
    pub fn frames_emitted(&self) -> usize {
        self.st.emitted
    }

    /// Forgets every frame fed: the next frame starts a new clip (output frame 0, its noise streams from frame 0).
    pub fn reset(&mut self) {
        let st = &mut self.st;
        st.core.reset();
        st.gru.reset();
        (st.columns, st.means, st.targets, st.with_responses) = (None, None, None, None);
        (st.made, st.emitted) = (0, 0);
    }
}
