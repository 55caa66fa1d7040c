// flows.wgsl: normalizing-flow couplings (nflows conventions; docs/ops.md, affine coupling, rational-quadratic spline),
// each one fused pass.
//   rq_spline        unconstrained rational-quadratic spline with linear tails: per element, the
//                    softmax of the widths and heights, the knots, the bin search, the spline (or its
//                    stable inverse root) and log|dy/dx|, all in one invocation; any K >= 2
//   affine_coupling  y_T = x_T * scale + shift (inverse: (y_T - shift) / scale), scale =
//                    sigmoid(u + 2) + 1e-3, identity features copied; one invocation per row, so the
//                    row's log-det sum is in the same pass

struct SplineParams {
    n: u32, k: u32, inverse: u32, rows: u32,   // rows: R, the parameter rows (the large-K path)
    bound: f32, min_w: f32, min_h: f32, min_d: f32,
    d: u32, t: u32, _q0: u32, _q1: u32,   // with COUPLING: features per row D, transformed T
}
// COUPLING: x is [N, D]; feature j is transformed with the parameters of rq_map[j] (its index among
// the T transformed features, parameters [N, T, K]) or copied when rq_map[j] < 0 (log-det 0).
override COUPLING: bool = false;
@group(0) @binding(0) var<uniform> rq: SplineParams;
@group(0) @binding(1) var<storage, read> rq_x: array<f32>;
@group(0) @binding(2) var<storage, read> rq_w: array<f32>;
@group(0) @binding(3) var<storage, read> rq_h: array<f32>;
@group(0) @binding(4) var<storage, read> rq_d: array<f32>;
@group(0) @binding(5) var<storage, read_write> rq_y: array<f32>;
@group(0) @binding(6) var<storage, read_write> rq_lad: array<f32>;
@group(0) @binding(7) var<storage, read> rq_map: array<i32>;

fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

// The bin containing u (in normalized coordinates u = (v + B) / 2B, knots in [0, 1]) along widths
// (which = 0, rq_w) or heights (which = 1, rq_h): returns (index, left knot, bin size), all in [0, 1]
// units. Sizes are min + (1 - K min) softmax; the knots are their running sum, compensated
// (Neumaier) so a knot is right to about one ulp whatever K, with the last knot pinned to 1. With
// `fixed` < K the bin is given instead of searched. (nflows builds the same knots in x units as
// -B + 2B cumsum; working in [0, 1] with sizes taken directly rather than as differences of knots
// keeps f32 close to its f64 values in narrow bins.)
fn rq_bin(which: u32, base: u32, u: f32, fixed: u32) -> vec3<f32> {
    let k = rq.k;
    let mn = select(rq.min_w, rq.min_h, which == 1u);
    var mx = -3.4e38;
    for (var j = 0u; j < k; j++) {
        mx = max(mx, select(rq_w[base + j], rq_h[base + j], which == 1u));
    }
    var sum = 0.0;
    for (var j = 0u; j < k; j++) {
        sum += exp(select(rq_w[base + j], rq_h[base + j], which == 1u) - mx);
    }
    let scale = (1.0 - mn * f32(k)) / sum;
    var s = 0.0;
    var comp = 0.0;
    for (var j = 0u; j < k; j++) {
        let size = mn + scale * exp(select(rq_w[base + j], rq_h[base + j], which == 1u) - mx);
        let left = s + comp;
        let t = s + size;
        comp += select((size - t) + s, (s - t) + size, abs(s) >= abs(size));
        s = t;
        let right = select(s + comp, 1.0, j == k - 1u);
        if ((fixed >= k && (u < right || j == k - 1u)) || j == fixed) {
            return vec3<f32>(f32(j), left, size);
        }
    }
    return vec3<f32>(f32(k - 1u), 1.0, 0.0); // not reached
}

// delta_j: 1 at both ends (padded with log(exp(1 - min_d) - 1)), min_d + softplus(d) inside.
fn rq_delta(base: u32, j: u32) -> f32 {
    if (j == 0u || j == rq.k) { return 1.0; }
    return rq.min_d + softplus(rq_d[base + j - 1u]);
}

