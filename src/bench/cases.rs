//! The suite's table of cases (docs/bench.md, "Cases"): each case's name and the function that
//! builds it. A builder draws its inputs from a fresh `SplitMix` of seed 7, so a case's inputs do
//! not depend on which cases ran before it, and the variants of one shape (`_direct`, `_single`,
//! `_separable`, ...) see the same inputs.

use std::rc::Rc;

use super::{max_abs_diff, pose, Case, Entry, Run, Suite};
use crate::error::Result;
use crate::ops::{self, Activation, Conv2dParams, ConvAlgo, Epilogue, MatmulKernel};
use crate::reference;
use crate::rng::SplitMix;
use crate::tensor::Tensor;

use ConvAlgo::{Auto, Depthwise, Gemm, GemmDbWide, OneByOne};

/// Every case, in the order the suite runs them. The suffixed cases (`_direct`, `_gemm`,
/// `_single`, `_wide`, `_vec4`, `_separable`, `_unsorted`, `_forward`) run the same shapes on a
/// kernel the automatic choice passes over, to compare within one run.
pub(super) const CASES: &[Entry] = &[
    Entry { name: "copy_256mib", build: copy },
    Entry { name: "conv_sensorium_in_9x9", build: |s| conv(s, SENSORIUM_IN, Auto) },
    Entry { name: "conv_sensorium_in_9x9_direct", build: |s| conv(s, SENSORIUM_IN, Depthwise) },
    Entry { name: "conv_sensorium_in_9x9_gemm", build: |s| conv(s, SENSORIUM_IN, Gemm) },
    Entry { name: "conv_dw7x7_64", build: |s| conv(s, DW7X7, Auto) },
    Entry { name: "conv_dw7x7_64_direct", build: |s| conv(s, DW7X7, Depthwise) },
    Entry { name: "conv_1x1_64", build: |s| conv(s, ONE_BY_ONE, Auto) },
    Entry { name: "conv_1x1_64_single", build: |s| conv(s, ONE_BY_ONE, OneByOne) },
    Entry { name: "conv3x3_64", build: |s| conv(s, CONV3X3, Auto) },
    Entry { name: "conv3x3_64_single", build: |s| conv(s, CONV3X3, Gemm) },
    Entry { name: "conv3x3_vgg128", build: |s| conv(s, VGG128, Auto) },
    Entry { name: "conv3x3_vgg128_single", build: |s| conv(s, VGG128, Gemm) },
    Entry { name: "conv3x3_vgg128_wide", build: |s| conv(s, VGG128, GemmDbWide) },
    Entry { name: "conv3d_factorized_11x11_t11", build: conv3d_factorized },
    Entry { name: "matmul_1024_fp32", build: |s| matmul(s, 1024, MatmulKernel::Auto) },
    Entry { name: "matmul_4096_fp32", build: |s| matmul(s, 4096, MatmulKernel::Auto) },
    Entry { name: "matmul_4096_fp32_vec4", build: |s| matmul(s, 4096, MatmulKernel::Vec4) },
    Entry { name: "elu", build: |s| activation(s, Activation::Elu) },
    Entry { name: "adaptive_elu", build: |s| activation(s, Activation::AdaptiveElu { xshift: 1.0, yshift: 1.0 }) },
    Entry { name: "batchnorm_eval", build: batchnorm_eval },
    Entry { name: "divnorm_5x5", build: |s| divnorm_5x5(s, ops::LocalPath::Auto) },
    Entry { name: "divnorm_5x5_separable", build: |s| divnorm_5x5(s, ops::LocalPath::Separable) },
    // neurn_k3 walks the apply pass backwards; _forward in the max pass's order.
    Entry { name: "neurn_k3", build: |s| neurn_k3(s, true) },
    Entry { name: "neurn_k3_forward", build: |s| neurn_k3(s, false) },
    Entry { name: "max_pool2x2_vgg64", build: |s| pool(s, ops::pool::PoolKind::Max) },
    Entry { name: "avg_pool3x3_s2_64", build: |s| pool(s, ops::pool::PoolKind::Avg) },
    Entry { name: "ddim_step_200x60x51", build: |s| sampler_step(s, true) },
    Entry { name: "ddpm_step_200x60x51", build: |s| sampler_step(s, false) },
    Entry { name: "rq_spline_65536x3_k10", build: rq_spline },
    // The sorted readout, as the Sensorium model runs it (neurons sorted once at load); _unsorted
    // in the caller's neuron order.
    Entry { name: "gaussian_readout_8000", build: |s| gaussian_readout(s, true) },
    Entry { name: "gaussian_readout_8000_unsorted", build: |s| gaussian_readout(s, false) },
    Entry { name: "zig_loglik_s100_n8000", build: zig_loglik_s100 },
    Entry { name: "sensorium_forward_b128", build: |s| sensorium_forward(s, 128) },
    Entry { name: "sensorium_latency_b128", build: |s| sensorium_latency(s, 128) },
    Entry { name: "sensorium_forward_b1", build: |s| sensorium_forward(s, 1) },
    Entry { name: "video_forward_b8x80", build: video_forward },
    Entry { name: "video_stream_frame", build: video_stream_frame },
    Entry { name: "video_2d_stream_frame", build: video_2d_stream_frame },
    Entry { name: "sensorium_latency_b1", build: |s| sensorium_latency(s, 1) },
    Entry { name: "rot_eq_forward_b128", build: |s| rot_eq_forward(s, 128) },
    Entry { name: "cotrain_forward_b64", build: cotrain_forward },
    Entry { name: "latent_prior_s100", build: latent_prior },
    Entry { name: "latent_stream_frame", build: latent_stream_frame },
    Entry { name: "cgnf_sample_200x1000", build: pose::cgnf_case },
    Entry { name: "platypose_sample_200x60", build: pose::platypose_case },
    Entry { name: "layernorm_12200x512", build: layernorm },
    Entry { name: "scores_8000x10000", build: scores },
    Entry { name: "conv_gru_64x64_step", build: conv_gru_step },
    Entry { name: "gru_42x20_t60", build: gru_seq },
];

/// The seed of every case's inputs.
const SEED: u64 = 7;

fn inputs() -> SplitMix {
    SplitMix::new(SEED)
}

fn uniform(rng: &mut SplitMix, n: usize) -> Vec<f32> {
    rng.vec(n, -1.0, 1.0)
}

/// "slice" when a check covers only part of a batch of `n`.
fn coverage(n: usize) -> &'static str {
    if n > 1 {
        "slice"
    } else {
        "full"
    }
}

fn copy<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let n = (1usize << 26) / if s.small { 32 } else { 1 };
    let data = uniform(&mut inputs(), n);
    let x = Tensor::from_f32(s.ctx, &data, &[n])?;
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * n as f64,
        run: Run::Record(Box::new(move |rec| ops::copy(rec, &x))),
        check: Box::new(move |out| Ok((max_abs_diff(out, &data), "full"))),
    })
}

