//! The recurrent cells (ops::gru, shaders/gru.wgsl) against their f64 references: neuralpredictors'
//! ConvGRU and torch.nn.GRU on random and awkward shapes (1-wide, odd, groups, unpadded, T = 1,
//! long T, large hidden sizes, a lowered loop budget), streaming in pieces and frame by frame
//! equal to the whole sequence, NaN, refusals by name, and the PyTorch goldens of
//! scripts/golden_gru.py through `vcortex eval` within 1e-5.

use std::collections::BTreeMap;

use crate::common::{assert_close, assert_close_nan, ctx, refused_param, refused_shape, refused_weights, run1, up};
use vcortex::eval::{self, Backend};
use vcortex::io::{read_safetensors, HostTensor};
use vcortex::models::StateDict;
use vcortex::ops::gru::CONV_GRU_CONVS;
use vcortex::ops::{self, ConvGru, ConvGruParams, ConvGruState, ConvGruWeights, Gru, GruState, GruWeights};
use vcortex::reference;
use vcortex::rng::SplitMix;

/// Random ConvGRU weights: N(0, 1.5² / fan_in)-like uniforms and biases in ±0.3, so the gates
/// sit away from 0 and 1.
fn conv_weights(rng: &mut SplitMix, p: ConvGruParams) -> ConvGruWeights {
    let convs: Vec<(HostTensor, HostTensor)> = CONV_GRU_CONVS
        .iter()
        .map(|name| {
            let (ws, bs) = p.conv_shapes(name);
            let fan_in = (ws[1] * ws[2] * ws[3]) as f32;
            let a = 2.5 / fan_in.sqrt();
            (
                HostTensor::new(ws.to_vec(), rng.vec(ws.iter().product(), -a, a)),
                HostTensor::new(bs.to_vec(), rng.vec(bs[0], -0.3, 0.3)),
            )
        })
        .collect();
    ConvGruWeights { params: p, convs: convs.try_into().unwrap() }
}

fn gru_weights(rng: &mut SplitMix, i: usize, h: usize, bias: bool) -> GruWeights {
    let (ai, ah) = (2.5 / (i as f32).sqrt(), 2.5 / (h as f32).sqrt());
    GruWeights {
        weight_ih: HostTensor::new(vec![3 * h, i], rng.vec(3 * h * i, -ai, ai)),
        weight_hh: HostTensor::new(vec![3 * h, h], rng.vec(3 * h * h, -ah, ah)),
        bias_ih: bias.then(|| HostTensor::new(vec![3 * h], rng.vec(3 * h, -0.3, 0.3))),
        bias_hh: bias.then(|| HostTensor::new(vec![3 * h], rng.vec(3 * h, -0.3, 0.3))),
    }
}

/// (n, c, ch, t, h, w, input_kern, rec_kern, groups, pad_input)
type ConvCase = (usize, usize, usize, usize, usize, usize, usize, usize, usize, bool);

fn check_conv(rng: &mut SplitMix, case: ConvCase, budget: Option<u64>) {
    let (n, c, ch, t, h, w, ki, kr, groups, pad_input) = case;
    let p = ConvGruParams { input_channels: c, rec_channels: ch, input_kern: ki, rec_kern: kr, groups, pad_input };
    let wts = conv_weights(rng, p);
    let xs = [n, c, t, h, w];
    let x = rng.vec(xs.iter().product(), -2.0, 2.0);
    let (want, ws, _) = reference::conv_gru(&wts, &x, &xs, None).unwrap();
    let g = ConvGru::upload(ctx(), &wts).unwrap();
    let got = run1(|rec| {
        if let Some(b) = budget {
            rec.set_loop_budget(b);
        }
        let y = ops::conv_gru(rec, &g, &up(&x, &xs))?;
        assert_eq!(y.shape(), &ws[..]);
        Ok(y)
    });
    // The gates' conv sums in f32, then T steps of a contracting recurrence.
    assert_close(&got, &want, 2e-5, 1e-4, &format!("conv_gru {case:?} budget {budget:?}"));
}

