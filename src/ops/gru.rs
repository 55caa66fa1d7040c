//! Recurrent cells (docs/ops.md, "Recurrent cells"): neuralpredictors' convolutional GRU
//! (`ConvGRUCell`, run over a video as `GRU_Module` does) and PyTorch's `torch.nn.GRU` (one layer,
//! batch first). The convolutions run on [`conv2d`](super::conv2d) and the matmuls on
//! [`linear`](super::linear); the gates are fused elementwise kernels (`shaders/gru.wgsl`).
//!
//! Both keep their hidden state on the device in a state struct ([`ConvGruState`], [`GruState`]),
//! so a caller can feed a sequence in pieces, or frame by frame, and get what the whole sequence
//! gives.

use std::collections::BTreeMap;

use super::{Activation, Conv2dParams, Epilogue};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::runtime::{Access, Context, PipelineKey, Recorder};
use crate::shaders::overrides::gru as ov;
use crate::tensor::{DType, Tensor};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GruParams {
    total: u32,
    ch: u32,
    hw: u32,
    cpg: u32,
    t: u32,
    steps: u32,
    _pad: [u32; 2],
}

// ------------------------------------------------------------------------------------ ConvGRU

/// The sizes of a `ConvGRUCell` (neuralpredictors' argument names): `input_channels` →
/// `rec_channels` hidden channels, square kernels `input_kern` (on the input frame) and
/// `rec_kern` (on the hidden state), `groups` for all six convolutions, and `pad_input`: the input
/// convs padded by `input_kern / 2` (true, upstream's default) or not padded, so that the state is
/// `input_kern − 1` smaller than the frame. The hidden convs are padded by `rec_kern / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGruParams {
    pub input_channels: usize,
    pub rec_channels: usize,
    pub input_kern: usize,
    pub rec_kern: usize,
    pub groups: usize,
    pub pad_input: bool,
}

impl ConvGruParams {
    /// A cell with one group and padded input convs (upstream's defaults).
    pub fn new(input_channels: usize, rec_channels: usize, input_kern: usize, rec_kern: usize) -> Self {
        ConvGruParams { input_channels, rec_channels, input_kern, rec_kern, groups: 1, pad_input: true }
    }

    /// Refuses sizes the upstream cell cannot run, by name: zero sizes, channels that the groups
    /// do not divide, an even `rec_kern` (padded by rec_kern / 2 it grows the state, and PyTorch
    /// fails to add the gates), an even `input_kern` with `pad_input` (likewise).
    pub fn validate(&self) -> Result<()> {
        const OP: &str = "conv_gru";
        for (name, v) in [
            ("input_channels", self.input_channels),
            ("rec_channels", self.rec_channels),
            ("input_kern", self.input_kern),
            ("rec_kern", self.rec_kern),
            ("groups", self.groups),
        ] {
            if v == 0 {
                return Err(Error::param(OP, name, "must be >= 1"));
            }
            super::geometry(OP, name, &[v])?;
        }
        let g = self.groups;
        for (what, c) in [("input_channels", self.input_channels), ("rec_channels", self.rec_channels)] {
            if c % g != 0 {
                return Err(Error::param(OP, "groups", format!("{what} {c} are not divisible by groups {g}")));
            }
        }
        if self.rec_kern.is_multiple_of(2) {
            return Err(Error::param(
                OP,
                "rec_kern",
                format!("{} is even: padded by rec_kern / 2 it would grow the hidden state", self.rec_kern),
            ));
        }
        if self.pad_input && self.input_kern.is_multiple_of(2) {
            return Err(Error::param(
                OP,
                "input_kern",
                format!("{} is even: with pad_input it would make the gates larger than the state", self.input_kern),
            ));
        }
        Ok(())
    }

    fn input_conv(&self) -> Conv2dParams {
        let p = if self.pad_input { self.input_kern / 2 } else { 0 };
        Conv2dParams::default().with_padding(p, p).with_groups(self.groups)
    }

    fn rec_conv(&self) -> Conv2dParams {
        Conv2dParams::default().with_padding(self.rec_kern / 2, self.rec_kern / 2).with_groups(self.groups)
    }