/// A convolution's shape: input [n, c, h, w], o outputs, k×k kernel, padding, groups.
#[derive(Clone, Copy)]
struct ConvShape {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    pad: usize,
    groups: usize,
}

const SENSORIUM_IN: ConvShape = ConvShape { n: 128, c: 1, h: 36, w: 64, o: 64, k: 9, pad: 0, groups: 1 };
const DW7X7: ConvShape = ConvShape { n: 128, c: 64, h: 28, w: 56, o: 64, k: 7, pad: 3, groups: 64 };
const ONE_BY_ONE: ConvShape = ConvShape { n: 128, c: 64, h: 28, w: 56, o: 64, k: 1, pad: 0, groups: 1 };
const CONV3X3: ConvShape = ConvShape { n: 128, c: 64, h: 28, w: 56, o: 64, k: 3, pad: 1, groups: 1 };
const VGG128: ConvShape = ConvShape { n: 32, c: 128, h: 56, w: 56, o: 128, k: 3, pad: 1, groups: 1 };

/// conv2d with bias on `algo`; checked on the first image of the batch.
fn conv<'c>(s: &Suite<'c>, shape: ConvShape, algo: ConvAlgo) -> Result<Case<'c>> {
    let ConvShape { n, c, h, w, o, k, pad, groups: g } = shape;
    let n = s.b(n);
    let xs = [n, c, h, w];
    let ws = [o, c / g, k, k];
    let mut rng = inputs();
    let xd = uniform(&mut rng, xs.iter().product());
    let wd: Vec<f32> =
        uniform(&mut rng, ws.iter().product()).iter().map(|v| v / ((c / g * k * k) as f32).sqrt()).collect();
    let bd = uniform(&mut rng, o);
    let p = Conv2dParams::default().with_padding(pad, pad).with_groups(g).with_algo(algo);
    let (x, wt, bt) =
        (Tensor::from_f32(s.ctx, &xd, &xs)?, Tensor::from_f32(s.ctx, &wd, &ws)?, Tensor::from_f32(s.ctx, &bd, &[o])?);
    let ho = h + 2 * pad - k + 1;
    let wo = w + 2 * pad - k + 1;
    let ynum = n * o * ho * wo;
    Ok(Case {
        flops: 2.0 * ynum as f64 * (c / g * k * k) as f64,
        bytes: 4.0 * (x.numel() + wt.numel() + ynum) as f64,
        run: Run::Record(Box::new(move |rec| ops::conv2d(rec, &x, &wt, Some(&bt), &p, &Epilogue::default()))),
        check: Box::new(move |out| {
            let per = c * h * w;
            let (r, _) =
                reference::conv2d(&xd[..per], &[1, c, h, w], &wd, &ws, Some(&bd), &p, None, Activation::Identity)?;
            Ok((max_abs_diff(&out[..r.len()], &r), coverage(n)))
        }),
    })
}

/// The first layer of the Sensorium 2023 factorized 3-D core: [2, 1, 20, 36, 64] (batch 1 and 14
/// frames in the small suite) through a (1, 11, 11) conv to 32 channels with bias, a (11, 1, 1) conv 32 -> 32
/// with bias, folded batch norm and ELU, no padding: [N, 32, T - 10, 26, 54]; checked on the first
/// clip.
fn conv3d_factorized<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let t = if s.small { 14 } else { 20 };
    let (n, h, w, m, k, kt) = (s.b(2), 36, 64, 32, 11, 11);
    let xs = [n, 1, t, h, w];
    let (ss, ts) = ([m, 1, 1, k, k], [m, m, kt, 1, 1]);
    let mut rng = inputs();
    let xd = uniform(&mut rng, xs.iter().product());
    let scaled = |rng: &mut SplitMix, len: usize, fan: usize| -> Vec<f32> {
        uniform(rng, len).iter().map(|v| v / (fan as f32).sqrt()).collect()
    };
    let swd = scaled(&mut rng, m * k * k, k * k);
    let twd = scaled(&mut rng, m * m * kt, m * kt);
    let (sbd, tbd) = (uniform(&mut rng, m), uniform(&mut rng, m));
    let scd: Vec<f32> = uniform(&mut rng, m).iter().map(|v| 1.0 + 0.5 * v).collect();
    let shd = uniform(&mut rng, m);
    let p = ops::Factorized3dParams::default();
    let up = |d: &[f32], shape: &[usize]| Tensor::from_f32(s.ctx, d, shape);
    let (x, sw, tw) = (up(&xd, &xs)?, up(&swd, &ss)?, up(&twd, &ts)?);
    let (sb, tb, sc, sh) = (up(&sbd, &[m])?, up(&tbd, &[m])?, up(&scd, &[m])?, up(&shd, &[m])?);
    let (to, ho, wo) = (t - kt + 1, h - k + 1, w - k + 1);
    let mid = n * m * t * ho * wo;
    let ynum = n * m * to * ho * wo;
    Ok(Case {
        flops: 2.0 * (mid * k * k) as f64 + 2.0 * (ynum * m * kt) as f64,
        bytes: 4.0 * (x.numel() + 2 * mid + ynum) as f64,
        run: Run::Record(Box::new(move |rec| {
            let epi = Epilogue { scale: Some(&sc), shift: Some(&sh), act: Activation::Elu };
            ops::factorized_conv3d(rec, &x, &sw, Some(&sb), &tw, Some(&tb), &p, &epi)
        })),
        check: Box::new(move |out| {
            let per = t * h * w;
            let (r, _) = reference::factorized_conv3d(
                &xd[..per],
                &[1, 1, t, h, w],
                &swd,
                &ss,
                Some(&sbd),
                &twd,
                &ts,
                Some(&tbd),
                &p,
                Some((&scd, &shd)),
                Activation::Elu,
            )?;
            Ok((max_abs_diff(&out[..r.len()], &r), coverage(n)))
        }),
    })
}

/// A square f32 matmul (side ÷ 4 in the small suite) on `kernel`; checked on the first 8 rows.
fn matmul<'c>(s: &Suite<'c>, side: usize, kernel: MatmulKernel) -> Result<Case<'c>> {
    let m = side / if s.small { 4 } else { 1 };
    let mut rng = inputs();
    let (ad, bd) = (uniform(&mut rng, m * m), uniform(&mut rng, m * m));
    let (a, bt) = (Tensor::from_f32(s.ctx, &ad, &[m, m])?, Tensor::from_f32(s.ctx, &bd, &[m, m])?);
    Ok(Case {
        flops: 2.0 * (m as f64).powi(3),
        bytes: 12.0 * (m * m) as f64,
        run: Run::Record(Box::new(move |rec| ops::matmul_with(rec, &a, &bt, kernel))),
        check: Box::new(move |out| {
            let rows = m.min(8);
            let (r, _) = reference::matmul(&ad[..rows * m], &[rows, m], &bd, &[m, m])?;
            Ok((max_abs_diff(&out[..rows * m], &r), if rows < m { "slice" } else { "full" }))
        }),
    })
}

