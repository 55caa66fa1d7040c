#!/usr/bin/env python3
"""Golden data for Platypose's energy-guided sampling (see scripts/PLATYPOSE.md for the maths and the
source citations). Plain PyTorch, float64 math, no platypose import. What is reproduced:

  * the propose Camera.proj2D as coded in platypose's vendored copy (propose/propose/cameras/Camera.py
    @4ebecb5): P_c = (X - t) @ inv(R); [u, v, w] = [P_c, 1] @ ([I3; 0] @ K); (u/w, v/w); then the
    radial+tangential distortion done in normalised image coordinates and mapped back to "pixels";
  * the `multi_view` energy (platypose/energies.py @c7b62a4) and the `monocular` energy (generalised from
    its hard-coded reshape(1, 256, 17, 3));
  * the guidance inside GaussianDiffusion.p_mean_variance (platypose/diffusion/gaussian_diffusion.py
    @257302b): x0 from the model, then `num_substeps` torch.optim.SGD steps (lr = energy_scale) with a
    fresh ReduceLROnPlateau(patience=0, factor=0.1) per diffusion step, stepped on the mean energy
    *before* each SGD step;
  * the cosine schedule (50 steps) respaced with space_timesteps(50, "ddimN") as SpacedDiffusion does,
    FIXED_SMALL variance, ancestral p_sample loop and the eta = 0 DDIM loop with skip_timesteps.

The denoiser is the tiny MDM of scripts/golden_mdm.py (class copied), with the weights of
kernels-tests/data/mdm/weights.safetensors. All random draws are made here with torch (float32, so that
they are exact in f32) and saved as inputs.

    python3 scripts/golden_platypose.py     (from the repository root; needs torch, numpy, safetensors)
Writes kernels-tests/data/platypose/{cameras,energy,refine,schedule,guided,guided_ddim}.safetensors.
"""
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

OUT = os.path.join("kernels-tests", "data", "platypose")
MDM_WEIGHTS = os.path.join("kernels-tests", "data", "mdm", "weights.safetensors")
F64 = torch.float64


def save(tensors, name, meta):
    """float32 tensors (float64 kept where given as numpy/f64 on purpose); all metadata in one JSON string
    under "info" so that the file bytes are reproducible (safetensors orders several keys at random)."""
    save_file(tensors, os.path.join(OUT, name), metadata={"info": json.dumps(meta, sort_keys=True)})

# ----------------------------------------------------------------------------------------------------
# Denoiser: scripts/golden_mdm.py's module (same module names, so its weights file loads as is); its
# sizes are that module's globals (peers_pose.py resizes them there).
import sys  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_mdm as gm  # noqa: E402
from golden_mdm import Mdm, table  # noqa: E402,F401


# ----------------------------------------------------------------------------------------------------
# Schedule: get_named_beta_schedule("cosine", 50) -> SpacedDiffusion(space_timesteps(50, "ddimN")).
def cosine_betas(T, max_beta=0.999):
    ab = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.array([min(1 - ab((i + 1) / T) / ab(i / T), max_beta) for i in range(T)], dtype=np.float64)


def space_timesteps(T, section):
    assert section.startswith("ddim")
    return set(np.linspace(0, T - 1, int(section[4:]), dtype=int).tolist())


def tables(betas):
    """GaussianDiffusion.__init__ (float64 numpy)."""
    betas = np.array(betas, dtype=np.float64)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas, axis=0)
    ac_prev = np.append(1.0, ac[:-1])
    post_var = betas * (1.0 - ac_prev) / (1.0 - ac)
    return {
        "betas": betas,
        "alphas_cumprod": ac,
        "alphas_cumprod_prev": ac_prev,
        "sqrt_alphas_cumprod": np.sqrt(ac),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
        "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / ac),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / ac - 1),
        "posterior_variance": post_var,
        "posterior_log_variance_clipped": np.log(np.append(post_var[1], post_var[1:])),
        "posterior_mean_coef1": betas * np.sqrt(ac_prev) / (1.0 - ac),
        "posterior_mean_coef2": (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac),
    }


