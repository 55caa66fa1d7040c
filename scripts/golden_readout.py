#!/usr/bin/env python3
"""Golden test data for `vcortex eval`: grid_sample, the Gaussian readout and
the two likelihoods (Poisson NLL, zero-inflated gamma), made with PyTorch in
float64.

Writes eval cases (format: docs/eval-format.md) for the ops
`grid_sample`, `gaussian_readout`, `poisson_nll` and `zig_loglik` into
kernels-tests/data/golden/. For each case NAME there are two files:

  NAME.case.safetensors      the eval case: F32 input tensors plus
                             `__metadata__` holding "op" and the op's
                             parameters (all strings)
  NAME.expected.safetensors  the reference outputs (F32) under the op's output
                             name `output`, metadata {"script", "torch",
                             "case"}, plus "neuralpredictors": <version> for
                             the gaussian_readout and poisson_nll cases, which
                             are cross-checked against neuralpredictors

Inputs are drawn as float32 (that is what the case file stores); the outputs
are computed from those float32 values upcast to float64 and rounded to
float32 at the end:

- grid_sample:      F.grid_sample(input, grid, mode="bilinear",
                    padding_mode="zeros", align_corners=...)
- gaussian_readout: neuralpredictors FullGaussian2d in eval mode, before the
                    ELU+1: pos = clamp(mu, -1, 1) (+ shift[n] after the clamp),
                    y = F.grid_sample(input, pos as [N,M,1,2], bilinear, zeros,
                    align_corners) -> [N,C,M,1]; out[n,m] = sum_c y[n,c,m] *
                    features[c,m] (+ bias[m])
- poisson_nll:      rate - target * log(rate + eps), then none/sum/mean
                    (F.poisson_nll_loss(log_input=False, full=False)); sum and
                    mean give a 0-dimensional `output` (shape []).
                    Default eps 1e-8 is torch's; neuralpredictors' own
                    PoissonLoss uses bias 1e-12 (cases *_eps1e-12_*)
- zig_loglik:       docs/ops.md, zero-inflated gamma log-density (masked form), per element:
                    [y<=loc] (log(1-q) - log loc)
                    + [y>loc] (log q + (k-1) log(y-loc) - (y-loc)/theta
                               - k log theta - lgamma(k))
                    y == loc takes the spike branch, as the spec says (the
                    neuralpredictors ZIGLoss code masks y < loc / y >= loc,
                    which puts y == loc in the slab with log(0))

Cross-checks made before writing (the script stops if one fails):
F.grid_sample against an explicit bilinear formula; every gaussian_readout
case against `neuralpredictors.layers.readouts.FullGaussian2d(...).eval()`
(float64, parameters set by hand); every poisson_nll case against
F.poisson_nll_loss and neuralpredictors `PoissonLoss(bias=eps)`; every
zig_loglik case against torch.distributions (Gamma slab, Uniform spike).

The script also recomputes every case in plain float32 torch (what an F32
engine would do) and prints, per case, the largest error as a share of
eval-format.md's tolerance ("f32 share"); it is for information only.

Each case draws its inputs from its own seed (derived from the case name), so
adding or removing a case does not change the others.

Rerun from the repository root:

    python3 scripts/golden_readout.py

needs `pip install torch safetensors` and neuralpredictors (0.3.0 was used;
`pip install neuralpredictors`, or without its unused dependencies:
`pip install --no-deps --target /tmp/nplib neuralpredictors==0.3.0` and run
with `PYTHONPATH=/tmp/nplib`). With `--without-neuralpredictors` the
neuralpredictors cross-checks are skipped and the "neuralpredictors" metadata
key is left out (so the expected files then differ from the committed ones in
that key only). Output is byte-identical across reruns with the same torch
build. The script reloads every file it wrote and checks metadata, dtypes,
shapes and values before it exits.
"""