/// The feature-map shape of the elementwise, normalization and readout cases: [N, 64, 28, 56].
fn feature_shape(s: &Suite) -> [usize; 4] {
    [s.b(128), 64, 28, 56]
}

/// An activation over elu's input (adaptive_elu: elu(x - 1) + 1).
fn activation<'c>(s: &Suite<'c>, act: Activation) -> Result<Case<'c>> {
    let fs = feature_shape(s);
    let fnum: usize = fs.iter().product();
    let xd: Vec<f32> = uniform(&mut inputs(), fnum).iter().map(|v| 3.0 * v).collect();
    let x = Tensor::from_f32(s.ctx, &xd, &fs)?;
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * fnum as f64,
        run: Run::Record(Box::new(move |rec| ops::activation(rec, &x, act))),
        check: Box::new(move |out| Ok((max_abs_diff(out, &reference::activation(&xd, act)), "full"))),
    })
}

fn batchnorm_eval<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let fs = feature_shape(s);
    let fnum: usize = fs.iter().product();
    let mut rng = inputs();
    let xd: Vec<f32> = uniform(&mut rng, fnum).iter().map(|v| 3.0 * v).collect();
    let (md, gd, bd) = (uniform(&mut rng, 64), uniform(&mut rng, 64), uniform(&mut rng, 64));
    let vd: Vec<f32> = uniform(&mut rng, 64).iter().map(|v| 1.0 + 0.5 * v).collect();
    let x = Tensor::from_f32(s.ctx, &xd, &fs)?;
    let p: Vec<Tensor> =
        [&md, &vd, &gd, &bd].iter().map(|d| Tensor::from_f32(s.ctx, d, &[64])).collect::<Result<_>>()?;
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * fnum as f64,
        run: Run::Record(Box::new(move |rec| {
            ops::batch_norm(rec, &x, &p[0], &p[1], &p[2], &p[3], 1e-5, Activation::Identity)
        })),
        check: Box::new(move |out| {
            let r = reference::batch_norm(&xd, &fs, &md, &vd, &gd, &bd, 1e-5, Activation::Identity)?;
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// Local divisive normalization, 5×5 windows, sigma 1, on `path`; checked on the first image.
fn divnorm_5x5<'c>(s: &Suite<'c>, path: ops::LocalPath) -> Result<Case<'c>> {
    let fs = feature_shape(s);
    let xd = uniform(&mut inputs(), fs.iter().product());
    let x = Tensor::from_f32(s.ctx, &xd, &fs)?;
    let p = ops::DivNormParams { sum_window: [5, 5], sup_window: [5, 5], ..Default::default() };
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * x.numel() as f64,
        run: Run::Record(Box::new(move |rec| Ok(ops::divisive_norm_with(rec, &x, None, None, &p, path)?.output))),
        check: Box::new(move |out| {
            let per = fs[1] * fs[2] * fs[3];
            let r = reference::divisive_norm(&xd[..per], &[1, fs[1], fs[2], fs[3]], None, None, &p)?;
            Ok((max_abs_diff(&out[..per], &r.output), coverage(fs[0])))
        }),
    })
}

/// NeuRN on [N, 3, 224, 224] (inputs in [0, 1]), the apply pass `reversed` or not; checked on the
/// first image (the maximum is per channel, so it stands alone).
fn neurn_k3<'c>(s: &Suite<'c>, reversed: bool) -> Result<Case<'c>> {
    let is = [s.b(128), 3, 224, 224];
    let n: usize = is.iter().product();
    let xd: Vec<f32> = uniform(&mut inputs(), n).iter().map(|v| 0.5 + 0.5 * v).collect();
    let x = Tensor::from_f32(s.ctx, &xd, &is)?;
    let p = ops::NeurnParams::default();
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * n as f64,
        run: Run::Record(Box::new(move |rec| ops::neurn::neurn_with(rec, &x, &p, reversed))),
        check: Box::new(move |out| {
            let per = 3 * 224 * 224;
            let r = reference::neurn(&xd[..per], &[1, 3, 224, 224], &p)?;
            Ok((max_abs_diff(&out[..per], &r), coverage(is[0])))
        }),
    })
}

/// Pooling on [64, 64, 64, 64] (VGG's first pool for 64×64 images, batch 64): max 2×2 stride 2, or
/// avg 3×3 stride 2 padding 1 (count_include_pad false, ceil_mode); checked on the first image.
fn pool<'c>(s: &Suite<'c>, kind: ops::pool::PoolKind) -> Result<Case<'c>> {
    use ops::pool::PoolKind;
    let is = [s.b(64), 64, 64, 64];
    let n: usize = is.iter().product();
    let xd = uniform(&mut inputs(), n);
    let x = Tensor::from_f32(s.ctx, &xd, &is)?;
    let p = match kind {
        PoolKind::Max => ops::Pool2dParams::square(2),
        PoolKind::Avg => ops::Pool2dParams {
            ceil_mode: true,
            count_include_pad: false,
            ..ops::Pool2dParams::square(3).with_stride(2, 2).with_padding(1, 1)
        },
    };
    let out = ops::pool::pool_shape(kind, &is, &p)?;
    Ok(Case {
        flops: 0.0,
        bytes: 4.0 * (n + out.iter().product::<usize>()) as f64,
        run: Run::Record(Box::new(move |rec| match kind {
            PoolKind::Max => ops::max_pool2d(rec, &x, &p),
            PoolKind::Avg => ops::avg_pool2d(rec, &x, &p),
        })),
        check: Box::new(move |out| {
            let per = 64 * 64 * 64;
            let (r, _) = match kind {
                PoolKind::Max => reference::max_pool2d(&xd[..per], &[1, 64, 64, 64], &p)?,
                PoolKind::Avg => reference::avg_pool2d(&xd[..per], &[1, 64, 64, 64], &p)?,
            };
            Ok((max_abs_diff(&out[..r.len()], &r), coverage(is[0])))
        }),
    })
}