def spaced(T, section):
    base = tables(cosine_betas(T))
    use = space_timesteps(T, section)
    last, new_betas, tmap = 1.0, [], []
    for i, a in enumerate(base["alphas_cumprod"]):
        if i in use:
            new_betas.append(1 - a / last)
            last = a
            tmap.append(i)
    return tables(new_betas), tmap


# ----------------------------------------------------------------------------------------------------
# Camera (propose Camera @4ebecb5 as vendored in platypose), batched over C cameras, float64.
def intrinsic(cx, cy, fx, fy, skew):
    """Camera.construct_intrinsic_matrix: [[fx, skew, cx], [0, fy, cy], [0, 0, 1]].T"""
    return torch.tensor([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=F64).T


def look_at(pos, target):
    """World->camera rotation (rows: right, down, forward) for a z-up world; H36M camera axes."""
    fwd = target - pos
    fwd = fwd / fwd.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0], dtype=F64))
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    return torch.stack([right, down, fwd])


def proj2d(points, cam, distort=True):
    """points [..., 3] (world) -> [..., 2]; cam: dict with R [3,3], t [1,3], K [3,3], k [1,3], p [1,2]."""
    R, t, K, k, p = cam["R"], cam["t"], cam["K"], cam["k"], cam["p"]
    pc = torch.matmul(points - t, torch.linalg.inv(R))            # points + T_inv, T_inv = -t
    M = torch.cat((torch.eye(3, dtype=F64), torch.zeros(1, 3, dtype=F64)), 0) @ K   # camera_matrix()
    ext = torch.cat((pc, torch.ones(*pc.shape[:-1], 1, dtype=F64)), -1)
    uvw = ext @ M
    uv = uvw[..., :2] / uvw[..., 2:]
    if not distort:
        return uv
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[2, 0], K[2, 1], K[1, 0]  # _unpack_intrinsic_matrix
    c = uv - torch.stack([cx, cy])
    yn = c[..., 1] / fy
    xn = (c[..., 0] - skew * yn) / fx
    r2 = xn ** 2 + yn ** 2
    kk = torch.zeros(3, dtype=F64)
    kk[: k.shape[1]] = k.squeeze()
    kappa = 1 + kk[0] * r2 + kk[1] * r2 ** 2 + kk[2] * r2 ** 3
    pp = p.squeeze()
    rx = 2 * pp[0] * xn * yn + pp[1] * (r2 + 2 * xn ** 2)
    ry = 2 * pp[1] * xn * yn + pp[0] * (r2 + 2 * yn ** 2)
    xd, yd = xn * kappa + rx, yn * kappa + ry
    return torch.stack([xd * fx + cx + skew * yd, yd * fy + cy], -1)


# ----------------------------------------------------------------------------------------------------
# Energies.
def multi_view(x0, x2d, root, w, cams):
    """platypose/energies.py::multi_view with mpii=False.
    x0 [S,F,51]; x2d [C,F,17,2]; root [F,3] (= x_3d[:, :, :1, :]); w [C,F,17,2] (`scale`) -> E [S]."""
    X = x0.reshape(x0.shape[0], x0.shape[1], 17, 3) + root[None, :, None, :]
    proj = torch.stack([proj2d(X, c) for c in cams], 0)            # [C,S,F,17,2]
    e = torch.stack([(proj[c] - x2d[c][None]) ** 2 * w[c][None] for c in range(len(cams))], 0)
    return e.mean(-1).mean(-1).sum(-1).sum(0), proj


def monocular(x, x2d, cam, mpii=False):
    """platypose/energies.py::monocular_2d_energy, with reshape(1, 256, 17, 3) generalised to [S,F,17,3].
    No root is added (x are absolute world coordinates), no weights. x [S,F,51]; x2d [F,17,2] -> E [S]."""
    X = x.reshape(x.shape[0], x.shape[1], 17, 3)
    proj = proj2d(X, cam)
    obs = x2d[None].expand_as(proj)
    if mpii:
        proj = torch.cat([proj[:, :, :9, :], proj[:, :, 10:, :]], dim=2)
        obs = torch.cat([obs[:, :, :9, :], obs[:, :, 10:, :]], dim=2)
    return ((proj - obs) ** 2).mean(-1).mean(-1).sum(-1)


