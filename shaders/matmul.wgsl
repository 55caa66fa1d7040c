// matmul.wgsl: batched C[b] = A[b] (M x K) * B[b] (K x N, or N x K with TRANS_B) + bias[N], then
// the common activation. Batch strides of 0 broadcast an operand (a linear layer's weight).
// 128x128 tiles in workgroup memory, BK = 8, 8x8 outputs per invocation.
//   matmul, matmul_vec4   one tile buffer, two barriers per step, scalar workgroup reads
//   matmul_db             vec4 loads, two tile buffers (the next step's global loads are in flight
//                         while this step multiplies; one barrier per step), and each invocation's
//                         8x8 block as 2x2 groups of 4x4 so its operands come in four vec4
//                         workgroup reads per k instead of sixteen scalar ones
//   matmul_dot   for products of fewer than 8 tiles (a linear layer on a few rows, a timestep token):
//                one invocation per output, a dot product over K, so the work spreads over many
//                workgroups instead of one or two
// SPLIT (split K): a reduction longer than one invocation may loop in one dispatch (the host
// keeps each dispatch's k range within its loop budget) runs as consecutive dispatches over
// k_lo..k_hi: the first writes its partial sums, later ones (mode SPLIT_ACC) add what the output
// holds, and matmul_epilogue then adds the bias and applies the activation once. The split
// pipelines carry no epilogue, so there is one per kernel and layout (what the driver unrolls, and
// so how many iterations its loops take, can differ between pipelines; these few are each checked
// at the full budget). Without it the kernels run 0..K.

struct MatmulParams {
    m: u32, n: u32, k: u32, batch: u32,
    a_stride: u32, b_stride: u32, c_stride: u32, ntiles: u32,
    k_lo: u32, k_hi: u32, mode: u32, pad: u32,   // SPLIT only
}

override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override SPLIT: bool = false;
const SPLIT_ACC: u32 = 1u;   // add to what the output holds (every chunk but the first)

fn mm_k_lo() -> u32 { return select(0u, mp.k_lo, SPLIT); }
fn mm_k_hi() -> u32 { return select(mp.k, mp.k_hi, SPLIT); }

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(1) var<storage, read> ma: array<f32>;
@group(0) @binding(2) var<storage, read> mb: array<f32>;
@group(0) @binding(3) var<storage, read> mbias: array<f32>;
@group(0) @binding(4) var<storage, read_write> mc: array<f32>;

// Stores output i (column n): the sum through bias and activation, or with SPLIT this chunk's
// part of it.
fn mm_put(i: u32, n: u32, acc: f32) {
    var v = acc;
    if (SPLIT) {
        if (mp.mode == SPLIT_ACC) { v += mc[i]; }
    } else {
        if (HAS_BIAS) { v += mbias[n]; }
        v = activate(v);
    }
    mc[i] = v;
}

// The bias and activation of a split product, once its chunks are summed: one invocation per output.
@compute @workgroup_size(256)
fn matmul_epilogue(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= mp.batch * mp.m * mp.n) { return; }
    var v = mc[i];
    if (HAS_BIAS) { v += mbias[i % mp.n]; }
    mc[i] = activate(v);
}

const TM: u32 = 128u;
const TN: u32 = 128u;
const TK: u32 = 8u;
const PAD: u32 = 132u;   // padded tile row (128 + 4): conflict-free stores

var<workgroup> Am: array<f32, 1056>;   // Am[k * PAD + m]
var<workgroup> Bm: array<f32, 1056>;   // Bm[k * PAD + n]

// Multiply-accumulate one TK step of the tiles: invocation (tx, ty) owns rows ty + 16 i and
// columns tx + 16 j (conflict-free workgroup reads, coalesced writes).
fn mm_compute(acc: ptr<function, array<f32, 64>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < TK; kk++) {
        var a: array<f32, 8>;
        var b: array<f32, 8>;
        for (var i = 0u; i < 8u; i++) { a[i] = Am[kk * PAD + ty + 16u * i]; }
        for (var j = 0u; j < 8u; j++) { b[j] = Bm[kk * PAD + tx + 16u * j]; }
        for (var i = 0u; i < 8u; i++) {
            for (var j = 0u; j < 8u; j++) {
                (*acc)[i * 8u + j] = fma(a[i], b[j], (*acc)[i * 8u + j]);
            }
        }
    }
}