import collections
import collections.abc
import math
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import (  # noqa: E402
    as_f32, check_all, check_params, describe, deterministic_torch, elementwise_share,
    expected_meta, f64, parse_bool, randn, reduction_share, seeder, summary, uniform,
    write_all,
)

SCRIPT = "scripts/golden_readout.py"
BASE_SEED = 20240612
seed = seeder(BASE_SEED)
deterministic_torch()

NP_VERSION = None      # neuralpredictors version when it is used for cross-checks
FullGaussian2d = None
PoissonLoss = None


def load_neuralpredictors():
    global NP_VERSION, FullGaussian2d, PoissonLoss
    # older neuralpredictors modules do `from collections import Iterable` on Python >= 3.10
    if not hasattr(collections, "Iterable"):
        collections.Iterable = collections.abc.Iterable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import neuralpredictors
            from neuralpredictors.layers.readouts import FullGaussian2d as fg
            from neuralpredictors.measures.modules import PoissonLoss as pl
    except ImportError as e:
        sys.exit(f"{SCRIPT}: cannot import neuralpredictors ({e}); install it "
                 "(see the docstring) or pass --without-neuralpredictors")
    from importlib.metadata import version, PackageNotFoundError
    try:
        NP_VERSION = version("neuralpredictors")
    except PackageNotFoundError:
        NP_VERSION = getattr(neuralpredictors, "__version__", "unknown")
    FullGaussian2d, PoissonLoss = fg, pl


CASES = []  # (name, op, params, inputs, outputs, uses_np)


def case(name, op, params, inputs, outputs, uses_np=False):
    check_params(name, params)
    CASES.append((name, op, params, inputs, outputs, uses_np))


def boolean(params, key, default):
    return parse_bool(params.get(key, default))


# --------------------------------------------------------------------------- grid_sample

def unnormalize(coord, size, align_corners):
    """PyTorch's grid_sampler_unnormalize (float64)."""
    if align_corners:
        return (coord + 1.0) / 2.0 * (size - 1)
    return ((coord + 1.0) * size - 1.0) / 2.0


def manual_grid_sample(x, grid, align_corners):
    """Explicit bilinear sampling with zero padding, float64, to check the
    formula that is documented against F.grid_sample."""
    n, c, h, w = x.shape
    _, ho, wo, _ = grid.shape
    out = torch.zeros(n, c, ho, wo, dtype=torch.float64)
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                ix = unnormalize(float(grid[b, i, j, 0]), w, align_corners)   # width
                iy = unnormalize(float(grid[b, i, j, 1]), h, align_corners)   # height
                x0, y0 = math.floor(ix), math.floor(iy)
                fx, fy = ix - x0, iy - y0
                for yy, wy in ((y0, 1.0 - fy), (y0 + 1, fy)):
                    for xx, wx in ((x0, 1.0 - fx), (x0 + 1, fx)):
                        if 0 <= yy < h and 0 <= xx < w:
                            out[b, :, i, j] += wy * wx * x[b, :, yy, xx]
    return out


def ref_grid_sample(x, grid, align_corners):
    return F.grid_sample(f64(x), f64(grid), mode="bilinear", padding_mode="zeros",
                         align_corners=align_corners)


def pixel_centre(i, size, align_corners):
    """Normalized coordinate of pixel i's centre (inverse of unnormalize)."""
    if align_corners:
        return 0.0 if size == 1 else 2.0 * i / (size - 1) - 1.0
    return (2.0 * i + 1.0) / size - 1.0


SPECIAL = [-1.3, -1.0, 1.0, 1.3, 0.0]


def mixed_grid(n, ho, wo, h, w, align_corners):
    """Uniform points in [-1.3, 1.3]^2 with fixed places overwritten: exact
    +-1 and +-1.3 and 0 (all combinations along the first rows), and pixel
    centres of the input along the last row."""
    g = uniform(n, ho, wo, 2, lo=-1.3, hi=1.3)
    flat = g.view(n, ho * wo, 2)
    combos = [(a, b) for a in SPECIAL for b in SPECIAL]
    for b_ in range(n):
        for p in range(min(len(combos), ho * wo - wo)):
            flat[b_, p, 0], flat[b_, p, 1] = combos[(p + 7 * b_) % len(combos)]
        for j in range(wo):   # last row: pixel centres
            flat[b_, (ho - 1) * wo + j, 0] = pixel_centre(j % w, w, align_corners)
            flat[b_, (ho - 1) * wo + j, 1] = pixel_centre((j + b_) % h, h, align_corners)
    return g.contiguous()


