// graph.wgsl: the message passing of the cGNF pose model (docs/ops.md, cGNF message passing).
//   gcn_aggregate   one CondGCN layer's sum aggregation: per node, its self-loop term, the messages
//                   of its skeleton neighbours (both directions, one weight), where the node's
//                   keypoint is observed the context message, and for the root's children the root
//                   node's message; nodes laid out [B, S, J] (poses, samples, joints), the context
//                   [B, J] and the root [B] broadcast over the samples
//   sage_aggregate  a DenseSAGE layer's input: [A x / clamp(rowsum A, 1), x] with the learned dense
//                   adjacency masked to the observed keypoints of each pose; optionally preprocesses
//                   raw keypoints first (scaled, root-centred, y flipped)
// One invocation per output element for both.
// DIRECT: the node messages are not given but computed in the kernel from the node features
// (g_mx holds x [rows, mx_stride], g_w the packed layer [2 hidden, mx_stride + 1], weights then
// bias): self = ReLU(W_x x_i + b_x), neighbour = ReLU(W_xx x_j + b_xx). For the first CondGCN layer,
// whose input is 3 coordinates, this saves a [rows, 2 hidden] tensor and its matmul.

struct GcnParams {
    rows: u32, hidden: u32, joints: u32, samples: u32,
    mx_stride: u32, mc_stride: u32, has_ctx: u32, has_root: u32,
    // The neighbours e_lo..e_hi of each joint's list in this dispatch; `part` bit 0 = the first
    // (the self-loop term; else the sum so far in g_out is continued), bit 1 = the last (context
    // and root). One dispatch (0, all, 3) unless a joint's neighbours would pass the loop budget.
    mr_stride: u32, e_lo: u32, e_hi: u32, part: u32,
}
@group(0) @binding(0) var<uniform> gp: GcnParams;
// [rows, mx_stride]: the self-loop term in columns 0..hidden, the neighbour message in hidden..2 hidden
@group(0) @binding(1) var<storage, read> g_mx: array<f32>;
// [B * J, mc_stride]: the context message in columns 0..hidden
@group(0) @binding(2) var<storage, read> g_mc: array<f32>;
// [B * J]: 1 where the keypoint of the joint is observed
@group(0) @binding(3) var<storage, read> g_obs: array<f32>;
// the neighbour lists: offsets [J + 1], then the neighbour joints, then [J] flags: 1 for the root's
// children
@group(0) @binding(4) var<storage, read> g_nbr: array<u32>;
@group(0) @binding(5) var<storage, read_write> g_out: array<f32>;
// [B, mr_stride]: the root message in columns 0..hidden
@group(0) @binding(6) var<storage, read> g_mr: array<f32>;
@group(0) @binding(7) var<storage, read> g_w: array<f32>;
override DIRECT: bool = false;

// Message column c (0..2 hidden) of node row r: given, or computed (DIRECT).
fn gcn_msg(r: u32, c: u32) -> f32 {
    if (!DIRECT) { return g_mx[r * gp.mx_stride + c]; }
    let f = gp.mx_stride;
    let wb = c * (f + 1u);
    var acc = g_w[wb + f];
    for (var k = 0u; k < f; k++) { acc += g_w[wb + k] * g_mx[r * f + k]; }
    // ReLU keeping a NaN (WGSL's max may drop it; PyTorch's relu does not). Tested on the bits.
    return select(max(acc, 0.0), acc, (bitcast<u32>(acc) & 0x7fffffffu) > 0x7f800000u);
}

@compute @workgroup_size(256)
fn gcn_aggregate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= gp.rows * gp.hidden) { return; }
    let h = o % gp.hidden;
    let r = o / gp.hidden;
    let j = r % gp.joints;
    let first = r - j; // the row of joint 0 of this pose and sample
    var acc: f32;
    if ((gp.part & 1u) != 0u) { acc = gcn_msg(r, h); } else { acc = g_out[o]; }
    // The table is the skeleton's own (ops::DeviceSkeleton), built and checked on the host.
    let e0 = g_nbr[j];
    let deg = g_nbr[j + 1u] - e0;
    for (var e = e0 + min(gp.e_lo, deg); e < e0 + min(gp.e_hi, deg); e++) {
        let n = g_nbr[gp.joints + 1u + e];
        acc += gcn_msg(first + n, gp.hidden + h);
    }
    if ((gp.part & 2u) == 0u) {
        g_out[o] = acc;
        return;
    }
    let b = r / (gp.joints * gp.samples);
    if (gp.has_ctx != 0u) {
        let cr = b * gp.joints + j;
        if (g_obs[cr] > 0.0) {
            acc += g_mc[cr * gp.mc_stride + h];
        }
    }
    if (gp.has_root != 0u && g_nbr[gp.joints + 1u + g_nbr[gp.joints] + j] != 0u) {
        acc += g_mr[b * gp.mr_stride + h];
    }
    g_out[o] = acc;
}

