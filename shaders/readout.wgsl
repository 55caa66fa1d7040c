// readout.wgsl: sampling the core's feature map and the likelihoods of neural responses
// (docs/ops.md: grid_sample, Gaussian readout, Poisson NLL, zero-inflated gamma log-density).
//   grid_sample       bilinear, zero padding, either align_corners (PyTorch semantics)
//   gaussian_readout  FullGaussian2d in eval mode, fused: position = clamp(mu, -1, 1) (+ shift[n]),
//                     bilinear sample of every channel, weighted by features[c, m], + bias[m]
//   poisson_nll       rate - target * log(rate + eps), elementwise or summed per workgroup
//   zig_loglik        the zero-inflated gamma log-density, masked form
//   zig_readout_g, zig_readout_conv
//                     the ZIG readout of the video-latent model: per-frame samples, a (time, channel)
//                     conv per neuron and the channel reduction, as two passes (docs/ops.md)
//   zig_map, zig_moments, zig_latent_params, zig_latent_loglik, zig_lse_combine
//                     the ZIG parameter maps, the mean / variance, the latent logit shifts and the
//                     video-latent log-likelihood (logsumexp over samples, in bits)
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
    // The ZIG kernels: t = frames per sample (ro.n = B*T images), kt x kc the readout conv's kernel,
    // s = latent samples, l = latent dims, nk / nl = the lengths of k and loc (broadcast along the
    // last axis when shorter than the data). zig_readout_conv: ho = output frames per sample, from
    // frame wo of the window of t frames.
    t: u32, kt: u32, kc: u32, s: u32,
    l: u32, nk: u32, nl: u32, _r: u32,
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
// zig_readout_conv: the (time, channel) conv has a bias [2].
override CONV_BIAS: bool = false;
// zig_map: 0 = q (sigmoid * 0.99999 + 1e-6), 1 = theta and k (ELU + 1 + 1e-6), 2 = loc (exp).
override ZIG_MAP: u32 = 0u;
// zig_moments: the variance instead of the mean.
override VARIANCE: bool = false;

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

// ---------------------------------------------------------------------------------------------
// The ZIG readout of the video-latent model (docs/ops.md, ZIG readout). With s[bt, c, n] the
// eval-mode sample of frame bt = b*T + t, channel c, neuron n, the conv w [2, kt, kc] over
// (time, channel) with zero padding (kt/2, kc/2), then the features f [C, N, 2] reducing C:
//   out[o, bt, n] = sum_c f[c, n, o] * (cb[o] + sum_{dt, dc} w[o, dt, dc] s[b*T + t + dt - kt/2, c + dc - kc/2, n]) + bias[n]
// The sum over c moves inside: g[o, dc, bt, n] = sum_c f[c, n, o] s[bt, c + dc - kc/2, n] (pass 1,
// per frame), then out = sum_{dt, dc} w[o, dt, dc] g[o, dc, b*T + t + dt - kt/2, n] (pass 2), and row
// dc = kc of g holds sum_c f[c, n, o] for the conv bias. Nothing as large as s is ever stored.