def centre_grid(n, h, w, align_corners):
    """Every output point on an input pixel centre: output ~= input."""
    g = torch.empty(n, h, w, 2, dtype=torch.float32)
    for i in range(h):
        for j in range(w):
            g[:, i, j, 0] = pixel_centre(j, w, align_corners)
            g[:, i, j, 1] = pixel_centre(i, h, align_corners)
    return g.contiguous()


def edge_grid(n, ho, wo):
    """Only the coordinates -1.3, -1, 0, 1, 1.3 in all combinations (cycled)."""
    g = torch.empty(n, ho * wo, 2, dtype=torch.float32)
    combos = [(a, b) for a in SPECIAL for b in SPECIAL]
    for b_ in range(n):
        for p in range(ho * wo):
            g[b_, p, 0], g[b_, p, 1] = combos[(p + 3 * b_) % len(combos)]
    return g.view(n, ho, wo, 2).contiguous()


def grid_sample_case(name, x_shape, out_hw, params, kind):
    seed(name)
    align = boolean(params, "align_corners", "false")
    n, c, h, w = x_shape
    x = randn(*x_shape)
    if kind == "mixed":
        grid = mixed_grid(n, out_hw[0], out_hw[1], h, w, align)
    elif kind == "centres":
        grid = centre_grid(n, h, w, align)
    elif kind == "edges":
        grid = edge_grid(n, out_hw[0], out_hw[1])
    elif kind == "affine":
        # rotation by 0.5 rad, scale 1.25, translation: many points outside [-1, 1]
        ang = 0.5
        theta = torch.tensor([[math.cos(ang), -math.sin(ang), 0.1],
                              [math.sin(ang), math.cos(ang), -0.2]]) * 1.25
        theta = theta.unsqueeze(0).repeat(n, 1, 1)
        theta[1:, :, 2] *= -1.0
        grid = F.affine_grid(theta, [n, c, out_hw[0], out_hw[1]], align_corners=align)
        grid = grid.to(torch.float32).contiguous()
    else:
        raise ValueError(kind)
    y = ref_grid_sample(x, grid, align)
    m = manual_grid_sample(f64(x), f64(grid), align)
    assert torch.allclose(y, m, rtol=0, atol=1e-12), (name, (y - m).abs().max())
    if kind == "centres":
        assert torch.allclose(y, f64(x), rtol=0, atol=1e-5), name
    case(name, "grid_sample", params, {"input": x, "grid": grid}, {"output": y})


def grid_sample_cases():
    grid_sample_case("grid_sample_a_mixed", [2, 3, 5, 7], (4, 6), {}, "mixed")
    grid_sample_case("grid_sample_b_mixed_align", [2, 3, 5, 7], (4, 6),
                     {"align_corners": "true"}, "mixed")
    grid_sample_case("grid_sample_c_pixel_centres", [1, 2, 4, 6], None,
                     {"align_corners": "false"}, "centres")
    grid_sample_case("grid_sample_d_pixel_centres_align", [2, 2, 4, 6], None,
                     {"align_corners": "true"}, "centres")
    grid_sample_case("grid_sample_e_edges", [1, 2, 3, 4], (5, 5), {}, "edges")
    grid_sample_case("grid_sample_f_edges_align", [2, 2, 3, 4], (5, 5),
                     {"align_corners": "true"}, "edges")
    grid_sample_case("grid_sample_g_h1", [2, 3, 1, 8], (3, 5), {}, "mixed")
    grid_sample_case("grid_sample_h_h1_align", [1, 3, 1, 8], (3, 5),
                     {"align_corners": "true"}, "mixed")
    grid_sample_case("grid_sample_i_w1", [1, 2, 6, 1], (4, 3), {"align_corners": "false"}, "mixed")
    grid_sample_case("grid_sample_j_w1_align", [2, 2, 6, 1], (4, 3),
                     {"align_corners": "true"}, "mixed")
    grid_sample_case("grid_sample_k_1x1", [2, 3, 1, 1], (3, 3), {}, "edges")
    grid_sample_case("grid_sample_l_odd_affine", [2, 3, 9, 11], (5, 3), {}, "affine")
    grid_sample_case("grid_sample_m_odd_affine_align", [2, 3, 9, 11], (7, 13),
                     {"align_corners": "true"}, "affine")


