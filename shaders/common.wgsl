// common.wgsl: prefixed to every kernel family (see src/shaders.rs).
// The activation fused into a kernel's epilogue is chosen per pipeline by override constants,
// so a kernel without an activation compiles it away.
//   ACT: 0 identity, 1 relu, 2 elu, 3 elu1 (ELU+1), 4 sigmoid, 5 tanh, 6 softplus, 7 gelu (erf), 8 silu
override ACT: u32 = 0u;
override ACT_BETA: f32 = 1.0;        // softplus beta
override ACT_THRESHOLD: f32 = 20.0;  // softplus: identity where beta*x > threshold

// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7).
fn vc_erf(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    let r = 1.0 - poly * exp(-a * a);
    return select(-r, r, x >= 0.0);
}

fn vc_sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

fn activate(x: f32) -> f32 {
    switch ACT {
        case 1u: { return max(x, 0.0); }
        case 2u: { return select(exp(min(x, 0.0)) - 1.0, x, x > 0.0); }
        case 3u: { return select(exp(min(x, 0.0)), x + 1.0, x > 0.0); }
        case 4u: { return vc_sigmoid(x); }
        case 5u: {
            let e = exp(-2.0 * abs(x));
            let t = (1.0 - e) / (1.0 + e);
            return select(-t, t, x >= 0.0);
        }
        case 6u: {
            let bx = ACT_BETA * x;
            let sp = (max(bx, 0.0) + log(1.0 + exp(-abs(bx)))) / ACT_BETA;
            return select(sp, x, bx > ACT_THRESHOLD);
        }
        case 7u: { return 0.5 * x * (1.0 + vc_erf(x * 0.7071067811865476)); }
        case 8u: { return x * vc_sigmoid(x); }
        default: { return x; }
    }
}
