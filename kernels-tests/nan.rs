//! NaN and infinities as PyTorch has them. Every activation on NaN, ±Inf, signed zeros and f32
//! extremes against PyTorch's own answers (`golden/special_values.safetensors`, made by
//! scripts/golden_special_values.py), on the GPU, in the reference, and fused into the epilogues of
//! conv, linear and batch norm; layer norm, the Gaussian readout and the Sensorium forward with NaN
//! and ±Inf in their inputs, GPU against the reference.

use std::collections::BTreeMap;

use crate::common::{assert_close_nan, ctx, data_dir, run1, up};
use vcortex::io::{read_safetensors, HostTensor};
use vcortex::ops::{self, Activation, Conv2dParams, ConvAlgo, Epilogue};
use vcortex::reference;
use vcortex::rng::SplitMix;

fn golden() -> BTreeMap<String, HostTensor> {
    read_safetensors(&data_dir("golden").join("special_values.safetensors")).expect("special values golden").tensors
}

/// The activations of the golden file, by the names scripts/golden_special_values.py gives them.
fn activations() -> Vec<(&'static str, Activation)> {
    vec![
        ("identity", Activation::Identity),
        ("relu", Activation::Relu),
        ("elu", Activation::Elu),
        ("elu1", Activation::Elu1),
        ("sigmoid", Activation::Sigmoid),
        ("tanh", Activation::Tanh),
        ("softplus", Activation::Softplus { beta: 1.0, threshold: 20.0 }),
        ("softplus_b2_t5", Activation::Softplus { beta: 2.0, threshold: 5.0 }),
        ("softplus_b0.5_t1", Activation::Softplus { beta: 0.5, threshold: 1.0 }),
        ("softplus_b-1_t5", Activation::Softplus { beta: -1.0, threshold: 5.0 }),
        ("gelu", Activation::Gelu),
        ("silu", Activation::Silu),
    ]
}

#[test]
fn activations_follow_pytorch_on_nan_and_infinities() {
    let g = golden();
    let x = &g["x"].data;
    assert!(x[0].is_nan() && x[1] == f32::INFINITY && x[2] == f32::NEG_INFINITY, "the golden starts with NaN, ±Inf");
    let n = x.len();
    for (name, act) in activations() {
        let want = &g[&format!("y.{name}")].data;
        assert_close_nan(&reference::activation(x, act), want, 1e-6, 1e-5, &format!("reference {name}"));
        let got = run1(|rec| ops::activation(rec, &up(x, &[n]), act));
        assert_close_nan(&got, want, 1e-5, 1e-4, &format!("GPU activation {name}"));
        // Fused into an epilogue: x·1 + 0 is x itself (NaN·1 = NaN, Inf·1 = Inf), then the activation.
        let one = up(&[1.0], &[1, 1]);
        let zero = up(&[0.0], &[1]);
        let got = run1(|rec| ops::linear(rec, &up(x, &[n, 1]), &one, Some(&zero), act));
        assert_close_nan(&got, want, 1e-5, 1e-4, &format!("linear epilogue {name}"));
        let w = up(&[1.0], &[1, 1, 1, 1]);
        let got = run1(|rec| {
            ops::conv2d(
                rec,
                &up(x, &[1, 1, 1, n]),
                &w,
                Some(&zero),
                &Conv2dParams::default(),
                &Epilogue { act, ..Default::default() },
            )
        });
        assert_close_nan(&got, want, 1e-5, 1e-4, &format!("conv2d epilogue {name}"));
        let (m, v, wt) = (up(&[0.0], &[1]), up(&[1.0], &[1]), up(&[1.0], &[1]));
        let got = run1(|rec| ops::batch_norm(rec, &up(x, &[1, 1, n]), &m, &v, &wt, &zero, 0.0, act));
        assert_close_nan(&got, want, 1e-5, 1e-4, &format!("batch_norm epilogue {name}"));
    }
}

/// The special values scattered into random data: NaN, +Inf, −Inf at a few positions.
fn sprinkle(rng: &mut SplitMix, x: &mut [f32], count: usize) {
    for j in 0..count {
        let i = (rng.next_u64() % x.len() as u64) as usize;
        x[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][j % 3];
    }
}

