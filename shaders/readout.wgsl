// readout.wgsl: sampling the core's feature map and the likelihoods of neural responses
// (docs/ops.md: grid_sample, Gaussian readout, Poisson NLL, zero-inflated gamma log-density).
//   grid_sample       bilinear, zero padding, either align_corners (PyTorch semantics)
//   gaussian_readout  FullGaussian2d in eval mode, fused: position = clamp(mu, -1, 1) (+ shift[n]),
//                     bilinear sample of every channel, weighted by features[c, m], + bias[m]
//   poisson_nll       rate - target * log(rate + eps), elementwise or summed per workgroup
//   zig_loglik        the zero-inflated gamma log-density, masked form
//   sum_partials      the final sum of per-workgroup partial sums, times a scale

struct RoParams {
    n: u32, c: u32, h: u32, w: u32,
    m: u32, ho: u32, wo: u32, total: u32,
    eps: f32, scale: f32, count: u32, _p: u32,
    seed_lo: u32, seed_hi: u32, off_lo: u32, off_hi: u32,
    // gaussian_readout: the channels lo..hi of this dispatch, and `part`: bit 0 set = the first
    // chunk (else the partial sum in ro_y is continued), bit 1 set = the last (bias, activation).
    // The whole sum is lo = 0, hi = C, part = 3; a channel count past the loop budget is split.
    // pearson_part: trials lo..hi, `part` bit 0 = first chunk, bit 1 = last, bit 2 = the second pass.
    lo: u32, hi: u32, part: u32, _q: u32,
}
override ALIGN_CORNERS: bool = false;
override HAS_BIAS: bool = false;
override HAS_SHIFT: bool = false;
override REDUCE: bool = false;
// Sampling mode: positions drawn from each neuron's Gaussian (full covariance factor sigma [M, 2, 2]),
// z from Philox: element (n * M + m) * 2 + d of stream (seed, offset).
override SAMPLE: bool = false;
// Neuron order (ops::SortedReadout): slot j of mu, features and bias belongs to neuron ro_order[j]
// (an index held as f32, exact below 2^24), whose column of the output it writes. Slots are in
// Z-order of the positions, so neighbouring invocations sample neighbouring pixels.
override ORDER: bool = false;

@group(0) @binding(0) var<uniform> ro: RoParams;
@group(0) @binding(1) var<storage, read> ro_x: array<f32>;
@group(0) @binding(2) var<storage, read> ro_a: array<f32>;   // grid / mu / target / q
@group(0) @binding(3) var<storage, read> ro_b: array<f32>;   // features / theta
@group(0) @binding(4) var<storage, read> ro_c: array<f32>;   // bias / k
@group(0) @binding(5) var<storage, read> ro_d: array<f32>;   // shift / loc
@group(0) @binding(6) var<storage, read_write> ro_y: array<f32>;
@group(0) @binding(7) var<storage, read> ro_sigma: array<f32>;
@group(0) @binding(8) var<storage, read> ro_order: array<f32>;

// Pixel coordinate of a normalized one along an axis of `size` pixels.
fn unnormalize(g: f32, size: u32) -> f32 {
    if (ALIGN_CORNERS) { return (g + 1.0) * 0.5 * f32(size - 1u); }
    return ((g + 1.0) * f32(size) - 1.0) * 0.5;
}

// Whether the tap at pixel (xx, yy) (integer-valued floats) lies in the image. Tested in float,
// before any conversion to an integer, so a NaN or huge position (user data) is outside.
fn tap_inside(xx: f32, yy: f32) -> bool {
    return xx >= 0.0 && xx < f32(ro.w) && yy >= 0.0 && yy < f32(ro.h);
}

