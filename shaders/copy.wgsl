// copy.wgsl: a plain storage-to-storage copy, vec4 per invocation: the memory ceiling through wgpu
// that the benchmarks compare every memory-bound kernel against.
struct CopyParams { n4: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> cpy: CopyParams;
@group(0) @binding(1) var<storage, read> cpy_src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> cpy_dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn copy_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < cpy.n4) {
        cpy_dst[i] = cpy_src[i];
    }
}

// One part of a channel concatenation: src [N, Cs, H, W] into channels [off, off + Cs) of dst
// [N, Cd, H, W]; one invocation per source element (sizes in elements: chw_src = Cs·H·W,
// chw_dst = Cd·H·W, off_hw = off·H·W).
struct CatParams { n: u32, chw_src: u32, chw_dst: u32, off_hw: u32 }
@group(0) @binding(0) var<uniform> cat: CatParams;
@group(0) @binding(1) var<storage, read> cat_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> cat_dst: array<f32>;

@compute @workgroup_size(256)
fn concat_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < cat.n) {
        let b = i / cat.chw_src;
        let r = i - b * cat.chw_src;
        cat_dst[b * cat.chw_dst + cat.off_hw + r] = cat_src[i];
    }
}

// A window of the middle axis: src [A, Ts·D] to dst [A, Td·D], dst[a, r] = src[a, off_hw + r]
// (sizes in elements: chw_src = Ts·D, chw_dst = Td·D, off_hw = first·D); one invocation per
// destination element. Keeps the last frames of a video [B, C, T, H, W] (A = B·C, D = H·W).
@compute @workgroup_size(256)
fn narrow_mid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < cat.n) {
        let a = i / cat.chw_dst;
        let r = i - a * cat.chw_dst;
        cat_dst[i] = cat_src[a * cat.chw_src + cat.off_hw + r];
    }
}

// Swaps the two middle axes: src [A, P, Q, D] to dst [A, Q, P, D]; one invocation per element.
struct SwapParams { n: u32, p: u32, q: u32, d: u32 }
@group(0) @binding(0) var<uniform> swp: SwapParams;
@group(0) @binding(1) var<storage, read> swp_src: array<f32>;
@group(0) @binding(2) var<storage, read_write> swp_dst: array<f32>;

@compute @workgroup_size(256)
fn swap_mid(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < swp.n) {
        // i indexes dst [a, q, p, d].
        let d = i % swp.d;
        let r = i / swp.d;
        let p = r % swp.p;
        let r2 = r / swp.p;
        let q = r2 % swp.q;
        let a = r2 / swp.q;
        swp_dst[i] = swp_src[((a * swp.p + p) * swp.q + q) * swp.d + d];
    }
}