#[test]
fn conv_and_linear_propagate_nan_and_infinities_like_the_reference() {
    let mut rng = SplitMix::new(1201);
    // Shapes that take each conv path: implicit GEMM (partial tiles in every axis), 1x1, depthwise.
    let cases: [([usize; 4], [usize; 4], usize, [usize; 4]); 4] = [
        ([2, 3, 9, 11], [5, 3, 3, 3], 1, [1, 1, 1, 1]),
        ([1, 16, 7, 5], [24, 16, 1, 1], 1, [0; 4]),
        ([2, 8, 10, 9], [8, 1, 5, 5], 8, [2, 2, 2, 2]),
        ([1, 4, 6, 6], [4, 2, 3, 3], 2, [0, 1, 1, 0]),
    ];
    for (xs, ws, groups, padding) in cases {
        let mut x = rng.vec(xs.iter().product(), -1.0, 1.0);
        sprinkle(&mut rng, &mut x, 3);
        let w = rng.vec(ws.iter().product(), -0.5, 0.5);
        let b = rng.vec(ws[0], -0.1, 0.1);
        let p = Conv2dParams { groups, padding, ..Default::default() };
        for act in [Activation::Identity, Activation::Relu, Activation::Elu] {
            let (want, _) = reference::conv2d(&x, &xs, &w, &ws, Some(&b), &p, None, act).unwrap();
            let got = run1(|rec| {
                ops::conv2d(
                    rec,
                    &up(&x, &xs),
                    &up(&w, &ws),
                    Some(&up(&b, &[ws[0]])),
                    &p,
                    &Epilogue { act, ..Default::default() },
                )
            });
            assert!(want.iter().any(|v| v.is_nan()), "the case reaches NaN");
            assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("conv2d {xs:?} {ws:?} {act:?}"));
        }
    }
    // A non-finite weight: where its tap lands on a padded zero the product is 0 · Inf = NaN, as
    // in PyTorch (F.conv2d of ones with an Inf corner weight and padding 1 is NaN on the border).
    let dense = [ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::GemmDb];
    let depthwise = [ConvAlgo::Auto, ConvAlgo::Gemm, ConvAlgo::Depthwise, ConvAlgo::DepthwiseTiled];
    for (xs, ws, groups, algos) in
        [([1, 2, 5, 6], [3, 2, 3, 3], 1, &dense[..]), ([1, 4, 6, 5], [4, 1, 3, 3], 4, &depthwise[..])]
    {
        for &algo in algos {
            let x = rng.vec(xs.iter().product(), -1.0, 1.0);
            let mut w = rng.vec(ws.iter().product(), -0.5, 0.5);
            w[0] = f32::INFINITY;
            let p = Conv2dParams { groups, padding: [1; 4], algo, ..Default::default() };
            let (want, _) = reference::conv2d(&x, &xs, &w, &ws, None, &p, None, Activation::Identity).unwrap();
            assert!(want[0].is_nan(), "reference: the corner tap on padding gives NaN");
            let got = run1(|rec| ops::conv2d(rec, &up(&x, &xs), &up(&w, &ws), None, &p, &Epilogue::default()));
            assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("conv2d Inf weight {algo:?} {ws:?}"));
        }
    }
    // linear on every matmul kernel's shape class: one row (dot), aligned rows (tiled), odd K.
    for (rows, i, o) in [(1usize, 37usize, 5usize), (70, 64, 72), (9, 13, 3)] {
        let mut x = rng.vec(rows * i, -1.0, 1.0);
        sprinkle(&mut rng, &mut x, 3);
        let w = rng.vec(o * i, -0.5, 0.5);
        let b = rng.vec(o, -0.1, 0.1);
        for act in [Activation::Identity, Activation::Relu, Activation::Elu1] {
            let want = reference::linear(&x, &[rows, i], &w, &[o, i], Some(&b), act).unwrap().0;
            let got = run1(|rec| ops::linear(rec, &up(&x, &[rows, i]), &up(&w, &[o, i]), Some(&up(&b, &[o])), act));
            assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("linear {rows}x{i}x{o} {act:?}"));
        }
    }
}

