//! The cGNF pose model (Pierzchlewicz et al.; sinzlab/propose; docs/ops.md, cGNF message passing; config in
//! docs/models.md): a conditional graph normalizing flow over the 3-D joints of a skeleton, conditioned on the 2-D
//! keypoints.
//!
//! Nodes are the J joints of each pose (3 features). For i in 0..L: a per-node ActNorm(3), then an
//! affine coupling whose mask transforms one coordinate (i mod 3, propose's leave-one-out masks; or
//! whatever the state dict's `identity_features`/`transform_features` say) conditioned, through a
//! two-layer CondGNN, on the other coordinates of all joints and on the context. The base is a
//! standard normal per node. The context is a DenseSAGE embedding of the keypoints (propose's
//! `SageEmbedding`) after propose's preprocessing (×0.0139, root-centred, y flipped); keypoint j
//! sends a `c→x` message to joint j where it is observed. Without a context the model is the prior.
//!
//! The weights are a propose `CondGraphFlow` state dict (with its `SageEmbedding`) saved as
//! safetensors, with propose's key names; for flow layer i (k = 2i, 2i + 1):
//! - `_transform._transforms.{2i}.log_scale [3]`, `.shift [3]` (ActNorm; `.initialized` accepted);
//! - `_transform._transforms.{2i+1}.transform_net.layers.{l}.layers.{x, x->x, c, c->x}.{weight, bias}`
//!   and `...layers.{l}.pool.{weight, bias}` for the two CondGCN layers l = 0, 1 (layer 0: in 3 − T,
//!   hidden H, out H, context C; layer 1: in H, out 2T, context H); `...identity_features` and
//!   `...transform_features` (nflows' index buffers) where present define the mask. propose creates
//!   an `x<-x` layer and an `attention` layer too but never uses them (its reversed skeleton edges
//!   use `x->x`; `use_attention` is off), so they are accepted and ignored. Its `r` and `r->x`
//!   layers serve the separate root node: with `"root": {"children": [...]}` in the config each
//!   pose has a root node (3 features: the root joint's position, [B, 3], zero by default as for
//!   root-centred poses; not a flow variable) whose message ReLU(W_rx r + b_rx) reaches the listed
//!   joints, and r' = ReLU(W_r r + b_r) feeds layer 1; without it they are accepted and ignored;
//! - `_embedding_net.adj [J, J]`, `_embedding_net.layers.{0,1}.lin_rel.weight`,
//!   `.lin_root.weight` and the layer's bias as `.lin_root.bias` (PyG 2) or `.lin_rel.bias`
//!   (PyG DenseSAGEConv, 2 → hidden → C, ReLU between);
//! - `_distribution.*` buffers are accepted and ignored.
//!
//! Log-densities are per node, as propose's `log_prob` returns them (sum over the joints for the
//! log-density of a pose). With a samples axis they are kept per sample, each the exact log-density
//! of its sample. (propose, given a samples axis, averages the coupling log-scales over the samples
//! and takes the base density of the samples' mean z: a summary, not a density of any one sample.)
//!
//! Loading folds: each CondGCN's self-loop and neighbour linears are stacked into one matmul over
//! the nodes (the first widened with a zero column for the transformed coordinate), the context
//! linears into one matmul over the keypoints, layer 0's pool into layer 1's node linears, and
//! layer 1's pool is split into a shift head and a scale head. Layer 0's node messages (from 3
//! coordinates) are computed inside its aggregation rather than stored. A coupling is then 7
//! dispatches (9 with a root node).

mod config;
mod fixtures;
mod load;
mod record;
mod reference;
mod weights;

pub use config::{CgnfConfig, EmbeddingConfig, RootConfig};
pub use fixtures::random_state_dict;
pub use record::Condition;

use crate::error::{Error, Result};
use crate::ops::{self, KeypointPrep, Skeleton};

use weights::{ActNorm, Coupling, Sage};

const WHAT: &str = "cgnf weights";
const OP: &str = "cgnf";

pub struct Cgnf {
    config: CgnfConfig,
    skeleton: Skeleton,
    table: Option<ops::DeviceSkeleton>,
    actnorms: Vec<ActNorm>,
    couplings: Vec<Coupling>,
    embedding: Option<Sage>,
}

impl Cgnf {
    /// The config the model was built from (fixed: the folded weights depend on it).
    pub fn config(&self) -> &CgnfConfig {
        &self.config
    }

    /// propose's keypoint preprocessing, with an embedding.
    fn prep(&self) -> Option<KeypointPrep> {
        self.config.embedding.as_ref().map(|e| e.prep())
    }

    /// Refuses root features for a model without a root node.
    fn expect_root_node(&self) -> Result<()> {
        if self.config.root.is_none() {
            return Err(Error::param(OP, "root", "this model has no root node (no \"root\" in its config)"));
        }
        Ok(())
    }

    /// Root features of `shape` for b poses: only a model with a root node takes them, as [b, 3].
    fn check_root(&self, shape: &[usize], b: usize) -> Result<()> {
        self.expect_root_node()?;
        if shape != [b, 3] {
            return Err(Error::shape(OP, "root", shape, format!("[{b}, 3]")));
        }
        Ok(())
    }

    fn check_observed(&self, observed: &[bool], b: usize) -> Result<()> {
        if observed.len() != b * self.config.joints {
            return Err(Error::shape(OP, "observed", &[observed.len()], format!("[{b}, {}]", self.config.joints)));
        }
        Ok(())
    }
}
