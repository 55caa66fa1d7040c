#!/usr/bin/env python3
"""Golden test data for `vcortex eval`, made with nflows.

Writes eval cases (format: docs/eval-format.md) for the ops
`rq_spline` and `affine_coupling` into kernels-tests/data/golden/. For each
case NAME there are two files:

  NAME.case.safetensors      the eval case: F32 input tensors plus
                             `__metadata__` holding "op" and the op's
                             parameters (all strings)
  NAME.expected.safetensors  the reference outputs (F32) under the op's output
                             names, metadata {"script", "torch", "nflows",
                             "case"}

rq_spline: the expected `output` and `logabsdet` come from
`nflows.transforms.splines.rational_quadratic.unconstrained_rational_quadratic_spline`
(tails="linear") called on the case's F32 tensors cast to float64, with the
case's parameters; the results are rounded to F32. The script also
recomputes every spline case with its own float64 transcription of the
formulas in docs/ops.md, rational-quadratic spline (must agree to 1e-9) and
with nflows in plain float32, and prints how much of the eval tolerance
(1e-4 + 1e-4*|ref|) nflows' own float32 rounding uses.

affine_coupling: the expected outputs are computed directly in float64 from
the formulas of docs/ops.md, affine coupling (scale = sigmoid(scale_raw + 2) + 1e-3;
forward y_T = x_T*scale + shift, logdet = sum log scale; inverse
x_T = (y_T - shift)/scale, logdet = -sum log scale; identity features pass
through) and rounded to F32. Every case is cross-checked against a real
`nflows.transforms.coupling.AffineCouplingTransform` (forward / inverse, in
float64) whose conditioner is a stub returning cat([shift, scale_raw], dim=1),
which is how nflows splits the conditioner output (first T columns = shift,
last T = unconstrained scale).

Spline cases: (a) forward, K=10, tail_bound 3, inputs uniform in [-4, 4];
(b) the inverse with (a)'s parameters on (a)'s F32 outputs (must return to
(a)'s inputs); (c) forward on awkward inputs: every knot X_j (j = 0..K, so
also exactly +-B) once computed in float64 and rounded to F32, once computed
in F32 by nflows' own steps, plus 0, +-100 and the F32 neighbours of +-B just
outside and just inside; (d) K=2, D=1, no parameters in the metadata
(defaults); (e) K=5, min_bin_width 0.01, min_derivative 0.1, tail_bound 1.5,
parameters randn*3 so the minimums bite; (f) the inverse, K=8, on awkward
inputs built from the height knots Y_j as in (c). Unnormalized parameters are
randn*scale with scale 0.9 (a, b), 0.6 (c), 1.5 (d), 3.0 (e), 0.7 (f): each
case must be reachable in F32, so the script asserts that nflows run in plain
float32 stays under half the eval tolerance. (With randn*1.5 everywhere,
nflows' own float32 rounding misses the tolerance by up to 27x on
logabsdet in (c) and by 3x in (b) and (f): in a narrow bin with
s_k = h_k/w_k >> delta_k, d logabsdet/dx ~ 2(s_k - delta_k)/(delta_k w_k) near
a knot, so the ~1e-7 float32 error of the cumsum knot positions is amplified
past 1e-4; and the inverse amplifies F32 errors by 1/(dy/dx).)

Each case draws its inputs from its own seed (derived from the case name),
so adding or removing a case does not change the others.

Rerun from the repository root:

    python3 scripts/golden_nflows.py

(needs `pip install torch safetensors numpy nflows`; made with nflows 0.14;
output is byte-identical across reruns with the same torch and nflows builds).
The script reloads every file it wrote and checks metadata, dtypes, shapes and
values before it exits.
"""

import importlib.metadata
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from nflows.transforms.coupling import AffineCouplingTransform
from nflows.transforms.splines.rational_quadratic import (
    unconstrained_rational_quadratic_spline,
)

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import (  # noqa: E402
    check_all, check_params, describe, deterministic_torch, elementwise_share,
    expected_meta, parse_bool, randn, seeder, summary, uniform, write_all,
)

SCRIPT = "scripts/golden_nflows.py"
NFLOWS_VERSION = importlib.metadata.version("nflows")
BASE_SEED = 20240611
seed = seeder(BASE_SEED)
deterministic_torch()

