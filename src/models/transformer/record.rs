//! An encoder layer recorded on a [`Recorder`].

use super::EncoderLayer;
use crate::error::Result;
use crate::ops::{self, Activation};
use crate::runtime::Recorder;
use crate::tensor::Tensor;

impl EncoderLayer {
    /// Records the layer on x [B, F, E].
    pub fn record(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let id = Activation::Identity;
        let q = ops::linear(rec, x, &self.q.0, Some(&self.q.1), id)?;
        let k = ops::linear(rec, x, &self.k.0, Some(&self.k.1), id)?;
        let v = ops::linear(rec, x, &self.v.0, Some(&self.v.1), id)?;
        let a = ops::attention(rec, &q, &k, &v, self.heads)?;
        let a = ops::linear(rec, &a, &self.out.0, Some(&self.out.1), id)?;
        let h = ops::add(rec, x, &a, id)?;
        let h = ops::layer_norm(rec, &h, 1, Some(&self.ln1.0), Some(&self.ln1.1), self.eps, id)?;
        let f = ops::linear(rec, &h, &self.ff1.0, Some(&self.ff1.1), Activation::Gelu)?;
        let f = ops::linear(rec, &f, &self.ff2.0, Some(&self.ff2.1), id)?;
        let y = ops::add(rec, &h, &f, id)?;
        ops::layer_norm(rec, &y, 1, Some(&self.ln2.0), Some(&self.ln2.1), self.eps, id)
    }
}
