// activation.wgsl: elementwise activations (the kind is the ACT override of common.wgsl).
struct ActParams { n: u32, offset: f32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<uniform> ap: ActParams;
@group(0) @binding(1) var<storage, read> act_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> act_y: array<f32>;

@compute @workgroup_size(256)
fn activation(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < ap.n) {
        act_y[i] = activate(act_x[i]);
    }
}

// y = act(a + b), elementwise (residual connections). Bindings 1, 2: a, b; 3: y.
@group(0) @binding(1) var<storage, read> add_a: array<f32>;
@group(0) @binding(2) var<storage, read> add_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> add_y: array<f32>;

@compute @workgroup_size(256)
fn add(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < ap.n) {
        add_y[i] = activate(add_a[i] + add_b[i]);
    }
}

// y = act(a * b + offset), elementwise (a behaviour modulator's gain before the output nonlinearity).
@compute @workgroup_size(256)
fn mul(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i < ap.n) {
        add_y[i] = activate(add_a[i] * add_b[i] + ap.offset);
    }
}