CASES = []  # (name, op, params, inputs, outputs)
REPORT = []  # lines printed after writing


def case(name, op, params, inputs, outputs):
    check_params(name, params)
    CASES.append((name, op, params, inputs, outputs))


def f32(x):
    return x.to(torch.float32).contiguous()


def next_f32(v, toward):
    """The float32 neighbour of float32 value v in the direction of `toward`."""
    return float(np.nextafter(np.float32(v), np.float32(toward)))


# --------------------------------------------------------------------------- rq_spline

SPLINE_DEFAULTS = {"inverse": "false", "tail_bound": "1.0", "min_bin_width": "1e-3",
                   "min_bin_height": "1e-3", "min_derivative": "1e-3"}


def spline_args(params):
    p = {**SPLINE_DEFAULTS, **params}
    return dict(
        inverse=parse_bool(p["inverse"]),
        tail_bound=float(p["tail_bound"]),
        min_bin_width=float(p["min_bin_width"]),
        min_bin_height=float(p["min_bin_height"]),
        min_derivative=float(p["min_derivative"]),
    )


def nflows_spline(x, w, h, d, params, dtype=torch.float64):
    a = spline_args(params)
    out, lad = unconstrained_rational_quadratic_spline(
        x.to(dtype), w.to(dtype), h.to(dtype), d.to(dtype),
        inverse=a["inverse"], tails="linear", tail_bound=a["tail_bound"],
        min_bin_width=a["min_bin_width"], min_bin_height=a["min_bin_height"],
        min_derivative=a["min_derivative"],
    )
    return out, lad


def knots(unnorm, min_bin, bound, dtype):
    """Knot positions [..., K+1] exactly as nflows computes cumwidths /
    cumheights (softmax, min + (1 - min*K)*p, cumsum, pad 0, affine map to
    [-B, B], ends forced to -B and B), in `dtype`."""
    u = unnorm.to(dtype)
    k = u.shape[-1]
    p = F.softmax(u, dim=-1)
    p = min_bin + (1 - min_bin * k) * p
    c = F.pad(torch.cumsum(p, dim=-1), pad=(1, 0), mode="constant", value=0.0)
    c = (2 * bound) * c - bound
    c[..., 0] = -bound
    c[..., -1] = bound
    return c


def spline_ref_f64(x, uw, uh, ud, params):
    """Independent float64 transcription of docs/ops.md, rational-quadratic spline (vectorised
    numpy), used only as a cross-check of the nflows values."""
    a = spline_args(params)
    B = a["tail_bound"]
    x = x.to(torch.float64).numpy()
    uw = uw.to(torch.float64).numpy()
    uh = uh.to(torch.float64).numpy()
    ud = ud.to(torch.float64).numpy()
    K = uw.shape[-1]

    def cum(u, m):
        e = np.exp(u - u.max(-1, keepdims=True))
        p = m + (1 - m * K) * e / e.sum(-1, keepdims=True)
        c = np.concatenate([np.zeros(p.shape[:-1] + (1,)), np.cumsum(p, -1)], -1)
        c = 2 * B * c - B
        c[..., 0] = -B
        c[..., -1] = B
        return c

    X = cum(uw, a["min_bin_width"])
    Y = cum(uh, a["min_bin_height"])
    const = math.log(math.exp(1 - a["min_derivative"]) - 1)
    udp = np.concatenate([np.full(ud.shape[:-1] + (1,), const), ud,
                          np.full(ud.shape[:-1] + (1,), const)], -1)
    softplus = np.where(udp > 20, udp, np.log1p(np.exp(np.minimum(udp, 20))))
    delta = a["min_derivative"] + softplus
    inside = (x >= -B) & (x <= B)
    loc = Y if a["inverse"] else X
    # bin k = #{j < K : v >= loc_j} - 1 (the last bin is closed on the right)
    k = np.clip((x[..., None] >= loc[..., :K]).sum(-1) - 1, 0, K - 1)
    g = lambda arr, off=0: np.take_along_axis(arr, (k + off)[..., None], -1)[..., 0]
    Xk, wk = g(X), g(X, 1) - g(X)
    Yk, hk = g(Y), g(Y, 1) - g(Y)
    dk, dk1 = g(delta), g(delta, 1)
    s = hk / wk
    if a["inverse"]:
        t = x - Yk
        aa = t * (dk + dk1 - 2 * s) + hk * (s - dk)
        bb = hk * dk - t * (dk + dk1 - 2 * s)
        cc = -s * t
        disc = np.maximum(bb * bb - 4 * aa * cc, 0.0)
        xi = (2 * cc) / (-bb - np.sqrt(disc))
        y = xi * wk + Xk
    else:
        xi = (x - Xk) / wk
        y = Yk + hk * (s * xi ** 2 + dk * xi * (1 - xi)) / (
            s + (dk + dk1 - 2 * s) * xi * (1 - xi))
    den = s + (dk + dk1 - 2 * s) * xi * (1 - xi)
    with np.errstate(invalid="ignore", divide="ignore"):  # entries outside [-B, B]
        lad = np.log(s ** 2 * (dk1 * xi ** 2 + 2 * s * xi * (1 - xi) + dk * (1 - xi) ** 2)) \
            - 2 * np.log(den)
    if a["inverse"]:
        lad = -lad
    y = np.where(inside, y, x)
    lad = np.where(inside, lad, 0.0)
    return torch.from_numpy(y), torch.from_numpy(lad)