#[test]
fn layer_norm_and_readout_propagate_nan_and_infinities() {
    let mut rng = SplitMix::new(1202);
    // A NaN or an infinity anywhere in a row makes that row NaN (its mean or variance is), as in
    // PyTorch; the other rows are untouched.
    let (rows, len) = (6, 300);
    let mut x = rng.vec(rows * len, -2.0, 2.0);
    x[len + 17] = f32::NAN;
    x[3 * len + 299] = f32::INFINITY;
    x[4 * len] = f32::NEG_INFINITY;
    let want = reference::layer_norm(&x, &[rows, len], 1, None, None, 1e-5, Activation::Identity).unwrap();
    let got = run1(|rec| ops::layer_norm(rec, &up(&x, &[rows, len]), 1, None, None, 1e-5, Activation::Identity));
    for r in [1, 3, 4] {
        assert!(want[r * len..(r + 1) * len].iter().all(|v| v.is_nan()), "reference row {r} is NaN");
    }
    assert_close_nan(&got, &want, 1e-4, 1e-4, "layer_norm");
    // The readout: a neuron whose taps touch a NaN or an infinite pixel of any channel gives NaN
    // (Inf where only one sign of infinity reaches it), through the fused ELU+1 too.
    let (n, c, h, w, m) = (2, 5, 7, 9, 40);
    let mut fx = rng.vec(n * c * h * w, -1.0, 1.0);
    sprinkle(&mut rng, &mut fx, 6);
    let mu = rng.vec(m * 2, -1.0, 1.0);
    let feat = rng.vec(c * m, -0.5, 0.5);
    let bias = rng.vec(m, -0.1, 0.1);
    for align in [true, false] {
        let lin = reference::readout::gaussian_readout(
            &fx,
            &[n, c, h, w],
            &mu,
            &feat,
            Some(&bias),
            None,
            align,
            vcortex::ops::Activation::Identity,
        )
        .unwrap();
        for act in [Activation::Identity, Activation::Elu1] {
            let want = reference::activation(&lin, act);
            let got = run1(|rec| {
                ops::gaussian_readout(
                    rec,
                    &up(&fx, &[n, c, h, w]),
                    &up(&mu, &[m, 2]),
                    &up(&feat, &[c, m]),
                    Some(&up(&bias, &[m])),
                    None,
                    align,
                    act,
                )
            });
            assert!(want.iter().any(|v| !v.is_finite()), "the case reaches a non-finite neuron");
            assert_close_nan(&got, &want, 1e-4, 1e-4, &format!("readout align {align} {act:?}"));
        }
    }
}

#[test]
fn sensorium_forward_of_nan_and_infinite_images() {
    use vcortex::models::Sensorium;
    // The baseline's architecture, small: 8 channels, a 5x5 input and 3x3 hidden kernels, 2 layers.
    let mut config = Sensorium::baseline_config(11);
    config.core.hidden_channels = 8.into();
    config.core.input_kern = 5;
    config.core.hidden_kern = 3.into();
    config.core.layers = 2;
    let mut model = Sensorium::random(config, 9).unwrap();
    model.upload(ctx()).unwrap();
    let shape = [3, 1, 12, 14];
    let per = 12 * 14;
    let mut rng = SplitMix::new(1203);
    let mut x = rng.vec(3 * per, 0.0, 1.0);
    // Image 0 all NaN, image 1 one infinite pixel, image 2 ordinary.
    x[..per].fill(f32::NAN);
    x[per + 5 * 14 + 6] = f32::INFINITY;
    let t = up(&x, &shape);
    let got = run1(|rec| model.record(rec, &t, "bench"));
    let want = model.reference_forward(&x, &shape, "bench").unwrap();
    assert!(got[..11].iter().all(|v| v.is_nan()), "an all-NaN image gives NaN rates, not {:?}", &got[..11]);
    assert!(want[..11].iter().all(|v| v.is_nan()), "reference: an all-NaN image gives NaN rates");
    assert!(got[22..].iter().all(|v| v.is_finite() && *v > 0.0), "the ordinary image is untouched");
    assert_close_nan(&got, &want, 1e-5, 1e-4, "sensorium forward");
}

/// Softplus with a threshold past exp's range: log(1 + e^(βx)) is βx itself there, finite on the
/// GPU and in the reference alike (the fuzz test found the reference at +Inf for x = 1e15).
#[test]
fn softplus_past_exp_range_stays_finite() {
    let act = Activation::Softplus { beta: 2.0, threshold: 1e30 };
    let x = [1e15f32, 400.0, -1e15, 3.0e37];
    let want = [1e15f32, 400.0, 0.0, 3.0e37];
    let got = run1(|rec| ops::activation(rec, &up(&x, &[4]), act));
    assert_close_nan(&got, &want, 1e-6, 1e-6, "GPU softplus beyond exp's range");
    assert_close_nan(&reference::activation(&x, act), &want, 1e-6, 1e-6, "reference softplus beyond exp's range");
}

