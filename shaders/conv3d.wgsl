// conv3d.wgsl: 3-D convolution of [N, C, T, H, W] video with PyTorch semantics (cross-correlation,
// zero padding, stride and dilation per axis, groups) and the fused epilogue of conv2d:
// y = act((acc + bias[o]) * scale[o] + shift[o]).
//
// Entry points (chosen by src/ops/conv3d.rs):
//   conv3d_gemm      implicit GEMM: M = N*To*Ho*Wo output voxels x O/G output channels, reduction
//                    over K = C/G*KT*KH*KW; 128x64 tiles in workgroup memory (the voxels gathered
//                    on the fly, im2col style, the weights as a k-major tile), 8x4 outputs per
//                    invocation; NARROW: 256 voxels x 32 channels (16x2 outputs per invocation).
//   conv3d_direct    one output per invocation, the reduction in registers: for groups with few
//                    output channels (depthwise), where most of a 64-channel GEMM tile would idle.
//   conv3d_epilogue  the epilogue of a split reduction, once its parts are summed.
//
// SPLIT: a reduction longer than one invocation may loop in one dispatch (lavapipe stops a loop
// after 65,535 iterations) runs as consecutive dispatches over k_lo..k_hi of K, each within the
// host's loop budget; the first writes its partial sums, later ones (mode SPLIT_ACC) add to what
// the output holds, and conv3d_epilogue applies the epilogue once.

struct Conv3dParams {
    n: u32, c: u32, t: u32, h: u32,
    w: u32, o: u32, to: u32, ho: u32,
    wo: u32, groups: u32, kt: u32, kh: u32,
    kw: u32, st: u32, sh: u32, sw: u32,
    pf: u32, pt: u32, pl: u32, dt: u32,
    dh: u32, dw: u32, cg: u32, og: u32,
    kdim: u32, m: u32, taps: u32, khw: u32,     // C/G*KT*KH*KW, N*To*Ho*Wo, KT*KH*KW, KH*KW
    thw: u32, hw: u32, ohw: u32, othw: u32,     // T*H*W, H*W, Ho*Wo, To*Ho*Wo
    otiles: u32, k_lo: u32, k_hi: u32, mode: u32,
}

override HAS_BIAS: bool = false;
override HAS_AFFINE: bool = false;
override SPLIT: bool = false;
const SPLIT_ACC: u32 = 1u;   // add to what the output holds (every part but the first)

fn c3_k_lo() -> u32 { return select(0u, cp.k_lo, SPLIT); }
fn c3_k_hi() -> u32 { return select(cp.kdim, cp.k_hi, SPLIT); }

@group(0) @binding(0) var<uniform> cp: Conv3dParams;
@group(0) @binding(1) var<storage, read> cx: array<f32>;
@group(0) @binding(2) var<storage, read> cw: array<f32>;
@group(0) @binding(3) var<storage, read> cbias: array<f32>;
@group(0) @binding(4) var<storage, read> cscale: array<f32>;
@group(0) @binding(5) var<storage, read> cshift: array<f32>;
@group(0) @binding(6) var<storage, read_write> cy: array<f32>;

fn c3_epilogue(acc: f32, o: u32) -> f32 {
    var v = acc;
    if (HAS_BIAS) { v += cbias[o]; }
    if (HAS_AFFINE) { v = v * cscale[o] + cshift[o]; }
    return activate(v);
}

// Stores output i (channel o): the sum through the epilogue, or with SPLIT this part of it.
fn c3_put(i: u32, acc: f32, o: u32) {
    var v = acc;
    if (SPLIT) {
        if (cp.mode == SPLIT_ACC) { v += cy[i]; }
    } else {
        v = c3_epilogue(v, o);
    }
    cy[i] = v;
}

@compute @workgroup_size(256)
fn conv3d_epilogue(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= cp.n * cp.o * cp.othw) { return; }
    cy[i] = c3_epilogue(cy[i], (i / cp.othw) % cp.o);
}