    /// The shapes of one conv's weight and bias, by its name in [`CONV_GRU_CONVS`].
    pub fn conv_shapes(&self, name: &str) -> ([usize; 4], [usize; 1]) {
        let (ci, k) = if name.ends_with("_input") {
            (self.input_channels, self.input_kern)
        } else {
            (self.rec_channels, self.rec_kern)
        };
        ([self.rec_channels, ci / self.groups.max(1), k, k], [self.rec_channels])
    }
}

/// The six convolutions of a `ConvGRUCell`, by their attribute names; each has `.weight` and
/// `.bias` (all six carry a bias, PyTorch's default). This is also the order of
/// [`ConvGruWeights::convs`].
pub const CONV_GRU_CONVS: [&str; 6] = [
    "reset_gate_input",
    "update_gate_input",
    "out_gate_input",
    "reset_gate_hidden",
    "update_gate_hidden",
    "out_gate_hidden",
];

/// A `ConvGRUCell`'s weights on the host: (weight, bias) of each conv of [`CONV_GRU_CONVS`].
#[derive(Clone, Debug)]
pub struct ConvGruWeights {
    pub params: ConvGruParams,
    pub convs: [(HostTensor, HostTensor); 6],
}

/// `{prefix}.{name}`, or `name` for an empty prefix.
fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

impl ConvGruWeights {
    /// Takes `{prefix}.{conv}.weight` and `{prefix}.{conv}.bias` for every conv of
    /// [`CONV_GRU_CONVS`] (the cell's own state dict with prefix "", a `GRU_Module`'s with prefix
    /// "gru"), each checked by the state dict (present, shaped as `params` says, finite).
    pub fn take(sd: &mut StateDict, prefix: &str, params: ConvGruParams) -> Result<ConvGruWeights> {
        params.validate()?;
        let mut convs = Vec::with_capacity(6);
        for name in CONV_GRU_CONVS {
            let (ws, bs) = params.conv_shapes(name);
            let w = sd.take(&key(prefix, &format!("{name}.weight")), &ws)?;
            let b = sd.take(&key(prefix, &format!("{name}.bias")), &bs)?;
            convs.push((w, b));
        }
        let convs: [(HostTensor, HostTensor); 6] = convs.try_into().expect("six convs");
        Ok(ConvGruWeights { params, convs })
    }

    /// The conv named `name` (of [`CONV_GRU_CONVS`]).
    pub fn conv(&self, name: &str) -> Option<&(HostTensor, HostTensor)> {
        CONV_GRU_CONVS.iter().position(|&n| n == name).map(|i| &self.convs[i])
    }

    /// Checks every tensor's shape against `params` (weights built by hand, not by [`take`](Self::take)).
    pub(crate) fn check(&self) -> Result<()> {
        self.params.validate()?;
        for (name, (w, b)) in CONV_GRU_CONVS.iter().zip(&self.convs) {
            let (ws, bs) = self.params.conv_shapes(name);
            if w.shape != ws {
                return Err(Error::shape("conv_gru", format!("{name}.weight"), &w.shape, format!("{ws:?}")));
            }
            if b.shape != bs {
                return Err(Error::shape("conv_gru", format!("{name}.bias"), &b.shape, format!("{bs:?}")));
            }
            for (t, what) in [(w, "weight"), (b, "bias")] {
                crate::reference::check_len("conv_gru", &format!("{name}.{what}"), &t.data, &t.shape)?;
            }
        }
        Ok(())
    }
}

/// Stacks the output channels (rows of `per` values) of `parts`, each with `groups` groups of
/// `cpg` channels, group-major: for group g, part 0's channels of g, part 1's, … (so that one
/// grouped conv computes every part; shaders/gru.wgsl reads them this way).
fn stack_grouped(parts: &[&[f32]], groups: usize, cpg: usize, per: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(parts.len() * groups * cpg * per);
    for g in 0..groups {
        for p in parts {
            out.extend_from_slice(&p[g * cpg * per..(g + 1) * cpg * per]);
        }
    }
    out
}

/// A `ConvGRUCell` on the device: the three input convs stacked into one (reset, update, out),
/// the reset and update hidden convs into another, and the out gate's hidden conv.
pub struct ConvGru {
    params: ConvGruParams,
    wx: Tensor,
    bx: Tensor,
    wh: Tensor,
    bh: Tensor,
    wo: Tensor,
    bo: Tensor,
}

