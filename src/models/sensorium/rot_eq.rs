//! The rotation-equivariant core (neuralpredictors `RotationEquivariant2dCore`, Ecker et al. 2019;
//! docs/models.md and docs/ops.md, "Rotation-equivariant core"): the checks of its config fields
//! (and of the `Stacked2dCore` options it does not honour), each layer's ordinary conv weight
//! built at load time from the saved Hermite coefficients, basis and rotations, and random weights
//! for tests and benchmarks. Everything else (the layer list, padding, the bias and norm rules,
//! activations, `stack`) is the stacked core's plan (stacked.rs), so both kinds share one loader,
//! one GPU forward and one CPU reference.
//!
//! Layer l holds `hermite_conv.coeffs` [n, Cin_total, F] (n = k(k+1)/2 Hermite functions),
//! `rotate_hermite.H` [n, k·up, k·up] (the basis, upsampled) and `rotate_hermite.Rs.{0..R-1}`
//! [n, n] (rotation r by 2πr/R of the coefficients). The kernel of rotation r is
//! Σ_b H[b] (Rs.r · coeffs)[b], its input channels rolled by r·Cin_total/R for layers after the
//! first (their inputs are rotation-major), each up×up block of the basis summed; output channel
//! r·F + f. The norm (`norm.batch_norm.*` over F features, `bias.bias` / `scale.scale`
//! [1, 1, F, 1, 1]) is shared over the R rotations; load.rs folds it and repeats it R times.

use super::config::{CoreConfig, CoreKind, Semantics};
use super::stacked::{ConvKind, LayerPlan};
use super::{Sensorium, OP};
use crate::error::{Error, Result};
use crate::io::HostTensor;
use crate::models::StateDict;
use crate::ops;

/// neuralpredictors' default `num_rotations`.
const DEFAULT_ROTATIONS: usize = 8;
/// neuralpredictors' default `upsampling`.
const DEFAULT_UPSAMPLING: usize = 2;

impl CoreConfig {
    /// Rotations of every feature: `num_rotations` (default 8) for a rotation-equivariant core, 1
    /// for a stacked one.
    pub fn rotations(&self) -> usize {
        match self.kind {
            CoreKind::Stacked2d => 1,
            CoreKind::RotationEquivariant => self.num_rotations.unwrap_or(DEFAULT_ROTATIONS),
        }
    }

    /// The Hermite filters' upsampling (default 2; 1 for a stacked core).
    pub fn upsampling_factor(&self) -> usize {
        match self.kind {
            CoreKind::Stacked2d => 1,
            CoreKind::RotationEquivariant => self.upsampling.unwrap_or(DEFAULT_UPSAMPLING),
        }
    }
}

fn bad(name: &str, why: impl Into<String>) -> Result<()> {
    Err(Error::param(OP, format!("core.{name}"), why.into()))
}

