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
    off_hi: u32, row_len: u32, q_lo: u32, _p2: u32,   // row_len, q_lo: thresholding
    a_s: f32, a_m: f32, e_s: f32, e_m: f32,
    p_x0: f32, p_eps: f32, p_s: f32, sigma: f32,
    clip: f32, w: f32, q_w: f32, s_max: f32,         // q_w, s_max: thresholding
    g_x0: f32, g_eps: f32, g_prev: f32, _p3: f32,     // guidance
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

@compute @workgroup_size(256)
fn sampler_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= sp.n) { return; }
    let x = st_x[i];
    let m = st_m[i];
    var x0 = sp.a_s * x + sp.a_m * m;
    if (THRESH) {
        let s = st_s[i / sp.row_len];
        x0 = clamp(x0, -s, s) / s;
    } else if (CLIP) {
        x0 = clamp(x0, -sp.clip, sp.clip);
    }
    var eps = sp.e_s * x + sp.e_m * m;
    var g = 0.0;
    if (GUIDE) {
        g = st_g[i];
        x0 += sp.g_x0 * g;
        eps += sp.g_eps * g;
    }
    var prev = sp.p_x0 * x0 + sp.p_eps * eps + sp.p_s * x + sp.g_prev * g;
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

// The bits of |x0| at element i of the row starting at `base` (x0 as sampler_step computes it).
fn tq_bits(base: u32, i: u32) -> u32 {
    return bitcast<u32>(abs(sp.a_s * st_x[base + i] + sp.a_m * st_m[base + i]));
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
    let lo = bitcast<f32>(tq_select(t, base, sp.q_lo));
    // torch takes the upper rank as ceil(position): the same element when the position is whole.
    let hi = bitcast<f32>(tq_select(t, base, min(sp.q_lo + u32(sp.q_w > 0.0), sp.row_len - 1u)));
    if (t == 0u) {
        // torch.lerp
        let q = select(hi - (hi - lo) * (1.0 - sp.q_w), lo + sp.q_w * (hi - lo), sp.q_w < 0.5);
        st_prev[row] = clamp(q, 1.0, sp.s_max);
    }
}
