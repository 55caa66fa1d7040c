// conv2d.wgsl: 2-D convolution with PyTorch semantics (cross-correlation, zero padding, stride,
// dilation, groups) and a fused epilogue y = act((acc + bias[o]) * scale[o] + shift[o]).
//
// Entry points (chosen by src/ops/conv.rs):
//   conv2d_gemm       implicit GEMM: M = N*Ho*Wo output pixels x O/G output channels, reduction over
//                     K = C/G*KH*KW; 128x64 tiles in workgroup memory, 8x4 outputs per invocation.
//   conv2d_1x1        the same tiling for 1x1, stride 1, no padding, one group: a plain GEMM per image
//                     with no index decoding in the inner loop.
//   conv2d_db, conv2d_1x1_db
//                     the implicit GEMM and the 1x1 GEMM (vec4 loads) with two tile buffers (the next
//                     step's loads in flight while this step multiplies, one barrier per step) and
//                     each invocation's 8x4 block read as three vec4s per k instead of 12 scalars;
//                     DB_WIDE: 128 channels a tile, 8x8 outputs per invocation (four vec4s per k)
//   conv2d_depthwise  one group per input channel (C/G == 1): a direct kernel, one output per invocation.
//   conv2d_depthwise_tile
//                     the same for stride 1, dilation 1: the input tile with its halo and the weights
//                     in workgroup memory, each invocation 4 output rows (a rolling window of 4 input
//                     rows in registers, so one workgroup read per tap feeds 4 rows) of DW_Q output
//                     channels of the same input channel (DW_Q = 4: the channel multiplier's outputs
//                     share every input read, as in a 1 -> 64 input layer)
//
// SPLIT: a reduction longer than one invocation may loop in one dispatch runs as consecutive
// dispatches over parts of it, each within the host's loop budget: k_lo..k_hi of K for the GEMMs;
// kernel rows k_lo..k_hi by columns v_lo..v_hi for the depthwise kernels. The first writes its
// partial sums, later ones (mode SPLIT_ACC) add what the output holds, and conv2d_epilogue then
// applies the epilogue once. The split pipelines carry no epilogue, so there is one per kernel
// (what the driver unrolls, and so how many iterations its loops take, can differ between
// pipelines; these few are each checked at the full budget). Without it every kernel runs its
// whole reduction.

struct ConvParams {
    n: u32, c: u32, h: u32, w: u32,
    o: u32, ho: u32, wo: u32, groups: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    pt: u32, pl: u32, dh: u32, dw: u32,
    cg: u32, og: u32, kdim: u32, m: u32,     // C/G, O/G, C/G*KH*KW, N*Ho*Wo
    khw: u32, howo: u32, hw: u32, otiles: u32,
    k_lo: u32, k_hi: u32, v_lo: u32, v_hi: u32,   // SPLIT only
    mode: u32, pad0: u32, pad1: u32, pad2: u32,
}

override HAS_BIAS: bool = false;
override HAS_AFFINE: bool = false;
override SPLIT: bool = false;
const SPLIT_ACC: u32 = 1u;   // add to what the output holds (every part but the first)

// This dispatch's part of the reduction (GEMMs: K; depthwise: kernel rows u and columns v).
fn conv_k_lo() -> u32 { return select(0u, cp.k_lo, SPLIT); }
fn conv_k_hi() -> u32 { return select(cp.kdim, cp.k_hi, SPLIT); }
fn conv_u_lo() -> u32 { return select(0u, cp.k_lo, SPLIT); }
fn conv_u_hi() -> u32 { return select(cp.kh, cp.k_hi, SPLIT); }
fn conv_v_lo() -> u32 { return select(0u, cp.v_lo, SPLIT); }
fn conv_v_hi() -> u32 { return select(cp.kw, cp.v_hi, SPLIT); }

@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read> cw: array<f32>;
@group(0) @binding(3) var<storage, read> cbias: array<f32>;
@group(0) @binding(4) var<storage, read> cscale: array<f32>;
@group(0) @binding(5) var<storage, read> cshift: array<f32>;
@group(0) @binding(6) var<storage, read_write> cy: array<f32>;

fn conv_epilogue(acc: f32, o: u32) -> f32 {
    var v = acc;
    if (HAS_BIAS) { v += cbias[o]; }
    if (HAS_AFFINE) { v = v * cscale[o] + cshift[o]; }
    return activate(v);
}

