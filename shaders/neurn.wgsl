// neurn.wgsl: NeuRN (Jalil, Qazi, Iqbal 2025; docs/ops.md, NeuRN): the local standard deviation of
// each channel over a k x k window (zero 'SAME' padding, divisor k^2), divided by its maximum over
// the scope (per (n, c) plane, or per image) plus eps. No learned parameters.
//
//   neurn_max    sigma per pixel; the scope's maximum via atomicMax on the f32 bits (sigma >= 0, so
//                the bits order like the values); the max buffer is cleared first
//   neurn_apply  sigma again (recomputed: cheaper than storing it), divided by max + eps; with
//                REVERSE the planes last to first
// Small k: exact two-pass moments over the window in the kernel (WINDOW = true). Large k: E[x] and
// E[x^2] come from box_filter.wgsl (dn_a, dn_b) and var = max(E[x^2] - E[x]^2, 0).

struct NeurnParams {
    planes: u32, h: u32, w: u32, k: u32,
    before: u32, total: u32, scope_div: u32, eps: f32,   // scope index = plane / scope_div
    inv_k2: f32, tiles: u32, _p0: u32, _p1: u32,         // tiles: workgroups per plane
}
override WINDOW: bool = true;
// neurn_apply walks the planes last to first (the max pass read them first to last).
override REVERSE: bool = false;

@group(0) @binding(0) var<uniform> np: NeurnParams;
@group(0) @binding(1) var<storage, read> nr_x: array<f32>;
@group(0) @binding(2) var<storage, read> nr_mean: array<f32>;   // large-k path: E[x]
@group(0) @binding(3) var<storage, read> nr_sq: array<f32>;     // large-k path: E[x^2]
@group(0) @binding(4) var<storage, read_write> nr_max: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> nr_y: array<f32>;

fn nr_sigma(plane: u32, p: u32) -> f32 {
    let i = plane * np.h * np.w + p;
    if (!WINDOW) {
        let m = nr_mean[i];
        let v = nr_sq[i] - m * m;
        // max(v, 0) keeping a NaN (WGSL's max may drop it).
        return sqrt(select(max(v, 0.0), v, (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u));
    }
    let row = i32(p / np.w);
    let col = i32(p % np.w);
    let r0 = max(row - i32(np.before), 0);
    let r1 = min(row - i32(np.before) + i32(np.k), i32(np.h));
    let c0 = max(col - i32(np.before), 0);
    let c1 = min(col - i32(np.before) + i32(np.k), i32(np.w));
    let base = plane * np.h * np.w;
    var s = 0.0;
    for (var r = r0; r < r1; r++) {
        for (var c = c0; c < c1; c++) { s += nr_x[base + u32(r) * np.w + u32(c)]; }
    }
    let mean = s * np.inv_k2;
    // Padded positions are zeros: each contributes mean^2.
    let inside = f32((r1 - r0) * (c1 - c0));
    var q = (f32(np.k * np.k) - inside) * mean * mean;
    for (var r = r0; r < r1; r++) {
        for (var c = c0; c < c1; c++) {
            let d = nr_x[base + u32(r) * np.w + u32(c)] - mean;
            q = fma(d, d, q);
        }
    }
    return sqrt(q * np.inv_k2);
}

// The maximum is taken on the bits: sigma >= 0 orders like its bits, and a NaN (any sign) has
// larger bits than every sigma, so a NaN sigma makes its scope's maximum NaN (as torch's max).
var<workgroup> nr_red: array<u32, 256>;

// Workgroups cover 256 pixels of one plane each: wg = plane * tiles + tile.
@compute @workgroup_size(256)
fn neurn_max(@builtin(local_invocation_index) t: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let plane = wg / np.tiles;
    if (plane >= np.planes) { return; }
    let p = (wg % np.tiles) * 256u + t;
    var b = 0u;
    if (p < np.h * np.w) {
        b = bitcast<u32>(nr_sigma(plane, p));
        // -0.0 (sign bit set) counts as 0.
        b = select(b, 0u, b == 0x80000000u);
    }
    nr_red[t] = b;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { nr_red[t] = max(nr_red[t], nr_red[t + k]); }
        workgroupBarrier();
    }
    if (t == 0u) { atomicMax(&nr_max[plane / np.scope_div], nr_red[0]); }
}

@compute @workgroup_size(256)
fn neurn_apply(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    var plane = wg / np.tiles;
    let p = (wg % np.tiles) * 256u + t;
    if (plane >= np.planes || p >= np.h * np.w) { return; }
    if (REVERSE) { plane = np.planes - 1u - plane; }
    let m = bitcast<f32>(atomicLoad(&nr_max[plane / np.scope_div]));
    nr_y[plane * np.h * np.w + p] = nr_sigma(plane, p) / (m + np.eps);
}