/// The checks of the rotation-equivariant fields, each named by its field (called by
/// `CoreConfig::plan` once the sizes shared with the stacked core are checked): a stacked core has
/// none of them; a rotation-equivariant one refuses the `Stacked2dCore` options its class ignores
/// or its version does not have, rather than ignoring them. (`depth_separable` is ignored, as
/// neuralpredictors ignores it: it defaults to true here.)
pub(super) fn check(c: &CoreConfig) -> Result<()> {
    if c.kind == CoreKind::Stacked2d {
        for (name, set) in [
            ("num_rotations", c.num_rotations.is_some()),
            ("upsampling", c.upsampling.is_some()),
            ("rot_eq_batch_norm", c.rot_eq_batch_norm.is_some()),
            ("init_std", c.init_std.is_some()),
        ] {
            if set {
                bad(name, "only a \"rotation_equivariant\" core (\"kind\") has it")?;
            }
        }
        return Ok(());
    }
    let (r, up) = (c.rotations(), c.upsampling_factor());
    for (name, v) in [("num_rotations", r), ("upsampling", up)] {
        if v == 0 {
            bad(name, "must be >= 1")?;
        }
        if v > ops::MAX_GEOMETRY {
            bad(name, format!("{v} is past the supported maximum {}", ops::MAX_GEOMETRY))?;
        }
    }
    // Every layer has R·F channels (the sizes are checked to be at most 2^20 already).
    if let Some(f) =
        c.hidden_channels.values().into_iter().find(|&f| f.checked_mul(r).is_none_or(|o| o > ops::MAX_GEOMETRY))
    {
        bad(
            "num_rotations",
            format!(
                "{r} rotations of {f} hidden_channels are past the supported maximum of {} channels",
                ops::MAX_GEOMETRY
            ),
        )?;
    }
    let kernels = std::iter::once(("input_kern", c.input_kern))
        .chain(c.hidden_kern.values().into_iter().map(|k| ("hidden_kern", k)));
    for (what, k) in kernels {
        if k.checked_mul(up).is_none_or(|p| p > ops::MAX_GEOMETRY) {
            bad(
                "upsampling",
                format!("{up} times the {what} {k} is past the supported maximum {}", ops::MAX_GEOMETRY),
            )?;
        }
    }
    let head = c.semantics == Semantics::Head;
    // What RotationEquivariant2dCore ignores or refuses, and what its 0.3 version drops.
    if c.input_stride != 1 {
        bad("input_stride", "a rotation-equivariant core has none (its `stride` applies to every layer); leave it 1")?;
    }
    if c.hidden_dilation != 1 {
        bad("hidden_dilation", "a rotation-equivariant core has no dilation; leave it 1")?;
    }
    if head && c.skip > 0 {
        bad(
            "skip",
            "neuralpredictors head's rotation-equivariant core has no skip connections (it raises); leave it 0",
        )?;
    }
    if !head && c.skip > 1 {
        bad("skip", "neuralpredictors 0.3's rotation-equivariant core ignores it (no skip connections); leave it 0")?;
    }
    if !head && c.stride != 1 {
        bad(
            "stride",
            "neuralpredictors 0.3's rotation-equivariant core drops its `stride` argument (every layer has stride \
             1); a stride on every layer is head's: set \"semantics\"",
        )?;
    }
    if !head && c.init_std.is_some() {
        bad("init_std", "neuralpredictors 0.3 has no such argument (it is head's: set \"semantics\")")?;
    }
    let any_norm = c.batch_norm.values().into_iter().any(|b| b);
    if c.rot_eq_batch_norm == Some(false) && r > 1 && any_norm {
        bad(
            "rot_eq_batch_norm",
            format!(
                "false puts a BatchNorm2d of hidden_channels channels on layers of {r} rotations x hidden_channels \
                 channels, which PyTorch refuses; only 1 rotation (or no batch_norm) allows it"
            ),
        )?;
    }
    Ok(())
}

/// The Hermite functions of a k×k filter.
fn n_coeffs(k: usize) -> usize {
    k * (k + 1) / 2
}

/// Reads the Hermite conv of layer `p` (keys `{prefix}.hermite_conv.*`) from `sd` and builds its
/// conv weight [R·F, Cin_total, k, k].
pub(super) fn load_conv(sd: &mut StateDict, p: &LayerPlan) -> Result<HostTensor> {
    let ConvKind::Hermite { upsampling: up } = p.conv else {
        return Err(Error::param(OP, "core.kind", "not a rotation-equivariant layer"));
    };
    let (r, k, cin, pre) = (p.rotations, p.kern, p.in_channels, &p.prefix);
    let (f, l) = (p.out_channels / r, pre.rsplit("layer").next().unwrap_or(pre));
    let first = p.inputs.is_empty();
    let (n, size) = (n_coeffs(k), k * up);
    // The kernels built here, against the largest tensor (overflow-safe).
    let numel = [cin, k, k].iter().try_fold(r * f, |a, &d| a.checked_mul(d));
    if numel.is_none_or(|e| e > crate::tensor::MAX_ELEMENTS) {
        return Err(Error::TooLarge {
            op: OP,
            what: format!("layer {l}'s kernels [{}, {cin}, {k}, {k}]", r * f),
            amount: numel.map_or(u64::MAX, |e| e as u64),
            unit: "elements",
            limit: crate::tensor::MAX_ELEMENTS as u64,
            limit_name: "tensor::MAX_ELEMENTS",
        });
    }
    let conv = format!("{pre}.hermite_conv");
    let rot_key = |i: usize| format!("{conv}.rotate_hermite.Rs.{i}");
    // The rotations the weights hold, against the config's count.
    let held = (0usize..).take_while(|&i| sd.has(&rot_key(i))).count();
    // (A gap, Rs.i missing with Rs.i+1 there, is left to `take` to name as a missing key.)
    if held != r && held > 0 && !(held < r && sd.has(&rot_key(held + 1))) {
        return Err(Error::param(
            OP,
            "core.num_rotations",
            format!("is {r}, but the weights of layer {l} hold {} rotation(s) ({})", held, rot_key(held - 1)),
        ));
    }
    let ckey = format!("{conv}.coeffs");
    if let Some(&[_, total, _]) = sd.shape(&ckey) {
        if !first && total % r != 0 {
            return Err(Error::param(
                OP,
                "core.num_rotations",
                format!("{r} rotations do not divide the {total} input channels of {ckey:?}"),
            ));
        }
    }
    let coeffs = sd.take(&ckey, &[n, cin, f])?;
    let basis = sd.take(&format!("{conv}.rotate_hermite.H"), &[n, size, size])?;
    let rots = (0..r).map(|i| sd.take(&rot_key(i), &[n, n])).collect::<Result<Vec<_>>>()?;
    let rots: Vec<&[f32]> = rots.iter().map(|t| &t.data[..]).collect();
    let w = build_weight(&coeffs.data, &basis.data, &rots, [cin, f, k, up], first);
    Ok(HostTensor::new(vec![r * f, cin, k, k], w))
}

