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
