//! The op table of `vcortex eval`: one row per op, binding case tensors and parameters to the GPU
//! op and its CPU reference.

use super::{Backend, Case, OpSpec};
use crate::diffusion::{BetaSchedule, DdimConfig, DdpmConfig, Prediction, Spacing, Threshold, VarianceType};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::ops::pool::PoolKind;
use crate::ops::{
    self, Activation, Conv2dParams, Conv3dParams, DivNormParams, DnField, Epilogue, MaxScope, NeurnParams,
    Pool2dParams, SupDivisor,
};
use crate::reference;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

type Outputs = Vec<(String, HostTensor)>;

pub static OPS: &[OpSpec] = &[
    OpSpec {
        name: "conv2d",
        required: &["input", "weight"],
        optional: &["bias"],
        params: &["stride", "padding", "dilation", "groups"],
        run: conv2d,
    },
    OpSpec {
        name: "conv3d",
        required: &["input", "weight"],
        optional: &["bias"],
        params: &["stride", "padding", "dilation", "groups"],
        run: conv3d,
    },
    OpSpec { name: "linear", required: &["input", "weight"], optional: &["bias"], params: &[], run: linear },
    OpSpec {
        name: "activation",
        required: &["input"],
        optional: &[],
        params: &["kind", "beta", "threshold", "xshift", "yshift"],
        run: activation,
    },
    OpSpec {
        name: "batch_norm",
        required: &["input", "running_mean", "running_var", "weight", "bias"],
        optional: &[],
        params: &["eps"],
        run: batch_norm,
    },
    OpSpec {
        name: "layer_norm",
        required: &["input"],
        optional: &["weight", "bias"],
        params: &["dims", "eps"],
        run: layer_norm,
    },
    OpSpec {
        name: "divisive_norm",
        required: &["input"],
        optional: &["gamma", "beta"],
        params: &["sum_window", "sup_window", "sigma", "sup_divisor", "field"],
        run: divisive_norm,
    },
    OpSpec { name: "neurn", required: &["input"], optional: &[], params: &["kernel", "max_scope", "eps"], run: neurn },
    OpSpec {
        name: "max_pool2d",
        required: &["input"],
        optional: &[],
        params: &["kernel", "stride", "padding", "dilation", "ceil_mode"],
        run: max_pool2d,
    },
    OpSpec {
        name: "avg_pool2d",
        required: &["input"],
        optional: &[],
        params: &["kernel", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
        run: avg_pool2d,
    },
    OpSpec {
        name: "ddpm_step",
        required: &["sample", "model_output"],
        optional: &["noise"],
        params: &[
            "num_train_timesteps",
            "beta_schedule",
            "beta_start",
            "beta_end",
            "num_inference_steps",
            "timestep",
            "prediction_type",
            "variance_type",
            "clip_sample",
            "clip_sample_range",
            "thresholding",
            "dynamic_thresholding_ratio",
            "sample_max_value",
        ],
        run: ddpm_step,
    },
    OpSpec {
        name: "ddim_step",
        required: &["sample", "model_output"],
        optional: &["noise"],
        params: &[
            "num_train_timesteps",
            "beta_schedule",
            "beta_start",
            "beta_end",
            "num_inference_steps",
            "timestep",
            "prediction_type",
            "clip_sample",
            "clip_sample_range",
            "thresholding",
            "dynamic_thresholding_ratio",
            "sample_max_value",
            "eta",
            "set_alpha_to_one",
            "steps_offset",
            "timestep_spacing",
        ],
        run: ddim_step,
    },
    OpSpec {
        name: "rq_spline",
        required: &["input", "widths", "heights", "derivatives"],
        optional: &[],
        params: &["inverse", "tail_bound", "min_bin_width", "min_bin_height", "min_derivative"],
        run: rq_spline,
    },
    OpSpec {
        name: "affine_coupling",
        required: &["input", "shift", "scale_raw", "mask"],
        optional: &[],
        params: &["inverse"],
        run: affine_coupling,
    },
    OpSpec {
        name: "grid_sample",
        required: &["input", "grid"],
        optional: &[],
        params: &["align_corners"],
        run: grid_sample,
    },
    OpSpec {
        name: "gaussian_readout",
        required: &["input", "mu", "features"],
        optional: &["bias", "shift"],
        params: &["align_corners"],
        run: gaussian_readout,
    },
    OpSpec {
        name: "poisson_nll",
        required: &["rate", "target"],
        optional: &[],
        params: &["eps", "reduction"],
        run: poisson_nll,
    },
    OpSpec {
        name: "zig_loglik",
        required: &["target", "q", "theta", "k", "loc"],
        optional: &[],
        params: &[],
        run: zig_loglik,
    },
    OpSpec {
        name: "scores",
        required: &["responses", "predictions"],
        optional: &["image_ids"],
        params: &["eps"],
        run: scores,
    },
    OpSpec {
        name: "conv_gru",
        required: &[
            "input",
            "reset_gate_input.weight",
            "reset_gate_input.bias",
            "update_gate_input.weight",
            "update_gate_input.bias",
            "out_gate_input.weight",
            "out_gate_input.bias",
            "reset_gate_hidden.weight",
            "reset_gate_hidden.bias",
            "update_gate_hidden.weight",
            "update_gate_hidden.bias",
            "out_gate_hidden.weight",
            "out_gate_hidden.bias",
        ],
        optional: &[],
        params: &["groups", "pad_input"],
        run: conv_gru,
    },
    OpSpec {
        name: "gru",
        required: &["input", "weight_ih_l0", "weight_hh_l0"],
        optional: &["bias_ih_l0", "bias_hh_l0", "h0"],
        params: &[],
        run: gru,
    },
    OpSpec {
        name: "zig_readout",
        required: &["input", "mu", "conv_weight", "features"],
        optional: &["conv_bias", "bias", "shift"],
        params: &["frames", "align_corners"],
        run: zig_readout,
    },
    OpSpec { name: "zig_map", required: &["input"], optional: &[], params: &["map"], run: zig_map },
    OpSpec {
        name: "zig_moments",
        required: &["q", "theta", "k", "loc"],
        optional: &[],
        params: &["moment"],
        run: zig_moments,
    },
    OpSpec {
        name: "zig_latent_params",
        required: &["logits", "z", "w_q", "w_theta"],
        optional: &[],
        params: &[],
        run: zig_latent_params,
    },
    OpSpec {
        name: "zig_latent_loglik",
        required: &["target", "logits", "z", "w_q", "w_theta", "k", "loc"],
        optional: &[],
        params: &[],
        run: zig_latent_loglik,
    },
];

fn up(ctx: &Context, t: &HostTensor) -> Result<Tensor> {
    Tensor::from_f32(ctx, &t.data, &t.shape)
}

/// Uploads nothing itself: `f` records the op on a fresh recorder; the result is read back.
fn on_gpu(ctx: &Context, f: impl FnOnce(&mut Recorder) -> Result<Tensor>) -> Result<HostTensor> {
    let [y] = on_gpu_n(ctx, |rec| Ok([f(rec)?]))?;
    Ok(y)
}

/// As [`on_gpu`] for an op with several outputs: one submit, every output read back.
fn on_gpu_n<const K: usize>(
    ctx: &Context,
    f: impl FnOnce(&mut Recorder) -> Result<[Tensor; K]>,
) -> Result<[HostTensor; K]> {
    let mut rec = ctx.recorder();
    let ys = f(&mut rec)?;
    let hs = ys.each_ref().map(|y| rec.read_back(y));
    let done = rec.submit()?;
    Ok(std::array::from_fn(|i| HostTensor::new(ys[i].shape().to_vec(), done.f32(hs[i]))))
}

/// The most output elements, and multiply-adds, the CPU backend takes on (the GPU has its
/// device's limits): past them a case is refused before the reference allocates or computes
/// (a padding of 65,536 asked the reference for a 206 GB output, which aborted).
pub const CPU_MAX_ELEMENTS: u64 = 1 << 26;
pub const CPU_MAX_WORK: u64 = 1 << 34;

/// Refuses a CPU run whose output of `shape` (each element `per_element` multiply-adds) is past
/// [`CPU_MAX_ELEMENTS`] or [`CPU_MAX_WORK`]; overflow-safe.
fn cpu_budget(op: &'static str, shape: &[usize], per_element: usize) -> Result<()> {
    let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let work = n.saturating_mul(per_element.max(1) as u64);
    if n > CPU_MAX_ELEMENTS || work > CPU_MAX_WORK {
        return Err(Error::TooLarge {
            op,
            what: format!("the CPU reference's output of shape {shape:?} ({work} multiply-adds)"),
            amount: n.saturating_mul(4),
            unit: "bytes",
            limit: CPU_MAX_ELEMENTS * 4,
            limit_name: "the CPU backend's 2^26 output elements and 2^34 multiply-adds",
        });
    }
    Ok(())
}

fn one(name: &str, t: HostTensor) -> Outputs {
    vec![(name.to_string(), t)]
}

pub fn conv2d_params(c: &Case) -> Result<Conv2dParams> {
    let pad = c.usizes("padding", &[0, 0], &[1, 2, 4])?;
    let padding = match pad.len() {
        1 => [pad[0]; 4],
        2 => [pad[0], pad[0], pad[1], pad[1]],
        _ => [pad[0], pad[1], pad[2], pad[3]],
    };
    let d = Conv2dParams::default();
    Ok(Conv2dParams {
        stride: c.pair("stride", d.stride)?,
        padding,
        dilation: c.pair("dilation", d.dilation)?,
        groups: c.usize("groups", d.groups)?,
        ..d
    })
}

fn conv2d(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, w, bias) = (c.tensor("input")?, c.tensor("weight")?, c.opt("bias"));
    let p = conv2d_params(c)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, wt) = (up(ctx, x)?, up(ctx, w)?);
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| ops::conv2d(rec, &xt, &wt, bt.as_ref(), &p, &Epilogue::default()))?
        }
        Backend::Cpu => {
            let cs = ops::conv::conv_shape(&x.shape, &w.shape, &p)?;
            cpu_budget("conv2d", &[cs.n, cs.o, cs.ho, cs.wo], (cs.c / p.groups.max(1)) * cs.kh * cs.kw)?;
            if let Some(bt) = bias {
                let o = w.shape.first().copied().unwrap_or(0);
                if bt.shape != [o] {
                    return Err(Error::shape("conv2d", "bias", &bt.shape, format!("[{o}]")));
                }
            }
            let (v, s) = reference::conv2d(
                &x.data,
                &x.shape,
                &w.data,
                &w.shape,
                bias.map(|t| &t.data[..]),
                &p,
                None,
                Activation::Identity,
            )?;
            HostTensor::new(s, v)
        }
    };
    Ok(one("output", y))
}

