// pool.wgsl: 2-D max and average pooling with PyTorch's semantics (docs/ops.md, Pooling).
// One invocation per output element of [N, C, Ho, Wo] walks the taps [tap0, tap1) of its kh x kw
// window (row-major). A window longer than the loop budget is walked in several dispatches: the
// first (phase bit 1) starts from -inf or 0, later ones continue from the output, and the last
// (phase bit 2) divides (avg). Taps in the padding read nothing.
//
//   max_pool2d  the largest value; a NaN wins (as torch: `val > max || isnan(val)`)
//   avg_pool2d  the sum over the covered cells / divisor: divisor_override, or the window clipped
//               to the padded input (count_include_pad), or the cells covered

struct PoolParams {
    total: u32, h: u32, w: u32, oh: u32,
    ow: u32, kh: u32, kw: u32, sh: u32,
    sw: u32, ph: u32, pw: u32, dh: u32,
    dw: u32, tap0: u32, tap1: u32, phase: u32,
    count_include_pad: u32, divisor: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> pp: PoolParams;
@group(0) @binding(1) var<storage, read> pl_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> pl_y: array<f32>;

fn pl_is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(256)
fn max_pool2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= pp.total) { return; }
    let ox = o % pp.ow;
    let oy = (o / pp.ow) % pp.oh;
    let plane = o / (pp.ow * pp.oh);
    let base = plane * pp.h * pp.w;
    // Rows and columns in padded coordinates (the input starts at ph, pw).
    let y0 = oy * pp.sh;
    let x0 = ox * pp.sw;
    var m = bitcast<f32>(0xff800000u); // -inf
    if ((pp.phase & 1u) == 0u) { m = pl_y[o]; }
    var i = pp.tap0 / pp.kw;
    var j = pp.tap0 % pp.kw;
    for (var t = pp.tap0; t < pp.tap1; t++) {
        let r = y0 + i * pp.dh;
        let c = x0 + j * pp.dw;
        if (r >= pp.ph && r - pp.ph < pp.h && c >= pp.pw && c - pp.pw < pp.w) {
            let v = pl_x[base + (r - pp.ph) * pp.w + (c - pp.pw)];
            if (v > m || pl_is_nan(v)) { m = v; }
        }
        j++;
        if (j == pp.kw) { j = 0u; i++; }
    }
    pl_y[o] = m;
}

@compute @workgroup_size(256)
fn avg_pool2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= pp.total) { return; }
    let ox = o % pp.ow;
    let oy = (o / pp.ow) % pp.oh;
    let plane = o / (pp.ow * pp.oh);
    let base = plane * pp.h * pp.w;
    let y0 = oy * pp.sh;
    let x0 = ox * pp.sw;
    var s = 0.0;
    if ((pp.phase & 1u) == 0u) { s = pl_y[o]; }
    var i = pp.tap0 / pp.kw;
    var j = pp.tap0 % pp.kw;
    for (var t = pp.tap0; t < pp.tap1; t++) {
        let r = y0 + i;
        let c = x0 + j;
        if (r >= pp.ph && r - pp.ph < pp.h && c >= pp.pw && c - pp.pw < pp.w) {
            s += pl_x[base + (r - pp.ph) * pp.w + (c - pp.pw)];
        }
        j++;
        if (j == pp.kw) { j = 0u; i++; }
    }
    if ((pp.phase & 2u) != 0u) {
        // The window in padded coordinates [y0, y1) x [x0, x1), clipped to the padded input, then
        // to the input itself.
        let y1 = min(y0 + pp.kh, pp.h + 2u * pp.ph);
        let x1 = min(x0 + pp.kw, pp.w + 2u * pp.pw);
        let cy0 = max(y0, pp.ph);
        let cx0 = max(x0, pp.pw);
        let cy1 = min(y1, pp.h + pp.ph);
        let cx1 = min(x1, pp.w + pp.pw);
        var d = (y1 - y0) * (x1 - x0);
        if (cy0 >= cy1 || cx0 >= cx1) {
            s = 0.0;
            d = 1u;
        } else if (pp.divisor != 0u) {
            d = pp.divisor;
        } else if (pp.count_include_pad == 0u) {
            d = (cy1 - cy0) * (cx1 - cx0);
        }
        s = s / f32(d);
    }
    pl_y[o] = s;
}