fn mm_store(acc: ptr<function, array<f32, 64>>, batch: u32, m0: u32, n0: u32, tx: u32, ty: u32) {
    let cbase = batch * mp.c_stride;
    for (var i = 0u; i < 8u; i++) {
        let m = m0 + ty + 16u * i;
        if (m >= mp.m) { continue; }
        for (var j = 0u; j < 8u; j++) {
            let n = n0 + tx + 16u * j;
            if (n < mp.n) { mm_put(cbase + m * mp.n + n, n, (*acc)[i * 8u + j]); }
        }
    }
}

@compute @workgroup_size(256)
fn matmul(@builtin(local_invocation_index) t: u32,
          @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let batch = wid.z;
    let tile = wid.x + wid.y * nwg.x;          // n-tiles vary fastest
    let n0 = (tile % mp.ntiles) * TN;
    let m0 = (tile / mp.ntiles) * TM;
    if (m0 >= mp.m) { return; }
    let abase = batch * mp.a_stride;
    let bbase = batch * mp.b_stride;

    let k_hi = mm_k_hi();
    var acc: array<f32, 64>;
    for (var k0 = mm_k_lo(); k0 < k_hi; k0 += TK) {
        // A tile: row-major A[m, k]; eight neighbouring invocations read eight consecutive k.
        let akl = t % TK;
        let ak = k0 + akl;
        for (var r = 0u; r < 4u; r++) {
            let ml = t / TK + 32u * r;
            let m = m0 + ml;
            var v = 0.0;
            if (m < mp.m && ak < k_hi) { v = ma[abase + m * mp.k + ak]; }
            Am[akl * PAD + ml] = v;
        }
        if (TRANS_B) {
            // B stored as [N, K]: like A.
            for (var r = 0u; r < 4u; r++) {
                let nl = t / TK + 32u * r;
                let n = n0 + nl;
                var v = 0.0;
                if (n < mp.n && ak < k_hi) { v = mb[bbase + n * mp.k + ak]; }
                Bm[akl * PAD + nl] = v;
            }
        } else {
            // B stored as [K, N]: neighbouring invocations read neighbouring n.
            let nl = t % TN;
            let n = n0 + nl;
            for (var r = 0u; r < 4u; r++) {
                let kl = t / TN + 2u * r;
                let k = k0 + kl;
                var v = 0.0;
                if (n < mp.n && k < k_hi) { v = mb[bbase + k * mp.n + n]; }
                Bm[kl * PAD + nl] = v;
            }
        }
        workgroupBarrier();
        mm_compute(&acc, t % 16u, t / 16u);
        workgroupBarrier();
    }
    mm_store(&acc, batch, m0, n0, t % 16u, t / 16u);
}

// The same with vec4 loads: needs K % 4 == 0, and N % 4 == 0 unless TRANS_B (the host checks).
@group(0) @binding(1) var<storage, read> ma4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> mb4: array<vec4<f32>>;

@compute @workgroup_size(256)
fn matmul_vec4(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let batch = wid.z;
    let tile = wid.x + wid.y * nwg.x;
    let n0 = (tile % mp.ntiles) * TN;
    let m0 = (tile / mp.ntiles) * TM;
    if (m0 >= mp.m) { return; }
    let abase = batch * mp.a_stride;
    let bbase = batch * mp.b_stride;

    let k_hi = mm_k_hi();
    var acc: array<f32, 64>;
    for (var k0 = mm_k_lo(); k0 < k_hi; k0 += TK) {
        // A tile: one vec4 of four consecutive k per invocation (two per row of the tile).
        let rl = t / 2u;
        let k4 = (t % 2u) * 4u;
        let m = m0 + rl;
        var va = vec4<f32>(0.0);
        if (m < mp.m && k0 + k4 < k_hi) { va = ma4[(abase + m * mp.k + k0 + k4) / 4u]; }
        for (var i = 0u; i < 4u; i++) { Am[(k4 + i) * PAD + rl] = va[i]; }
        if (TRANS_B) {
            let n = n0 + rl;
            var vb = vec4<f32>(0.0);
            if (n < mp.n && k0 + k4 < k_hi) { vb = mb4[(bbase + n * mp.k + k0 + k4) / 4u]; }
            for (var i = 0u; i < 4u; i++) { Bm[(k4 + i) * PAD + rl] = vb[i]; }
        } else {
            // One vec4 of four consecutive n per invocation: 32 per row, eight rows.
            let kl = t / 32u;
            let n4 = (t % 32u) * 4u;
            var vb = vec4<f32>(0.0);
            if (k0 + kl < k_hi && n0 + n4 < mp.n) { vb = mb4[(bbase + (k0 + kl) * mp.n + n0 + n4) / 4u]; }
            for (var i = 0u; i < 4u; i++) { Bm[kl * PAD + n4 + i] = vb[i]; }
        }
        workgroupBarrier();
        mm_compute(&acc, t % 16u, t / 16u);
        workgroupBarrier();
    }
    mm_store(&acc, batch, m0, n0, t % 16u, t / 16u);
}

