//! The MDM denoiser's sizes and their validation.

use crate::error::{Error, Result};
use crate::ops;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MdmConfig {
    /// Features per frame (17 joints × 3 = 51).
    pub features: usize,
    pub latent: usize,
    pub heads: usize,
    pub layers: usize,
    /// Longest sequence (frames + 1) and largest timestep the sinusoidal table covers.
    pub max_len: usize,
}

/// The longest sequence (and the most timesteps) an MDM table may cover: past MDM's own 5000
/// positions, and far past what a sampler can visit in reasonable time (the timestep tokens are
/// computed on the host, each an E×E product).
pub const MAX_LEN: usize = 1 << 13;
/// The most encoder layers a config may ask for.
pub const MAX_LAYERS: usize = 1024;

impl MdmConfig {
    /// Checks the sizes against each other and against [`MAX_LEN`], [`MAX_LAYERS`] and
    /// `ops::MAX_GEOMETRY`, with nothing allocated; an error names the field (`mdm.max_len`, …).
    pub fn validate(&self) -> Result<()> {
        let bound = |name: &str, v: usize, lo: usize, hi: usize| -> Result<()> {
            if v < lo || v > hi {
                return Err(Error::param("mdm", format!("mdm.{name}"), format!("{v} must be in {lo}..={hi}")));
            }
            Ok(())
        };
        bound("features", self.features, 1, ops::MAX_GEOMETRY)?;
        bound("latent", self.latent, 2, ops::MAX_GEOMETRY)?;
        bound("heads", self.heads, 1, self.latent)?;
        bound("layers", self.layers, 0, MAX_LAYERS)?;
        // A timestep token and at least one frame.
        bound("max_len", self.max_len, 2, MAX_LEN)?;
        let e = self.latent;
        if e % 2 != 0 || e % self.heads != 0 {
            return Err(Error::param(
                "mdm",
                "mdm.latent",
                format!("{e} must be even and divisible by the {} heads", self.heads),
            ));
        }
        Ok(())
    }
}