impl ConvGru {
    /// Uploads host weights, stacking the convs that share an input.
    pub fn upload(ctx: &Context, w: &ConvGruWeights) -> Result<ConvGru> {
        w.check()?;
        let p = w.params;
        let (g, cpg) = (p.groups, p.rec_channels / p.groups);
        let d = |i: usize| (&w.convs[i].0.data[..], &w.convs[i].1.data[..]);
        let (ri, ui, oi, rh, uh, oh) = (d(0), d(1), d(2), d(3), d(4), d(5));
        let per_x = (p.input_channels / g) * p.input_kern * p.input_kern;
        let per_h = cpg * p.rec_kern * p.rec_kern;
        let (ki, kr, ch) = (p.input_kern, p.rec_kern, p.rec_channels);
        let wx = stack_grouped(&[ri.0, ui.0, oi.0], g, cpg, per_x);
        let bx = stack_grouped(&[ri.1, ui.1, oi.1], g, cpg, 1);
        let wh = stack_grouped(&[rh.0, uh.0], g, cpg, per_h);
        let bh = stack_grouped(&[rh.1, uh.1], g, cpg, 1);
        Ok(ConvGru {
            params: p,
            wx: Tensor::from_f32(ctx, &wx, &[3 * ch, p.input_channels / g, ki, ki])?,
            bx: Tensor::from_f32(ctx, &bx, &[3 * ch])?,
            wh: Tensor::from_f32(ctx, &wh, &[2 * ch, cpg, kr, kr])?,
            bh: Tensor::from_f32(ctx, &bh, &[2 * ch])?,
            wo: Tensor::from_f32(ctx, oh.0, &[ch, cpg, kr, kr])?,
            bo: Tensor::from_f32(ctx, oh.1, &[ch])?,
        })
    }

    /// Reads `{prefix}.*` of `tensors` (see [`ConvGruWeights::take`]; other keys are left alone)
    /// and uploads it.
    pub fn load(
        ctx: &Context,
        tensors: &BTreeMap<String, HostTensor>,
        prefix: &str,
        params: ConvGruParams,
    ) -> Result<ConvGru> {
        let w = ConvGruWeights::take(&mut StateDict::borrowed("weights", tensors), prefix, params)?;
        Self::upload(ctx, &w)
    }

    pub fn params(&self) -> &ConvGruParams {
        &self.params
    }
}

/// The sizes of a ConvGRU run, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGruShape {
    pub n: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
    /// The hidden state's plane: the frame's, or `input_kern − 1` smaller without `pad_input`.
    pub ho: usize,
    pub wo: usize,
}

/// Checks a video [N, C, T, H, W] (`video`) or one frame [N, C, H, W] against the cell's
/// parameters; shared by the op and the CPU reference.
pub fn conv_gru_shape(p: &ConvGruParams, xs: &[usize], video: bool) -> Result<ConvGruShape> {
    const OP: &str = "conv_gru";
    p.validate()?;
    let (n, c, t, h, w) = match (video, xs) {
        (true, &[n, c, t, h, w]) => (n, c, t, h, w),
        (false, &[n, c, h, w]) => (n, c, 1, h, w),
        _ => return Err(Error::shape(OP, "input", xs, if video { "[N, C, T, H, W]" } else { "[N, C, H, W]" })),
    };
    crate::tensor::numel(OP, "input", xs)?;
    if c != p.input_channels {
        return Err(Error::shape(OP, "input", xs, format!("{} input channels (input_channels)", p.input_channels)));
    }
    let shrink = if p.pad_input { 0 } else { p.input_kern - 1 };
    if h <= shrink || w <= shrink {
        return Err(Error::shape(
            OP,
            "input",
            xs,
            format!("frames larger than input_kern {} (unpadded)", p.input_kern),
        ));
    }
    let (ho, wo) = (h - shrink, w - shrink);
    crate::tensor::numel(OP, "output", &[n, p.rec_channels, t, ho, wo])?;
    crate::tensor::numel(OP, "input gates", &[n, t, 3 * p.rec_channels, ho, wo])?;
    Ok(ConvGruShape { n, t, h, w, ho, wo })
}

/// The hidden state of a ConvGRU between calls, on the device: none yet (zeros, upstream's
/// `prev_state = None`), or h [N, rec_channels, H', W'] after the last frame fed.
#[derive(Clone, Debug, Default)]
pub struct ConvGruState {
    h: Option<Tensor>,
}