#[test]
fn conv_gru_matches_the_reference_on_awkward_shapes() {
    let mut rng = SplitMix::new(1501);
    for case in [
        (1, 1, 1, 1, 1, 1, 1, 1, 1, true),    // 1-wide everything
        (2, 3, 5, 4, 7, 9, 3, 3, 1, true),    // odd sizes
        (1, 4, 6, 3, 6, 5, 3, 5, 2, true),    // groups, larger hidden kernel
        (2, 2, 4, 3, 8, 7, 4, 3, 1, false),   // unpadded, even input kernel: the state shrinks
        (1, 3, 4, 1, 5, 5, 5, 1, 1, false),   // T = 1, 1x1 hidden kernel, 1x1 state
        (1, 2, 3, 1, 1, 9, 1, 3, 1, true),    // 1-high frames
        (1, 2, 3, 40, 4, 5, 3, 3, 1, true),   // long T
        (1, 16, 64, 2, 5, 6, 3, 3, 1, true),  // many channels
        (2, 6, 9, 3, 4, 4, 3, 3, 3, false),   // groups, unpadded
        (1, 64, 64, 2, 3, 4, 5, 5, 64, true), // depthwise-like: one channel a group
    ] {
        check_conv(&mut rng, case, None);
    }
    // The convs split past a lowered loop budget.
    check_conv(&mut rng, (1, 8, 16, 3, 5, 4, 3, 3, 1, true), Some(16));
    for _ in 0..8 {
        let groups = [1, 1, 2][rng.range(0, 2)];
        let pad_input = rng.range(0, 1) == 0;
        let ki = if pad_input { [1, 3, 5][rng.range(0, 2)] } else { rng.range(1, 5) };
        let kr = [1, 3, 5][rng.range(0, 2)];
        let case = (
            rng.range(1, 3),
            groups * rng.range(1, 4),
            groups * rng.range(1, 5),
            rng.range(1, 6),
            ki + rng.range(0, 6),
            ki + rng.range(0, 6),
            ki,
            kr,
            groups,
            pad_input,
        );
        check_conv(&mut rng, case, None);
    }
}

#[test]
fn conv_gru_streams_as_the_whole_video() {
    let mut rng = SplitMix::new(1502);
    let p =
        ConvGruParams { input_channels: 3, rec_channels: 5, input_kern: 3, rec_kern: 3, groups: 1, pad_input: false };
    let wts = conv_weights(&mut rng, p);
    let g = ConvGru::upload(ctx(), &wts).unwrap();
    let (n, c, t, h, w) = (2, 3, 6, 7, 8);
    let xs = [n, c, t, h, w];
    let x = rng.vec(xs.iter().product(), -2.0, 2.0);
    let whole = run1(|rec| ops::conv_gru(rec, &g, &up(&x, &xs)));
    let (ho, wo) = (h - 2, w - 2);
    let frame = |t0: usize, t1: usize| -> Vec<f32> {
        let mut v = Vec::new();
        for b in 0..n {
            for cc in 0..c {
                v.extend_from_slice(&x[((b * c + cc) * t + t0) * h * w..((b * c + cc) * t + t1) * h * w]);
            }
        }
        v
    };
    // Two pieces, each its own submit: the state carries over on the device.
    let mut state = ConvGruState::new();
    let a = run1(|rec| ops::conv_gru_stream(rec, &g, &mut state, &up(&frame(0, 2), &[n, c, 2, h, w])));
    let b = run1(|rec| ops::conv_gru_stream(rec, &g, &mut state, &up(&frame(2, t), &[n, c, t - 2, h, w])));
    let plane = ho * wo;
    let at = |v: &[f32], tt: usize, b: usize, cc: usize, steps: usize| -> Vec<f32> {
        v[((b * 5 + cc) * steps + tt) * plane..((b * 5 + cc) * steps + tt + 1) * plane].to_vec()
    };
    // Frame by frame, one submit each.
    let mut fstate = ConvGruState::new();
    for tt in 0..t {
        let ht = run1(|rec| ops::conv_gru_step(rec, &g, &mut fstate, &up(&frame(tt, tt + 1), &[n, c, h, w])));
        for b_ in 0..n {
            for cc in 0..5 {
                let want = at(&whole, tt, b_, cc, t);
                let piece = if tt < 2 { at(&a, tt, b_, cc, 2) } else { at(&b, tt - 2, b_, cc, t - 2) };
                assert_close(&piece, &want, 1e-6, 1e-6, &format!("conv_gru pieces, frame {tt}"));
                assert_close(
                    &ht[(b_ * 5 + cc) * plane..(b_ * 5 + cc + 1) * plane],
                    &want,
                    1e-6,
                    1e-6,
                    "conv_gru steps",
                );
            }
        }
    }
    // The state after the last frame is the last hidden state; reset starts from zero again.
    let last = state.hidden().unwrap().to_vec(ctx()).unwrap();
    let (_, _, want_last) = reference::conv_gru(&wts, &x, &xs, None).unwrap();
    assert_close(&last, &want_last, 2e-5, 1e-4, "conv_gru state");
    state.reset();
    let again = run1(|rec| ops::conv_gru_stream(rec, &g, &mut state, &up(&x, &xs)));
    assert_eq!(again, whole);
    // A state given up front: the reference from the same h0.
    let h0 = rng.vec(n * 5 * plane, -1.0, 1.0);
    let mut s0 = ConvGruState::from_hidden(up(&h0, &[n, 5, ho, wo]));
    let got = run1(|rec| ops::conv_gru_stream(rec, &g, &mut s0, &up(&x, &xs)));
    let (want, _, _) = reference::conv_gru(&wts, &x, &xs, Some(&h0)).unwrap();
    assert_close(&got, &want, 2e-5, 1e-4, "conv_gru from h0");
}