/// A per-axis (time, height, width) parameter: one value for all three axes, or three.
fn triple(c: &Case, name: &str, default: [usize; 3]) -> Result<[usize; 3]> {
    let v = c.usizes(name, &default, &[1, 3])?;
    Ok(if v.len() == 1 { [v[0]; 3] } else { [v[0], v[1], v[2]] })
}

pub fn conv3d_params(c: &Case) -> Result<Conv3dParams> {
    let pad = c.usizes("padding", &[0], &[1, 3, 6])?;
    let padding = match pad.len() {
        1 => [pad[0]; 6],
        3 => [pad[0], pad[0], pad[1], pad[1], pad[2], pad[2]],
        _ => [pad[0], pad[1], pad[2], pad[3], pad[4], pad[5]],
    };
    let d = Conv3dParams::default();
    Ok(Conv3dParams {
        stride: triple(c, "stride", d.stride)?,
        padding,
        dilation: triple(c, "dilation", d.dilation)?,
        groups: c.usize("groups", d.groups)?,
        ..d
    })
}

fn conv3d(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, w, bias) = (c.tensor("input")?, c.tensor("weight")?, c.opt("bias"));
    let p = conv3d_params(c)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, wt) = (up(ctx, x)?, up(ctx, w)?);
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| ops::conv3d(rec, &xt, &wt, bt.as_ref(), &p, &Epilogue::default()))?
        }
        Backend::Cpu => {
            let s = ops::conv3d::conv3d_shape(&x.shape, &w.shape, &p)?;
            cpu_budget("conv3d", &s.output(), (s.c / p.groups) * s.kt * s.kh * s.kw)?;
            if let Some(bt) = bias {
                if bt.shape != [s.o] {
                    return Err(Error::shape("conv3d", "bias", &bt.shape, format!("[{}]", s.o)));
                }
            }
            let (v, s) = reference::conv3d(
                &x.data,
                &x.shape,
                &w.data,
                &w.shape,
                bias.map(|t| &t.data[..]),
                &p,
                None,
                Activation::Identity,
            )?;
            HostTensor::new(s, v)
        }
    };
    Ok(one("output", y))
}

