"""PyTorch on the same card: the peer timings for the standard suite of docs/bench.md.

Run it on the same GPU, right after `vcortex bench --json`, then compare the two files with
scripts/bench_compare.py; only ratios measured in one run mean anything on a shared machine.

    python3 torch_peers.py [--compile] [--small] [--filter SUBSTR] > torch.jsonl

Prints one JSON object per line: case, ms (median), gflops, gbs, and a final "device" line; a row
may carry a "note" (how the peer differs from the vcortex case, or that it repeats another row's
time). --compile adds torch.compile variants (a minute or more of compiling); --small shrinks the
shapes as vcortex's small suite does (batches / 32, the models' own small sizes) and times fewer
repetitions, so the script can be tried on a CPU. Plain PyTorch only: no extra packages are needed.

vcortex's kernel variants (_direct, _gemm, _single, _wide, _vec4, _separable, _unsorted, _forward)
run the same computation as their base case on another kernel; PyTorch has one call for both, so
the base case's row is repeated under the variant's name (timed once, "note": "same PyTorch call
as ...")."""
import argparse, json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--compile", action="store_true")
ap.add_argument("--small", action="store_true")
ap.add_argument("--filter", default="")
args = ap.parse_args()
torch.manual_seed(0)
dev = "cuda" if torch.cuda.is_available() else "cpu"
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.benchmark = True
B = (lambda n: max(1, n // 32)) if args.small else (lambda n: n)   # batch sizes shrink with --small


def sync():
    if dev == "cuda":
        torch.cuda.synchronize()


def few(reps, warm):
    """--small is a smoke test on a CPU: a few repetitions are enough there."""
    return (min(reps, 7), min(warm, 2)) if args.small else (reps, warm)


def gpu_ms(fn, reps=50, warm=10):
    """Median device time of fn() in ms (CUDA events; wall clock on a CPU)."""
    reps, warm = few(reps, warm)
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


def wall_ms(fn, reps=200, warm=20):
    """Median wall-clock time of fn() in ms, fn including its own upload and readback."""
    reps, warm = few(reps, warm)
    with torch.no_grad():
        for _ in range(warm):
            fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def wanted(case):
    return not args.filter or args.filter in case


def report(case, fn, flops=0.0, bytes_=0.0, timer=gpu_ms, also=(), **kw):
    """Times fn and prints case's row; `also` names vcortex variants of the same computation,
    printed with the same time (the same PyTorch call: timed once)."""
    names = [n for n in (case, *also) if wanted(n)]
    if not names:
        return
    try:
        ms = timer(fn)
        row = dict(case=case, ms=round(ms, 5), **kw)
        if flops: row["gflops"] = round(flops / ms / 1e6, 1)
        if bytes_: row["gbs"] = round(bytes_ / ms / 1e6, 1)
    except Exception as e:  # one broken case must not hide the others
        row = dict(case=case, error=f"{type(e).__name__}: {e}"[:300])
    for n in names:
        r = dict(row, case=n)
        if n != case:
            r["note"] = f"same PyTorch call as {case}"
        print(json.dumps(r), flush=True)


def compiled(fn):
    return torch.compile(fn) if args.compile else None


def rnd(*s):
    return torch.randn(*s, device=dev)


F32 = 4

# --- the ceiling: a plain device copy -----------------------------------------------------------
n = (1 << 26) // (32 if args.small else 1)
src = rnd(n); dst = torch.empty_like(src)
report("copy_256mib", lambda: dst.copy_(src), 0, 2 * F32 * n)

# --- convolutions and matmul --------------------------------------------------------------------
def conv_case(name, N, C, H, W, O, k, pad, groups=1, also=()):
    if not any(wanted(n) for n in (name, *also)):
        return
    N = B(N)
    x = rnd(N, C, H, W); w = rnd(O, C // groups, k, k); b = rnd(O)
    y = F.conv2d(x, w, b, padding=pad, groups=groups)
    flops = 2 * y.numel() * (C // groups) * k * k
    report(name, lambda: F.conv2d(x, w, b, padding=pad, groups=groups), flops, F32 * (x.numel() + w.numel() + y.numel()),
           also=also)

conv_case("conv_sensorium_in_9x9", 128, 1, 36, 64, 64, 9, 0, also=("conv_sensorium_in_9x9_direct", "conv_sensorium_in_9x9_gemm"))
conv_case("conv_dw7x7_64", 128, 64, 28, 56, 64, 7, 3, groups=64, also=("conv_dw7x7_64_direct",))
conv_case("conv_1x1_64", 128, 64, 28, 56, 64, 1, 0, also=("conv_1x1_64_single",))
conv_case("conv3x3_64", 128, 64, 28, 56, 64, 3, 1, also=("conv3x3_64_single",))
conv_case("conv3x3_vgg128", 32, 128, 56, 56, 128, 3, 1, also=("conv3x3_vgg128_single", "conv3x3_vgg128_wide"))
for name_m in (1024, 4096):
    m = name_m // (4 if args.small else 1)   # the case keeps its standard name; the device line says small
    a = rnd(m, m); b2 = rnd(m, m)
    report(f"matmul_{name_m}_fp32", lambda a=a, b2=b2: a @ b2, 2 * m ** 3, 3 * F32 * m * m,
           also=("matmul_4096_fp32_vec4",) if name_m == 4096 else ())

# --- elementwise and normalization on the Sensorium core's feature map -------------------------
x = rnd(B(128), 64, 28, 56)
rm, rv, g, bb = rnd(64), torch.rand(64, device=dev) + 0.5, rnd(64), rnd(64)
report("elu", lambda: F.elu(x), 0, 2 * F32 * x.numel())
xa = torch.rand_like(x) * 6 - 3   # the vcortex case's input: uniform in [-3, 3]
report("adaptive_elu", lambda: F.elu(xa - 1) + 1, 0, 2 * F32 * x.numel())
report("batchnorm_eval", lambda: F.batch_norm(x, rm, rv, g, bb, False), 0, 2 * F32 * x.numel())
t = rnd(B(200) * 61, 512); lw, lb = rnd(512), rnd(512)
report("layernorm_12200x512", lambda: F.layer_norm(t, (512,), lw, lb), 0, 2 * F32 * t.numel())


def divnorm(x, sw=5, pw=5, sigma=1.0):
    """models.md section 3, reference-code form (suppression sum divided by the summation window area)."""
    m = x.mean(1, keepdim=True)
    mu = F.avg_pool2d(m, sw, 1, sw // 2, count_include_pad=True)
    v = x - mu
    s2 = F.avg_pool2d((v * v).mean(1, keepdim=True), pw, 1, pw // 2, count_include_pad=True) * (pw * pw) / (sw * sw)
    return v / torch.sqrt(s2 + sigma * sigma)

report("divnorm_5x5", lambda: divnorm(x), 0, 2 * F32 * x.numel(), also=("divnorm_5x5_separable",))
c = compiled(divnorm)
if c: report("divnorm_5x5_compiled", lambda: c(x), 0, 2 * F32 * x.numel())

img = torch.rand(B(128), 3, 224, 224, device=dev)


def neurn(x, k=3, eps=1e-8):
    """models.md section 4: local std over k x k (zero padding, divisor k^2) over its per-channel max."""
    mu = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=True)
    ex2 = F.avg_pool2d(x * x, k, 1, k // 2, count_include_pad=True)
    sd = torch.sqrt(torch.clamp(ex2 - mu * mu, min=0))
    return sd / (sd.amax(dim=(2, 3), keepdim=True) + eps)

report("neurn_k3", lambda: neurn(img), 0, 2 * F32 * img.numel(), also=("neurn_k3_forward",))
c = compiled(neurn)
if c: report("neurn_k3_compiled", lambda: c(img), 0, 2 * F32 * img.numel())

# --- the Sensorium readout and the whole baseline model -----------------------------------------
M = 8000
mu = torch.rand(M, 2, device=dev) * 2 - 1; feat = rnd(64, M); rbias = rnd(M)


def readout(f):
    s = F.grid_sample(f, mu.view(1, M, 1, 2).expand(f.shape[0], M, 1, 2), align_corners=True)  # [N,C,M,1]
    return (s.squeeze(-1) * feat).sum(1) + rbias

report("gaussian_readout_8000", lambda: readout(x), 0, F32 * (x.shape[0] * M * 64 * 4 + x.shape[0] * M),
       also=("gaussian_readout_8000_unsorted",))


class Sensorium(nn.Module):
    """The Sensorium 2022 baseline at inference: 9x9 input conv, three depth-separable 7x7 layers,
    batch norm and ELU after each, 64 channels, a full-Gaussian readout of 8000 neurons, ELU+1."""

    def __init__(self):
        super().__init__()
        def bn():
            b = nn.BatchNorm2d(64); b.running_mean.normal_(); b.running_var.uniform_(0.5, 2); return b
        layers = [nn.Sequential(nn.Conv2d(1, 64, 9, bias=False), bn(), nn.ELU())]
        for _ in range(3):
            layers.append(nn.Sequential(nn.Conv2d(64, 64, 1), nn.Conv2d(64, 64, 7, padding=3, groups=64),
                                        nn.Conv2d(64, 64, 1), bn(), nn.ELU()))
        self.core = nn.Sequential(*layers)

    def forward(self, images):
        return F.elu(readout(self.core(images))) + 1


model = Sensorium().to(dev).eval()
for name_b in (128, 1):
    nb = B(name_b)
    imgs = rnd(nb, 1, 36, 64)
    report(f"sensorium_forward_b{name_b}", lambda imgs=imgs: model(imgs))
    host = torch.randn(nb, 1, 36, 64).pin_memory() if dev == "cuda" else torch.randn(nb, 1, 36, 64)
    report(f"sensorium_latency_b{name_b}", lambda host=host: model(host.to(dev, non_blocking=True)).cpu(), timer=wall_ms)
    c = torch.compile(model, mode="reduce-overhead") if args.compile else None
    if c: report(f"sensorium_forward_b{name_b}_compiled", lambda imgs=imgs: c(imgs))



class RotEq(nn.Module):
    """rot_eq_forward_b128's peer: a rotation-equivariant core at inference as vcortex runs it, its
    Hermite kernels built once (neuralpredictors' HermiteConv2D rebuilds them every forward), so
    four plain convs: 1 -> R*F 9x9 unpadded, then three R*F -> R*F 7x7 padded 3, no bias, each with
    the rotation-shared batch norm as a per-channel scale/shift and ELU; a 1000-neuron Gaussian
    readout of the R*F channels, ELU+1. 16 features x 8 rotations (4 x 8 and one image with
    --small, as vcortex's small suite)."""

    def __init__(self, features):
        super().__init__()
        c = 8 * features
        self.convs = nn.ModuleList([nn.Conv2d(1, c, 9, bias=False)] +
                                   [nn.Conv2d(c, c, 7, padding=3, bias=False) for _ in range(3)])
        self.scale = [torch.rand(features, device=dev).repeat(8) + 0.5 for _ in range(4)]
        self.shift = [torch.randn(features, device=dev).repeat(8) * 0.2 for _ in range(4)]
        self.mu = torch.rand(1000, 2, device=dev) * 2 - 1
        self.feat, self.bias = rnd(c, 1000), rnd(1000)

    def forward(self, h):
        for conv, a, b in zip(self.convs, self.scale, self.shift):
            h = F.elu(conv(h) * a[:, None, None] + b[:, None, None])
        s = F.grid_sample(h, self.mu.view(1, -1, 1, 2).expand(h.shape[0], -1, 1, 2), align_corners=True)
        return F.elu((s.squeeze(-1) * self.feat).sum(1) + self.bias) + 1


rot_eq = RotEq(4 if args.small else 16).to(dev).eval()
rot_imgs = rnd(1 if args.small else 128, 1, 36, 64)
report("rot_eq_forward_b128", lambda: rot_eq(rot_imgs))

# --- normalizing-flow coupling: the rational-quadratic spline (nflows' algorithm, linear tails) --


def rq_spline(x, uw, uh, ud, B_=3.0, min_w=1e-3, min_h=1e-3, min_d=1e-3):
    """Forward of nflows' unconstrained_rational_quadratic_spline (tails='linear'), op for op."""
    inside = (x >= -B_) & (x <= B_)
    out = x.clone(); lad = torch.zeros_like(x)
    const = math.log(math.exp(1 - min_d) - 1)
    ud = F.pad(ud, (1, 1), value=const)
    xi, uw, uh, ud = x[inside], uw[inside], uh[inside], ud[inside]
    K = uw.shape[-1]
    w = min_w + (1 - min_w * K) * F.softmax(uw, -1)
    cw = F.pad(torch.cumsum(w, -1), (1, 0)) * 2 * B_ - B_
    cw[..., 0], cw[..., -1] = -B_, B_
    w = cw[..., 1:] - cw[..., :-1]
    d = min_d + F.softplus(ud)
    h = min_h + (1 - min_h * K) * F.softmax(uh, -1)
    ch = F.pad(torch.cumsum(h, -1), (1, 0)) * 2 * B_ - B_
    ch[..., 0], ch[..., -1] = -B_, B_
    h = ch[..., 1:] - ch[..., :-1]
    edges = cw.clone(); edges[..., -1] += 1e-6
    k = (torch.sum(xi[..., None] >= edges, -1) - 1)[..., None]
    X, Wk = cw.gather(-1, k)[..., 0], w.gather(-1, k)[..., 0]
    Y, Hk = ch.gather(-1, k)[..., 0], h.gather(-1, k)[..., 0]
    s = Hk / Wk
    d0, d1 = d.gather(-1, k)[..., 0], d[..., 1:].gather(-1, k)[..., 0]
    th = (xi - X) / Wk; t1 = th * (1 - th)
    num = Hk * (s * th ** 2 + d0 * t1)
    den = s + (d0 + d1 - 2 * s) * t1
    out[inside] = Y + num / den
    dnum = s ** 2 * (d1 * th ** 2 + 2 * s * t1 + d0 * (1 - th) ** 2)
    lad[inside] = torch.log(dnum) - 2 * torch.log(den)
    return out, lad

xs = rnd(B(65536), 3); uw, uh, ud = rnd(B(65536), 3, 10), rnd(B(65536), 3, 10), rnd(B(65536), 3, 9)
report("rq_spline_65536x3_k10", lambda: rq_spline(xs, uw, uh, ud), 0, F32 * (xs.numel() * 3 + uw.numel() * 3))
c = compiled(rq_spline)
if c: report("rq_spline_65536x3_k10_compiled", lambda: c(xs, uw, uh, ud), 0, F32 * (xs.numel() * 3 + uw.numel() * 3))

# --- diffusion steps on the Platypose sample tensor [200 hypotheses, 60 frames, 17 joints x 3] ----
s = rnd(B(200), 60, 51); eps = torch.randn_like(s); nz = torch.randn_like(s)
ab_t, ab_p = 0.5, 0.6


def ddim(s=s, eps=eps):
    x0 = (s - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
    sig = 0.5 * math.sqrt((1 - ab_p) / (1 - ab_t) * (1 - ab_t / ab_p))
    return math.sqrt(ab_p) * x0 + math.sqrt(1 - ab_p - sig * sig) * eps + sig * nz


def ddpm(s=s, eps=eps):
    beta = 1 - ab_t / ab_p
    x0 = ((s - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)).clamp(-1, 1)
    mean = (math.sqrt(ab_p) * beta / (1 - ab_t)) * x0 + (math.sqrt(1 - beta) * (1 - ab_p) / (1 - ab_t)) * s
    return mean + math.sqrt((1 - ab_p) / (1 - ab_t) * beta) * nz

report("ddim_step_200x60x51", ddim, 0, 4 * F32 * s.numel())
report("ddpm_step_200x60x51", ddpm, 0, 4 * F32 * s.numel())

# --- pooling on VGG's first feature map [64, 64, 64, 64] -----------------------------------------
if wanted("max_pool2x2_vgg64") or wanted("avg_pool3x3_s2_64"):
    xp = rnd(B(64), 64, 64, 64)
    yp = F.max_pool2d(xp, 2)
    report("max_pool2x2_vgg64", lambda: F.max_pool2d(xp, 2), 0, F32 * (xp.numel() + yp.numel()))
    ya = F.avg_pool2d(xp, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    report("avg_pool3x3_s2_64", lambda: F.avg_pool2d(xp, 3, 2, 1, ceil_mode=True, count_include_pad=False), 0,
           F32 * (xp.numel() + ya.numel()))
    del xp, yp, ya

# --- the first layer of a factorized 3-D core ---------------------------------------------------
if wanted("conv3d_factorized_11x11_t11"):
    # [2, 1, 20, 36, 64] (batch 1 and 14 frames with --small), (1, 11, 11) conv 1 -> 32 with bias,
    # (11, 1, 1) conv 32 -> 32 with bias, folded batch norm as a per-channel scale/shift, ELU.
    t3 = 14 if args.small else 20
    v3 = rnd(B(2), 1, t3, 36, 64)
    sw3, sb3 = rnd(32, 1, 1, 11, 11) / 11, rnd(32)
    tw3, tb3 = rnd(32, 32, 11, 1, 1) / math.sqrt(32 * 11), rnd(32)
    sc3, sh3 = torch.rand(32, device=dev) + 0.5, rnd(32)

    def fact3d():
        mid = F.conv3d(v3, sw3, sb3)
        return F.elu(F.conv3d(mid, tw3, tb3) * sc3.view(-1, 1, 1, 1) + sh3.view(-1, 1, 1, 1))

    n3, mid3, y3 = v3.shape[0], v3.shape[0] * 32 * t3 * 26 * 54, v3.shape[0] * 32 * (t3 - 10) * 26 * 54
    report("conv3d_factorized_11x11_t11", fact3d, 2 * mid3 * 121 + 2 * y3 * 32 * 11, F32 * (v3.numel() + 2 * mid3 + y3))

# --- the video-latent log-likelihood (fused in vcortex) -----------------------------------------


def q_map(v):
    return torch.sigmoid(v) * 0.99999 + 1e-6


def th_map(v):
    return F.elu(v) + 1 + 1e-6


def zig_loglik(y, lq, lt, z, wq, wt, k, loc):
    """Latent-shifted ZIG log-likelihood in bits, upstream's get_slab_logl and eval.py's
    logsumexp over the samples: y, lq, lt [BT, N], z [S, BT, L], w [L, N], k and loc [N]."""
    q = q_map(lq + torch.einsum("sbl,ln->sbn", z, wq))
    th = th_map(lt + torch.einsum("sbl,ln->sbn", z, wt))
    nz = (y >= loc).float()
    zm = (y <= loc).float()
    ll = (torch.log((1 - q) * zm + nz) + torch.log(q * nz + zm) + (k - 1) * torch.log(y * nz - loc * nz + zm)
          - (y * nz - loc * nz) / th - k * torch.log(th) - torch.lgamma(k))
    return (torch.logsumexp(ll, 0) - math.log(z.shape[0])) / math.log(2), q, th


if wanted("zig_loglik_s100_n8000"):
    zn, zbt, zs, zl = 8000, B(64), 100, 12
    zy = (torch.rand(zbt, zn, device=dev) * 3 - 1).clamp(min=0)
    zlg = rnd(2, zbt, zn); zz = rnd(zs, zbt, zl)
    zwq, zwt = rnd(zl, zn) * 0.3, rnd(zl, zn) * 0.3
    zk = torch.rand(zn, device=dev) * 2.7 + 0.3; zloc = torch.full((zn,), 0.005, device=dev)
    report("zig_loglik_s100_n8000", lambda: zig_loglik(zy, zlg[0], zlg[1], zz, zwq, zwt, zk, zloc)[0],
           zs * zbt * zn * (4 * zl + 16), F32 * (zs * zbt * (zl + 2 * zn) + 4 * zbt * zn + 2 * zl * zn))
    del zy, zlg, zz

# --- the Sensorium 2023 video twin and the latent video model -----------------------------------


class Factorized3dCore(nn.Module):
    """neuralpredictors' Factorized3dCore at inference, padding=False: per layer Conv3d (1, k, k)
    and Conv3d (kt, 1, 1), both with a bias, eval BatchNorm3d (running statistics), ELU."""

    def __init__(self, cin, hidden, ks_in=11, kt_in=11, ks_h=5, kt_h=5):
        super().__init__()
        layers = []
        for i, c in enumerate(hidden):
            ks, kt = (ks_in, kt_in) if i == 0 else (ks_h, kt_h)
            bn = nn.BatchNorm3d(c)
            bn.running_mean.uniform_(-0.2, 0.2); bn.running_var.uniform_(0.5, 1.5)
            layers.append(nn.Sequential(nn.Conv3d(cin, c, (1, ks, ks)), nn.Conv3d(c, c, (kt, 1, 1)), bn, nn.ELU()))
            cin = c
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


class VideoTwin(nn.Module):
    """The Sensorium 2023 video twin as ecker-lab/sensorium_2023's VideoFiringRateEncoder runs it:
    the 3D_factorised core on [B, 3, T, 36, 64], frames flattened to [B*T', C, H', W'], one
    FullGaussian2d readout per mouse (eval: clamped mu plus the MLPShifter's shift of the pupil
    centre, grid_sample with align_corners=True, features, bias), ELU+1; [B, T', N]."""

    def __init__(self, hidden, mice=5, neurons=8000):
        super().__init__()
        self.core = Factorized3dCore(3, hidden)
        c = hidden[-1]
        self.mu = [torch.rand(neurons, 2, device=dev) * 2 - 1 for _ in range(mice)]
        self.feat = [rnd(c, neurons) * 0.3 for _ in range(mice)]
        self.bias = [rnd(neurons) * 0.5 for _ in range(mice)]
        self.shifter = nn.ModuleList(nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(),
                                                   nn.Linear(5, 2), nn.Tanh()) for _ in range(mice))

    def forward(self, x, pupil, mouse=0):
        x = self.core(x).transpose(1, 2)
        b, t = x.shape[:2]
        x = x.reshape((-1,) + x.shape[2:])
        shift = self.shifter[mouse](pupil[:, :, -t:].transpose(1, 2).reshape(-1, 2))
        mu = self.mu[mouse]
        grid = mu.clamp(-1, 1).view(1, -1, 1, 2).expand(x.shape[0], -1, -1, -1) + shift[:, None, None, :]
        y = F.grid_sample(x, grid, align_corners=True).squeeze(-1)
        y = (y * self.feat[mouse]).sum(1) + self.bias[mouse]
        return (F.elu(y) + 1).reshape(b, t, -1)


def pinned(*shape, low=-1.0):
    """A host tensor uniform in [low, 1] (pinned on a GPU, as a caller streaming frames would)."""
    h = torch.rand(*shape) * (1 - low) + low
    return h.pin_memory() if dev == "cuda" else h


if wanted("video_forward_b8x80") or wanted("video_stream_frame"):
    video = VideoTwin([32, 64, 128]).to(dev).eval()
    vb, vt = B(8), (20 if args.small else 80)
    clip, pupil = rnd(vb, 3, vt, 36, 64), rnd(vb, 2, vt)
    # vcortex times one mouse's clip forward (output [8, 8000, 62]); PyTorch gives it as [B, T', N].
    report("video_forward_b8x80", lambda: video(clip, pupil, 0))
    del clip, pupil
    # A PyTorch model has no stream: for one new output frame it reruns the receptive field (19
    # frames). The 18 earlier frames stay on the device; the new frame and pupil position come
    # from the host, the rates [B, 8000, 1] go back to it.
    win, pwin = rnd(vb, 3, 18, 36, 64), rnd(vb, 2, 18)
    new, pnew = pinned(vb, 3, 1, 36, 64), pinned(vb, 2, 1)

    def video_frame():
        x = torch.cat([win, new.to(dev, non_blocking=True)], 2)
        p = torch.cat([pwin, pnew.to(dev, non_blocking=True)], 2)
        return video(x, p, 0).transpose(1, 2).cpu()

    report("video_stream_frame", video_frame, timer=wall_ms,
           note="no stream in PyTorch: the 19-frame receptive field rerun for each new frame "
                "(18 frames kept on the device, the new one uploaded), host to host")
    del video, win, pwin


class Gru2dTwin(nn.Module):
    """The demo's 2-D + GRU baseline (make_video_model(core_type="2D", use_gru=True)) run as a
    PyTorch rig would stream it, one frame at a time with the ConvGRU state kept: neuralpredictors'
    Stacked2dCore at inference (Conv2d 9x9 3 -> 64 unpadded, then 3 x Conv2d 7x7 64 -> 64 padded,
    each with eval BatchNorm2d, ELU after all but the last, final_nonlinearity=False), one
    ConvGRUCell step (GRU_Module: six biased 7x7 convs, padded), mouse0's FullGaussian2d readout
    with its MLPShifter, ELU+1."""

    def __init__(self, neurons=8000, c=64):
        super().__init__()
        def bn():
            m = nn.BatchNorm2d(c)
            m.running_mean.uniform_(-0.2, 0.2); m.running_var.uniform_(0.5, 1.5)
            return m
        layers = [nn.Sequential(nn.Conv2d(3, c, 9), bn(), nn.ELU())]
        for i in range(3):
            layers.append(nn.Sequential(nn.Conv2d(c, c, 7, padding=3), bn(), *([nn.ELU()] if i < 2 else [])))
        self.core = nn.Sequential(*layers)
        self.gates = nn.ModuleDict({g: nn.Conv2d(c, c, 7, padding=3) for g in
                                    ("reset_in", "reset_h", "update_in", "update_h", "out_in", "out_h")})
        self.mu = torch.rand(neurons, 2, device=dev) * 2 - 1
        self.feat = rnd(c, neurons) * 0.3
        self.bias = rnd(neurons) * 0.5
        self.shifter = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 2), nn.Tanh())

    def step(self, frame, pupil, h):
        x = self.core(frame)
        g = self.gates
        z = torch.sigmoid(g["update_in"](x) + g["update_h"](h))
        r = torch.sigmoid(g["reset_in"](x) + g["reset_h"](h))
        h = h * (1 - z) + torch.tanh(g["out_in"](x) + g["out_h"](h * r)) * z
        grid = self.mu.clamp(-1, 1).view(1, -1, 1, 2).expand(h.shape[0], -1, -1, -1) + self.shifter(pupil)[:, None, None, :]
        y = F.grid_sample(h, grid, align_corners=True).squeeze(-1)
        return F.elu((y * self.feat).sum(1) + self.bias) + 1, h


if wanted("video_2d_stream_frame"):
    twin2d = Gru2dTwin().to(dev).eval()
    gb = B(8)
    h0 = rnd(gb, 64, 28, 56)
    frame2d, p2d = pinned(gb, 3, 36, 64), pinned(gb, 2)

    def gru2d_frame():
        # A frame and its pupil position from the host, one core pass and one GRU step on the
        # state kept on the device, the rates [B, 8000] back (the state is not advanced, as the
        # vcortex case restores its own).
        y, _ = twin2d.step(frame2d.to(dev, non_blocking=True), p2d.to(dev, non_blocking=True), h0)
        return y.cpu()

    report("video_2d_stream_frame", gru2d_frame, timer=wall_ms,
           note="one 2-D core pass and one ConvGRU step with the hidden state kept on the device, host to host")
    del twin2d, h0


class LatentPrior(nn.Module):
    """The latent video model (FinnSchmidt01's latent_space_model, scripts/golden_latent.py's port)
    in prior mode: Factorized3dCore on one-channel video, the ZIG readout (grid_sample at the
    clamped mu, a (11, 5) Conv2d 1 -> 2 over (time, channel) per neuron, padding (5, 2), the
    features [C, N, 2], no bias as the paper's model), then S prior samples z ~ N(0, I) of 12 dims
    shift the q and theta logits by z W_q, z W_theta; the mean of the ZIG with q and theta averaged
    over the samples, and the log-likelihood of the responses in bits. k fitted, loc 0.005. The
    encoder is not used in prior mode."""

    def __init__(self, hidden, neurons, latent=12, kernel=(11, 5)):
        super().__init__()
        self.core = Factorized3dCore(1, hidden)
        c = hidden[-1]
        self.mu = torch.rand(neurons, 2, device=dev) * 1.8 - 0.9
        self.conv = nn.Conv2d(1, 2, kernel, padding=(kernel[0] // 2, kernel[1] // 2))
        self.feat = rnd(1, c, neurons, 2) * 0.3
        self.wq, self.wt = rnd(latent, neurons) * 0.3, rnd(latent, neurons) * 0.3
        self.k = torch.rand(neurons, device=dev) * 2 + 0.4
        self.loc = torch.full((neurons,), 0.005, device=dev)
        self.latent = latent

    def logits(self, video):
        """[2, B*T', N] (q, theta) and T'."""
        x = self.core(video).transpose(1, 2)
        b, t = x.shape[:2]
        x = x.reshape((-1,) + x.shape[2:])
        n = self.mu.shape[0]
        y = F.grid_sample(x, self.mu.clamp(-1, 1).view(1, n, 1, 2).expand(x.shape[0], -1, -1, -1), align_corners=True)
        c = y.shape[1]
        y = y.reshape(b, t, c, n).permute(0, 3, 1, 2).reshape(b * n, 1, t, c)
        y = self.conv(y).reshape(b, n, 2, t, c).permute(0, 3, 4, 1, 2).reshape(b * t, c, n, 2)
        return (y * self.feat).sum(1).permute(2, 0, 1), t

    def heads(self, lg, y, samples):
        """The prior mean and log-likelihood [BT, N] of logits [2, BT, N] and targets y [BT, N]."""
        eps = torch.randn(samples, lg.shape[1], self.latent, device=lg.device)
        ll, q, th = zig_loglik(y, lg[0], lg[1], eps, self.wq, self.wt, self.k, self.loc)
        q, th = q.mean(0), th.mean(0)
        return (1 - q) * 0.5 * self.loc + q * (self.k * th + self.loc), ll


if wanted("latent_prior_s100") or wanted("latent_stream_frame"):
    # vcortex's small suite: 1000 neurons, core [4, 8, 8], 4 output frames; 100 samples either way.
    ln_, lhid = (1000, [4, 8, 8]) if args.small else (8000, [32, 64, 128])
    latent = LatentPrior(lhid, ln_).to(dev).eval()
    lt_ = (4 if args.small else 60) + 10 + 2 * 4
    lvideo, lresp = pinned(1, 1, lt_, 36, 64), pinned(1, ln_, lt_, low=0.0)

    def latent_clip():
        v, r = lvideo.to(dev, non_blocking=True), lresp.to(dev, non_blocking=True)
        lg, t = latent.logits(v)
        y = r[:, :, -t:].transpose(1, 2).reshape(-1, ln_)
        mean, ll = latent.heads(lg, y, 100)
        return torch.stack([mean, ll]).cpu()

    report("latent_prior_s100", latent_clip, timer=wall_ms)
    # No stream either: output frame 1 of the 25-frame clip needs all of it (19 frames of receptive
    # field, 5 more for the readout's temporal kernel); 24 frames and their responses stay on the
    # device, the new frame and its responses come from the host, only frame 1's heads are computed.
    swin, srwin = rnd(1, 1, 24, 36, 64), torch.rand(1, ln_, 24, device=dev)
    snew, srnew = pinned(1, 1, 1, 36, 64), pinned(1, ln_, 1, low=0.0)

    def latent_frame():
        v = torch.cat([swin, snew.to(dev, non_blocking=True)], 2)
        r = torch.cat([srwin, srnew.to(dev, non_blocking=True)], 2)
        lg, t = latent.logits(v)
        mean, ll = latent.heads(lg[:, 1:2], r[:, :, 25 - t + 1].reshape(1, ln_), 100)
        return torch.stack([mean, ll]).cpu()

    report("latent_stream_frame", latent_frame, timer=wall_ms,
           note="no stream in PyTorch: the 25-frame window rerun for each new frame (24 frames kept "
                "on the device, the new one uploaded), the heads of output frame 1 only, host to host")
    del latent, swin, srwin

# --- the co-training twin: vgg19_bn features[:17] and a Gaussian2d readout ----------------------


class Cotrain(nn.Module):
    """sinzlab/neural_cotraining's MTL_VGG neural path at inference, in plain PyTorch: the grey
    image expanded to 3 channels, torchvision's vgg19_bn features[:17] written out (3x3 convs
    64, 64, pool, 128, 128, pool, 256, each with eval BatchNorm2d and ReLU), a Gaussian2d readout
    of 1000 neurons (clamped mu, grid_sample with align_corners=False, features, bias), elu(y - 1) + 1."""

    def __init__(self, neurons=1000):
        super().__init__()
        layers, cin = [], 3
        for v in (64, 64, "M", 128, 128, "M", 256):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            bn = nn.BatchNorm2d(v)
            bn.running_mean.uniform_(-0.3, 0.3); bn.running_var.uniform_(0.5, 2.0)
            layers += [nn.Conv2d(cin, v, 3, padding=1), bn, nn.ReLU(inplace=True)]
            cin = v
        self.features = nn.Sequential(*layers)
        self.mu = torch.rand(neurons, 2, device=dev) * 2 - 1
        self.feat, self.bias = rnd(256, neurons) * 0.1, rnd(neurons)

    def forward(self, x):
        h = self.features(x.expand(-1, 3, -1, -1))
        n = self.mu.shape[0]
        y = F.grid_sample(h, self.mu.clamp(-1, 1).view(1, n, 1, 2).expand(h.shape[0], -1, -1, -1), align_corners=False)
        return F.elu((y.squeeze(-1) * self.feat).sum(1) + self.bias - 1) + 1


if wanted("cotrain_forward_b64"):
    cot = Cotrain().to(dev).eval()
    cimg = torch.rand(B(64), 1, 64, 64, device=dev)
    report("cotrain_forward_b64", lambda: cot(cimg))
    del cot, cimg

# --- the Sensorium scores -----------------------------------------------------------------------


def scores(r, p, ids, images, eps=1e-8):
    """sensorium's get_correlations, get_signal_correlations and get_fev (neuralpredictors' corr and
    fev) on [T, M] trials on the device: single-trial correlation, correlation to the repeat
    average, FEV and FEVE per neuron."""
    def corr(a, b):
        za = (a - a.mean(0)) / (a.std(0, unbiased=False) + eps)
        zb = (b - b.mean(0)) / (b.std(0, unbiased=False) + eps)
        return (za * zb).mean(0)

    cnt = torch.zeros(images, device=r.device).index_add_(0, ids, torch.ones_like(ids, dtype=r.dtype))[:, None]
    mr = torch.zeros(images, r.shape[1], device=r.device).index_add_(0, ids, r) / cnt
    mp = torch.zeros(images, r.shape[1], device=r.device).index_add_(0, ids, p) / cnt
    dev2 = torch.zeros(images, r.shape[1], device=r.device).index_add_(0, ids, (r - mr[ids]) ** 2)
    noise = (dev2 / (cnt - 1)).mean(0)
    total = r.var(0, unbiased=True)
    mse = ((r - p) ** 2).mean(0)
    return torch.stack([corr(r, p), corr(mr, mp), (total - noise) / total, 1 - (mse - noise) / (total - noise)])


if wanted("scores_8000x10000"):
    sm, simg = 8000, B(100)
    st = simg * 100
    sids = torch.arange(st, device=dev) % simg   # 100 repeats of each image, interleaved
    ssig = rnd(simg, sm)
    sr, sp = ssig[sids] + 0.5 * rnd(st, sm), 0.8 * ssig[sids] + 0.3 * rnd(st, sm)
    report("scores_8000x10000", lambda: scores(sr, sp, sids, simg), 0, 8 * st * sm + 4 * st)
    del sr, sp, ssig

# --- recurrent cells ----------------------------------------------------------------------------


class ConvGRUCell(nn.Module):
    """neuralpredictors' ConvGRUCell (rnn_modules/gru_module.py), one step: six biased Conv2d,
    z = sigmoid(update_in(x) + update_hid(h)), r = sigmoid(reset_in(x) + reset_hid(h)),
    h' = h * (1 - z) + tanh(out_in(x) + out_hid(h * r)) * z."""

    def __init__(self, cin, ch, k_in, k_rec):
        super().__init__()
        conv = lambda c, k: nn.Conv2d(c, ch, k, padding=k // 2)  # noqa: E731
        self.reset_gate_input, self.reset_gate_hidden = conv(cin, k_in), conv(ch, k_rec)
        self.update_gate_input, self.update_gate_hidden = conv(cin, k_in), conv(ch, k_rec)
        self.out_gate_input, self.out_gate_hidden = conv(cin, k_in), conv(ch, k_rec)

    def forward(self, x, h):
        z = torch.sigmoid(self.update_gate_input(x) + self.update_gate_hidden(h))
        r = torch.sigmoid(self.reset_gate_input(x) + self.reset_gate_hidden(h))
        return h * (1 - z) + torch.tanh(self.out_gate_input(x) + self.out_gate_hidden(h * r)) * z


if wanted("conv_gru_64x64_step"):
    cg = ConvGRUCell(64, 64, 5, 5).to(dev).eval()
    gx, gh = rnd(1, 64, 18, 46), rnd(1, 64, 18, 46)
    plane = 18 * 46
    report("conv_gru_64x64_step", lambda: cg(gx, gh), 2 * plane * 64 * 3 * (128 * 25),
           F32 * (6 * 64 * 64 * 25) + F32 * plane * (64 + 12 * 64))

if wanted("gru_42x20_t60"):
    gb = B(32)
    gru = nn.GRU(42, 20, batch_first=True).to(dev).eval()
    gs = rnd(gb, 60, 42)
    report("gru_42x20_t60", lambda: gru(gs)[0], 2 * gb * 60 * 60 * 62,
           F32 * (gb * 60 * (42 + 60 + 20) + 60 * 62))

name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
print(json.dumps(dict(case="device", name=name, torch=torch.__version__, small=args.small)), flush=True)