fn is_nan_f(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

// Pass 1, one invocation per g[o, r, bt, n] (n fastest; r in 0..=kc); ro_x = x [B*T, C, H, W],
// ro_a = mu [N, 2], ro_b = features [C, N, 2], ro_d = shift [B*T, 2]. Channels lo..hi per dispatch
// (part bit 0: the first, else the partial sum in ro_y continues).
@compute @workgroup_size(256)
fn zig_readout_g(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let n = i % ro.m;
    let rest = i / ro.m;
    let bt = rest % ro.n;
    let orow = rest / ro.n;
    let r = orow % (ro.kc + 1u);
    let o = orow / (ro.kc + 1u);
    var acc = 0.0;
    if ((ro.part & 1u) == 0u) { acc = ro_y[i]; }
    if (r == ro.kc) {
        for (var c = ro.lo; c < ro.hi; c++) { acc += ro_b[(c * ro.m + n) * 2u + o]; }
        ro_y[i] = acc;
        return;
    }
    var gx = clamp_nan(ro_a[2u * n], -1.0, 1.0);
    var gy = clamp_nan(ro_a[2u * n + 1u], -1.0, 1.0);
    if (HAS_SHIFT) {
        gx += ro_d[2u * bt];
        gy += ro_d[2u * bt + 1u];
    }
    let ix = unnormalize(gx, ro.w);
    let iy = unnormalize(gy, ro.h);
    let x0f = floor(ix);
    let y0f = floor(iy);
    let tx = ix - x0f;
    let ty = iy - y0f;
    let xs = vec4<f32>(x0f, x0f + 1.0, x0f, x0f + 1.0);
    let ys = vec4<f32>(y0f, y0f, y0f + 1.0, y0f + 1.0);
    let inside = vec4<bool>(tap_inside(xs.x, ys.x), tap_inside(xs.y, ys.y), tap_inside(xs.z, ys.z), tap_inside(xs.w, ys.w));
    let off = select(vec4<u32>(0u), vec4<u32>(ys) * ro.w + vec4<u32>(xs), inside);
    let wgt = select(vec4<f32>(0.0), vec4<f32>(1.0 - tx, tx, 1.0 - tx, tx) * vec4<f32>(1.0 - ty, 1.0 - ty, ty, ty), inside);
    let plane = ro.h * ro.w;
    // The sampled channel cs meets the feature of output channel cs + kc/2 - r (zero padding: none
    // outside 0..C).
    let pc = i32(ro.kc / 2u);
    for (var cs = ro.lo; cs < ro.hi; cs++) {
        let cf = i32(cs) + pc - i32(r);
        if (cf < 0 || cf >= i32(ro.c)) { continue; }
        let base = (bt * ro.c + cs) * plane;
        let v = select(vec4<f32>(0.0), vec4<f32>(ro_x[base + off.x], ro_x[base + off.y], ro_x[base + off.z], ro_x[base + off.w]), inside);
        acc = fma(dot(wgt, v), ro_b[(u32(cf) * ro.m + n) * 2u + o], acc);
    }
    ro_y[i] = acc;
}

// Pass 2, one invocation per out[o, b * K + j, n] (K = ro.ho frames per sample, from window frame
// ro.wo on); ro_x = g [2, kc + 1, B*W, N] (ro.n = B*W images, ro.t = W frames per sample),
// ro_a = w [2, kt, kc], ro_b = conv bias [2], ro_c = bias [N]. The whole clip is W = K = T from
// frame 0. Frames outside the window (the time padding) read 0, still multiplied by their weight,
// so a NaN weight gives NaN as PyTorch's padded conv does.
@compute @workgroup_size(256)
fn zig_readout_conv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let n = i % ro.m;
    let nk = (ro.n / ro.t) * ro.ho;
    let bk = (i / ro.m) % nk;
    let o = i / (ro.m * nk);
    let t = ro.wo + bk % ro.ho;
    let b0 = (bk / ro.ho) * ro.t;
    let pt = i32(ro.kt / 2u);
    let rows = ro.kc + 1u;
    var acc = 0.0;
    for (var dt = 0u; dt < ro.kt; dt++) {
        let tt = i32(t) + i32(dt) - pt;
        let inside = tt >= 0 && tt < i32(ro.t);
        let ts = u32(clamp(tt, 0, i32(ro.t) - 1));
        for (var dc = 0u; dc < ro.kc; dc++) {
            let gv = ro_x[((o * rows + dc) * ro.n + b0 + ts) * ro.m + n];
            acc = fma(ro_a[(o * ro.kt + dt) * ro.kc + dc], select(0.0, gv, inside), acc);
        }
    }
    if (CONV_BIAS) { acc = fma(ro_b[o], ro_x[((o * rows + ro.kc) * ro.n + b0 + t) * ro.m + n], acc); }
    if (HAS_BIAS) { acc += ro_c[n]; }
    ro_y[i] = acc;
}

// The ZIG parameter maps (zero_inflation_encoders.py): q = sigmoid(x) * 0.99999 + 1e-6,
// theta = ELU(x) + 1 + 1e-6 (k likewise), loc = exp(x). NaN stays NaN.
fn zig_q_map(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x)) * 0.99999 + 1e-6;
}

fn zig_elu1_map(x: f32) -> f32 {
    return select(exp(x) - 1.0, x, x > 0.0) + 1.0 + 1e-6;
}

@compute @workgroup_size(256)
fn zig_map(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let x = ro_x[i];
    var y: f32;
    if (ZIG_MAP == 0u) {
        y = zig_q_map(x);
    } else if (ZIG_MAP == 1u) {
        y = zig_elu1_map(x);
    } else {
        y = exp(x);
    }
    ro_y[i] = select(y, x, is_nan_f(x));
}

// E[y] = (1 - q) loc / 2 + q (k theta + loc), or (VARIANCE) q k theta^2 + (1 - q) loc^2 / 12 +
// q (1 - q) (k theta + loc / 2)^2 (mean_variance_functions.py); ro_x = q, ro_a = theta, ro_b = k
// (ro.nk long), ro_c = loc (ro.nl long), each broadcast along the last axis.
@compute @workgroup_size(256)
fn zig_moments(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let q = ro_x[i];
    let theta = ro_a[i];
    let k = ro_b[i % ro.nk];
    let loc = ro_c[i % ro.nl];
    let kt = k * theta;
    if (VARIANCE) {
        let e = kt + loc * 0.5;
        ro_y[i] = q * k * theta * theta + (1.0 - q) * loc * loc / 12.0 + q * (1.0 - q) * e * e;
    } else {
        ro_y[i] = (1.0 - q) * loc * 0.5 + q * (kt + loc);
    }
}