# ----------------------------------------------------------------------------------------------------
# Guidance (p_mean_variance) and the two sampling loops.
def refine(x0_model, energy_fn, energy_scale, num_substeps):
    """Returns the refined x0 plus per-substep energies [K,S] and the lr used by each SGD step [K]."""
    pred = x0_model.detach().clone()
    energies, lrs = [], []
    with torch.enable_grad():
        pred = pred.requires_grad_()
        opt = torch.optim.SGD([pred], lr=energy_scale)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)  # (verbose=False in the original)
        for _ in range(num_substeps):
            opt.zero_grad()
            en = energy_fn(pred)
            if torch.isnan(en).any():
                raise RuntimeError("nan energy (the original breaks out of the loop here)")
            sched.step(en.mean().detach())
            grad = torch.autograd.grad(outputs=en, inputs=pred, grad_outputs=torch.ones_like(en))[0]
            pred.grad = grad
            energies.append(en.detach().clone())
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
    return pred.detach(), torch.stack(energies), torch.tensor(lrs, dtype=F64)


def refine_by_hand(x0_model, energy_fn, energy_scale, num_substeps):
    """The same as refine() without torch.optim, i.e. the rule the Rust side implements."""
    x, lr, best, bad = x0_model.detach().clone(), energy_scale, math.inf, 0
    margins = []
    for _ in range(num_substeps):
        xg = x.clone().requires_grad_()
        en = energy_fn(xg)
        g = torch.autograd.grad(en.sum(), xg)[0]
        m = float(en.mean().detach())
        if best < math.inf:
            margins.append(abs(m / best - (1 - 1e-4)))
        if m < best * (1 - 1e-4):
            best, bad = m, 0
        else:
            bad += 1
        if bad > 0:               # patience 0, cooldown 0
            new = max(lr * 0.1, 0.0)
            if lr - new > 1e-8:
                lr = new
            bad = 0
        x = x - lr * g
    return x, margins


def run_ancestral(model, sched, tmap, x_T, noise, energy_fn, energy_scale, num_substeps):
    N = len(tmap)
    x = x_T.clone()
    rec = {k: [] for k in ("x_t", "x0_model", "x0_refined", "energies", "lrs")}
    margins = []
    for step, i in enumerate(reversed(range(N))):
        rec["x_t"].append(x)
        with torch.no_grad():
            x0m = model(x, tmap[i])                                  # _WrappedModel: t -> timestep_map[t]
        x0r, en, lrs = refine(x0m, energy_fn, energy_scale, num_substeps)
        chk, mg = refine_by_hand(x0m, energy_fn, energy_scale, num_substeps)
        assert torch.allclose(chk, x0r, rtol=0, atol=1e-12 if x0r.dtype == torch.float64 else 1e-4), "hand-written SGD/plateau rule disagrees"
        margins += mg
        mean = sched["posterior_mean_coef1"][i] * x0r + sched["posterior_mean_coef2"][i] * x
        nz = 1.0 if i != 0 else 0.0
        x = mean + nz * math.exp(0.5 * sched["posterior_log_variance_clipped"][i]) * noise[step]
        for k, v in zip(("x0_model", "x0_refined", "energies", "lrs"), (x0m, x0r, en, lrs)):
            rec[k].append(v)
    return x, {k: torch.stack(v) for k, v in rec.items()}, margins