impl ConvGruState {
    /// A fresh state: the next frame starts from h = 0.
    pub fn new() -> Self {
        Self::default()
    }
    /// A state starting from the given h [N, rec_channels, H', W'] (checked when used).
    pub fn from_hidden(h: Tensor) -> Self {
        ConvGruState { h: Some(h) }
    }
    /// The hidden state after the last frame fed (None before any).
    pub fn hidden(&self) -> Option<&Tensor> {
        self.h.as_ref()
    }
    /// Back to h = 0.
    pub fn reset(&mut self) {
        self.h = None;
    }
}

/// The cell over a video x [N, C, T, H, W] from h = 0: every hidden state, [N, rec_channels, T,
/// H', W'], as neuralpredictors' `GRU_Module` returns them (frame t's state at index t).
pub fn conv_gru(rec: &mut Recorder, gru: &ConvGru, x: &Tensor) -> Result<Tensor> {
    conv_gru_stream(rec, gru, &mut ConvGruState::new(), x)
}

/// As [`conv_gru`], continuing from `state` and leaving the state after the last frame in it:
/// feeding a video in pieces gives what the whole video gives. The input convs of all T frames run
/// as one conv over the frames as a batch; then per frame the hidden convs and two fused gate
/// kernels. On a refusal nothing is recorded and the state is unchanged.
pub fn conv_gru_stream(rec: &mut Recorder, gru: &ConvGru, state: &mut ConvGruState, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv_gru";
    x.expect_f32(OP, "input")?;
    let p = gru.params;
    let s = conv_gru_shape(&p, x.shape(), true)?;
    let (out, h) = rec.atomic(|rec| {
        let h0 = initial_state(rec, &p, &s, state)?;
        let ctx = rec.context();
        let frames = if s.t == 1 {
            x.reshape(&[s.n, p.input_channels, s.h, s.w])?
        } else {
            let y = rec.alloc(OP, &[s.n * s.t, p.input_channels, s.h, s.w], DType::F32)?;
            let kernel = ctx.kernel(&PipelineKey::new("gru", "frames_to_batch", &[Access::Read, Access::ReadWrite]))?;
            let gp = GruParams {
                total: x.numel() as u32,
                ch: p.input_channels as u32,
                hw: (s.h * s.w) as u32,
                cpg: 1,
                t: 0,
                steps: s.t as u32,
                _pad: [0; 2],
            };
            let groups = super::elementwise_grid(ctx, x.numel(), OP)?;
            rec.dispatch("conv_gru/frames_to_batch", kernel, bytemuck::bytes_of(&gp), &[Some(x), Some(&y)], groups)?;
            y
        };
        let gx = super::conv2d(rec, &frames, &gru.wx, Some(&gru.bx), &p.input_conv(), &Epilogue::default())
            .map_err(|e| e.within(OP))?;
        drop(frames);
        let out = rec.alloc(OP, &[s.n, p.rec_channels, s.t, s.ho, s.wo], DType::F32)?;
        let mut h = h0;
        for t in 0..s.t {
            h = conv_gru_gates(rec, gru, &s, &gx, t, &h, Some(&out))?;
        }
        Ok((out, h))
    })?;
    state.h = Some(h);
    Ok(out)
}

/// One frame x_t [N, C, H, W] through the cell from `state`: the new hidden state h'
/// [N, rec_channels, H', W'], which `state` then holds (streaming frame by frame).
pub fn conv_gru_step(rec: &mut Recorder, gru: &ConvGru, state: &mut ConvGruState, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "conv_gru";
    x.expect_f32(OP, "input")?;
    let p = gru.params;
    let s = conv_gru_shape(&p, x.shape(), false)?;
    let h = rec.atomic(|rec| {
        let h0 = initial_state(rec, &p, &s, state)?;
        let gx = super::conv2d(rec, x, &gru.wx, Some(&gru.bx), &p.input_conv(), &Epilogue::default())
            .map_err(|e| e.within(OP))?;
        conv_gru_gates(rec, gru, &s, &gx, 0, &h0, None)
    })?;
    state.h = Some(h.clone());
    Ok(h)
}