// The input offset of a reduction index k = (channel, kernel frame, row, column) relative to an
// output voxel's first input, with its displacement along each axis.
struct Tap {
    coff: u32,
    dz: i32,
    dy: i32,
    dx: i32,
}

fn c3_tap(k: u32) -> Tap {
    var tp: Tap;
    tp.coff = (k / cp.taps) * cp.thw;
    let rem = k % cp.taps;
    let r2 = rem % cp.khw;
    tp.dz = i32((rem / cp.khw) * cp.dt);
    tp.dy = i32((r2 / cp.kw) * cp.dh);
    tp.dx = i32((r2 % cp.kw) * cp.dw);
    return tp;
}

// The input at (base + coff, z0 + dz, y0 + dy, x0 + dx), zero in the padding.
fn c3_read(base: u32, z0: i32, y0: i32, x0: i32, tp: Tap) -> f32 {
    let z = z0 + tp.dz;
    let y = y0 + tp.dy;
    let x = x0 + tp.dx;
    if (z >= 0 && z < i32(cp.t) && y >= 0 && y < i32(cp.h) && x >= 0 && x < i32(cp.w)) {
        return cx[base + tp.coff + (u32(z) * cp.h + u32(y)) * cp.w + u32(x)];
    }
    return 0.0;
}

// ---- conv3d_direct ------------------------------------------------------------------------------
@compute @workgroup_size(256)
fn conv3d_direct(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * 256u;
    if (idx >= cp.n * cp.o * cp.othw) { return; }
    let p = idx % cp.othw;
    let no = idx / cp.othw;
    let o = no % cp.o;
    let nimg = no / cp.o;
    let g = o / cp.og;
    let base = (nimg * cp.c + g * cp.cg) * cp.thw;
    let r = p % cp.ohw;
    let z0 = i32((p / cp.ohw) * cp.st) - i32(cp.pf);
    let y0 = i32((r / cp.wo) * cp.sh) - i32(cp.pt);
    let x0 = i32((r % cp.wo) * cp.sw) - i32(cp.pl);
    let wb = o * cp.kdim;
    let k_hi = c3_k_hi();
    var acc = 0.0;
    // A padded tap multiplies its weight by 0 (as PyTorch's padded zeros do: 0 · Inf is NaN).
    for (var k = c3_k_lo(); k < k_hi; k++) {
        acc = fma(cw[wb + k], c3_read(base, z0, y0, x0, c3_tap(k)), acc);
    }
    c3_put(idx, acc, o);
}

// ---- conv3d_gemm --------------------------------------------------------------------------------
// NARROW: 256 voxels x 32 channels a tile (16 x 2 outputs per invocation) for groups of at most 32
// output channels, where half of a 64-channel tile would idle; the same multiply-adds per
// invocation and step, each voxel gathered once for fewer channels.
override NARROW: bool = false;
const BK: u32 = 8u;     // reduction step
const BS: u32 = 68u;    // padded row of Bs (64 + 4)

fn c3_bm() -> u32 { return select(128u, 256u, NARROW); }   // output voxels per tile
fn c3_bn() -> u32 { return select(64u, 32u, NARROW); }     // output channels per tile
fn c3_mi() -> u32 { return select(8u, 16u, NARROW); }      // voxels per invocation
fn c3_nj() -> u32 { return select(4u, 2u, NARROW); }       // channels per invocation
fn c3_as() -> u32 { return c3_bm() + 4u; }                 // padded row of As

var<workgroup> As: array<f32, 2080>;   // BK * (256 + 4): As[k * c3_as() + m]
var<workgroup> Bs: array<f32, 544>;    // BK * BS: Bs[k * BS + o]

// The voxels first + 32 r (r < 4, or 8 with NARROW) of the tile at m0 that an invocation
// gathers: offsets of their group's first input channel and the input coordinates of their first
// tap; ok: inside the batch.
struct Gather {
    base: array<u32, 8>,
    z0: array<i32, 8>,
    y0: array<i32, 8>,
    x0: array<i32, 8>,
    ok: array<bool, 8>,
}

