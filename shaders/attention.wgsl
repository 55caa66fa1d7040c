// attention.wgsl: the pieces of multi-head self-attention around the tiled matmuls.
//   softmax      row-wise softmax(scale * x) over the last axis, one workgroup per row (max, then the
//                sum of exponentials, then the output: stable for any magnitude)
//   split_heads  [B, F, H*dh] -> [B*H, F, dh]
//   merge_heads  [B*H, F, dh] -> [B, F, H*dh]

struct AttnParams { rows: u32, len: u32, scale: f32, _p0: u32, b: u32, f: u32, h: u32, dh: u32 }
@group(0) @binding(0) var<uniform> at: AttnParams;
@group(0) @binding(1) var<storage, read> at_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> at_y: array<f32>;

var<workgroup> at_red: array<f32, 256>;

// max that keeps a NaN operand (WGSL's max may drop it).
fn sm_max(a: f32, b: f32) -> f32 {
    let nan = (bitcast<u32>(a) & 0x7fffffffu) > 0x7f800000u || (bitcast<u32>(b) & 0x7fffffffu) > 0x7f800000u;
    return select(max(a, b), a + b, nan);
}

// The workgroup's sum or max of v (the max keeps a NaN, as PyTorch's does).
fn at_reduce(t: u32, v: f32, is_max: bool) -> f32 {
    at_red[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) {
            at_red[t] = select(at_red[t] + at_red[t + s], sm_max(at_red[t], at_red[t + s]), is_max);
        }
        workgroupBarrier();
    }
    let r = at_red[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256)
fn softmax(@builtin(local_invocation_index) t: u32,
           @builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= at.rows) { return; }
    let base = row * at.len;
    var m = -3.4e38;
    for (var i = t; i < at.len; i += 256u) { m = max(m, at.scale * at_x[base + i]); }
    m = at_reduce(t, m, true);
    var s = 0.0;
    for (var i = t; i < at.len; i += 256u) { s += exp(at.scale * at_x[base + i] - m); }
    s = at_reduce(t, s, false);
    for (var i = t; i < at.len; i += 256u) { at_y[base + i] = exp(at.scale * at_x[base + i] - m) / s; }
}

// One invocation per element of the output.
@compute @workgroup_size(256)
fn split_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= at.b * at.f * at.h * at.dh) { return; }
    // o indexes [b, h, f, d]
    let d = o % at.dh;
    let f = (o / at.dh) % at.f;
    let bh = o / (at.dh * at.f);
    let h = bh % at.h;
    let b = bh / at.h;
    at_y[o] = at_x[(b * at.f + f) * at.h * at.dh + h * at.dh + d];
}

@compute @workgroup_size(256)
fn merge_heads(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= at.b * at.f * at.h * at.dh) { return; }
    // o indexes [b, f, h, d]
    let d = o % at.dh;
    let h = (o / at.dh) % at.h;
    let f = (o / (at.dh * at.h)) % at.f;
    let b = o / (at.dh * at.h * at.f);
    at_y[o] = at_x[((b * at.h + h) * at.f + f) * at.dh + d];
}

// The MDM denoiser's sequence: out[s, 0] = tok[s] + pe[0], out[s, 1 + f] = x[s, f] + pe[1 + f]
// (x [S, F, E]; tok [S, E], or with at.rows == 1 row at.len of a token table broadcast to every s;
// pe with at least F + 1 rows of E; at.b = S, at.f = F, at.dh = E). Bindings 1..3: x, tok, pe;
// 4: out.
@group(0) @binding(1) var<storage, read> mdm_x: array<f32>;
@group(0) @binding(2) var<storage, read> mdm_tok: array<f32>;
@group(0) @binding(3) var<storage, read> mdm_pe: array<f32>;
@group(0) @binding(4) var<storage, read_write> mdm_out: array<f32>;

@compute @workgroup_size(256)
fn prepend_token(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    let e = at.dh;
    let t = at.f + 1u;
    if (o >= at.b * t * e) { return; }
    let d = o % e;
    let p = (o / e) % t;
    let s = o / (e * t);
    var v = 0.0;
    if (p == 0u) { v = mdm_tok[select(s, at.len, at.rows == 1u) * e + d]; } else { v = mdm_x[(s * at.f + p - 1u) * e + d]; }
    mdm_out[o] = v + mdm_pe[p * e + d];
}

// out [S, F, E] = in [S, F + 1, E] without its first token (at.b = S, at.f = F, at.dh = E).
@compute @workgroup_size(256)
fn drop_token(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    let e = at.dh;
    if (o >= at.b * at.f * e) { return; }
    let d = o % e;
    let f = (o / e) % at.f;
    let s = o / (e * at.f);
    at_y[o] = at_x[(s * (at.f + 1u) + f + 1u) * e + d];
}

// ---- softmax over rows too long for one workgroup's loop budget -----------------------------
// As layer norm's split (norm.wgsl): at.h slices of at.dh elements (a multiple of 256) per row, one
// workgroup per (row, slice); at_part holds the slice's maximum and its sum of exp(scale x - max of
// the row). sm_max_split, sm_sum_split, sm_apply_split; each combines the partials strided over
// the slices.
@group(0) @binding(3) var<storage, read_write> at_part: array<f32>;

// The maximum (k = 0) or the sum (k = 1) of the row's partials; a NaN maximum stays NaN.
fn sm_row_partials(t: u32, row: u32, k: u32) -> f32 {
    var v = select(0.0, -3.4e38, k == 0u);
    for (var j = t; j < at.h; j += 256u) {
        let p = at_part[2u * (row * at.h + j) + k];
        v = select(v + p, sm_max(v, p), k == 0u);
    }
    return at_reduce(t, v, k == 0u);
}

@compute @workgroup_size(256)
fn sm_max_split(@builtin(local_invocation_index) t: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / at.h;
    if (row >= at.rows) { return; }
    let lo = (wg % at.h) * at.dh;
    let hi = min(lo + at.dh, at.len);
    let base = row * at.len;
    var m = -3.4e38;
    for (var i = lo + t; i < hi; i += 256u) { m = sm_max(m, at.scale * at_x[base + i]); }
    m = at_reduce(t, m, true);
    if (t == 0u) { at_part[2u * wg] = m; }
}

@compute @workgroup_size(256)
fn sm_sum_split(@builtin(local_invocation_index) t: u32,
                @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / at.h;
    if (row >= at.rows) { return; }
    let m = sm_row_partials(t, row, 0u);
    let lo = (wg % at.h) * at.dh;
    let hi = min(lo + at.dh, at.len);
    let base = row * at.len;
    var s = 0.0;
    for (var i = lo + t; i < hi; i += 256u) { s += exp(at.scale * at_x[base + i] - m); }
    s = at_reduce(t, s, false);
    if (t == 0u) { at_part[2u * wg + 1u] = s; }
}

@compute @workgroup_size(256)
fn sm_apply_split(@builtin(local_invocation_index) t: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / at.h;
    if (row >= at.rows) { return; }
    let m = sm_row_partials(t, row, 0u);
    let s = sm_row_partials(t, row, 1u);
    let lo = (wg % at.h) * at.dh;
    let hi = min(lo + at.dh, at.len);
    let base = row * at.len;
    for (var i = lo + t; i < hi; i += 256u) { at_y[base + i] = exp(at.scale * at_x[base + i] - m) / s; }
}