fn linear(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, w, bias) = (c.tensor("input")?, c.tensor("weight")?, c.opt("bias"));
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, wt) = (up(ctx, x)?, up(ctx, w)?);
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| ops::linear(rec, &xt, &wt, bt.as_ref(), Activation::Identity))?
        }
        Backend::Cpu => {
            // The bias's own shape is checked first; the reference sees its data.
            ops::matmul::linear_shapes(&x.shape, &w.shape, bias.map(|t| &t.shape[..]))?;
            let (y, s) = reference::linear(
                &x.data,
                &x.shape,
                &w.data,
                &w.shape,
                bias.map(|t| &t.data[..]),
                Activation::Identity,
            )?;
            HostTensor::new(s, y)
        }
    };
    Ok(one("output", y))
}

fn activation(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let kind = c
        .raw("kind")
        .ok_or_else(|| Error::Case(format!("activation: missing parameter \"kind\" (one of {})", Activation::NAMES)))?;
    let act = Activation::parse(kind, |name, default| c.f32(name, default))?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            on_gpu(ctx, |rec| ops::activation(rec, &xt, act))?
        }
        Backend::Cpu => HostTensor::new(x.shape.clone(), reference::activation(&x.data, act)),
    };
    Ok(one("output", y))
}

fn batch_norm(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let names = ["running_mean", "running_var", "weight", "bias"];
    let eps = c.f32("eps", 1e-5)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            let p: Vec<Tensor> = names.iter().map(|n| up(ctx, c.tensor(n)?)).collect::<Result<_>>()?;
            on_gpu(ctx, |rec| ops::batch_norm(rec, &xt, &p[0], &p[1], &p[2], &p[3], eps, Activation::Identity))?
        }
        Backend::Cpu => {
            let p = names.map(|n| c.tensor(n));
            let shapes = [&p[0], &p[1], &p[2], &p[3]].map(|t| t.as_ref().map_or(&[][..], |t| &t.shape[..]));
            // The parameters' own shapes are checked here (the reference sees their lengths).
            ops::norm::batch_norm_shapes(&x.shape, shapes, eps)?;
            let t = |n: &str| c.tensor(n).map(|t| &t.data[..]);
            let (m, v, w, bias) = (t(names[0])?, t(names[1])?, t(names[2])?, t(names[3])?);
            HostTensor::new(
                x.shape.clone(),
                reference::batch_norm(&x.data, &x.shape, m, v, w, bias, eps, Activation::Identity)?,
            )
        }
    };
    Ok(one("output", y))
}

fn layer_norm(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let (w, bias) = (c.opt("weight"), c.opt("bias"));
    let dims = c.usize("dims", 1)?;
    let eps = c.f32("eps", 1e-5)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            let wt = w.map(|t| up(ctx, t)).transpose()?;
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| ops::layer_norm(rec, &xt, dims, wt.as_ref(), bt.as_ref(), eps, Activation::Identity))?
        }
        Backend::Cpu => {
            // The parameters' own shapes are checked here (the reference sees their lengths).
            ops::norm::layer_norm_shapes(&x.shape, dims, w.map(|t| &t.shape[..]), bias.map(|t| &t.shape[..]), eps)?;
            let (wd, bd) = (w.map(|t| &t.data[..]), bias.map(|t| &t.data[..]));
            HostTensor::new(
                x.shape.clone(),
                reference::layer_norm(&x.data, &x.shape, dims, wd, bd, eps, Activation::Identity)?,
            )
        }
    };
    Ok(one("output", y))
}

fn divisive_norm(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let (gamma, beta) = (c.opt("gamma"), c.opt("beta"));
    let field = match c.string("field", "local").as_str() {
        "local" => DnField::Local,
        "batch" => DnField::Batch,
        "layer" => DnField::Layer,
        other => return Err(c.bad("field", format!("{other:?} is not local, batch or layer"))),
    };
    let sup_divisor = match c.string("sup_divisor", "sum_window").as_str() {
        "sum_window" => SupDivisor::SumWindow,
        "sup_window" => SupDivisor::SupWindow,
        other => return Err(c.bad("sup_divisor", format!("{other:?} is not sum_window or sup_window"))),
    };
    let d = DivNormParams::default();
    let p = DivNormParams {
        field,
        sum_window: c.pair("sum_window", d.sum_window)?,
        sup_window: c.pair("sup_window", d.sup_window)?,
        sigma: c.f32("sigma", d.sigma)?,
        sup_divisor,
        centered: true,
        ..d
    };
    let (y, v) = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            let gt = gamma.map(|t| up(ctx, t)).transpose()?;
            let bt = beta.map(|t| up(ctx, t)).transpose()?;
            let [y, v] = on_gpu_n(ctx, |rec| {
                let out = ops::divisive_norm(rec, &xt, gt.as_ref(), bt.as_ref(), &p)?;
                Ok([out.output, out.centered.expect("centered was asked for")])
            })?;
            (y.data, v.data)
        }
        Backend::Cpu => {
            let r =
                reference::divisive_norm(&x.data, &x.shape, gamma.map(|t| &t.data[..]), beta.map(|t| &t.data[..]), &p)?;
            (r.output, r.centered)
        }
    };
    Ok(vec![
        ("output".to_string(), HostTensor::new(x.shape.clone(), y)),
        ("centered".to_string(), HostTensor::new(x.shape.clone(), v)),
    ])
}