fn c3_gather_setup(m0: u32, first: u32, g: u32) -> Gather {
    var gs: Gather;
    for (var r = 0u; r < c3_bm() / 32u; r++) {
        let m = m0 + first + 32u * r;
        gs.ok[r] = m < cp.m;
        let mm = min(m, cp.m - 1u);
        let nimg = mm / cp.othw;
        let p = mm % cp.othw;
        let q = p % cp.ohw;
        gs.base[r] = (nimg * cp.c + g * cp.cg) * cp.thw;
        gs.z0[r] = i32((p / cp.ohw) * cp.st) - i32(cp.pf);
        gs.y0[r] = i32((q / cp.wo) * cp.sh) - i32(cp.pt);
        gs.x0[r] = i32((q % cp.wo) * cp.sw) - i32(cp.pl);
    }
    return gs;
}

// Multiply-accumulate one BK step: invocation (tx, ty) owns voxels tx + 16 i (i < MI) and
// channels ty + 16 j (j < NJ), so workgroup reads are conflict-free and global writes coalesce.
fn c3_mma(acc: ptr<function, array<f32, 32>>, tx: u32, ty: u32) {
    let asz = c3_as();
    for (var kk = 0u; kk < BK; kk++) {
        var a: array<f32, 16>;
        var b: array<f32, 4>;
        for (var i = 0u; i < c3_mi(); i++) { a[i] = As[kk * asz + tx + 16u * i]; }
        for (var j = 0u; j < c3_nj(); j++) { b[j] = Bs[kk * BS + ty + 16u * j]; }
        for (var i = 0u; i < c3_mi(); i++) {
            for (var j = 0u; j < c3_nj(); j++) {
                (*acc)[i * c3_nj() + j] = fma(a[i], b[j], (*acc)[i * c3_nj() + j]);
            }
        }
    }
}

@compute @workgroup_size(256)
fn conv3d_gemm(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let m0 = (wid.x + wid.y * nwg.x) * c3_bm();
    let g = wid.z / cp.otiles;
    let o0 = (wid.z % cp.otiles) * c3_bn();
    let tx = t % 16u;
    let ty = t / 16u;
    // This invocation gathers voxels ml + 32 r of reduction row kl, and loads the weights of
    // channels t / 8 + 32 r (r < BN / 32) at row t % 8.
    let kl = t / 32u;
    let ml = t % 32u;
    var gs = c3_gather_setup(m0, ml, g);
    let bk = t % BK;
    let asz = c3_as();

    let k_hi = c3_k_hi();
    var acc: array<f32, 32>;
    for (var k0 = c3_k_lo(); k0 < k_hi; k0 += BK) {
        let k = k0 + kl;
        let kin = k < k_hi;
        let tp = c3_tap(min(k, cp.kdim - 1u));
        for (var r = 0u; r < c3_bm() / 32u; r++) {
            var v = 0.0;
            if (kin && gs.ok[r]) { v = c3_read(gs.base[r], gs.z0[r], gs.y0[r], gs.x0[r], tp); }
            As[kl * asz + ml + 32u * r] = v;
        }
        let kb = k0 + bk;
        for (var r = 0u; r < c3_bn() / 32u; r++) {
            let ol = t / BK + 32u * r;
            let o = o0 + ol;
            var v = 0.0;
            if (o < cp.og && kb < k_hi) { v = cw[(g * cp.og + o) * cp.kdim + kb]; }
            Bs[bk * BS + ol] = v;
        }
        workgroupBarrier();
        c3_mma(&acc, tx, ty);
        workgroupBarrier();
    }
    for (var i = 0u; i < c3_mi(); i++) {
        let m = m0 + tx + 16u * i;
        if (m >= cp.m) { continue; }
        let nimg = m / cp.othw;
        let p = m % cp.othw;
        for (var j = 0u; j < c3_nj(); j++) {
            let o = o0 + ty + 16u * j;
            if (o < cp.og) {
                let oc = g * cp.og + o;
                c3_put((nimg * cp.o + oc) * cp.othw + p, acc[i * c3_nj() + j], oc);
            }
        }
    }
}