def spline_case(name, params, x, uw, uh, ud):
    x, uw, uh, ud = f32(x), f32(uw), f32(uh), f32(ud)
    n, d = x.shape
    k = uw.shape[-1]
    assert uw.shape == (n, d, k) and uh.shape == (n, d, k) and ud.shape == (n, d, k - 1)
    out, lad = nflows_spline(x, uw, uh, ud, params)
    assert out.dtype == torch.float64
    # cross-check 1: own float64 transcription of the spec formulas
    ro, rl = spline_ref_f64(x, uw, uh, ud, params)
    err = max(float((ro - out).abs().max()), float((rl - lad).abs().max()))
    assert err < 1e-9, (name, err)
    # cross-check 2: how far nflows in plain float32 is from the float64 reference
    # (the case is meant to be reachable in F32: nflows' own float32 rounding
    # must stay well inside the eval tolerance)
    o32, l32 = nflows_spline(x, uw, uh, ud, params, dtype=torch.float32)
    s_out, s_lad = elementwise_share(o32, out), elementwise_share(l32, lad)
    assert max(s_out, s_lad) < 0.5, (name, s_out, s_lad)
    share = "output %.3f, logabsdet %.3f" % (s_out, s_lad)
    REPORT.append(f"  {name:36s} own-f64 max diff {err:.1e}; nflows-f32 tolerance share: {share}")
    case(name, "rq_spline", params,
         {"input": x, "widths": uw, "heights": uh, "derivatives": ud},
         {"output": f32(out), "logabsdet": f32(lad)})
    return out, lad


def spline_params(n, d, k, scale):
    return randn(n, d, k, scale=scale), randn(n, d, k, scale=scale), randn(n, d, k - 1, scale=scale)


def awkward_inputs(uw, uh, params, inverse):
    """Fills input[n, d] with awkward values, one category per entry (the
    categories are spread over the entries by a seeded permutation): knot j
    (j = 0..K; knots of the widths for forward, of the heights for inverse),
    either computed in float64 and rounded to float32 or computed in float32;
    0; +-100; +-B; the float32 neighbours of +-B just outside and just
    inside. Knots 0 and K are exactly -B and B."""
    a = spline_args(params)
    B = a["tail_bound"]
    n, d, k = uw.shape
    if inverse:
        k64 = f32(knots(uh, a["min_bin_height"], B, torch.float64))
        k32 = knots(uh, a["min_bin_height"], B, torch.float32)
    else:
        k64 = f32(knots(uw, a["min_bin_width"], B, torch.float64))
        k32 = knots(uw, a["min_bin_width"], B, torch.float32)
    special = [0.0, 100.0, -100.0, next_f32(B, math.inf), next_f32(-B, -math.inf),
               next_f32(B, 0.0), next_f32(-B, 0.0)]
    ncat = (k + 1) + len(special)
    cats = torch.arange(n * d) % ncat
    cats = cats[torch.randperm(n * d)]
    x = torch.empty(n * d, dtype=torch.float32)
    seen = {}
    for e in range(n * d):
        c = int(cats[e])
        i, j = divmod(e, d)
        if c <= k:
            m = seen.get(c, 0)
            seen[c] = m + 1
            x[e] = (k64 if m % 2 == 0 else k32)[i, j, c]
        else:
            x[e] = special[c - (k + 1)]
    return x.reshape(n, d).contiguous()