fn neurn(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let max_scope = match c.string("max_scope", "channel").as_str() {
        "channel" => MaxScope::Channel,
        "image" => MaxScope::Image,
        other => return Err(c.bad("max_scope", format!("{other:?} is not channel or image"))),
    };
    let d = NeurnParams::default();
    let p = NeurnParams { kernel: c.usize("kernel", d.kernel)?, max_scope, eps: c.f32("eps", d.eps)? };
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            on_gpu(ctx, |rec| ops::neurn(rec, &xt, &p))?
        }
        Backend::Cpu => HostTensor::new(x.shape.clone(), reference::neurn(&x.data, &x.shape, &p)?),
    };
    Ok(one("output", y))
}

/// The pooling parameters of a case: `kernel` required, `stride` defaulting to it.
fn pool_params(c: &Case) -> Result<Pool2dParams> {
    c.required("kernel")?;
    let kernel = c.pair("kernel", [1, 1])?;
    let d = Pool2dParams::default();
    Ok(Pool2dParams {
        kernel,
        stride: Some(c.pair("stride", kernel)?),
        padding: c.pair("padding", d.padding)?,
        dilation: c.pair("dilation", d.dilation)?,
        ceil_mode: c.bool("ceil_mode", d.ceil_mode)?,
        count_include_pad: c.bool("count_include_pad", d.count_include_pad)?,
        divisor_override: c.parsed("divisor_override", None, |s| {
            s.parse().map(Some).map_err(|_| c.bad("divisor_override", "not a non-negative integer"))
        })?,
    })
}

fn max_pool2d(b: &Backend, c: &Case) -> Result<Outputs> {
    pool2d(b, c, PoolKind::Max)
}

fn avg_pool2d(b: &Backend, c: &Case) -> Result<Outputs> {
    pool2d(b, c, PoolKind::Avg)
}

fn pool2d(b: &Backend, c: &Case, kind: PoolKind) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let p = pool_params(c)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            on_gpu(ctx, |rec| match kind {
                PoolKind::Max => ops::max_pool2d(rec, &xt, &p),
                PoolKind::Avg => ops::avg_pool2d(rec, &xt, &p),
            })?
        }
        Backend::Cpu => {
            let out = ops::pool::pool_shape(kind, &x.shape, &p)?;
            cpu_budget(kind.op(), &out, p.kernel[0] * p.kernel[1])?;
            let (v, s) = match kind {
                PoolKind::Max => reference::max_pool2d(&x.data, &x.shape, &p)?,
                PoolKind::Avg => reference::avg_pool2d(&x.data, &x.shape, &p)?,
            };
            HostTensor::new(s, v)
        }
    };
    Ok(one("output", y))
}

/// The parameters shared by both schedulers.
struct SchedulerCase {
    t_train: usize,
    schedule: BetaSchedule,
    beta_start: f64,
    beta_end: f64,
    steps: usize,
    timestep: usize,
    prediction: Prediction,
    clip: Option<f64>,
    threshold: Option<Threshold>,
}

fn scheduler_case(c: &Case) -> Result<SchedulerCase> {
    // The defaults are the schedulers' own (diffusers'), from DdpmConfig::default.
    let d = DdpmConfig::default();
    let th = Threshold::default();
    let t_train = c.usize("num_train_timesteps", d.num_train_timesteps)?;
    let timestep = c.required("timestep")?;
    let timestep = timestep.parse().map_err(|_| c.bad("timestep", "not a non-negative integer"))?;
    Ok(SchedulerCase {
        t_train,
        schedule: c.parsed("beta_schedule", d.beta_schedule, BetaSchedule::parse)?,
        beta_start: c.f64("beta_start", d.beta_start)?,
        beta_end: c.f64("beta_end", d.beta_end)?,
        steps: c.usize("num_inference_steps", d.num_inference_steps)?,
        timestep,
        prediction: c.parsed("prediction_type", d.prediction, Prediction::parse)?,
        clip: if c.bool("clip_sample", d.clip.is_some())? {
            Some(c.f64("clip_sample_range", d.clip.unwrap_or(1.0))?)
        } else {
            None
        },
        threshold: if c.bool("thresholding", d.threshold.is_some())? {
            Some(Threshold {
                ratio: c.f64("dynamic_thresholding_ratio", th.ratio)?,
                max: c.f64("sample_max_value", th.max)?,
            })
        } else {
            None
        },
    })
}

/// sample, model_output and noise of one shape; runs `gpu` or `cpu`, returns both outputs.
fn step_outputs(
    b: &Backend,
    c: &Case,
    op: &'static str,
    gpu: impl FnOnce(&mut Recorder, &Tensor, &Tensor, ops::Noise) -> Result<(Tensor, Tensor)>,
    cpu: impl FnOnce(&[f32], &[f32], Option<&[f32]>, usize) -> Result<(Vec<f32>, Vec<f32>)>,
) -> Result<Outputs> {
    let (s, m, z) = (c.tensor("sample")?, c.tensor("model_output")?, c.opt("noise"));
    for (t, name) in [(Some(m), "model_output"), (z, "noise")] {
        if let Some(t) = t {
            if t.shape != s.shape {
                return Err(Error::shape(op, name, &t.shape, format!("{:?} like sample", s.shape)));
            }
        }
    }
    let (prev, x0) = match b {
        Backend::Gpu(ctx) => {
            let (st, mt) = (up(ctx, s)?, up(ctx, m)?);
            let zt = z.map(|t| up(ctx, t)).transpose()?;
            let noise = zt.as_ref().map_or(ops::Noise::None, ops::Noise::Tensor);
            let [p, x] = on_gpu_n(ctx, |rec| gpu(rec, &st, &mt, noise).map(|(p, x)| [p, x]))?;
            (p.data, x.data)
        }
        Backend::Cpu => {
            let rows = *s.shape.first().ok_or_else(|| Error::shape(op, "sample", &s.shape, "at least one axis"))?;
            cpu(&s.data, &m.data, z.map(|t| &t.data[..]), rows)?
        }
    };
    Ok(vec![
        ("prev_sample".to_string(), HostTensor::new(s.shape.clone(), prev)),
        ("pred_original_sample".to_string(), HostTensor::new(s.shape.clone(), x0)),
    ])
}

