//! The standard benchmark suite (docs/bench.md): every kernel on a fixed shape
//! suite, timed with GPU timestamps (wall clock where the adapter has none), checked against its
//! CPU reference (on a slice of the batch where the full reference would take too long).

use std::time::Instant;

mod pose;

use crate::error::Result;
use crate::ops::{self, Activation, Conv2dParams, ConvAlgo, Epilogue};
use crate::reference;
use crate::rng::SplitMix;
use crate::runtime::{Context, Recorder};
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Standard shapes even on a software adapter.
    pub full: bool,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Timed repetitions (at least 20 are used).
    pub reps: usize,
    /// Keep each case's GPU time per dispatch label ([`BenchResult::profile`]).
    pub profile: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { full: false, filter: None, reps: 20, profile: false }
    }
}

#[derive(Clone, Debug, Default)]
pub struct BenchResult {
    pub case: String,
    pub ms: f64,
    pub gflops: Option<f64>,
    pub gbs: Option<f64>,
    pub max_err: Option<f64>,
    /// "slice" when only part of the batch was checked against the reference.
    pub checked: &'static str,
    /// "gpu" (timestamp queries) or "wall".
    pub timer: &'static str,
    pub error: Option<String>,
    /// With `profile` and timestamp queries: per dispatch label, in the order first recorded, the
    /// median over the repetitions of its summed GPU time and its dispatch count per run.
    pub profile: Vec<(String, f64, usize)>,
}