/// The state's h, checked against the run's shape, or zeros.
fn initial_state(rec: &mut Recorder, p: &ConvGruParams, s: &ConvGruShape, state: &ConvGruState) -> Result<Tensor> {
    let want = [s.n, p.rec_channels, s.ho, s.wo];
    match &state.h {
        Some(h) => {
            super::expect_shape("conv_gru", "state", h, &want)?;
            Ok(h.clone())
        }
        None => {
            let h = rec.alloc("conv_gru", &want, DType::F32)?;
            rec.clear(&h);
            Ok(h)
        }
    }
}

/// One step's hidden convs and gates: gx holds the input gates of frame `t` (of `s.t` frames when
/// `out` is given, else of one).
fn conv_gru_gates(
    rec: &mut Recorder,
    gru: &ConvGru,
    s: &ConvGruShape,
    gx: &Tensor,
    t: usize,
    h: &Tensor,
    out: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "conv_gru";
    let p = gru.params;
    let ctx = rec.context();
    let ch = p.rec_channels;
    let shape = [s.n, ch, s.ho, s.wo];
    let total = s.n * ch * s.ho * s.wo;
    let gh =
        super::conv2d(rec, h, &gru.wh, Some(&gru.bh), &p.rec_conv(), &Epilogue::default()).map_err(|e| e.within(OP))?;
    let gp = GruParams {
        total: total as u32,
        ch: ch as u32,
        hw: (s.ho * s.wo) as u32,
        cpg: (ch / p.groups) as u32,
        t: t as u32,
        steps: if out.is_some() { s.t as u32 } else { 1 },
        _pad: [0; 2],
    };
    let groups = super::elementwise_grid(ctx, total, OP)?;
    let hr = rec.alloc(OP, &shape, DType::F32)?;
    let z = rec.alloc(OP, &shape, DType::F32)?;
    let r = Access::Read;
    let w = Access::ReadWrite;
    let kernel = ctx.kernel(&PipelineKey::new("gru", "conv_gru_reset", &[r, r, r, w, w]))?;
    let bufs = [Some(gx), Some(&gh), Some(h), Some(&hr), Some(&z)];
    rec.dispatch("conv_gru/conv_gru_reset", kernel, bytemuck::bytes_of(&gp), &bufs, groups)?;
    drop(gh);
    let go = super::conv2d(rec, &hr, &gru.wo, Some(&gru.bo), &p.rec_conv(), &Epilogue::default())
        .map_err(|e| e.within(OP))?;
    drop(hr);
    let hn = rec.alloc(OP, &shape, DType::F32)?;
    let key = PipelineKey::new("gru", "conv_gru_update", &[r, r, r, r, w, w]).flag(ov::SEQ, out.is_some());
    let kernel = ctx.kernel(&key)?;
    let bufs = [Some(gx), Some(&go), Some(h), Some(&z), Some(&hn), out];
    rec.dispatch("conv_gru/conv_gru_update", kernel, bytemuck::bytes_of(&gp), &bufs, groups)?;
    Ok(hn)
}

// ------------------------------------------------------------------------------- torch.nn.GRU

/// A one-layer `torch.nn.GRU`'s weights on the host, PyTorch's layout: `weight_ih_l0` [3H, I],
/// `weight_hh_l0` [3H, H], `bias_ih_l0` and `bias_hh_l0` [3H] (absent with `bias=False`); the
/// rows of each are the gates r, z, n in that order.
#[derive(Clone, Debug)]
pub struct GruWeights {
    pub weight_ih: HostTensor,
    pub weight_hh: HostTensor,
    pub bias_ih: Option<HostTensor>,
    pub bias_hh: Option<HostTensor>,
}

