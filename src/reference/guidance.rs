//! CPU mirror of `ops::guidance` in f64: the projection of propose's `Camera.proj2D` (as coded:
//! (X − t)·R⁻¹, then the pinhole, then distortion in normalised coordinates), the multi-view energy,
//! its gradient by forward-mode dual numbers, and the SGD refinement with PyTorch's
//! ReduceLROnPlateau, all on a [`Scene`].

use crate::error::{Error, Result};
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

/// What the energy compares against, on the host: the cameras (their rotations inverted once),
/// the observed keypoints and their weights [C, F, J, 2], the root trajectory [F, 3].
pub struct Scene<'a> {
    cameras: &'a [Camera],
    inverses: Vec<[[f64; 3]; 3]>,
    keypoints: &'a [f32],
    weights: &'a [f32],
    root: &'a [f32],
    frames: usize,
    joints: usize,
}

impl<'a> Scene<'a> {
    /// Refuses a singular or non-finite camera and inputs of the wrong lengths.
    pub fn new(
        cameras: &'a [Camera],
        keypoints: &'a [f32],
        weights: &'a [f32],
        root: &'a [f32],
        frames: usize,
        joints: usize,
    ) -> Result<Scene<'a>> {
        let n = cameras.len() * frames * joints * 2;
        for (what, v, want) in [("keypoints", keypoints, n), ("weights", weights, n), ("root", root, frames * 3)] {
            if v.len() != want {
                return Err(Error::DataLength {
                    op: "multiview_energy",
                    what: what.into(),
                    got: v.len(),
                    expected: want,
                    shape: vec![want],
                });
            }
        }
        let inverses = cameras.iter().map(|c| c.rotation_inverse()).collect::<Result<_>>()?;
        Ok(Scene { cameras, inverses, keypoints, weights, root, frames, joints })
    }

    /// Calls `visit(camera, node, u, v)` for every camera and node (s, f, j) of x0 [S, F, J·3]
    /// with the root added: (u, v) and their derivatives by the node's coordinates.
    fn projections(&self, x0: &[f64], mut visit: impl FnMut(usize, usize, Dual, Dual)) {
        let (f, j) = (self.frames, self.joints);
        for (c, (cam, ri)) in self.cameras.iter().zip(&self.inverses).enumerate() {
            for o in 0..x0.len() / 3 {
                let fi = (o / j) % f;
                let x = [0, 1, 2].map(|k| x0[o * 3 + k] + self.root[fi * 3 + k] as f64);
                let (u, v) = project_dual(cam, ri, x);
                visit(c, o, u, v);
            }
        }
    }

    /// Projections [C, S, F, J, 2] of x0 [S, F, J·3].
    pub fn project(&self, x0: &[f32]) -> Vec<f32> {
        let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
        let nodes = x0.len() / 3;
        let mut out = vec![0f32; self.cameras.len() * nodes * 2];
        self.projections(&x, |c, o, u, v| {
            out[(c * nodes + o) * 2] = u.v as f32;
            out[(c * nodes + o) * 2 + 1] = v.v as f32;
        });
        out
    }

    /// The multi-view energy E [S] of x0 [S, F, J·3] and its gradient [S, F, J·3], in f64.
    pub fn energy(&self, x0: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
        self.energy_f64(&x)
    }

    fn energy_f64(&self, x0: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (f, j) = (self.frames, self.joints);
        let mut e = vec![0f64; x0.len() / (3 * f * j)];
        let mut g = vec![0f64; x0.len()];
        let norm = 1.0 / (2 * j) as f64;
        self.projections(x0, |c, o, u, v| {
            let ob = ((c * f + (o / j) % f) * j + o % j) * 2;
            let (du, dv) = (u.v - self.keypoints[ob] as f64, v.v - self.keypoints[ob + 1] as f64);
            let (wu, wv) = (self.weights[ob] as f64, self.weights[ob + 1] as f64);
            e[o / (f * j)] += norm * (wu * du * du + wv * dv * dv);
            for k in 0..3 {
                g[o * 3 + k] += 2.0 * norm * (wu * du * u.d[k] + wv * dv * v.d[k]);
            }
        });
        (e, g)
    }

    /// The refinement of x0 [S, F, J·3] (see `ops::guidance::refine`): returns the refined x0,
    /// the energies at the start of each substep and the lr each substep used.
    pub fn refine(&self, x0: &[f32], r: &Refinement) -> (Vec<f32>, Vec<Vec<f64>>, Vec<f64>) {
        let mut x: Vec<f64> = x0.iter().map(|&v| v as f64).collect();
        let (mut lr, mut best) = (r.energy_scale as f64, f64::INFINITY);
        let (mut energies, mut lrs) = (Vec::new(), Vec::new());
        let mut stopped = false;
        for _ in 0..r.substeps {
            if stopped {
                lrs.push(0.0);
                continue;
            }
            let (e, g) = self.energy_f64(&x);
            let samples = e.len();
            energies.push(e.clone());
            if e.iter().any(|v| v.is_nan()) {
                stopped = true;
                lrs.push(0.0);
                continue;
            }
            let m = e.iter().sum::<f64>() / samples as f64;
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
}
