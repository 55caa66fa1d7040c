// common.wgsl: prefixed to every kernel family (see src/shaders.rs).
// The activation fused into a kernel's epilogue is chosen per pipeline by override constants,
// so a kernel without an activation compiles it away.
//   ACT: 0 identity, 1 relu, 2 elu, 3 elu1 (ELU+1), 4 sigmoid, 5 tanh, 6 softplus, 7 gelu (erf), 8 silu,
//        9 adaptive_elu (elu(x - xshift) + yshift)
// ACT_A, ACT_B: the activation's two parameters (softplus: beta, threshold; adaptive_elu: xshift,
// yshift), so a new parametric activation needs no new override.
override ACT: u32 = 0u;
override ACT_A: f32 = 1.0;
override ACT_B: f32 = 20.0;

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn vc_erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    let r = 1.0 - poly * exp(-a * a);
    return select(r, -r, x < 0.0);
}

fn vc_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(s, e * s, x < 0.0);
}

// NaN and infinities as in PyTorch: every branch is chosen by a comparison that is false for NaN
// and takes x itself there (never max/min/clamp of the data, which may return the other operand);
// relu(-inf) = 0, elu(-inf) = -1, elu1(-inf) = 0, sigmoid/tanh saturate, softplus(-inf) = 0,
// gelu(-inf) and silu(-inf) are NaN (x times a vanishing factor, as PyTorch computes them).
fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return select(x, 0.0, x < 0.0); }
        case 2u: { return select(x, exp(min(x, 0.0)) - 1.0, x < 0.0); }
        case 3u: { return select(x + 1.0, exp(min(x, 0.0)), x < 0.0); }
        case 4u: { return vc_sigmoid(x); }
        case 5u: {
            let e = exp(-2.0 * abs(x));
            let t = (1.0 - e) / (1.0 + e);
            return select(t, -t, x < 0.0);
        }
        case 6u: {
            let bx = ACT_A * x;
            // log(1 + exp(bx)) = relu(bx) + log(1 + exp(-|bx|)), without overflow; NaN stays NaN.
            let sp = (select(bx, 0.0, bx < 0.0) + log(1.0 + exp(-abs(bx)))) / ACT_A;
            return select(sp, x, bx > ACT_B);
        }
        case 7u: { return 0.5 * x * (1.0 + vc_erf(x * 0.7071067811865476)); }
        case 8u: { return x * vc_sigmoid(x); }
        case 9u: {
            let s = x - ACT_A;
            return select(s, exp(min(s, 0.0)) - 1.0, s < 0.0) + ACT_B;
        }
        default: { return x; }
    }
}

// Philox-4x32-10 (Salmon et al. 2011), shared by random.wgsl and the fused noise of other kernels;
// mirrored bit for bit by src/reference/random.rs.
// High and low 32 bits of a * b, with 16-bit limbs (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu; let a1 = a >> 16u;
    let b0 = b & 0xffffu; let b1 = b >> 16u;
    let p00 = a0 * b0; let p01 = a0 * b1; let p10 = a1 * b0; let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(ctr_in: vec4<u32>, key_in: vec2<u32>) -> vec4<u32> {
    var c = ctr_in;
    var k = key_in;
    for (var r = 0u; r < 10u; r++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

fn to_unit(x: u32) -> f32 {
    return f32((x >> 8u) + 1u) * 5.9604644775390625e-8;
}

// The standard normal of element i of stream (seed, offset): Box-Muller on words (0,1) or (2,3)
// of block i / 4, cos for even i and sin for odd i.
fn philox_normal(seed: vec2<u32>, offset: vec2<u32>, i: u32) -> f32 {
    let w = philox(vec4<u32>(i / 4u, 0u, offset.x, offset.y), seed);
    let j = (i % 4u) / 2u;
    let r = sqrt(-2.0 * log(to_unit(w[2u * j])));
    let th = 6.283185307179586 * to_unit(w[2u * j + 1u]);
    return select(r * sin(th), r * cos(th), i % 2u == 0u);
}