# --------------------------------------------------------------------------- gaussian_readout

def ref_gaussian_readout(x, mu, features, bias, shift, align_corners):
    """FullGaussian2d.forward in eval mode (float64), before ELU+1."""
    n = x.shape[0]
    m = mu.shape[0]
    pos = f64(mu).clamp(-1.0, 1.0).unsqueeze(0).expand(n, m, 2)
    if shift is not None:
        pos = pos + f64(shift)[:, None, :]          # after the clamp, not clamped again
    y = F.grid_sample(f64(x), pos.reshape(n, m, 1, 2), mode="bilinear",
                      padding_mode="zeros", align_corners=align_corners)   # [N,C,M,1]
    out = (y.squeeze(-1) * f64(features).unsqueeze(0)).sum(1)              # [N,M]
    if bias is not None:
        out = out + f64(bias)
    return out


def np_gaussian_readout(x, mu, features, bias, shift, align_corners):
    """The same through neuralpredictors' FullGaussian2d (float64, eval)."""
    n, c, h, w = x.shape
    m = mu.shape[0]
    torch.manual_seed(0)      # its sigma init draws; unused in eval mode
    with warnings.catch_warnings():   # "Readout is NOT initialized with mean activity"
        warnings.simplefilter("ignore")
        ro = FullGaussian2d(in_shape=(c, h, w), outdims=m, bias=bias is not None,
                            align_corners=align_corners, gauss_type="full")
    ro = ro.double().eval()
    assert tuple(ro._mu.shape) == (1, m, 1, 2) and tuple(ro._features.shape) == (1, c, 1, m)
    with torch.no_grad():
        ro._mu.copy_(f64(mu).reshape(1, m, 1, 2))
        ro._features.copy_(f64(features).reshape(1, c, 1, m))
        if bias is not None:
            ro.bias.copy_(f64(bias))
        y = ro(f64(x), shift=None if shift is None else f64(shift))
    # FullGaussian2d clamps its stored _mu in place on every forward
    assert torch.equal(ro._mu.reshape(m, 2), f64(mu).clamp(-1.0, 1.0))
    return y


def gaussian_readout_case(name, n, c, h, w, m, params, with_bias, with_shift):
    seed(name)
    align = boolean(params, "align_corners", "true")
    x = randn(n, c, h, w)
    mu = uniform(m, 2, lo=-1.4, hi=1.4)
    fixed = [(1.3, -1.2), (1.0, -1.0), (0.0, 0.0), (-1.5, 0.2), (-1.0, 1.0), (0.5, 1.25)]
    for i, (a, b) in enumerate(fixed[:m]):
        mu[i, 0], mu[i, 1] = a, b
    features = randn(c, m, scale=1.0 / math.sqrt(c))
    bias = randn(m, scale=0.3) if with_bias else None
    shift = None
    if with_shift:
        shift = uniform(n, 2, lo=-0.3, hi=0.3)
        shift[0, 0], shift[0, 1] = 0.25, -0.3     # pushes the corner neurons outside [-1, 1]
    y = ref_gaussian_readout(x, mu, features, bias, shift, align)
    if NP_VERSION is not None:
        y_np = np_gaussian_readout(x, mu, features, bias, shift, align)
        err = (y - y_np).abs().max().item()
        assert err <= 1e-12, (name, err)
    inputs = {"input": x, "mu": mu, "features": features}
    if bias is not None:
        inputs["bias"] = bias
    if shift is not None:
        inputs["shift"] = shift
    case(name, "gaussian_readout", params, inputs, {"output": y}, uses_np=True)