fn check_gru(rng: &mut SplitMix, (b, t, i, h, bias): (usize, usize, usize, usize, bool), budget: Option<u64>) {
    let wts = gru_weights(rng, i, h, bias);
    let g = Gru::upload(ctx(), &wts).unwrap();
    let xs = [b, t, i];
    let x = rng.vec(b * t * i, -2.0, 2.0);
    let (want, ws, want_h) = reference::gru(&wts, &x, &xs, None).unwrap();
    let mut rec = ctx().recorder();
    if let Some(bud) = budget {
        rec.set_loop_budget(bud);
    }
    let (y, hn) = ops::gru(&mut rec, &g, &up(&x, &xs)).unwrap();
    assert_eq!(y.shape(), &ws[..]);
    assert_eq!(hn.shape(), &[b, h]);
    let (hy, hh) = (rec.read_back(&y), rec.read_back(&hn));
    let done = rec.submit().unwrap();
    let what = format!("gru b{b} t{t} i{i} h{h} bias {bias} budget {budget:?}");
    assert_close(&done.f32(hy), &want, 2e-5, 1e-4, &what);
    assert_close(&done.f32(hh), &want_h, 2e-5, 1e-4, &what);
}

#[test]
fn gru_matches_the_reference_on_awkward_shapes() {
    let mut rng = SplitMix::new(1503);
    for case in [
        (1, 1, 1, 1, true),    // 1-wide
        (3, 7, 5, 4, true),    // odd
        (2, 60, 42, 20, true), // the latent model's encoder GRU
        (1, 300, 3, 2, true),  // long T
        (2, 3, 17, 256, true), // large hidden
        (4, 5, 9, 7, false),   // bias=False
        (5, 1, 1, 33, true),   // T = 1
    ] {
        check_gru(&mut rng, case, None);
    }
    // The matmuls split past a lowered loop budget.
    check_gru(&mut rng, (2, 4, 300, 40, true), Some(16));
    for _ in 0..6 {
        let case = (rng.range(1, 5), rng.range(1, 20), rng.range(1, 50), rng.range(1, 70), rng.range(0, 4) > 0);
        check_gru(&mut rng, case, None);
    }
}