// The parameter row of element i (itself, or (n, map[j]) in a coupling), or -1 where the element
// is copied (a copied feature of a coupling, or outside [-B, B]), which this writes.
fn rq_row(i: u32, v: f32) -> i32 {
    var pi = i;
    if (COUPLING) {
        let tj = rq_map[i % rq.d];
        if (tj < 0) {
            rq_y[i] = v;
            rq_lad[i] = 0.0;
            return -1;
        }
        pi = (i / rq.d) * rq.t + u32(tj);
    }
    // Outside [-B, B], or NaN (nflows' inside mask is false for NaN: y = x, log-det 0; tested on
    // the bits, as a compiler may fold a NaN comparison).
    if (v < -rq.bound || v > rq.bound || (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
        rq_y[i] = v;
        rq_lad[i] = 0.0;
        return -1;
    }
    return i32(pi);
}

// The spline of element i at u (normalized) in the bin `first` (along the searched axis) /
// `other` (the other axis), each (bin, left knot, size) in [0, 1] units; writes y and log|det|.
fn rq_finish(i: u32, pi: u32, u: f32, first: vec3<f32>, other: vec3<f32>) {
    let b = rq.bound;
    let db = pi * (rq.k - 1u);
    let inv = rq.inverse != 0u;
    let bin = u32(first.x);
    let xw = select(first, other, inv);   // (bin, X_k, w_k) in [0, 1] units
    let yh = select(other, first, inv);   // (bin, Y_k, h_k)
    let w = xw.z;
    let h = yh.z;
    let s = h / w;
    let d0 = rq_delta(db, bin);
    let d1 = rq_delta(db, bin + 1u);
    var xi: f32;
    if (inv) {
        // The stable root of a xi^2 + b xi + c = 0 (homogeneous in the 2B scale).
        let dy = u - yh.y;
        let a = dy * (d0 + d1 - 2.0 * s) + h * (s - d0);
        let bq = h * d0 - dy * (d0 + d1 - 2.0 * s);
        let c = -s * dy;
        let disc = max(bq * bq - 4.0 * a * c, 0.0);
        xi = (2.0 * c) / (-bq - sqrt(disc));
        rq_y[i] = -b + 2.0 * b * (xw.y + xi * w);
    } else {
        xi = (u - xw.y) / w;
    }
    let t1 = xi * (1.0 - xi);
    let den = s + (d0 + d1 - 2.0 * s) * t1;
    if (!inv) {
        rq_y[i] = -b + 2.0 * b * (yh.y + h * (s * xi * xi + d0 * t1) / den);
    }
    let dnum = s * s * (d1 * xi * xi + 2.0 * s * t1 + d0 * (1.0 - xi) * (1.0 - xi));
    let lad = log(dnum) - 2.0 * log(den);
    rq_lad[i] = select(lad, -lad, inv);
}

@compute @workgroup_size(256)
fn rq_spline(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= rq.n) { return; }
    let v = rq_x[i];
    let r = rq_row(i, v);
    if (r < 0) { return; }
    let pi = u32(r);
    let u = (v + rq.bound) / (2.0 * rq.bound);
    let kb = pi * rq.k;
    let inv = rq.inverse != 0u;
    // The bin is searched along widths going forward, along heights going back.
    let first = rq_bin(select(0u, 1u, inv), kb, u, 0xffffffffu);
    let other = rq_bin(select(1u, 0u, inv), kb, u, u32(first.x));
    rq_finish(i, pi, u, first, other);
}

// The large-K path (a K whose three loops over the bins, twice, would pass the loop budget of one
// invocation): the knots of every parameter row are built first by rq_knots, in chunks of bins
// across dispatches, into rq_kn [2, R, K, 2] (widths then heights; per bin its left knot and size,
// exactly as rq_bin computes them); then rq_spline_knots binary-searches them per element.
@group(0) @binding(8) var<storage, read> rq_kn: array<f32>;

@compute @workgroup_size(256)
fn rq_spline_knots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= rq.n) { return; }
    let v = rq_x[i];
    let r = rq_row(i, v);
    if (r < 0) { return; }
    let pi = u32(r);
    let u = (v + rq.bound) / (2.0 * rq.bound);
    let k = rq.k;
    let inv = rq.inverse != 0u;
    let rows = rq.rows;
    let sb = (select(0u, rows, inv) + pi) * k;    // the searched axis' row
    let ob = (select(rows, 0u, inv) + pi) * k;    // the other axis' row
    // The first bin j with u < its right knot (the left knot of j + 1), else the last: as rq_bin's
    // scan. At most ceil(log2 K) <= 24 iterations.
    var lo = 0u;
    var hi = k - 1u;
    while (lo < hi) {
        let mid = (lo + hi) / 2u;
        if (u < rq_kn[(sb + mid + 1u) * 2u]) { hi = mid; } else { lo = mid + 1u; }
    }
    let first = vec3<f32>(f32(lo), rq_kn[(sb + lo) * 2u], rq_kn[(sb + lo) * 2u + 1u]);
    let other = vec3<f32>(f32(lo), rq_kn[(ob + lo) * 2u], rq_kn[(ob + lo) * 2u + 1u]);
    rq_finish(i, pi, u, first, other);
}

