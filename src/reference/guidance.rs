//! CPU mirror of `ops::guidance` in f64: the projection of propose's `Camera.proj2D` (as coded:
//! (X − t)·R⁻¹, then the pinhole, then distortion in normalised coordinates), the multi-view energy,
//! its gradient by forward differences of dual numbers, and the SGD refinement with PyTorch's
//! ReduceLROnPlateau.

use crate::ops::guidance::{Camera, Refinement};

/// A value with its derivatives along three directions (forward-mode AD over X).
#[derive(Clone, Copy, Debug)]
struct Dual {
    v: f64,
    d: [f64; 3],
}

impl Dual {
    fn c(v: f64) -> Dual {
        Dual { v, d: [0.0; 3] }
    }
    fn add(self, o: Dual) -> Dual {
        Dual { v: self.v + o.v, d: [self.d[0] + o.d[0], self.d[1] + o.d[1], self.d[2] + o.d[2]] }
    }
    fn mul(self, o: Dual) -> Dual {
        let d = [0, 1, 2].map(|k| self.d[k] * o.v + self.v * o.d[k]);
        Dual { v: self.v * o.v, d }
    }
    fn scale(self, s: f64) -> Dual {
        Dual { v: self.v * s, d: self.d.map(|x| x * s) }
    }
    fn div(self, o: Dual) -> Dual {
        let d = [0, 1, 2].map(|k| (self.d[k] * o.v - self.v * o.d[k]) / (o.v * o.v));
        Dual { v: self.v / o.v, d }
    }
}

/// (u, v) of world point X through camera `cam`, with ∂(u, v)/∂X.
fn project_dual(cam: &Camera, ri: &[[f64; 3]; 3], x: [f64; 3]) -> (Dual, Dual) {
    let xs: [Dual; 3] = [0, 1, 2].map(|i| {
        let mut d = [0.0; 3];
        d[i] = 1.0;
        Dual { v: x[i] - cam.centre[i], d }
    });
    let p: [Dual; 3] = [0, 1, 2].map(|k| (0..3).fold(Dual::c(0.0), |acc, i| acc.add(xs[i].scale(ri[i][k]))));
    let (px, py) = (p[0].div(p[2]), p[1].div(p[2]));
    let r2 = px.mul(px).add(py.mul(py));
    let [k1, k2, k3] = cam.radial;
    let [p1, p2] = cam.tangential;
    let kap = Dual::c(1.0).add(r2.scale(k1)).add(r2.mul(r2).scale(k2)).add(r2.mul(r2).mul(r2).scale(k3));
    let xd = px.mul(kap).add(px.mul(py).scale(2.0 * p1)).add(r2.add(px.mul(px).scale(2.0)).scale(p2));
    let yd = py.mul(kap).add(px.mul(py).scale(2.0 * p2)).add(r2.add(py.mul(py).scale(2.0)).scale(p1));
    let [fx, fy, cx, cy, skew] = cam.intrinsics;
    let u = xd.scale(fx).add(yd.scale(skew)).add(Dual::c(cx));
    let v = yd.scale(fy).add(Dual::c(cy));
    (u, v)
}

/// Projections [C, S, F, J, 2] of x0 [S, F, J·3] + root [F, 3].
pub fn project(cams: &[Camera], x0: &[f32], root: &[f32], s: usize, f: usize, j: usize) -> Vec<f32> {
    let mut out = vec![0f32; cams.len() * s * f * j * 2];
    for (c, cam) in cams.iter().enumerate() {
        let ri = cam.rotation_inverse().expect("a valid camera");
        for si in 0..s {
            for fi in 0..f {
                for ji in 0..j {
                    let o = (si * f + fi) * j + ji;
                    let x = [0, 1, 2].map(|k| x0[o * 3 + k] as f64 + root[fi * 3 + k] as f64);
                    let (u, v) = project_dual(cam, &ri, x);
                    let p = (((c * s + si) * f + fi) * j + ji) * 2;
                    out[p] = u.v as f32;
                    out[p + 1] = v.v as f32;
                }
            }
        }
    }
    out
}

/// The multi-view energy E [S] and its gradient [S, F, J·3] in f64 (keypoints and weights
/// [C, F, J, 2], root [F, 3]).
#[allow(clippy::too_many_arguments)]
pub fn multiview_energy(
    cams: &[Camera],
    x0: &[f32],
    keypoints: &[f32],
    weights: &[f32],
    root: &[f32],
    s: usize,
    f: usize,
    j: usize,
) -> (Vec<f64>, Vec<f64>) {
    let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    energy_f64(cams, &x, keypoints, weights, root, [s, f, j])
}

fn energy_f64(
    cams: &[Camera],
    x0: &[f64],
    keypoints: &[f32],
    weights: &[f32],
    root: &[f32],
    sfj: [usize; 3],
) -> (Vec<f64>, Vec<f64>) {
    let [s, f, j] = sfj;
    let mut e = vec![0f64; s];
    let mut g = vec![0f64; s * f * j * 3];
    let norm = 1.0 / (2 * j) as f64;
    for (c, cam) in cams.iter().enumerate() {
        let ri = cam.rotation_inverse().expect("a valid camera");
        for si in 0..s {
            for fi in 0..f {
                for ji in 0..j {
                    let o = (si * f + fi) * j + ji;
                    let x = [0, 1, 2].map(|k| x0[o * 3 + k] + root[fi * 3 + k] as f64);
                    let (u, v) = project_dual(cam, &ri, x);
                    let ob = ((c * f + fi) * j + ji) * 2;
                    let (du, dv) = (u.v - keypoints[ob] as f64, v.v - keypoints[ob + 1] as f64);
                    let (wu, wv) = (weights[ob] as f64, weights[ob + 1] as f64);
                    e[si] += norm * (wu * du * du + wv * dv * dv);
                    for k in 0..3 {
                        g[o * 3 + k] += 2.0 * norm * (wu * du * u.d[k] + wv * dv * v.d[k]);
                    }
                }
            }
        }
    }
    (e, g)
}

/// The refinement of x0 [S, F, J·3] (see `ops::guidance::refine`): returns the refined x0, the
/// energies at the start of each substep and the lr each substep used.
#[allow(clippy::too_many_arguments)]
pub fn refine(
    cams: &[Camera],
    x0: &[f32],
    keypoints: &[f32],
    weights: &[f32],
    root: &[f32],
    s: usize,
    f: usize,
    j: usize,
    r: &Refinement,
) -> (Vec<f32>, Vec<Vec<f64>>, Vec<f64>) {
    let mut x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
    let (mut lr, mut best) = (r.energy_scale as f64, f64::INFINITY);
    let (mut energies, mut lrs) = (Vec::new(), Vec::new());
    let mut stopped = false;
    for _ in 0..r.substeps {
        if stopped {
            lrs.push(0.0);
            continue;
        }
        let (e, g) = energy_f64(cams, &x, keypoints, weights, root, [s, f, j]);
        energies.push(e.clone());
        if e.iter().any(|v| v.is_nan()) {
            stopped = true;
            lrs.push(0.0);
            continue;
        }
        let m = e.iter().sum::<f64>() / s as f64;
        if m < best * (1.0 - r.threshold as f64) {
            best = m;
        } else {
            let nl = lr * r.factor as f64;
            if lr - nl > 1e-8 {
                lr = nl;
            }
        }
        lrs.push(lr);
        x.iter_mut().zip(&g).for_each(|(xv, gv)| *xv -= lr * gv);
    }
    (x.iter().map(|&v| v as f32).collect(), energies, lrs)
}