/// One DDIM or DDPM step on the Platypose sample tensor [200, 60, 51] with given noise.
fn sampler_step<'c>(s: &Suite<'c>, ddim: bool) -> Result<Case<'c>> {
    use crate::diffusion::{BetaSchedule, DdimConfig, DdpmConfig, Prediction, Spacing, VarianceType};
    let shape = [s.b(200), 60, 51];
    let n: usize = shape.iter().product();
    let mut rng = inputs();
    let (sd, md, zd) = (uniform(&mut rng, n), uniform(&mut rng, n), reference::random::normal(3, 0, n));
    let (st, mt, z) = (
        Tensor::from_f32(s.ctx, &sd, &shape)?,
        Tensor::from_f32(s.ctx, &md, &shape)?,
        Tensor::from_f32(s.ctx, &zd, &shape)?,
    );
    // Platypose's sampler: cosine schedule, 50 training steps respaced to 20, x0 prediction.
    let ddim_cfg = DdimConfig {
        num_train_timesteps: 50,
        beta_schedule: BetaSchedule::SquaredCosCapV2,
        beta_start: 1e-4,
        beta_end: 0.02,
        num_inference_steps: 20,
        prediction: Prediction::Sample,
        clip: None,
        threshold: None,
        eta: 0.5,
        set_alpha_to_one: true,
        steps_offset: 0,
        spacing: Spacing::Linspace,
    };
    let ddpm_cfg = DdpmConfig {
        num_train_timesteps: 50,
        beta_schedule: BetaSchedule::SquaredCosCapV2,
        beta_start: 1e-4,
        beta_end: 0.02,
        num_inference_steps: 25,
        prediction: Prediction::Sample,
        variance: VarianceType::FixedSmall,
        clip: None,
        threshold: None,
    };
    let t = if ddim { ddim_cfg.timesteps()?[5] } else { ddpm_cfg.timesteps()?[5] };
    Ok(Case {
        flops: 0.0,
        bytes: 16.0 * n as f64,
        run: Run::Record(Box::new(move |rec| {
            let noise = ops::Noise::Tensor(&z);
            let (prev, _) = if ddim {
                ops::ddim_step(rec, &ddim_cfg, t, &st, &mt, noise)?
            } else {
                ops::ddpm_step(rec, &ddpm_cfg, t, &st, &mt, noise)?
            };
            Ok(prev)
        })),
        check: Box::new(move |out| {
            let (r, _) = if ddim {
                reference::diffusion::ddim_step(&ddim_cfg, t, &sd, &md, Some(&zd))?
            } else {
                reference::diffusion::ddpm_step(&ddpm_cfg, t, &sd, &md, Some(&zd))?
            };
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// The rational-quadratic spline forward on [65536, 3] (inputs in [−4, 4]), K 10, tail bound 3.
fn rq_spline<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (n, k) = (s.b(65536) * 3, 10);
    let mut rng = inputs();
    let xd: Vec<f32> = uniform(&mut rng, n).iter().map(|v| 4.0 * v).collect();
    let (wd, hd, dd) = (uniform(&mut rng, n * k), uniform(&mut rng, n * k), uniform(&mut rng, n * (k - 1)));
    let x = Tensor::from_f32(s.ctx, &xd, &[n / 3, 3])?;
    let w = Tensor::from_f32(s.ctx, &wd, &[n / 3, 3, k])?;
    let h = Tensor::from_f32(s.ctx, &hd, &[n / 3, 3, k])?;
    let d = Tensor::from_f32(s.ctx, &dd, &[n / 3, 3, k - 1])?;
    let p = ops::SplineParams { tail_bound: 3.0, ..Default::default() };
    Ok(Case {
        flops: 0.0,
        bytes: 4.0 * (n * 3 + n * (3 * k - 1)) as f64,
        run: Run::Record(Box::new(move |rec| Ok(ops::rq_spline(rec, &x, &w, &h, &d, &p)?.0))),
        check: Box::new(move |out| {
            let (r, _) = reference::flows::rq_spline(&xd, &[n], &wd, &[n, k], &hd, &[n, k], &dd, &[n, k - 1], &p)?;
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// The eval-mode Gaussian readout of 8000 neurons from [N, 64, 28, 56], with bias, align_corners
/// true: the sorted form or the caller's order; checked on the first image.
fn gaussian_readout<'c>(s: &Suite<'c>, sorted: bool) -> Result<Case<'c>> {
    let m = 8000;
    let fs = feature_shape(s);
    let mut rng = inputs();
    let xd = uniform(&mut rng, fs.iter().product());
    let (mud, fd, bd) = (uniform(&mut rng, 2 * m), uniform(&mut rng, 64 * m), uniform(&mut rng, m));
    let x = Tensor::from_f32(s.ctx, &xd, &fs)?;
    let (mu, f, bias) = (
        Tensor::from_f32(s.ctx, &mud, &[m, 2])?,
        Tensor::from_f32(s.ctx, &fd, &[64, m])?,
        Tensor::from_f32(s.ctx, &bd, &[m])?,
    );
    let table = ops::SortedReadout::new(s.ctx, &mud, &fd, 64, Some(&bd))?;
    Ok(Case {
        flops: 0.0,
        // As torch_peers.py counts it: four taps per channel per neuron per image, plus the output.
        bytes: 4.0 * (fs[0] * m * 64 * 4 + fs[0] * m) as f64,
        run: Run::Record(Box::new(move |rec| {
            let act = ops::Activation::Identity;
            if sorted {
                ops::gaussian_readout_sorted(rec, &x, &table, None, true, act)
            } else {
                ops::gaussian_readout(rec, &x, &mu, &f, Some(&bias), None, true, act)
            }
        })),
        check: Box::new(move |out| {
            let per = 64 * 28 * 56;
            let r = reference::readout::gaussian_readout(
                &xd[..per],
                &[1, 64, 28, 56],
                &mud,
                &fd,
                Some(&bd),
                None,
                true,
                ops::Activation::Identity,
            )?;
            Ok((max_abs_diff(&out[..m], &r), coverage(fs[0])))
        }),
    })
}

/// The video-latent model's evaluation log-likelihood: 8000 neurons, [64 frames] (2 in the small
/// suite), 100 latent samples of 12 dims, k and loc per neuron, in bits; checked on the first frame.
fn zig_loglik_s100<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (n, bt, samples, l) = (8000, s.b(64), 100, 12);
    let mut rng = inputs();
    let yd: Vec<f32> = rng.vec(bt * n, -1.0, 2.0).iter().map(|v| v.max(0.0)).collect();
    let lgd = uniform(&mut rng, 2 * bt * n);
    let zd = uniform(&mut rng, samples * bt * l);
    let wqd: Vec<f32> = uniform(&mut rng, l * n).iter().map(|v| 0.3 * v).collect();
    let wtd: Vec<f32> = uniform(&mut rng, l * n).iter().map(|v| 0.3 * v).collect();
    let kd = rng.vec(n, 0.3, 3.0);
    let locd = vec![0.005f32; n];
    let t = |d: &[f32], sh: &[usize]| Tensor::from_f32(s.ctx, d, sh);
    let (y, lg, z, wq, wt, k, loc) = (
        t(&yd, &[bt, n])?,
        t(&lgd, &[2, bt, n])?,
        t(&zd, &[samples, bt, l])?,
        t(&wqd, &[l, n])?,
        t(&wtd, &[l, n])?,
        t(&kd, &[n])?,
        t(&locd, &[n])?,
    );
    Ok(Case {
        // Per (sample, frame, neuron): the two latent dot products and the density.
        flops: (samples * bt * n * (4 * l + 16)) as f64,
        bytes: 4.0 * (samples * bt * (l + 2 * n) + 4 * bt * n + 2 * l * n) as f64,
        run: Run::Record(Box::new(move |rec| {
            ops::zig_latent_loglik(rec, &y, &lg, &ops::ZigLatent { z: &z, w_q: &wq, w_theta: &wt }, &k, &loc)
        })),
        check: Box::new(move |out| {
            // The first frame: its rows of the target, logits and samples.
            let lg1: Vec<f32> = [&lgd[..n], &lgd[bt * n..bt * n + n]].concat();
            let z1: Vec<f32> = (0..samples).flat_map(|si| zd[si * bt * l..si * bt * l + l].to_vec()).collect();
            let lat = reference::zig::ZigLatent { z: &z1, z_shape: [samples, 1, l], w_q: &wqd, w_theta: &wtd };
            let r = reference::zig::zig_latent_loglik(&yd[..n], &lg1, [1, n], &lat, &kd, &locd)?;
            Ok((max_abs_diff(&out[..n], &r), coverage(bt)))
        }),
    })
}

/// The Sensorium baseline (random weights, 8000 neurons) and `nominal` images [N, 1, 36, 64]
/// (N ÷ 32 in the small suite), with the check of its responses on the first image.
#[allow(clippy::type_complexity)]
fn sensorium<'c>(
    s: &Suite<'c>,
    nominal: usize,
) -> Result<(
    Rc<crate::models::Sensorium>,
    Rc<Vec<f32>>,
    [usize; 4],
    Box<dyn Fn(&[f32]) -> Result<(f64, &'static str)> + 'c>,
)> {
    sensorium_of(s, nominal, crate::models::Sensorium::baseline_config(8000))
}

/// A Sensorium-style model of `config` (random weights, one data key "bench") and `nominal`
/// images [N, 1, 36, 64], with the check of its responses on the first image.
#[allow(clippy::type_complexity)]
fn sensorium_of<'c>(
    s: &Suite<'c>,
    nominal: usize,
    config: crate::models::SensoriumConfig,
) -> Result<(
    Rc<crate::models::Sensorium>,
    Rc<Vec<f32>>,
    [usize; 4],
    Box<dyn Fn(&[f32]) -> Result<(f64, &'static str)> + 'c>,
)> {
    use crate::models::Sensorium;
    let neurons = config.readouts.get("bench").map_or(0, |r| r.neurons);
    let mut model = Sensorium::random(config, 11)?;
    model.upload(s.ctx)?;
    let n = s.b(nominal);
    let images = Rc::new(SplitMix::new(nominal as u64).vec(n * 36 * 64, -1.0, 1.0));
    let model = Rc::new(model);
    let (m, im) = (model.clone(), images.clone());
    let check = Box::new(move |out: &[f32]| {
        let r = m.reference_forward(&im[..36 * 64], &[1, 1, 36, 64], "bench")?;
        Ok((max_abs_diff(&out[..neurons], &r), coverage(n)))
    });
    Ok((model, images, [n, 1, 36, 64], check))
}

/// The Sensorium forward: GPU time of the whole forward.
fn sensorium_forward<'c>(s: &Suite<'c>, nominal: usize) -> Result<Case<'c>> {
    let (model, images, shape, check) = sensorium(s, nominal)?;
    let x = Tensor::from_f32(s.ctx, &images, &shape)?;
    Ok(Case { flops: 0.0, bytes: 0.0, run: Run::Record(Box::new(move |rec| model.record(rec, &x, "bench"))), check })
}

/// A rotation-equivariant Sensorium model (Ecker et al. 2019's size: 16 features × 8 rotations,
/// 9×9 input and three 7×7 hidden Hermite layers, upsampling 2, the input unpadded; 1000-neuron
/// readout, ELU+1) on [N, 1, 36, 64]: GPU time of the whole forward (the kernels are built at load).
/// Its dense 128-channel 7×7 layers are ~70 times the baseline's work, so the small suite runs one
/// image with 4 features × 8 rotations.
fn rot_eq_forward<'c>(s: &Suite<'c>, nominal: usize) -> Result<Case<'c>> {
    use crate::models::sensorium::CoreKind;
    let mut config = crate::models::Sensorium::baseline_config(1000);
    let core = &mut config.core;
    core.kind = CoreKind::RotationEquivariant;
    (core.num_rotations, core.upsampling, core.depth_separable) = (Some(8), Some(2), false);
    core.hidden_channels = (if s.small { 4 } else { 16 }).into();
    // s.b(32) = 1 in the small suite.
    let nominal = if s.small { 32 } else { nominal };
    let (model, images, shape, check) = sensorium_of(s, nominal, config)?;
    let x = Tensor::from_f32(s.ctx, &images, &shape)?;
    Ok(Case { flops: 0.0, bytes: 0.0, run: Run::Record(Box::new(move |rec| model.record(rec, &x, "bench"))), check })
}

/// The same forward as a caller sees it (`Sensorium::predict`): wall clock from host images to
/// host responses.
fn sensorium_latency<'c>(s: &Suite<'c>, nominal: usize) -> Result<Case<'c>> {
    let (model, images, shape, check) = sensorium(s, nominal)?;
    let ctx = s.ctx;
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Call(Box::new(move || model.predict(ctx, &images, &shape, "bench"))),
        check,
    })
}

