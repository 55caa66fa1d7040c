//! The cGNF's GPU forward, recorded on a [`Recorder`]: the condition (keypoint embedding), the
//! density (data → base), sampling (base → data) and the mode.

use super::weights::{Coupling, Lin};
use super::{Cgnf, OP};
use crate::error::{Error, Result};
use crate::ops::{self, Activation, GcnContext};
use crate::runtime::Recorder;
use crate::tensor::Tensor;

/// The condition of a batch of poses on the device: the embedded keypoints [B, J, C] and the
/// observation mask [B, J] (none for the prior), and the root nodes' features. Made once by
/// [`Cgnf::record_condition`] (or [`Cgnf::prior_condition`]), shared by density and sampling.
pub struct Condition {
    /// (embedded keypoints, observed mask)
    keypoints: Option<(Tensor, Tensor)>,
    batch: usize,
    /// The root nodes' features [B, 3] (a root config; None: zeros).
    root: Option<Tensor>,
}

impl Condition {
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// The embedded keypoints [B, J, C] (the `c` node features); None for the prior.
    pub fn context(&self) -> Option<&Tensor> {
        self.keypoints.as_ref().map(|k| &k.0)
    }
}

impl Lin {
    fn record(&self, rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
        let (w, b) = self.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        ops::linear(rec, x, w, b.as_ref(), act)
    }
}

impl Coupling {
    fn feature_mask(&self) -> Result<&ops::flows::FeatureMask> {
        self.fmask.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))
    }
}

impl Cgnf {
    /// Records the context of a batch: raw 2-D keypoints [B, J, 2] (pixels, as propose takes them)
    /// and which of them are observed ([B·J], row-major).
    pub fn record_condition(&self, rec: &mut Recorder, keypoints: &Tensor, observed: &[bool]) -> Result<Condition> {
        self.record_condition_with_root(rec, keypoints, observed, None)
    }

    /// The prior's condition (no keypoints) for `batch` poses with the root nodes' features
    /// [batch, 3] (a root config only; None: zeros).
    pub fn prior_condition(&self, batch: usize, root: Option<&Tensor>) -> Result<Condition> {
        if let Some(r) = root {
            self.check_root(r.shape(), batch)?;
            r.expect_f32(OP, "root")?;
        }
        if batch == 0 {
            return Err(Error::param(OP, "batch", "must be >= 1"));
        }
        Ok(Condition { keypoints: None, batch, root: root.cloned() })
    }

    /// As [`Cgnf::record_condition`], with the root nodes' features [B, 3] (a root config only).
    pub fn record_condition_with_root(
        &self,
        rec: &mut Recorder,
        keypoints: &Tensor,
        observed: &[bool],
        root: Option<&Tensor>,
    ) -> Result<Condition> {
        rec.atomic(|rec| {
            let j = self.config.joints;
            keypoints.expect_f32(OP, "keypoints")?;
            let b = match *keypoints.shape() {
                [b, kj, 2] if kj == j => b,
                _ => return Err(Error::shape(OP, "keypoints", keypoints.shape(), format!("[B, {j}, 2]"))),
            };
            self.check_observed(observed, b)?;
            if let Some(r) = root {
                self.check_root(r.shape(), b)?;
                r.expect_f32(OP, "root")?;
            }
            let mask: Vec<f32> = observed.iter().map(|&o| o as u8 as f32).collect();
            let obs = Tensor::from_f32(rec.context(), &mask, &[b, j])?;
            let context = match &self.embedding {
                None => keypoints.clone(),
                Some(e) => {
                    let adj = e.dev_adj.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                    let a0 = ops::sage_aggregate(rec, keypoints, adj, &obs, self.prep())?;
                    let h = e.folded[0].record(rec, &a0, Activation::Relu)?;
                    let a1 = ops::sage_aggregate(rec, &h, adj, &obs, None)?;
                    e.folded[1].record(rec, &a1, Activation::Identity)?
                }
            };
            Ok(Condition { keypoints: Some((context, obs)), batch: b, root: root.cloned() })
        })
    }

