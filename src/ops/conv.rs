//! conv2d with PyTorch semantics and a fused epilogue (bias, per-channel scale and shift for
//! folded batch norm, activation).
//!
//! The kernel ladder: depthwise (one input channel per group) with stride 1 and no dilation → tiled
//! kernel (input tile and weights in workgroup memory), other depthwise → direct kernel; 1×1,
//! stride 1, no padding, one group → GEMM per image; everything else → implicit GEMM. Both GEMMs
//! run double-buffered (`conv2d_db`, `conv2d_1x1_db`); the single-buffered kernels stay for
//! comparison (`Gemm`, `OneByOne`).

use super::{expect_shape, Activation};
use crate::error::{Error, Result};
use crate::runtime::{chunks, Access, PipelineKey, Recorder};
use crate::shaders::overrides::conv2d as ov;
use crate::tensor::{DType, Tensor};

/// Which kernel runs a convolution. `Auto` picks by shape; the others force a path (tests and
/// benchmarks compare them) and are refused where the shape does not fit them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConvAlgo {
    #[default]
    Auto,
    /// Implicit GEMM, one tile buffer.
    Gemm,
    /// Implicit GEMM, two tile buffers and vec4 workgroup reads, 64 channels a tile.
    GemmDb,
    /// `GemmDb` with 128 channels a tile where a group has more than 64: each pixel tile gathered
    /// once for twice the channels, 8×8 outputs per invocation. Not the default: on lavapipe it is
    /// slower (VGG 128→128 small suite: 304–321 ms against 234–255 ms for `GemmDb`); the bench
    /// compares the two on a GPU (`conv3x3_vgg128_wide`).
    GemmDbWide,
    /// 1×1 GEMM, one tile buffer.
    OneByOne,
    /// 1×1 GEMM, two tile buffers and vec4 workgroup reads.
    OneByOneDb,
    /// The direct depthwise kernel: any stride and dilation, one output per invocation.
    Depthwise,
    /// The tiled depthwise kernel: stride 1, dilation 1, a kernel of at most 256 taps.
    DepthwiseTiled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dParams {
    pub stride: [usize; 2],
    /// Zero padding: top, bottom, left, right.
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub algo: ConvAlgo,
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams { stride: [1, 1], padding: [0; 4], dilation: [1, 1], groups: 1, algo: ConvAlgo::Auto }
    }
}

impl Conv2dParams {
    /// PyTorch's symmetric padding (ph, pw).
    pub fn with_padding(mut self, ph: usize, pw: usize) -> Self {
        self.padding = [ph, ph, pw, pw];
        self
    }
    pub fn with_stride(mut self, sh: usize, sw: usize) -> Self {
        self.stride = [sh, sw];
        self
    }
    pub fn with_dilation(mut self, dh: usize, dw: usize) -> Self {
        self.dilation = [dh, dw];
        self
    }
    pub fn with_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    pub fn with_algo(mut self, a: ConvAlgo) -> Self {
        self.algo = a;
        self
    }
}

/// What is applied to each output after the sum: `act((acc + bias) * scale + shift)`.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub scale: Option<&'a Tensor>,
    pub shift: Option<&'a Tensor>,
    pub act: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue { scale: None, shift: None, act: Activation::Identity }
    }
}

impl Epilogue<'_> {
    /// Checks the epilogue and the conv's bias (`bias_name`) against `o` output channels: each
    /// [o], scale and shift together, the activation's parameters; errors name `op`.
    pub(crate) fn check(&self, op: &'static str, bias: Option<&Tensor>, bias_name: &str, o: usize) -> Result<()> {
        if let Some(b) = bias {
            expect_shape(op, bias_name, b, &[o])?;
        }
        match (self.scale, self.shift) {
            (Some(a), Some(b)) => {
                expect_shape(op, "scale", a, &[o])?;
                expect_shape(op, "shift", b, &[o])?;
            }
            (None, None) => {}
            _ => return Err(Error::param(op, "epilogue", "scale and shift go together")),
        }
        self.act.validate()
    }
}

/// The geometry of one convolution, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub ho: usize,
    pub wo: usize,
}

