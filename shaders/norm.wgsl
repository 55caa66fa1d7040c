// norm.wgsl: inference batch norm and layer norm over trailing dims, each one pass over the data
// (layer norm: one workgroup per row; mean, then the centred second moment, then the output).

struct BnParams { total: u32, c: u32, inner: u32, eps: f32 }
@group(0) @binding(0) var<uniform> bn: BnParams;
@group(0) @binding(1) var<storage, read> bn_x: array<f32>;
@group(0) @binding(2) var<storage, read> bn_mean: array<f32>;
@group(0) @binding(3) var<storage, read> bn_var: array<f32>;
@group(0) @binding(4) var<storage, read> bn_w: array<f32>;
@group(0) @binding(5) var<storage, read> bn_b: array<f32>;
@group(0) @binding(6) var<storage, read_write> bn_y: array<f32>;

// y = (x - mean[c]) / sqrt(var[c] + eps) * w[c] + b[c], then the common activation.
@compute @workgroup_size(256)
fn batch_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= bn.total) { return; }
    let c = (i / bn.inner) % bn.c;
    let s = bn_w[c] / sqrt(bn_var[c] + bn.eps);
    bn_y[i] = activate((bn_x[i] - bn_mean[c]) * s + bn_b[c]);
}

struct LnParams { rows: u32, len: u32, eps: f32, _p: u32 }
override HAS_WEIGHT: bool = false;
override HAS_BIAS: bool = false;
@group(0) @binding(0) var<uniform> ln: LnParams;
@group(0) @binding(1) var<storage, read> ln_x: array<f32>;
@group(0) @binding(2) var<storage, read> ln_w: array<f32>;
@group(0) @binding(3) var<storage, read> ln_b: array<f32>;
@group(0) @binding(4) var<storage, read_write> ln_y: array<f32>;

var<workgroup> ln_red: array<f32, 256>;

fn ln_reduce(t: u32, v: f32) -> f32 {
    ln_red[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) { ln_red[t] += ln_red[t + s]; }
        workgroupBarrier();
    }
    let r = ln_red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn layer_norm(@builtin(local_invocation_index) t: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= ln.rows) { return; }
    let base = row * ln.len;
    var s = 0.0;
    for (var i = t; i < ln.len; i += 256u) { s += ln_x[base + i]; }
    let mean = ln_reduce(t, s) / f32(ln.len);
    var q = 0.0;
    for (var i = t; i < ln.len; i += 256u) {
        let d = ln_x[base + i] - mean;
        q = fma(d, d, q);
    }
    let rstd = 1.0 / sqrt(ln_reduce(t, q) / f32(ln.len) + ln.eps);
    for (var i = t; i < ln.len; i += 256u) {
        var v = (ln_x[base + i] - mean) * rstd;
        if (HAS_WEIGHT) { v *= ln_w[i]; }
        if (HAS_BIAS) { v += ln_b[i]; }
        ln_y[base + i] = activate(v);
    }
}

// ---- layer norm over rows too long for one workgroup's loop budget --------------------------
// Each row is cut into ln.slices slices of ln.slice elements (a multiple of 256), one workgroup
// per (row, slice): wg = row * slices + slice. ln_part holds two floats per (row, slice): the
// slice's sum, then its sum of squares about the row's mean. Three dispatches, each within budget:
//   ln_sum_split    the slice's sum
//   ln_sq_split     the row's mean from the sums (strided over the slices), the slice's centred squares
//   ln_apply_split  mean and variance from the partials, then the slice's output
struct LnSplitParams { rows: u32, len: u32, eps: f32, slices: u32, slice: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> lns: LnSplitParams;
@group(0) @binding(5) var<storage, read_write> ln_part: array<f32>;

// Sum over the row's slices of ln_part[2 * (row * slices + j) + k], all threads get it.
fn ln_row_partials(t: u32, row: u32, k: u32) -> f32 {
    var s = 0.0;
    for (var j = t; j < lns.slices; j += 256u) { s += ln_part[2u * (row * lns.slices + j) + k]; }
    return ln_reduce(t, s);
}

@compute @workgroup_size(256)
fn ln_sum_split(@builtin(local_invocation_index) t: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / lns.slices;
    if (row >= lns.rows) { return; }
    let lo = (wg % lns.slices) * lns.slice;
    let hi = min(lo + lns.slice, lns.len);
    let base = row * lns.len;
    var s = 0.0;
    for (var i = lo + t; i < hi; i += 256u) { s += ln_x[base + i]; }
    let r = ln_reduce(t, s);
    if (t == 0u) { ln_part[2u * wg] = r; }
}

@compute @workgroup_size(256)
fn ln_sq_split(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / lns.slices;
    if (row >= lns.rows) { return; }
    let mean = ln_row_partials(t, row, 0u) / f32(lns.len);
    let lo = (wg % lns.slices) * lns.slice;
    let hi = min(lo + lns.slice, lns.len);
    let base = row * lns.len;
    var q = 0.0;
    for (var i = lo + t; i < hi; i += 256u) {
        let d = ln_x[base + i] - mean;
        q = fma(d, d, q);
    }
    let r = ln_reduce(t, q);
    if (t == 0u) { ln_part[2u * wg + 1u] = r; }
}

@compute @workgroup_size(256)
fn ln_apply_split(@builtin(local_invocation_index) t: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / lns.slices;
    if (row >= lns.rows) { return; }
    let mean = ln_row_partials(t, row, 0u) / f32(lns.len);
    let rstd = 1.0 / sqrt(ln_row_partials(t, row, 1u) / f32(lns.len) + lns.eps);
    let lo = (wg % lns.slices) * lns.slice;
    let hi = min(lo + lns.slice, lns.len);
    let base = row * lns.len;
    for (var i = lo + t; i < hi; i += 256u) {
        var v = (ln_x[base + i] - mean) * rstd;
        if (HAS_WEIGHT) { v *= ln_w[i]; }
        if (HAS_BIAS) { v += ln_b[i]; }
        ln_y[base + i] = activate(v);
    }
}
