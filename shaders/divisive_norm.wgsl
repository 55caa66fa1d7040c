// divisive_norm.wgsl: divisive normalization (Ren et al. 2017, unified form; docs/ops.md, divisive normalization).
//   v = x - mean over the summation field,  y = act(gamma * v / sqrt(sigma^2 + mean of v^2 over the
//   suppression field) + beta), plus the sparse L1 term's partial sums of |v| on request.
//
// Local field (spatial windows over all channels of one example) in one pass where the tile fits:
//   dn_local      one workgroup per TH x TW tile of one example: m and var_c of the tile grown
//                 by both windows' halos, mu and q of the tile grown by the suppression halo, then
//                 s2 and y of the tile, the statistics in workgroup memory; x is read from memory once
//                 (the halo's re-reads hit the cache) and y written once.
// Otherwise (windows too large for workgroup memory) five dispatches, box_filter.wgsl between:
//   dn_stats      per pixel: m = mean_c x and var_c = mean_c (x - m)^2 (one read of x)
//   [box_rows m]  -> dn_mu_q: mu = colsum(rowsum m) / |A|, q = var_c + (m - mu)^2 = mean_c (x - mu)^2
//   [box_rows q]  -> dn_apply_local: s2 = colsum(rowsum q) / divisor, then y (and v) for every channel
// Batch field (per channel over N,H,W) and layer field (per example over C,H,W):
//   dn_moments    one workgroup per group: mean, then the centred second moment
//   dn_apply_global

struct DnParams {
    n: u32, c: u32, h: u32, w: u32,
    hw: u32, pixels: u32, total: u32, kh: u32,       // pixels = N*H*W; kh: summation/suppression window height
    before_h: u32, scale: f32, sigma2: f32, _p: u32,  // scale: 1/|A| (mu) or 1/divisor (s2)
    // global fields: group g of element i is (i / g_div) % g_mod; dn_moments walks
    // g * g_stride + o * o_stride + j for o < o_count, j < inner
    g_div: u32, g_mod: u32, groups: u32, g_stride: u32,
    o_count: u32, o_stride: u32, inner: u32, count: u32,
    // dn_local: summation window (sum_h, sum_w) with sb_* pixels before the centre, suppression
    // window likewise; tiles_x tiles across a row, tiles per example; mu = window sum * mu_scale.
    sum_h: u32, sum_w: u32, sup_h: u32, sup_w: u32,
    sb_h: u32, sb_w: u32, pb_h: u32, pb_w: u32,
    tiles_x: u32, tiles: u32, mu_scale: f32, s2_scale: f32,
    // Pieces within the loop budget: channels c_lo..c_hi of dn_stats and dn_apply_local (first:
    // the piece writes its sums, else adds them; last: it finishes the statistics); l1_off: where
    // this piece's L1 partials start. dn_moments' split: `slices` slices of `slice` elements.
    c_lo: u32, c_hi: u32, first: u32, last: u32,
    l1_off: u32, slices: u32, slice: u32, _q: u32,
}
override WRITE_CENTERED: bool = false;
override L1: bool = false;
override GAMMA: bool = false;
override BETA: bool = false;

@group(0) @binding(0) var<uniform> dp: DnParams;
@group(0) @binding(1) var<storage, read> dn_x: array<f32>;
@group(0) @binding(2) var<storage, read> dn_a: array<f32>;      // per-pixel or per-group stats
@group(0) @binding(3) var<storage, read> dn_b: array<f32>;      // second stats plane
@group(0) @binding(4) var<storage, read> dn_gamma: array<f32>;
@group(0) @binding(5) var<storage, read> dn_beta: array<f32>;
@group(0) @binding(6) var<storage, read_write> dn_y: array<f32>;
@group(0) @binding(7) var<storage, read_write> dn_v: array<f32>;
@group(0) @binding(8) var<storage, read_write> dn_l1: array<f32>;  // one partial sum per workgroup

// Binding use per entry point: dn_stats writes m to dn_y and var_c to dn_v; dn_mu_q reads
// dn_a = rowsum(m), dn_b = m, dn_x = var_c and writes mu to dn_y and q to dn_v.

// Channels lo..hi of the pixel's m and var_c (dn_pixel_stats); the first piece writes the shifted
// sums, later ones add to them, the last turns them into (m, var_c).
@compute @workgroup_size(256)
fn dn_stats(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dp.pixels) { return; }
    let base = (i / dp.hw) * dp.c * dp.hw + i % dp.hw;
    var s = dn_shifted_sums(base, max(dp.c_lo, 1u), dp.c_hi);
    if (dp.first == 0u) { s += vec2<f32>(dn_y[i], dn_v[i]); }
    if (dp.last != 0u) { s = dn_finish_stats(dn_x[base], s); }
    dn_y[i] = s.x;
    dn_v[i] = s.y;
}

