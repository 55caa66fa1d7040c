// random.wgsl: counter-based random numbers, Philox-4x32-10 (in common.wgsl) (Salmon et al. 2011), identical bits on
// the CPU reference (src/reference/random.rs). Element i of a stream (seed, offset) uses counter
// (i / 4, 0, offset_lo, offset_hi), key (seed_lo, seed_hi) and word i % 4. With rp.row > 0 the
// output is rows of rp.row elements, row r holding elements 0.. of stream (seed, offset + r)
// (offset + r wrapping at 2^64): one stream per row (a frame's noise, whatever frames a call covers).
// uniform: ((word >> 8) + 1) * 2^-24, in (0, 1], exact in f32.
// normal: Box-Muller on the block's words (0,1) and (2,3): z0 = r cos(2 pi u1), z1 = r sin(2 pi u1).

struct RandParams { n: u32, seed_lo: u32, seed_hi: u32, off_lo: u32, off_hi: u32, scale: f32, row: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> rp: RandParams;
@group(0) @binding(1) var<storage, read_write> rand_out: array<f32>;

fn philox_block(block: u32, row: u32) -> vec4<u32> {
    let lo = rp.off_lo + row;
    let hi = rp.off_hi + select(0u, 1u, lo < rp.off_lo);
    return philox(vec4<u32>(block, 0u, lo, hi), vec2<u32>(rp.seed_lo, rp.seed_hi));
}

// Invocation b's place: (counter block, row, output index of its first word, end of its row).
fn place(b: u32) -> vec4<u32> {
    if (rp.row == 0u) { return vec4<u32>(b, 0u, b * 4u, rp.n); }
    let per = (rp.row + 3u) / 4u;
    let row = b / per;
    let blk = b % per;
    return vec4<u32>(blk, row, row * rp.row + blk * 4u, min(rp.n, (row + 1u) * rp.row));
}

// One invocation per block of four elements.
@compute @workgroup_size(256)
fn random_uniform(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pl = place(gid.x + gid.y * nwg.x * 256u);
    if (pl.z >= pl.w) { return; }
    let w = philox_block(pl.x, pl.y);
    for (var j = 0u; j < 4u; j++) {
        if (pl.z + j < pl.w) { rand_out[pl.z + j] = to_unit(w[j]); }
    }
}

@compute @workgroup_size(256)
fn random_normal(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let pl = place(gid.x + gid.y * nwg.x * 256u);
    if (pl.z >= pl.w) { return; }
    let w = philox_block(pl.x, pl.y);
    for (var j = 0u; j < 2u; j++) {
        let r = sqrt(-2.0 * log(to_unit(w[2u * j])));
        let th = 6.283185307179586 * to_unit(w[2u * j + 1u]);
        let i = pl.z + 2u * j;
        if (i < pl.w) { rand_out[i] = rp.scale * r * cos(th); }
        if (i + 1u < pl.w) { rand_out[i + 1u] = rp.scale * r * sin(th); }
    }
}