fn ddpm_step(b: &Backend, c: &Case) -> Result<Outputs> {
    let sc = scheduler_case(c)?;
    let cfg = DdpmConfig {
        num_train_timesteps: sc.t_train,
        beta_schedule: sc.schedule,
        beta_start: sc.beta_start,
        beta_end: sc.beta_end,
        num_inference_steps: sc.steps,
        prediction: sc.prediction,
        variance: c.parsed("variance_type", DdpmConfig::default().variance, VarianceType::parse)?,
        clip: sc.clip,
        threshold: sc.threshold,
    };
    let t = sc.timestep;
    step_outputs(
        b,
        c,
        "ddpm_step",
        |rec, s, m, z| ops::ddpm_step(rec, &cfg, t, s, m, z),
        |s, m, z, rows| reference::diffusion::ddpm_step_rows(&cfg, t, s, m, z, rows, None),
    )
}

fn ddim_step(b: &Backend, c: &Case) -> Result<Outputs> {
    let sc = scheduler_case(c)?;
    let d = DdimConfig::default();
    let cfg = DdimConfig {
        num_train_timesteps: sc.t_train,
        beta_schedule: sc.schedule,
        beta_start: sc.beta_start,
        beta_end: sc.beta_end,
        num_inference_steps: sc.steps,
        prediction: sc.prediction,
        clip: sc.clip,
        threshold: sc.threshold,
        eta: c.f64("eta", d.eta)?,
        set_alpha_to_one: c.bool("set_alpha_to_one", d.set_alpha_to_one)?,
        steps_offset: c.usize("steps_offset", d.steps_offset)?,
        spacing: c.parsed("timestep_spacing", d.spacing, Spacing::parse)?,
    };
    let t = sc.timestep;
    step_outputs(
        b,
        c,
        "ddim_step",
        |rec, s, m, z| ops::ddim_step(rec, &cfg, t, s, m, z),
        |s, m, z, rows| reference::diffusion::ddim_step_rows(&cfg, t, s, m, z, rows, None),
    )
}

fn rq_spline(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, w, h, d) = (c.tensor("input")?, c.tensor("widths")?, c.tensor("heights")?, c.tensor("derivatives")?);
    let sd = ops::SplineParams::default();
    let p = ops::SplineParams {
        inverse: c.bool("inverse", sd.inverse)?,
        tail_bound: c.f32("tail_bound", sd.tail_bound)?,
        min_bin_width: c.f32("min_bin_width", sd.min_bin_width)?,
        min_bin_height: c.f32("min_bin_height", sd.min_bin_height)?,
        min_derivative: c.f32("min_derivative", sd.min_derivative)?,
    };
    let (y, lad) = match b {
        Backend::Gpu(ctx) => {
            let t: Vec<Tensor> = [x, w, h, d].iter().map(|t| up(ctx, t)).collect::<Result<_>>()?;
            let [y, l] = on_gpu_n(ctx, |rec| ops::rq_spline(rec, &t[0], &t[1], &t[2], &t[3], &p).map(|(y, l)| [y, l]))?;
            (y.data, l.data)
        }
        Backend::Cpu => {
            reference::flows::rq_spline(&x.data, &x.shape, &w.data, &w.shape, &h.data, &h.shape, &d.data, &d.shape, &p)?
        }
    };
    Ok(vec![
        ("output".to_string(), HostTensor::new(x.shape.clone(), y)),
        ("logabsdet".to_string(), HostTensor::new(x.shape.clone(), lad)),
    ])
}

fn affine_coupling(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, sh, sc, m) = (c.tensor("input")?, c.tensor("shift")?, c.tensor("scale_raw")?, c.tensor("mask")?);
    let inverse = c.bool("inverse", false)?;
    if m.shape.len() != 1 {
        return Err(Error::shape("affine_coupling", "mask", &m.shape, "[D]"));
    }
    let mask: Vec<bool> = m.data.iter().map(|&v| v > 0.0).collect();
    let (y, ld) = match b {
        Backend::Gpu(ctx) => {
            let (xt, st, rt) = (up(ctx, x)?, up(ctx, sh)?, up(ctx, sc)?);
            let [y, l] =
                on_gpu_n(ctx, |rec| ops::affine_coupling(rec, &xt, &st, &rt, &mask, inverse).map(|(y, l)| [y, l]))?;
            (y.data, l.data)
        }
        Backend::Cpu => {
            ops::flows::affine_shapes(&x.shape, &sh.shape, &sc.shape, &mask)?;
            reference::flows::affine_coupling(&x.data, &x.shape, &sh.data, &sc.data, &mask, inverse)?
        }
    };
    Ok(vec![
        ("output".to_string(), HostTensor::new(x.shape.clone(), y)),
        ("logdet".to_string(), HostTensor::new(vec![x.shape[0]], ld)),
    ])
}

/// Checks the rank and returns [N, C, H, W] of a host tensor.
fn grid_sample(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, g) = (c.tensor("input")?, c.tensor("grid")?);
    let align = c.bool("align_corners", false)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, gt) = (up(ctx, x)?, up(ctx, g)?);
            on_gpu(ctx, |rec| ops::grid_sample(rec, &xt, &gt, align))?
        }
        Backend::Cpu => {
            let (y, s) = reference::readout::grid_sample(&x.data, &x.shape, &g.data, &g.shape, align)?;
            HostTensor::new(s, y)
        }
    };
    Ok(one("output", y))
}

