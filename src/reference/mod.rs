//! CPU references: the mirror of `ops/`, same names, plain loops with f64 accumulation, nothing
//! of the GPU. Every kernel is tested against these.

pub mod activation;
pub mod conv;
pub mod matmul;
pub mod norm;

pub use activation::activation;
pub use conv::conv2d;
pub use matmul::{linear, matmul};
pub use norm::{batch_norm, layer_norm};