#[test]
fn gru_streams_as_the_whole_sequence() {
    let mut rng = SplitMix::new(1504);
    let (b, t, i, h) = (3, 9, 6, 11);
    let wts = gru_weights(&mut rng, i, h, true);
    let g = Gru::upload(ctx(), &wts).unwrap();
    let x = rng.vec(b * t * i, -2.0, 2.0);
    let whole = run1(|rec| ops::gru(rec, &g, &up(&x, &[b, t, i])).map(|(y, _)| y));
    let rows = |t0: usize, t1: usize| -> Vec<f32> {
        (0..b).flat_map(|bi| x[(bi * t + t0) * i..(bi * t + t1) * i].to_vec()).collect()
    };
    let mut state = GruState::new();
    let a = run1(|rec| ops::gru_stream(rec, &g, &mut state, &up(&rows(0, 4), &[b, 4, i])));
    let c = run1(|rec| ops::gru_stream(rec, &g, &mut state, &up(&rows(4, t), &[b, t - 4, i])));
    let mut sstate = GruState::new();
    for tt in 0..t {
        let ht = run1(|rec| ops::gru_step(rec, &g, &mut sstate, &up(&rows(tt, tt + 1), &[b, i])));
        for bi in 0..b {
            let want = &whole[(bi * t + tt) * h..(bi * t + tt + 1) * h];
            let piece = if tt < 4 { &a[(bi * 4 + tt) * h..][..h] } else { &c[(bi * (t - 4) + tt - 4) * h..][..h] };
            assert_close(piece, want, 1e-6, 1e-6, &format!("gru pieces, step {tt}"));
            assert_close(&ht[bi * h..(bi + 1) * h], want, 1e-6, 1e-6, &format!("gru steps, step {tt}"));
        }
    }
    // From a given h0, as the reference.
    let h0 = rng.vec(b * h, -1.0, 1.0);
    let mut s0 = GruState::from_hidden(up(&h0, &[b, h]));
    let got = run1(|rec| ops::gru_stream(rec, &g, &mut s0, &up(&x, &[b, t, i])));
    let (want, _, want_h) = reference::gru(&wts, &x, &[b, t, i], Some(&h0)).unwrap();
    assert_close(&got, &want, 2e-5, 1e-4, "gru from h0");
    assert_close(&s0.hidden().unwrap().to_vec(ctx()).unwrap(), &want_h, 2e-5, 1e-4, "gru h_n from h0");
}

#[test]
fn recurrent_cells_propagate_nan_as_pytorch() {
    let mut rng = SplitMix::new(1505);
    // ConvGRU: a NaN pixel in frame 1 of image 0 spreads through the convs frame by frame
    // (NaN from then on within reach of the kernels); image 1 stays finite; ±Inf inputs saturate.
    let p = ConvGruParams::new(2, 3, 3, 3);
    let wts = conv_weights(&mut rng, p);
    let g = ConvGru::upload(ctx(), &wts).unwrap();
    let xs = [2, 2, 4, 6, 6];
    let mut x = rng.vec(xs.iter().product(), -2.0, 2.0);
    x[(4 + 1) * 36 + 2 * 6 + 3] = f32::NAN; // image 0, channel 1, frame 1
    x[((2 + 1) * 4 + 2) * 36 + 7] = f32::INFINITY; // image 1, channel 1, frame 2
    x[((2 + 1) * 4 + 3) * 36 + 20] = f32::NEG_INFINITY;
    let (want, _, _) = reference::conv_gru(&wts, &x, &xs, None).unwrap();
    assert!(want.iter().any(|v| v.is_nan()) && want.iter().any(|v| v.is_finite()));
    let got = run1(|rec| ops::conv_gru(rec, &g, &up(&x, &xs)));
    assert_close_nan(&got, &want, 2e-5, 1e-4, "conv_gru NaN");
    // GRU: a NaN in step 2 of sequence 0 makes its every later hidden unit NaN; sequence 1 is finite.
    let (b, t, i, h) = (2, 5, 3, 4);
    let wts = gru_weights(&mut rng, i, h, true);
    let g = Gru::upload(ctx(), &wts).unwrap();
    let mut x = rng.vec(b * t * i, -2.0, 2.0);
    x[2 * i + 1] = f32::NAN;
    x[(t + 1) * i] = f32::INFINITY;
    let (want, _, _) = reference::gru(&wts, &x, &[b, t, i], None).unwrap();
    assert!(want[..2 * h].iter().all(|v| v.is_finite()) && want[2 * h..t * h].iter().all(|v| v.is_nan()));
    assert!(want[t * h..].iter().all(|v| v.is_finite()));
    let got = run1(|rec| ops::gru(rec, &g, &up(&x, &[b, t, i])).map(|(y, _)| y));
    assert_close_nan(&got, &want, 2e-5, 1e-4, "gru NaN");
}