    /// The conditioner of a coupling on x [B, S, J, 3]: (shift, unconstrained scale), [B·S·J, T].
    fn conditioner(
        &self,
        rec: &mut Recorder,
        c: &Coupling,
        x: &Tensor,
        cond: Option<&Condition>,
        root: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let (h, f) = (self.config.hidden, &c.folded);
        let table = self.table.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let rows = x.numel() / 3;
        let nodes0 = f.nodes0_dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
        let kp = cond.and_then(|k| k.keypoints.as_ref());
        let mc0 = kp.map(|k| f.ctx0.record(rec, &k.0, Activation::Relu)).transpose()?;
        fn ctx<'a>(mc: &'a Option<Tensor>, kp: Option<&'a (Tensor, Tensor)>) -> Option<GcnContext<'a>> {
            mc.as_ref().zip(kp).map(|(m, k)| GcnContext { message: m, observed: &k.1 })
        }
        let mr0 = match (&f.root0, root) {
            (Some(l), Some(r)) => Some(l.record(rec, r, Activation::Relu)?),
            _ => None,
        };
        fn rt(m: &Option<Tensor>) -> Option<ops::GcnRoot<'_>> {
            m.as_ref().map(|message| ops::GcnRoot { message })
        }
        let h0 = ops::gcn_aggregate_linear(rec, x, nodes0, h, table, ctx(&mc0, kp), rt(&mr0))?;
        let mx1 = f.nodes1.record(rec, &h0, Activation::Relu)?;
        let mc1 = mc0.as_ref().map(|m| f.ctx1.record(rec, m, Activation::Relu)).transpose()?;
        let mr1 = match (&f.root1, &mr0) {
            (Some(l), Some(m)) => Some(l.record(rec, m, Activation::Relu)?),
            _ => None,
        };
        let h1 = ops::gcn_aggregate(rec, &mx1, h, table, ctx(&mc1, kp), rt(&mr1))?;
        let t = c.mask.iter().filter(|&&m| m).count();
        let shift = f.shift.record(rec, &h1, Activation::Identity)?.reshape(&[rows, t])?;
        let scale = f.scale.record(rec, &h1, Activation::Identity)?.reshape(&[rows, t])?;
        Ok((shift, scale))
    }

    /// The root nodes' features for a batch of b poses: the condition's, or zeros (a root config).
    fn root_input(&self, rec: &mut Recorder, cond: Option<&Condition>, b: usize) -> Result<Option<Tensor>> {
        if self.config.root.is_none() {
            return Ok(None);
        }
        if let Some(r) = cond.and_then(|c| c.root.clone()) {
            return Ok(Some(r));
        }
        let z = rec.alloc(OP, &[b, 3], crate::tensor::DType::F32)?;
        rec.clear(&z);
        Ok(Some(z))
    }

    /// Checks nodes `x` as the caller passed them: [B, S, J, 3], or also [B, J, 3] (one sample per
    /// pose) where `per_pose`; returns (B, S). A refusal names `what` and the caller's shape, never
    /// a view made of it.
    fn check_nodes(&self, x: &Tensor, what: &str, cond: Option<&Condition>, per_pose: bool) -> Result<(usize, usize)> {
        x.expect_f32(OP, what)?;
        let j = self.config.joints;
        let (b, s) = match *x.shape() {
            [b, s, xj, 3] if xj == j => (b, s),
            [b, xj, 3] if per_pose && xj == j => (b, 1),
            _ if per_pose => return Err(Error::shape(OP, what, x.shape(), format!("[B, {j}, 3] or [B, S, {j}, 3]"))),
            _ => return Err(Error::shape(OP, what, x.shape(), format!("[B, S, {j}, 3]"))),
        };
        if let Some(c) = cond {
            if c.batch != b {
                let want = if x.shape().len() == 3 {
                    format!("[{}, {j}, 3]", c.batch)
                } else {
                    format!("[{}, S, {j}, 3]", c.batch)
                };
                return Err(Error::shape(OP, what, x.shape(), format!("{want} (the condition's batch)")));
            }
        }
        Ok((b, s))
    }

    /// The batch of a condition, or `batch` poses of the prior (refused when none).
    fn batch_of(&self, cond: Option<&Condition>, batch: usize) -> Result<usize> {
        match cond {
            Some(c) => Ok(c.batch),
            None if batch == 0 => Err(Error::param(OP, "batch", "must be >= 1")),
            None => Ok(batch),
        }
    }

    /// Records the density of poses [B, J, 3] (or [B, S, J, 3]) given a condition (None: the
    /// prior): returns (z, the base point, of the same shape; log p per node [B, J] or [B, S, J]).
    pub fn record_log_prob(
        &self,
        rec: &mut Recorder,
        poses: &Tensor,
        cond: Option<&Condition>,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| {
            let shape = poses.shape().to_vec();
            let (b, s) = self.check_nodes(poses, "poses", cond, true)?;
            let root = self.root_input(rec, cond, b)?;
            let rows = b * s * self.config.joints;
            let mut h = poses.reshape(&[rows, 3])?;
            let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
            for (a, c) in self.actnorms.iter().zip(&self.couplings) {
                let (ls, sh) = a.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
                h = ops::actnorm(rec, &h, ls, sh, false)?;
                pending += ops::flows::actnorm_logdet(&a.log_s.data, 1, false) as f32;
                let (shift, scale) =
                    self.conditioner(rec, c, &h.reshape(&[b, s, self.config.joints, 3])?, cond, root.as_ref())?;
                let (y, ld) = ops::flows::affine_coupling_masked(rec, &h, &shift, &scale, c.feature_mask()?, false)?;
                acc = Some(ops::row_sum_add(rec, &ld, acc.as_ref(), 1.0, pending)?);
                pending = 0.0;
                h = y;
            }
            let lp = ops::normal_logprob(rec, &h, acc.as_ref(), pending)?;
            Ok((h.reshape(&shape)?, lp.reshape(&shape[..shape.len() - 1])?))
        })
    }

    /// Records base → data for base points z [B, S, J, 3]: returns (poses [B, S, J, 3], their
    /// log p per node [B, S, J]).
    pub fn record_sample_from(
        &self,
        rec: &mut Recorder,
        z: &Tensor,
        cond: Option<&Condition>,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| self.sample_unit(rec, z, cond))
    }

    fn sample_unit(&self, rec: &mut Recorder, z: &Tensor, cond: Option<&Condition>) -> Result<(Tensor, Tensor)> {
        let (b, s) = self.check_nodes(z, "base points", cond, false)?;
        let root = self.root_input(rec, cond, b)?;
        let j = self.config.joints;
        let rows = b * s * j;
        let zr = z.reshape(&[rows, 3])?;
        let mut h = zr.clone();
        // Σ of the inverse pass's log-dets (a tensor and a constant not yet added).
        let (mut acc, mut pending): (Option<Tensor>, f32) = (None, 0.0);
        for (a, c) in self.actnorms.iter().zip(&self.couplings).rev() {
            let (shift, scale) = self.conditioner(rec, c, &h.reshape(&[b, s, j, 3])?, cond, root.as_ref())?;
            let (y, ld) = ops::flows::affine_coupling_masked(rec, &h, &shift, &scale, c.feature_mask()?, true)?;
            acc = Some(ops::row_sum_add(rec, &ld, acc.as_ref(), 1.0, pending)?);
            pending = 0.0;
            let (ls, sh) = a.dev.as_ref().ok_or_else(|| Error::param(OP, "weights", "not uploaded"))?;
            h = ops::actnorm(rec, &y, ls, sh, true)?;
            pending += ops::flows::actnorm_logdet(&a.log_s.data, 1, true) as f32;
        }
        // log p(x) = log N(z) − Σ inverse log-dets.
        let acc = acc.ok_or_else(|| Error::param(OP, "layers", "a flow needs at least one layer"))?;
        let neg = ops::row_sum_add(rec, &acc, None, -1.0, -pending)?;
        let lp = ops::normal_logprob(rec, &zr, Some(&neg), 0.0)?;
        Ok((h.reshape(&[b, s, j, 3])?, lp.reshape(&[b, s, j])?))
    }

    /// Records `samples` hypotheses per pose of the condition (or of `batch` poses from the prior)
    /// from z ~ N(0, temperature² I) drawn by the engine's generator at (seed, offset): returns
    /// (poses [B, S, J, 3], log p per node [B, S, J]).
    #[allow(clippy::too_many_arguments)]
    pub fn record_sample(
        &self,
        rec: &mut Recorder,
        cond: Option<&Condition>,
        batch: usize,
        samples: usize,
        temperature: f32,
        seed: u64,
        offset: u64,
    ) -> Result<(Tensor, Tensor)> {
        rec.atomic(|rec| {
            ops::finite(OP, "temperature", temperature, true)?;
            let b = self.batch_of(cond, batch)?;
            if samples == 0 {
                return Err(Error::param(OP, "samples", "must be >= 1"));
            }
            let z = ops::random_normal_scaled(rec, &[b, samples, self.config.joints, 3], seed, offset, temperature)?;
            self.sample_unit(rec, &z, cond)
        })
    }

    /// Records the mode of each pose's posterior (the inverse of z = 0): [B, J, 3].
    pub fn record_mode(&self, rec: &mut Recorder, cond: Option<&Condition>, batch: usize) -> Result<Tensor> {
        rec.atomic(|rec| {
            let b = self.batch_of(cond, batch)?;
            let j = self.config.joints;
            let z = rec.alloc(OP, &[b, 1, j, 3], crate::tensor::DType::F32)?;
            rec.clear(&z);
            let (x, _) = self.sample_unit(rec, &z, cond)?;
            x.reshape(&[b, j, 3])
        })
    }
}
