//! vcortex: a GPU compute engine for models of the visual system and their probabilistic
//! relatives. Hand-written WGSL kernels on wgpu, each checked against a CPU reference.
//!
//! ```no_run
//! use vcortex::{ops, Context, Tensor};
//! let ctx = Context::new()?;
//! let x = Tensor::from_f32(&ctx, &vec![0.5; 2 * 3 * 8 * 8], &[2, 3, 8, 8])?;
//! let w = Tensor::from_f32(&ctx, &vec![0.1; 4 * 3 * 3 * 3], &[4, 3, 3, 3])?;
//! let mut rec = ctx.recorder();
//! let y = ops::conv2d(&mut rec, &x, &w, None, &ops::Conv2dParams::default().with_padding(1, 1), &Default::default())?;
//! let y = ops::activation(&mut rec, &y, ops::Activation::Elu)?;
//! let h = rec.read_back(&y);
//! let values = rec.submit()?.f32(h);   // one submit for the whole chain
//! # Ok::<(), vcortex::Error>(())
//! ```

// Shapes are written as in the field, `[N, C, H, W]`: not intra-doc links.
#![allow(rustdoc::broken_intra_doc_links)]

// The bench suite, the eval case runner and the shader table serve the `vcortex` binary and the
// tests; they are not part of the library's API.
#[doc(hidden)]
pub mod bench;
pub mod diffusion;
pub mod error;
#[doc(hidden)]
pub mod eval;
pub mod io;
pub mod models;
pub mod ops;
pub mod reference;
pub mod rng;
pub mod runtime;
#[doc(hidden)]
pub mod shaders;
pub mod tensor;

pub use error::{Error, Result};
pub use runtime::{Context, Recorder, ShaderChecks};
pub use tensor::{DType, Tensor};
