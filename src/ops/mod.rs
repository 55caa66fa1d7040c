//! One module per op family: each checks shapes and parameters (a typed error, nothing recorded),
//! picks a kernel variant, packs the parameters and records the dispatch on a [`Recorder`].

/// The layout of a `#[repr(C)]` parameter block as Rust lays it out, for the test that holds it to
/// the WGSL struct of the same role (`kernels-tests/shaders_naga.rs`). The field list is an
/// exhaustive pattern of the struct: a field added to the struct and not listed does not compile.
macro_rules! params_layout {
    ($shader:literal, $wgsl:literal, $ty:ident, [$($f:ident),* $(,)?]) => {{
        #[allow(dead_code)]
        fn exhaustive(p: $ty) {
            let $ty { $($f: _),* } = p;
        }
        let z = <$ty as bytemuck::Zeroable>::zeroed();
        $crate::ops::ParamsLayout {
            shader: $shader,
            wgsl: $wgsl,
            rust: stringify!($ty),
            size: std::mem::size_of::<$ty>(),
            fields: vec![$($crate::ops::ParamsField {
                name: stringify!($f),
                offset: std::mem::offset_of!($ty, $f),
                size: std::mem::size_of_val(&z.$f),
                ty: $crate::ops::type_name_of(&z.$f),
            }),*],
        }
    }};
}
pub(crate) use params_layout;

pub mod activation;
pub mod attention;
pub mod box_filter;
pub mod cast;
pub mod conv;
pub mod conv3d;
pub mod copy;
pub mod diffusion;
pub mod divisive_norm;
pub mod flows;
pub mod graph;
pub mod gru;
pub mod guidance;
pub mod likelihood;
pub mod matmul;
pub mod neurn;
pub mod norm;
pub mod pool;
pub mod random;
pub mod readout;
pub mod scores;
pub mod zig;

pub use activation::{activation, add, mul, Activation};
pub use attention::{attention, softmax};
pub use box_filter::box_sum;
pub use cast::cast;
pub use conv::{conv2d, Conv2dParams, ConvAlgo, Epilogue};
pub use conv3d::{conv3d, factorized_conv3d, Conv3dAlgo, Conv3dParams, Factorized3dParams};
pub use copy::{concat_channels, copy};
pub use diffusion::{
    add_noise, cfg_combine, ddim_step, ddpm_step, sampler_step, sampler_step_guided, Guidance, GuidanceKind, Noise,
};
pub use divisive_norm::{
    divisive_norm, divisive_norm_with, DivNormOutput, DivNormParams, DnField, LocalPath, SupDivisor,
};
pub use flows::{actnorm, affine_coupling, normal_logprob, row_sum_add, rq_spline, rq_spline_coupling, SplineParams};
pub use graph::{
    gcn_aggregate, gcn_aggregate_linear, sage_aggregate, DeviceSkeleton, GcnContext, GcnRoot, KeypointPrep, Skeleton,
};
pub use gru::{
    conv_gru, conv_gru_step, conv_gru_stream, gru, gru_step, gru_stream, ConvGru, ConvGruParams, ConvGruState,
    ConvGruWeights, Gru, GruState, GruWeights,
};
pub use guidance::{multiview_energy, refine, Camera, Observations, Refinement};
pub use likelihood::{pearson, poisson_nll, zig_loglik, Reduction};
pub use matmul::{linear, matmul, matmul_nt, matmul_with, MatmulKernel};
pub use neurn::{neurn, MaxScope, NeurnParams};
pub use norm::{batch_norm, layer_norm};
pub use pool::{avg_pool2d, max_pool2d, Pool2dParams};
pub use random::{random_normal, random_normal_rows, random_normal_scaled, random_uniform};
pub use readout::{
    gaussian_readout, gaussian_readout_sample, gaussian_readout_sorted, grid_sample, ReadoutSample, SortedReadout,
};
pub use scores::{scores, Repeats, ScoreParams, ScoreSummary, SCORE_ROWS};
pub use zig::{
    zig_features_shape, zig_features_view, zig_latent_loglik, zig_latent_params, zig_map, zig_moments, zig_readout,
    ZigLatent, ZigMap, ZigMoment, ZigReadout,
};

use crate::error::{Error, Result};
use crate::runtime::Context;

/// One field of a parameter block: its name, byte offset and size, and Rust type (`u32`,
/// `[u32; 3]`, …).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ParamsField {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
    pub ty: &'static str,
}

/// A parameter block the host uploads as a shader family's uniform (binding 0): the shader
/// family, the WGSL struct it fills, the Rust type and its layout.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ParamsLayout {
    pub shader: &'static str,
    pub wgsl: &'static str,
    pub rust: &'static str,
    pub size: usize,
    pub fields: Vec<ParamsField>,
}

#[doc(hidden)]
pub fn type_name_of<T>(_: &T) -> &'static str {
    std::any::type_name::<T>()
}

/// Every parameter block of every family, for the Rust↔WGSL layout test (not an API).
#[doc(hidden)]
pub fn params_layouts() -> Vec<ParamsLayout> {
    [
        activation::params_layouts(),
        attention::params_layouts(),
        box_filter::params_layouts(),
        cast::params_layouts(),
        conv::params_layouts(),
        conv3d::params_layouts(),
        copy::params_layouts(),
        diffusion::params_layouts(),
        divisive_norm::params_layouts(),
        flows::params_layouts(),
        graph::params_layouts(),
        gru::params_layouts(),
        guidance::params_layouts(),
        matmul::params_layouts(),
        neurn::params_layouts(),
        norm::params_layouts(),
        pool::params_layouts(),
        random::params_layouts(),
        readout::params_layouts(),
        scores::params_layouts(),
    ]
    .concat()
}
use crate::tensor::Tensor;

/// Workgroups for a 1-D kernel of 256 invocations over `n` elements.
pub(crate) fn elementwise_grid(ctx: &Context, n: usize, op: &'static str) -> Result<[u32; 3]> {
    ctx.grid_1d((n as u64).div_ceil(256), op)
}

/// Checks that `t` is f32 with exactly `shape`.
pub(crate) fn expect_shape(op: &'static str, what: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    t.expect_f32(op, what)?;
    if t.shape() != shape {
        return Err(Error::shape(op, what, t.shape(), format!("{shape:?}")));
    }
    Ok(())
}

/// The largest stride, padding, dilation, window or kernel size an op accepts: far past any real
/// model, small enough that the index arithmetic of every kernel (i32/u32) cannot overflow.
pub const MAX_GEOMETRY: usize = 1 << 20;

/// Refuses geometry parameters past [`MAX_GEOMETRY`].
pub(crate) fn geometry(op: &'static str, name: &str, values: &[usize]) -> Result<()> {
    if let Some(v) = values.iter().find(|&&v| v > MAX_GEOMETRY) {
        return Err(Error::param(op, name, format!("{v} is past the supported maximum {MAX_GEOMETRY}")));
    }
    Ok(())
}

/// Checks that a float parameter is finite (and optionally positive).
pub(crate) fn finite(op: &'static str, name: &str, v: f32, positive: bool) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::param(op, name, format!("{v} is not finite")));
    }
    if positive && v <= 0.0 {
        return Err(Error::param(op, name, format!("{v} must be > 0")));
    }
    Ok(())
}