#[test]
fn recurrent_cells_refuse_bad_input_by_name() {
    let mut rng = SplitMix::new(1506);
    let p = ConvGruParams::new(2, 4, 3, 3);
    let wts = conv_weights(&mut rng, p);
    let g = ConvGru::upload(ctx(), &wts).unwrap();
    let mut rec = ctx().recorder();
    let x4 = up(&[0.0; 2 * 36], &[1, 2, 6, 6]);
    refused_shape(ops::conv_gru(&mut rec, &g, &x4), "conv_gru", "input");
    refused_shape(ops::conv_gru(&mut rec, &g, &up(&[0.0; 3 * 36], &[1, 3, 1, 6, 6])), "conv_gru", "input");
    refused_shape(
        ops::conv_gru_step(&mut rec, &g, &mut ConvGruState::new(), &up(&[0.0; 72], &[1, 2, 1, 6, 6])),
        "conv_gru",
        "input",
    );
    // A state of another size, and the state left as it was.
    let mut state = ConvGruState::from_hidden(up(&[0.0; 4 * 25], &[1, 4, 5, 5]));
    refused_shape(
        ops::conv_gru_stream(&mut rec, &g, &mut state, &up(&[0.0; 72], &[1, 2, 1, 6, 6])),
        "conv_gru",
        "state",
    );
    assert_eq!(state.hidden().unwrap().shape(), &[1, 4, 5, 5]);
    assert_eq!(rec.dispatch_count(), 0, "a refusal records nothing");
    // Unpadded frames no larger than the kernel.
    let pu = ConvGruParams { pad_input: false, ..ConvGruParams::new(2, 4, 5, 3) };
    let gu = ConvGru::upload(ctx(), &conv_weights(&mut rng, pu)).unwrap();
    refused_shape(ops::conv_gru(&mut rec, &gu, &up(&[0.0; 2 * 20], &[1, 2, 1, 4, 5])), "conv_gru", "input");
    // Parameters upstream cannot run.
    for (q, name) in [
        (ConvGruParams::new(2, 4, 3, 4), "rec_kern"),
        (ConvGruParams::new(2, 4, 2, 3), "input_kern"),
        (ConvGruParams { groups: 3, ..ConvGruParams::new(3, 4, 3, 3) }, "groups"),
        (ConvGruParams::new(2, 0, 3, 3), "rec_channels"),
        (ConvGruParams { groups: 0, ..p }, "groups"),
    ] {
        refused_param(q.validate(), "conv_gru", name);
        refused_param(ConvGruWeights::take(&mut StateDict::new("w", BTreeMap::new()), "gru", q), "conv_gru", name);
    }
    // Weights: mis-shaped by hand, or a state-dict key missing or mis-shaped.
    let mut bad = wts.clone();
    bad.convs[4].0 = HostTensor::new(vec![4, 4, 5, 5], vec![0.0; 400]);
    refused_shape(ConvGru::upload(ctx(), &bad).map(|_| ()), "conv_gru", "update_gate_hidden.weight");
    let mut sd: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (name, (w, b)) in CONV_GRU_CONVS.iter().zip(&wts.convs) {
        sd.insert(format!("gru.{name}.weight"), w.clone());
        sd.insert(format!("gru.{name}.bias"), b.clone());
    }
    ConvGru::load(ctx(), &sd, "gru", p).unwrap();
    let mut missing = sd.clone();
    missing.remove("gru.out_gate_hidden.bias");
    refused_weights(ConvGru::load(ctx(), &missing, "gru", p).map(|_| ()), "gru.out_gate_hidden.bias");
    refused_weights(
        ConvGru::load(ctx(), &sd, "gru", ConvGruParams::new(2, 4, 5, 3)).map(|_| ()),
        "gru.reset_gate_input.weight",
    );

    // torch.nn.GRU.
    let gw = gru_weights(&mut rng, 3, 4, true);
    let gr = Gru::upload(ctx(), &gw).unwrap();
    refused_shape(ops::gru(&mut rec, &gr, &up(&[0.0; 6], &[2, 3])), "gru", "input");
    refused_shape(ops::gru(&mut rec, &gr, &up(&[0.0; 8], &[1, 2, 4])), "gru", "input");
    refused_shape(ops::gru_step(&mut rec, &gr, &mut GruState::new(), &up(&[0.0; 6], &[1, 2, 3])), "gru", "input");
    let mut gs = GruState::from_hidden(up(&[0.0; 4], &[1, 4]));
    refused_shape(ops::gru_stream(&mut rec, &gr, &mut gs, &up(&[0.0; 12], &[2, 2, 3])), "gru", "state");
    assert_eq!(gs.hidden().unwrap().shape(), &[1, 4]);
    assert_eq!(rec.dispatch_count(), 0, "a refusal records nothing");
    let mut bad = gw.clone();
    bad.weight_hh = HostTensor::new(vec![12, 3], vec![0.0; 36]);
    refused_shape(Gru::upload(ctx(), &bad).map(|_| ()), "gru", "weight_hh");
    let mut bad = gw.clone();
    bad.bias_hh = None;
    refused_param(Gru::upload(ctx(), &bad).map(|_| ()), "gru", "bias");
    let mut sd: BTreeMap<String, HostTensor> = BTreeMap::new();
    sd.insert("rnn.weight_ih_l0".into(), gw.weight_ih.clone());
    sd.insert("rnn.weight_hh_l0".into(), gw.weight_hh.clone());
    sd.insert("rnn.bias_ih_l0".into(), gw.bias_ih.clone().unwrap());
    refused_weights(Gru::load(ctx(), &sd, "rnn").map(|_| ()), "rnn.bias_hh_l0");
    sd.insert("rnn.bias_hh_l0".into(), gw.bias_hh.clone().unwrap());
    Gru::load(ctx(), &sd, "rnn").unwrap();
    refused_weights(Gru::load(ctx(), &sd, "encoder").map(|_| ()), "encoder.weight_ih_l0");
    let mut nan = sd.clone();
    nan.get_mut("rnn.weight_hh_l0").unwrap().data[3] = f32::NAN;
    refused_weights(Gru::load(ctx(), &nan, "rnn").map(|_| ()), "rnn.weight_hh_l0");
    // A second layer's keys are left for the caller's `finish` to refuse.
    sd.insert("rnn.weight_ih_l1".into(), gw.weight_hh.clone());
    let mut sdict = StateDict::borrowed("weights", &sd);
    GruWeights::take(&mut sdict, "rnn").unwrap();
    refused_weights(sdict.finish(), "rnn.weight_ih_l1");
}