// clamp(v, lo, hi) that keeps a NaN (WGSL's clamp may turn it into a bound); a NaN position then
// samples nothing, as in PyTorch, instead of a border pixel.
// (NaN is tested on the bits: a compiler may fold v != v to false.)
fn clamp_nan(v: f32, lo: f32, hi: f32) -> f32 {
    return select(clamp(v, lo, hi), v, (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u);
}

// Bilinear sample of plane `base` of ro_x at normalized (gx, gy); outside pixels count 0.
fn bilinear(base: u32, gx: f32, gy: f32) -> f32 {
    let ix = unnormalize(gx, ro.w);
    let iy = unnormalize(gy, ro.h);
    let x0f = floor(ix);
    let y0f = floor(iy);
    let tx = ix - x0f;
    let ty = iy - y0f;
    var s = 0.0;
    for (var dy = 0; dy < 2; dy++) {
        for (var dx = 0; dx < 2; dx++) {
            let xx = x0f + f32(dx);
            let yy = y0f + f32(dy);
            if (tap_inside(xx, yy)) {
                let wgt = select(1.0 - tx, tx, dx == 1) * select(1.0 - ty, ty, dy == 1);
                s += wgt * ro_x[base + u32(yy) * ro.w + u32(xx)];
            }
        }
    }
    return s;
}

// One invocation per output [n, c, ho, wo]; ro_a = grid [N, Ho, Wo, 2].
@compute @workgroup_size(256)
fn grid_sample(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let hw = ro.ho * ro.wo;
    let p = i % hw;
    let nc = i / hw;
    let nimg = nc / ro.c;
    let g = (nimg * hw + p) * 2u;
    ro_y[i] = bilinear(nc * ro.h * ro.w, ro_a[g], ro_a[g + 1u]);
}

// One invocation per (n, slot m), slots varying fastest; ro_a = mu [M, 2], ro_b = features [C, M],
// ro_c = bias [M], ro_d = shift [N, 2].
@compute @workgroup_size(256)
fn gaussian_readout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let m = i % ro.m;
    let nimg = i / ro.m;
    var gx = clamp_nan(ro_a[2u * m], -1.0, 1.0);
    var gy = clamp_nan(ro_a[2u * m + 1u], -1.0, 1.0);
    if (SAMPLE) {
        let seed = vec2<u32>(ro.seed_lo, ro.seed_hi);
        let off = vec2<u32>(ro.off_lo, ro.off_hi);
        let zi = (nimg * ro.m + m) * 2u;
        let z0 = philox_normal(seed, off, zi);
        let z1 = philox_normal(seed, off, zi + 1u);
        gx = clamp_nan(gx + ro_sigma[4u * m] * z0 + ro_sigma[4u * m + 1u] * z1, -1.0, 1.0);
        gy = clamp_nan(gy + ro_sigma[4u * m + 2u] * z0 + ro_sigma[4u * m + 3u] * z1, -1.0, 1.0);
    }
    if (HAS_SHIFT) {
        gx += ro_d[2u * nimg];
        gy += ro_d[2u * nimg + 1u];
    }
    // The four taps and weights are the same for every channel: find them once.
    let ix = unnormalize(gx, ro.w);
    let iy = unnormalize(gy, ro.h);
    let x0f = floor(ix);
    let y0f = floor(iy);
    let tx = ix - x0f;
    let ty = iy - y0f;
    // Taps (x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1) as the lanes of two vectors (no
    // array, so nothing the channel loop reads can end up in local memory).
    let xs = vec4<f32>(x0f, x0f + 1.0, x0f, x0f + 1.0);
    let ys = vec4<f32>(y0f, y0f, y0f + 1.0, y0f + 1.0);
    let inside = vec4<bool>(tap_inside(xs.x, ys.x), tap_inside(xs.y, ys.y), tap_inside(xs.z, ys.z), tap_inside(xs.w, ys.w));
    let off = select(vec4<u32>(0u), vec4<u32>(ys) * ro.w + vec4<u32>(xs), inside);
    let wgt = select(vec4<f32>(0.0), vec4<f32>(1.0 - tx, tx, 1.0 - tx, tx) * vec4<f32>(1.0 - ty, 1.0 - ty, ty, ty), inside);
    let plane = ro.h * ro.w;
    var out = i;
    if (ORDER) { out = nimg * ro.m + u32(ro_order[m]); }
    var acc = 0.0;
    if ((ro.part & 1u) == 0u) { acc = ro_y[out]; }
    for (var c = ro.lo; c < ro.hi; c++) {
        let base = (nimg * ro.c + c) * plane;
        // An outside tap reads nothing (its value, not only its weight, is 0), so a NaN elsewhere in
        // the plane cannot leak in; a NaN at an inside tap gives NaN, as in PyTorch.
        let v = select(vec4<f32>(0.0), vec4<f32>(ro_x[base + off.x], ro_x[base + off.y], ro_x[base + off.z], ro_x[base + off.w]), inside);
        acc = fma(dot(wgt, v), ro_b[c * ro.m + m], acc);
    }
    if ((ro.part & 2u) == 0u) {
        ro_y[out] = acc;
        return;
    }
    if (HAS_BIAS) { acc += ro_c[m]; }
    ro_y[out] = activate(acc);
}