def gaussian_readout_cases():
    gaussian_readout_case("gaussian_readout_a_bias_shift", 3, 5, 7, 9, 17,
                          {"align_corners": "true"}, True, True)
    gaussian_readout_case("gaussian_readout_b_nobias_noshift", 3, 5, 7, 9, 17, {}, False, False)
    gaussian_readout_case("gaussian_readout_c_align_false", 3, 5, 7, 9, 17,
                          {"align_corners": "false"}, True, True)
    gaussian_readout_case("gaussian_readout_d_1x1", 2, 4, 1, 1, 6, {}, True, True)
    gaussian_readout_case("gaussian_readout_e_1x1_align_false", 2, 4, 1, 1, 6,
                          {"align_corners": "false"}, True, True)


# --------------------------------------------------------------------------- poisson_nll

def ref_poisson(rate, target, eps, reduction):
    r, t = f64(rate), f64(target)
    loss = r - t * torch.log(r + eps)
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    return loss


def poisson_nll_case(name, shape, params, all_zero_targets=False):
    seed(name)
    eps = float(params.get("eps", "1e-8"))
    reduction = params.get("reduction", "none")
    rate = torch.exp(randn(*shape, scale=1.2)).contiguous()
    flat = rate.view(-1)
    small = [0.0, 1e-9, 1e-7, 1e-5, 1e-3, 0.0, 1e-8]
    flat[:len(small)] = torch.tensor(small)
    target = torch.poisson(rate.clamp_min(0.05)).contiguous()
    tflat = target.view(-1)
    tflat[:5] = 0.0                    # targets 0 at the smallest rates
    tflat[5], tflat[6] = 2.0, 1.0      # nonzero targets at rate 0 and 1e-8
    if all_zero_targets:
        target.zero_()
    y = ref_poisson(rate, target, eps, reduction)
    y_torch = F.poisson_nll_loss(f64(rate), f64(target), log_input=False, full=False,
                                 eps=eps, reduction=reduction)
    assert torch.allclose(y, y_torch, rtol=1e-13, atol=0), name
    if NP_VERSION is not None and reduction != "none":
        with warnings.catch_warnings():   # "Poissonloss is averaged per batch"
            warnings.simplefilter("ignore")
            pl = PoissonLoss(bias=eps, avg=(reduction == "mean"))
        y_np = pl(f64(rate), f64(target))
        assert torch.allclose(y, y_np, rtol=1e-13, atol=0), name
    if reduction != "none":
        assert y.dim() == 0
    case(name, "poisson_nll", params, {"rate": rate, "target": target}, {"output": y},
         uses_np=reduction != "none")


def poisson_nll_cases():
    poisson_nll_case("poisson_nll_a_none", [6, 11], {"eps": "1e-8", "reduction": "none"})
    poisson_nll_case("poisson_nll_b_sum", [8, 13], {"reduction": "sum"})
    poisson_nll_case("poisson_nll_c_mean", [3, 4, 5], {"reduction": "mean", "eps": "1e-8"})
    poisson_nll_case("poisson_nll_d_eps1e-12_sum", [5, 7], {"eps": "1e-12", "reduction": "sum"})
    poisson_nll_case("poisson_nll_e_targets_zero", [4, 6], {}, all_zero_targets=True)
    poisson_nll_case("poisson_nll_f_eps1e-12_none", [5, 7], {"eps": "1e-12"})


# --------------------------------------------------------------------------- zig_loglik