// One invocation per (axis, parameter row) q = axis * R + row; bins lo..hi of this dispatch.
// stage 0: the running max, 1: the running sum of exp(v - max), 2: the sizes and compensated
// running sums (knots), each carried in rk_state[q] (max, sum, s, comp, the sum's compensation,
// unused) from chunk to chunk.
struct KnotParams {
    rows: u32, k: u32, lo: u32, hi: u32,
    stage: u32, first: u32, min_w: f32, min_h: f32,
}
@group(0) @binding(0) var<uniform> kp: KnotParams;
@group(0) @binding(1) var<storage, read> rk_w: array<f32>;
@group(0) @binding(2) var<storage, read> rk_h: array<f32>;
@group(0) @binding(3) var<storage, read_write> rk_state: array<f32>;
@group(0) @binding(4) var<storage, read_write> rk_kn: array<f32>;

fn rk_param(which: u32, idx: u32) -> f32 {
    return select(rk_w[idx], rk_h[idx], which == 1u);
}

@compute @workgroup_size(256)
fn rq_knots(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = gid.x + gid.y * nwg.x * 256u;
    if (q >= 2u * kp.rows) { return; }
    let which = q / kp.rows;
    let base = (q % kp.rows) * kp.k;
    let st = q * 6u;
    let first = kp.first != 0u;
    if (kp.stage == 0u) {
        var mx = select(rk_state[st], -3.4e38, first);
        for (var j = kp.lo; j < kp.hi; j++) { mx = max(mx, rk_param(which, base + j)); }
        rk_state[st] = mx;
        return;
    }
    let mx = rk_state[st];
    if (kp.stage == 1u) {
        // Compensated (Neumaier): over tens of thousands of bins a plain f32 sum is off by ~1e-5
        // relative, which moves the knots by a good part of a bin.
        var sum = select(rk_state[st + 1u], 0.0, first);
        var c = select(rk_state[st + 4u], 0.0, first);
        for (var j = kp.lo; j < kp.hi; j++) {
            let e = exp(rk_param(which, base + j) - mx);
            let t = sum + e;
            c += select((e - t) + sum, (sum - t) + e, abs(sum) >= abs(e));
            sum = t;
        }
        rk_state[st + 1u] = sum;
        rk_state[st + 4u] = c;
        return;
    }
    let mn = select(kp.min_w, kp.min_h, which == 1u);
    let scale = (1.0 - mn * f32(kp.k)) / (rk_state[st + 1u] + rk_state[st + 4u]);
    var s = select(rk_state[st + 2u], 0.0, first);
    var comp = select(rk_state[st + 3u], 0.0, first);
    for (var j = kp.lo; j < kp.hi; j++) {
        let size = mn + scale * exp(rk_param(which, base + j) - mx);
        let o = (q * kp.k + j) * 2u;
        rk_kn[o] = s + comp;
        rk_kn[o + 1u] = size;
        let t = s + size;
        comp += select((size - t) + s, (s - t) + size, abs(s) >= abs(size));
        s = t;
    }
    rk_state[st + 2u] = s;
    rk_state[st + 3u] = comp;
}

// A row of more features than the loop budget is split across dispatches: features lo..hi, `part`
// bit 0 = the first chunk (else the log-det so far in ac_logdet is continued), bit 1 = the last
// (the log-det's sign). The same fields split row_sum_add and normal_logprob.
struct AffineParams { n: u32, d: u32, t: u32, inverse: u32, lo: u32, hi: u32, part: u32, _p: u32 }
@group(0) @binding(0) var<uniform> ac: AffineParams;
@group(0) @binding(1) var<storage, read> ac_x: array<f32>;
@group(0) @binding(2) var<storage, read> ac_shift: array<f32>;
@group(0) @binding(3) var<storage, read> ac_scale: array<f32>;
@group(0) @binding(4) var<storage, read> ac_map: array<i32>;    // feature -> transformed index or -1
@group(0) @binding(5) var<storage, read_write> ac_y: array<f32>;
@group(0) @binding(6) var<storage, read_write> ac_logdet: array<f32>;