struct SageParams {
    batch: u32, joints: u32, feat: u32, prep: u32,
    root: i32, sx: f32, sy: f32, _p: u32,
    // sage_aggregate_part: the keypoints k_lo..k_hi summed by this dispatch; `part` bit 0 = the
    // first chunk, bit 1 = the last (the division by the degree, the second half).
    k_lo: u32, k_hi: u32, part: u32, _q: u32,
}
@group(0) @binding(0) var<uniform> sp: SageParams;
@group(0) @binding(1) var<storage, read> s_x: array<f32>;   // [B, J, F]
@group(0) @binding(2) var<storage, read> s_adj: array<f32>; // [J, J]
@group(0) @binding(3) var<storage, read> s_obs: array<f32>; // [B, J]
@group(0) @binding(4) var<storage, read_write> s_out: array<f32>; // [B, J, 2F]

// Feature f of keypoint k of pose b, preprocessed when sp.prep != 0 (F = 2).
fn sage_in(b: u32, k: u32, f: u32) -> f32 {
    let v = s_x[(b * sp.joints + k) * sp.feat + f];
    if (sp.prep == 0u) { return v; }
    var c = v;
    if (sp.root >= 0) { c = v - s_x[(b * sp.joints + u32(sp.root)) * sp.feat + f]; }
    return select(sp.sy, sp.sx, f == 0u) * c;
}

@compute @workgroup_size(256)
fn sage_aggregate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= sp.batch * sp.joints * sp.feat) { return; }
    let f = o % sp.feat;
    let i = (o / sp.feat) % sp.joints;
    let b = o / (sp.feat * sp.joints);
    var r = vec2<f32>(0.0);
    if (s_obs[b * sp.joints + i] > 0.0) { r = sage_sum(b, i, f, 0u, sp.joints, r); }
    let row = (b * sp.joints + i) * 2u * sp.feat;
    s_out[row + f] = r.x / max(r.y, 1.0);
    s_out[row + sp.feat + f] = sage_in(b, i, f);
}

// (acc, deg) continued over the keypoints lo..hi of pose b for keypoint i, feature f.
fn sage_sum(b: u32, i: u32, f: u32, lo: u32, hi: u32, start: vec2<f32>) -> vec2<f32> {
    var acc = start.x;
    var deg = start.y;
    for (var k = lo; k < hi; k++) {
        // A branch, not a product with 0: an unobserved keypoint's value never enters.
        if (s_obs[b * sp.joints + k] > 0.0) {
            let a = s_adj[i * sp.joints + k];
            deg += a;
            acc += a * sage_in(b, k, f);
        }
    }
    return vec2<f32>(acc, deg);
}

// sage_aggregate for more keypoints than the loop budget: the sums over keypoints k_lo..k_hi per
// dispatch, the running (acc, deg) in s_out's first half and s_deg [B, J, F].
@group(0) @binding(5) var<storage, read_write> s_deg: array<f32>;

@compute @workgroup_size(256)
fn sage_aggregate_part(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= sp.batch * sp.joints * sp.feat) { return; }
    let f = o % sp.feat;
    let i = (o / sp.feat) % sp.joints;
    let b = o / (sp.feat * sp.joints);
    let row = (b * sp.joints + i) * 2u * sp.feat;
    var r = vec2<f32>(0.0);
    if ((sp.part & 1u) == 0u) { r = vec2<f32>(s_out[row + f], s_deg[o]); }
    if (s_obs[b * sp.joints + i] > 0.0) { r = sage_sum(b, i, f, sp.k_lo, sp.k_hi, r); }
    if ((sp.part & 2u) == 0u) {
        s_out[row + f] = r.x;
        s_deg[o] = r.y;
        return;
    }
    s_out[row + f] = r.x / max(r.y, 1.0);
    s_out[row + sp.feat + f] = sage_in(b, i, f);
}