/// The co-training twin (random weights; vgg19_bn features[:17] on grey images, a 1000-neuron
/// Gaussian2d readout, elu(x − 1) + 1) on [64, 1, 64, 64] (N ÷ 32 in the small suite): GPU time of
/// the whole forward; the first image checked against the f64 reference.
fn cotrain_forward<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    use crate::models::{Cotrain, CotrainConfig};
    let mut model = Cotrain::random(CotrainConfig::paper(1000), 13)?;
    model.upload(s.ctx)?;
    let n = s.b(64);
    let per = 64 * 64;
    let images = SplitMix::new(64).vec(n * per, 0.0, 1.0);
    let x = Tensor::from_f32(s.ctx, &images, &[n, 1, 64, 64])?;
    let model = Rc::new(model);
    let m = model.clone();
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Record(Box::new(move |rec| model.record(rec, &x, "bench"))),
        check: Box::new(move |out| {
            let r = m.reference_forward(&images[..per], &[1, 1, 64, 64], "bench")?;
            Ok((max_abs_diff(&out[..1000], &r), coverage(n)))
        }),
    })
}

/// The Sensorium 2023 video twin at the benchmark's sizes (random weights): the 3D_factorised core
/// (hidden [32, 64, 128], spatial 11/5, temporal 11/5, unpadded; receptive field 19 frames), five
/// mice of 8000 neurons with shifters, clips [8, 3, T, 36, 64] with T = 80 (the small suite: one
/// clip of 20 frames). Returns the model, the clip and its shape.
fn video_bench(s: &Suite<'_>) -> Result<(Rc<crate::models::Video>, Rc<Vec<f32>>, Rc<Vec<f32>>, [usize; 5])> {
    use crate::models::{Video, VideoConfig};
    let readouts: Vec<String> =
        (0..5).map(|i| format!(r#""mouse{i}": {{"neurons": 8000, "shifter": true}}"#)).collect();
    let text = format!(
        r#"{{"kind": "video", "core": {{"type": "3D_factorised", "input_channels": 3,
            "hidden_channels": [32, 64, 128], "spatial_input_kernel": 11, "temporal_input_kernel": 11,
            "spatial_hidden_kernel": 5, "temporal_hidden_kernel": 5}}, "readouts": {{{}}}}}"#,
        readouts.join(", ")
    );
    let mut model = Video::random(VideoConfig::from_json(&text)?, 17)?;
    model.upload(s.ctx)?;
    let (b, t) = (s.b(8), if s.small { 20 } else { 80 });
    let shape = [b, 3, t, 36, 64];
    let mut rng = SplitMix::new(80);
    let clip = rng.vec(shape.iter().product(), -1.0, 1.0);
    let pupil = rng.vec(b * 2 * t, -1.0, 1.0);
    Ok((Rc::new(model), Rc::new(clip), Rc::new(pupil), shape))
}