// Stores output i (channel o): the sum through the epilogue, or with SPLIT this part of it.
fn conv_put(i: u32, acc: f32, o: u32) {
    var v = acc;
    if (SPLIT) {
        if (cp.mode == SPLIT_ACC) { v += cy[i]; }
    } else {
        v = conv_epilogue(v, o);
    }
    cy[i] = v;
}

// The epilogue of a split convolution, once its parts are summed: one invocation per output.
@compute @workgroup_size(256)
fn conv2d_epilogue(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= cp.n * cp.o * cp.howo) { return; }
    cy[i] = conv_epilogue(cy[i], (i / cp.howo) % cp.o);
}

const BM: u32 = 128u;   // output pixels per tile
const BN: u32 = 64u;    // output channels per tile
const BK: u32 = 8u;     // reduction step
const AS: u32 = 132u;   // padded row of As (BM + 4)
const BS: u32 = 68u;    // padded row of Bs (BN + 4)

var<workgroup> As: array<f32, 1056>;   // BK * AS: As[k * AS + m]
var<workgroup> Bs: array<f32, 544>;    // BK * BS: Bs[k * BS + o]

// Multiply-accumulate one BK step of the tiles: invocation (tx, ty) owns pixels tx + 16 i (i < 8)
// and channels ty + 16 j (j < 4), so workgroup-memory reads are conflict-free and global writes
// coalesce along the pixel axis.
fn conv_mma(acc: ptr<function, array<f32, 32>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        var a: array<f32, 8>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 8u; i++) { a[i] = As[kk * AS + tx + 16u * i]; }
        for (var j = 0u; j < 4u; j++) { b[j] = Bs[kk * BS + ty + 16u * j]; }
        for (var i = 0u; i < 8u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] = fma(a[i], b[j], (*acc)[i * 4u + j]);
            }
        }
    }
}

// Loads the weight tile Bs[k][o] = w[g*og + o0 + o, k0 + k] (zero outside).
fn conv_load_b(t: u32, g: u32, o0: u32, k0: u32) {
    let kl = t % BK;
    let k = k0 + kl;
    for (var r = 0u; r < 2u; r++) {
        let ol = t / BK + 32u * r;
        let o = o0 + ol;
        var v = 0.0;
        if (o < cp.og && k < conv_k_hi()) {
            v = cw[(g * cp.og + o) * cp.kdim + k];
        }
        Bs[kl * BS + ol] = v;
    }
}

// Writes the 8x4 outputs of one invocation through the epilogue.
fn conv_store(acc: ptr<function, array<f32, 32>>, m0: u32, g: u32, o0: u32, tx: u32, ty: u32) {
    for (var i = 0u; i < 8u; i++) {
        let m = m0 + tx + 16u * i;
        if (m >= cp.m) { continue; }
        let nimg = m / cp.howo;
        let p = m % cp.howo;
        for (var j = 0u; j < 4u; j++) {
            let o = o0 + ty + 16u * j;
            if (o < cp.og) {
                let oc = g * cp.og + o;
                conv_put((nimg * cp.o + oc) * cp.howo + p, (*acc)[i * 4u + j], oc);
            }
        }
    }
}

// The implicit GEMM's gather (im2col on the fly): the four pixels first + step r (r < 4) of the
// pixel tile at m0 that an invocation loads, as input offsets and top-left input coordinates; ok:
// the pixel is inside the batch. With DB_1X1 (1x1, stride 1, no padding, one group) base is the
// pixel's own offset and no coordinates are needed. Vectors rather than arrays, so no driver puts
// them in local memory.
struct Gather {
    base: vec4<u32>,
    ih0: vec4<i32>,
    iw0: vec4<i32>,
    ok: vec4<bool>,
}

fn gather_setup(m0: u32, first: u32, step: u32, g: u32) -> Gather {
    var gs: Gather;
    for (var r = 0u; r < 4u; r++) {
        let m = m0 + first + step * r;
        gs.ok[r] = m < cp.m;
        let mm = min(m, cp.m - 1u);
        let nimg = mm / cp.howo;
        let p = mm % cp.howo;
        if (DB_1X1) {
            gs.base[r] = nimg * cp.c * cp.hw + p;
        } else {
            gs.base[r] = (nimg * cp.c + g * cp.cg) * cp.hw;
            gs.ih0[r] = i32((p / cp.wo) * cp.sh) - i32(cp.pt);
            gs.iw0[r] = i32((p % cp.wo) * cp.sw) - i32(cp.pl);
        }
    }
    return gs;
}