def ref_zig(target, q, theta, k, loc):
    """docs/ops.md, zero-inflated gamma log-density, masked form (float64). The spike branch takes y <= loc,
    the slab y > loc; log(y - loc) is evaluated with 1 substituted where
    y <= loc, so no NaN or inf is ever multiplied by a zero mask."""
    y, q, theta, k, loc = (f64(t) for t in (target, q, theta, k, loc))
    spike = y <= loc
    d = torch.where(spike, torch.ones_like(y), y - loc)
    spike_l = torch.log(1.0 - q) - torch.log(loc)
    slab_l = (torch.log(q) + (k - 1.0) * torch.log(d) - d / theta
              - k * torch.log(theta) - torch.lgamma(k))
    return torch.where(spike, spike_l, slab_l)


def zig_check(out, target, q, theta, k, loc):
    y, q, theta, k, loc = (f64(t) for t in (target, q, theta, k, loc))
    spike = y <= loc
    d = torch.where(spike, torch.ones_like(y), y - loc)
    slab = torch.log(q) + torch.distributions.Gamma(k, 1.0 / theta).log_prob(d)
    spk = torch.log(1.0 - q) + torch.distributions.Uniform(torch.zeros_like(loc), loc).log_prob(
        torch.where(spike, y.clamp_max(loc * (1 - 1e-12)), loc / 2))
    alt = torch.where(spike, spk, slab)
    assert torch.allclose(out, alt, rtol=1e-12, atol=1e-12), (out - alt).abs().max()


def zig_params(shape, fixed_loc=None):
    q = (torch.sigmoid(randn(*shape, scale=2.0)) * 0.99999 + 1e-6).contiguous()
    theta = (F.elu(randn(*shape)) + 1.0 + 1e-6).contiguous()
    k = (F.elu(randn(*shape, scale=1.5)) + 1.0 + 1e-6).contiguous()
    if fixed_loc is None:
        loc = torch.exp(uniform(*shape, lo=math.log(0.005), hi=math.log(0.5))).contiguous()
    else:
        loc = torch.full(shape, fixed_loc, dtype=torch.float32)
    return q, theta, k, loc


def zig_targets(loc, theta, k):
    """Cycles through: 0, U(0, loc) (below), exactly loc, the next float32
    above loc, loc + a Gamma(k, theta) draw, loc + a large value."""
    flat_loc = loc.reshape(-1)
    g = torch.distributions.Gamma(k.reshape(-1), 1.0 / theta.reshape(-1)).sample()
    u = torch.rand(flat_loc.shape)
    y = torch.empty_like(flat_loc)
    for i in range(flat_loc.numel()):
        kind = i % 6
        l = flat_loc[i]
        if kind == 0:
            y[i] = 0.0
        elif kind == 1:
            y[i] = u[i] * l
        elif kind == 2:
            y[i] = l
        elif kind == 3:
            y[i] = torch.nextafter(l, torch.tensor(math.inf))
        elif kind == 4:
            y[i] = l + g[i].clamp_min(1e-3)
        else:
            y[i] = l + 5.0 + 20.0 * u[i]
    return y.reshape(loc.shape).to(torch.float32).contiguous()


def zig_case(name, shape, fixed_loc=None, k_values=None):
    seed(name)
    q, theta, k, loc = zig_params(shape, fixed_loc)
    if k_values is not None:
        kf = k.view(-1)
        for i, v in enumerate(k_values):
            kf[i * 5 % kf.numel()] = v
    target = zig_targets(loc, theta, k)
    y = ref_zig(target, q, theta, k, loc)
    zig_check(y, target, q, theta, k, loc)
    spike = (target <= loc)
    assert spike.any() and (~spike).any() and (target == loc).any()
    case(name, "zig_loglik", {},
         {"target": target, "q": q, "theta": theta, "k": k, "loc": loc}, {"output": y})


def zig_loglik_cases():
    zig_case("zig_loglik_a", [4, 7])
    zig_case("zig_loglik_b_3d", [2, 3, 5], k_values=[1.0, 0.05, 1.0, 7.5])
    zig_case("zig_loglik_c_loc0.005", [3, 8], fixed_loc=0.005, k_values=[1.0, 0.3, 2.0])


