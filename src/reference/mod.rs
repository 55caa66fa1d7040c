//! CPU references: the mirror of `ops/`, same names, plain loops with f64 accumulation, nothing
//! of the GPU. Every kernel is tested against these.

pub mod activation;
pub mod box_filter;
pub mod conv;
pub mod conv3d;
pub mod copy;
pub mod diffusion;
pub mod divisive_norm;
pub mod flows;
pub mod graph;
pub mod gru;
pub mod guidance;
pub mod matmul;
pub mod neurn;
pub mod norm;
pub mod pool;
pub mod random;
pub mod readout;
pub mod scores;
pub mod zig;

pub use activation::activation;
pub use box_filter::box_sum;
pub use conv::{concat_channels, conv2d};
pub use conv3d::{conv3d, factorized_conv3d};
pub use divisive_norm::{divisive_norm, DivNormRef};
pub use gru::{conv_gru, gru};
pub use matmul::{linear, matmul};
pub use neurn::neurn;
pub use norm::{batch_norm, layer_norm};
pub use pool::{avg_pool2d, max_pool2d};
pub use scores::scores;

/// Refuses data whose length is not the element count of its shape (overflow-safe: a shape too
/// large to count holds no data).
pub(crate) fn check_len(op: &'static str, what: &str, data: &[f32], shape: &[usize]) -> crate::error::Result<()> {
    let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX);
    if data.len() != expected {
        return Err(crate::error::Error::DataLength {
            op,
            what: what.to_string(),
            got: data.len(),
            expected,
            shape: shape.to_vec(),
        });
    }
    Ok(())
}