impl GruWeights {
    /// Takes `{prefix}.weight_ih_l0`, `.weight_hh_l0` and, when there, `.bias_ih_l0`,
    /// `.bias_hh_l0` (both or neither), sizes read from `weight_ih_l0`, each checked by the state
    /// dict (present, shaped, finite). Keys of other layers or directions (`_l1`, `_reverse`) are
    /// left in the state dict, so its `finish` refuses them.
    pub fn take(sd: &mut StateDict, prefix: &str) -> Result<GruWeights> {
        let kih = key(prefix, "weight_ih_l0");
        let (h3, i) = match sd.shape(&kih) {
            Some(&[h3, i]) if h3 % 3 == 0 && h3 > 0 && i > 0 => (h3, i),
            Some(s) => return Err(Error::Weights(format!("weights: {kih:?} has shape {s:?}, expected [3H, I]"))),
            None => return Err(Error::Weights(format!("weights: missing key {kih:?}"))),
        };
        let hs = h3 / 3;
        let weight_ih = sd.take(&kih, &[h3, i])?;
        let weight_hh = sd.take(&key(prefix, "weight_hh_l0"), &[h3, hs])?;
        let (kbi, kbh) = (key(prefix, "bias_ih_l0"), key(prefix, "bias_hh_l0"));
        let (bias_ih, bias_hh) = if sd.has(&kbi) || sd.has(&kbh) {
            (Some(sd.take(&kbi, &[h3])?), Some(sd.take(&kbh, &[h3])?))
        } else {
            (None, None)
        };
        Ok(GruWeights { weight_ih, weight_hh, bias_ih, bias_hh })
    }

    /// (input size I, hidden size H), checked against every tensor's shape.
    pub fn sizes(&self) -> Result<(usize, usize)> {
        const OP: &str = "gru";
        let (h3, i) = match self.weight_ih.shape[..] {
            [h3, i] if h3 % 3 == 0 && h3 > 0 && i > 0 => (h3, i),
            _ => return Err(Error::shape(OP, "weight_ih", &self.weight_ih.shape, "[3H, I]")),
        };
        let hs = h3 / 3;
        if self.weight_hh.shape != [h3, hs] {
            return Err(Error::shape(OP, "weight_hh", &self.weight_hh.shape, format!("[{h3}, {hs}]")));
        }
        for (b, what) in [(&self.bias_ih, "bias_ih"), (&self.bias_hh, "bias_hh")] {
            if let Some(b) = b {
                if b.shape != [h3] {
                    return Err(Error::shape(OP, what, &b.shape, format!("[{h3}]")));
                }
            }
        }
        if self.bias_ih.is_some() != self.bias_hh.is_some() {
            return Err(Error::param(OP, "bias", "bias_ih and bias_hh go together"));
        }
        for (t, what) in [(Some(&self.weight_ih), "weight_ih"), (Some(&self.weight_hh), "weight_hh")]
            .into_iter()
            .chain([(self.bias_ih.as_ref(), "bias_ih"), (self.bias_hh.as_ref(), "bias_hh")])
        {
            if let Some(t) = t {
                crate::reference::check_len(OP, what, &t.data, &t.shape)?;
            }
        }
        Ok((i, hs))
    }
}

/// A one-layer `torch.nn.GRU` on the device.
pub struct Gru {
    input_size: usize,
    hidden_size: usize,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Option<Tensor>,
    b_hh: Option<Tensor>,
}

impl Gru {
    pub fn upload(ctx: &Context, w: &GruWeights) -> Result<Gru> {
        let (input_size, hidden_size) = w.sizes()?;
        let up = |t: &HostTensor| Tensor::from_f32(ctx, &t.data, &t.shape);
        Ok(Gru {
            input_size,
            hidden_size,
            w_ih: up(&w.weight_ih)?,
            w_hh: up(&w.weight_hh)?,
            b_ih: w.bias_ih.as_ref().map(up).transpose()?,
            b_hh: w.bias_hh.as_ref().map(up).transpose()?,
        })
    }

    /// Reads `{prefix}.*` of `tensors` (see [`GruWeights::take`]) and uploads it.
    pub fn load(ctx: &Context, tensors: &BTreeMap<String, HostTensor>, prefix: &str) -> Result<Gru> {
        Self::upload(ctx, &GruWeights::take(&mut StateDict::borrowed("weights", tensors), prefix)?)
    }

    pub fn input_size(&self) -> usize {
        self.input_size
    }
    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }
}

/// The hidden state of a GRU between calls, on the device: none yet (zeros, PyTorch's default h0)
/// or h [B, H] (PyTorch's h_n [1, B, H] without its layer axis).
#[derive(Clone, Debug, Default)]
pub struct GruState {
    h: Option<Tensor>,
}

impl GruState {
    pub fn new() -> Self {
        Self::default()
    }
    /// A state starting from h0 [B, H] (checked when used).
    pub fn from_hidden(h: Tensor) -> Self {
        GruState { h: Some(h) }
    }
    pub fn hidden(&self) -> Option<&Tensor> {
        self.h.as_ref()
    }
    pub fn reset(&mut self) {
        self.h = None;
    }
}