// The logits of sample s, frame bt, neuron n shifted by the latent: q~ + z W_q, theta~ + z W_theta
// (ro_a = logits [2, B*T, N], ro_b = z [S, B*T, L], ro_c = W_q [L, N], ro_d = W_theta [L, N]).
fn zig_shifted(s: u32, bt: u32, n: u32) -> vec2<f32> {
    let plane = ro.n * ro.m;
    var lq = ro_a[bt * ro.m + n];
    var lt = ro_a[plane + bt * ro.m + n];
    let zb = (s * ro.n + bt) * ro.l;
    for (var j = 0u; j < ro.l; j++) {
        let z = ro_b[zb + j];
        lq = fma(z, ro_c[j * ro.m + n], lq);
        lt = fma(z, ro_d[j * ro.m + n], lt);
    }
    return vec2<f32>(lq, lt);
}

// q and theta [S, B*T, N] of every latent sample: the shifted logits through the maps. ro_y = q,
// ro_st = theta.
@compute @workgroup_size(256)
fn zig_latent_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let n = i % ro.m;
    let bt = (i / ro.m) % ro.n;
    let s = i / (ro.m * ro.n);
    let lg = zig_shifted(s, bt, n);
    ro_y[i] = select(zig_q_map(lg.x), lg.x, is_nan_f(lg.x));
    ro_st[i] = select(zig_elu1_map(lg.y), lg.y, is_nan_f(lg.y));
}

// The video-latent branch's log-density (get_slab_logl on every entry, masks y >= loc and y <= loc,
// both set where y == loc):
//   log((1-q) zm + nm) + log(q nm + zm) + (k-1) log(y nm - loc nm + zm) - (y nm - loc nm)/theta - k log theta - lgamma k
fn zig_slab_logl(y: f32, q: f32, theta: f32, k: f32, loc: f32, lgk: f32) -> f32 {
    let nm = select(0.0, 1.0, y >= loc);
    let zm = select(0.0, 1.0, y <= loc);
    let d = y * nm - loc * nm;
    return log((1.0 - q) * zm + nm) + log(q * nm + zm) + (k - 1.0) * log(d + zm) - d / theta - k * log(theta) - lgk;
}

// One invocation per (bt, n): the log-density of target y[bt, n] under every latent sample s in
// lo..hi, reduced by a running logsumexp. ro_x = target [B*T, N], ro_a..ro_d as zig_shifted,
// ro_sigma = k [N], ro_order = loc [N]. part bit 1 set (the whole range): writes
// (logsumexp - log S) / ln 2 into ro_y[i]; else the chunk's logsumexp into ro_y[chunk * B*T*N + i]
// (ro.count = chunk), for zig_lse_combine. A NaN anywhere gives NaN.
@compute @workgroup_size(256)
fn zig_latent_loglik(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let n = i % ro.m;
    let bt = i / ro.m;
    let y = ro_x[i];
    let k = ro_sigma[n];
    let loc = ro_order[n];
    let lgk = vc_lgamma(k);
    let neg_inf = bitcast<f32>(0xff800000u);
    var mx = neg_inf;
    var sm = 0.0;
    var nan = is_nan_f(y) || is_nan_f(k) || is_nan_f(loc);
    for (var s = ro.lo; s < ro.hi; s++) {
        let lg = zig_shifted(s, bt, n);
        nan = nan || is_nan_f(lg.x) || is_nan_f(lg.y);
        let l = zig_slab_logl(y, zig_q_map(lg.x), zig_elu1_map(lg.y), k, loc, lgk);
        nan = nan || is_nan_f(l);
        if (l > mx) {
            sm = fma(sm, exp(mx - l), 1.0);
            mx = l;
        } else if (l > neg_inf) {
            sm += exp(l - mx);
        }
    }
    let lse = mx + log(sm);
    let nanv = bitcast<f32>(0x7fc00000u);
    if ((ro.part & 2u) != 0u) {
        ro_y[i] = select((lse - log(f32(ro.s))) * 1.4426950408889634, nanv, nan);
    } else {
        ro_y[ro.count * ro.total + i] = select(lse, nanv, nan);
    }
}

// The logsumexp of ro.count chunk partials ro_x[j * total + i], minus log S, in bits.
@compute @workgroup_size(256)
fn zig_lse_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= ro.total) { return; }
    let neg_inf = bitcast<f32>(0xff800000u);
    var mx = neg_inf;
    var nan = false;
    for (var j = 0u; j < ro.count; j++) {
        let v = ro_x[j * ro.total + i];
        nan = nan || is_nan_f(v);
        mx = max(mx, v);
    }
    var sm = 0.0;
    if (mx > neg_inf) {
        for (var j = 0u; j < ro.count; j++) { sm += exp(ro_x[j * ro.total + i] - mx); }
    }
    let lse = mx + log(sm);
    ro_y[i] = select((lse - log(f32(ro.s))) * 1.4426950408889634, bitcast<f32>(0x7fc00000u), nan);
}