fn gaussian_readout(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, mu, f) = (c.tensor("input")?, c.tensor("mu")?, c.tensor("features")?);
    let (bias, shift) = (c.opt("bias"), c.opt("shift"));
    let align = c.bool("align_corners", true)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, mt, ft) = (up(ctx, x)?, up(ctx, mu)?, up(ctx, f)?);
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            let st = shift.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| {
                ops::gaussian_readout(rec, &xt, &mt, &ft, bt.as_ref(), st.as_ref(), align, ops::Activation::Identity)
            })?
        }
        Backend::Cpu => {
            // The parameters' own shapes are checked first; the reference sees their data.
            let ([n, _, _, _], m) = ops::readout::readout_shapes(
                &x.shape,
                &mu.shape,
                &f.shape,
                bias.map(|t| &t.shape[..]),
                shift.map(|t| &t.shape[..]),
            )?;
            let r = reference::readout::gaussian_readout(
                &x.data,
                &x.shape,
                &mu.data,
                &f.data,
                bias.map(|t| &t.data[..]),
                shift.map(|t| &t.data[..]),
                align,
                Activation::Identity,
            )?;
            HostTensor::new(vec![n, m], r)
        }
    };
    Ok(one("output", y))
}

fn poisson_nll(b: &Backend, c: &Case) -> Result<Outputs> {
    let (r, t) = (c.tensor("rate")?, c.tensor("target")?);
    let eps = c.f32("eps", 1e-8)?;
    let reduction = ops::Reduction::parse(&c.string("reduction", "none"))?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (rt, tt) = (up(ctx, r)?, up(ctx, t)?);
            on_gpu(ctx, |rec| ops::poisson_nll(rec, &rt, &tt, eps, reduction))?
        }
        Backend::Cpu => {
            if t.shape != r.shape {
                return Err(Error::shape("poisson_nll", "target", &t.shape, format!("{:?} like rate", r.shape)));
            }
            let l = reference::readout::poisson_nll(&r.data, &t.data, &r.shape, eps, reduction)?;
            let shape = if reduction == ops::Reduction::None { r.shape.clone() } else { vec![] };
            HostTensor::new(shape, l.iter().map(|&v| v as f32).collect())
        }
    };
    Ok(one("output", y))
}

fn zig_loglik(b: &Backend, c: &Case) -> Result<Outputs> {
    let names = ["target", "q", "theta", "k", "loc"];
    let ts: Vec<&HostTensor> = names.iter().map(|n| c.tensor(n)).collect::<Result<_>>()?;
    for (t, n) in ts.iter().zip(names).skip(1) {
        if t.shape != ts[0].shape {
            return Err(Error::shape("zig_loglik", n, &t.shape, format!("{:?} like target", ts[0].shape)));
        }
    }
    // The parameters' domains, checked on the host where the values are at hand.
    let bad = |name: &str, ok: fn(f32) -> bool, what: &str, t: &HostTensor| -> Result<()> {
        match t.data.iter().position(|&v| !ok(v)) {
            Some(i) => Err(Error::param("zig_loglik", name, format!("element {i} is {}; {what}", t.data[i]))),
            None => Ok(()),
        }
    };
    bad("q", |v| v > 0.0 && v < 1.0, "q must be in (0, 1)", ts[1])?;
    bad("theta", |v| v > 0.0 && v.is_finite(), "theta must be finite and > 0", ts[2])?;
    bad("k", |v| v > 0.0 && v.is_finite(), "k must be finite and > 0", ts[3])?;
    bad("loc", |v| v > 0.0 && v.is_finite(), "loc must be finite and > 0", ts[4])?;
    bad("target", |v| v.is_finite(), "targets must be finite", ts[0])?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let t: Vec<Tensor> = ts.iter().map(|t| up(ctx, t)).collect::<Result<_>>()?;
            on_gpu(ctx, |rec| ops::zig_loglik(rec, &t[0], &t[1], &t[2], &t[3], &t[4]))?
        }
        Backend::Cpu => HostTensor::new(
            ts[0].shape.clone(),
            reference::readout::zig_loglik(&ts[0].data, &ts[1].data, &ts[2].data, &ts[3].data, &ts[4].data),
        ),
    };
    Ok(one("output", y))
}

/// The case's image ids (f32 whole numbers, exact below 2^24), grouped.
fn case_repeats(c: &Case) -> Result<Option<ops::Repeats>> {
    let Some(t) = c.opt("image_ids") else { return Ok(None) };
    if t.shape.len() != 1 {
        return Err(Error::shape("scores", "image_ids", &t.shape, "[trials]"));
    }
    if let Some(i) = t.data.iter().position(|v| !(v.fract() == 0.0 && v.abs() < 16_777_216.0)) {
        return Err(Error::param(
            "scores",
            "image_ids",
            format!("element {i} is {}; whole numbers below 2^24 in magnitude expected", t.data[i]),
        ));
    }
    let ids: Vec<i64> = t.data.iter().map(|&v| v as i64).collect();
    ops::Repeats::from_ids(&ids).map(Some)
}

fn scores(b: &Backend, c: &Case) -> Result<Outputs> {
    let (r, p) = (c.tensor("responses")?, c.tensor("predictions")?);
    let params = ops::ScoreParams { eps: c.f32("eps", 1e-8)? };
    let rep = case_repeats(c)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (rt, pt) = (up(ctx, r)?, up(ctx, p)?);
            on_gpu(ctx, |rec| ops::scores(rec, &rt, &pt, rep.as_ref(), &params))?
        }
        Backend::Cpu => {
            let [t, m] = ops::scores::score_shapes(&r.shape, &p.shape, rep.as_ref(), &params)?;
            let rows = if rep.is_some() { 4 } else { 1 };
            cpu_budget("scores", &[rows, m], t.saturating_mul(8))?;
            let v = reference::scores(&r.data, &p.data, &r.shape, rep.as_ref(), &params)?;
            HostTensor::new(vec![rows, m], v)
        }
    };
    let m = y.shape[1];
    Ok((0..y.shape[0])
        .map(|i| (ops::SCORE_ROWS[i].to_string(), HostTensor::new(vec![m], y.data[i * m..(i + 1) * m].to_vec())))
        .collect())
}

