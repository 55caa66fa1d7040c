//! The flow's CPU reference density (f64), on the folded host weights, for checks.

use super::weights::{Conditioner, Layer};
use super::{Flow, OP};
use crate::error::{Error, Result};
use crate::ops::Activation;

impl Flow {
    /// log p(x) with the CPU reference ops (f64), for checks.
    pub fn reference_log_prob(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        use crate::reference;
        let d = self.config.features;
        if x.len() != n * d {
            return Err(Error::shape(OP, "input", &[x.len()], format!("[{n}, {d}]")));
        }
        let mut h = x.to_vec();
        let mut acc = vec![0f64; n];
        let mlp = |net: &Conditioner, h: &[f32]| -> Result<Vec<Vec<f32>>> {
            let mut a = h.to_vec();
            let mut shape = vec![n, d];
            for lin in &net.hidden {
                (a, shape) =
                    reference::linear(&a, &shape, &lin.w.data, &lin.w.shape, Some(&lin.b.data), Activation::Relu)?;
            }
            net.heads
                .iter()
                .map(|lin| {
                    let (y, _) = reference::linear(
                        &a,
                        &shape,
                        &lin.w.data,
                        &lin.w.shape,
                        Some(&lin.b.data),
                        Activation::Identity,
                    )?;
                    Ok(y)
                })
                .collect()
        };
        for l in &self.layers {
            match l {
                Layer::Actnorm { log_s, b, .. } => {
                    h = reference::flows::actnorm(&h, &[n, d], &log_s.data, &b.data, false)?;
                    let c: f64 = log_s.data.iter().map(|&v| v as f64).sum();
                    acc.iter_mut().for_each(|a| *a += c);
                }
                Layer::Affine { mask, net } => {
                    let p = mlp(net, &h)?;
                    let (y, ld) = reference::flows::affine_coupling(&h, &[n, d], &p[0], &p[1], mask, false)?;
                    h = y;
                    acc.iter_mut().zip(&ld).for_each(|(a, l)| *a += *l as f64);
                }
                Layer::Spline { mask, bins, params, net } => {
                    let p = mlp(net, &h)?;
                    let (k, t) = (*bins, mask.iter().filter(|&&m| m).count());
                    for r in 0..n {
                        let mut tj = 0;
                        for j in 0..d {
                            if !mask[j] {
                                continue;
                            }
                            let e = r * t + tj;
                            let (y, l) = reference::flows::rq_spline_f64(
                                h[r * d + j] as f64,
                                &p[0][e * k..(e + 1) * k],
                                &p[1][e * k..(e + 1) * k],
                                &p[2][e * (k - 1)..(e + 1) * (k - 1)],
                                params,
                            );
                            h[r * d + j] = y as f32;
                            acc[r] += l;
                            tj += 1;
                        }
                    }
                }
            }
        }
        let base = reference::flows::normal_logprob(&h, &[n, d], None, 0.0)?;
        Ok(base.iter().zip(&acc).map(|(b, a)| (*b as f64 + a) as f32).collect())
    }
}
