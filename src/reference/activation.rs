use crate::ops::Activation;

/// The activation of one value, in f64, with PyTorch's NaN and infinity semantics: NaN in, NaN out
/// (`f64::max` would drop it); relu(-inf) = 0, elu(-inf) = -1, gelu(-inf) = silu(-inf) = NaN.
pub fn apply(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x < 0.0 {
                0.0
            } else {
                x
            }
        }
        Activation::Elu => {
            if x > 0.0 {
                x
            } else {
                x.exp_m1()
            }
        }
        Activation::Elu1 => {
            if x > 0.0 {
                x + 1.0
            } else {
                x.exp()
            }
        }
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Softplus { beta, threshold } => {
            let (b, t) = (beta as f64, threshold as f64);
            let bx = b * x;
            if bx > t {
                x
            } else {
                // log(1 + e^bx) without overflow (as the kernel computes it): a threshold past
                // ~709 would make e^bx infinite where the value is bx itself. NaN stays NaN.
                (if bx < 0.0 { 0.0 } else { bx } + (-bx.abs()).exp().ln_1p()) / b
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::AdaptiveElu { xshift, yshift } => apply(Activation::Elu, x - xshift as f64) + yshift as f64,
    }
}

/// y = act(x), elementwise.
pub fn activation(x: &[f32], act: Activation) -> Vec<f32> {
    x.iter().map(|&v| apply(act, v as f64) as f32).collect()
}

/// erf to about 1e-15: the Maclaurin series for small |x|, a continued fraction for erfc beyond.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        // erf(a) = 2/sqrt(pi) * sum_n (-1)^n a^(2n+1) / (n! (2n+1))
        let mut term = a;
        let mut sum = a;
        let a2 = a * a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = exp(-a^2)/sqrt(pi) * 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...)))) (Lentz-free, fixed depth)
        let mut f = 0.0;
        for k in (1..60).rev() {
            f = (k as f64 / 2.0) / (a + f);
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + f)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_matches_known_values() {
        // erf(0.5), erf(1), erf(2), erf(3) from tables.
        for (x, e) in
            [(0.5, 0.5204998778130465), (1.0, 0.8427007929497149), (2.0, 0.9953222650189527), (3.0, 0.9999779095030014)]
        {
            assert!((super::erf(x) - e).abs() < 1e-13, "erf({x})");
            assert!((super::erf(-x) + e).abs() < 1e-13);
        }
    }
}