/// A ConvGRU cell's sizes from a case: channels and kernels read off the input and the weights
/// (the state dict then checks every shape), `groups` and `pad_input` from the parameters.
fn conv_gru_params(c: &Case) -> Result<ops::ConvGruParams> {
    const OP: &str = "conv_gru";
    let x = c.tensor("input")?;
    let wi = c.tensor("reset_gate_input.weight")?;
    let wh = c.tensor("reset_gate_hidden.weight")?;
    if x.shape.len() != 5 {
        return Err(Error::shape(OP, "input", &x.shape, "[N, C, T, H, W]"));
    }
    for (t, name) in [(wi, "reset_gate_input.weight"), (wh, "reset_gate_hidden.weight")] {
        if t.shape.len() != 4 {
            return Err(Error::shape(OP, name, &t.shape, "[O, C/groups, K, K]"));
        }
    }
    Ok(ops::ConvGruParams {
        input_channels: x.shape[1],
        rec_channels: wi.shape[0],
        input_kern: wi.shape[2],
        rec_kern: wh.shape[2],
        groups: c.usize("groups", 1)?,
        pad_input: c.bool("pad_input", true)?,
    })
}

fn conv_gru(b: &Backend, c: &Case) -> Result<Outputs> {
    let p = conv_gru_params(c)?;
    let mut sd = crate::models::StateDict::borrowed("conv_gru", &c.tensors);
    let w = ops::ConvGruWeights::take(&mut sd, "", p)?;
    let x = c.tensor("input")?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let g = ops::ConvGru::upload(ctx, &w)?;
            let xt = up(ctx, x)?;
            on_gpu(ctx, |rec| ops::conv_gru(rec, &g, &xt))?
        }
        Backend::Cpu => {
            let s = ops::gru::conv_gru_shape(&p, &x.shape, true)?;
            let per = 3
                * (p.input_channels / p.groups * p.input_kern * p.input_kern
                    + p.rec_channels / p.groups * p.rec_kern * p.rec_kern);
            cpu_budget("conv_gru", &[s.n, p.rec_channels, s.t, s.ho, s.wo], per)?;
            let (y, shape, _) = reference::conv_gru(&w, &x.data, &x.shape, None)?;
            HostTensor::new(shape, y)
        }
    };
    Ok(one("output", y))
}

fn gru(b: &Backend, c: &Case) -> Result<Outputs> {
    const OP: &str = "gru";
    let w = ops::GruWeights::take(&mut crate::models::StateDict::borrowed("gru", &c.tensors), "")?;
    let (i, hs) = w.sizes()?;
    let x = c.tensor("input")?;
    let (bsz, t) = ops::gru::gru_shape(i, hs, &x.shape)?;
    // h0 and h_n as PyTorch shapes them, [1, B, H].
    let h0 = c.opt("h0");
    if let Some(h) = h0 {
        if h.shape != [1, bsz, hs] {
            return Err(Error::shape(OP, "h0", &h.shape, format!("[1, {bsz}, {hs}]")));
        }
    }
    let (y, hn) = match b {
        Backend::Gpu(ctx) => {
            let g = ops::Gru::upload(ctx, &w)?;
            let xt = up(ctx, x)?;
            let mut state = match h0 {
                Some(h) => ops::GruState::from_hidden(Tensor::from_f32(ctx, &h.data, &[bsz, hs])?),
                None => ops::GruState::new(),
            };
            let [y, hn] = on_gpu_n(ctx, |rec| {
                let y = ops::gru_stream(rec, &g, &mut state, &xt)?;
                Ok([y, state.hidden().expect("set by gru_stream").clone()])
            })?;
            (y, hn.data)
        }
        Backend::Cpu => {
            cpu_budget(OP, &[bsz, t, hs], 3 * (i + hs))?;
            let (y, shape, hn) = reference::gru(&w, &x.data, &x.shape, h0.map(|h| &h.data[..]))?;
            (HostTensor::new(shape, y), hn)
        }
    };
    Ok(vec![("output".to_string(), y), ("h_n".to_string(), HostTensor::new(vec![1, bsz, hs], hn))])
}

/// The readout's features as the op takes them: [C, N, 2], or the stored [1, C, 2, N] read through
/// `ops::zig_features_shape`.
fn zig_features(f: &HostTensor) -> Result<HostTensor> {
    if f.shape.len() == 4 {
        return Ok(HostTensor::new(ops::zig_features_shape(&f.shape)?.to_vec(), f.data.clone()));
    }
    Ok(f.clone())
}

fn zig_readout(b: &Backend, c: &Case) -> Result<Outputs> {
    let (x, mu, w) = (c.tensor("input")?, c.tensor("mu")?, c.tensor("conv_weight")?);
    let f = zig_features(c.tensor("features")?)?;
    let (cb, bias, shift) = (c.opt("conv_bias"), c.opt("bias"), c.opt("shift"));
    let frames = c.usize("frames", 0)?;
    let align = c.bool("align_corners", true)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let (xt, mt, wt, ft) = (up(ctx, x)?, up(ctx, mu)?, up(ctx, w)?, up(ctx, &f)?);
            let cbt = cb.map(|t| up(ctx, t)).transpose()?;
            let bt = bias.map(|t| up(ctx, t)).transpose()?;
            let st = shift.map(|t| up(ctx, t)).transpose()?;
            on_gpu(ctx, |rec| {
                let r = ops::ZigReadout {
                    mu: &mt,
                    conv_weight: &wt,
                    conv_bias: cbt.as_ref(),
                    features: &ft,
                    bias: bt.as_ref(),
                    align_corners: align,
                };
                ops::zig_readout(rec, &xt, frames, &r, st.as_ref())
            })?
        }
        Backend::Cpu => {
            let d = ops::zig::zig_readout_shapes(
                &x.shape,
                frames,
                &mu.shape,
                &w.shape,
                cb.map(|t| &t.shape[..]),
                &f.shape,
                bias.map(|t| &t.shape[..]),
                shift.map(|t| &t.shape[..]),
            )?;
            cpu_budget("zig_readout", &[2, d.bt, d.n], d.c.saturating_mul(d.kt * d.kc + 1))?;
            let r = reference::zig::ZigReadout {
                mu: &mu.data,
                conv_weight: &w.data,
                conv_shape: &w.shape,
                conv_bias: cb.map(|t| &t.data[..]),
                features: &f.data,
                bias: bias.map(|t| &t.data[..]),
                align_corners: align,
            };
            HostTensor::new(
                vec![2, d.bt, d.n],
                reference::zig::zig_readout(&x.data, &x.shape, frames, &r, shift.map(|t| &t.data[..]))?,
            )
        }
    };
    Ok(one("output", y))
}