// The four pixels' values at reduction index k = (channel, kernel row, kernel column): zero in
// the padding, past the batch and past this dispatch's part of K.
fn gather(gs: ptr<function, Gather>, k: u32) -> vec4<f32> {
    let kin = k < conv_k_hi();
    let kk = min(k, cp.kdim - 1u);
    var val = vec4<f32>(0.0);
    if (DB_1X1) {
        for (var r = 0u; r < 4u; r++) {
            if (kin && (*gs).ok[r]) { val[r] = cx[(*gs).base[r] + kk * cp.hw]; }
        }
        return val;
    }
    let coff = (kk / cp.khw) * cp.hw;
    let rem = kk % cp.khw;
    let u = i32((rem / cp.kw) * cp.dh);
    let v = i32((rem % cp.kw) * cp.dw);
    for (var r = 0u; r < 4u; r++) {
        let ih = (*gs).ih0[r] + u;
        let iw = (*gs).iw0[r] + v;
        if (kin && (*gs).ok[r] && ih >= 0 && ih < i32(cp.h) && iw >= 0 && iw < i32(cp.w)) {
            val[r] = cx[(*gs).base[r] + coff + u32(ih) * cp.w + u32(iw)];
        }
    }
    return val;
}

@compute @workgroup_size(256)
fn conv2d_gemm(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * BM;
    let g = wid.z / cp.otiles;
    let o0 = (wid.z % cp.otiles) * BN;
    let tx = t % 16u;
    let ty = t / 16u;

    // The pixels this invocation loads into As: column ml + 32 r of row kl.
    let kl = t / 32u;
    let ml = t % 32u;
    var gs = gather_setup(m0, ml, 32u, g);

    let k_hi = conv_k_hi();
    var acc: array<f32, 32>;
    for (var k0 = conv_k_lo(); k0 < k_hi; k0 += BK) {
        let val = gather(&gs, k0 + kl);
        for (var r = 0u; r < 4u; r++) { As[kl * AS + ml + 32u * r] = val[r]; }
        conv_load_b(t, g, o0, k0);
        workgroupBarrier();
        conv_mma(&acc, tx, ty);
        workgroupBarrier();
    }
    conv_store(&acc, m0, g, o0, tx, ty);
}

@compute @workgroup_size(256)
fn conv2d_1x1(@builtin(local_invocation_index) t: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * BM;
    let o0 = wid.z * BN;
    let tx = t % 16u;
    let ty = t / 16u;
    let kl = t / 32u;
    let ml = t % 32u;
    var base: array<u32, 4>;
    var ok: array<bool, 4>;
    for (var r = 0u; r < 4u; r++) {
        let m = m0 + ml + 32u * r;
        ok[r] = m < cp.m;
        let mm = min(m, cp.m - 1u);
        base[r] = (mm / cp.hw) * cp.c * cp.hw + mm % cp.hw;
    }
    let k_hi = conv_k_hi();
    var acc: array<f32, 32>;
    for (var k0 = conv_k_lo(); k0 < k_hi; k0 += BK) {
        let k = k0 + kl;
        for (var r = 0u; r < 4u; r++) {
            var val = 0.0;
            if (k < k_hi && ok[r]) {
                val = cx[base[r] + k * cp.hw];
            }
            As[kl * AS + ml + 32u * r] = val;
        }
        conv_load_b(t, 0u, o0, k0);
        workgroupBarrier();
        conv_mma(&acc, tx, ty);
        workgroupBarrier();
    }
    conv_store(&acc, m0, 0u, o0, tx, ty);
}