/// The video twin (3-D factorised core, and a 2-D core + ConvGRU) and the latent model on clips
/// with NaN and Inf: clip 0 has a NaN frame, clip 1 one infinite pixel, clip 2 is ordinary. The
/// GPU forward and the f64 reference agree element by element, NaN where NaN (the NaN clip's
/// rates are all NaN from the frame on, as PyTorch's), and the ordinary clip stays finite.
#[test]
fn video_models_of_nan_and_infinite_frames() {
    use vcortex::models::latent::{LatentConfig, LatentCoreConfig, LatentEncoderConfig, LatentReadoutConfig};
    use vcortex::models::{Latent, LatentMode, Video, VideoConfig};
    let three_d = r#"{"kind": "video",
        "core": {"type": "3D_factorised", "input_channels": 2, "hidden_channels": [3, 4],
                 "spatial_input_kernel": 3, "temporal_input_kernel": 2,
                 "spatial_hidden_kernel": 3, "temporal_hidden_kernel": 2},
        "readouts": {"m": {"neurons": 6}}}"#;
    let two_d = r#"{"kind": "video",
        "core": {"type": "2D", "input_channels": 2, "hidden_channels": 4, "input_kern": 3,
                 "hidden_kern": 3, "layers": 2, "final_nonlinearity": false},
        "gru": {"input_channels": 4, "rec_channels": 3, "input_kern": 3, "rec_kern": 3},
        "readouts": {"m": {"neurons": 6}}}"#;
    let (b, t, h, w) = (3, 6, 9, 10);
    let frame = h * w;
    let mut rng = SplitMix::new(1207);
    let mut x = rng.vec(b * 2 * t * frame, -1.0, 1.0);
    // Clip 0: frame 1 of channel 0 all NaN; clip 1: one infinite pixel in frame 2 of channel 1.
    x[frame..2 * frame].fill(f32::NAN);
    x[(2 * t + t + 2) * frame + 4 * w + 5] = f32::INFINITY;
    for text in [three_d, two_d] {
        let mut m = Video::random(VideoConfig::from_json(text).unwrap(), 3).unwrap();
        m.upload(ctx()).unwrap();
        let (got, gs) = m.predict(ctx(), &x, &[b, 2, t, h, w], None, "m").unwrap();
        let (want, _) = m.reference_forward(&x, &[b, 2, t, h, w], None, "m").unwrap();
        let per = gs[1] * gs[2];
        assert!(got[..per].iter().any(|v| v.is_nan()), "the NaN frame reaches the rates");
        assert!(got[2 * per..].iter().all(|v| v.is_finite()), "the ordinary clip stays finite");
        assert_close_nan(&got, &want, 1e-5, 1e-4, &format!("video {}", m.core().config.kind().name()));
    }
    let cfg = LatentConfig {
        core: LatentCoreConfig {
            hidden_channels: vec![3, 4],
            spatial_input_kernel: 3,
            temporal_input_kernel: 2,
            spatial_hidden_kernel: 3,
            temporal_hidden_kernel: 2,
            batch_norm_eps: 1e-5,
        },
        readout: LatentReadoutConfig {
            data_key: "m".into(),
            neurons: 5,
            kernel: [3, 3],
            bias: true,
            align_corners: true,
            grid_mean_final_tanh: None,
        },
        encoder: LatentEncoderConfig { hidden_dim: 4, hidden_gru: 3, output_dim: 2, layer_norm_eps: 1e-5 },
        samples: 3,
        seed: 1,
        k: Default::default(),
        loc: 0.005,
    };
    let mut m = Latent::random(cfg, 4).unwrap();
    m.upload(ctx()).unwrap();
    // One channel: clip 0 frame 1 NaN, clip 1 one infinite pixel in frame 2, clip 2 ordinary.
    let mut v = rng.vec(b * t * frame, -1.0, 1.0);
    v[frame..2 * frame].fill(f32::NAN);
    v[(t + 2) * frame + 4 * w + 5] = f32::INFINITY;
    let got = m.predict(ctx(), &v, &[b, 1, t, h, w], None, LatentMode::Prior, 3, 1).unwrap();
    let want = m.reference_forward(&v, &[b, 1, t, h, w], None, LatentMode::Prior, 3, 1).unwrap();
    let per = got.mean.len() / b;
    assert!(got.mean[..per].iter().any(|v| v.is_nan()), "the NaN frame reaches the latent mean");
    assert!(got.mean[2 * per..].iter().all(|v| v.is_finite()), "the ordinary clip stays finite");
    assert_close_nan(&got.mean, &want.mean, 1e-5, 1e-4, "latent mean");
}
