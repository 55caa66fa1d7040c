// diffusion.wgsl: the sampler's elementwise passes, each one fused kernel.
//   sampler_step  DDPM or DDIM step from host-computed coefficients (src/diffusion/schedule.rs):
//                 x0 = a_s x + a_m m (clipped to +-clip when CLIP), eps = e_s x + e_m m,
//                 prev = p_x0 x0 + p_eps eps + p_s x + sigma z; writes prev and x0
//                 (THRESH: x0 = clamp(x0, -s, s) / s with s of its sample from x0_quantile;
//                 GUIDE: a gradient g moves them, x0 += g_x0 g, eps += g_eps g, prev += g_prev g)
//   x0_quantile   dynamic thresholding's s per sample (row): the linearly interpolated quantile of
//                 |x0| (torch.quantile), clamped to [1, max]; one workgroup per row, the two order
//                 statistics found by a 4-pass radix select on the f32 bits (|x0| >= 0 sorts as u32)
//   cfg_combine   classifier-free guidance: out = uncond + w (cond - uncond)
//   add_noise     forward noising: x_t = sqrt(abar) x0 + sqrt(1 - abar) z
// z comes from a tensor (NOISE = 1) or from Philox in the kernel (NOISE = 2, the stream
// (seed, offset) of ops::random_normal, element by element), or is absent (NOISE = 0).

struct StepParams {
    n: u32, seed_lo: u32, seed_hi: u32, off_lo: u32,
    off_hi: u32, row_len: u32, q_lo: u32, q_round: u32, // row_len, q_lo, q_round: thresholding
    a_s: f32, a_m: f32, e_s: f32, e_m: f32,
    p_x0: f32, p_eps: f32, p_s: f32, sigma: f32,
    clip: f32, w: f32, q_w: f32, s_max: f32,         // q_w, s_max: thresholding
    g_x0: f32, g_eps: f32, g_prev: f32, _p3: f32,     // guidance
    q_slices: u32, q_slice: u32, _p4: u32, _p5: u32,  // thresholding's split select
}
override NOISE: u32 = 0u;
override CLIP: bool = false;
override THRESH: bool = false;
override GUIDE: bool = false;

@group(0) @binding(0) var<uniform> sp: StepParams;
@group(0) @binding(1) var<storage, read> st_x: array<f32>;
@group(0) @binding(2) var<storage, read> st_m: array<f32>;
@group(0) @binding(3) var<storage, read> st_z: array<f32>;
@group(0) @binding(4) var<storage, read_write> st_prev: array<f32>;
@group(0) @binding(5) var<storage, read_write> st_x0: array<f32>;
@group(0) @binding(6) var<storage, read> st_s: array<f32>;
@group(0) @binding(7) var<storage, read> st_g: array<f32>;

fn st_noise(i: u32) -> f32 {
    switch NOISE {
        case 1u: { return st_z[i]; }
        case 2u: { return philox_normal(vec2<u32>(sp.seed_lo, sp.seed_hi), vec2<u32>(sp.off_lo, sp.off_hi), i); }
        default: { return 0.0; }
    }
}

// c * v where the step uses v, 0 where its coefficient is 0 (diffusers' formula has no such term,
// so an infinite v there must not make 0 * inf = NaN).
fn st_term(c: f32, v: f32) -> f32 {
    return select(c * v, 0.0, c == 0.0);
}

@compute @workgroup_size(256)
fn sampler_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= sp.n) { return; }
    let x = st_x[i];
    let m = st_m[i];
    var x0 = st_term(sp.a_s, x) + st_term(sp.a_m, m);
    if (THRESH) {
        let s = st_s[i / sp.row_len];
        x0 = clamp(x0, -s, s) / s;
    } else if (CLIP) {
        // torch.clamp keeps a NaN (WGSL's clamp may not).
        x0 = select(clamp(x0, -sp.clip, sp.clip), x0, tq_is_nan(bitcast<u32>(x0) & 0x7fffffffu));
    }
    var eps = st_term(sp.e_s, x) + st_term(sp.e_m, m);
    var g = 0.0;
    if (GUIDE) {
        g = st_g[i];
        x0 += sp.g_x0 * g;
        eps += sp.g_eps * g;
    }
    var prev = st_term(sp.p_x0, x0) + st_term(sp.p_eps, eps) + st_term(sp.p_s, x) + sp.g_prev * g;
    if (NOISE != 0u) { prev += sp.sigma * st_noise(i); }
    st_prev[i] = prev;
    st_x0[i] = x0;
}

