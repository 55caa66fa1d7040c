//! The latent model's CPU reference forward (f64 accumulation, the reference ops), for checks of
//! the GPU forward; the same Philox (or given) noise.

use super::{encoder_input, targets, Latent, LatentMode, LatentNoise, LatentOutput, OP};
use crate::error::Result;
use crate::ops::Activation;
use crate::reference::zig::{ZigLatent, ZigReadout};
use crate::reference::{self, check_len};

/// The ZIG mean (1 − q)·loc/2 + q(kθ + loc).
fn zig_mean(q: f64, theta: f64, k: f64, loc: f64) -> f64 {
    (1.0 - q) * loc / 2.0 + q * (k * theta + loc)
}

/// The latent noise ε [S, B·K, L] of output frames first .. first + K of videos first_video ..
/// first_video + B: video v's frame j is the first S·L normals of Philox stream
/// (seed, v · 2^32 + j) (`Latent::philox_noise`).
pub(crate) fn frame_noise(
    seed: u64,
    first_video: u64,
    first: usize,
    k: usize,
    b: usize,
    s: usize,
    l: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; s * b * k * l];
    for bi in 0..b {
        let offset = (first_video.wrapping_add(bi as u64) << 32).wrapping_add(first as u64);
        let rows = reference::random::normal_rows(seed, offset, k, s * l);
        for j in 0..k {
            for si in 0..s {
                let src = (j * s + si) * l;
                let dst = (si * b * k + bi * k + j) * l;
                out[dst..dst + l].copy_from_slice(&rows[src..src + l]);
            }
        }
    }
    out
}

impl Latent {
    /// The ZIG readout's logits [2, B·T', N] of a video [B, 1, T, H, W], and T'.
    pub fn reference_logits(&self, video: &[f32], shape: &[usize]) -> Result<(Vec<f32>, usize)> {
        let [b, _, to, _] = self.check_inputs(shape, None)?;
        check_len(OP, "video", video, shape)?;
        let (x, s) = self.core.reference(video, shape)?;
        // [B, C, T', H', W'] → [B·T', C, H', W'] (upstream's transpose(1, 2) and reshape).
        let (c, hw) = (s[1], s[3] * s[4]);
        let mut frames = vec![0f32; x.len()];
        for bi in 0..b {
            for ci in 0..c {
                for ti in 0..to {
                    let src = ((bi * c + ci) * to + ti) * hw;
                    let dst = ((bi * to + ti) * c + ci) * hw;
                    frames[dst..dst + hw].copy_from_slice(&x[src..src + hw]);
                }
            }
        }
        let r = &self.readout;
        let ro = ZigReadout {
            mu: &r.mu.data,
            conv_weight: &r.conv_weight.data,
            conv_shape: &r.conv_weight.shape,
            conv_bias: Some(&r.conv_bias.data),
            features: &r.features.data,
            bias: r.bias.as_ref().map(|t| &t.data[..]),
            align_corners: self.config.readout.align_corners,
        };
        let logits = reference::zig::zig_readout(&frames, &[b * to, c, s[3], s[4]], to, &ro, None)?;
        Ok((logits, to))
    }

    /// The encoder's latent means μ [B·T', L] (the last T' steps) from responses [B, N, T].
    pub fn reference_means(&self, responses: &[f32], shape: &[usize], to: usize, mode: LatentMode) -> Result<Vec<f32>> {
        let &[b, n, t] = shape else {
            return Err(crate::Error::shape(OP, "responses", shape, "[B, N, T]"));
        };
        check_len(OP, "responses", responses, shape)?;
        let (e, cfg) = (&self.encoder, &self.config.encoder);
        let x = encoder_input(responses, b, n, t, mode);
        let (x, xs) = reference::linear(
            &x,
            &[b, t, n],
            &e.linear_w.data,
            &e.linear_w.shape,
            Some(&e.linear_b.data),
            Activation::Identity,
        )?;
        let x = reference::layer_norm(
            &x,
            &xs,
            1,
            Some(&e.norm_w.data),
            Some(&e.norm_b.data),
            cfg.layer_norm_eps,
            Activation::Elu,
        )?;
        let (x, xs, _) = reference::gru::gru(&e.gru, &x, &xs, None)?;
        let (m, _) =
            reference::linear(&x, &xs, &e.final_w.data, &e.final_w.shape, Some(&e.final_b.data), Activation::Identity)?;
        let l = cfg.output_dim;
        let mut out = Vec::with_capacity(b * to * l);
        for bi in 0..b {
            out.extend_from_slice(&m[(bi * t + t - to) * l..(bi * t + t) * l]);
        }
        Ok(out)
    }