// max(v, 0) that keeps a NaN (WGSL's max may drop it; the statistics propagate NaN as PyTorch).
fn dn_nonneg(v: f32) -> f32 {
    return select(max(v, 0.0), v, (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u);
}

// Sums of d and d^2 over channels lo..hi of the pixel at dn_x[base], d = x - the first channel.
fn dn_shifted_sums(base: u32, lo: u32, hi: u32) -> vec2<f32> {
    let k = dn_x[base];
    var s1 = 0.0;
    var s2 = 0.0;
    for (var c = lo; c < hi; c++) {
        let d = dn_x[base + c * dp.hw] - k;
        s1 += d;
        s2 = fma(d, d, s2);
    }
    return vec2<f32>(s1, s2);
}

fn dn_finish_stats(k: f32, s: vec2<f32>) -> vec2<f32> {
    let fc = f32(dp.c);
    let md = s.x / fc;
    return vec2<f32>(k + md, dn_nonneg(s.y / fc - md * md));
}

// (m, var_c) over the channels of the pixel at dn_x[base] (channel stride H*W). Shifted sums
// (shift = the first channel) keep the variance free of cancellation.
fn dn_pixel_stats(base: u32) -> vec2<f32> {
    return dn_finish_stats(dn_x[base], dn_shifted_sums(base, 1u, dp.c));
}

// Column sum of a row-summed plane at pixel i (zero outside).
fn dn_colsum_a(i: u32) -> f32 {
    let p = i % dp.hw;
    let base = i - p;
    let row = p / dp.w;
    let col = p % dp.w;
    let lo = max(i32(row) - i32(dp.before_h), 0);
    let hi = min(i32(row) - i32(dp.before_h) + i32(dp.kh), i32(dp.h));
    var s = 0.0;
    for (var r = lo; r < hi; r++) { s += dn_a[base + u32(r) * dp.w + col]; }
    return s;
}

// dn_a: rowsum of m; dn_b: m; dn_x: var_c. Writes mu (dn_y) and q (dn_v).
@compute @workgroup_size(256)
fn dn_mu_q(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= dp.pixels) { return; }
    let mu = dn_colsum_a(i) * dp.scale;
    let d = dn_b[i] - mu;
    dn_y[i] = mu;
    dn_v[i] = dn_x[i] + d * d;
}

var<workgroup> dn_red: array<f32, 256>;

fn dn_l1_partial(t: u32, wg: u32, v: f32) {
    dn_red[t] = v;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (t < s) { dn_red[t] += dn_red[t + s]; }
        workgroupBarrier();
    }
    if (t == 0u) { dn_l1[wg] = dn_red[0]; }
}

fn dn_out(i: u32, c: u32, v: f32, rs: f32) {
    var y = v * rs;
    if (GAMMA) { y *= dn_gamma[c]; }
    if (BETA) { y += dn_beta[c]; }
    dn_y[i] = activate(y);
    if (WRITE_CENTERED) { dn_v[i] = v; }
}

// dn_a: rowsum of q; dn_b: mu. One invocation per pixel, looping over channels c_lo..c_hi.
@compute @workgroup_size(256)
fn dn_apply_local(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(local_invocation_index) t: u32,
                  @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    var l1 = 0.0;
    if (i < dp.pixels) {
        let s2 = dn_colsum_a(i) * dp.scale;
        let rs = 1.0 / sqrt(s2 + dp.sigma2);
        let mu = dn_b[i];
        let nimg = i / dp.hw;
        let p = i % dp.hw;
        let base = nimg * dp.c * dp.hw + p;
        for (var c = dp.c_lo; c < dp.c_hi; c++) {
            let e = base + c * dp.hw;
            let v = dn_x[e] - mu;
            l1 += abs(v);
            dn_out(e, c, v, rs);
        }
    }
    if (L1) { dn_l1_partial(t, dp.l1_off + wid.x + wid.y * nwg.x, l1); }
}

// One workgroup per group: mean, then the centred second moment; writes dn_y[2g], dn_y[2g+1].
@compute @workgroup_size(256)
fn dn_moments(@builtin(local_invocation_index) t: u32,
              @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= dp.groups) { return; }
    let base = g * dp.g_stride;
    let n = dp.o_count * dp.inner;
    var s = 0.0;
    for (var j = t; j < n; j += 256u) {
        s += dn_x[base + (j / dp.inner) * dp.o_stride + j % dp.inner];
    }
    dn_red[t] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { dn_red[t] += dn_red[t + k]; }
        workgroupBarrier();
    }
    let mean = dn_red[0] / f32(n);
    workgroupBarrier();
    var q = 0.0;
    for (var j = t; j < n; j += 256u) {
        let d = dn_x[base + (j / dp.inner) * dp.o_stride + j % dp.inner] - mean;
        q = fma(d, d, q);
    }
    dn_red[t] = q;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { dn_red[t] += dn_red[t + k]; }
        workgroupBarrier();
    }
    if (t == 0u) {
        dn_y[2u * g] = mean;
        dn_y[2u * g + 1u] = dn_red[0] / f32(n);
    }
}

