// guidance.wgsl: Platypose's energy guidance of x0 (docs/ops.md, energy guidance; scripts/PLATYPOSE.md).
//   multiview_energy  per (sample, frame, joint): X = x0 + root[frame], projected by every camera
//                     (P = (X - t) Rinv, pinhole, radial k1 k2 k3 and tangential p1 p2 distortion,
//                     skewed intrinsics), its share of the energy
//                     E_s = sum_c sum_f (1/(2J)) sum_j sum_xy w (u - u_obs)^2
//                     and its analytic gradient dE_s/dx0 (the 2x3 projection Jacobian, transposed)
//   plateau_update    one workgroup: the mean energy over the samples steps PyTorch's
//                     ReduceLROnPlateau (mode min, rel threshold 1e-4, patience 0, factor 0.1, eps
//                     1e-8), kept in a state buffer on the device; a NaN energy stops the refinement
//   sgd_update        x0 - lr g with the state's lr (unchanged once stopped)

struct EnergyParams {
    samples: u32, frames: u32, joints: u32, cameras: u32,
    // The cameras c_lo..c_hi of this dispatch; `part` bit 0 = the first (else the energy share and
    // gradient so far in e_part / e_grad are continued). One dispatch (0, C, 1) unless the cameras
    // would pass the loop budget.
    proj_only: u32, c_lo: u32, c_hi: u32, part: u32,
}
@group(0) @binding(0) var<uniform> ep: EnergyParams;
@group(0) @binding(1) var<storage, read> e_x0: array<f32>;     // [S, F, J * 3]
@group(0) @binding(2) var<storage, read> e_root: array<f32>;   // [F, 3]
@group(0) @binding(3) var<storage, read> e_cam: array<f32>;    // [C, 24]: Rinv (9), t (3), fx fy cx cy skew, k1 k2 k3, p1 p2, 0 0
@group(0) @binding(4) var<storage, read> e_obs: array<f32>;    // [C, F, J, 2]
@group(0) @binding(5) var<storage, read> e_w: array<f32>;      // [C, F, J, 2]
@group(0) @binding(6) var<storage, read_write> e_part: array<f32>; // [S, F * J] (proj_only: [C, S, F, J, 2])
@group(0) @binding(7) var<storage, read_write> e_grad: array<f32>; // [S, F, J * 3]

@compute @workgroup_size(256)
fn multiview_energy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    let fj = ep.frames * ep.joints;
    if (o >= ep.samples * fj) { return; }
    let s = o / fj;
    let f = (o / ep.joints) % ep.frames;
    let j = o % ep.joints;
    let X = vec3<f32>(e_x0[o * 3u], e_x0[o * 3u + 1u], e_x0[o * 3u + 2u])
          + vec3<f32>(e_root[f * 3u], e_root[f * 3u + 1u], e_root[f * 3u + 2u]);
    var energy = 0.0;
    var g = vec3<f32>(0.0);
    if (ep.proj_only == 0u && (ep.part & 1u) == 0u) {
        energy = e_part[o];
        g = vec3<f32>(e_grad[o * 3u], e_grad[o * 3u + 1u], e_grad[o * 3u + 2u]);
    }
    let norm = 1.0 / f32(2u * ep.joints);
    for (var c = ep.c_lo; c < ep.c_hi; c++) {
        let cb = c * 24u;
        let ri = mat3x3<f32>(e_cam[cb], e_cam[cb + 1u], e_cam[cb + 2u],
                             e_cam[cb + 3u], e_cam[cb + 4u], e_cam[cb + 5u],
                             e_cam[cb + 6u], e_cam[cb + 7u], e_cam[cb + 8u]);
        let d = X - vec3<f32>(e_cam[cb + 9u], e_cam[cb + 10u], e_cam[cb + 11u]);
        // The columns of ri are Rinv's rows, so ri = Rinv^T and P_k = sum_i d_i Rinv[i][k] = (ri d)_k.
        let P = ri * d;
        let fx = e_cam[cb + 12u]; let fy = e_cam[cb + 13u]; let cx = e_cam[cb + 14u]; let cy = e_cam[cb + 15u];
        let skew = e_cam[cb + 16u];
        let k1 = e_cam[cb + 17u]; let k2 = e_cam[cb + 18u]; let k3 = e_cam[cb + 19u];
        let p1 = e_cam[cb + 20u]; let p2 = e_cam[cb + 21u];
        let x = P.x / P.z;
        let y = P.y / P.z;
        let r2 = x * x + y * y;
        let kap = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
        let xd = x * kap + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x);
        let yd = y * kap + 2.0 * p2 * x * y + p1 * (r2 + 2.0 * y * y);
        let u = fx * xd + skew * yd + cx;
        let v = fy * yd + cy;
        let ob = ((c * ep.frames + f) * ep.joints + j) * 2u;
        if (ep.proj_only != 0u) {
            let pb = (((c * ep.samples + s) * ep.frames + f) * ep.joints + j) * 2u;
            e_part[pb] = u;
            e_part[pb + 1u] = v;
            continue;
        }
        let du = u - e_obs[ob];
        let dv = v - e_obs[ob + 1u];
        let wu = e_w[ob];
        let wv = e_w[ob + 1u];
        energy += norm * (wu * du * du + wv * dv * dv);
        // Back through the projection.
        let a = 2.0 * norm * wu * du;
        let b = 2.0 * norm * wv * dv;
        let gxd = a * fx;
        let gyd = a * skew + b * fy;
        let dk = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2); // d kappa / d r2
        let dxd_dx = kap + 2.0 * x * x * dk + 2.0 * p1 * y + 6.0 * p2 * x;
        let dxd_dy = 2.0 * x * y * dk + 2.0 * p1 * x + 2.0 * p2 * y;
        let dyd_dx = 2.0 * x * y * dk + 2.0 * p2 * y + 2.0 * p1 * x;
        let dyd_dy = kap + 2.0 * y * y * dk + 2.0 * p2 * x + 6.0 * p1 * y;
        let gx = gxd * dxd_dx + gyd * dyd_dx;
        let gy = gxd * dxd_dy + gyd * dyd_dy;
        let gP = vec3<f32>(gx / P.z, gy / P.z, -(gx * P.x + gy * P.y) / (P.z * P.z));
        // dP_k/dX_i = Rinv[i][k]: g_X = Rinv gP = gP ri.
        g += gP * ri;
    }
    if (ep.proj_only != 0u) { return; }
    e_part[o] = energy;
    e_grad[o * 3u] = g.x;
    e_grad[o * 3u + 1u] = g.y;
    e_grad[o * 3u + 2u] = g.z;
}