// The 1x1 GEMM with vec4 loads along the pixel axis: needs H*W % 4 == 0 (the host checks), so the
// four pixels of a vec4 lie in one image.
@group(0) @binding(1) var<storage, read> cx4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn conv2d_1x1_vec4(@builtin(local_invocation_index) t: u32,
                   @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * BM;
    let o0 = wid.z * BN;
    let kl = t / 32u;
    let m4 = (t % 32u) * 4u;
    let m = m0 + m4;
    let ok = m < cp.m;
    let mm = min(m, cp.m - 4u);
    let base = (mm / cp.hw) * cp.c * cp.hw + mm % cp.hw;
    let k_hi = conv_k_hi();
    var acc: array<f32, 32>;
    for (var k0 = conv_k_lo(); k0 < k_hi; k0 += BK) {
        let k = k0 + kl;
        var val = vec4<f32>(0.0);
        if (k < k_hi && ok) {
            val = cx4[(base + k * cp.hw) / 4u];
        }
        for (var i = 0u; i < 4u; i++) { As[kl * AS + m4 + i] = val[i]; }
        conv_load_b(t, 0u, o0, k0);
        workgroupBarrier();
        conv_mma(&acc, t % 16u, t / 16u);
        workgroupBarrier();
    }
    conv_store(&acc, m0, 0u, o0, t % 16u, t / 16u);
}

@compute @workgroup_size(256)
fn conv2d_depthwise(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    let total = cp.n * cp.o * cp.howo;
    if (idx >= total) { return; }
    let p = idx % cp.howo;
    let no = idx / cp.howo;
    let o = no % cp.o;
    let nimg = no / cp.o;
    let oh = p / cp.wo;
    let ow = p % cp.wo;
    let c = o / cp.og;                    // one input channel per group
    let xb = (nimg * cp.c + c) * cp.hw;
    let wb = o * cp.khw;
    let ih0 = i32(oh * cp.sh) - i32(cp.pt);
    let iw0 = i32(ow * cp.sw) - i32(cp.pl);
    let u_hi = conv_u_hi();
    let v_lo = conv_v_lo();
    let v_hi = conv_v_hi();
    var acc = 0.0;
    // A padded tap multiplies its weight by 0 (as PyTorch's padded zeros do: 0 · Inf is NaN).
    for (var u = conv_u_lo(); u < u_hi; u++) {
        let ih = ih0 + i32(u * cp.dh);
        let row_in = ih >= 0 && ih < i32(cp.h);
        let row = xb + u32(max(ih, 0)) * cp.w;
        for (var v = v_lo; v < v_hi; v++) {
            let iw = iw0 + i32(v * cp.dw);
            var xv = 0.0;
            if (row_in && iw >= 0 && iw < i32(cp.w)) { xv = cx[row + u32(iw)]; }
            acc = fma(cw[wb + u * cp.kw + v], xv, acc);
        }
    }
    conv_put(idx, acc, o);
}

// ---- conv2d_depthwise_tile --------------------------------------------------------------------
override DW_TX: u32 = 32u;   // invocations along the output columns; 256 / DW_TX along the rows
override DW_Q: u32 = 1u;     // output channels per invocation: 1, or 4 (O/C % 4 == 0)
const DW_R: u32 = 4u;        // output rows per invocation
// Capacities (the host checks them): (tile rows + KH - 1) * (tile cols + KW - 1) and KH * KW.
var<workgroup> dw_tile: array<f32, 3072>;
var<workgroup> dw_w: array<vec4<f32>, 256>;

fn dw_store(nimg: u32, o: u32, oh: u32, ow: u32, v: f32) {
    if (oh < cp.ho && ow < cp.wo) {
        conv_put(((nimg * cp.o + o) * cp.ho + oh) * cp.wo + ow, v, o);
    }
}

