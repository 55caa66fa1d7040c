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
