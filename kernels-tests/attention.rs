//! Softmax, A·Bᵀ and multi-head attention (shaders/attention.wgsl + matmul) against the reference.

use crate::common::{assert_close, ctx, refused_param, refused_shape, refused_weights, run1, up};
use vcortex::ops;
use vcortex::reference::matmul as rm;
use vcortex::rng::SplitMix;

#[test]
fn softmax_rows_of_any_length_and_magnitude() {
    let mut rng = SplitMix::new(81);
    for (rows, len, scale) in [(1usize, 1usize, 1.0f32), (7, 61, 0.125), (3, 300, 1.0), (2, 1000, 30.0)] {
        let x = rng.vec(rows * len, -5.0, 5.0);
        let got = run1(|rec| ops::softmax(rec, &up(&x, &[rows, len]), scale));
        assert_close(
            &got,
            &rm::softmax(&x, &[x.len() / len, len], scale).unwrap(),
            1e-6,
            1e-4,
            &format!("softmax {rows}x{len} scale {scale}"),
        );
        for r in got.chunks(len) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }
}

/// One row of 6,000,000 elements: one workgroup's three strided loops would run 3 x 23,438
/// iterations per invocation, past lavapipe's 65,535; the op slices the row across workgroups.
#[test]
fn softmax_over_a_row_past_the_loop_budget() {
    let mut rng = SplitMix::new(82);
    let len = 6_000_000;
    let x = rng.vec(len, -8.0, 8.0);
    let got = run1(|rec| ops::softmax(rec, &up(&x, &[1, len]), 1.5));
    assert_close(&got, &rm::softmax(&x, &[x.len() / len, len], 1.5).unwrap(), 1e-9, 2e-3, "softmax [1, 6000000]");
}

/// Random odd shapes under small loop budgets: every split against the reference.
#[test]
fn softmax_split_paths_under_small_budgets() {
    let mut rng = SplitMix::new(83);
    for case in 0..20 {
        let (budget, len, rows) = crate::common::row_split_case(&mut rng, case);
        let x = rng.vec(rows * len, -20.0, 20.0);
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            ops::softmax(rec, &up(&x, &[rows, len]), 0.7)
        });
        assert_close(
            &got,
            &rm::softmax(&x, &[x.len() / len, len], 0.7).unwrap(),
            1e-7,
            1e-3,
            &format!("softmax {rows}x{len} budget {budget}"),
        );
    }
}

/// A NaN or +Inf in a row makes the row NaN; -Inf gives 0 there (as PyTorch), on both paths.
#[test]
fn softmax_propagates_nan_and_inf() {
    let mut rng = SplitMix::new(84);
    for (len, budget) in [(700usize, crate::common::budget()), (5000, 16)] {
        let mut x = rng.vec(4 * len, -3.0, 3.0);
        x[5] = f32::NAN;
        x[len + 7] = f32::INFINITY;
        x[2 * len + 9] = f32::NEG_INFINITY;
        let want = rm::softmax(&x, &[x.len() / len, len], 1.0).unwrap();
        assert!(want[..2 * len].iter().all(|v| v.is_nan()) && want[2 * len + 9] == 0.0);
        let got = run1(|rec| {
            rec.set_loop_budget(budget);
            ops::softmax(rec, &up(&x, &[4, len]), 1.0)
        });
        crate::common::assert_close_nan(&got, &want, 1e-7, 1e-3, &format!("softmax NaN/Inf rows of {len}"));
    }
}

#[test]
fn matmul_nt_matches() {
    let mut rng = SplitMix::new(82);
    for (b, m, n, k) in [(1usize, 1usize, 1usize, 1usize), (3, 17, 13, 8), (2, 130, 61, 33)] {
        let (a, bt) = (rng.vec(b * m * k, -1.0, 1.0), rng.vec(b * n * k, -1.0, 1.0));
        // B transposed to [K, N] per batch for the reference.
        let mut bk = vec![0f32; b * k * n];
        for bi in 0..b {
            for i in 0..n {
                for j in 0..k {
                    bk[bi * k * n + j * n + i] = bt[bi * n * k + i * k + j];
                }
            }
        }
        let want = rm::matmul(&a, &[b, m, k], &bk, &[b, k, n]).unwrap().0;
        let got = run1(|rec| ops::matmul_nt(rec, &up(&a, &[b, m, k]), &up(&bt, &[b, n, k])));
        assert_close(&got, &want, 1e-4, 1e-4, &format!("matmul_nt {b}x{m}x{n}x{k}"));
    }
}

