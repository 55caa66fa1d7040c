//! The cGNF's CPU reference (f64), on the weights as stored (not folded): the condition, the
//! density and sampling, for checks of the GPU forward.

use super::weights::{ActNorm, Coupling, Lin};
use super::{Cgnf, OP};
use crate::error::{Error, Result};

impl Lin {
    /// y = act(W x + b) on the host, f64.
    fn apply(&self, x: &[f64], act: fn(f64) -> f64) -> Vec<f64> {
        let (o, i) = (self.w.shape[0], self.w.shape[1]);
        (0..o)
            .map(|r| {
                let mut acc = self.b.as_ref().map_or(0.0, |b| b.data[r] as f64);
                for c in 0..i {
                    acc += self.w.data[r * i + c] as f64 * x[c];
                }
                act(acc)
            })
            .collect()
    }
}

fn relu(v: f64) -> f64 {
    v.max(0.0)
}
fn ident(v: f64) -> f64 {
    v
}

impl Cgnf {
    /// The context [B, J, C] with the CPU reference, from the weights as stored.
    pub fn reference_condition(&self, keypoints: &[f32], observed: &[bool], b: usize) -> Result<Vec<f64>> {
        let j = self.config.joints;
        if keypoints.len() != b * j * 2 {
            return Err(Error::shape(OP, "keypoints", &[keypoints.len()], format!("[{b}, {j}, 2]")));
        }
        self.check_observed(observed, b)?;
        let Some(e) = &self.embedding else {
            return Ok(keypoints.iter().map(|&v| v as f64).collect());
        };
        let p = self.prep().expect("an embedding has a preprocessing");
        let mut out = Vec::with_capacity(b * j * self.config.context_features);
        for bi in 0..b {
            let kp = |k: usize, f: usize| {
                let v = keypoints[(bi * j + k) * 2 + f] as f64;
                let r = p.root.map_or(0.0, |r| keypoints[(bi * j + r) * 2 + f] as f64);
                p.scale[f] as f64 * (v - r)
            };
            let mut x: Vec<Vec<f64>> = (0..j).map(|k| vec![kp(k, 0), kp(k, 1)]).collect();
            for (l, (rel, root)) in e.layers.iter().enumerate() {
                let next: Vec<Vec<f64>> = (0..j)
                    .map(|i| {
                        let fdim = x[0].len();
                        let mut agg = vec![0f64; fdim];
                        let mut deg = 0f64;
                        if observed[bi * j + i] {
                            for (k, xk) in x.iter().enumerate() {
                                if observed[bi * j + k] {
                                    let a = e.adj.data[i * j + k] as f64;
                                    deg += a;
                                    agg.iter_mut().zip(xk).for_each(|(g, v)| *g += a * v);
                                }
                            }
                        }
                        agg.iter_mut().for_each(|g| *g /= deg.max(1.0));
                        let act = if l == 0 { relu } else { ident };
                        rel.apply(&agg, ident).iter().zip(root.apply(&x[i], ident)).map(|(a, b)| act(a + b)).collect()
                    })
                    .collect();
                x = next;
            }
            out.extend(x.into_iter().flatten());
        }
        Ok(out)
    }

    /// One coupling's conditioner on the host: (shift, scale_raw) per node [B·S·J][T].
    fn reference_conditioner(
        &self,
        c: &Coupling,
        x: &[f64],
        b: usize,
        s: usize,
        cond: Option<(&[f64], &[bool])>,
        root: &[f64],
    ) -> Vec<Vec<f64>> {
        let j = self.config.joints;
        let cf = self.config.context_features;
        let mut nodes: Vec<Vec<f64>> =
            (0..b * s * j).map(|r| (0..3).filter(|&f| !c.mask[f]).map(|f| x[r * 3 + f]).collect()).collect();
        let mut ctx: Option<Vec<Vec<f64>>> =
            cond.map(|(cx, _)| (0..b * j).map(|r| cx[r * cf..(r + 1) * cf].to_vec()).collect());
        let mut rootf: Vec<Vec<f64>> = (0..b).map(|bi| root[bi * 3..bi * 3 + 3].to_vec()).collect();
        for g in &c.gcn {
            let rmsg: Option<Vec<Vec<f64>>> =
                g.r.as_ref().map(|(_, rx)| rootf.iter().map(|v| rx.apply(v, relu)).collect());
            let own: Vec<Vec<f64>> = nodes.iter().map(|v| g.x.apply(v, relu)).collect();
            let msg: Vec<Vec<f64>> = nodes.iter().map(|v| g.xx.apply(v, relu)).collect();
            let cmsg: Option<Vec<Vec<f64>>> = ctx.as_ref().map(|cs| cs.iter().map(|v| g.cx.apply(v, relu)).collect());
            nodes = (0..b * s * j)
                .map(|r| {
                    let (ji, first, bi) = (r % j, r - r % j, r / (s * j));
                    let mut hsum = own[r].clone();
                    for &n in self.skeleton.neighbours(ji) {
                        hsum.iter_mut().zip(&msg[first + n as usize]).for_each(|(a, m)| *a += m);
                    }
                    if let (Some(cm), Some((_, obs))) = (&cmsg, cond) {
                        if obs[bi * j + ji] {
                            hsum.iter_mut().zip(&cm[bi * j + ji]).for_each(|(a, m)| *a += m);
                        }
                    }
                    if let Some(rm) = &rmsg {
                        if self.skeleton.is_root_child(ji) {
                            hsum.iter_mut().zip(&rm[bi]).for_each(|(a, m)| *a += m);
                        }
                    }
                    g.pool.apply(&hsum, ident)
                })
                .collect();
            ctx = ctx.map(|cs| cs.iter().map(|v| g.c.apply(v, relu)).collect());
            if let Some((r, _)) = &g.r {
                rootf = rootf.iter().map(|v| r.apply(v, relu)).collect();
            }
        }
        nodes
    }