@compute @workgroup_size(256)
fn matmul_dot(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    let per = mp.m * mp.n;
    if (o >= per * mp.batch) { return; }
    let batch = o / per;
    let r = o % per;
    let m = r / mp.n;
    let n = r % mp.n;
    let abase = batch * mp.a_stride + m * mp.k;
    let k_lo = mm_k_lo();
    let k_hi = mm_k_hi();
    var acc = 0.0;
    if (TRANS_B) {
        let bbase = batch * mp.b_stride + n * mp.k;
        for (var k = k_lo; k < k_hi; k++) { acc = fma(ma[abase + k], mb[bbase + k], acc); }
    } else {
        let bbase = batch * mp.b_stride + n;
        for (var k = k_lo; k < k_hi; k++) { acc = fma(ma[abase + k], mb[bbase + k * mp.n], acc); }
    }
    mm_put(batch * mp.c_stride + m * mp.n + n, n, acc);
}

// ---- matmul_db --------------------------------------------------------------------------------
// Tiles k-major: Ad[buf * 256 + k * 32 + m / 4] holds rows m..m+3 of column k (likewise Bd for n).
var<workgroup> Ad: array<vec4<f32>, 512>;
var<workgroup> Bd: array<vec4<f32>, 512>;

// One step's global loads. Every vec4 of a tile is written by one invocation (a write to one
// component of a vector may touch the whole vector, so invocations must not share one): the
// row-major operands (A, and B [N, K] with TRANS_B) are read as 4 x 4 blocks, four rows by four
// consecutive k, one block per invocation (t < 64 for A, 64 <= t < 128 for a transposed B: row
// quad b / 2 and k quad b % 2 of block b = t % 64), and transposed in registers; B [K, N] is one
// vec4 of four consecutive n per invocation. Zero outside.
struct DbLoad {
    blk: array<vec4<f32>, 4>,
    vb: vec4<f32>,
}

fn db_load(t: u32, abase: u32, bbase: u32, m0: u32, n0: u32, k0: u32) -> DbLoad {
    var l: DbLoad;
    let k_hi = mm_k_hi();
    let b = t % 64u;
    let k = k0 + (b % 2u) * 4u;
    let r0 = (b / 2u) * 4u;
    if (t < 64u) {
        for (var i = 0u; i < 4u; i++) {
            let m = m0 + r0 + i;
            if (m < mp.m && k < k_hi) { l.blk[i] = ma4[(abase + m * mp.k + k) / 4u]; }
        }
    } else if (TRANS_B && t < 128u) {
        for (var i = 0u; i < 4u; i++) {
            let n = n0 + r0 + i;
            if (n < mp.n && k < k_hi) { l.blk[i] = mb4[(bbase + n * mp.k + k) / 4u]; }
        }
    }
    if (!TRANS_B) {
        let kk = k0 + t / 32u;
        let n = n0 + (t % 32u) * 4u;
        if (kk < k_hi && n < mp.n) { l.vb = mb4[(bbase + kk * mp.n + n) / 4u]; }
    }
    return l;
}

fn db_store(buf: u32, t: u32, l: DbLoad) {
    let b = t % 64u;
    if (t < 64u || (TRANS_B && t < 128u)) {
        for (var j = 0u; j < 4u; j++) {
            let v = vec4<f32>(l.blk[0][j], l.blk[1][j], l.blk[2][j], l.blk[3][j]);
            let at = buf * 256u + ((b % 2u) * 4u + j) * 32u + b / 2u;
            if (t < 64u) { Ad[at] = v; } else { Bd[at] = v; }
        }
    }
    if (!TRANS_B) { Bd[buf * 256u + (t / 32u) * 32u + t % 32u] = l.vb; }
}