impl BenchResult {
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("case".into(), self.case.clone().into());
        if let Some(e) = &self.error {
            m.insert("error".into(), e.clone().into());
            return m.into();
        }
        m.insert("ms".into(), round(self.ms, 5).into());
        if let Some(v) = self.gflops {
            m.insert("gflops".into(), round(v, 1).into());
        }
        if let Some(v) = self.gbs {
            m.insert("gbs".into(), round(v, 1).into());
        }
        if let Some(v) = self.max_err {
            m.insert("max_err".into(), v.into());
        }
        m.insert("checked".into(), self.checked.into());
        if self.timer == "wall" {
            m.insert("timer".into(), "wall".into());
        }
        if !self.profile.is_empty() {
            let rows: Vec<serde_json::Value> = self
                .profile
                .iter()
                .map(|(l, ms, k)| serde_json::json!({"label": l, "ms": round(*ms, 5), "count": k}))
                .collect();
            m.insert("profile".into(), rows.into());
        }
        m.into()
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// Whether the suite shrinks (a software adapter, unless `full`).
pub fn is_small(ctx: &Context, opts: &BenchOptions) -> bool {
    !opts.full && ctx.adapter().device_type == "Cpu"
}

/// The device line of the JSON report.
pub fn device_json(ctx: &Context, small: bool) -> serde_json::Value {
    let a = ctx.adapter();
    let c = ctx.capabilities();
    serde_json::json!({
        "case": "device", "adapter": a.name, "backend": a.backend, "driver": a.driver,
        "device_type": a.device_type, "small": small, "timestamps": c.timestamps,
        "shader_f16": c.shader_f16, "subgroups": c.subgroups,
    })
}

/// What [`time_op`] measured: the median time, its timer, and the per-label profile.
struct Timed {
    ms: f64,
    timer: &'static str,
    profile: Vec<(String, f64, usize)>,
}

/// Median time of `reps` submits of what `record` records (GPU time of every dispatch of the op).
fn time_op(ctx: &Context, reps: usize, record: &dyn Fn(&mut Recorder) -> Result<Tensor>) -> Result<Timed> {
    for _ in 0..3 {
        let mut rec = ctx.recorder();
        let y = record(&mut rec)?;
        let h = rec.read_back(&y);
        rec.submit()?.bytes(h);
    }
    let gpu = ctx.capabilities().timestamps;
    let mut ts = Vec::with_capacity(reps);
    // Per label: (dispatches per run, each run's summed time).
    let mut labels: Vec<(String, usize, Vec<f64>)> = Vec::new();
    for _ in 0..reps.max(20) {
        let mut rec = ctx.recorder().timed(gpu);
        let t0 = Instant::now();
        record(&mut rec)?;
        let done = rec.submit()?;
        match &done.timings {
            Some(t) => {
                ts.push(t.iter().map(|x| x.ms).sum());
                let mut run: Vec<(usize, usize, f64)> = Vec::new();
                for x in t {
                    let i = match labels.iter().position(|(l, _, _)| *l == x.label) {
                        Some(i) => i,
                        None => {
                            labels.push((x.label.clone(), 0, Vec::new()));
                            labels.len() - 1
                        }
                    };
                    match run.iter_mut().find(|r| r.0 == i) {
                        Some(r) => {
                            r.1 += 1;
                            r.2 += x.ms;
                        }
                        None => run.push((i, 1, x.ms)),
                    }
                }
                for (i, k, ms) in run {
                    labels[i].1 = k;
                    labels[i].2.push(ms);
                }
            }
            None => {
                ctx.wait()?;
                ts.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let profile = labels
        .into_iter()
        .map(|(l, k, mut v)| {
            let m = median(&mut v);
            (l, m, k)
        })
        .collect();
    Ok(Timed { ms: median(&mut ts), timer: if gpu { "gpu" } else { "wall" }, profile })
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()))
}

struct Case<'a> {
    name: &'static str,
    flops: f64,
    bytes: f64,
    record: Box<dyn Fn(&mut Recorder) -> Result<Tensor> + 'a>,
    /// Given the GPU output, the max error against the reference and whether it was a slice.
    check: Box<dyn Fn(&[f32]) -> Result<(f64, &'static str)> + 'a>,
}

/// Builds a case, times it, checks it against the reference; a failure becomes the row's error.
fn measure<'a>(ctx: &Context, opts: &BenchOptions, make: impl FnOnce() -> Result<Case<'a>>) -> BenchResult {
    let mut res = BenchResult::default();
    let outcome = (|| -> Result<()> {
        let case = make()?;
        res.case = case.name.to_string();
        let Timed { ms, timer, profile } = time_op(ctx, opts.reps, &*case.record)?;
        if opts.profile {
            res.profile = profile;
        }
        let mut rec = ctx.recorder();
        let y = (case.record)(&mut rec)?;
        let h = rec.read_back(&y);
        let out = rec.submit()?.f32(h);
        let (err, checked) = (case.check)(&out)?;
        res.ms = ms;
        res.timer = timer;
        res.gflops = (case.flops > 0.0).then(|| case.flops / ms / 1e6);
        res.gbs = (case.bytes > 0.0).then(|| case.bytes / ms / 1e6);
        res.max_err = Some(err);
        res.checked = checked;
        Ok(())
    })();
    if let Err(e) = outcome {
        res.error = Some(e.to_string());
    }
    res
}

/// divnorm_5x5: local DN, 5×5 windows, sigma 1, checked on the first image; `_separable` is the
/// five-dispatch path on the same input.
fn run_divnorm(
    ctx: &Context,
    opts: &BenchOptions,
    xd: &[f32],
    fs: [usize; 4],
    name: &'static str,
    path: ops::LocalPath,
    finish: &mut dyn FnMut(BenchResult),
) {
    finish(measure(ctx, opts, || {
        let x = Tensor::from_f32(ctx, xd, &fs)?;
        let p = ops::DivNormParams { sum_window: [5, 5], sup_window: [5, 5], ..Default::default() };
        Ok(Case {
            name,
            flops: 0.0,
            bytes: 8.0 * x.numel() as f64,
            record: Box::new(move |rec| Ok(ops::divisive_norm_with(rec, &x, None, None, &p, path)?.output)),
            check: Box::new(move |out| {
                let per = fs[1] * fs[2] * fs[3];
                let r = reference::divisive_norm(&xd[..per], &[1, fs[1], fs[2], fs[3]], None, None, &p)?;
                Ok((max_abs_diff(&out[..per], &r.output), if fs[0] > 1 { "slice" } else { "full" }))
            }),
        })
    }));
}

/// The Sensorium baseline (random weights, 8000 neurons) at batch 128 and 1: GPU time of the whole
/// forward, and the caller's latency from host images to host responses.
fn sensorium_cases(
    ctx: &Context,
    opts: &BenchOptions,
    small: bool,
    wanted: &dyn Fn(&str) -> bool,
    finish: &mut dyn FnMut(BenchResult),
) {
    use crate::models::Sensorium;
    let model = match Sensorium::random(Sensorium::baseline_config(8000), 11).and_then(|mut m| m.upload(ctx).map(|_| m))
    {
        Ok(m) => m,
        Err(e) => {
            finish(BenchResult {
                case: "sensorium_forward_b128".into(),
                error: Some(e.to_string()),
                ..Default::default()
            });
            return;
        }
    };
    for nominal in [128usize, 1] {
        let n = if small { (nominal / 32).max(1) } else { nominal };
        let shape = [n, 1, 36, 64];
        let images = SplitMix::new(nominal as u64).vec(n * 36 * 64, -1.0, 1.0);
        let fwd: &'static str = if nominal == 128 { "sensorium_forward_b128" } else { "sensorium_forward_b1" };
        let lat: &'static str = if nominal == 128 { "sensorium_latency_b128" } else { "sensorium_latency_b1" };
        if wanted(fwd) {
            let model = &model;
            let images = &images;
            finish(measure(ctx, opts, || {
                let x = Tensor::from_f32(ctx, images, &shape)?;
                Ok(Case {
                    name: fwd,
                    flops: 0.0,
                    bytes: 0.0,
                    record: Box::new(move |rec| model.record(rec, &x, "bench")),
                    check: Box::new(move |out| {
                        let r = model.reference_forward(&images[..36 * 64], &[1, 1, 36, 64], "bench")?;
                        Ok((max_abs_diff(&out[..8000], &r), if n > 1 { "slice" } else { "full" }))
                    }),
                })
            }));
        }
        if wanted(lat) {
            let mut res = BenchResult { case: lat.to_string(), timer: "wall", checked: "full", ..Default::default() };
            let outcome = (|| -> Result<()> {
                for _ in 0..3 {
                    model.predict(ctx, &images, &shape, "bench")?;
                }
                let mut ts = Vec::new();
                let mut last = Vec::new();
                for _ in 0..opts.reps.max(20) {
                    let t0 = Instant::now();
                    last = model.predict(ctx, &images, &shape, "bench")?;
                    ts.push(t0.elapsed().as_secs_f64() * 1e3);
                }
                ts.sort_by(|a, b| a.total_cmp(b));
                res.ms = ts[ts.len() / 2];
                let r = model.reference_forward(&images[..36 * 64], &[1, 1, 36, 64], "bench")?;
                res.max_err = Some(max_abs_diff(&last[..8000], &r));
                res.checked = if n > 1 { "slice" } else { "full" };
                Ok(())
            })();
            if let Err(e) = outcome {
                res.error = Some(e.to_string());
            }
            finish(res);
        }
    }
}

/// Runs the suite, calling `report` after each case.
pub fn run_suite(ctx: &Context, opts: &BenchOptions, mut report: impl FnMut(&BenchResult)) -> Vec<BenchResult> {
    let small = is_small(ctx, opts);
    let b = |n: usize| if small { (n / 32).max(1) } else { n };
    let mut results = Vec::new();
    let wanted = |name: &str| opts.filter.as_ref().is_none_or(|f| name.contains(f.as_str()));
    let mut finish = |res: BenchResult| {
        report(&res);
        results.push(res);
    };
    let mut rng = SplitMix::new(7);
    let mut rnd = |n: usize| rng.vec(n, -1.0, 1.0);

    if wanted("copy_256mib") {
        let n = (1usize << 26) / if small { 32 } else { 1 };
        let data = rnd(n);
        finish(measure(ctx, opts, || {
            let x = Tensor::from_f32(ctx, &data, &[n])?;
            let data = &data;
            Ok(Case {
                name: "copy_256mib",
                flops: 0.0,
                bytes: 8.0 * n as f64,
                record: Box::new(move |rec| ops::copy(rec, &x)),
                check: Box::new(move |out| Ok((max_abs_diff(out, data), "full"))),
            })
        }));
    }

    // Convolutions: (name, N, C, H, W, O, k, pad, groups, kernel). The `_direct`, `_gemm`,
    // `_single` (single-buffered GEMM) and `_wide` (128 channels a tile) cases are the same shapes on
    // kernels the ladder passes over, to compare within one run.
    use ConvAlgo::{Auto, Depthwise, Gemm, GemmDbWide, OneByOne};
    let convs: [(&'static str, usize, usize, usize, usize, usize, usize, usize, usize, ConvAlgo); 12] = [
        ("conv_sensorium_in_9x9", 128, 1, 36, 64, 64, 9, 0, 1, Auto),
        ("conv_sensorium_in_9x9_direct", 128, 1, 36, 64, 64, 9, 0, 1, Depthwise),
        ("conv_sensorium_in_9x9_gemm", 128, 1, 36, 64, 64, 9, 0, 1, Gemm),
        ("conv_dw7x7_64", 128, 64, 28, 56, 64, 7, 3, 64, Auto),
        ("conv_dw7x7_64_direct", 128, 64, 28, 56, 64, 7, 3, 64, Depthwise),
        ("conv_1x1_64", 128, 64, 28, 56, 64, 1, 0, 1, Auto),
        ("conv_1x1_64_single", 128, 64, 28, 56, 64, 1, 0, 1, OneByOne),
        ("conv3x3_64", 128, 64, 28, 56, 64, 3, 1, 1, Auto),
        ("conv3x3_64_single", 128, 64, 28, 56, 64, 3, 1, 1, Gemm),
        ("conv3x3_vgg128", 32, 128, 56, 56, 128, 3, 1, 1, Auto),
        ("conv3x3_vgg128_single", 32, 128, 56, 56, 128, 3, 1, 1, Gemm),
        ("conv3x3_vgg128_wide", 32, 128, 56, 56, 128, 3, 1, 1, GemmDbWide),
    ];
    for (name, n, c, h, w, o, k, pad, g, algo) in convs {
        if !wanted(name) {
            continue;
        }
        let n = b(n);
        let xs = [n, c, h, w];
        let ws = [o, c / g, k, k];
        let xd = rnd(xs.iter().product());
        let wd: Vec<f32> = rnd(ws.iter().product()).iter().map(|v| v / ((c / g * k * k) as f32).sqrt()).collect();
        let bd = rnd(o);
        finish(measure(ctx, opts, || {
            let p = Conv2dParams::default().with_padding(pad, pad).with_groups(g).with_algo(algo);
            let (x, wt, bt) =
                (Tensor::from_f32(ctx, &xd, &xs)?, Tensor::from_f32(ctx, &wd, &ws)?, Tensor::from_f32(ctx, &bd, &[o])?);
            let ho = h + 2 * pad - k + 1;
            let wo = w + 2 * pad - k + 1;
            let ynum = n * o * ho * wo;
            let (xd, wd, bd) = (&xd, &wd, &bd);
            Ok(Case {
                name,
                flops: 2.0 * ynum as f64 * (c / g * k * k) as f64,
                bytes: 4.0 * (x.numel() + wt.numel() + ynum) as f64,
                record: Box::new(move |rec| ops::conv2d(rec, &x, &wt, Some(&bt), &p, &Epilogue::default())),
                check: Box::new(move |out| {
                    // The first image of the batch.
                    let per = c * h * w;
                    let (r, _) = reference::conv2d(
                        &xd[..per],
                        &[1, c, h, w],
                        wd,
                        &ws,
                        Some(bd),
                        &p,
                        None,
                        Activation::Identity,
                    )?;
                    Ok((max_abs_diff(&out[..r.len()], &r), if n > 1 { "slice" } else { "full" }))
                }),
            })
        }));
    }

    // The `_vec4` cases run the single-buffered kernel Auto passed over, for A/B in one run.
    use ops::MatmulKernel;
    for (name, side, kernel) in [
        ("matmul_1024_fp32", 1024usize, MatmulKernel::Auto),
        ("matmul_4096_fp32", 4096, MatmulKernel::Auto),
        ("matmul_4096_fp32_vec4", 4096, MatmulKernel::Vec4),
    ] {
        if !wanted(name) {
            continue;
        }
        let m = side / if small { 4 } else { 1 };
        let (ad, bd) = (rnd(m * m), rnd(m * m));
        finish(measure(ctx, opts, || {
            let (a, bt) = (Tensor::from_f32(ctx, &ad, &[m, m])?, Tensor::from_f32(ctx, &bd, &[m, m])?);
            let (ad, bd) = (&ad, &bd);
            Ok(Case {
                name,
                flops: 2.0 * (m as f64).powi(3),
                bytes: 12.0 * (m * m) as f64,
                record: Box::new(move |rec| ops::matmul_with(rec, &a, &bt, kernel)),
                check: Box::new(move |out| {
                    let rows = m.min(8);
                    let r = reference::matmul(&ad[..rows * m], bd, 1, rows, m, m, 0, 0);
                    Ok((max_abs_diff(&out[..rows * m], &r), if rows < m { "slice" } else { "full" }))
                }),
            })
        }));
    }

    let fs = [b(128), 64, 28, 56];
    let fnum: usize = fs.iter().product();
    let activations =
        [("elu", Activation::Elu), ("adaptive_elu", Activation::AdaptiveElu { xshift: 1.0, yshift: 1.0 })];
    if activations.iter().any(|(n, _)| wanted(n)) || wanted("batchnorm_eval") {
        let xd: Vec<f32> = rnd(fnum).iter().map(|v| 3.0 * v).collect();
        for (name, act) in activations.into_iter().filter(|(n, _)| wanted(n)) {
            finish(measure(ctx, opts, || {
                let x = Tensor::from_f32(ctx, &xd, &fs)?;
                let xd = &xd;
                Ok(Case {
                    name,
                    flops: 0.0,
                    bytes: 8.0 * fnum as f64,
                    record: Box::new(move |rec| ops::activation(rec, &x, act)),
                    check: Box::new(move |out| Ok((max_abs_diff(out, &reference::activation(xd, act)), "full"))),
                })
            }));
        }
        if wanted("batchnorm_eval") {
            let (md, gd, bd) = (rnd(64), rnd(64), rnd(64));
            let vd: Vec<f32> = rnd(64).iter().map(|v| 1.0 + 0.5 * v).collect();
            finish(measure(ctx, opts, || {
                let x = Tensor::from_f32(ctx, &xd, &fs)?;
                let p: Vec<Tensor> =
                    [&md, &vd, &gd, &bd].iter().map(|d| Tensor::from_f32(ctx, d, &[64])).collect::<Result<_>>()?;
                let (xd, md, vd, gd, bd) = (&xd, &md, &vd, &gd, &bd);
                Ok(Case {
                    name: "batchnorm_eval",
                    flops: 0.0,
                    bytes: 8.0 * fnum as f64,
                    record: Box::new(move |rec| {
                        ops::batch_norm(rec, &x, &p[0], &p[1], &p[2], &p[3], 1e-5, Activation::Identity)
                    }),
                    check: Box::new(move |out| {
                        let r = reference::batch_norm(xd, &fs, md, vd, gd, bd, 1e-5, Activation::Identity)?;
                        Ok((max_abs_diff(out, &r), "full"))
                    }),
                })
            }));
        }
    }

    if wanted("divnorm_5x5") || wanted("divnorm_5x5_separable") {
        let xd = rnd(fnum);
        for (name, path) in
            [("divnorm_5x5", ops::LocalPath::Auto), ("divnorm_5x5_separable", ops::LocalPath::Separable)]
        {
            if wanted(name) {
                run_divnorm(ctx, opts, &xd, fs, name, path, &mut finish);
            }
        }
    }

    // neurn_k3_forward: the apply pass in the max pass's order (neurn_k3 walks it backwards).
    if wanted("neurn_k3") || wanted("neurn_k3_forward") {
        let is = [b(128), 3, 224, 224];
        let n: usize = is.iter().product();
        let xd: Vec<f32> = rnd(n).iter().map(|v| 0.5 + 0.5 * v).collect();
        for (name, reversed) in [("neurn_k3", true), ("neurn_k3_forward", false)] {
            if !wanted(name) {
                continue;
            }
            finish(measure(ctx, opts, || {
                let x = Tensor::from_f32(ctx, &xd, &is)?;
                let p = ops::NeurnParams::default();
                let xd = &xd;
                Ok(Case {
                    name,
                    flops: 0.0,
                    bytes: 8.0 * n as f64,
                    record: Box::new(move |rec| ops::neurn::neurn_with(rec, &x, &p, reversed)),
                    check: Box::new(move |out| {
                        // The first image (the maximum is per channel, so it stands alone).
                        let per = 3 * 224 * 224;
                        let r = reference::neurn(&xd[..per], &[1, 3, 224, 224], &p)?;
                        Ok((max_abs_diff(&out[..per], &r), if is[0] > 1 { "slice" } else { "full" }))
                    }),
                })
            }));
        }
    }

    for (name, ddim) in [("ddim_step_200x60x51", true), ("ddpm_step_200x60x51", false)] {
        if !wanted(name) {
            continue;
        }
        let shape = [b(200), 60, 51];
        let n: usize = shape.iter().product();
        let (sd, md, zd) = (rnd(n), rnd(n), reference::random::normal(3, 0, n));
        finish(measure(ctx, opts, || {
            use crate::diffusion::{BetaSchedule, DdimConfig, DdpmConfig, Prediction, Spacing, VarianceType};
            let (s, m, z) = (
                Tensor::from_f32(ctx, &sd, &shape)?,
                Tensor::from_f32(ctx, &md, &shape)?,
                Tensor::from_f32(ctx, &zd, &shape)?,
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
            let (sd, md, zd) = (&sd, &md, &zd);
            Ok(Case {
                name,
                flops: 0.0,
                bytes: 16.0 * n as f64,
                record: Box::new(move |rec| {
                    let noise = ops::Noise::Tensor(&z);
                    let (prev, _) = if ddim {
                        ops::ddim_step(rec, &ddim_cfg, t, &s, &m, noise)?
                    } else {
                        ops::ddpm_step(rec, &ddpm_cfg, t, &s, &m, noise)?
                    };
                    Ok(prev)
                }),
                check: Box::new(move |out| {
                    let (r, _) = if ddim {
                        reference::diffusion::ddim_step(&ddim_cfg, t, sd, md, Some(zd))?
                    } else {
                        reference::diffusion::ddpm_step(&ddpm_cfg, t, sd, md, Some(zd))?
                    };
                    Ok((max_abs_diff(out, &r), "full"))
                }),
            })
        }));
    }

    if wanted("rq_spline_65536x3_k10") {
        let (n, k) = (b(65536) * 3, 10);
        let xd: Vec<f32> = rnd(n).iter().map(|v| 4.0 * v).collect();
        let (wd, hd, dd) = (rnd(n * k), rnd(n * k), rnd(n * (k - 1)));
        finish(measure(ctx, opts, || {
            let shape = [n / 3, 3];
            let x = Tensor::from_f32(ctx, &xd, &shape)?;
            let w = Tensor::from_f32(ctx, &wd, &[n / 3, 3, k])?;
            let h = Tensor::from_f32(ctx, &hd, &[n / 3, 3, k])?;
            let d = Tensor::from_f32(ctx, &dd, &[n / 3, 3, k - 1])?;
            let p = ops::SplineParams { tail_bound: 3.0, ..Default::default() };
            let (xd, wd, hd, dd) = (&xd, &wd, &hd, &dd);
            Ok(Case {
                name: "rq_spline_65536x3_k10",
                flops: 0.0,
                bytes: 4.0 * (n * 3 + n * (3 * k - 1)) as f64,
                record: Box::new(move |rec| Ok(ops::rq_spline(rec, &x, &w, &h, &d, &p)?.0)),
                check: Box::new(move |out| {
                    let (r, _) = reference::flows::rq_spline(xd, &[n], wd, &[n, k], hd, &[n, k], dd, &[n, k - 1], &p)?;
                    Ok((max_abs_diff(out, &r), "full"))
                }),
            })
        }));
    }

    // gaussian_readout_8000 runs the sorted readout, as the Sensorium model does (the neurons sorted
    // once at load); _unsorted is the same readout in the caller's neuron order.
    for (name, sorted) in [("gaussian_readout_8000", true), ("gaussian_readout_8000_unsorted", false)] {
        if !wanted(name) {
            continue;
        }
        let m = 8000;
        let xd = rnd(fnum);
        let (mud, fd, bd) = (rnd(2 * m), rnd(64 * m), rnd(m));
        finish(measure(ctx, opts, || {
            let x = Tensor::from_f32(ctx, &xd, &fs)?;
            let (mu, f, bias) = (
                Tensor::from_f32(ctx, &mud, &[m, 2])?,
                Tensor::from_f32(ctx, &fd, &[64, m])?,
                Tensor::from_f32(ctx, &bd, &[m])?,
            );
            let table = ops::SortedReadout::new(ctx, &mud, &fd, 64, Some(&bd))?;
            let (xd, mud, fd, bd) = (&xd, &mud, &fd, &bd);
            Ok(Case {
                name,
                flops: 0.0,
                // As torch_peers.py counts it: four taps per channel per neuron per image, plus the output.
                bytes: 4.0 * (fs[0] * m * 64 * 4 + fs[0] * m) as f64,
                record: Box::new(move |rec| {
                    let act = ops::Activation::Identity;
                    if sorted {
                        ops::gaussian_readout_sorted(rec, &x, &table, None, true, act)
                    } else {
                        ops::gaussian_readout(rec, &x, &mu, &f, Some(&bias), None, true, act)
                    }
                }),
                check: Box::new(move |out| {
                    let per = 64 * 28 * 56;
                    let r =
                        reference::readout::gaussian_readout(&xd[..per], 1, 64, 28, 56, mud, fd, Some(bd), None, true);
                    Ok((max_abs_diff(&out[..m], &r), if fs[0] > 1 { "slice" } else { "full" }))
                }),
            })
        }));
    }

    if ["sensorium_forward_b128", "sensorium_forward_b1", "sensorium_latency_b128", "sensorium_latency_b1"]
        .iter()
        .any(|c| wanted(c))
    {
        sensorium_cases(ctx, opts, small, &wanted, &mut finish);
    }

    if wanted("cgnf_sample_200x1000") {
        finish(pose::cgnf_case(ctx, opts, small));
    }
    if wanted("platypose_sample_200x60") {
        finish(pose::platypose_case(ctx, opts, small));
    }

    if wanted("layernorm_12200x512") {
        let rows = b(200) * 61;
        let (xd, wd, bd) = (rnd(rows * 512), rnd(512), rnd(512));
        finish(measure(ctx, opts, || {
            let x = Tensor::from_f32(ctx, &xd, &[rows, 512])?;
            let (wt, bt) = (Tensor::from_f32(ctx, &wd, &[512])?, Tensor::from_f32(ctx, &bd, &[512])?);
            let (xd, wd, bd) = (&xd, &wd, &bd);
            Ok(Case {
                name: "layernorm_12200x512",
                flops: 0.0,
                bytes: 8.0 * (rows * 512) as f64,
                record: Box::new(move |rec| {
                    ops::layer_norm(rec, &x, 1, Some(&wt), Some(&bt), 1e-5, Activation::Identity)
                }),
                check: Box::new(move |out| {
                    let r = reference::layer_norm(xd, 512, Some(wd), Some(bd), 1e-5, Activation::Identity);
                    Ok((max_abs_diff(out, &r), "full"))
                }),
            })
        }));
    }
    results
}
