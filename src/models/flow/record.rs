//! The flow's GPU passes, recorded on a [`Recorder`]: density (data → base) and sampling (base →
//! data), each one submit.

use super::weights::{Conditioner, Layer};
use super::{Flow, OP};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, SplineParams};
use crate::runtime::Recorder;
use crate::tensor::Tensor;

impl Conditioner {
    fn feature_mask(&self) -> Result<&ops::flows::FeatureMask> {
        self.fmask.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))
    }
}

impl Flow {
    fn heads(rec: &mut Recorder, net: &Conditioner, x: &Tensor) -> Result<Vec<Tensor>> {
        let mut h = x.clone();
        for lin in &net.hidden {
            let (w, b) = lin.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
            h = ops::linear(rec, &h, w, Some(b), Activation::Relu)?;
        }
        net.heads
            .iter()
            .map(|lin| {
                let (w, b) = lin.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                ops::linear(rec, &h, w, Some(b), Activation::Identity)
            })
            .collect()
    }

    /// One layer forward (data → base) or inverse; returns the new x and the running log-det.
    /// One layer forward (data → base) or inverse. The running log-det is a per-row tensor (from the
    /// couplings, `None` before the first) plus a constant not yet added to it (ActNorm's, which does
    /// not depend on x): returns the new x, tensor and constant.
    fn layer(
        &self,
        rec: &mut Recorder,
        l: &Layer,
        x: &Tensor,
        acc: Option<&Tensor>,
        pending: f32,
        inverse: bool,
    ) -> Result<(Tensor, Option<Tensor>, f32)> {
        let n = x.shape()[0];
        let (y, ld) = match l {
            Layer::Actnorm { log_s, dev, .. } => {
                let (ls, b) = dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                let y = ops::actnorm(rec, x, ls, b, inverse)?;
                let c = ops::flows::actnorm_logdet(&log_s.data, 1, inverse) as f32;
                return Ok((y, acc.cloned(), pending + c));
            }
            Layer::Affine { net, .. } => {
                let p = Self::heads(rec, net, x)?;
                ops::flows::affine_coupling_masked(rec, x, &p[0], &p[1], net.feature_mask()?, inverse)?
            }
            Layer::Spline { mask, bins, params, net } => {
                let p = Self::heads(rec, net, x)?;
                let t = mask.iter().filter(|&&m| m).count();
                let (k, sp) = (*bins, SplineParams { inverse, ..*params });
                let w = p[0].reshape(&[n, t, k])?;
                let h = p[1].reshape(&[n, t, k])?;
                let d = p[2].reshape(&[n, t, k - 1])?;
                ops::flows::rq_spline_coupling_masked(rec, x, &w, &h, &d, net.feature_mask()?, &sp)?
            }
        };
        Ok((y, Some(ops::row_sum_add(rec, &ld, acc, 1.0, pending)?), 0.0))
    }

    /// Records data → base: returns (z [N, D], log p(x) [N] = log N(z) + Σ log-dets).
    pub fn record_log_prob(&self, rec: &mut Recorder, x: &Tensor) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.log_prob_unit(rec, x))
    }

    fn log_prob_unit(&self, rec: &mut Recorder, x: &Tensor) -> Result<(Tensor, Tensor)> {
        self.check_input(x)?;
        let mut h = x.clone();
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for l in &self.layers {
            (h, acc, pending) = self.layer(rec, l, &h, acc.as_ref(), pending, false)?;
        }
        let lp = ops::normal_logprob(rec, &h, acc.as_ref(), pending)?;
        Ok((h, lp))
    }

    /// Records base → data for `n` samples drawn with the engine's generator (seed, offset) and
    /// scaled by `temperature`: returns (x [n, D], log-det of the inverse pass [n]).
    pub fn record_sample(
        &self,
        rec: &mut Recorder,
        n: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.sample_unit(rec, n, temperature, seed, offset))
    }

    fn sample_unit(
        &self,
        rec: &mut Recorder,
        n: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        ops::finite(OP, "temperature", temperature, true)?;
        let d = self.config.features;
        let z = ops::random_normal_scaled(rec, &[n, d], seed, offset, temperature)?;
        let mut h = z.clone();
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for l in self.layers.iter().rev() {
            (h, acc, pending) = self.layer(rec, l, &h, acc.as_ref(), pending, true)?;
        }
        // Whatever constant is left (or all of it, in a flow without couplings).
        let ld = match acc {
            Some(a) if pending == 0.0 => a,
            Some(a) => ops::row_sum_add(rec, &a, None, 1.0, pending)?,
            None => ops::row_sum_add(rec, &z, None, 0.0, pending)?,
        };
        Ok((h, ld))
    }
}