/// One layer's conv weight [R·F, Cin_total, k, k] (f64 accumulation) from `coeffs`
/// [n, Cin_total, F], `basis` [n, k·up, k·up] and the R rotations [n, n] each; `dims` is
/// [Cin_total, F, k, up]. Layers after the first (`first` false) roll the input channels of
/// rotation r by r·Cin_total/R: input channel c reads the kernel of (c − r·Cin_total/R) mod Cin_total.
pub(crate) fn build_weight(coeffs: &[f32], basis: &[f32], rots: &[&[f32]], dims: [usize; 4], first: bool) -> Vec<f32> {
    let [cin, f, k, up] = dims;
    let (n, p, kk, r_count) = (n_coeffs(k), k * up, k * k, rots.len());
    // Each up×up block of the basis summed (the downsampling; linear, so it may come first).
    let mut hd = vec![0f64; n * kk];
    for b in 0..n {
        for u in 0..p {
            for v in 0..p {
                hd[b * kk + (u / up) * k + v / up] += basis[(b * p + u) * p + v] as f64;
            }
        }
    }
    let fin = cin / r_count.max(1);
    let mut out = vec![0f32; r_count * f * cin * kk];
    let mut m = vec![0f64; n * kk];
    for (r, rot) in rots.iter().enumerate() {
        // m[b'] = Σ_b rot[b, b'] hd[b]: the basis seen by the unrotated coefficient b'.
        m.iter_mut().for_each(|x| *x = 0.0);
        for b in 0..n {
            for bp in 0..n {
                let a = rot[b * n + bp] as f64;
                if a != 0.0 {
                    for uv in 0..kk {
                        m[bp * kk + uv] += a * hd[b * kk + uv];
                    }
                }
            }
        }
        let shift = if first { 0 } else { (r * fin) % cin.max(1) };
        for o in 0..f {
            for c in 0..cin {
                let src = (c + cin - shift) % cin;
                let dst = ((r * f + o) * cin + c) * kk;
                for uv in 0..kk {
                    let mut acc = 0f64;
                    for bp in 0..n {
                        acc += m[bp * kk + uv] * coeffs[(bp * cin + src) * f + o] as f64;
                    }
                    out[dst + uv] = acc as f32;
                }
            }
        }
    }
    out
}

/// A Hermite function's kind: rotation-symmetric, or the real or imaginary part of a pair.
#[derive(Clone, Copy, PartialEq)]
enum Part {
    Z,
    Re,
    Im,
}

/// The 2-D Hermite basis of a k×k filter on a (k·up)² grid, as neuralpredictors' `hermite_2d(k,
/// k·up, 2√k)` builds it: [n, k·up, k·up] (each function of unit L2 norm), with each function's
/// part and angular order μ.
fn hermite_basis(k: usize, up: usize) -> (Vec<f64>, Vec<(Part, usize)>) {
    let npts = k * up;
    let xmax = 2.0 * (k as f64).sqrt() * (1.0 - 1.0 / npts as f64);
    let x: Vec<f64> =
        (0..npts).map(|i| if npts == 1 { -xmax } else { -xmax + 2.0 * xmax * i as f64 / (npts - 1) as f64 }).collect();
    let fact = |n: usize| (1..=n).fold(1f64, |a, i| a * i as f64);
    let mut funcs = Vec::new(); // (μ, ν, part)
    for rank in 0..k {
        let mut mus: Vec<usize> = (0..=rank).map(|j| (2 * j).abs_diff(rank)).collect();
        mus.sort_unstable();
        let mut parts = Vec::new();
        if rank % 2 == 0 {
            parts.push(Part::Z);
        }
        for _ in 0..rank.div_ceil(2) {
            parts.extend([Part::Re, Part::Im]);
        }
        for (mu, part) in mus.into_iter().zip(parts) {
            funcs.push((mu, (rank - mu) / 2, part));
        }
    }
    let mut h = vec![0f64; funcs.len() * npts * npts];
    for (b, &(mu, nu, part)) in funcs.iter().enumerate() {
        // The radial polynomial's coefficients in ρ², ascending.
        let coef: Vec<f64> = (0..=nu)
            .map(|j| fact(mu + nu) * fact(nu) * (-2f64).powi((nu - j) as i32) / (fact(mu + j) * fact(j) * fact(nu - j)))
            .collect();
        let norm = (2f64.powi((mu + 2 * nu) as i32) * std::f64::consts::PI * fact(mu + nu) * fact(nu)).sqrt();
        let img = &mut h[b * npts * npts..(b + 1) * npts * npts];
        for i in 0..npts {
            for j in 0..npts {
                let rsq = x[i] * x[i] + x[j] * x[j];
                let theta = x[i].atan2(x[j]);
                let g = (-x[i] * x[i] / 4.0).exp() * (-x[j] * x[j] / 4.0).exp();
                let radial = coef.iter().rev().fold(0f64, |a, &c| a * rsq + c);
                let amp = g * rsq.sqrt().powi(mu as i32) * radial / norm;
                let angle = mu as f64 * theta;
                img[i * npts + j] = match part {
                    Part::Z => amp * angle.cos() / std::f64::consts::SQRT_2,
                    Part::Re => amp * angle.cos(),
                    Part::Im => amp * angle.sin(),
                };
            }
        }
        let l2 = img.iter().map(|v| v * v).sum::<f64>().sqrt();
        img.iter_mut().for_each(|v| *v /= l2);
    }
    (h, funcs.into_iter().map(|(mu, _, part)| (part, mu)).collect())
}