// st_x: unconditional output, st_m: conditional output.
@compute @workgroup_size(256)
fn cfg_combine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= sp.n) { return; }
    st_prev[i] = st_x[i] + sp.w * (st_m[i] - st_x[i]);
}

// st_x: x0; coefficients p_x0 = sqrt(abar), sigma = sqrt(1 - abar).
@compute @workgroup_size(256)
fn add_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= sp.n) { return; }
    st_prev[i] = sp.p_x0 * st_x[i] + sp.sigma * st_noise(i);
}

var<workgroup> tq_hist: array<atomic<u32>, 256>;
var<workgroup> tq_sel: vec2<u32>;
var<workgroup> tq_nan: atomic<u32>;

// Whether the bits of a magnitude (sign clear) are a NaN's: NaN sorts above +inf as u32.
fn tq_is_nan(b: u32) -> bool {
    return b > 0x7f800000u;
}

// The bits of |x0| at element i of the row starting at `base` (x0 exactly as sampler_step computes
// it: a zero coefficient drops its term, so an infinite input it multiplies gives no NaN here).
fn tq_bits(base: u32, i: u32) -> u32 {
    return bitcast<u32>(abs(st_term(sp.a_s, st_x[base + i]) + st_term(sp.a_m, st_m[base + i])));
}

// The bits of the element of rank `rank` (0 = smallest) of |x0| over the row: 8 bits a pass, each
// pass a histogram of the elements that share the prefix found so far.
fn tq_select(t: u32, base: u32, rank: u32) -> u32 {
    var prefix = 0u;
    var mask = 0u;
    var k = rank;
    for (var round = 0u; round < 4u; round++) {
        let shift = 24u - 8u * round;
        atomicStore(&tq_hist[t], 0u);
        workgroupBarrier();
        for (var i = t; i < sp.row_len; i += 256u) {
            let b = tq_bits(base, i);
            if ((b & mask) == prefix) { atomicAdd(&tq_hist[(b >> shift) & 255u], 1u); }
            if (tq_is_nan(b)) { atomicOr(&tq_nan, 1u); }
        }
        workgroupBarrier();
        if (t == 0u) {
            var acc = 0u;
            var d = 0u;
            loop {
                let c = atomicLoad(&tq_hist[d]);
                if (acc + c > k || d == 255u) { break; }
                acc += c;
                d++;
            }
            tq_sel = vec2<u32>(prefix | (d << shift), k - acc);
        }
        workgroupBarrier();
        prefix = tq_sel.x;
        k = tq_sel.y;
        mask |= 255u << shift;
        workgroupBarrier();
    }
    return prefix;
}

// Writes s of row r to st_prev[r]; sp.n = rows, q_lo = floor(q (len - 1)), q_w = its fraction.
@compute @workgroup_size(256)
fn x0_quantile(@builtin(local_invocation_index) t: u32,
               @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= sp.n) { return; }
    let base = row * sp.row_len;
    if (t == 0u) { atomicStore(&tq_nan, 0u); }
    workgroupBarrier();
    let lo = tq_select(t, base, sp.q_lo);
    let hi = tq_select(t, base, tq_hi_rank());
    if (t == 0u) { st_prev[row] = tq_finish(lo, hi, atomicLoad(&tq_nan) != 0u); }
}

// torch takes the upper rank as ceil(position): the same element when the position is whole.
fn tq_hi_rank() -> u32 {
    return min(sp.q_lo + u32(sp.q_w > 0.0), sp.row_len - 1u);
}

// s from the bits of the two order statistics: torch.lerp, then clamped to [1, max]; NaN where
// the row holds a NaN (torch.quantile's rule; torch.clamp keeps it).
fn tq_finish(lo_bits: u32, hi_bits: u32, nan: bool) -> f32 {
    let lo = bitcast<f32>(lo_bits);
    let hi = bitcast<f32>(hi_bits);
    let q = select(hi - (hi - lo) * (1.0 - sp.q_w), lo + sp.q_w * (hi - lo), sp.q_w < 0.5);
    let qn = nan || tq_is_nan(bitcast<u32>(q) & 0x7fffffffu);
    return select(clamp(q, 1.0, sp.s_max), bitcast<f32>(0x7fc00000u), qn);
}

