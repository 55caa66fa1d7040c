//! The flow config (docs/models.md): the features and the layers, and their validation.

use serde::{Deserialize, Serialize};

use super::OP;
use crate::error::{Error, Result};
use crate::ops::{self, SplineParams};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    Actnorm,
    Affine,
    Spline {
        bins: usize,
        #[serde(default = "one")]
        tail_bound: f32,
    },
}

fn one() -> f32 {
    1.0
}

/// The largest spline tail bound a flow config may give (the op's own limit).
pub use crate::ops::flows::MAX_TAIL_BOUND;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowConfig {
    pub features: usize,
    pub layers: Vec<LayerConfig>,
}

impl FlowConfig {
    pub fn from_json(text: &str) -> Result<FlowConfig> {
        crate::models::parse_config(text, "flow", "flow")
    }

    /// Checks the sizes and each spline layer's settings, naming the field (`layers[i].bins`, …).
    pub fn validate(&self) -> Result<()> {
        let d = self.features;
        if d < 2 {
            return Err(Error::param(OP, "features", "a coupling flow needs at least 2 features"));
        }
        if d > ops::MAX_GEOMETRY {
            return Err(Error::param(
                OP,
                "features",
                format!("{d} is past the supported maximum {}", ops::MAX_GEOMETRY),
            ));
        }
        if self.layers.len() > ops::MAX_GEOMETRY {
            return Err(Error::param(
                OP,
                "layers",
                format!("{} layers is past the supported maximum {}", self.layers.len(), ops::MAX_GEOMETRY),
            ));
        }
        for (i, lc) in self.layers.iter().enumerate() {
            if let LayerConfig::Spline { bins, tail_bound } = lc {
                let k = *bins;
                if !(2..=ops::MAX_GEOMETRY).contains(&k) {
                    return Err(Error::param(
                        OP,
                        format!("layers[{i}].bins"),
                        format!("{k}: a spline needs 2..={} bins", ops::MAX_GEOMETRY),
                    ));
                }
                // Past 1e6 the spline's f32 arithmetic (knots at 2·B·width, squared
                // heights) leaves f32's range: 3.4e38 gave a density unlike the reference's.
                if tail_bound.is_nan() || *tail_bound > MAX_TAIL_BOUND {
                    return Err(Error::param(
                        OP,
                        format!("layers[{i}].tail_bound"),
                        format!("{tail_bound:e} is past {MAX_TAIL_BOUND:e}"),
                    ));
                }
                SplineParams { tail_bound: *tail_bound, ..Default::default() }.validate(k)?;
            }
        }
        Ok(())
    }
}