/// Checks a convolution's shapes and parameters; shared by the GPU op and the CPU reference.
pub fn conv_shape(x: &[usize], w: &[usize], p: &Conv2dParams) -> Result<ConvShape> {
    const OP: &str = "conv2d";
    if x.len() != 4 {
        return Err(Error::shape(OP, "input", x, "[N, C, H, W]"));
    }
    if w.len() != 4 {
        return Err(Error::shape(OP, "weight", w, "[O, C/groups, KH, KW]"));
    }
    if x.contains(&0) {
        return Err(Error::shape(OP, "input", x, "no zero-sized dimension"));
    }
    if w.contains(&0) {
        return Err(Error::shape(OP, "weight", w, "no zero-sized dimension"));
    }
    super::geometry(OP, "stride", &p.stride)?;
    super::geometry(OP, "padding", &p.padding)?;
    super::geometry(OP, "dilation", &p.dilation)?;
    super::geometry(OP, "groups", &[p.groups])?;
    if p.stride.contains(&0) {
        return Err(Error::param(OP, "stride", format!("{:?} must be >= 1", p.stride)));
    }
    if p.dilation.contains(&0) {
        return Err(Error::param(OP, "dilation", format!("{:?} must be >= 1", p.dilation)));
    }
    let g = p.groups;
    if g == 0 {
        return Err(Error::param(OP, "groups", "must be >= 1"));
    }
    let (n, c, h, wd) = (x[0], x[1], x[2], x[3]);
    let (o, cg, kh, kw) = (w[0], w[1], w[2], w[3]);
    if c % g != 0 {
        return Err(Error::param(OP, "groups", format!("input channels {c} are not divisible by groups {g}")));
    }
    if o % g != 0 {
        return Err(Error::param(OP, "groups", format!("output channels {o} are not divisible by groups {g}")));
    }
    if cg != c / g {
        return Err(Error::shape(OP, "weight", w, format!("[{o}, {} (C/groups), KH, KW]", c / g)));
    }
    let eh = p.dilation[0] * (kh - 1) + 1;
    let ew = p.dilation[1] * (kw - 1) + 1;
    let ph = h + p.padding[0] + p.padding[1];
    let pw = wd + p.padding[2] + p.padding[3];
    if eh > ph || ew > pw {
        return Err(Error::shape(
            OP,
            "weight",
            w,
            format!("a (dilated) kernel {eh}x{ew} no larger than the padded input {ph}x{pw}"),
        ));
    }
    Ok(ConvShape { n, c, h, w: wd, o, kh, kw, ho: (ph - eh) / p.stride[0] + 1, wo: (pw - ew) / p.stride[1] + 1 })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    n: u32,
    c: u32,
    h: u32,
    w: u32,
    o: u32,
    ho: u32,
    wo: u32,
    groups: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    pt: u32,
    pl: u32,
    dh: u32,
    dw: u32,
    cg: u32,
    og: u32,
    kdim: u32,
    m: u32,
    khw: u32,
    howo: u32,
    hw: u32,
    otiles: u32,
    /// SPLIT: this dispatch's part of the reduction (GEMMs: k_lo..k_hi of K; depthwise: kernel
    /// rows k_lo..k_hi by columns v_lo..v_hi), and its mode (SPLIT_ACC after the first part).
    k_lo: u32,
    k_hi: u32,
    v_lo: u32,
    v_hi: u32,
    mode: u32,
    pad: [u32; 3],
}

const BM: usize = 128;
const BN: usize = 64;
/// The GEMMs' reduction step (BK): one loop iteration per step.
const BK: usize = 8;
/// SPLIT mode of every part but the first: add to what the output holds.
const SPLIT_ACC: u32 = 1;

/// One dispatch's part of a reduction: `k` (a range of K, or of kernel rows for depthwise) and `v`
/// (a range of kernel columns; depthwise only).
type Part = ((usize, usize), (usize, usize));

/// The loop iterations a GEMM kernel's invocation runs per BK step of K, and the extra steps of
/// its loop (the double-buffered kernels' last pass only multiplies). A step counts itself, the BK
/// loop of the multiply and the small loops of the loads and gather, as if the driver left all of
/// them rolled: lavapipe counts every iteration of every loop, and what it unrolls differs from
/// pipeline to pipeline (measured: the 128-channel conv2d_db, 9-10 iterations a step; the split
/// conv2d_gemm with a bias, about 10). Only the innermost loops over an invocation's own registers
/// are taken as unrolled (compilers unroll them to keep the arrays in registers).
fn gemm_step_iterations(entry: &str) -> (usize, usize) {
    match entry {
        "conv2d_gemm" => (1 + 4 + 4 + 2 + BK, 0), // gather, store to As, weight loads
        "conv2d_1x1" | "conv2d_1x1_vec4" => (1 + 4 + 2 + BK, 0),
        "conv2d_db" => (1 + 4 + 4 + BK, 1), // gather, weight loads
        _ => (1 + 4 + BK, 1),               // conv2d_1x1_db: weight loads
    }
}

