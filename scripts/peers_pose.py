#!/usr/bin/env python3
"""PyTorch peer timings for the two pose-model cases of `vcortex bench` (src/bench/pose.rs), in the
JSON-lines format of the standard suite's PyTorch peer script (scripts/torch_peers.py;
docs/bench.md), so that the two outputs can be concatenated:

    python3 .gpu/torch_peers.py   [--small] >  torch.jsonl    # as scripts/gpu_check.sh runs it
    python3 scripts/peers_pose.py          [--small] >> torch.jsonl
    python3 .gpu/bench_compare.py vc.json torch.jsonl

    python3 scripts/peers_pose.py [--small] [--filter SUBSTR]   # timings, one JSON object per line
    python3 scripts/peers_pose.py --check                       # tiny CPU run + self-checks, no timings

Run from anywhere (the golden scripts next to this file are imported). Each case prints
{"case", "ms"} (median of >= 20 timed calls after warm-up; CUDA events on a GPU, wall clock on a
CPU), the last line is {"case": "device", ...}. On a CPU the default is 3 / 5 timed calls (a
cGNF call at --small takes ~10 s on two cores there): a smoke test, not a measurement; --reps N
sets the count. TF32 is off; float32 throughout; every timed call
runs under torch.no_grad() (the energy gradient re-enables grad locally, as Platypose does).
--small shrinks the batches as vcortex's small suite does (1000 x 200 -> 8 poses x 6; 200 x 60 -> 6 x 10
with a 64-wide 2-layer MDM); the
case names stay the same and the device line says small.

Cases
-----
cgnf_sample_200x1000
    propose's production cGNF (CondGraphFlow): 16 joints, L = 10 flow layers of GraphActNorm(3) +
    GraphAffineCoupling (coordinate i % 3 transformed, conditioner = CondGNN of two CondGCN layers,
    hidden 100, context 10), SageEmbedding 2 -> 128 -> 10 on the learned dense adjacency, skeleton
    edges of CgnfConfig::propose(). Model code: scripts/golden_cgnf.py (propose's module and key
    names) at production sizes, random weights (PyTorch default init, the last pool layer x 0.5,
    ActNorm U(-0.3, 0.3), adjacency U(0.5, 1.5): vcortex's random_state_dict scheme). Inputs: 1000
    poses of raw keypoints U[400, 600) (a 200-px person) [B, 16, 2], observed = (i % 7 != 3) over the flattened
    [B*J]. One timed call = keypoint embedding (preprocess x0.0139, root-centre, flip y; two
    DenseSAGE layers) + z = 0.8 * randn [B, 200, 16, 3] + the full inverse pass over the samples
    axis (the context messages [B, 1, J, .] broadcast over the 200 samples), which also yields the
    per-node log p (vcortex's record_sample computes it too); returns the samples.
    The skeleton neighbour sum sum_j nbr[i, j] t[..., j, :] is timed in three vectorised forms and
    the fastest is reported (the row's "skeleton_sum" names it, "variants_ms" gives all three):
    "einsum" (golden_cgnf.node_mix), "matmul" (dense [J, J] @ [..., J, H], broadcast batched GEMM),
    "index_add" (index_select of the 30 directed edge sources, index_add_ into the destinations).
    Note: with these random weights and keypoints up to 1000 px (context features up to ~9), the
    10 inverse couplings (divide by sigmoid(.) + 1e-3) inflate the samples to |x| ~ 1e5 median,
    up to ~1e11 (finite in float32); timings do not depend on the values.

platypose_sample_200x60
    Platypose's guided sampling (scripts/PLATYPOSE.md): MDM denoiser (golden_platypose.Mdm at
    d_model 512, 8 post-LN nn.TransformerEncoder layers, 4 heads, FF 1024, GELU, dropout 0,
    batch_first, enable_nested_tensor=False; input 51; sinusoidal table max_len 64, cached on the
    device), x0 prediction, cosine schedule of 50 training steps respaced with
    space_timesteps(50, "ddim20"), eta = 0 DDIM, skip_timesteps 0 (x_T = randn [200, 60, 51], drawn
    inside the timed call). Every step: x0 = model(x_t, timestep_map[k]) under no_grad, then 10 SGD
    substeps (lr 30) on the multi-view energy with a fresh ReduceLROnPlateau(patience=0, factor=0.1)
    stepped on the mean energy before each SGD step, gradient = torch.autograd.grad of the energy
    w.r.t. x0 only; then eps = (sqrt(1/a_k) x_t - x0) / sqrt(1/a_k - 1),
    x = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps. Energy = platypose's multi_view with one camera:
    E_s = sum_f mean_j mean_xy w (proj2D(x0 + root) - keypoints)^2, proj2D as propose's
    Camera.proj2D is coded (P = (X - t) @ inv(R); [P, 1] @ ([I; 0] K); divide; radial + tangential
    distortion in normalised coordinates). Camera R = I, t = 0, fx = fy = 2.29, cx = 0.01,
    cy = -0.02, skew 0, k = (-0.2, 0.24, -0.002), p = (-0.001, 0.001); keypoints U[-0.4, 0.4)
    [1, F, 17, 2], weights U[0.2, 2) [1, F, 17, 2], root [F, 3] = (0.01 f, 0, 5). One timed call =
    the whole 20-step sampling (20 model calls, 200 energy + gradient evaluations).
    Differences from the original code, all on the timing-neutral side: the NaN check that breaks
    the substep loop (a host sync per substep) and the eta = 0 noise draw multiplied by 0 are
    left out, the camera's inv(R) and [I; 0] K and the sinusoidal table are computed once, and the
    timestep MLP runs on one row and is broadcast over the hypotheses. ReduceLROnPlateau.step
    reads the mean energy back to the host (one sync per substep): that is inherent to it.

--check: runs both cases at tiny sizes on the CPU (whatever the machine) and asserts that the
outputs are finite and that the pieces agree with the golden scripts' own code: the three skeleton
sums agree, the samples map back to z through the forward flow, the float32 device projection and
energy match golden_platypose's float64 proj2d / multi_view, the cached-table denoiser matches
golden_platypose.Mdm.forward, the lean refinement matches golden_platypose.refine, and the ddim20
timestep map is PLATYPOSE.md's.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import safetensors  # noqa: F401  (the golden modules import it; the peers never touch a file)
except ImportError:  # a GPU machine with torch only: stand-ins so the imports below succeed
    import types
    _st, _stt = types.ModuleType("safetensors"), types.ModuleType("safetensors.torch")
    _st.safe_open = _stt.load_file = _stt.save_file = None
    _st.torch = _stt
    sys.modules["safetensors"], sys.modules["safetensors.torch"] = _st, _stt
import golden_cgnf as gc  # noqa: E402  (both golden scripts only run their main under __main__)
import golden_platypose as gp  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--small", action="store_true", help="shrink the batches (to try it on a CPU)")
ap.add_argument("--filter", default="", help="run only the cases whose name contains this")
ap.add_argument("--check", action="store_true", help="tiny CPU run with self-checks, no timings")
ap.add_argument("--reps", type=int, default=0, help="timed calls per case (default: 30 cGNF / 20 Platypose "
                "on a GPU, 3 / 5 on a CPU, where the cases take seconds per call)")
args = ap.parse_args()

dev = "cuda" if torch.cuda.is_available() and not args.check else "cpu"
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_float32_matmul_precision("highest")
torch.manual_seed(0)


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def gpu_ms(fn, reps=50, warm=10):
    """Median device time of fn() in ms (CUDA events; wall clock on a CPU), as torch_peers.py."""
    with torch.no_grad():
        for _ in range(warm):
            fn()
        sync()
        ts = []
        for _ in range(reps):
            if dev == "cuda":
                a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
                a.record(); fn(); b.record(); b.synchronize(); ts.append(a.elapsed_time(b))
            else:
                t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def reps_warm(gpu_reps, cpu_reps):
    """(timed calls, warm-up calls) for a case."""
    if args.reps:
        return args.reps, (3 if dev == "cuda" else 1)
    return (gpu_reps, 3) if dev == "cuda" else (cpu_reps, 1)


def emit(row):
    print(json.dumps(row), flush=True)


# ================================================================================================
# cgnf_sample_200x1000
# ================================================================================================
J = 16
CGNF_SIZES = dict(L=10, H=100, CC=10, EH=128)   # propose: layers, hidden, context features, SAGE hidden
TAU = 0.8
PROPOSE_EDGES = [[0, 1], [1, 2], [2, 6], [6, 3], [3, 4], [4, 5], [6, 7], [7, 8], [8, 9], [8, 12],
                 [12, 11], [11, 10], [8, 13], [13, 14], [14, 15]]
assert gc.EDGES == PROPOSE_EDGES and gc.J == J and gc.KP_SCALE == 0.0139 and gc.ROOT == 0


def build_cgnf():
    """golden_cgnf.CondGraphFlow at propose's production sizes (the golden module reads its sizes
    from module globals when the model is built), random weights, on `dev`, float32, eval."""
    for k, v in CGNF_SIZES.items():
        setattr(gc, k, v)
    m = gc.CondGraphFlow()
    with torch.no_grad():
        for i, t in enumerate(m._transform._transforms):
            if i % 2 == 0:
                t.log_scale.uniform_(-0.3, 0.3)
                t.shift.uniform_(-0.3, 0.3)
            else:   # the last pool x 0.5, as vcortex's bench (random_state_dict gain 0.5) does:
                # a deep random flow's inverse stays tame, as a trained one's is
                pool = t.transform_net.layers[1].pool
                pool.weight.mul_(0.5)
                pool.bias.mul_(0.5)
        m._embedding_net.adj.copy_(torch.rand(J, J) + 0.5)
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(dev).eval()


def _directed_edges():
    src = [s for s, d in PROPOSE_EDGES] + [d for s, d in PROPOSE_EDGES]   # x->x then x<-x
    dst = [d for s, d in PROPOSE_EDGES] + [s for s, d in PROPOSE_EDGES]
    return torch.tensor(src, device=dev), torch.tensor(dst, device=dev)


_GOLDEN_NODE_MIX = gc.node_mix
_SRC, _DST = _directed_edges()


def mix_matmul(m, t):
    """sum_j m[i, j] t[..., j, :] as a broadcast batched GEMM ([J, J] @ [..., J, H])."""
    return torch.matmul(m, t)


def mix_index_add(m, t):
    """The same sum over the 30 directed skeleton edges (m must be the skeleton's nbr matrix)."""
    return torch.zeros_like(t).index_add_(-2, _DST, t.index_select(-2, _SRC))


SKELETON_SUMS = {"einsum": _GOLDEN_NODE_MIX, "matmul": mix_matmul, "index_add": mix_index_add}


def cgnf_inputs(b):
    k = 400.0 + torch.rand(b, J, 2, device=dev) * 200.0   # a 200-px person around pixel 500
    obs = (torch.arange(b * J, device=dev) % 7 != 3).to(torch.float32).reshape(b, J)
    return k, obs


def cgnf_sample(model, k, obs, s):
    """One call: context of the keypoints, z = tau * randn [B, S, J, 3], inverse pass -> samples."""
    c = model.context(k, obs)
    eps = torch.randn(k.shape[0], s, J, 3, device=dev)
    x, _logp = model.sample(eps, c, obs, TAU)
    return x


def case_cgnf(small):
    name = "cgnf_sample_200x1000"
    if args.filter and args.filter not in name:
        return
    try:
        b, s = (8, 6) if small else (1000, 200)
        model = build_cgnf()
        k, obs = cgnf_inputs(b)
        reps, warm = reps_warm(30, 3)
        times = {}
        for var, fn in SKELETON_SUMS.items():
            gc.node_mix = fn
            times[var] = gpu_ms(lambda: cgnf_sample(model, k, obs, s), reps=reps, warm=warm)
        gc.node_mix = _GOLDEN_NODE_MIX
        best = min(times, key=times.get)
        row = dict(case=name, ms=round(times[best], 5), skeleton_sum=best,
                   variants_ms={v: round(t, 5) for v, t in times.items()}, poses=b, samples=s, reps=reps)
    except Exception as e:  # one broken case must not hide the other
        row = dict(case=name, error=f"{type(e).__name__}: {e}"[:300])
    finally:
        gc.node_mix = _GOLDEN_NODE_MIX
    emit(row)


# ================================================================================================
# platypose_sample_200x60
# ================================================================================================
MDM_SIZES = dict(D=51, E=512, HEADS=4, FF=1024, LAYERS=8, MAX_LEN=64)
ENERGY_SCALE, SUBSTEPS, TRAIN_STEPS, SECTION = 30.0, 10, 50, "ddim20"


class Mdm(gp.Mdm):
    """golden_platypose.Mdm (same modules, same state dict) with the sinusoidal table cached on the
    device and the timestep MLP run once per call instead of once per hypothesis."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pe", gp.table(gp.gm.MAX_LEN, gp.gm.E).to(torch.float32), persistent=False)

    def forward(self, x, t):
        h = self.input_process(x)
        tok = self.embed_timestep(self.pe[t:t + 1])[None].expand(x.shape[0], 1, -1)
        seq = torch.cat([tok, h], dim=1) + self.pe[: x.shape[1] + 1][None]
        return self.output_process(self.encoder(seq)[:, 1:])


MDM_SIZES_SMALL = dict(D=51, E=64, HEADS=4, FF=128, LAYERS=2, MAX_LEN=64)   # vcortex's small suite


def build_mdm(small=False):
    for k, v in (MDM_SIZES_SMALL if small else MDM_SIZES).items():
        setattr(gp.gm, k, v)
    m = Mdm()
    for p in m.parameters():
        p.requires_grad_(False)
    return m.to(dev).eval()


class Camera:
    """propose's Camera (as vendored in platypose @4ebecb5), float32 on `dev`; the constant parts
    of proj2D (inv(R), -t, [I; 0] @ K, the unpacked intrinsics) computed once."""

    def __init__(self, R, t, fx, fy, cx, cy, skew, k, p):
        self.R = torch.tensor(R, dtype=torch.float32, device=dev)
        self.t = torch.tensor([t], dtype=torch.float32, device=dev)                  # [1, 3], the centre
        self.K = torch.tensor([[fx, skew, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float32, device=dev).T
        self.k = torch.tensor([k], dtype=torch.float32, device=dev)                  # [1, 3] k1 k2 k3
        self.p = torch.tensor([p], dtype=torch.float32, device=dev)                  # [1, 2] p1 p2
        self.R_inv = torch.inverse(self.R)
        self.T_inv = -self.t
        eye0 = torch.cat((torch.eye(3, device=dev), torch.zeros(1, 3, device=dev)), 0)
        self.M = eye0 @ self.K                                                         # camera_matrix()
        self.fx, self.fy, self.cx, self.cy, self.skew = (self.K[0, 0], self.K[1, 1], self.K[2, 0], self.K[2, 1],
                                                         self.K[1, 0])
        self.c = torch.stack([self.cx, self.cy])
        self.k1, self.k2, self.k3 = self.k[0, 0], self.k[0, 1], self.k[0, 2]
        self.p1, self.p2 = self.p[0, 0], self.p[0, 1]

    def golden_dict(self):
        f = lambda v: v.detach().cpu().to(torch.float64)
        return dict(R=f(self.R), t=f(self.t), K=f(self.K), k=f(self.k), p=f(self.p))

    def distort(self, uv):
        c = uv - self.c
        yn = c[..., 1] / self.fy
        xn = (c[..., 0] - self.skew * yn) / self.fx
        r2 = xn ** 2 + yn ** 2
        kappa = 1 + self.k1 * r2 + self.k2 * r2 ** 2 + self.k3 * r2 ** 3
        rx = 2 * self.p1 * xn * yn + self.p2 * (r2 + 2 * xn ** 2)
        ry = 2 * self.p2 * xn * yn + self.p1 * (r2 + 2 * yn ** 2)
        xd, yd = xn * kappa + rx, yn * kappa + ry
        return torch.stack([xd * self.fx + self.cx + self.skew * yd, yd * self.fy + self.cy], -1)

    def proj2D(self, points, distort=True):
        pc = torch.matmul(points + self.T_inv, self.R_inv)
        ext = torch.cat((pc, torch.ones_like(pc[..., :1])), -1)
        uvw = ext @ self.M
        uv = uvw[..., :2] / uvw[..., 2:]
        return self.distort(uv) if distort else uv


def bench_camera():
    return Camera(R=[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], t=[0.0, 0.0, 0.0],
                  fx=2.29, fy=2.29, cx=0.01, cy=-0.02, skew=0.0, k=[-0.2, 0.24, -0.002], p=[-0.001, 0.001])


def multi_view(x0, x2d, root, w, cams):
    """platypose/energies.py::multi_view (mpii=False): x0 [S, F, 51], x2d / w [C, F, 17, 2],
    root [F, 3] -> E [S]."""
    X = x0.reshape(x0.shape[0], x0.shape[1], 17, 3) + root[None, :, None, :]
    proj = torch.stack([cam.proj2D(X) for cam in cams], dim=0)                        # [C, S, F, 17, 2]
    e = torch.stack([(pr - xg[None]) ** 2 * s[None] for pr, xg, s in zip(proj, x2d, w)], 0)
    return e.mean(-1).mean(-1).sum(-1).sum(0)


def refine(x0_model, energy_fn, energy_scale, num_substeps):
    """platypose's guidance in p_mean_variance: SGD on x0 with a fresh ReduceLROnPlateau stepped on
    the mean energy before each SGD step; the gradient is of the energy only."""
    with torch.enable_grad():
        pred = x0_model.detach().clone().requires_grad_()
        opt = torch.optim.SGD([pred], lr=energy_scale)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.1)
        for _ in range(num_substeps):
            opt.zero_grad()
            en = energy_fn(pred)
            sched.step(en.mean().detach())
            pred.grad = torch.autograd.grad(outputs=en, inputs=pred, grad_outputs=torch.ones_like(en))[0]
            opt.step()
    return pred.detach()


def ddim_coeffs():
    """(model timestep, sqrt(1/a_k), sqrt(1/a_k - 1), sqrt(a_prev), sqrt(1 - a_prev)) per step of the
    eta = 0 DDIM loop over space_timesteps(50, "ddim20"), skip_timesteps 0 (golden_platypose.spaced)."""
    sched, tmap = gp.spaced(TRAIN_STEPS, SECTION)
    out = []
    for k in reversed(range(len(tmap))):
        ap_ = float(sched["alphas_cumprod_prev"][k])
        out.append((tmap[k], float(sched["sqrt_recip_alphas_cumprod"][k]), float(sched["sqrt_recipm1_alphas_cumprod"][k]),
                    math.sqrt(ap_), math.sqrt(1 - ap_)))
    return out, tmap


def platypose_inputs(f):
    x2d = torch.rand(1, f, 17, 2, device=dev) * 0.8 - 0.4
    w = torch.rand(1, f, 17, 2, device=dev) * 1.8 + 0.2
    fr = torch.arange(f, dtype=torch.float32, device=dev)
    root = torch.stack([0.01 * fr, torch.zeros_like(fr), torch.full_like(fr, 5.0)], -1)
    return x2d, w, root


def platypose_sample(model, coeffs, s, f, energy_fn):
    """One call: the whole guided eta = 0 DDIM sampling; returns x_0 [S, F, 51]."""
    x = torch.randn(s, f, 51, device=dev)
    for t, sr, srm1, sq_ap, sq_1map in coeffs:
        with torch.no_grad():
            x0 = model(x, t)
        x0 = refine(x0, energy_fn, ENERGY_SCALE, SUBSTEPS)
        eps = (sr * x - x0) / srm1
        x = x0 * sq_ap + sq_1map * eps
    return x


def case_platypose(small):
    name = "platypose_sample_200x60"
    if args.filter and args.filter not in name:
        return
    try:
        s, f = (200 // 32, 60 // 6) if small else (200, 60)
        model = build_mdm(small)
        cams = [bench_camera()]
        x2d, w, root = platypose_inputs(f)
        coeffs, _ = ddim_coeffs()
        efn = lambda x: multi_view(x, x2d, root, w, cams)
        reps, warm = reps_warm(20, 5)
        ms = gpu_ms(lambda: platypose_sample(model, coeffs, s, f, efn), reps=reps, warm=warm)
        row = dict(case=name, ms=round(ms, 5), samples=s, frames=f, steps=len(coeffs), substeps=SUBSTEPS, reps=reps)
    except Exception as e:
        row = dict(case=name, error=f"{type(e).__name__}: {e}"[:300])
    emit(row)


# ================================================================================================
# --check
# ================================================================================================
def check():
    t0 = time.perf_counter()
    torch.manual_seed(1)
    # ---- cGNF: the three skeleton sums agree, samples are finite and map back to z
    b, s = 3, 4
    model = build_cgnf().double()
    k, obs = cgnf_inputs(b)
    k, obs = k.double(), obs.double()
    with torch.no_grad():
        c = model.context(k, obs)
        eps = torch.randn(b, s, J, 3, dtype=torch.float64)
        outs = {}
        for var, fn in SKELETON_SUMS.items():
            gc.node_mix = fn
            outs[var] = model.sample(eps, c, obs, TAU)
        gc.node_mix = _GOLDEN_NODE_MIX
        x, lp = outs["einsum"]
        for var, (xv, lpv) in outs.items():
            assert (xv - x).abs().max() < 1e-9 and (lpv - lp).abs().max() < 1e-9, var
        z_back, lp_back = model.log_prob(x, c, obs)
        assert (z_back - TAU * eps).abs().max() < 1e-8 * max(1.0, float(x.abs().max()))
        assert (lp_back - lp).abs().max() < 1e-6
        model = model.float()
        xf = cgnf_sample(model, k.float(), obs.float(), s)
        gc.node_mix = mix_index_add
        xf2 = cgnf_sample(model, k.float(), obs.float(), s)
        gc.node_mix = _GOLDEN_NODE_MIX
    assert xf.shape == (b, s, J, 3) and torch.isfinite(xf).all() and torch.isfinite(xf2).all()
    print(f"check cgnf: B {b} S {s} L {gc.L} H {gc.H}: skeleton sums agree, inverse/forward round trip ok, "
          f"f32 samples finite (|x| max {float(xf.abs().max()):.3g})", flush=True)

    # ---- Platypose pieces against the golden's own (float64) code
    assert gp.spaced(50, "ddim20")[1] == [0, 2, 5, 7, 10, 12, 15, 18, 20, 23, 25, 28, 30, 33, 36, 38, 41, 43, 46, 49]
    s, f = 2, 4
    cam = bench_camera()
    x2d, w, root = platypose_inputs(f)
    x0 = torch.randn(s, f, 51) * 0.3
    X = x0.reshape(s, f, 17, 3) + root[None, :, None, :]
    pr_gold = gp.proj2d(X.double(), cam.golden_dict())
    assert (cam.proj2D(X).double() - pr_gold).abs().max() < 1e-5
    # a rotated, off-centre camera with skew too, so R_inv / t / skew are exercised
    ang = 0.3
    cam2 = Camera(R=[[math.cos(ang), -math.sin(ang), 0.0], [math.sin(ang), math.cos(ang), 0.0], [0.0, 0.0, 1.0]],
                  t=[0.2, -0.1, -0.5], fx=2.29, fy=2.28, cx=0.01, cy=-0.02, skew=0.004,
                  k=[-0.2, 0.24, -0.002], p=[-0.001, 0.001])
    assert (cam2.proj2D(X).double() - gp.proj2d(X.double(), cam2.golden_dict())).abs().max() < 1e-5
    en = multi_view(x0, x2d, root, w, [cam])
    en_gold = gp.multi_view(x0.double(), x2d.double(), root.double(), w.double(), [cam.golden_dict()])[0]
    assert ((en.double() - en_gold).abs() / en_gold.abs()).max() < 1e-5
    efn = lambda x: multi_view(x, x2d, root, w, [cam])
    r_lean = refine(x0, efn, ENERGY_SCALE, SUBSTEPS)
    r_gold, _, lrs = gp.refine(x0, efn, ENERGY_SCALE, SUBSTEPS)
    assert torch.equal(r_lean, r_gold), float((r_lean - r_gold).abs().max())
    x_far = x0 + 0.5 * torch.randn_like(x0)     # a larger scale, so that the plateau rule cuts the lr
    r_lean = refine(x_far, efn, 300.0, 6)
    r_gold, _, lrs_cut = gp.refine(x_far, efn, 300.0, 6)
    assert torch.equal(r_lean, r_gold) and float(lrs_cut.min()) < 300.0, lrs_cut.tolist()

    model = build_mdm()
    gold = gp.Mdm().eval()
    gold.load_state_dict(model.state_dict())
    xt = torch.randn(s, f, 51)
    with torch.no_grad():
        for t in (0, 49):
            assert (model(xt, t) - gold(xt, t)).abs().max() < 1e-4
    coeffs, _ = ddim_coeffs()
    with torch.no_grad():
        out = platypose_sample(model, coeffs, s, f, efn)
    assert out.shape == (s, f, 51) and torch.isfinite(out).all()
    print(f"check platypose: S {s} F {f}, d {gp.gm.E} x {gp.gm.LAYERS} layers, {len(coeffs)} steps x {SUBSTEPS} substeps: "
          f"proj2D / energy match the golden's f64 code, refinement = golden refine (lrs {lrs.tolist()}; at scale 300: {lrs_cut.tolist()}), "
          f"denoiser = golden Mdm, sample finite (|x| max {float(out.abs().max()):.3g})", flush=True)
    print(f"check passed in {time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    if args.check:
        check()
    else:
        case_cgnf(args.small)
        case_platypose(args.small)
        name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
        emit(dict(case="device", name=name, torch=torch.__version__, small=args.small, script="peers_pose.py"))
