"""PyTorch on the same card: the peer timings for the standard suite of docs/bench.md.

Run it on the same GPU, right after `vcortex bench --json`, then compare the two files with
scripts/bench_compare.py; only ratios measured in one run mean anything on a shared machine.

    python3 torch_peers.py [--compile] [--small] [--filter SUBSTR] > torch.jsonl

Prints one JSON object per line: case, ms (median), gflops, gbs, and a final "device" line.
--compile adds torch.compile variants (a minute or more of compiling); --small shrinks every batch
so the script can be tried on a CPU. Plain PyTorch only: no extra packages are needed."""
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


def gpu_ms(fn, reps=50, warm=10):
    """Median device time of fn() in ms (CUDA events; wall clock on a CPU)."""
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
    with torch.no_grad():
        for _ in range(warm):
            fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def report(case, fn, flops=0.0, bytes_=0.0, timer=gpu_ms, **kw):
    if args.filter and args.filter not in case:
        return
    try:
        ms = timer(fn)
        row = dict(case=case, ms=round(ms, 5), **kw)
        if flops: row["gflops"] = round(flops / ms / 1e6, 1)
        if bytes_: row["gbs"] = round(bytes_ / ms / 1e6, 1)
    except Exception as e:  # one broken case must not hide the others
        row = dict(case=case, error=f"{type(e).__name__}: {e}"[:300])
    print(json.dumps(row), flush=True)


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
def conv_case(name, N, C, H, W, O, k, pad, groups=1):
    N = B(N)
    x = rnd(N, C, H, W); w = rnd(O, C // groups, k, k); b = rnd(O)
    y = F.conv2d(x, w, b, padding=pad, groups=groups)
    flops = 2 * y.numel() * (C // groups) * k * k
    report(name, lambda: F.conv2d(x, w, b, padding=pad, groups=groups), flops, F32 * (x.numel() + w.numel() + y.numel()))

conv_case("conv_sensorium_in_9x9", 128, 1, 36, 64, 64, 9, 0)
conv_case("conv_dw7x7_64", 128, 64, 28, 56, 64, 7, 3, groups=64)
conv_case("conv_1x1_64", 128, 64, 28, 56, 64, 1, 0)
conv_case("conv3x3_64", 128, 64, 28, 56, 64, 3, 1)
conv_case("conv3x3_vgg128", 32, 128, 56, 56, 128, 3, 1)
for name_m in (1024, 4096):
    m = name_m // (4 if args.small else 1)   # the case keeps its standard name; the device line says small
    a = rnd(m, m); b2 = rnd(m, m)
    report(f"matmul_{name_m}_fp32", lambda a=a, b2=b2: a @ b2, 2 * m ** 3, 3 * F32 * m * m)

# --- elementwise and normalization on the Sensorium core's feature map -------------------------
x = rnd(B(128), 64, 28, 56)
rm, rv, g, bb = rnd(64), torch.rand(64, device=dev) + 0.5, rnd(64), rnd(64)
report("elu", lambda: F.elu(x), 0, 2 * F32 * x.numel())
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

report("divnorm_5x5", lambda: divnorm(x), 0, 2 * F32 * x.numel())
c = compiled(divnorm)
if c: report("divnorm_5x5_compiled", lambda: c(x), 0, 2 * F32 * x.numel())

img = torch.rand(B(128), 3, 224, 224, device=dev)


def neurn(x, k=3, eps=1e-8):
    """models.md section 4: local std over k x k (zero padding, divisor k^2) over its per-channel max."""
    mu = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=True)
    ex2 = F.avg_pool2d(x * x, k, 1, k // 2, count_include_pad=True)
    sd = torch.sqrt(torch.clamp(ex2 - mu * mu, min=0))
    return sd / (sd.amax(dim=(2, 3), keepdim=True) + eps)

report("neurn_k3", lambda: neurn(img), 0, 2 * F32 * img.numel())
c = compiled(neurn)
if c: report("neurn_k3_compiled", lambda: c(img), 0, 2 * F32 * img.numel())

# --- the Sensorium readout and the whole baseline model -----------------------------------------
M = 8000
mu = torch.rand(M, 2, device=dev) * 2 - 1; feat = rnd(64, M); rbias = rnd(M)


def readout(f):
    s = F.grid_sample(f, mu.view(1, M, 1, 2).expand(f.shape[0], M, 1, 2), align_corners=True)  # [N,C,M,1]
    return (s.squeeze(-1) * feat).sum(1) + rbias

report("gaussian_readout_8000", lambda: readout(x), 0, F32 * (x.shape[0] * M * 64 * 4 + x.shape[0] * M))


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

name = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
print(json.dumps(dict(case="device", name=name, torch=torch.__version__, small=args.small)), flush=True)