#[test]
fn multi_head_attention() {
    let mut rng = SplitMix::new(83);
    for (b, f, e, heads) in [(1usize, 1usize, 4usize, 1usize), (2, 61, 32, 4), (3, 7, 12, 3)] {
        let (q, k, v) = (rng.vec(b * f * e, -1.0, 1.0), rng.vec(b * f * e, -1.0, 1.0), rng.vec(b * f * e, -1.0, 1.0));
        let want = rm::attention(&q, &k, &v, &[b, f, e], heads).unwrap();
        let got = run1(|rec| ops::attention(rec, &up(&q, &[b, f, e]), &up(&k, &[b, f, e]), &up(&v, &[b, f, e]), heads));
        assert_close(&got, &want, 1e-5, 1e-4, &format!("attention b {b} f {f} e {e} heads {heads}"));
    }
    let x = up(&[0.0; 24], &[1, 2, 12]);
    refused_param(ops::attention(&mut ctx().recorder(), &x, &x, &x, 5), "attention", "heads");
    refused_shape(ops::attention(&mut ctx().recorder(), &x, &x, &up(&[0.0; 12], &[1, 1, 12]), 3), "attention", "v");
}

#[test]
fn residual_add() {
    let mut rng = SplitMix::new(84);
    let (a, b) = (rng.vec(1001, -2.0, 2.0), rng.vec(1001, -2.0, 2.0));
    let got = run1(|rec| ops::add(rec, &up(&a, &[1001]), &up(&b, &[1001]), ops::Activation::Relu));
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| (x + y).max(0.0)).collect();
    assert_close(&got, &want, 1e-6, 1e-6, "add");
    refused_shape(
        ops::add(&mut ctx().recorder(), &up(&a, &[1001]), &up(&b[..1000], &[1000]), ops::Activation::Identity),
        "add",
        "b",
    );
    // mul: act(a * b + offset), the modulator's gain before the output nonlinearity.
    let got = run1(|rec| ops::mul(rec, &up(&a, &[1001]), &up(&b, &[1001]), 0.3, ops::Activation::Elu1));
    let want = vcortex::reference::activation(
        &a.iter().zip(&b).map(|(x, y)| x * y + 0.3).collect::<Vec<f32>>(),
        ops::Activation::Elu1,
    );
    assert_close(&got, &want, 1e-5, 1e-5, "mul");
    refused_param(
        ops::mul(&mut ctx().recorder(), &up(&a, &[1001]), &up(&b, &[1001]), f32::NAN, ops::Activation::Identity),
        "mul",
        "offset",
    );
}

/// A post-LN transformer encoder layer with PyTorch's key names, against the composed references.
#[test]
fn transformer_encoder_layer() {
    use std::collections::BTreeMap;
    use vcortex::io::HostTensor;
    use vcortex::models::transformer::{reference_encoder_layer, EncoderLayer};
    let mut rng = SplitMix::new(85);
    let (b, f, e, heads, hidden) = (2usize, 9usize, 16usize, 4usize, 32usize);
    let mut sd = BTreeMap::new();
    let s = 1.0 / (e as f32).sqrt();
    for (k, shape, lo, hi) in [
        ("self_attn.in_proj_weight", vec![3 * e, e], -s, s),
        ("self_attn.in_proj_bias", vec![3 * e], -0.1, 0.1),
        ("self_attn.out_proj.weight", vec![e, e], -s, s),
        ("self_attn.out_proj.bias", vec![e], -0.1, 0.1),
        ("linear1.weight", vec![hidden, e], -s, s),
        ("linear1.bias", vec![hidden], -0.1, 0.1),
        ("linear2.weight", vec![e, hidden], -0.2, 0.2),
        ("linear2.bias", vec![e], -0.1, 0.1),
        ("norm1.weight", vec![e], 0.8, 1.2),
        ("norm1.bias", vec![e], -0.1, 0.1),
        ("norm2.weight", vec![e], 0.8, 1.2),
        ("norm2.bias", vec![e], -0.1, 0.1),
    ] {
        let n = shape.iter().product();
        sd.insert(format!("layers.0.{k}"), HostTensor::new(shape, rng.vec(n, lo, hi)));
    }
    let x = rng.vec(b * f * e, -1.0, 1.0);
    let layer = EncoderLayer::load(ctx(), &sd, "layers.0", e, heads, 1e-5).unwrap();
    let got = run1(|rec| layer.record(rec, &up(&x, &[b, f, e])));
    let want = reference_encoder_layer(&sd, "layers.0", &x, b, f, e, heads, 1e-5).unwrap();
    assert_close(&got, &want, 1e-4, 1e-4, "encoder layer");
    let mut bad = sd.clone();
    bad.remove("layers.0.norm2.bias");
    refused_weights(EncoderLayer::load(ctx(), &bad, "layers.0", e, heads, 1e-5), "layers.0.norm2.bias");
    refused_param(EncoderLayer::load(ctx(), &sd, "layers.0", e, 5, 1e-5), "encoder_layer", "heads");
}