@compute @workgroup_size(256)
fn matmul_db(@builtin(local_invocation_index) t: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let batch = wid.z;
    let tile = wid.x + wid.y * nwg.x;
    let n0 = (tile % mp.ntiles) * TN;
    let m0 = (tile / mp.ntiles) * TM;
    if (m0 >= mp.m) { return; }
    let abase = batch * mp.a_stride;
    let bbase = batch * mp.b_stride;
    // Rows 4 ty + i and 64 + 4 ty + i, columns 4 tx + j and 64 + 4 tx + j.
    let tx = t % 16u;
    let ty = t / 16u;

    let k_lo = mm_k_lo();
    let k_hi = mm_k_hi();
    db_store(0u, t, db_load(t, abase, bbase, m0, n0, k_lo));
    workgroupBarrier();
    var acc: array<vec4<f32>, 16>;   // acc[4 * gi + ... ]: row block gi (2) x row i (4), column block in pairs
    var buf = 0u;
    for (var k0 = k_lo; k0 < k_hi; k0 += TK) {
        let more = k0 + TK < k_hi;
        var next: DbLoad;
        if (more) { next = db_load(t, abase, bbase, m0, n0, k0 + TK); }
        for (var kk = 0u; kk < TK; kk++) {
            let row = buf * 256u + kk * 32u;
            let a0 = Ad[row + ty];
            let a1 = Ad[row + 16u + ty];
            let b0 = Bd[row + tx];
            let b1 = Bd[row + 16u + tx];
            // Written out, so every index into acc is a constant whatever the driver unrolls (one
            // dynamic index anywhere can send the whole array to local memory).
            acc[0] = fma(vec4<f32>(a0.x), b0, acc[0]);
            acc[1] = fma(vec4<f32>(a0.x), b1, acc[1]);
            acc[2] = fma(vec4<f32>(a0.y), b0, acc[2]);
            acc[3] = fma(vec4<f32>(a0.y), b1, acc[3]);
            acc[4] = fma(vec4<f32>(a0.z), b0, acc[4]);
            acc[5] = fma(vec4<f32>(a0.z), b1, acc[5]);
            acc[6] = fma(vec4<f32>(a0.w), b0, acc[6]);
            acc[7] = fma(vec4<f32>(a0.w), b1, acc[7]);
            acc[8] = fma(vec4<f32>(a1.x), b0, acc[8]);
            acc[9] = fma(vec4<f32>(a1.x), b1, acc[9]);
            acc[10] = fma(vec4<f32>(a1.y), b0, acc[10]);
            acc[11] = fma(vec4<f32>(a1.y), b1, acc[11]);
            acc[12] = fma(vec4<f32>(a1.z), b0, acc[12]);
            acc[13] = fma(vec4<f32>(a1.z), b1, acc[13]);
            acc[14] = fma(vec4<f32>(a1.w), b0, acc[14]);
            acc[15] = fma(vec4<f32>(a1.w), b1, acc[15]);
        }
        if (more) { db_store(1u - buf, t, next); }
        workgroupBarrier();
        buf = 1u - buf;
    }

    let cbase = batch * mp.c_stride;
    let r0 = m0 + 4u * ty;
    let c0 = n0 + 4u * tx;
    db_out_row(cbase, r0, c0, acc[0], acc[1]);
    db_out_row(cbase, r0 + 1u, c0, acc[2], acc[3]);
    db_out_row(cbase, r0 + 2u, c0, acc[4], acc[5]);
    db_out_row(cbase, r0 + 3u, c0, acc[6], acc[7]);
    db_out_row(cbase, r0 + 64u, c0, acc[8], acc[9]);
    db_out_row(cbase, r0 + 65u, c0, acc[10], acc[11]);
    db_out_row(cbase, r0 + 66u, c0, acc[12], acc[13]);
    db_out_row(cbase, r0 + 67u, c0, acc[14], acc[15]);
}

// Row m of an invocation's block: columns c0..c0+3 (lo) and c0+64..c0+67 (hi), through mm_put.
fn db_out_row(cbase: u32, m: u32, c0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= mp.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        for (var h = 0u; h < 2u; h++) {
            let n = c0 + h * 64u + j;
            if (n < mp.n) { mm_put(cbase + m * mp.n + n, n, select(lo[j], hi[j], h == 1u)); }
        }
    }
}