def run_ddim(model, sched, tmap, z, skip, energy_fn, energy_scale, num_substeps):
    N = len(tmap)
    indices = list(range(N - skip))[::-1]
    x = z.clone()
    if skip:                                                         # init_image = zeros; q_sample(0, t0, z)
        x = sched["sqrt_alphas_cumprod"][indices[0]] * torch.zeros_like(z) + sched["sqrt_one_minus_alphas_cumprod"][indices[0]] * z
    x_init = x.clone()
    rec = {k: [] for k in ("x_t", "x0_model", "x0_refined", "energies", "lrs")}
    margins = []
    for i in indices:
        rec["x_t"].append(x)
        with torch.no_grad():
            x0m = model(x, tmap[i])
        x0r, en, lrs = refine(x0m, energy_fn, energy_scale, num_substeps)
        margins += refine_by_hand(x0m, energy_fn, energy_scale, num_substeps)[1]
        eps = (sched["sqrt_recip_alphas_cumprod"][i] * x - x0r) / sched["sqrt_recipm1_alphas_cumprod"][i]
        a_prev = sched["alphas_cumprod_prev"][i]
        x = x0r * math.sqrt(a_prev) + math.sqrt(1 - a_prev - 0.0) * eps    # eta = 0 -> sigma = 0
        for k, v in zip(("x0_model", "x0_refined", "energies", "lrs"), (x0m, x0r, en, lrs)):
            rec[k].append(v)
    return x, x_init, indices, {k: torch.stack(v) for k, v in rec.items()}, margins


# ----------------------------------------------------------------------------------------------------
# Scene: 2 cameras, a 17-joint H36M-like skeleton (metres, z-up world), noisy 2-D "detections".
SKELETON = [  # root-relative joint positions, H36M order
    (0.00, 0.00, 0.00), (-0.13, 0.00, 0.00), (-0.14, 0.02, -0.44), (-0.15, 0.05, -0.87),
    (0.13, 0.00, 0.00), (0.14, 0.02, -0.44), (0.15, 0.05, -0.87), (0.00, 0.00, 0.23),
    (0.00, 0.00, 0.48), (0.00, -0.05, 0.58), (0.00, 0.00, 0.68), (0.16, 0.00, 0.45),
    (0.28, 0.00, 0.20), (0.32, -0.05, -0.03), (-0.16, 0.00, 0.45), (-0.28, 0.00, 0.20),
    (-0.32, -0.05, -0.03),
]


def f32(x):
    return x.to(torch.float32).to(F64)  # round to f32 so the saved inputs are exact


def make_cameras():
    # fx fy cx cy in the normalised units of chick/dataset/temporal.py (f/1000*2, c/1000*2 - 1), skew != 0
    specs = [
        dict(pos=(3.2, -3.9, 1.55), f=(2.2901, 2.2875), c=(0.0251, 0.0289), skew=0.0040,
             k=(-0.2071, 0.2479, -0.0031), p=(-0.0014, -0.0010)),
        dict(pos=(-4.1, -2.7, 1.42), f=(2.2994, 2.2979), c=(0.0157, 0.0070), skew=-0.0030,
             k=(-0.1942, 0.2404, 0.0068), p=(-0.0016, -0.0027)),
    ]
    target = torch.tensor([0.1, 0.05, 0.9], dtype=F64)
    cams = []
    for s in specs:
        pos = torch.tensor(s["pos"], dtype=F64)
        R = f32(look_at(pos, target))
        cams.append(dict(R=R, t=f32(pos[None]), K=f32(intrinsic(s["c"][0], s["c"][1], s["f"][0], s["f"][1], s["skew"])),
                         k=f32(torch.tensor([s["k"]], dtype=F64)), p=f32(torch.tensor([s["p"]], dtype=F64))))
    return cams


def make_motion(F, gen):
    base = torch.tensor(SKELETON, dtype=F64)
    fr = torch.arange(F, dtype=F64)
    pose = base[None].repeat(F, 1, 1)
    swing = 0.12 * torch.sin(0.7 * fr)                        # arms/legs swing
    pose[:, [12, 13], 1] += swing[:, None]
    pose[:, [15, 16], 1] -= swing[:, None]
    pose[:, [2, 3], 1] -= swing[:, None] * 0.8
    pose[:, [5, 6], 1] += swing[:, None] * 0.8
    pose[:, 0] = 0.0
    root = torch.stack([0.04 * fr, 0.03 * fr, 0.92 + 0.01 * torch.sin(fr)], -1)   # [F,3]
    return f32(pose), f32(root)