// ---- dn_moments over groups too large for one workgroup's loop budget ------------------------
// Group g is cut into dp.slices slices of dp.slice elements (a multiple of 256), one workgroup per
// (group, slice): wg = g * slices + slice. dn_y holds two floats per (group, slice): the slice's
// sum, then its sum of squares about the group's mean. dn_moments_final (one workgroup per
// group, reading them as dn_a) writes (mean, var) to dn_y as dn_moments does.

fn dn_reduce(t: u32, v: f32) -> f32 {
    dn_red[t] = v;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { dn_red[t] += dn_red[t + k]; }
        workgroupBarrier();
    }
    let r = dn_red[0];
    workgroupBarrier();
    return r;
}

fn dn_group_elem(g: u32, j: u32) -> f32 {
    return dn_x[g * dp.g_stride + (j / dp.inner) * dp.o_stride + j % dp.inner];
}

@compute @workgroup_size(256)
fn dn_moments_sum_split(@builtin(local_invocation_index) t: u32,
                        @builtin(workgroup_id) wid: vec3<u32>,
                        @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let g = wg / dp.slices;
    if (g >= dp.groups) { return; }
    let lo = (wg % dp.slices) * dp.slice;
    let hi = min(lo + dp.slice, dp.o_count * dp.inner);
    var s = 0.0;
    for (var j = lo + t; j < hi; j += 256u) { s += dn_group_elem(g, j); }
    let r = dn_reduce(t, s);
    if (t == 0u) { dn_y[2u * wg] = r; }
}

@compute @workgroup_size(256)
fn dn_moments_sq_split(@builtin(local_invocation_index) t: u32,
                       @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let g = wg / dp.slices;
    if (g >= dp.groups) { return; }
    let n = dp.o_count * dp.inner;
    var ps = 0.0;
    for (var j = t; j < dp.slices; j += 256u) { ps += dn_y[2u * (g * dp.slices + j)]; }
    let mean = dn_reduce(t, ps) / f32(n);
    let lo = (wg % dp.slices) * dp.slice;
    let hi = min(lo + dp.slice, n);
    var q = 0.0;
    for (var j = lo + t; j < hi; j += 256u) {
        let d = dn_group_elem(g, j) - mean;
        q = fma(d, d, q);
    }
    let r = dn_reduce(t, q);
    if (t == 0u) { dn_y[2u * wg + 1u] = r; }
}

@compute @workgroup_size(256)
fn dn_moments_final(@builtin(local_invocation_index) t: u32,
                    @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= dp.groups) { return; }
    let n = f32(dp.o_count * dp.inner);
    var s = 0.0;
    var q = 0.0;
    for (var j = t; j < dp.slices; j += 256u) {
        s += dn_a[2u * (g * dp.slices + j)];
        q += dn_a[2u * (g * dp.slices + j) + 1u];
    }
    let mean = dn_reduce(t, s) / n;
    let var_ = dn_reduce(t, q) / n;
    if (t == 0u) {
        dn_y[2u * g] = mean;
        dn_y[2u * g + 1u] = var_;
    }
}

// dn_a: [groups, 2] (mean, var). One invocation per element.
@compute @workgroup_size(256)
fn dn_apply_global(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(local_invocation_index) t: u32,
                   @builtin(workgroup_id) wid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    var l1 = 0.0;
    if (i < dp.total) {
        let g = (i / dp.g_div) % dp.g_mod;
        let c = (i / dp.hw) % dp.c;
        let v = dn_x[i] - dn_a[2u * g];
        l1 = abs(v);
        dn_out(i, c, v, 1.0 / sqrt(dn_a[2u * g + 1u] + dp.sigma2));
    }
    if (L1) { dn_l1_partial(t, wid.x + wid.y * nwg.x, l1); }
}

// Sums the partial sums in dn_x[0..count] (workgroup g those of g * slice.. (g + 1) * slice) and
// writes dn_y[g] = sum * scale: one workgroup for the last level, more where count is past the
// loop budget.
@compute @workgroup_size(256)
fn dn_l1_final(@builtin(local_invocation_index) t: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let lo = wid.x * dp.slice;
    let hi = min(lo + dp.slice, dp.count);
    var s = 0.0;
    for (var j = lo + t; j < hi; j += 256u) { s += dn_x[j]; }
    dn_red[t] = s;
    workgroupBarrier();
    for (var k = 128u; k > 0u; k >>= 1u) {
        if (t < k) { dn_red[t] += dn_red[t + k]; }
        workgroupBarrier();
    }
    if (t == 0u) { dn_y[wid.x] = dn_red[0] * dp.scale; }
}