/// How a kernel's reduction splits into dispatches of at most `budget` loop iterations per
/// invocation (counting every loop whose trip count a parameter sets), for the `entry` chosen for
/// shape `s` (`tile`: the tiled depthwise layout). One part, the whole reduction, where it fits;
/// at least one step (GEMMs) or tap a part, whatever the budget.
fn split_parts(entry: &str, s: &ConvShape, kdim: usize, tile: (usize, usize), budget: usize) -> Vec<Part> {
    let whole = vec![((0, kdim), (0, s.kw))];
    match entry {
        "conv2d_gemm" | "conv2d_1x1" | "conv2d_1x1_vec4" | "conv2d_db" | "conv2d_1x1_db" => {
            let (per_step, extra) = gemm_step_iterations(entry);
            let steps = (budget / per_step).saturating_sub(extra).max(1);
            if kdim.div_ceil(BK) <= steps {
                return whole;
            }
            chunks(kdim, steps * BK).map(|k| (k, (0, 0))).collect()
        }
        // Kernel rows (one iteration each) times (columns + 1).
        "conv2d_depthwise" => {
            if s.kh * (s.kw + 1) <= budget {
                return vec![((0, s.kh), (0, s.kw))];
            }
            let cols = s.kw.min(budget - 1);
            let rows = s.kh.min(budget / (cols + 1));
            rect_parts(s.kh, rows, s.kw, cols)
        }
        // The tile and weight loads (strided by 256), then columns times (rows + 1).
        "conv2d_depthwise_tile" => {
            let (tx, _) = tile;
            let cells = (256 / tx * 4 + s.kh - 1) * (tx + s.kw - 1);
            let fixed = cells.div_ceil(256) + (s.kh * s.kw).div_ceil(256);
            if fixed + s.kw * (s.kh + 1) <= budget {
                return vec![((0, s.kh), (0, s.kw))];
            }
            // The capacities keep `fixed` at 13 or less, and the budget is at least 16.
            let avail = budget.saturating_sub(fixed).max(2);
            let rows = s.kh.min(avail - 1);
            let cols = s.kw.min(avail / (rows + 1));
            rect_parts(s.kh, rows, s.kw, cols)
        }
        _ => whole,
    }
}

/// The kernel window as rectangles of at most `rows` x `cols` taps.
fn rect_parts(kh: usize, rows: usize, kw: usize, cols: usize) -> Vec<Part> {
    chunks(kh, rows).flat_map(|u| chunks(kw, cols).map(move |v| (u, v))).collect()
}

/// The kernel `Auto` picks for a shape.
#[doc(hidden)]
pub fn pick_algo(s: &ConvShape, p: &Conv2dParams) -> ConvAlgo {
    if p.algo != ConvAlgo::Auto {
        return p.algo;
    }
    if s.c == p.groups {
        if depthwise_tile(s, p).is_some() {
            ConvAlgo::DepthwiseTiled
        } else {
            ConvAlgo::Depthwise
        }
    } else if one_by_one(s, p) {
        ConvAlgo::OneByOneDb
    } else {
        ConvAlgo::GemmDb
    }
}

/// Workgroup memory of conv2d_depthwise_tile, in f32 (the WGSL arrays' sizes).
const DW_TILE_CAP: usize = 3072;
const DW_TAPS_CAP: usize = 256;