// ---- x0_quantile over rows too long for one workgroup's loop budget --------------------------
// The same radix select, each of its 4 rounds two dispatches: tq_hist_split (one workgroup per
// (row, slice of q_slice elements): the slice's histograms of both order statistics' candidates,
// added to the row's) and tq_pick_split (one workgroup per row: the digit of each from a prefix
// sum of its histogram, the histograms cleared for the next round; the last round writes s).
// tq_state per row (TQ_ROW u32, cleared before the first round): histograms [0, 512), then the
// prefixes and remaining ranks (512..516) and the NaN flag (516).
const TQ_ROW: u32 = 520u;
@group(0) @binding(5) var<storage, read_write> tq_state: array<atomic<u32>>;
var<workgroup> tq_lh: array<atomic<u32>, 512>;
var<workgroup> tq_scan: array<u32, 256>;

@compute @workgroup_size(256)
fn tq_hist_split(@builtin(local_invocation_index) t: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let wg = wid.x + wid.y * nwg.x;
    let row = wg / sp.q_slices;
    if (row >= sp.n) { return; }
    let st = row * TQ_ROW;
    let shift = 24u - 8u * sp.q_round;
    let mask = (0xffffffffu << shift) << 8u;
    let p_lo = atomicLoad(&tq_state[st + 512u]);
    let p_hi = atomicLoad(&tq_state[st + 514u]);
    atomicStore(&tq_lh[t], 0u);
    atomicStore(&tq_lh[t + 256u], 0u);
    workgroupBarrier();
    let base = row * sp.row_len;
    let lo = (wg % sp.q_slices) * sp.q_slice;
    let hi = min(lo + sp.q_slice, sp.row_len);
    var nan = false;
    for (var i = lo + t; i < hi; i += 256u) {
        let b = tq_bits(base, i);
        let d = (b >> shift) & 255u;
        if ((b & mask) == p_lo) { atomicAdd(&tq_lh[d], 1u); }
        if ((b & mask) == p_hi) { atomicAdd(&tq_lh[256u + d], 1u); }
        nan = nan || tq_is_nan(b);
    }
    workgroupBarrier();
    let a = atomicLoad(&tq_lh[t]);
    if (a != 0u) { atomicAdd(&tq_state[st + t], a); }
    let b = atomicLoad(&tq_lh[t + 256u]);
    if (b != 0u) { atomicAdd(&tq_state[st + 256u + t], b); }
    if (nan) { atomicOr(&tq_state[st + 516u], 1u); }
}

// Picks the digit of order statistic `sel` (0: lower, 1: upper) of row state `st` this round.
fn tq_pick(t: u32, st: u32, sel: u32, rank0: u32) {
    let shift = 24u - 8u * sp.q_round;
    let h = atomicLoad(&tq_state[st + 256u * sel + t]);
    tq_scan[t] = h;
    workgroupBarrier();
    for (var o = 1u; o < 256u; o <<= 1u) {
        var v = 0u;
        if (t >= o) { v = tq_scan[t - o]; }
        workgroupBarrier();
        tq_scan[t] += v;
        workgroupBarrier();
    }
    let incl = tq_scan[t];
    let excl = incl - h;
    let first = sp.q_round == 0u;
    let k = select(atomicLoad(&tq_state[st + 513u + 2u * sel]), rank0, first);
    let prefix = select(atomicLoad(&tq_state[st + 512u + 2u * sel]), 0u, first);
    // Storage barriers: the words read above are written below, and read by other invocations
    // (thread 0 in the last round) after this function; workgroupBarrier orders workgroup memory only.
    storageBarrier();
    workgroupBarrier();
    if (excl <= k && (k < incl || t == 255u)) {
        atomicStore(&tq_state[st + 512u + 2u * sel], prefix | (t << shift));
        atomicStore(&tq_state[st + 513u + 2u * sel], k - excl);
    }
    atomicStore(&tq_state[st + 256u * sel + t], 0u);
    storageBarrier();
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn tq_pick_split(@builtin(local_invocation_index) t: u32,
                 @builtin(workgroup_id) wid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= sp.n) { return; }
    let st = row * TQ_ROW;
    tq_pick(t, st, 0u, sp.q_lo);
    tq_pick(t, st, 1u, tq_hi_rank());
    if (sp.q_round == 3u && t == 0u) {
        let lo = atomicLoad(&tq_state[st + 512u]);
        let hi = atomicLoad(&tq_state[st + 514u]);
        st_prev[row] = tq_finish(lo, hi, atomicLoad(&tq_state[st + 516u]) != 0u);
    }
}