/// Checks a GRU input [B, T, I] against the layer: returns (B, T). Shared by the op and the
/// reference.
pub fn gru_shape(input_size: usize, hidden_size: usize, xs: &[usize]) -> Result<(usize, usize)> {
    const OP: &str = "gru";
    let &[b, t, i] = xs else {
        return Err(Error::shape(OP, "input", xs, "[B, T, I] (batch first)"));
    };
    crate::tensor::numel(OP, "input", xs)?;
    if i != input_size {
        return Err(Error::shape(OP, "input", xs, format!("[B, T, {input_size}] (input_size)")));
    }
    crate::tensor::numel(OP, "input gates", &[b, t, 3 * hidden_size])?;
    Ok((b, t))
}

/// `torch.nn.GRU(batch_first=True)` on x [B, T, I] from h0 = 0: (output [B, T, H], h_n [B, H]).
pub fn gru(rec: &mut Recorder, gru: &Gru, x: &Tensor) -> Result<(Tensor, Tensor)> {
    let mut state = GruState::new();
    let out = gru_stream(rec, gru, &mut state, x)?;
    Ok((out, state.h.expect("set by gru_stream")))
}

/// As [`gru`], continuing from `state` and leaving h after the last step in it. The input
/// projection of all T steps is one [`linear`](super::linear); then per step one linear of h and
/// one fused gate kernel. On a refusal nothing is recorded and the state is unchanged.
pub fn gru_stream(rec: &mut Recorder, gru: &Gru, state: &mut GruState, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "gru";
    x.expect_f32(OP, "input")?;
    let (b, t) = gru_shape(gru.input_size, gru.hidden_size, x.shape())?;
    let hs = gru.hidden_size;
    let (out, h) = rec.atomic(|rec| {
        let mut h = match &state.h {
            Some(h) => {
                super::expect_shape(OP, "state", h, &[b, hs])?;
                h.clone()
            }
            None => {
                let h = rec.alloc(OP, &[b, hs], DType::F32)?;
                rec.clear(&h);
                h
            }
        };
        let gi = super::linear(rec, x, &gru.w_ih, gru.b_ih.as_ref(), Activation::Identity).map_err(|e| e.within(OP))?;
        let out = rec.alloc(OP, &[b, t, hs], DType::F32)?;
        let ctx = rec.context();
        let groups = super::elementwise_grid(ctx, b * hs, OP)?;
        let (r, w) = (Access::Read, Access::ReadWrite);
        let kernel = ctx.kernel(&PipelineKey::new("gru", "gru_gates", &[r, r, r, w, w]).flag(ov::SEQ, true))?;
        for step in 0..t {
            let gh =
                super::linear(rec, &h, &gru.w_hh, gru.b_hh.as_ref(), Activation::Identity).map_err(|e| e.within(OP))?;
            let hn = rec.alloc(OP, &[b, hs], DType::F32)?;
            let gp = GruParams {
                total: (b * hs) as u32,
                ch: hs as u32,
                hw: 1,
                cpg: hs as u32,
                t: step as u32,
                steps: t as u32,
                _pad: [0; 2],
            };
            let bufs = [Some(&gi), Some(&gh), Some(&h), Some(&hn), Some(&out)];
            rec.dispatch("gru/gru_gates", kernel.clone(), bytemuck::bytes_of(&gp), &bufs, groups)?;
            h = hn;
        }
        Ok((out, h))
    })?;
    state.h = Some(h);
    Ok(out)
}

/// One step x_t [B, I] from `state`: h' [B, H], which `state` then holds.
pub fn gru_step(rec: &mut Recorder, gru: &Gru, state: &mut GruState, x: &Tensor) -> Result<Tensor> {
    let &[b, i] = x.shape() else {
        return Err(Error::shape("gru", "input", x.shape(), "[B, I] (one step)"));
    };
    gru_stream(rec, gru, state, &x.reshape(&[b, 1, i])?)?;
    Ok(state.h.clone().expect("set by gru_stream"))
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!("gru", "GruParams", GruParams, [total, ch, hw, cpg, t, steps, _pad])]
}