/// The tiled depthwise kernel's layout for a shape: (invocations along the columns, output channels
/// per invocation), or None where the kernel does not apply. The column count is the one that wastes
/// the fewest invocations on the tile's overhang, wider first on ties (wider rows coalesce).
pub fn depthwise_tile(s: &ConvShape, p: &Conv2dParams) -> Option<(usize, usize)> {
    if s.c != p.groups || p.stride != [1, 1] || p.dilation != [1, 1] || s.kh * s.kw > DW_TAPS_CAP {
        return None;
    }
    let mut best: Option<(usize, usize)> = None;
    for tx in [32, 16, 8] {
        let th = 256 / tx * 4;
        if (th + s.kh - 1) * (tx + s.kw - 1) > DW_TILE_CAP {
            continue;
        }
        let covered = s.wo.div_ceil(tx) * tx * s.ho.div_ceil(th) * th;
        if best.is_none_or(|(_, c)| covered < c) {
            best = Some((tx, covered));
        }
    }
    let q = if (s.o / s.c) % 4 == 0 { 4 } else { 1 };
    best.map(|(tx, _)| (tx, q))
}

fn one_by_one(s: &ConvShape, p: &Conv2dParams) -> bool {
    s.kh == 1 && s.kw == 1 && p.stride == [1, 1] && p.padding == [0; 4] && p.groups == 1
}