def make_spline_cases():
    # (a) forward, K=10, tail_bound 3, inputs over [-4, 4] (about 1/4 outside)
    name = "rq_spline_a_k10_b3"
    params_a = {"inverse": "false", "tail_bound": "3.0", "min_bin_width": "1e-3",
                "min_bin_height": "1e-3", "min_derivative": "1e-3"}
    seed(name)
    uw, uh, ud = spline_params(64, 3, 10, 0.9)
    x = uniform(64, 3, lo=-4.0, hi=4.0)
    ya, la = spline_case(name, params_a, x, uw, uh, ud)

    # (b) inverse of (a): same parameters, inputs = (a)'s outputs rounded to
    # float32 (so they cover the output range); the result must come back to
    # (a)'s inputs.
    name = "rq_spline_b_k10_b3_inverse"
    params_b = {**params_a, "inverse": "true"}
    xb, lb = spline_case(name, params_b, f32(ya), uw, uh, ud)
    rt_x = float((xb - x.double()).abs().max())
    rt_l = float((lb + la).abs().max())
    assert rt_x < 1e-4 and rt_l < 1e-4, (name, rt_x, rt_l)
    REPORT.append(f"  {name:36s} round trip vs (a): max |x - x_a| {rt_x:.1e}, "
                  f"max |logabsdet + logabsdet_a| {rt_l:.1e}")

    # (c) forward on awkward points: knots (f64- and f32-computed), +-B, just
    # outside / inside +-B, +-100, 0
    name = "rq_spline_c_k10_b2_awkward"
    params_c = {"inverse": "false", "tail_bound": "2.0"}
    seed(name)
    uw, uh, ud = spline_params(72, 2, 10, 0.6)
    x = awkward_inputs(uw, uh, params_c, inverse=False)
    spline_case(name, params_c, x, uw, uh, ud)

    # (d) K=2, D=1, all parameters default (tail_bound 1)
    name = "rq_spline_d_k2_d1_defaults"
    seed(name)
    uw, uh, ud = spline_params(16, 1, 2, 1.5)
    x = uniform(16, 1, lo=-1.5, hi=1.5)
    x[0, 0], x[1, 0], x[2, 0] = 1.0, -1.0, 0.0
    spline_case(name, {}, x, uw, uh, ud)

    # (e) K=5, larger minimums, tail_bound 1.5; wide parameter spread so that
    # the minimums bite (min_bin_height left at its default)
    name = "rq_spline_e_k5_minw0.01_mind0.1_b1.5"
    params_e = {"inverse": "false", "tail_bound": "1.5", "min_bin_width": "0.01",
                "min_derivative": "0.1"}
    seed(name)
    uw, uh, ud = spline_params(32, 2, 5, 3.0)
    x = uniform(32, 2, lo=-2.0, hi=2.0)
    spline_case(name, params_e, x, uw, uh, ud)

    # (f) inverse, K=8, awkward points (height knots, +-B, ...)
    name = "rq_spline_f_k8_b1.5_inverse_awkward"
    params_f = {"inverse": "true", "tail_bound": "1.5", "min_bin_width": "1e-3",
                "min_bin_height": "1e-3", "min_derivative": "1e-3"}
    seed(name)
    uw, uh, ud = spline_params(48, 2, 8, 0.7)
    x = awkward_inputs(uw, uh, params_f, inverse=True)
    spline_case(name, params_f, x, uw, uh, ud)


# --------------------------------------------------------------------------- affine_coupling

class _FixedParams(torch.nn.Module):
    """Stub conditioner: returns the given transform_params whatever the input."""

    def __init__(self, params, n_in, n_out):
        super().__init__()
        assert params.shape[1] == n_out, (params.shape, n_out)
        self.params = params
        self.n_in = n_in

    def forward(self, identity_split, context=None):
        assert identity_split.shape[1] == self.n_in
        return self.params