/// The video twin's clip forward for one mouse: GPU time; the first clip's first neurons checked
/// against the f64 reference (in the small suite; the full suite checks a 20-frame clip).
fn video_forward<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (model, clip, pupil, shape) = video_bench(s)?;
    let x = Tensor::from_f32(s.ctx, &clip, &shape)?;
    let p = Tensor::from_f32(s.ctx, &pupil, &[shape[0], 2, shape[2]])?;
    let m = model.clone();
    let t = shape[2];
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Record(Box::new(move |rec| model.record(rec, &x, Some(&p), "mouse0"))),
        check: Box::new(move |out| {
            // The last 20 frames of the first clip: their 2 output frames.
            let tc = 20.min(t);
            let sub: Vec<f32> = (0..3)
                .flat_map(|c| clip[c * t * 36 * 64 + (t - tc) * 36 * 64..(c + 1) * t * 36 * 64].to_vec())
                .collect();
            let ps: Vec<f32> = (0..2).flat_map(|k| pupil[k * t + t - tc..(k + 1) * t].to_vec()).collect();
            let (r, rs) = m.reference_forward(&sub, &[1, 3, tc, 36, 64], Some(&ps), "mouse0")?;
            let (n, tr, to) = (rs[1], rs[2], t - 18);
            let got: Vec<f32> = (0..n).flat_map(|i| out[i * to + to - tr..(i + 1) * to].to_vec()).collect();
            Ok((max_abs_diff(&got, &r), coverage(shape[0])))
        }),
    })
}

/// One new frame into a warm stream of the same model (host frame in, host rates out): the
/// stream starts each call from the state after the first 18 frames, so every call is the 19th.
fn video_stream_frame<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (model, clip, pupil, shape) = video_bench(s)?;
    let [b, c, t, h, w] = shape;
    let ctx = s.ctx;
    let r = 19;
    let frames = |t0: usize, k: usize| -> Vec<f32> {
        (0..b * c).flat_map(|bc| clip[(bc * t + t0) * h * w..(bc * t + t0 + k) * h * w].to_vec()).collect()
    };
    let pupils = |t0: usize, k: usize| -> Vec<f32> {
        (0..b * 2).flat_map(|i| pupil[i * t + t0..i * t + t0 + k].to_vec()).collect()
    };
    let mut warm = model.core().stream(b, h, w)?;
    {
        let mut rec = ctx.recorder();
        let x = Tensor::from_f32(ctx, &frames(0, r - 1), &[b, c, r - 1, h, w])?;
        model.core().record_stream(&mut rec, &mut warm, &x)?;
        rec.submit()?;
    }
    let (last, last_p) = (frames(r - 1, 1), pupils(r - 1, 1));
    let (first, first_p) = (frames(0, r), pupils(0, r));
    let m = model.clone();
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Call(Box::new(move || {
            let mut state = warm.clone();
            let x = Tensor::from_f32(ctx, &last, &[b, c, 1, h, w])?;
            let p = Tensor::from_f32(ctx, &last_p, &[b, 2, 1])?;
            let mut rec = ctx.recorder();
            let core = model.core().record_stream(&mut rec, &mut state, &x)?.expect("warm");
            let y = model.record_readout(&mut rec, &core, Some(&p), "mouse0")?;
            let hd = rec.read_back(&y);
            Ok(rec.submit()?.f32(hd))
        })),
        check: Box::new(move |out| {
            let n = 8000;
            let sub: Vec<f32> = (0..c).flat_map(|ci| first[ci * r * h * w..(ci + 1) * r * h * w].to_vec()).collect();
            let ps: Vec<f32> = (0..2).flat_map(|k| first_p[k * r..(k + 1) * r].to_vec()).collect();
            let (want, _) = m.reference_forward(&sub, &[1, c, r, h, w], Some(&ps), "mouse0")?;
            Ok((max_abs_diff(&out[..n], &want), coverage(b)))
        }),
    })
}

