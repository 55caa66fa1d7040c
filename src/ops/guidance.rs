//! Platypose's energy guidance (shaders/guidance.wgsl; docs/ops.md, energy guidance, and scripts/PLATYPOSE.md):
//! the multi-view reprojection energy of x̂0 with its analytic gradient, and the SGD refinement of
//! x̂0 whose learning rate follows PyTorch's ReduceLROnPlateau, all on the device so a whole
//! refinement records without a readback.

use crate::error::{Error, Result};
use crate::runtime::{Access, Context, PipelineKey, Recorder};
use crate::tensor::{DType, Tensor};

/// One camera as propose's `Camera` holds it: rotation R (world → camera, row-major), the camera
/// centre t in world coordinates, intrinsics (fx, fy, cx, cy, skew) and distortion: radial
/// (k1, k2, k3) and tangential (p1, p2). A point projects as P = (X − t)·R⁻¹, x = P.x/P.z,
/// y = P.y/P.z, distorted, then u = fx·x'' + skew·y'' + cx, v = fy·y'' + cy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Camera {
    pub rotation: [[f64; 3]; 3],
    pub centre: [f64; 3],
    pub intrinsics: [f64; 5],
    pub radial: [f64; 3],
    pub tangential: [f64; 2],
}

/// How far off the optical axis (on the normalised image plane: |x|, |y|) a camera's projection
/// must stay in range: 4, 76° off the axis.
pub const CAMERA_REACH: f64 = 4.0;
/// The largest projected coordinate (and focal-scaled distortion derivative) a camera may reach
/// within [`CAMERA_REACH`]: squared, weighted and summed over cameras, joints and frames, 1e10
/// keeps the energy and its gradient well inside f32 (real cameras reach about 1e6 pixels there;
/// a k3 of 1e6 reaches 3e11, and its refinement steps left f32's range, every sample NaN).
/// This refuses what cannot work; a sampling that still leaves f32's range (a pose driven onto a
/// camera's plane) is caught by `models::platypose::check_samples`.
pub const PROJECTION_LIMIT: f64 = 1e10;
/// The largest keypoint coordinate, confidence weight and root coordinate observations may hold.
pub const OBSERVATION_LIMIT: f32 = 1e10;

/// The parameters of one camera in the kernel's layout: R⁻¹ (row-major), t, fx fy cx cy skew,
/// k1 k2 k3, p1 p2, two zeros.
pub const CAMERA_WORDS: usize = 24;