// Workgroup wg: tile = wg % tiles, then (image, input channel, group of DW_Q output channels).
@compute @workgroup_size(256)
fn conv2d_depthwise_tile(@builtin(local_invocation_index) t: u32,
                         @builtin(workgroup_id) wid: vec3<u32>,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
    let th = (256u / DW_TX) * DW_R;     // output rows of a tile
    let tiles_x = (cp.wo + DW_TX - 1u) / DW_TX;
    let tiles = tiles_x * ((cp.ho + th - 1u) / th);
    let qn = cp.og / DW_Q;
    let wg = wid.x + wid.y * nwg.x;
    let rest = wg / tiles;
    if (rest >= cp.n * cp.c * qn) { return; }
    let tile = wg % tiles;
    let q = rest % qn;
    let nc = rest / qn;                 // nimg * C + c
    let nimg = nc / cp.c;
    let o0 = (nc % cp.c) * cp.og + q * DW_Q;
    let oh0 = (tile / tiles_x) * th;
    let ow0 = (tile % tiles_x) * DW_TX;
    let ic = DW_TX + cp.kw - 1u;        // row pitch of the tile
    let cells = (th + cp.kh - 1u) * ic;
    let xb = nc * cp.hw;
    for (var i = t; i < cells; i += 256u) {
        let ih = i32(oh0 + i / ic) - i32(cp.pt);
        let iw = i32(ow0 + i % ic) - i32(cp.pl);
        var v = 0.0;
        if (ih >= 0 && ih < i32(cp.h) && iw >= 0 && iw < i32(cp.w)) {
            v = cx[xb + u32(ih) * cp.w + u32(iw)];
        }
        dw_tile[i] = v;
    }
    for (var k = t; k < cp.khw; k += 256u) {
        var wv = vec4<f32>(0.0);
        for (var j = 0u; j < DW_Q; j++) { wv[j] = cw[(o0 + j) * cp.khw + k]; }
        dw_w[k] = wv;
    }
    workgroupBarrier();

    let tx = t % DW_TX;
    let ty = t / DW_TX;
    // acc[i]: output row i, channels j < DW_Q in the lanes (DW_Q = 1: lane 0).
    var acc: array<vec4<f32>, 4>;
    let u_lo = conv_u_lo();
    let u_hi = conv_u_hi();
    let v_hi = conv_v_hi();
    for (var v = conv_v_lo(); v < v_hi; v++) {
        var p = (ty * DW_R + u_lo) * ic + tx + v;
        // Input rows u + i for output rows i < 4 at kernel row u: r0..r3.
        var r0 = dw_tile[p];
        var r1 = dw_tile[p + ic];
        var r2 = dw_tile[p + 2u * ic];
        p += 3u * ic;
        for (var u = u_lo; u < u_hi; u++) {
            let r3 = dw_tile[p];
            let wv = dw_w[u * cp.kw + v];
            acc[0] = fma(vec4<f32>(r0), wv, acc[0]);
            acc[1] = fma(vec4<f32>(r1), wv, acc[1]);
            acc[2] = fma(vec4<f32>(r2), wv, acc[2]);
            acc[3] = fma(vec4<f32>(r3), wv, acc[3]);
            r0 = r1;
            r1 = r2;
            r2 = r3;
            p += ic;
        }
    }
    // Row by row with constant indices into acc (a dynamic one could send it to local memory).
    let ow = ow0 + tx;
    let oh = oh0 + ty * DW_R;
    dw_store_row(nimg, o0, oh, ow, acc[0]);
    dw_store_row(nimg, o0, oh + 1u, ow, acc[1]);
    dw_store_row(nimg, o0, oh + 2u, ow, acc[2]);
    dw_store_row(nimg, o0, oh + 3u, ow, acc[3]);
}

fn dw_store_row(nimg: u32, o0: u32, oh: u32, ow: u32, v: vec4<f32>) {
    for (var j = 0u; j < DW_Q; j++) { dw_store(nimg, o0 + j, oh, ow, v[j]); }
}

// ---- conv2d_db, conv2d_1x1_db -----------------------------------------------------------------
// Tiles k-major: Ad4[buf * 256 + k * 32 + m / 4] holds pixels m..m+3 of reduction index k. The
// weight tile holds channels o..o+3 in Bd4[buf * 136 + k * 17 + o / 4] (64 channels, rows padded
// to 17 vec4), or with DB_WIDE in Bd4[buf * 256 + k * 32 + o / 4] (128 channels: each pixel tile
// gathered once for twice the channels, and 8x8 outputs per invocation).
var<workgroup> Ad4: array<vec4<f32>, 512>;
var<workgroup> Bd4: array<vec4<f32>, 512>;
// DB_1X1: conv2d_db without index decoding (1x1, stride 1, no padding, one group).
override DB_1X1: bool = false;
override DB_WIDE: bool = false;

fn db_bn() -> u32 { return select(BN, 2u * BN, DB_WIDE); }