/// The 2-D + ConvGRU baseline of the Sensorium 2023 demo streaming (random weights): a
/// Stacked2dCore of 4 layers × 64 channels (kernels 9 and 7, unpadded input) on each frame, the
/// ConvGRU 64 → 64 (7 × 7 convs), five mice of 8000 neurons with shifters. One new frame
/// [B, 3, 1, 36, 64] into a stream that has seen 2 frames (its GRU state restored before each
/// call), host frame in, host rates [B, 8000, 1] of mouse0 out, wall clock. B = 8 (small: 1).
/// Checked against the f64 reference of the 3-frame clip's last frame.
fn video_2d_stream_frame<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    use crate::models::{Video, VideoConfig};
    let readouts: Vec<String> =
        (0..5).map(|i| format!(r#""mouse{i}": {{"neurons": 8000, "shifter": true}}"#)).collect();
    let text = format!(
        r#"{{"kind": "video",
            "core": {{"type": "2D", "input_channels": 3, "hidden_channels": 64, "input_kern": 9,
                      "hidden_kern": 7, "layers": 4, "pad_input": false, "final_nonlinearity": false,
                      "depth_separable": false}},
            "gru": {{"input_channels": 64, "rec_channels": 64, "input_kern": 7, "rec_kern": 7}},
            "readouts": {{{}}}}}"#,
        readouts.join(", ")
    );
    let mut model = Video::random(VideoConfig::from_json(&text)?, 19)?;
    model.upload(s.ctx)?;
    let model = std::sync::Arc::new(model);
    let (b, c, t, h, w) = (s.b(8), 3, 3, 36, 64);
    let mut rng = SplitMix::new(81);
    let clip = rng.vec(b * c * t * h * w, -1.0, 1.0);
    let pupil = rng.vec(b * 2 * t, -1.0, 1.0);
    let frames = |t0: usize, k: usize| -> Vec<f32> {
        (0..b * c).flat_map(|bc| clip[(bc * t + t0) * h * w..(bc * t + t0 + k) * h * w].to_vec()).collect()
    };
    let pupils = |t0: usize, k: usize| -> Vec<f32> {
        (0..b * 2).flat_map(|i| pupil[i * t + t0..i * t + t0 + k].to_vec()).collect()
    };
    let ctx = s.ctx;
    let mut warm = model.stream_shared("mouse0", b, h, w)?;
    warm.push(ctx, &frames(0, t - 1), &[b, c, t - 1, h, w], Some(&pupils(0, t - 1)))?;
    let (last, last_p) = (frames(t - 1, 1), pupils(t - 1, 1));
    let first_clip: Vec<f32> = clip[..c * t * h * w].to_vec();
    let first_pupil: Vec<f32> = pupil[..2 * t].to_vec();
    let m = model.clone();
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Call(Box::new(move || {
            let mut stream = warm.clone();
            Ok(stream.push(ctx, &last, &[b, c, 1, h, w], Some(&last_p))?.0)
        })),
        check: Box::new(move |out| {
            let n = 8000;
            let (want, _) = m.reference_forward(&first_clip, &[1, c, t, h, w], Some(&first_pupil), "mouse0")?;
            // The reference's [1, N, 3]: its last frame.
            let last: Vec<f32> = (0..n).map(|i| want[i * t + t - 1]).collect();
            Ok((max_abs_diff(&out[..n], &last), coverage(b)))
        }),
    })
}

/// One new frame into a warm stream of the latent model of `latent_prior_s100` (prior mode, 100
/// samples, with responses: the mean and the log-likelihood), host to host: the stream starts
/// each call from the state after the first R + kt/2 frames (R = 19, kt/2 = 5), so every call
/// emits output frame 1. Checked against the f64 reference of the clip of the frames it saw.
fn latent_stream_frame<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    use crate::models::latent::{Latent, LatentConfig, LatentMode};
    let neurons = if s.small { 1000 } else { 8000 };
    let mut config = LatentConfig::paper(neurons);
    if s.small {
        config.core.hidden_channels = vec![4, 8, 8];
    }
    let c = &config.core;
    let r = 1 + (c.temporal_input_kernel - 1) + (c.hidden_channels.len() - 1) * (c.temporal_hidden_kernel - 1);
    let warm_frames = r + config.readout.kernel[0] / 2;
    let t = warm_frames + 1;
    let (h, w) = (36, 64);
    let mut model = Latent::random(config, 17)?;
    model.upload(s.ctx)?;
    // The stream holds a share of the model, so that the case can hold both.
    let model = std::sync::Arc::new(model);
    let mut rng = inputs();
    let video = uniform(&mut rng, t * h * w);
    let responses: Vec<f32> = uniform(&mut rng, neurons * t).iter().map(|v| v.max(0.0)).collect();
    let ctx = s.ctx;
    let resp = |t0: usize, k: usize| -> Vec<f32> {
        (0..neurons).flat_map(|i| responses[i * t + t0..i * t + t0 + k].to_vec()).collect()
    };
    let mut warm = model.stream_shared(1, h, w, LatentMode::Prior, 100, 3)?;
    warm.push(ctx, &video[..warm_frames * h * w], &[1, 1, warm_frames, h, w], Some(&resp(0, warm_frames)))?;
    let last = video[warm_frames * h * w..].to_vec();
    let last_r = resp(warm_frames, 1);
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Call(Box::new(move || {
            let mut stream = warm.clone();
            let out = stream.push(ctx, &last, &[1, 1, 1, h, w], Some(&last_r))?;
            Ok([out.mean, out.loglik.unwrap_or_default()].concat())
        })),
        check: Box::new(move |out| {
            let want =
                model.reference_forward(&video, &[1, 1, t, h, w], Some(&responses), LatentMode::Prior, 100, 3)?;
            let frame = |x: &[f32]| x[neurons..2 * neurons].to_vec();
            let want = [frame(&want.mean), frame(&want.loglik.unwrap_or_default())].concat();
            Ok((max_abs_diff(out, &want), "full"))
        }),
    })
}