impl Camera {
    /// R⁻¹ (a general 3×3 inverse, as `torch.inverse`), refusing a singular or non-finite camera.
    pub fn rotation_inverse(&self) -> Result<[[f64; 3]; 3]> {
        const OP: &str = "camera";
        let all = self
            .rotation
            .iter()
            .flatten()
            .chain(&self.centre)
            .chain(&self.intrinsics)
            .chain(&self.radial)
            .chain(&self.tangential);
        if let Some(v) = all.clone().find(|v| !v.is_finite()) {
            return Err(Error::param(OP, "parameters", format!("{v} is not finite")));
        }
        let m = &self.rotation;
        let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
        if det.abs() < 1e-12 {
            return Err(Error::param(OP, "rotation", format!("is singular (determinant {det:e})")));
        }
        let mut inv = [[0f64; 3]; 3];
        for (i, row) in inv.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                // cofactor of (j, i) / det
                let (a, b) = ((j + 1) % 3, (j + 2) % 3);
                let (c, d) = ((i + 1) % 3, (i + 2) % 3);
                *v = (m[a][c] * m[b][d] - m[a][d] * m[b][c]) / det;
            }
        }
        Ok(inv)
    }

    /// Refuses a finite camera whose f32 projection would leave f32's range for ordinary points
    /// (see [`CAMERA_REACH`], [`PROJECTION_LIMIT`]): its rotation must be orthonormal (within
    /// 1e-2: `R·Rᵀ = I`), its centre within 1e6 of the origin, and every point within
    /// `CAMERA_REACH` of the optical axis on the image plane (|x|, |y| ≤ 4: 76° off the axis)
    /// must project, distorted, to pixels of magnitude at most `PROJECTION_LIMIT`, its
    /// distortion's derivative scaled by the focal lengths too. PyTorch in f32 overflows on such
    /// cameras as well (k1 = 1e30 or fx = −3.4e38 make every Platypose sample NaN there).
    pub fn check_range(&self) -> Result<()> {
        const OP: &str = "camera";
        let m = &self.rotation;
        let mut worst = 0f64;
        for i in 0..3 {
            for j in 0..3 {
                let dot: f64 = (0..3).map(|k| m[i][k] * m[j][k]).sum();
                worst = worst.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
            }
        }
        if worst > 1e-2 {
            return Err(Error::param(
                OP,
                "rotation",
                format!("is not a rotation: R·Rᵀ is {worst:.3e} from the identity (1e-2 allowed)"),
            ));
        }
        if let Some(v) = self.centre.iter().find(|v| v.abs() > 1e6) {
            return Err(Error::param(OP, "centre", format!("{v:e} is past 1e6 from the origin")));
        }
        let [fx, fy, cx, cy, skew] = self.intrinsics.map(f64::abs);
        let [k1, k2, k3] = self.radial.map(f64::abs);
        let tan = self.tangential[0].abs() + self.tangential[1].abs();
        let xy = CAMERA_REACH;
        let r2 = 2.0 * xy * xy;
        // Bounds over |x|, |y| ≤ xy of the distortion factor, its r²-derivative, the distorted
        // coordinates and their Jacobian (the shader's formulas, term by term).
        let kappa = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
        let dk = k1 + r2 * (2.0 * k2 + 3.0 * k3 * r2);
        let xd = xy * kappa + tan * (2.0 * xy * xy + r2 + 2.0 * xy * xy);
        let jac = kappa + 2.0 * xy * xy * dk + tan * 8.0 * xy;
        let u = (fx + skew) * xd + cx;
        let v = fy * xd + cy;
        let g = (fx + skew + fy) * jac;
        for (what, val) in [("the projection's u", u), ("the projection's v", v), ("the projection's derivative", g)] {
            if val.is_nan() || val > PROJECTION_LIMIT {
                return Err(Error::param(
                    OP,
                    "intrinsics/distortion",
                    format!(
                        "{what} reaches {val:.3e} within {xy} of the axis (fx fy cx cy skew {:?}, k {:?}, p {:?}), past {PROJECTION_LIMIT:e}",
                        self.intrinsics, self.radial, self.tangential
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The kernel's words for this camera (checked by [`Camera::check_range`] too).
    pub fn words(&self) -> Result<[f32; CAMERA_WORDS]> {
        let ri = self.rotation_inverse()?;
        self.check_range()?;
        let mut w = [0f32; CAMERA_WORDS];
        for i in 0..3 {
            for k in 0..3 {
                w[i * 3 + k] = ri[i][k] as f32;
            }
        }
        let rest = self.centre.iter().chain(&self.intrinsics).chain(&self.radial).chain(&self.tangential);
        for (slot, v) in w[9..22].iter_mut().zip(rest) {
            *slot = *v as f32;
        }
        Ok(w)
    }
}

/// What the energy compares against: the cameras (uploaded) and, per camera and frame, the
/// observed 2-D keypoints and their per-coordinate confidence weights [C, F, J, 2], and the root
/// trajectory [F, 3] added to every joint.
/// Its fields are made only by [`Observations::new`], which checks them against each other.
pub struct Observations {
    pub(crate) cameras: Vec<Camera>,
    pub(crate) camera_words: Tensor,
    pub(crate) keypoints: Tensor,
    pub(crate) weights: Tensor,
    pub(crate) root: Tensor,
    pub(crate) frames: usize,
    pub(crate) joints: usize,
}

impl Observations {
    pub fn cameras(&self) -> &[Camera] {
        &self.cameras
    }
    pub fn frames(&self) -> usize {
        self.frames
    }
    pub fn joints(&self) -> usize {
        self.joints
    }

    /// Uploads the observations: keypoints and weights [C, F, J, 2] (weights `None`: all 1), root
    /// [F, 3] (`None`: the origin).
    pub fn new(
        ctx: &Context,
        cameras: Vec<Camera>,
        keypoints: &[f32],
        weights: Option<&[f32]>,
        root: Option<&[f32]>,
        frames: usize,
        joints: usize,
    ) -> Result<Observations> {
        const OP: &str = "multiview_energy";
        let c = cameras.len();
        if c == 0 {
            return Err(Error::param(OP, "cameras", "at least one camera is needed"));
        }
        let n = c * frames * joints * 2;
        if frames == 0 || joints == 0 || keypoints.len() != n {
            return Err(Error::shape(OP, "keypoints", &[keypoints.len()], format!("[{c}, {frames}, {joints}, 2]")));
        }
        if let Some(w) = weights {
            if w.len() != n {
                return Err(Error::shape(OP, "weights", &[w.len()], format!("[{c}, {frames}, {joints}, 2]")));
            }
        }
        if let Some(r) = root {
            if r.len() != frames * 3 {
                return Err(Error::shape(OP, "root", &[r.len()], format!("[{frames}, 3]")));
            }
        }
        for (name, v) in [("keypoints", Some(keypoints)), ("weights", weights), ("root", root)] {
            if let Some(i) = v.and_then(|v| v.iter().position(|x| !x.is_finite())) {
                return Err(Error::param(OP, name, format!("element {i} is not finite")));
            }
            // Finite but far out: the squared reprojection errors would leave f32.
            if let Some((i, x)) = v.and_then(|v| v.iter().enumerate().find(|(_, x)| x.abs() > OBSERVATION_LIMIT)) {
                return Err(Error::param(OP, name, format!("element {i} ({x:e}) is past {OBSERVATION_LIMIT:e}")));
            }
        }
        // Confidences: a negative one would make the energy unbounded below.
        if let Some((i, x)) = weights.and_then(|w| w.iter().enumerate().find(|(_, x)| **x < 0.0)) {
            return Err(Error::param(OP, "weights", format!("element {i} ({x}) is negative")));
        }
        let mut words = Vec::with_capacity(c * CAMERA_WORDS);
        for cam in &cameras {
            words.extend(cam.words()?);
        }
        let shape = [c, frames, joints, 2];
        let ones;
        let w = match weights {
            Some(w) => w,
            None => {
                ones = vec![1f32; n];
                &ones
            }
        };
        let zeros = vec![0f32; frames * 3];
        Ok(Observations {
            camera_words: Tensor::from_f32(ctx, &words, &[c, CAMERA_WORDS])?,
            keypoints: Tensor::from_f32(ctx, keypoints, &shape)?,
            weights: Tensor::from_f32(ctx, w, &shape)?,
            root: Tensor::from_f32(ctx, root.unwrap_or(&zeros), &[frames, 3])?,
            cameras,
            frames,
            joints,
        })
    }

    fn check_x0(&self, op: &'static str, x0: &Tensor) -> Result<usize> {
        x0.expect_f32(op, "x0")?;
        match *x0.shape() {
            [s, f, d] if f == self.frames && d == self.joints * 3 => Ok(s),
            _ => Err(Error::shape(op, "x0", x0.shape(), format!("[S, {}, {}]", self.frames, self.joints * 3))),
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct EnergyParams {
    samples: u32,
    frames: u32,
    joints: u32,
    cameras: u32,
    proj_only: u32,
    c_lo: u32,
    c_hi: u32,
    part: u32,
}

const ENERGY_BINDINGS: [Access; 7] =
    [Access::Read, Access::Read, Access::Read, Access::Read, Access::Read, Access::ReadWrite, Access::ReadWrite];

fn energy_params(obs: &Observations, s: usize, proj_only: bool) -> EnergyParams {
    EnergyParams {
        samples: s as u32,
        frames: obs.frames as u32,
        joints: obs.joints as u32,
        cameras: obs.cameras.len() as u32,
        proj_only: proj_only as u32,
        c_lo: 0,
        c_hi: obs.cameras.len() as u32,
        part: 1,
    }
}

/// The multi-view energy of x0 [S, F, J·3] (root-relative poses): E [S] and dE/dx0 [S, F, J·3].
pub fn multiview_energy(rec: &mut Recorder, x0: &Tensor, obs: &Observations) -> Result<(Tensor, Tensor)> {
    rec.atomic(|rec| {
        const OP: &str = "multiview_energy";
        let s = obs.check_x0(OP, x0)?;
        let part = rec.alloc(OP, &[s, obs.frames * obs.joints], DType::F32)?;
        let grad = rec.alloc(OP, x0.shape(), DType::F32)?;
        record_energy(rec, OP, x0, obs, s, &part, Some(&grad))?;
        let e = super::row_sum_add(rec, &part, None, 1.0, 0.0)?;
        Ok((e, grad))
    })
}

/// The projections of x0 + root by every camera: [C, S, F, J, 2].
pub fn project(rec: &mut Recorder, x0: &Tensor, obs: &Observations) -> Result<Tensor> {
    const OP: &str = "project";
    let s = obs.check_x0(OP, x0)?;
    let out = rec.alloc(OP, &[obs.cameras.len(), s, obs.frames, obs.joints, 2], DType::F32)?;
    record_energy(rec, OP, x0, obs, s, &out, None)?;
    Ok(out)
}

/// One `multiview_energy` dispatch: energy shares into `part` and the gradient into `grad`, or
/// (no `grad`) the projections into `part`.
fn record_energy(
    rec: &mut Recorder,
    op: &'static str,
    x0: &Tensor,
    obs: &Observations,
    s: usize,
    part: &Tensor,
    grad: Option<&Tensor>,
) -> Result<()> {
    let ctx = rec.context();
    let p = energy_params(obs, s, grad.is_none());
    let kernel = ctx.kernel(&PipelineKey::new("guidance", "multiview_energy", &ENERGY_BINDINGS))?;
    let groups = super::elementwise_grid(ctx, s * obs.frames * obs.joints, op)?;
    let ins = [Some(x0), Some(&obs.root), Some(&obs.camera_words), Some(&obs.keypoints), Some(&obs.weights)];
    let mut bound: Vec<Option<&Tensor>> = ins.to_vec();
    bound.extend([Some(part), grad]);
    // One invocation loops over the cameras: past the loop budget, in chunks of cameras across
    // dispatches (the later ones continue the energy share and gradient).
    let per = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX);
    for (k, (lo, hi)) in crate::runtime::chunks(obs.cameras.len(), per).enumerate() {
        let pk = EnergyParams { c_lo: lo as u32, c_hi: hi as u32, part: (k == 0) as u32, ..p };
        rec.dispatch(op, kernel.clone(), bytemuck::bytes_of(&pk), &bound, groups)?;
    }
    Ok(())
}

/// The refinement's settings: SGD with lr starting at `energy_scale`, `substeps` steps, the lr cut
/// by ReduceLROnPlateau (PyTorch defaults: rel threshold 1e-4, patience 0 as Platypose sets it,
/// factor 0.1, eps 1e-8).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refinement {
    pub energy_scale: f32,
    pub substeps: usize,
    pub factor: f32,
    pub threshold: f32,
}

impl Refinement {
    pub fn new(energy_scale: f32, substeps: usize) -> Refinement {
        Refinement { energy_scale, substeps, factor: 0.1, threshold: 1e-4 }
    }

    pub fn validate(&self) -> Result<()> {
        const OP: &str = "refine";
        super::finite(OP, "energy_scale", self.energy_scale, false)?;
        if self.energy_scale < 0.0 {
            return Err(Error::param(OP, "energy_scale", format!("{} must be >= 0", self.energy_scale)));
        }
        if self.substeps > 10_000 {
            return Err(Error::param(OP, "substeps", format!("{} is past 10000", self.substeps)));
        }
        super::finite(OP, "factor", self.factor, true)?;
        if self.factor >= 1.0 {
            return Err(Error::param(OP, "factor", format!("{} must be below 1", self.factor)));
        }
        super::finite(OP, "threshold", self.threshold, false)?;
        if !(0.0..1.0).contains(&self.threshold) {
            return Err(Error::param(OP, "threshold", format!("{} must be in [0, 1)", self.threshold)));
        }
        Ok(())
    }
}

/// A refinement's trace: the energies at the start of each substep ([S] each) and the lr each
/// substep used ([substeps]; 0 once a NaN energy stopped it).
pub struct RefineTrace {
    pub energies: Vec<Tensor>,
    pub lrs: Tensor,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PlateauParams {
    samples: u32,
    first: u32,
    slot: u32,
    _p: u32,
    scale: f32,
    factor: f32,
    threshold: f32,
    eps: f32,
    lo: u32,
    hi: u32,
    part: u32,
    _p1: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SgdParams {
    n: u32,
    _p: [u32; 3],
}

/// Refines x0 [S, F, J·3] by `substeps` SGD steps on the multi-view energy (Platypose's
/// `p_mean_variance`): per substep the energy and its gradient, the plateau rule on the mean
/// energy (before the step), then x0 − lr·g. Returns the refined x0 and the trace.
pub fn refine(rec: &mut Recorder, x0: &Tensor, obs: &Observations, r: &Refinement) -> Result<(Tensor, RefineTrace)> {
    rec.atomic(|rec| {
        const OP: &str = "refine";
        r.validate()?;
        let s = obs.check_x0(OP, x0)?;
        let ctx = rec.context();
        // lr, best, stopped, has_best; the running sum and NaN flag of a chunked mean.
        let state = rec.alloc(OP, &[6], DType::F32)?;
        let lrs = rec.alloc(OP, &[r.substeps.max(1)], DType::F32)?;
        rec.clear(&lrs);
        let plateau = ctx.kernel(&PipelineKey::new(
            "guidance",
            "plateau_update",
            &[Access::Read, Access::ReadWrite, Access::ReadWrite],
        ))?;
        let sgd = ctx.kernel(&PipelineKey::new(
            "guidance",
            "sgd_update",
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        ))?;
        let groups = super::elementwise_grid(ctx, x0.numel(), OP)?;
        let mut x = x0.clone();
        let mut energies = Vec::with_capacity(r.substeps);
        // Each plateau invocation loops over S / 256 energies: past the loop budget, in chunks of
        // samples across dispatches.
        let per = usize::try_from(rec.loop_budget()).unwrap_or(usize::MAX).saturating_mul(256);
        let mut parts: Vec<(usize, usize)> = crate::runtime::chunks(s, per).collect();
        if parts.is_empty() {
            parts.push((0, 0));
        }
        for k in 0..r.substeps {
            let (e, g) = multiview_energy(rec, &x, obs)?;
            let p = PlateauParams {
                samples: s as u32,
                first: (k == 0) as u32,
                slot: k as u32,
                _p: 0,
                scale: r.energy_scale,
                factor: r.factor,
                threshold: r.threshold,
                eps: 1e-8,
                lo: 0,
                hi: s as u32,
                part: 3,
                _p1: 0,
            };
            for (c, &(lo, hi)) in parts.iter().enumerate() {
                let pc = PlateauParams {
                    lo: lo as u32,
                    hi: hi as u32,
                    part: (c == 0) as u32 | (((c == parts.len() - 1) as u32) << 1),
                    ..p
                };
                rec.dispatch(
                    "refine/plateau",
                    plateau.clone(),
                    bytemuck::bytes_of(&pc),
                    &[Some(&e), Some(&state), Some(&lrs)],
                    [1, 1, 1],
                )?;
            }
            let y = rec.alloc(OP, x.shape(), DType::F32)?;
            let n = SgdParams { n: x.numel() as u32, _p: [0; 3] };
            rec.dispatch(
                "refine/sgd",
                sgd.clone(),
                bytemuck::bytes_of(&n),
                &[Some(&x), Some(&g), Some(&state), Some(&y)],
                groups,
            )?;
            energies.push(e);
            x = y;
        }
        Ok((x, RefineTrace { energies, lrs }))
    })
}

/// The parameter blocks this family uploads, for the Rust↔WGSL layout test.
pub(super) fn params_layouts() -> Vec<super::ParamsLayout> {
    vec![
        super::params_layout!(
            "guidance",
            "EnergyParams",
            EnergyParams,
            [samples, frames, joints, cameras, proj_only, c_lo, c_hi, part]
        ),
        super::params_layout!(
            "guidance",
            "PlateauParams",
            PlateauParams,
            [samples, first, slot, _p, scale, factor, threshold, eps, lo, hi, part, _p1]
        ),
        super::params_layout!("guidance", "SgdParams", SgdParams, [n, _p]),
    ]
}