// The weights of one step, each vec4 of the tile read and stored whole by one invocation
// (invocations must not share a vector: a write to one component may touch all of it): four
// channels o0 + 4 q + j (j < 4) at k0 + k, for (k, q) = (t % 8, t / 8) and t < 128, or with
// DB_WIDE (t / 32, t % 32) for every t. Zero outside.
fn db_conv_load_b(t: u32, g: u32, o0: u32, k0: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    var k = k0 + t % BK;
    var q = t / BK;
    if (DB_WIDE) {
        k = k0 + t / 32u;
        q = t % 32u;
    }
    if ((DB_WIDE || t < 128u) && k < conv_k_hi()) {
        for (var j = 0u; j < 4u; j++) {
            let o = o0 + q * 4u + j;
            if (o < cp.og) { v[j] = cw[(g * cp.og + o) * cp.kdim + k]; }
        }
    }
    return v;
}

fn db_conv_store_b(buf: u32, t: u32, v: vec4<f32>) {
    if (DB_WIDE) {
        Bd4[buf * 256u + t] = v;
    } else if (t < 128u) {
        Bd4[buf * 136u + (t % BK) * 17u + t / BK] = v;
    }
}

// One k step: invocation (tx, ty) owns pixels 4 tx + i and 64 + 4 tx + i (acc[i], acc[4 + i]) of
// channels 4 ty + j, and with DB_WIDE also of channels 64 + 4 ty + j (acc[8 + i], acc[12 + i]).
fn db_conv_mma(acc: ptr<function, array<vec4<f32>, 16>>, buf: u32, tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        let a0 = Ad4[buf * 256u + kk * 32u + tx];
        let a1 = Ad4[buf * 256u + kk * 32u + 16u + tx];
        // Written out, so every index into acc is a constant whatever the driver unrolls.
        var b0: vec4<f32>;
        if (DB_WIDE) {
            b0 = Bd4[buf * 256u + kk * 32u + ty];
        } else {
            b0 = Bd4[buf * 136u + kk * 17u + ty];
        }
        (*acc)[0] = fma(vec4<f32>(a0.x), b0, (*acc)[0]);
        (*acc)[1] = fma(vec4<f32>(a0.y), b0, (*acc)[1]);
        (*acc)[2] = fma(vec4<f32>(a0.z), b0, (*acc)[2]);
        (*acc)[3] = fma(vec4<f32>(a0.w), b0, (*acc)[3]);
        (*acc)[4] = fma(vec4<f32>(a1.x), b0, (*acc)[4]);
        (*acc)[5] = fma(vec4<f32>(a1.y), b0, (*acc)[5]);
        (*acc)[6] = fma(vec4<f32>(a1.z), b0, (*acc)[6]);
        (*acc)[7] = fma(vec4<f32>(a1.w), b0, (*acc)[7]);
        if (DB_WIDE) {
            let b1 = Bd4[buf * 256u + kk * 32u + 16u + ty];
            (*acc)[8] = fma(vec4<f32>(a0.x), b1, (*acc)[8]);
            (*acc)[9] = fma(vec4<f32>(a0.y), b1, (*acc)[9]);
            (*acc)[10] = fma(vec4<f32>(a0.z), b1, (*acc)[10]);
            (*acc)[11] = fma(vec4<f32>(a0.w), b1, (*acc)[11]);
            (*acc)[12] = fma(vec4<f32>(a1.x), b1, (*acc)[12]);
            (*acc)[13] = fma(vec4<f32>(a1.y), b1, (*acc)[13]);
            (*acc)[14] = fma(vec4<f32>(a1.z), b1, (*acc)[14]);
            (*acc)[15] = fma(vec4<f32>(a1.w), b1, (*acc)[15]);
        }
    }
}

fn db_conv_out(acc: ptr<function, array<vec4<f32>, 16>>, m0: u32, g: u32, o0: u32, tx: u32, ty: u32) {
    let p0 = m0 + 4u * tx;
    let c0 = o0 + 4u * ty;
    db_conv_out_px(p0, g, c0, (*acc)[0], (*acc)[8]);
    db_conv_out_px(p0 + 1u, g, c0, (*acc)[1], (*acc)[9]);
    db_conv_out_px(p0 + 2u, g, c0, (*acc)[2], (*acc)[10]);
    db_conv_out_px(p0 + 3u, g, c0, (*acc)[3], (*acc)[11]);
    db_conv_out_px(p0 + 64u, g, c0, (*acc)[4], (*acc)[12]);
    db_conv_out_px(p0 + 65u, g, c0, (*acc)[5], (*acc)[13]);
    db_conv_out_px(p0 + 66u, g, c0, (*acc)[6], (*acc)[14]);
    db_conv_out_px(p0 + 67u, g, c0, (*acc)[7], (*acc)[15]);
}

