//! Integration tests: every GPU kernel against its CPU reference on random and awkward shapes,
//! the golden PyTorch cases through `eval`, bad input refused with typed errors, the runtime's
//! pool, cache, recorder and timing, and every WGSL file through naga without a GPU.

mod attention;
mod bench;
mod common;
mod conv;
mod conv3d;
mod copy;
mod cotrain;
mod diffusion;
mod docs;
mod elementwise;
mod errors;
mod files;
mod flows;
mod fuzz;
mod golden;
mod graph;
mod gru;
mod guidance;
mod latent;
mod matmul;
mod nan;
mod norm;
mod normalization;
mod pool;
mod random;
mod readout;
mod runtime;
mod scores;
mod sensorium;
mod sensorium_options;
mod sensorium_roteq;
mod shaders_naga;
mod video;
mod zig;
