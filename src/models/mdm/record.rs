//! The MDM denoiser recorded on a [`Recorder`].

use super::Mdm;
use crate::error::{Error, Result};
use crate::ops::{self, Activation};
use crate::runtime::Recorder;
use crate::tensor::Tensor;

impl Mdm {
    /// Records the denoiser on x [S, F, D] at timestep `t` (the same for the batch): [S, F, D].
    pub fn record(&self, rec: &mut Recorder, x: &Tensor, t: usize) -> Result<Tensor> {
        let f = match x.shape() {
            &[_, f, d] if d == self.config.features => f,
            sh => return Err(Error::shape("mdm", "x", sh, format!("[S, F, {}]", self.config.features))),
        };
        // The timestep token and the frames: one position each.
        if f + 1 > self.config.max_len {
            return Err(Error::param(
                "mdm",
                "frames",
                format!("{f} frames and the timestep token are past the table of {} positions", self.config.max_len),
            ));
        }
        if t >= self.timesteps {
            return Err(Error::param(
                "mdm",
                "timestep",
                format!("{t} is past the {} timesteps the model has tokens for", self.timesteps),
            ));
        }
        rec.atomic(|rec| {
            let id = Activation::Identity;
            let h = ops::linear(rec, x, &self.input.0, Some(&self.input.1), id)?;
            // The timestep token: row t of the precomputed table, for the whole batch.
            let mut seq = ops::attention::prepend_token(rec, &h, &self.tokens, Some(t), &self.pe_dev)?;
            for l in &self.layers {
                seq = l.record(rec, &seq)?;
            }
            let frames = ops::attention::drop_token(rec, &seq)?;
            ops::linear(rec, &frames, &self.output.0, Some(&self.output.1), id)
        })
    }
}