@compute @workgroup_size(256)
fn affine_coupling(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= ac.n) { return; }
    var ld = 0.0;
    if ((ac.part & 1u) == 0u) { ld = ac_logdet[r]; }
    for (var j = ac.lo; j < ac.hi; j++) {
        let x = ac_x[r * ac.d + j];
        let tj = ac_map[j];
        if (tj < 0) {
            ac_y[r * ac.d + j] = x;
            continue;
        }
        let e = r * ac.t + u32(tj);
        let scale = vc_sigmoid(ac_scale[e] + 2.0) + 1e-3;
        if (ac.inverse != 0u) {
            ac_y[r * ac.d + j] = (x - ac_shift[e]) / scale;
        } else {
            ac_y[r * ac.d + j] = x * scale + ac_shift[e];
        }
        ld += log(scale);
    }
    if ((ac.part & 2u) == 0u) {
        ac_logdet[r] = ld;
        return;
    }
    ac_logdet[r] = select(ld, -ld, ac.inverse != 0u);
}

// ActNorm (Glow): y = exp(log_s[j]) x + b[j] per feature j of the last axis (inverse:
// (y - b[j]) exp(-log_s[j])); log-det per row = sum_j log_s[j] times `positions` (H*W for images), or
// its negative, computed once on the host. One invocation per element.
struct ActnormParams { total: u32, features: u32, inverse: u32, _p: u32 }
@group(0) @binding(0) var<uniform> an: ActnormParams;
@group(0) @binding(1) var<storage, read> an_x: array<f32>;
@group(0) @binding(2) var<storage, read> an_logs: array<f32>;
@group(0) @binding(3) var<storage, read> an_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> an_y: array<f32>;

@compute @workgroup_size(256)
fn actnorm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= an.total) { return; }
    let j = i % an.features;
    if (an.inverse != 0u) {
        an_y[i] = (an_x[i] - an_b[j]) * exp(-an_logs[j]);
    } else {
        an_y[i] = exp(an_logs[j]) * an_x[i] + an_b[j];
    }
}

// Standard-normal log-density of each row of x [N, D]: -0.5 |x|^2 - D/2 log(2 pi), plus an
// optional per-row term (a flow's accumulated log-det). One invocation per row.
struct LogpParams { rows: u32, d: u32, add: u32, constant: f32, lo: u32, hi: u32, part: u32, _p: u32 }
@group(0) @binding(0) var<uniform> lp: LogpParams;
@group(0) @binding(1) var<storage, read> lp_x: array<f32>;
@group(0) @binding(2) var<storage, read> lp_add: array<f32>;
@group(0) @binding(3) var<storage, read_write> lp_y: array<f32>;

@compute @workgroup_size(256)
fn normal_logprob(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= lp.rows) { return; }
    var s = 0.0;
    if ((lp.part & 1u) == 0u) { s = lp_y[r]; }
    for (var j = lp.lo; j < lp.hi; j++) {
        let v = lp_x[r * lp.d + j];
        s = fma(v, v, s);
    }
    if ((lp.part & 2u) == 0u) {
        lp_y[r] = s;
        return;
    }
    var out = -0.5 * s - 0.9189385332046727 * f32(lp.d) + lp.constant;
    if (lp.add != 0u) { out += lp_add[r]; }
    lp_y[r] = out;
}

// acc_out[n] = acc_in[n] + scale * sum_j v[n, j] + constant (a flow's running log-det: the
// constant carries log-dets that do not depend on x, such as ActNorm's). One invocation per row.
struct RowSumParams { rows: u32, cols: u32, has_acc: u32, part: u32, scale: f32, constant: f32, lo: u32, hi: u32 }
@group(0) @binding(0) var<uniform> rs: RowSumParams;
@group(0) @binding(1) var<storage, read> rs_v: array<f32>;
@group(0) @binding(2) var<storage, read> rs_acc: array<f32>;
@group(0) @binding(3) var<storage, read_write> rs_out: array<f32>;

@compute @workgroup_size(256)
fn row_sum_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= rs.rows) { return; }
    var s = 0.0;
    if ((rs.part & 1u) == 0u) { s = rs_out[r]; }
    for (var j = rs.lo; j < rs.hi; j++) { s += rs_v[r * rs.cols + j]; }
    if ((rs.part & 2u) == 0u) {
        rs_out[r] = s;
        return;
    }
    s = s * rs.scale + rs.constant;
    if (rs.has_acc != 0u) { s += rs_acc[r]; }
    rs_out[r] = s;
}