/// y = act((conv2d(x, w) + bias) * scale + shift), shape [N, O, Ho, Wo].
pub fn conv2d(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    p: &Conv2dParams,
    epi: &Epilogue,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    x.expect_f32(OP, "input")?;
    w.expect_f32(OP, "weight")?;
    let s = conv_shape(x.shape(), w.shape(), p)?;
    epi.check(OP, bias, "bias", s.o)?;
    let algo = pick_algo(&s, p);
    let g = p.groups;
    match algo {
        ConvAlgo::Depthwise if s.c != g => {
            return Err(Error::param(OP, "algo", format!("depthwise needs groups == channels ({g} != {})", s.c)))
        }
        ConvAlgo::DepthwiseTiled if depthwise_tile(&s, p).is_none() => {
            return Err(Error::param(
                OP,
                "algo",
                format!(
                    "the tiled depthwise path needs groups == channels, stride 1, dilation 1 and at most \
                     {DW_TAPS_CAP} kernel taps"
                ),
            ))
        }
        ConvAlgo::OneByOne | ConvAlgo::OneByOneDb if !one_by_one(&s, p) => {
            return Err(Error::param(OP, "algo", "the 1x1 path needs a 1x1 kernel, stride 1, no padding, one group"))
        }
        _ => {}
    }
    let ctx = rec.context();
    let howo = s.ho * s.wo;
    let m = s.n * howo;
    let og = s.o / g;
    let kdim = (s.c / g) * s.kh * s.kw;
    // GemmDbWide takes 128 channels a tile where a group has more than 64.
    let wide = algo == ConvAlgo::GemmDbWide && og > BN;
    let algo = if algo == ConvAlgo::GemmDbWide { ConvAlgo::GemmDb } else { algo };
    let otiles = og.div_ceil(if wide { 2 * BN } else { BN });
    let mut tile = (32, 1);
    let (entry, groups) = match algo {
        ConvAlgo::Depthwise => ("conv2d_depthwise", super::elementwise_grid(ctx, m * s.o, OP)?),
        ConvAlgo::DepthwiseTiled => {
            tile = depthwise_tile(&s, p).expect("checked above");
            let (tx, q) = tile;
            let tiles = s.wo.div_ceil(tx) * s.ho.div_ceil(256 / tx * 4);
            ("conv2d_depthwise_tile", ctx.grid_1d((tiles * s.n * s.o / q) as u64, OP)?)
        }
        ConvAlgo::OneByOne
        | ConvAlgo::OneByOneDb
        | ConvAlgo::Gemm
        | ConvAlgo::GemmDb
        | ConvAlgo::GemmDbWide
        | ConvAlgo::Auto => {
            let z = if matches!(algo, ConvAlgo::OneByOne | ConvAlgo::OneByOneDb) { otiles } else { otiles * g };
            let max = ctx.limits().max_compute_workgroups_per_dimension as usize;
            if z > max {
                return Err(Error::TooLarge {
                    op: OP,
                    what: format!("{g} groups x {otiles} channel tiles"),
                    amount: z as u64,
                    unit: "workgroups",
                    limit: max as u64,
                    limit_name: "max_compute_workgroups_per_dimension",
                });
            }
            let [x, y, _] = ctx.grid_1d(m.div_ceil(BM) as u64, OP)?;
            let vec4 = (s.h * s.w) % 4 == 0;
            let entry = match algo {
                ConvAlgo::OneByOne if vec4 => "conv2d_1x1_vec4",
                ConvAlgo::OneByOne => "conv2d_1x1",
                ConvAlgo::OneByOneDb if vec4 => "conv2d_1x1_db",
                ConvAlgo::OneByOneDb | ConvAlgo::GemmDb => "conv2d_db",
                _ => "conv2d_gemm",
            };
            (entry, [x, y, z as u32])
        }
    };
    let accesses = [Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite];
    let key = PipelineKey::new("conv2d", entry, &accesses);
    let key = match algo {
        ConvAlgo::DepthwiseTiled => key.with(ov::DW_TX, tile.0 as f64).with(ov::DW_Q, tile.1 as f64),
        ConvAlgo::OneByOneDb if entry == "conv2d_db" => key.with(ov::DB_1X1, 1.0),
        _ => key,
    };
    let key = if wide { key.with(ov::DB_WIDE, 1.0) } else { key };
    // A reduction past the loop budget runs in parts (SPLIT, no epilogue), then conv2d_epilogue.
    let parts = split_parts(entry, &s, kdim, tile, rec.loop_budget() as usize);
    let split = parts.len() > 1;
    let with_epilogue = |key: PipelineKey| {
        epi.act.specialize(key.flag(ov::HAS_BIAS, bias.is_some()).flag(ov::HAS_AFFINE, epi.scale.is_some()))
    };
    let kernel = ctx.kernel(&if split { key.with(ov::SPLIT, 1.0) } else { with_epilogue(key) })?;
    let y = rec.alloc(OP, &[s.n, s.o, s.ho, s.wo], DType::F32)?;
    let mut params = ConvParams {
        n: s.n as u32,
        c: s.c as u32,
        h: s.h as u32,
        w: s.w as u32,
        o: s.o as u32,
        ho: s.ho as u32,
        wo: s.wo as u32,
        groups: g as u32,
        kh: s.kh as u32,
        kw: s.kw as u32,
        sh: p.stride[0] as u32,
        sw: p.stride[1] as u32,
        pt: p.padding[0] as u32,
        pl: p.padding[2] as u32,
        dh: p.dilation[0] as u32,
        dw: p.dilation[1] as u32,
        cg: (s.c / g) as u32,
        og: og as u32,
        kdim: kdim as u32,
        m: m as u32,
        khw: (s.kh * s.kw) as u32,
        howo: howo as u32,
        hw: (s.h * s.w) as u32,
        otiles: otiles as u32,
        k_lo: 0,
        k_hi: 0,
        v_lo: 0,
        v_hi: 0,
        mode: 0,
        pad: [0; 3],
    };
    let buffers = [Some(x), Some(w), bias, epi.scale, epi.shift, Some(&y)];
    if !split {
        rec.dispatch(format!("conv2d/{entry}"), kernel, bytemuck::bytes_of(&params), &buffers, groups)?;
        return Ok(y);
    }
    for (i, &((k_lo, k_hi), (v_lo, v_hi))) in parts.iter().enumerate() {
        params.k_lo = k_lo as u32;
        params.k_hi = k_hi as u32;
        params.v_lo = v_lo as u32;
        params.v_hi = v_hi as u32;
        params.mode = if i > 0 { SPLIT_ACC } else { 0 };
        rec.dispatch(
            format!("conv2d/{entry}"),
            kernel.clone(),
            bytemuck::bytes_of(&params),
            &[Some(x), Some(w), None, None, None, Some(&y)],
            groups,
        )?;
    }
    if bias.is_some() || epi.scale.is_some() || epi.act != Activation::Identity {
        let kernel = ctx.kernel(&with_epilogue(PipelineKey::new("conv2d", "conv2d_epilogue", &accesses)))?;
        let groups = super::elementwise_grid(ctx, m * s.o, OP)?;
        rec.dispatch("conv2d/conv2d_epilogue", kernel, bytemuck::bytes_of(&params), &buffers, groups)?;
    }
    Ok(y)
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![super::params_layout!(
        "conv2d",
        "ConvParams",
        ConvParams,
        [
            n, c, h, w, o, ho, wo, groups, kh, kw, sh, sw, pt, pl, dh, dw, cg, og, kdim, m, khw, howo, hw, otiles,
            k_lo, k_hi, v_lo, v_hi, mode, pad
        ]
    )]
}