// ---- dn_local -------------------------------------------------------------------------------
override TH: u32 = 16u;
override TW: u32 = 32u;
// Capacities (the host picks a tile that fits): the M region (tile + both halos), the Q region
// (tile + suppression halo), the tile.
var<workgroup> dl_m: array<f32, 1280>;
var<workgroup> dl_var: array<f32, 960>;
var<workgroup> dl_q: array<f32, 960>;
var<workgroup> dl_mu: array<f32, 512>;

@compute @workgroup_size(256)
fn dn_local(@builtin(local_invocation_index) t: u32,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let nimg = wg / dp.tiles;
    if (nimg >= dp.n) { return; }
    let tile = wg % dp.tiles;
    let r0 = i32((tile / dp.tiles_x) * TH);
    let c0 = i32((tile % dp.tiles_x) * TW);
    let qh = TH + dp.sup_h - 1u;
    let qw = TW + dp.sup_w - 1u;
    let mh = qh + dp.sum_h - 1u;
    let mw = qw + dp.sum_w - 1u;
    // Image coordinates of the regions' first pixel.
    let qr0 = r0 - i32(dp.pb_h);
    let qc0 = c0 - i32(dp.pb_w);
    let mr0 = qr0 - i32(dp.sb_h);
    let mc0 = qc0 - i32(dp.sb_w);
    let img = nimg * dp.c * dp.hw;

    // m and var_c; zeros outside the image.
    for (var i = t; i < mh * mw; i += 256u) {
        let r = i / mw;
        let cc = i % mw;
        let gr = mr0 + i32(r);
        let gc = mc0 + i32(cc);
        var m = 0.0;
        var var_c = 0.0;
        if (gr >= 0 && gr < i32(dp.h) && gc >= 0 && gc < i32(dp.w)) {
            let mv = dn_pixel_stats(img + u32(gr) * dp.w + u32(gc));
            m = mv.x;
            var_c = mv.y;
        }
        dl_m[i] = m;
        let qr = i32(r) - i32(dp.sb_h);
        let qc = i32(cc) - i32(dp.sb_w);
        if (qr >= 0 && qr < i32(qh) && qc >= 0 && qc < i32(qw)) {
            dl_var[u32(qr) * qw + u32(qc)] = var_c;
        }
    }
    workgroupBarrier();

    // mu (summation window) and q = var_c + (m - mu)^2; q is zero outside the image.
    for (var j = t; j < qh * qw; j += 256u) {
        let qr = j / qw;
        let qc = j % qw;
        let gr = qr0 + i32(qr);
        let gc = qc0 + i32(qc);
        var q = 0.0;
        if (gr >= 0 && gr < i32(dp.h) && gc >= 0 && gc < i32(dp.w)) {
            var s = 0.0;
            for (var u = 0u; u < dp.sum_h; u++) {
                let row = (qr + u) * mw + qc;
                for (var v = 0u; v < dp.sum_w; v++) { s += dl_m[row + v]; }
            }
            let mu = s * dp.mu_scale;
            let d = dl_m[(qr + dp.sb_h) * mw + qc + dp.sb_w] - mu;
            q = dl_var[j] + d * d;
            let tr = i32(qr) - i32(dp.pb_h);
            let tc = i32(qc) - i32(dp.pb_w);
            if (tr >= 0 && tr < i32(TH) && tc >= 0 && tc < i32(TW)) {
                dl_mu[u32(tr) * TW + u32(tc)] = mu;
            }
        }
        dl_q[j] = q;
    }
    workgroupBarrier();

    // s2 (suppression window) and the output of every channel.
    var l1 = 0.0;
    for (var k = t; k < TH * TW; k += 256u) {
        let tr = k / TW;
        let tc = k % TW;
        let gr = r0 + i32(tr);
        let gc = c0 + i32(tc);
        if (gr < i32(dp.h) && gc < i32(dp.w)) {
            var s = 0.0;
            for (var u = 0u; u < dp.sup_h; u++) {
                let row = (tr + u) * qw + tc;
                for (var v = 0u; v < dp.sup_w; v++) { s += dl_q[row + v]; }
            }
            let rs = 1.0 / sqrt(s * dp.s2_scale + dp.sigma2);
            let mu = dl_mu[k];
            let base = img + u32(gr) * dp.w + u32(gc);
            for (var c = 0u; c < dp.c; c++) {
                let e = base + c * dp.hw;
                let v = dn_x[e] - mu;
                l1 += abs(v);
                dn_out(e, c, v, rs);
            }
        }
    }
    if (L1) { dn_l1_partial(t, wg, l1); }
}