var<workgroup> ro_red: array<f32, 256>;

fn ro_partial(t: u32, wg: u32, v: f32) {
    ro_red[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) { ro_red[t] += ro_red[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) { ro_y[wg] = ro_red[0]; }
}

// ro_x = rate, ro_a = target. REDUCE: one partial sum per workgroup into ro_y.
@compute @workgroup_size(256)
fn poisson_nll(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    var l = 0.0;
    if (i < ro.total) {
        l = ro_x[i] - ro_a[i] * log(ro_x[i] + ro.eps);
        if (!REDUCE) { ro_y[i] = l; }
    }
    if (REDUCE) { ro_partial(t, wid.x + wid.y * nwg.x, l); }
}

// One partial sum per workgroup of ro_x[0..total] into ro_y: a level of the reduction tree that
// keeps sum_partials' strided loop (count / 256 per invocation) within the loop budget.
@compute @workgroup_size(256)
fn block_sum(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(local_invocation_index) t: u32,
             @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    var v = 0.0;
    if (i < ro.total) { v = ro_x[i]; }
    ro_partial(t, wid.x + wid.y * nwg.x, v);
}

// sum of ro_x[0..count] * scale into ro_y[0] (one workgroup).
@compute @workgroup_size(256)
fn sum_partials(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var j = t; j < ro.count; j += 256u) { s += ro_x[j]; }
    ro_red[t] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { ro_red[t] += ro_red[t + k]; }
        workgroupBarrier();
    }
    if (t == 0u) { ro_y[0] = ro_red[0] * ro.scale; }
}

// log Gamma(x) for x > 0: shifted up to x >= 7 by the recurrence, then Stirling's series. The
// shift takes at most 7 steps for x > 0, and the loop stops there whatever x is (a k <= 0 or NaN
// is outside the density's domain and gives no meaningful value, but must not spin).
fn vc_lgamma(x: f32) -> f32 {
    var z = x;
    var p = 1.0;
    for (var i = 0u; i < 7u && z < 7.0; i++) {
        p *= z;
        z += 1.0;
    }
    let zi = 1.0 / z;
    let z2 = zi * zi;
    let series = zi * (0.08333333333 - z2 * (0.002777777778 - z2 * (0.0007936507937 - z2 * 0.0005952380952)));
    return (z - 0.5) * log(z) - z + 0.9189385332046727 + series - log(p);
}

// ro_x = target, ro_a = q, ro_b = theta, ro_c = k, ro_d = loc.
@compute @workgroup_size(256)
fn zig_loglik(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let y = ro_x[i];
    let q = ro_a[i];
    let theta = ro_b[i];
    let k = ro_c[i];
    let loc = ro_d[i];
    var l: f32;
    if (y <= loc) {
        l = log(1.0 - q) - log(loc);
    } else {
        let d = y - loc;
        l = log(q) + (k - 1.0) * log(d) - d / theta - k * log(theta) - vc_lgamma(k);
    }
    // PyTorch's masked form multiplies both branches by their masks, so a NaN in any input (one the
    // taken branch does not read included, and a NaN target, which neither mask takes) gives NaN.
    // (NaN tested on the bits: a compiler may fold v != v to false.)
    let bits = vec4<u32>(bitcast<u32>(y), bitcast<u32>(q), bitcast<u32>(theta), bitcast<u32>(k));
    let nan = any((bits & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u)) || (bitcast<u32>(loc) & 0x7fffffffu) > 0x7f800000u;
    ro_y[i] = select(l, y + q + theta + k + loc, nan);
}

