// random.wgsl: counter-based random numbers, Philox-4x32-10 (in common.wgsl) (Salmon et al. 2011), identical bits on
// the CPU reference (src/reference/random.rs). Element i of a stream (seed, offset) uses counter
// (i / 4, 0, offset_lo, offset_hi), key (seed_lo, seed_hi) and word i % 4.
// uniform: ((word >> 8) + 1) * 2^-24, in (0, 1], exact in f32.
// normal: Box-Muller on the block's words (0,1) and (2,3): z0 = r cos(2 pi u1), z1 = r sin(2 pi u1).

struct RandParams { n: u32, seed_lo: u32, seed_hi: u32, off_lo: u32, off_hi: u32, scale: f32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> rp: RandParams;
@group(0) @binding(1) var<storage, read_write> rand_out: array<f32>;

fn philox_block(block: u32) -> vec4<u32> {
    return philox(vec4<u32>(block, 0u, rp.off_lo, rp.off_hi), vec2<u32>(rp.seed_lo, rp.seed_hi));
}

// One invocation per block of four elements.
@compute @workgroup_size(256)
fn random_uniform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = gid.x + gid.y * nwg.x * 256u;
    if (b * 4u >= rp.n) { return; }
    let w = philox_block(b);
    for (var j = 0u; j < 4u; j++) {
        if (b * 4u + j < rp.n) { rand_out[b * 4u + j] = to_unit(w[j]); }
    }
}

@compute @workgroup_size(256)
fn random_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = gid.x + gid.y * nwg.x * 256u;
    if (b * 4u >= rp.n) { return; }
    let w = philox_block(b);
    for (var j = 0u; j < 2u; j++) {
        let r = sqrt(-2.0 * log(to_unit(w[2u * j])));
        let th = 6.283185307179586 * to_unit(w[2u * j + 1u]);
        let i = b * 4u + 2u * j;
        if (i < rp.n) { rand_out[i] = rp.scale * r * cos(th); }
        if (i + 1u < rp.n) { rand_out[i + 1u] = rp.scale * r * sin(th); }
    }
}