    /// The whole forward pass on the CPU: video [B, 1, T, H, W], responses [B, N, T] (needed to
    /// condition; when given, the log-likelihood of their last T' frames is computed), S samples
    /// of Philox noise ε [S, B·T', L], video v's output frame j from stream (seed, v · 2^32 + j).
    pub fn reference_forward(
        &self,
        video: &[f32],
        shape: &[usize],
        responses: Option<&[f32]>,
        mode: LatentMode,
        samples: usize,
        seed: u64,
    ) -> Result<LatentOutput> {
        self.reference_forward_with(
            video,
            shape,
            responses,
            mode,
            LatentNoise::Philox { samples, seed, first_video: 0 },
        )
    }

    /// [`Latent::reference_forward`] with the noise drawn or given (see [`LatentNoise`]).
    pub fn reference_forward_with(
        &self,
        video: &[f32],
        shape: &[usize],
        responses: Option<&[f32]>,
        mode: LatentMode,
        noise: LatentNoise,
    ) -> Result<LatentOutput> {
        let rshape =
            [shape.first().copied().unwrap_or(0), self.config.readout.neurons, shape.get(2).copied().unwrap_or(0)];
        let [b, t, to, n] = self.check_inputs(shape, responses.map(|_| &rshape[..]))?;
        let s = self.noise_samples(noise, b * to)?;
        Self::check_mode(mode, s, responses.is_some())?;
        let (logits, _) = self.reference_logits(video, shape)?;
        let (bt, l) = (b * to, self.config.encoder.output_dim);
        let eps = match noise {
            LatentNoise::Philox { seed, first_video, .. } => frame_noise(seed, first_video, 0, to, b, s, l),
            LatentNoise::Given(e) => e.to_vec(),
        };
        let mu = match (mode, responses) {
            (LatentMode::Conditioned, Some(r)) => Some(self.reference_means(r, &rshape, to, mode)?),
            _ => None,
        };
        let lat = |z: &'_ [f32], ns: usize| -> (Vec<f32>, [usize; 3]) { (z.to_vec(), [ns, bt, l]) };
        // The mean: from z = μ (conditioned) or from q and θ averaged over the prior samples.
        let (zm, zs) = match &mu {
            Some(mu) => lat(mu, 1),
            None => lat(&eps, s),
        };
        let zl = ZigLatent { z: &zm, z_shape: zs, w_q: &self.w_q.data, w_theta: &self.w_theta.data };
        let (q, th) = reference::zig::zig_latent_params(&logits, [bt, n], &zl)?;
        let ns = zs[0];
        let mut mean = vec![0f32; bt * n];
        for i in 0..bt * n {
            let ni = i % n;
            let qa = (0..ns).map(|si| q[si * bt * n + i] as f64).sum::<f64>() / ns as f64;
            let ta = (0..ns).map(|si| th[si * bt * n + i] as f64).sum::<f64>() / ns as f64;
            mean[i] = zig_mean(qa, ta, self.k[ni] as f64, self.loc[ni] as f64) as f32;
        }
        let loglik = match responses {
            Some(r) => {
                let z: Vec<f32> = match &mu {
                    Some(mu) => (0..s * bt * l).map(|i| mu[i % (bt * l)] + self.sigma * eps[i]).collect(),
                    None => eps.clone(),
                };
                let zl = ZigLatent { z: &z, z_shape: [s, bt, l], w_q: &self.w_q.data, w_theta: &self.w_theta.data };
                let y = targets(r, b, n, t, to);
                Some(reference::zig::zig_latent_loglik(&y, &logits, [bt, n], &zl, &self.k, &self.loc)?)
            }
            None => None,
        };
        Ok(LatentOutput { mean, loglik, shape: [b, to, n] })
    }
}