/// The PyTorch goldens (scripts/golden_gru.py) through `vcortex eval`, on the GPU and on the CPU
/// reference, within 1e-5 (+ 1e-5 relative).
#[test]
fn recurrent_goldens_match_pytorch() {
    let dir = crate::common::data_dir("gru");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("kernels-tests/data/gru")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().is_some_and(|s| s.ends_with(".case.safetensors")))
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 4, "the four committed cases");
    let out_dir = std::env::temp_dir().join(format!("vcortex-gru-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    for case in &cases {
        let name = case.file_name().unwrap().to_str().unwrap().replace(".case.safetensors", "");
        let want = read_safetensors(&dir.join(format!("{name}.expected.safetensors"))).unwrap();
        for (backend, label) in [(Backend::Gpu(ctx()), "gpu"), (Backend::Cpu, "cpu")] {
            let out = out_dir.join(format!("{name}.{label}.safetensors"));
            eval::eval_file(case, &out, &backend).unwrap_or_else(|e| panic!("{label} {name}: {e}"));
            let got = read_safetensors(&out).unwrap();
            assert_eq!(got.tensors.keys().collect::<Vec<_>>(), want.tensors.keys().collect::<Vec<_>>());
            for (k, w) in &want.tensors {
                assert_eq!(got.tensors[k].shape, w.shape, "{label} {name} {k}");
                assert_close(&got.tensors[k].data, &w.data, 1e-5, 1e-5, &format!("{label} {name} {k}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}