def main():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1234)
    C, F, S, FE = 2, 8, 3, 4
    ENERGY_SCALE, NUM_SUBSTEPS = 30.0, 3
    SECTION, DDIM_SKIP = "ddim5", 1

    cams = make_cameras()
    pose, root = make_motion(F, gen)                      # pose root-relative [F,17,3], root [F,3]
    gt = pose + root[:, None, :]                          # absolute (gt_3D with the trajectory added back)
    proj_gt = torch.stack([proj2d(gt, c) for c in cams])  # [C,F,17,2]
    det = proj_gt + 0.008 * torch.randn(C, F, 17, 2, generator=gen, dtype=torch.float32).to(F64)
    # scripts/eval.py: x_2d = x_2d - x_2d[..., :1, :] + x_2d_proj[..., :1, :]; weights from the residual
    x2d = f32(det - det[..., :1, :] + proj_gt[..., :1, :])
    err = (proj_gt - x2d).abs()
    err[..., 0, :] = 1 / 80
    w = f32((1 / err / 80).clip(0, 2))

    os.makedirs(OUT, exist_ok=True)
    cam_t = {
        "R": torch.stack([c["R"] for c in cams]), "t": torch.stack([c["t"][0] for c in cams]),
        "K": torch.stack([c["K"] for c in cams]),
        "intrinsics_fx_fy_cx_cy_skew": torch.stack([torch.stack([c["K"][0, 0], c["K"][1, 1], c["K"][2, 0], c["K"][2, 1], c["K"][1, 0]]) for c in cams]),
        "radial_k1_k2_k3": torch.stack([c["k"][0] for c in cams]), "tangential_p1_p2": torch.stack([c["p"][0] for c in cams]),
        "x2d": x2d, "weights": w, "root": root, "gt_pose_rel": pose.reshape(F, 51), "proj_gt": proj_gt,
    }
    save({k: v.float().contiguous() for k, v in cam_t.items()}, "cameras.safetensors",
              {"script": "scripts/golden_platypose.py", "torch": torch.__version__,
                        "layout": "K is the coded layout [[fx,0,0],[skew,fy,0],[cx,cy,1]]; t is the camera centre in world; "
                                  "P_c = (X - t) @ inv(R); weights are per coordinate [C,F,17,2]"})

    # ------------------------------------------------------------------ energy test (frames 0..FE-1)
    x0 = f32(pose[None, :FE].reshape(1, FE, 51) + 0.05 * torch.randn(S, FE, 51, generator=gen, dtype=torch.float32).to(F64))
    rootE, x2dE, wE = root[:FE], x2d[:, :FE], w[:, :FE]
    xg = x0.clone().requires_grad_()
    en, proj = multi_view(xg, x2dE, rootE, wE, cams)
    grad = torch.autograd.grad(en.sum(), xg)[0]
    with torch.no_grad():
        Xabs = x0.reshape(S, FE, 17, 3) + rootE[None, :, None, :]
        proj_nd = torch.stack([proj2d(Xabs, c, distort=False) for c in cams])
    # finite differences over every coordinate
    h, fd = 1e-6, torch.zeros_like(x0)
    with torch.no_grad():
        flat = x0.reshape(-1)
        for n in range(flat.numel()):
            e1, e2 = flat.clone(), flat.clone()
            e1[n] += h
            e2[n] -= h
            fd.reshape(-1)[n] = (multi_view(e1.reshape(x0.shape), x2dE, rootE, wE, cams)[0].sum()
                                 - multi_view(e2.reshape(x0.shape), x2dE, rootE, wE, cams)[0].sum()) / (2 * h)
    fd_err = ((fd - grad).abs().max() / grad.abs().max()).item()
    assert fd_err < 1e-6, fd_err
    # monocular (camera 0, absolute coordinates in, no weights), plain and with the MPII joint-9 drop
    x_mono = f32(x0 + rootE.repeat(1, 17).reshape(1, FE, 51))
    xm = x_mono.clone().requires_grad_()
    e_mono = monocular(xm, x2dE[0], cams[0])
    g_mono = torch.autograd.grad(e_mono.sum(), xm)[0]
    xm2 = x_mono.clone().requires_grad_()
    e_mpii = monocular(xm2, x2dE[0], cams[0], mpii=True)
    g_mpii = torch.autograd.grad(e_mpii.sum(), xm2)[0]
    save({k: v.float().contiguous() for k, v in {
        "x0": x0, "root": rootE, "x2d": x2dE, "weights": wE, "energy": en.detach(), "grad": grad,
        "proj": proj.detach(), "proj_cam0": proj[0].detach(), "proj_undistorted": proj_nd,
        "x_mono": x_mono, "energy_mono": e_mono.detach(), "grad_mono": g_mono,
        "energy_mono_mpii": e_mpii.detach(), "grad_mono_mpii": g_mpii}.items()},
        "energy.safetensors",
        {"script": "scripts/golden_platypose.py", "fd_rel_err": f"{fd_err:.3e}",
                  "frames": "x2d/weights/root are frames 0..3 of cameras.safetensors"})

    # ------------------------------------------------------------------ plateau rule exercised (lr cuts)
    x0_ref = f32(x0 + 0.3 * torch.randn(S, FE, 51, generator=gen, dtype=torch.float32).to(F64))
    fnE = lambda x: multi_view(x, x2dE, rootE, wE, cams)[0]
    ref = {"x0_in": x0_ref}
    for tag, scale in (("a", 100.0), ("b", 150.0)):
        out, en_k, lr_k = refine(x0_ref, fnE, scale, 6)
        assert torch.allclose(refine_by_hand(x0_ref, fnE, scale, 6)[0], out, rtol=0, atol=1e-12)
        ref.update({f"x0_out_{tag}": out, f"energies_{tag}": en_k, f"lrs_{tag}": lr_k})
        print("refine", tag, scale, en_k.mean(-1).tolist(), lr_k.tolist())
    save({k: v.float().contiguous() for k, v in ref.items()}, "refine.safetensors",
              {"script": "scripts/golden_platypose.py", "energy": "multi_view with x2d/weights/root/cameras of energy.safetensors",
                        "energy_scale_a": "100", "energy_scale_b": "150", "num_substeps": "6",
                        "note": "energies_[k] is the energy at the start of substep k (before its SGD step); lrs_[k] the lr that step used"})

    # ------------------------------------------------------------------ schedules
    sched20, tmap20 = spaced(50, "ddim20")
    sched, tmap = spaced(50, SECTION)
    base = tables(cosine_betas(50))
    st = {"base50_betas": base["betas"], "base50_alphas_cumprod": base["alphas_cumprod"],
          "ddim20_timestep_map": np.array(tmap20, dtype=np.float64),
          f"{SECTION}_timestep_map": np.array(tmap, dtype=np.float64)}
    for name in ("betas", "alphas_cumprod", "alphas_cumprod_prev", "posterior_variance", "posterior_log_variance_clipped",
                 "posterior_mean_coef1", "posterior_mean_coef2", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
                 "sqrt_one_minus_alphas_cumprod"):
        st[f"ddim20_{name}"] = sched20[name]
        st[f"{SECTION}_{name}"] = sched[name]
    save({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in st.items()}, "schedule.safetensors",
              {"script": "scripts/golden_platypose.py", "ddim20_timestep_map": json.dumps(tmap20),
                        f"{SECTION}_timestep_map": json.dumps(tmap)})

    # ------------------------------------------------------------------ guided sampling
    model = Mdm().eval()
    model.load_state_dict({k: v for k, v in load_file(MDM_WEIGHTS).items()})
    model = model.double()
    for p_ in model.parameters():
        p_.requires_grad_(False)
    energy_fn = lambda x: multi_view(x, x2d, root, w, cams)[0]

    N = len(tmap)
    x_T = torch.randn(S, F, 51, generator=gen, dtype=torch.float32).to(F64)
    noise = torch.randn(N, S, F, 51, generator=gen, dtype=torch.float32).to(F64)
    sample, rec, margins = run_ancestral(model, sched, tmap, x_T, noise, energy_fn, ENERGY_SCALE, NUM_SUBSTEPS)
    sample2, rec2, _ = run_ancestral(model, sched, tmap, x_T, noise, energy_fn, ENERGY_SCALE, NUM_SUBSTEPS)
    assert torch.equal(sample, sample2) and torch.equal(rec["x0_refined"], rec2["x0_refined"]), "not deterministic"
    steps_t = [tmap[i] for i in reversed(range(N))]
    meta = {"script": "scripts/golden_platypose.py", "torch": torch.__version__, "loop": "p_sample_loop_progressive (ancestral), model call under no_grad",
            "schedule": f"cosine, 50 training steps, space_timesteps(50, '{SECTION}')", "respaced_index_per_step": json.dumps(list(reversed(range(N)))),
            "model_timestep_per_step": json.dumps(steps_t), "rescale_timesteps": "False", "energy": "multi_view, cameras.safetensors",
            "energy_scale": str(ENERGY_SCALE), "num_substeps": str(NUM_SUBSTEPS), "var_type": "FIXED_SMALL", "clip_denoised": "False",
            "noise_note": "noise[step] is added after step `step`; the last one (respaced t = 0) is masked out"}
    save({k: v.float().contiguous() for k, v in {
        "x_T": x_T, "noise": noise, "x_t": rec["x_t"], "x0_model": rec["x0_model"], "x0_refined": rec["x0_refined"],
        "energies": rec["energies"], "lrs": rec["lrs"], "sample": sample,
        "model_timesteps": torch.tensor(steps_t, dtype=F64)}.items()}, "guided.safetensors", meta)

    z = torch.randn(S, F, 51, generator=gen, dtype=torch.float32).to(F64)
    sample_d, x_init, idx_d, rec_d, margins_d = run_ddim(model, sched, tmap, z, DDIM_SKIP, energy_fn, ENERGY_SCALE, NUM_SUBSTEPS)
    steps_td = [tmap[i] for i in idx_d]
    meta_d = dict(meta, loop=f"ddim_sample_loop_progressive, eta=0, skip_timesteps={DDIM_SKIP}",
                  respaced_index_per_step=json.dumps(idx_d), model_timestep_per_step=json.dumps(steps_td),
                  noise_note="z is th.randn(shape); x_init = sqrt(1 - alphas_cumprod[first index]) * z (q_sample of zeros); "
                             "DDIM with eta = 0 draws noise every step but multiplies it by sigma = 0")
    save({k: v.float().contiguous() for k, v in {
        "z": z, "x_init": x_init, "x_t": rec_d["x_t"], "x0_refined": rec_d["x0_refined"],
        "energies": rec_d["energies"], "lrs": rec_d["lrs"], "sample": sample_d,
        "model_timesteps": torch.tensor(steps_td, dtype=F64)}.items()}, "guided_ddim.safetensors", meta_d)

    print("cameras: proj_gt range", proj_gt.min().item(), proj_gt.max().item(), "weights range", w.min().item(), w.max().item())
    print("energy", en.tolist(), "fd rel err", fd_err)
    print("mono", e_mono.tolist(), "mpii", e_mpii.tolist())
    print("ddim20 map", tmap20, f"{SECTION} map", tmap)
    print("ancestral: model t", steps_t, "\n energies per step (mean over S):", rec["energies"].mean(-1).tolist(), "\n lrs:", rec["lrs"].tolist())
    print(" sample absmax", sample.abs().max().item(), "x0_refined absmax", rec["x0_refined"].abs().max().item())
    print("ddim: model t", steps_td, "\n energies:", rec_d["energies"].mean(-1).tolist(), "\n lrs:", rec_d["lrs"].tolist())
    print("smallest plateau-decision margin |E/best - (1-1e-4)|:", min(margins + margins_d))
    for fn in sorted(os.listdir(OUT)):
        print(fn, os.path.getsize(os.path.join(OUT, fn)))


if __name__ == "__main__":
    main()
