// box_filter.wgsl: separable window sums over planes [P, H, W] with zero 'SAME' padding: the
// window of size k covers [i - (k-1)/2, i + k-1-(k-1)/2] and positions outside the plane count as
// zeros, so windows may be as large as (or larger than) the image. The sum is multiplied by
// `scale`; with SQUARE the input is squared first (for E[x^2]).
// Used by divisive_norm (the local summation and suppression fields) and by neurn for large k.
// A window longer than the loop budget is summed in pieces over dispatches: each takes the
// window's cells o_lo..o_hi (of 0..k) and, with acc, adds its sum to what the output holds.

struct BoxParams {
    planes: u32, h: u32, w: u32, k: u32, before: u32, scale: f32, total: u32, acc: u32,
    o_lo: u32, o_hi: u32, _p0: u32, _p1: u32,
}
override SQUARE: bool = false;
@group(0) @binding(0) var<uniform> bx: BoxParams;
@group(0) @binding(1) var<storage, read> box_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> box_out: array<f32>;

fn box_val(i: u32) -> f32 {
    let v = box_in[i];
    return select(v, v * v, SQUARE);
}

fn box_store(i: u32, v: f32) {
    if (bx.acc != 0u) { box_out[i] += v; } else { box_out[i] = v; }
}

// Sums along W.
@compute @workgroup_size(256)
fn box_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= bx.total) { return; }
    let col = i % bx.w;
    let row0 = i - col;
    let start = i32(col) - i32(bx.before);
    let lo = max(start + i32(bx.o_lo), 0);
    let hi = min(start + i32(bx.o_hi), i32(bx.w));
    var s = 0.0;
    for (var j = lo; j < hi; j++) { s += box_val(row0 + u32(j)); }
    box_store(i, s * bx.scale);
}

// Sums along H.
@compute @workgroup_size(256)
fn box_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= bx.total) { return; }
    let hw = bx.h * bx.w;
    let p = i % hw;
    let base = i - p;
    let row = p / bx.w;
    let col = p % bx.w;
    let start = i32(row) - i32(bx.before);
    let lo = max(start + i32(bx.o_lo), 0);
    let hi = min(start + i32(bx.o_hi), i32(bx.h));
    var s = 0.0;
    for (var r = lo; r < hi; r++) { s += box_val(base + u32(r) * bx.w + col); }
    box_store(i, s * bx.scale);
}