// With more samples than 256 x the loop budget, the mean goes in chunks of samples lo..hi across
// dispatches, the running sum and NaN flag in p_state[4], p_state[5]; `part` bit 0 = the first
// chunk, bit 1 = the last (which steps the scheduler). One dispatch (0, S, 3) otherwise.
struct PlateauParams {
    samples: u32, first: u32, slot: u32, _p0: u32,
    scale: f32, factor: f32, threshold: f32, eps: f32,
    lo: u32, hi: u32, part: u32, _p1: u32,
}
@group(0) @binding(0) var<uniform> pp: PlateauParams;
@group(0) @binding(1) var<storage, read> p_e: array<f32>;          // [S] energies
@group(0) @binding(2) var<storage, read_write> p_state: array<f32>; // lr, best, stopped, has_best
@group(0) @binding(3) var<storage, read_write> p_lrs: array<f32>;   // the lr of each substep

var<workgroup> p_sum: array<f32, 256>;
var<workgroup> p_nan: array<u32, 256>;

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(256)
fn plateau_update(@builtin(local_invocation_index) t: u32) {
    var acc = 0.0;
    var nan = 0u;
    for (var i = pp.lo + t; i < pp.hi; i += 256u) {
        let v = p_e[i];
        acc += v;
        nan |= u32(is_nan(v));
    }
    p_sum[t] = acc;
    p_nan[t] = nan;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w >>= 1u) {
        if (t < w) {
            p_sum[t] += p_sum[t + w];
            p_nan[t] |= p_nan[t + w];
        }
        workgroupBarrier();
    }
    if (t != 0u) { return; }
    var total = p_sum[0];
    var any_nan = p_nan[0];
    if ((pp.part & 1u) == 0u) {
        total += p_state[4];
        any_nan |= u32(p_state[5] != 0.0);
    }
    if ((pp.part & 2u) == 0u) {
        p_state[4] = total;
        p_state[5] = f32(any_nan);
        return;
    }
    if (pp.first != 0u) {
        // A fresh optimizer and scheduler for this diffusion step.
        p_state[0] = pp.scale;
        p_state[2] = 0.0;
        p_state[3] = 0.0;
    }
    if (p_state[2] == 0.0) {
        if (any_nan != 0u) {
            p_state[2] = 1.0; // torch.isnan(energy).any(): break
        } else {
            let m = total / f32(pp.samples);
            let better = select(m <= 3.4028235e38, m < p_state[1] * (1.0 - pp.threshold), p_state[3] != 0.0);
            if (better) {
                p_state[1] = m;
                p_state[3] = 1.0;
            } else {
                let lr = p_state[0];
                let nl = lr * pp.factor;
                if (lr - nl > pp.eps) { p_state[0] = nl; }
            }
        }
    }
    p_lrs[pp.slot] = select(p_state[0], 0.0, p_state[2] != 0.0);
}

struct SgdParams { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> gp: SgdParams;
@group(0) @binding(1) var<storage, read> g_x: array<f32>;
@group(0) @binding(2) var<storage, read> g_g: array<f32>;
@group(0) @binding(3) var<storage, read> g_state: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_y: array<f32>;

@compute @workgroup_size(256)
fn sgd_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= gp.n) { return; }
    // Once stopped x0 is kept as it is (x - 0 g would turn a non-finite gradient into NaN).
    g_y[i] = select(g_x[i] - g_state[0] * g_g[i], g_x[i], g_state[2] != 0.0);
}