/// Layer norm over the last 512 of [12200, 512] (200·61 rows), weight and bias, eps 1e-5.
fn layernorm<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let rows = s.b(200) * 61;
    let mut rng = inputs();
    let (xd, wd, bd) = (uniform(&mut rng, rows * 512), uniform(&mut rng, 512), uniform(&mut rng, 512));
    let x = Tensor::from_f32(s.ctx, &xd, &[rows, 512])?;
    let (wt, bt) = (Tensor::from_f32(s.ctx, &wd, &[512])?, Tensor::from_f32(s.ctx, &bd, &[512])?);
    Ok(Case {
        flops: 0.0,
        bytes: 8.0 * (rows * 512) as f64,
        run: Run::Record(Box::new(move |rec| {
            ops::layer_norm(rec, &x, 1, Some(&wt), Some(&bt), 1e-5, Activation::Identity)
        })),
        check: Box::new(move |out| {
            let r = reference::layer_norm(
                &xd,
                &[xd.len() / 512, 512],
                1,
                Some(&wd),
                Some(&bd),
                1e-5,
                Activation::Identity,
            )?;
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// The Sensorium scores of 8000 neurons over 10^4 trials (100 images × 100 repeats, interleaved;
/// 3 images in the small suite): the single-trial correlation, the correlation to the repeat
/// average, FEV and FEVE, every neuron checked (FEVE where FEV >= 0.15).
fn scores<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (m, images) = (8000, s.b(100));
    let t = images * 100;
    let mut rng = inputs();
    // An image signal plus trial noise (FEV well away from 0, so FEVE is well conditioned).
    let signal = uniform(&mut rng, images * m);
    let (n1, n2) = (uniform(&mut rng, t * m), uniform(&mut rng, t * m));
    let ids: Vec<i64> = (0..t).map(|i| (i % images) as i64).collect();
    let sig = |i: usize| signal[(i / m % images) * m + i % m];
    let r: Vec<f32> = (0..t * m).map(|i| sig(i) + 0.5 * n1[i]).collect();
    let p: Vec<f32> = (0..t * m).map(|i| 0.8 * sig(i) + 0.3 * n2[i]).collect();
    let rep = ops::Repeats::from_ids(&ids)?;
    let (rt, pt) = (Tensor::from_f32(s.ctx, &r, &[t, m])?, Tensor::from_f32(s.ctx, &p, &[t, m])?);
    let rep_run = rep.clone();
    Ok(Case {
        flops: 0.0,
        // Both inputs read once, the trial order once.
        bytes: (8 * t * m + 4 * t) as f64,
        run: Run::Record(Box::new(move |rec| ops::scores(rec, &rt, &pt, Some(&rep_run), &ops::ScoreParams::default()))),
        check: Box::new(move |out| {
            let want = reference::scores(&r, &p, &[t, m], Some(&rep), &ops::ScoreParams::default())?;
            // FEVE where sensorium reports it (FEV >= 0.15): near FEV 0 its denominator total −
            // noise cancels, and f32's rounding of the two variances is amplified past 1e-3.
            let feve =
                (0..m).filter(|&j| want[2 * m + j] >= 0.15).map(|j| (out[3 * m + j] - want[3 * m + j]).abs() as f64);
            Ok((max_abs_diff(&out[..3 * m], &want[..3 * m]).max(feve.fold(0.0, f64::max)), "full"))
        }),
    })
}

/// One ConvGRU step (neuralpredictors' ConvGRUCell, 64 → 64 channels, 5×5 input and hidden
/// kernels, padded) on a frame [1, 64, 18, 46] from a given hidden state: the 2-D core + GRU video
/// baseline's recurrence, frame by frame as a streaming caller runs it. Checked whole.
fn conv_gru_step<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (c, ch, h, w, k) = (64, 64, 18, 46, 5);
    let p = ops::ConvGruParams::new(c, ch, k, k);
    let mut rng = inputs();
    let convs: Vec<_> = ops::gru::CONV_GRU_CONVS
        .iter()
        .map(|name| {
            let (ws, bs) = p.conv_shapes(name);
            let a = 2.0 / ((ws[1] * k * k) as f32).sqrt();
            let wd: Vec<f32> = uniform(&mut rng, ws.iter().product()).iter().map(|v| a * v).collect();
            (
                crate::io::HostTensor::new(ws.to_vec(), wd),
                crate::io::HostTensor::new(bs.to_vec(), uniform(&mut rng, ch)),
            )
        })
        .collect();
    let weights = ops::ConvGruWeights { params: p, convs: convs.try_into().expect("six convs") };
    let (xd, hd) = (uniform(&mut rng, c * h * w), uniform(&mut rng, ch * h * w));
    let gru = ops::ConvGru::upload(s.ctx, &weights)?;
    let (x, h0) = (Tensor::from_f32(s.ctx, &xd, &[1, c, h, w])?, Tensor::from_f32(s.ctx, &hd, &[1, ch, h, w])?);
    let plane = (h * w) as f64;
    Ok(Case {
        flops: 2.0 * plane * ch as f64 * 3.0 * ((c + ch) * k * k) as f64,
        bytes: 4.0 * (6 * ch * ch * k * k) as f64 + 4.0 * plane * (c + 12 * ch) as f64,
        run: Run::Record(Box::new(move |rec| {
            let mut state = ops::ConvGruState::from_hidden(h0.clone());
            ops::conv_gru_step(rec, &gru, &mut state, &x)
        })),
        check: Box::new(move |out| {
            let (r, _, _) = reference::conv_gru(&weights, &xd, &[1, c, 1, h, w], Some(&hd))?;
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// torch.nn.GRU 42 → 20 (the latent video model's encoder GRU) over [32, 60, 42] from h0 = 0:
/// the input projection as one matmul, then 60 steps of a matmul and the fused gates.
fn gru_seq<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    let (b, t, i, hs) = (s.b(32), 60, 42, 20);
    let mut rng = inputs();
    let mut draw = |n: usize, a: f32| -> Vec<f32> { uniform(&mut rng, n).iter().map(|v| a * v).collect() };
    let weights = ops::GruWeights {
        weight_ih: crate::io::HostTensor::new(vec![3 * hs, i], draw(3 * hs * i, 0.3)),
        weight_hh: crate::io::HostTensor::new(vec![3 * hs, hs], draw(3 * hs * hs, 0.4)),
        bias_ih: Some(crate::io::HostTensor::new(vec![3 * hs], draw(3 * hs, 0.3))),
        bias_hh: Some(crate::io::HostTensor::new(vec![3 * hs], draw(3 * hs, 0.3))),
    };
    let xd = draw(b * t * i, 1.0);
    let gru = ops::Gru::upload(s.ctx, &weights)?;
    let x = Tensor::from_f32(s.ctx, &xd, &[b, t, i])?;
    Ok(Case {
        flops: 2.0 * (b * t * 3 * hs * (i + hs)) as f64,
        bytes: 4.0 * (b * t * (i + 3 * hs + hs) + 3 * hs * (i + hs)) as f64,
        run: Run::Record(Box::new(move |rec| ops::gru(rec, &gru, &x).map(|(y, _)| y))),
        check: Box::new(move |out| {
            let (r, _, _) = reference::gru(&weights, &xd, &[b, t, i], None)?;
            Ok((max_abs_diff(out, &r), "full"))
        }),
    })
}

/// The latent video model (random weights) in prior mode with 100 samples: one clip whose core
/// output has 60 frames, 8000 neurons, the ZIG mean and the log-likelihood of responses, host to
/// host (`Latent::predict`). The small suite keeps the 100 samples but runs 4 frames, 1000
/// neurons and core channels [4, 8, 8]. Checked whole against the f64 reference.
fn latent_prior<'c>(s: &Suite<'c>) -> Result<Case<'c>> {
    use crate::models::latent::{Latent, LatentConfig, LatentMode};
    let (neurons, frames) = if s.small { (1000, 4) } else { (8000, 60) };
    let mut config = LatentConfig::paper(neurons);
    if s.small {
        config.core.hidden_channels = vec![4, 8, 8];
    }
    let c = &config.core;
    let t = frames + (c.temporal_input_kernel - 1) + (c.hidden_channels.len() - 1) * (c.temporal_hidden_kernel - 1);
    let shape = [1, 1, t, 36, 64];
    let mut model = Latent::random(config, 17)?;
    model.upload(s.ctx)?;
    let mut rng = inputs();
    let video = uniform(&mut rng, t * 36 * 64);
    let responses: Vec<f32> = uniform(&mut rng, neurons * t).iter().map(|v| v.max(0.0)).collect();
    let (model, ctx) = (Rc::new(model), s.ctx);
    let (m, v, r) = (model.clone(), video.clone(), responses.clone());
    Ok(Case {
        flops: 0.0,
        bytes: 0.0,
        run: Run::Call(Box::new(move || {
            let out = model.predict(ctx, &video, &shape, Some(&responses), LatentMode::Prior, 100, 3)?;
            Ok([out.mean, out.loglik.unwrap_or_default()].concat())
        })),
        check: Box::new(move |out| {
            let want = m.reference_forward(&v, &shape, Some(&r), LatentMode::Prior, 100, 3)?;
            Ok((max_abs_diff(out, &[want.mean, want.loglik.unwrap_or_default()].concat()), "full"))
        }),
    })
}