def affine_ref_f64(x, shift, scale_raw, mask, inverse):
    x = x.to(torch.float64)
    scale = torch.sigmoid(scale_raw.to(torch.float64) + 2) + 1e-3
    shift = shift.to(torch.float64)
    t = torch.nonzero(mask > 0).reshape(-1)
    y = x.clone()
    if inverse:
        y[:, t] = (x[:, t] - shift) / scale
        logdet = -torch.log(scale).sum(dim=1)
    else:
        y[:, t] = x[:, t] * scale + shift
        logdet = torch.log(scale).sum(dim=1)
    return y, logdet


def affine_nflows_f64(x, shift, scale_raw, mask, inverse):
    tp = torch.cat([shift, scale_raw], dim=1).to(torch.float64)
    tr = AffineCouplingTransform(
        mask, lambda n_in, n_out: _FixedParams(tp, n_in, n_out)).double()
    with torch.no_grad():
        if inverse:
            return tr.inverse(x.to(torch.float64))
        return tr(x.to(torch.float64))


def affine_case(name, n, mask, inverse, extremes=False):
    seed(name)
    mask = torch.tensor(mask, dtype=torch.float32)
    d = mask.numel()
    t = int((mask > 0).sum())
    x = randn(n, d, scale=2.0)
    shift = randn(n, t)
    scale_raw = randn(n, t, scale=2.0)
    if extremes:
        # scale near its floor 1e-3 and near its ceiling 1.001
        scale_raw[0, 0] = -20.0
        scale_raw[1, -1] = 20.0
        scale_raw[2, :] = -8.0
    params = {"inverse": "true" if inverse else "false"}
    y, ld = affine_ref_f64(x, shift, scale_raw, mask, inverse)
    ny, nld = affine_nflows_f64(x, shift, scale_raw, mask, inverse)
    err = max(float((ny - y).abs().max()), float((nld - ld).abs().max()))
    assert err < 1e-12, (name, err)
    # nflows in plain float32, against the eval tolerance
    tp32 = torch.cat([shift, scale_raw], dim=1)
    tr32 = AffineCouplingTransform(mask, lambda n_in, n_out: _FixedParams(tp32, n_in, n_out))
    with torch.no_grad():
        y32, ld32 = tr32.inverse(x) if inverse else tr32(x)
    s_out, s_ld = elementwise_share(y32, y), elementwise_share(ld32, ld)
    assert max(s_out, s_ld) < 0.5, (name, s_out, s_ld)
    REPORT.append(f"  {name:36s} |direct f64 - nflows AffineCouplingTransform f64| max {err:.1e}; "
                  f"nflows-f32 tolerance share: output {s_out:.3f}, logdet {s_ld:.3f}")
    case(name, "affine_coupling", params,
         {"input": x, "shift": shift, "scale_raw": scale_raw, "mask": mask},
         {"output": f32(y), "logdet": f32(ld)})


def make_affine_cases():
    affine_case("affine_coupling_a_d5_t2", 33, [1, 0, 1, 0, 0], False, extremes=True)
    affine_case("affine_coupling_b_d5_t2_inverse", 33, [1, 0, 1, 0, 0], True, extremes=True)
    affine_case("affine_coupling_c_d3_t3_all", 8, [1, 1, 1], False)
    affine_case("affine_coupling_d_d3_t3_all_inverse", 8, [1, 1, 1], True, extremes=True)
    affine_case("affine_coupling_e_d4_t1", 5, [0, 0, 1, 0], False)
    affine_case("affine_coupling_f_d4_t1_inverse", 5, [0, 0, 1, 0], True)


# --------------------------------------------------------------------------- write + check

def golden_files():
    return [(name, op, params, inputs, outputs,
             expected_meta(SCRIPT, name, nflows=NFLOWS_VERSION))
            for name, op, params, inputs, outputs in CASES]


def main():
    make_spline_cases()
    make_affine_cases()
    write_all(golden_files())
    total = check_all(golden_files(), 100 * 1024, 600 * 1024)
    print(f"torch {torch.__version__}, nflows {NFLOWS_VERSION}: {summary(len(CASES), total)}")
    for name, op, params, inputs, outputs in CASES:
        print(f"  {name:36s} {op:15s} {describe(params, inputs, outputs)}")
    print("cross-checks:")
    for line in REPORT:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
