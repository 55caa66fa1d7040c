// flows.wgsl: normalizing-flow couplings (nflows conventions, models.md section 8), each one fused pass.
//   rq_spline        unconstrained rational-quadratic spline with linear tails: per element, the
//                    softmax of the widths and heights, the knots, the bin search, the spline (or its
//                    stable inverse root) and log|dy/dx|, all in one invocation; any K >= 2
//   affine_coupling  y_T = x_T * scale + shift (inverse: (y_T - shift) / scale), scale =
//                    sigmoid(u + 2) + 1e-3, identity features copied; one invocation per row, so the
//                    row's log-det sum is in the same pass

struct SplineParams {
    n: u32, k: u32, inverse: u32, _p: u32,
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

@compute @workgroup_size(256)
fn rq_spline(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= rq.n) { return; }
    let v = rq_x[i];
    let b = rq.bound;
    // The parameter row of this element: itself, or (n, map[j]) in a coupling.
    var pi = i;
    if (COUPLING) {
        let tj = rq_map[i % rq.d];
        if (tj < 0) {
            rq_y[i] = v;
            rq_lad[i] = 0.0;
            return;
        }
        pi = (i / rq.d) * rq.t + u32(tj);
    }
    if (v < -b || v > b) {
        rq_y[i] = v;
        rq_lad[i] = 0.0;
        return;
    }
    let u = (v + b) / (2.0 * b);
    let kb = pi * rq.k;
    let db = pi * (rq.k - 1u);
    let inv = rq.inverse != 0u;
    // The bin is searched along widths going forward, along heights going back.
    let first = rq_bin(select(0u, 1u, inv), kb, u, 0xffffffffu);
    let bin = u32(first.x);
    let other = rq_bin(select(1u, 0u, inv), kb, u, bin);
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

struct AffineParams { n: u32, d: u32, t: u32, inverse: u32 }
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
    for (var j = 0u; j < ac.d; j++) {
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
struct LogpParams { rows: u32, d: u32, add: u32, constant: f32 }
@group(0) @binding(0) var<uniform> lp: LogpParams;
@group(0) @binding(1) var<storage, read> lp_x: array<f32>;
@group(0) @binding(2) var<storage, read> lp_add: array<f32>;
@group(0) @binding(3) var<storage, read_write> lp_y: array<f32>;

@compute @workgroup_size(256)
fn normal_logprob(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= lp.rows) { return; }
    var s = 0.0;
    for (var j = 0u; j < lp.d; j++) {
        let v = lp_x[r * lp.d + j];
        s = fma(v, v, s);
    }
    var out = -0.5 * s - 0.9189385332046727 * f32(lp.d) + lp.constant;
    if (lp.add != 0u) { out += lp_add[r]; }
    lp_y[r] = out;
}

// acc_out[n] = acc_in[n] + scale * sum_j v[n, j] + constant (a flow's running log-det: the
// constant carries log-dets that do not depend on x, such as ActNorm's). One invocation per row.
struct RowSumParams { rows: u32, cols: u32, has_acc: u32, _p: u32, scale: f32, constant: f32, _q0: u32, _q1: u32 }
@group(0) @binding(0) var<uniform> rs: RowSumParams;
@group(0) @binding(1) var<storage, read> rs_v: array<f32>;
@group(0) @binding(2) var<storage, read> rs_acc: array<f32>;
@group(0) @binding(3) var<storage, read_write> rs_out: array<f32>;

@compute @workgroup_size(256)
fn row_sum_add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= rs.rows) { return; }
    var s = 0.0;
    for (var j = 0u; j < rs.cols; j++) { s += rs_v[r * rs.cols + j]; }
    s = s * rs.scale + rs.constant;
    if (rs.has_acc != 0u) { s += rs_acc[r]; }
    rs_out[r] = s;
}