// Per-neuron correlation across trials of a [T, M] and b [T, M] (ro_x, ro_a; ro.n = T, ro.m = M):
// za = (a - mean) / (std + eps), ddof 0, corr = mean(za zb) (neuralpredictors' numpy `corr`).
// One invocation per neuron, neighbours reading neighbouring columns.
@compute @workgroup_size(256)
fn pearson(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = gid.x + gid.y * nwg.x * 256u;
    if (m >= ro.m) { return; }
    var sa = 0.0;
    var sb = 0.0;
    for (var t = 0u; t < ro.n; t++) {
        sa += ro_x[t * ro.m + m];
        sb += ro_a[t * ro.m + m];
    }
    let fn_ = f32(ro.n);
    let ma = sa / fn_;
    let mb = sb / fn_;
    var vaa = 0.0;
    var vbb = 0.0;
    var vab = 0.0;
    for (var t = 0u; t < ro.n; t++) {
        let da = ro_x[t * ro.m + m] - ma;
        let db = ro_a[t * ro.m + m] - mb;
        vaa = fma(da, da, vaa);
        vbb = fma(db, db, vbb);
        vab = fma(da, db, vab);
    }
    ro_y[m] = (vab / fn_) / ((sqrt(vaa / fn_) + ro.eps) * (sqrt(vbb / fn_) + ro.eps));
}

// pearson for more trials than the loop budget: the same sums, over trials lo..hi per dispatch,
// carried in ro_st [M, 5] (sum a, sum b, then the centred sums aa, bb, ab). `part` bit 2 clear: the
// first pass (the sums), set: the second (the centred products; its last chunk writes ro_y).
@group(0) @binding(7) var<storage, read_write> ro_st: array<f32>;

@compute @workgroup_size(256)
fn pearson_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let m = gid.x + gid.y * nwg.x * 256u;
    if (m >= ro.m) { return; }
    let first = (ro.part & 1u) != 0u;
    let sb5 = m * 5u;
    if ((ro.part & 4u) == 0u) {
        var sa = select(ro_st[sb5], 0.0, first);
        var sb = select(ro_st[sb5 + 1u], 0.0, first);
        for (var t = ro.lo; t < ro.hi; t++) {
            sa += ro_x[t * ro.m + m];
            sb += ro_a[t * ro.m + m];
        }
        ro_st[sb5] = sa;
        ro_st[sb5 + 1u] = sb;
        return;
    }
    let fn_ = f32(ro.n);
    let ma = ro_st[sb5] / fn_;
    let mb = ro_st[sb5 + 1u] / fn_;
    var vaa = select(ro_st[sb5 + 2u], 0.0, first);
    var vbb = select(ro_st[sb5 + 3u], 0.0, first);
    var vab = select(ro_st[sb5 + 4u], 0.0, first);
    for (var t = ro.lo; t < ro.hi; t++) {
        let da = ro_x[t * ro.m + m] - ma;
        let db = ro_a[t * ro.m + m] - mb;
        vaa = fma(da, da, vaa);
        vbb = fma(db, db, vbb);
        vab = fma(da, db, vab);
    }
    if ((ro.part & 2u) == 0u) {
        ro_st[sb5 + 2u] = vaa;
        ro_st[sb5 + 3u] = vbb;
        ro_st[sb5 + 4u] = vab;
        return;
    }
    ro_y[m] = (vab / fn_) / ((sqrt(vaa / fn_) + ro.eps) * (sqrt(vbb / fn_) + ro.eps));
}
