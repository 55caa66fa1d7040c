//! The cGNF config (docs/models.md): sizes, skeleton, keypoint embedding and root node, and their
//! validation.

use serde::Deserialize;

use super::OP;
use crate::error::{Error, Result};
use crate::ops::{self, KeypointPrep};

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// DenseSAGE hidden width (propose: 128).
    pub hidden: usize,
    #[serde(default = "default_scale")]
    pub keypoint_scale: f32,
    /// The keypoint subtracted from all (propose: 0, the pelvis); null for none.
    #[serde(default = "default_root")]
    pub root: Option<usize>,
    #[serde(default = "default_true")]
    pub flip_y: bool,
}

fn default_scale() -> f32 {
    0.0139
}
fn default_root() -> Option<usize> {
    Some(0)
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CgnfConfig {
    /// Joints per pose (and keypoints: keypoint j observes joint j). propose: 16.
    pub joints: usize,
    /// Flow layers L (ActNorm + coupling each). propose: 10.
    pub layers: usize,
    /// The CondGNN's hidden width H. propose: 100.
    pub hidden: usize,
    /// Features of the context nodes C (the embedding's output). propose: 10.
    pub context_features: usize,
    /// The skeleton: (parent, child) joint pairs, each bone once.
    pub edges: Vec<[usize; 2]>,
    /// The keypoint embedding; null to use the raw keypoints as the context (C = 2).
    #[serde(default)]
    pub embedding: Option<EmbeddingConfig>,
    /// propose's separate root node; null when the root is one of the joints.
    #[serde(default)]
    pub root: Option<RootConfig>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootConfig {
    /// The joints the root node sends its message to (propose's `r→x` edges).
    pub children: Vec<usize>,
}

impl CgnfConfig {
    pub fn from_json(text: &str) -> Result<CgnfConfig> {
        crate::models::parse_config(text, "cgnf", "cgnf")
    }

    /// Checks the sizes (each in 1..=`ops::MAX_GEOMETRY`) and the embedding's settings, naming the
    /// field; the skeleton's edges are checked when it is built.
    pub fn validate(&self) -> Result<()> {
        let (j, c) = (self.joints, self.context_features);
        for (name, v) in [("layers", self.layers), ("hidden", self.hidden), ("context_features", c)] {
            if v == 0 || v > ops::MAX_GEOMETRY {
                return Err(Error::param(OP, name, format!("{v} must be in 1..={}", ops::MAX_GEOMETRY)));
            }
        }
        match &self.embedding {
            None => {
                if c != 2 {
                    return Err(Error::param(
                        OP,
                        "context_features",
                        format!("{c}: without an embedding the context is the raw 2-D keypoints (2 features)"),
                    ));
                }
            }
            Some(e) => {
                if e.hidden == 0 || e.hidden > ops::MAX_GEOMETRY {
                    return Err(Error::param(
                        OP,
                        "embedding.hidden",
                        format!("{} must be in 1..={}", e.hidden, ops::MAX_GEOMETRY),
                    ));
                }
                ops::finite(OP, "embedding.keypoint_scale", e.keypoint_scale, false)?;
                if let Some(r) = e.root {
                    if r >= j {
                        return Err(Error::param(OP, "embedding.root", format!("keypoint {r} is past the {j} joints")));
                    }
                }
            }
        }
        Ok(())
    }

    /// propose's production cGNF (L = 10, hidden 100, context 10, DenseSAGE hidden 128) on a
    /// 16-joint MPII-style skeleton.
    pub fn propose() -> CgnfConfig {
        CgnfConfig {
            joints: 16,
            layers: 10,
            hidden: 100,
            context_features: 10,
            edges: vec![
                [0, 1],
                [1, 2],
                [2, 6],
                [6, 3],
                [3, 4],
                [4, 5],
                [6, 7],
                [7, 8],
                [8, 9],
                [8, 12],
                [12, 11],
                [11, 10],
                [8, 13],
                [13, 14],
                [14, 15],
            ],
            embedding: Some(EmbeddingConfig { hidden: 128, keypoint_scale: 0.0139, root: Some(0), flip_y: true }),
            root: None,
        }
    }
}

impl EmbeddingConfig {
    /// propose's keypoint preprocessing: scaled, root-centred, y flipped.
    pub(super) fn prep(&self) -> KeypointPrep {
        KeypointPrep {
            root: self.root,
            scale: [self.keypoint_scale, if self.flip_y { -self.keypoint_scale } else { self.keypoint_scale }],
        }
    }
}