fn zig_map(b: &Backend, c: &Case) -> Result<Outputs> {
    let x = c.tensor("input")?;
    let map = ops::ZigMap::parse(c.required("map")?)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let xt = up(ctx, x)?;
            on_gpu(ctx, |rec| ops::zig_map(rec, &xt, map))?
        }
        Backend::Cpu => HostTensor::new(x.shape.clone(), reference::zig::zig_map(&x.data, map)),
    };
    Ok(one("output", y))
}

fn zig_moments(b: &Backend, c: &Case) -> Result<Outputs> {
    let ts: Vec<&HostTensor> = ["q", "theta", "k", "loc"].iter().map(|n| c.tensor(n)).collect::<Result<_>>()?;
    let moment = c.parsed("moment", ops::ZigMoment::Mean, |s| match s {
        "mean" => Ok(ops::ZigMoment::Mean),
        "variance" => Ok(ops::ZigMoment::Variance),
        _ => Err(Error::param("zig_moments", "moment", format!("{s:?} is not mean or variance"))),
    })?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let t: Vec<Tensor> = ts.iter().map(|t| up(ctx, t)).collect::<Result<_>>()?;
            on_gpu(ctx, |rec| ops::zig_moments(rec, &t[0], &t[1], &t[2], &t[3], moment))?
        }
        Backend::Cpu => {
            if ts[1].shape != ts[0].shape {
                return Err(Error::shape("zig_moments", "theta", &ts[1].shape, format!("{:?}", ts[0].shape)));
            }
            ops::zig::per_neuron("zig_moments", "k", &ts[2].shape, &ts[0].shape)?;
            ops::zig::per_neuron("zig_moments", "loc", &ts[3].shape, &ts[0].shape)?;
            HostTensor::new(
                ts[0].shape.clone(),
                reference::zig::zig_moments(&ts[0].data, &ts[1].data, &ts[2].data, &ts[3].data, &ts[0].shape, moment)?,
            )
        }
    };
    Ok(one("output", y))
}

/// The latent inputs of a case, their shapes checked as the ops check them: (B·T, N, S, L).
fn zig_latent_dims(op: &'static str, c: &Case) -> Result<[usize; 4]> {
    let (lg, z, wq, wt) = (c.tensor("logits")?, c.tensor("z")?, c.tensor("w_q")?, c.tensor("w_theta")?);
    let (bt, n, s, l) = ops::zig::zig_latent_shapes(op, &lg.shape, &z.shape, &wq.shape, &wt.shape)?;
    Ok([bt, n, s, l])
}

fn zig_latent_ref<'a>(c: &'a Case, [bt, _, s, l]: [usize; 4]) -> Result<reference::zig::ZigLatent<'a>> {
    Ok(reference::zig::ZigLatent {
        z: &c.tensor("z")?.data,
        z_shape: [s, bt, l],
        w_q: &c.tensor("w_q")?.data,
        w_theta: &c.tensor("w_theta")?.data,
    })
}

fn zig_latent_params(b: &Backend, c: &Case) -> Result<Outputs> {
    const OP: &str = "zig_latent_params";
    let d @ [bt, n, s, l] = zig_latent_dims(OP, c)?;
    let [q, th] = match b {
        Backend::Gpu(ctx) => {
            let t: Vec<Tensor> =
                ["logits", "z", "w_q", "w_theta"].iter().map(|k| up(ctx, c.tensor(k)?)).collect::<Result<_>>()?;
            on_gpu_n(ctx, |rec| {
                let (q, th) =
                    ops::zig_latent_params(rec, &t[0], &ops::ZigLatent { z: &t[1], w_q: &t[2], w_theta: &t[3] })?;
                Ok([q, th])
            })?
        }
        Backend::Cpu => {
            cpu_budget(OP, &[2, s, bt, n], l)?;
            let (q, th) =
                reference::zig::zig_latent_params(&c.tensor("logits")?.data, [bt, n], &zig_latent_ref(c, d)?)?;
            [HostTensor::new(vec![s, bt, n], q), HostTensor::new(vec![s, bt, n], th)]
        }
    };
    Ok(vec![("q".to_string(), q), ("theta".to_string(), th)])
}

fn zig_latent_loglik(b: &Backend, c: &Case) -> Result<Outputs> {
    const OP: &str = "zig_latent_loglik";
    let d @ [bt, n, s, l] = zig_latent_dims(OP, c)?;
    let y = match b {
        Backend::Gpu(ctx) => {
            let t: Vec<Tensor> = ["target", "logits", "z", "w_q", "w_theta", "k", "loc"]
                .iter()
                .map(|k| up(ctx, c.tensor(k)?))
                .collect::<Result<_>>()?;
            on_gpu(ctx, |rec| {
                ops::zig_latent_loglik(
                    rec,
                    &t[0],
                    &t[1],
                    &ops::ZigLatent { z: &t[2], w_q: &t[3], w_theta: &t[4] },
                    &t[5],
                    &t[6],
                )
            })?
        }
        Backend::Cpu => {
            for (name, want) in [("target", vec![bt, n]), ("k", vec![n]), ("loc", vec![n])] {
                let t = c.tensor(name)?;
                if t.shape != want {
                    return Err(Error::shape(OP, name, &t.shape, format!("{want:?}")));
                }
            }
            cpu_budget(OP, &[bt, n], s.saturating_mul(l + 8))?;
            HostTensor::new(
                vec![bt, n],
                reference::zig::zig_latent_loglik(
                    &c.tensor("target")?.data,
                    &c.tensor("logits")?.data,
                    [bt, n],
                    &zig_latent_ref(c, d)?,
                    &c.tensor("k")?.data,
                    &c.tensor("loc")?.data,
                )?,
            )
        }
    };
    Ok(one("output", y))
}