/// neuralpredictors' `rotation_matrix(desc, mu, angle)`: [n, n], 1 for each symmetric function,
/// [[cos μφ, sin μφ], [−sin μφ, cos μφ]] for each (real, imaginary) pair.
fn rotation_matrix(desc: &[(Part, usize)], angle: f64) -> Vec<f64> {
    let n = desc.len();
    let mut m = vec![0f64; n * n];
    for (i, &(part, mu)) in desc.iter().enumerate() {
        match part {
            Part::Z => m[i * n + i] = 1.0,
            Part::Re if i + 1 < n => {
                let (s, c) = (mu as f64 * angle).sin_cos();
                m[i * n + i] = c;
                m[i * n + i + 1] = s;
                m[(i + 1) * n + i] = -s;
                m[(i + 1) * n + i + 1] = c;
            }
            _ => {}
        }
    }
    m
}

/// The frozen tensors neuralpredictors' `RotateHermite` saves for a k×k filter: the basis `H`
/// [n, k·up, k·up] and the R rotations `Rs.r` [n, n] (by 2πr/R), as f32.
#[doc(hidden)]
pub fn hermite_tensors(k: usize, up: usize, rotations: usize) -> (HostTensor, Vec<HostTensor>) {
    let (h, desc) = hermite_basis(k, up);
    let (n, p) = (desc.len(), k * up);
    let rs = (0..rotations)
        .map(|r| {
            let angle = 2.0 * std::f64::consts::PI * r as f64 / rotations as f64;
            HostTensor::new(vec![n, n], rotation_matrix(&desc, angle).iter().map(|&v| v as f32).collect())
        })
        .collect();
    (HostTensor::new(vec![n, p, p], h.iter().map(|&v| v as f32).collect()), rs)
}

/// Random weights of the Hermite layer `p` under PyTorch's key names, for `Sensorium::random`:
/// the coefficients' key, shape and range (kernels of about unit gain), and the frozen basis and
/// rotations as neuralpredictors builds them.
#[allow(clippy::type_complexity)]
pub(super) fn random_conv(p: &LayerPlan) -> ((String, Vec<usize>, f32), Vec<(String, HostTensor)>) {
    let up = match p.conv {
        ConvKind::Hermite { upsampling } => upsampling,
        _ => 1,
    };
    let (r, k, cin, pre) = (p.rotations, p.kern, p.in_channels, &p.prefix);
    // The built taps are ~0.7·up times the coefficients.
    let s = 1.5 / ((k * up) as f32 * (cin as f32).sqrt());
    let coeffs = (format!("{pre}.hermite_conv.coeffs"), vec![n_coeffs(k), cin, p.out_channels / r], s);
    let (h, rs) = hermite_tensors(k, up, r);
    let mut fixed = vec![(format!("{pre}.hermite_conv.rotate_hermite.H"), h)];
    fixed.extend(rs.into_iter().enumerate().map(|(i, t)| (format!("{pre}.hermite_conv.rotate_hermite.Rs.{i}"), t)));
    (coeffs, fixed)
}

impl Sensorium {
    /// Each layer's conv weights as loaded ([Cout, Cin, k, k]; for a rotation-equivariant core the
    /// kernels built from the Hermite coefficients), for checks.
    #[doc(hidden)]
    pub fn core_weights(&self) -> Vec<&HostTensor> {
        self.layers.iter().flat_map(|layer| &layer.convs).map(|conv| &conv.w).collect()
    }
}
