// gru.wgsl: the gates of neuralpredictors' ConvGRUCell and of torch.nn.GRU, fused elementwise
// (docs/ops.md, "Recurrent cells"). The convolutions and matmuls run before them (conv2d, matmul).
//
// A stacked gate tensor holds several gates' pre-activations along channels, group-major: for
// channel c of `cpg` channels per group and gate k of `gates`, the channel (c / cpg)·gates·cpg +
// k·cpg + c % cpg (one group: k·ch + c), so a grouped conv computes them all in one dispatch.
// `hw` is the plane size (1 for torch.nn.GRU, whose channels are its hidden units).
//
// SEQ (override): 1 = also write h' into frame t of the sequence output [N, ch, steps, hw].
override SEQ: u32 = 0u;

struct GruParams {
    total: u32,
    ch: u32,
    hw: u32,
    cpg: u32,
    t: u32,
    steps: u32,
    _p1: u32,
    _p2: u32,
}
@group(0) @binding(0) var<uniform> gp: GruParams;

fn gru_tanh(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    return select(t, -t, x < 0.0);
}

// The stacked channel of gate k for channel c, among `gates` gates.
fn gate_channel(c: u32, k: u32, gates: u32) -> u32 {
    return (c / gp.cpg) * gates * gp.cpg + k * gp.cpg + c % gp.cpg;
}

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}

// x [N, ch, steps, hw] (a video, NCTHW) to y [N, steps, ch, hw] (its frames as a batch).
@group(0) @binding(1) var<storage, read> perm_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> perm_y: array<f32>;

@compute @workgroup_size(256)
fn frames_to_batch(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.total) {
        return;
    }
    let p = i % gp.hw;
    let r = i / gp.hw;
    let c = r % gp.ch;
    let r2 = r / gp.ch;
    let t = r2 % gp.steps;
    let n = r2 / gp.steps;
    perm_y[i] = perm_x[((n * gp.ch + c) * gp.steps + t) * gp.hw + p];
}

// ConvGRUCell, first half: r = σ(gx_r + gh_r), z = σ(gx_z + gh_z); writes h ⊙ r and z.
// gx [N·steps, 3·ch, hw] (frame t of batch n at n·steps + t; gates reset, update, out),
// gh [N, 2·ch, hw] (reset, update), h [N, ch, hw].
@group(0) @binding(1) var<storage, read> rs_gx: array<f32>;
@group(0) @binding(2) var<storage, read> rs_gh: array<f32>;
@group(0) @binding(3) var<storage, read> rs_h: array<f32>;
@group(0) @binding(4) var<storage, read_write> rs_hr: array<f32>;
@group(0) @binding(5) var<storage, read_write> rs_z: array<f32>;

@compute @workgroup_size(256)
fn conv_gru_reset(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.total) {
        return;
    }
    let p = i % gp.hw;
    let c = (i / gp.hw) % gp.ch;
    let n = i / (gp.hw * gp.ch);
    let fx = (n * gp.steps + gp.t) * 3u * gp.ch;
    let fh = n * 2u * gp.ch;
    let r = vc_sigmoid(rs_gx[(fx + gate_channel(c, 0u, 3u)) * gp.hw + p] + rs_gh[(fh + gate_channel(c, 0u, 2u)) * gp.hw + p]);
    let z = vc_sigmoid(rs_gx[(fx + gate_channel(c, 1u, 3u)) * gp.hw + p] + rs_gh[(fh + gate_channel(c, 1u, 2u)) * gp.hw + p]);
    rs_hr[i] = rs_h[i] * r;
    rs_z[i] = z;
}

// ConvGRUCell, second half: ĥ = tanh(gx_o + go), h' = h·(1 − z) + ĥ·z (neuralpredictors' order).
// go [N, ch, hw] = conv(h ⊙ r); h' [N, ch, hw]; with SEQ also out [N, ch, steps, hw] at frame t.
@group(0) @binding(1) var<storage, read> up_gx: array<f32>;
@group(0) @binding(2) var<storage, read> up_go: array<f32>;
@group(0) @binding(3) var<storage, read> up_h: array<f32>;
@group(0) @binding(4) var<storage, read> up_z: array<f32>;
@group(0) @binding(5) var<storage, read_write> up_hn: array<f32>;
@group(0) @binding(6) var<storage, read_write> up_out: array<f32>;

@compute @workgroup_size(256)
fn conv_gru_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.total) {
        return;
    }
    let p = i % gp.hw;
    let c = (i / gp.hw) % gp.ch;
    let n = i / (gp.hw * gp.ch);
    let fx = (n * gp.steps + gp.t) * 3u * gp.ch;
    let hh = gru_tanh(up_gx[(fx + gate_channel(c, 2u, 3u)) * gp.hw + p] + up_go[i]);
    let z = up_z[i];
    let hn = up_h[i] * (1.0 - z) + hh * z;
    up_hn[i] = hn;
    if (SEQ == 1u) {
        up_out[((n * gp.ch + c) * gp.steps + gp.t) * gp.hw + p] = hn;
    }
}

// torch.nn.GRU, one step, all gates: gi [B, steps, 3·ch] (x W_ihᵀ + b_ih for every step; gates
// r, z, n), gh [B, 3·ch] (h W_hhᵀ + b_hh), h [B, ch]:
//   r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r·gh_n), h' = (h − n)·z + n
// (PyTorch's form of (1 − z)·n + z·h). With SEQ also out [B, steps, ch] at step t.
@group(0) @binding(1) var<storage, read> g_gi: array<f32>;
@group(0) @binding(2) var<storage, read> g_gh: array<f32>;
@group(0) @binding(3) var<storage, read> g_h: array<f32>;
@group(0) @binding(4) var<storage, read_write> g_hn: array<f32>;
@group(0) @binding(5) var<storage, read_write> g_out: array<f32>;

@compute @workgroup_size(256)
fn gru_gates(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= gp.total) {
        return;
    }
    let j = i % gp.ch;
    let b = i / gp.ch;
    let fi = (b * gp.steps + gp.t) * 3u * gp.ch;
    let fh = b * 3u * gp.ch;
    let r = vc_sigmoid(g_gi[fi + j] + g_gh[fh + j]);
    let z = vc_sigmoid(g_gi[fi + gp.ch + j] + g_gh[fh + gp.ch + j]);
    let n = gru_tanh(g_gi[fi + 2u * gp.ch + j] + r * g_gh[fh + 2u * gp.ch + j]);
    let hn = (g_h[i] - n) * z + n;
    g_hn[i] = hn;
    if (SEQ == 1u) {
        g_out[(b * gp.steps + gp.t) * gp.ch + j] = hn;
    }
}