// Pixel m of an invocation's block: channels c0..c0+3 (lo) and, with DB_WIDE, c0+64..c0+67 (hi).
fn db_conv_out_px(m: u32, g: u32, c0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= cp.m) { return; }
    let nimg = m / cp.howo;
    let p = m % cp.howo;
    let blocks = select(1u, 2u, DB_WIDE);
    for (var h = 0u; h < blocks; h++) {
        for (var j = 0u; j < 4u; j++) {
            let o = c0 + h * 64u + j;
            if (o < cp.og) {
                let oc = g * cp.og + o;
                conv_put((nimg * cp.o + oc) * cp.howo + p, select(lo[j], hi[j], h == 1u), oc);
            }
        }
    }
}

@compute @workgroup_size(256)
fn conv2d_db(@builtin(local_invocation_index) t: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * BM;
    let g = wid.z / cp.otiles;
    let o0 = (wid.z % cp.otiles) * db_bn();
    // The pixels this invocation gathers: 4 ml + r of reduction row kl, one whole vec4 of the tile.
    let kl = t / 32u;
    let ml = t % 32u;
    var gs = gather_setup(m0, 4u * ml, 1u, g);

    let k_lo = conv_k_lo();
    let k_hi = conv_k_hi();
    var buf = 0u;
    var va = vec4<f32>(0.0);
    var vb = db_conv_load_b(t, g, o0, k_lo);
    var acc: array<vec4<f32>, 16>;
    for (var k0 = k_lo; k0 < k_hi + BK; k0 += BK) {
        // Gather step k0 into registers (the last pass of the loop only multiplies).
        if (k0 < k_hi) { va = gather(&gs, k0 + kl); }
        if (k0 > k_lo) {
            // Multiply the step stored last time while this step's loads are in flight.
            db_conv_mma(&acc, 1u - buf, t % 16u, t / 16u);
        }
        if (k0 < k_hi) {
            Ad4[buf * 256u + kl * 32u + ml] = va;
            db_conv_store_b(buf, t, vb);
            vb = db_conv_load_b(t, g, o0, k0 + BK);
        }
        workgroupBarrier();
        buf = 1u - buf;
    }
    db_conv_out(&acc, m0, g, o0, t % 16u, t / 16u);
}

// conv2d_db's 1x1 GEMM with a vec4 of four pixels per load (H*W % 4 == 0, as conv2d_1x1_vec4).
@compute @workgroup_size(256)
fn conv2d_1x1_db(@builtin(local_invocation_index) t: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * BM;
    let o0 = wid.z * db_bn();
    let kl = t / 32u;
    let m = m0 + (t % 32u) * 4u;
    let ok = m < cp.m;
    let mm = min(m, cp.m - 4u);
    let base = (mm / cp.hw) * cp.c * cp.hw + mm % cp.hw;
    let k_lo = conv_k_lo();
    let k_hi = conv_k_hi();
    var buf = 0u;
    var va = vec4<f32>(0.0);
    var vb = db_conv_load_b(t, 0u, o0, k_lo);
    var acc: array<vec4<f32>, 16>;
    for (var k0 = k_lo; k0 < k_hi + BK; k0 += BK) {
        let k = k0 + kl;
        if (k0 < k_hi) {
            va = vec4<f32>(0.0);
            if (k < k_hi && ok) { va = cx4[(base + k * cp.hw) / 4u]; }
        }
        if (k0 > k_lo) { db_conv_mma(&acc, 1u - buf, t % 16u, t / 16u); }
        if (k0 < k_hi) {
            Ad4[buf * 256u + kl * 32u + t % 32u] = va;
            db_conv_store_b(buf, t, vb);
            vb = db_conv_load_b(t, 0u, o0, k0 + BK);
        }
        workgroupBarrier();
        buf = 1u - buf;
    }
    db_conv_out(&acc, m0, 0u, o0, t % 16u, t / 16u);
}
