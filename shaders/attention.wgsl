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

fn at_reduce(t: u32, v: f32, is_max: bool) -> f32 {
    at_red[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) {
            at_red[t] = select(at_red[t] + at_red[t + s], max(at_red[t], at_red[t + s]), is_max);
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