/// PyTorch's own nn.TransformerEncoderLayer (scripts/golden_transformer.py, data/transformer).
#[test]
fn transformer_encoder_layer_matches_pytorch() {
    use vcortex::io::{read_safetensors, read_weights};
    use vcortex::models::transformer::EncoderLayer;
    let dir = crate::common::data_dir("transformer");
    let sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
    let io = read_safetensors(&dir.join("io.safetensors")).unwrap().tensors;
    let (x, want) = (&io["input"], &io["output"]);
    let layer = EncoderLayer::load(ctx(), &sd, "layers.0", 16, 4, 1e-5).unwrap();
    let got = run1(|rec| layer.record(rec, &up(&x.data, &x.shape)));
    assert_close(&got, &want.data, 1e-4, 1e-4, "encoder layer vs PyTorch");
}

/// The MDM-style denoiser against its PyTorch golden (scripts/golden_mdm.py, data/mdm).
#[test]
fn mdm_denoiser_matches_pytorch() {
    use vcortex::io::{read_safetensors, read_weights};
    use vcortex::models::mdm::{Mdm, MdmConfig};
    let dir = crate::common::data_dir("mdm");
    let sd = read_weights(&dir.join("weights.safetensors")).unwrap().tensors;
    let io = read_safetensors(&dir.join("io.safetensors")).unwrap();
    let t: usize = io.metadata["timestep"].parse().unwrap();
    let (x, want) = (&io.tensors["x"], &io.tensors["output"]);
    let cfg = MdmConfig { features: 51, latent: 32, heads: 4, layers: 2, max_len: 64 };
    let m = Mdm::load(ctx(), &sd, cfg).unwrap();
    let got = run1(|rec| m.record(rec, &up(&x.data, &x.shape), t));
    assert_close(&got, &want.data, 1e-4, 1e-4, "MDM denoiser vs PyTorch");
    // Refusals: wrong feature count, a timestep past the table, frames past it, a missing key.
    refused_shape(m.record(&mut ctx().recorder(), &up(&[0.0; 50], &[1, 1, 50]), t), "mdm", "x");
    refused_param(m.record(&mut ctx().recorder(), &up(&x.data, &x.shape), 64), "mdm", "timestep");
    let e = refused_param(m.record(&mut ctx().recorder(), &up(&vec![0.0; 64 * 51], &[1, 64, 51]), t), "mdm", "frames");
    assert!(e.to_string().contains("64 frames"), "{e}");
    let mut bad = sd.clone();
    bad.remove("embed_timestep.2.bias");
    refused_weights(Mdm::load(ctx(), &bad, cfg), "embed_timestep.2.bias");
}

/// The MDM sequence kernels against plain loops on awkward sizes: a token per sample or a table
/// row for all, the positional encoding added, and the first token dropped again.
#[test]
fn prepend_and_drop_token() {
    let mut rng = SplitMix::new(85);
    for (s, f, e, rows, row) in [
        (1usize, 1usize, 1usize, 1usize, None),
        (3, 7, 5, 3, None),
        (2, 9, 12, 13, Some(12usize)),
        (4, 1, 3, 2, Some(0)),
    ] {
        let (x, tok, pe) =
            (rng.vec(s * f * e, -1.0, 1.0), rng.vec(rows * e, -1.0, 1.0), rng.vec((f + 3) * e, -1.0, 1.0));
        let mut want = vec![0f32; s * (f + 1) * e];
        for si in 0..s {
            for p in 0..=f {
                for d in 0..e {
                    let v = if p == 0 { tok[row.unwrap_or(si) * e + d] } else { x[(si * f + p - 1) * e + d] };
                    want[(si * (f + 1) + p) * e + d] = v + pe[p * e + d];
                }
            }
        }
        let (xt, tt, pt) = (up(&x, &[s, f, e]), up(&tok, &[rows, e]), up(&pe, &[f + 3, e]));
        let got = run1(|rec| ops::attention::prepend_token(rec, &xt, &tt, row, &pt));
        assert_close(&got, &want, 0.0, 1e-6, &format!("prepend_token s {s} f {f} e {e} row {row:?}"));
        let back = run1(|rec| ops::attention::drop_token(rec, &up(&want, &[s, f + 1, e])));
        let want_back: Vec<f32> = (0..s * f * e)
            .map(|i| {
                let (si, r) = (i / (f * e), i % (f * e));
                want[si * (f + 1) * e + e + r]
            })
            .collect();
        assert_close(&back, &want_back, 0.0, 0.0, "drop_token");
    }
    let mut rec = ctx().recorder();
    let (x, tok, pe) = (up(&[0.0; 2 * 3 * 4], &[2, 3, 4]), up(&[0.0; 5 * 4], &[5, 4]), up(&[0.0; 4 * 4], &[4, 4]));
    refused_shape(ops::attention::prepend_token(&mut rec, &x, &tok, None, &pe), "prepend_token", "token"); // 5 tokens for 2 samples
    refused_shape(ops::attention::prepend_token(&mut rec, &x, &tok, Some(5), &pe), "prepend_token", "token table"); // row past the table
    refused_shape(
        ops::attention::prepend_token(&mut rec, &x, &tok, Some(1), &up(&[0.0; 12], &[3, 4])),
        "prepend_token",
        "positional encoding",
    ); // pe too short
    assert_eq!(rec.dispatch_count(), 0);
}
