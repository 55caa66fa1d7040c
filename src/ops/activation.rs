//! Elementwise activations, also fused as the epilogue of conv, linear and norms.

use crate::error::{Error, Result};
use crate::runtime::{Access, PipelineKey, Recorder};
use crate::shaders::overrides::common as ov;
use crate::tensor::{DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Identity,
    Relu,
    Elu,
    /// ELU + 1 (the firing-rate nonlinearity of neuralpredictors models).
    Elu1,
    Sigmoid,
    Tanh,
    /// log(1 + exp(beta x)) / beta; x itself where beta x > threshold (PyTorch's rule).
    Softplus {
        beta: f32,
        threshold: f32,
    },
    /// The exact (erf) form.
    Gelu,
    Silu,
    /// elu(x − xshift) + yshift: neuralpredictors' `AdaptiveELU` (the video cores' and the
    /// rotation-equivariant core's nonlinearity; `Elu1` is xshift 0, yshift 1).
    AdaptiveElu {
        xshift: f32,
        yshift: f32,
    },
}

impl Activation {
    pub const NAMES: &'static str = "elu, elu1, relu, sigmoid, tanh, softplus, gelu, silu, adaptive_elu, identity";

    /// The largest [`id`](Self::id), for the shader test that compiles every one.
    pub const LAST_ID: u32 = 9;

    /// From the case-file name (docs/eval-format.md). A parametric activation asks `param` for
    /// each of its parameters by name with its default (softplus: `beta` 1, `threshold` 20;
    /// adaptive_elu: `xshift` 0, `yshift` 0, as PyTorch and neuralpredictors default them).
    pub fn parse(kind: &str, mut param: impl FnMut(&str, f32) -> Result<f32>) -> Result<Activation> {
        let a = match kind {
            "identity" | "none" => Activation::Identity,
            "relu" => Activation::Relu,
            "elu" => Activation::Elu,
            "elu1" => Activation::Elu1,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softplus" => Activation::Softplus { beta: param("beta", 1.0)?, threshold: param("threshold", 20.0)? },
            "adaptive_elu" => Activation::AdaptiveElu { xshift: param("xshift", 0.0)?, yshift: param("yshift", 0.0)? },
            "gelu" => Activation::Gelu,
            "silu" => Activation::Silu,
            other => {
                return Err(Error::param("activation", "kind", format!("{other:?} is not one of {}", Self::NAMES)))
            }
        };
        a.validate()?;
        Ok(a)
    }

    pub fn validate(&self) -> Result<()> {
        if let Activation::Softplus { beta, threshold } = *self {
            super::finite("activation", "beta", beta, false)?;
            if beta == 0.0 {
                return Err(Error::param("activation", "beta", "must not be 0"));
            }
            super::finite("activation", "threshold", threshold, false)?;
        }
        if let Activation::AdaptiveElu { xshift, yshift } = *self {
            super::finite("activation", "xshift", xshift, false)?;
            super::finite("activation", "yshift", yshift, false)?;
        }
        Ok(())
    }

    /// The `ACT` id of shaders/common.wgsl.
    pub fn id(&self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Elu => 2,
            Activation::Elu1 => 3,
            Activation::Sigmoid => 4,
            Activation::Tanh => 5,
            Activation::Softplus { .. } => 6,
            Activation::Gelu => 7,
            Activation::Silu => 8,
            Activation::AdaptiveElu { .. } => 9,
        }
    }

    /// Adds the override constants that select this activation in a kernel's epilogue.
    pub fn specialize(&self, key: PipelineKey) -> PipelineKey {
        let key = key.with(ov::ACT, self.id() as f64);
        match self.params() {
            Some((a, b)) => key.with(ov::ACT_A, a as f64).with(ov::ACT_B, b as f64),
            None => key,
        }
    }

    /// The two parameters a parametric activation passes to the shader (`ACT_A`, `ACT_B`).
    fn params(&self) -> Option<(f32, f32)> {
        match *self {
            Activation::Softplus { beta, threshold } => Some((beta, threshold)),
            Activation::AdaptiveElu { xshift, yshift } => Some((xshift, yshift)),
            _ => None,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActParams {
    n: u32,
    offset: f32,
    _pad: [u32; 2],
}

/// y = act(x), elementwise, any shape.
pub fn activation(rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
    x.expect_f32("activation", "input")?;
    act.validate()?;
    let ctx = rec.context();
    let groups = super::elementwise_grid(ctx, x.numel(), "activation")?;
    let key = act.specialize(PipelineKey::new("activation", "activation", &[Access::Read, Access::ReadWrite]));
    let kernel = ctx.kernel(&key)?;
    let y = rec.alloc("activation", x.shape(), DType::F32)?;
    let p = ActParams { n: x.numel() as u32, offset: 0.0, _pad: [0; 2] };
    rec.dispatch("activation", kernel, bytemuck::bytes_of(&p), &[Some(x), Some(&y)], groups)?;
    Ok(y)
}

/// y = act(a + b), elementwise, a and b of one shape (residual connections).
pub fn add(rec: &mut Recorder, a: &Tensor, b: &Tensor, act: Activation) -> Result<Tensor> {
    a.expect_f32("add", "a")?;
    super::expect_shape("add", "b", b, a.shape())?;
    act.validate()?;
    let ctx = rec.context();
    let groups = super::elementwise_grid(ctx, a.numel(), "add")?;
    let key = act.specialize(PipelineKey::new("activation", "add", &[Access::Read, Access::Read, Access::ReadWrite]));
    let kernel = ctx.kernel(&key)?;
    let y = rec.alloc("add", a.shape(), DType::F32)?;
    let p = ActParams { n: a.numel() as u32, offset: 0.0, _pad: [0; 2] };
    rec.dispatch("add", kernel, bytemuck::bytes_of(&p), &[Some(a), Some(b), Some(&y)], groups)?;
    Ok(y)
}

/// y = act(a · b + offset), elementwise, a and b of one shape.
pub fn mul(rec: &mut Recorder, a: &Tensor, b: &Tensor, offset: f32, act: Activation) -> Result<Tensor> {
    a.expect_f32("mul", "a")?;
    super::expect_shape("mul", "b", b, a.shape())?;
    super::finite("mul", "offset", offset, false)?;
    act.validate()?;
    let ctx = rec.context();
    let groups = super::elementwise_grid(ctx, a.numel(), "mul")?;
    let key = act.specialize(PipelineKey::new("activation", "mul", &[Access::Read, Access::Read, Access::ReadWrite]));
    let kernel = ctx.kernel(&key)?;
    let y = rec.alloc("mul", a.shape(), DType::F32)?;
    let p = ActParams { n: a.numel() as u32, offset, _pad: [0; 2] };
    rec.dispatch("mul", kernel, bytemuck::bytes_of(&p), &[Some(a), Some(b), Some(&y)], groups)?;
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("activation", "ActParams", ActParams, [n, offset, _pad])]
}