# --------------------------------------------------------------------------- write + check

def golden_files():
    files = []
    for name, op, params, inputs, outputs, uses_np in CASES:
        versions = {}
        if uses_np and NP_VERSION is not None:
            versions["neuralpredictors"] = NP_VERSION
        files.append((name, op, params, inputs, outputs,
                      expected_meta(SCRIPT, name, **versions)))
    return files


ELEMENTWISE = {"grid_sample", "zig_loglik"}


def f32_outputs(op, params, inputs):
    """The same computation in float32 (what an F32 engine does), for the
    tolerance diagnostic only."""
    t = {k: v.to(torch.float32) for k, v in inputs.items()}
    if op == "grid_sample":
        return F.grid_sample(t["input"], t["grid"], mode="bilinear", padding_mode="zeros",
                             align_corners=boolean(params, "align_corners", "false"))
    if op == "gaussian_readout":
        x, mu = t["input"], t["mu"]
        n, m = x.shape[0], mu.shape[0]
        pos = mu.clamp(-1.0, 1.0).unsqueeze(0).expand(n, m, 2)
        if "shift" in t:
            pos = pos + t["shift"][:, None, :]
        y = F.grid_sample(x, pos.reshape(n, m, 1, 2), mode="bilinear", padding_mode="zeros",
                          align_corners=boolean(params, "align_corners", "true"))
        out = (y.squeeze(-1) * t["features"].unsqueeze(0)).sum(1)
        return out + t["bias"] if "bias" in t else out
    if op == "poisson_nll":
        eps = torch.tensor(float(params.get("eps", "1e-8")), dtype=torch.float32)
        loss = t["rate"] - t["target"] * torch.log(t["rate"] + eps)
        red = params.get("reduction", "none")
        return loss.sum() if red == "sum" else loss.mean() if red == "mean" else loss
    if op == "zig_loglik":
        y, q, theta, k, loc = (t[n_] for n_ in ("target", "q", "theta", "k", "loc"))
        spike = y <= loc
        d = torch.where(spike, torch.ones_like(y), y - loc)
        slab = (torch.log(q) + (k - 1.0) * torch.log(d) - d / theta
                - k * torch.log(theta) - torch.lgamma(k))
        return torch.where(spike, torch.log(1.0 - q) - torch.log(loc), slab)
    raise ValueError(op)


def tolerance_share(op, params, ref, got):
    """max |got - ref| / tolerance, eval-format.md's tolerances (as golden.rs
    applies them: elementwise for grid_sample, zig_loglik and poisson_nll
    with reduction none; the reduction form otherwise)."""
    elementwise = op in ELEMENTWISE or (op == "poisson_nll" and
                                        params.get("reduction", "none") == "none")
    if elementwise:
        return elementwise_share(got, ref)
    return reduction_share(got, ref)


def build_cases():
    CASES.clear()
    grid_sample_cases()
    gaussian_readout_cases()
    poisson_nll_cases()
    zig_loglik_cases()


def main(argv):
    args = argv[1:]
    if args not in ([], ["--without-neuralpredictors"]):
        sys.exit(f"usage: python3 {SCRIPT} [--without-neuralpredictors]")
    if not args:
        load_neuralpredictors()
    build_cases()
    write_all(golden_files())
    total = check_all(golden_files(), 100 * 1024, 500 * 1024)
    print(f"torch {torch.__version__}, neuralpredictors {NP_VERSION}: "
          f"{summary(len(CASES), total)}")
    for name, op, params, inputs, outputs, uses_np in CASES:
        share = tolerance_share(op, params, as_f32(outputs)["output"],
                                f32_outputs(op, params, as_f32(inputs)))
        print(f"  {name:38s} {op:16s} {describe(params, inputs, outputs)}  "
              f"f32 share {share:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
