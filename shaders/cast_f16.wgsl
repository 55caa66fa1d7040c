// cast_f16.wgsl: conversions between f32 and f16 storage (needs the adapter's shader-f16).
enable f16;
struct CastParams { n: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> cst: CastParams;
@group(0) @binding(1) var<storage, read> cast_in_f32: array<f32>;
@group(0) @binding(2) var<storage, read_write> cast_out_f16: array<f16>;
@group(0) @binding(1) var<storage, read> cast_in_f16: array<f16>;
@group(0) @binding(2) var<storage, read_write> cast_out_f32: array<f32>;

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < cst.n) {
        cast_out_f16[i] = f16(cast_in_f32[i]);
    }
}

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < cst.n) {
        cast_out_f32[i] = f32(cast_in_f16[i]);
    }
}