    /// Checks the flat slices the caller passed (`x`, named `what`, of B·S·J·3 values; the root
    /// features of B·3), naming the slice's own length; returns the context and the root features.
    fn reference_check(
        &self,
        x: &[f32],
        what: &str,
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Option<Vec<f64>>, Vec<f64>)> {
        let j = self.config.joints;
        if x.len() != b * s * j * 3 {
            return Err(Error::shape(OP, what, &[x.len()], format!("[{b}, {s}, {j}, 3]")));
        }
        let root = match root {
            Some(r) => {
                self.expect_root_node()?;
                if r.len() != b * 3 {
                    return Err(Error::shape(OP, "root", &[r.len()], format!("[{b}, 3]")));
                }
                r.iter().map(|&v| v as f64).collect()
            }
            None => vec![0.0; b * 3],
        };
        Ok((cond.map(|(k, o)| self.reference_condition(k, o, b)).transpose()?, root))
    }

    /// log p per node [B·S·J] of poses [B, S, J, 3] with the CPU reference (f64), and z.
    pub fn reference_log_prob(
        &self,
        poses: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.reference_log_prob_with_root(poses, b, s, cond, None)
    }

    /// [`Cgnf::reference_log_prob`] with the root nodes' features [B, 3] (None: zeros).
    pub fn reference_log_prob_with_root(
        &self,
        poses: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, root) = self.reference_check(poses, "poses", b, s, cond, root)?;
        let cond64 = c.as_deref().zip(cond.map(|c| c.1));
        let mut x: Vec<f64> = poses.iter().map(|&v| v as f64).collect();
        let mut ld = vec![0f64; b * s * self.config.joints];
        for (a, cp) in self.actnorms.iter().zip(&self.couplings) {
            ref_actnorm(a, &mut x, &mut ld, false);
            let p = self.reference_conditioner(cp, &x, b, s, cond64, &root);
            ref_coupling(cp, &p, &mut x, &mut ld, false);
        }
        let lp = x.chunks(3).zip(&ld).map(|(z, l)| (ref_base(z) + l) as f32).collect();
        Ok((x.iter().map(|&v| v as f32).collect(), lp))
    }

    /// Poses [B, S, J, 3] and their log p per node from base points z with the CPU reference.
    pub fn reference_sample(
        &self,
        z: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        self.reference_sample_with_root(z, b, s, cond, None)
    }

    /// [`Cgnf::reference_sample`] with the root nodes' features [B, 3] (None: zeros).
    pub fn reference_sample_with_root(
        &self,
        z: &[f32],
        b: usize,
        s: usize,
        cond: Option<(&[f32], &[bool])>,
        root: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (c, root) = self.reference_check(z, "base points", b, s, cond, root)?;
        let cond64 = c.as_deref().zip(cond.map(|c| c.1));
        let mut x: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        let mut ld = vec![0f64; b * s * self.config.joints];
        for (a, cp) in self.actnorms.iter().zip(&self.couplings).rev() {
            let p = self.reference_conditioner(cp, &x, b, s, cond64, &root);
            ref_coupling(cp, &p, &mut x, &mut ld, true);
            ref_actnorm(a, &mut x, &mut ld, true);
        }
        let lp = z
            .chunks(3)
            .zip(&ld)
            .map(|(zz, l)| (ref_base(&zz.iter().map(|&v| v as f64).collect::<Vec<_>>()) - l) as f32)
            .collect();
        Ok((x.iter().map(|&v| v as f32).collect(), lp))
    }
}

/// The standard-normal log-density of one node's 3 coordinates.
fn ref_base(z: &[f64]) -> f64 {
    -0.5 * z.iter().map(|v| v * v).sum::<f64>() - 1.5 * (2.0 * std::f64::consts::PI).ln()
}

/// ActNorm on every node of x [rows · 3] (inverse: its inverse), its log-det added to `ld`.
fn ref_actnorm(a: &ActNorm, x: &mut [f64], ld: &mut [f64], inverse: bool) {
    for (r, l) in ld.iter_mut().enumerate() {
        for f in 0..3 {
            let (ls, sh) = (a.log_s.data[f] as f64, a.shift.data[f] as f64);
            let v = &mut x[r * 3 + f];
            if inverse {
                *v = (*v - sh) * (-ls).exp();
                *l -= ls;
            } else {
                *v = ls.exp() * *v + sh;
                *l += ls;
            }
        }
    }
}

/// The affine coupling with conditioner outputs p (per node: T shifts, then T raw scales).
fn ref_coupling(cp: &Coupling, p: &[Vec<f64>], x: &mut [f64], ld: &mut [f64], inverse: bool) {
    let t = cp.mask.iter().filter(|&&m| m).count();
    for (r, l) in ld.iter_mut().enumerate() {
        let mut tj = 0;
        for f in 0..3 {
            if !cp.mask[f] {
                continue;
            }
            let scale = 1.0 / (1.0 + (-(p[r][t + tj] + 2.0)).exp()) + 1e-3;
            let v = &mut x[r * 3 + f];
            if inverse {
                *v = (*v - p[r][tj]) / scale;
                *l -= scale.ln();
            } else {
                *v = *v * scale + p[r][tj];
                *l += scale.ln();
            }
            tj += 1;
        }
    }
}
