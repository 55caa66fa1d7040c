#!/usr/bin/env python3
"""Golden test data for `vcortex eval`, made with PyTorch.

Writes small eval cases (format: docs/eval-format.md) for the ops
conv2d, conv3d, linear, activation, batch_norm, layer_norm, divisive_norm, neurn,
max_pool2d and avg_pool2d into
kernels-tests/data/golden/. For each case NAME there are two files:

  NAME.case.safetensors      the eval case: input tensors plus `__metadata__`
                             holding "op" and the op's parameters (all strings)
  NAME.expected.safetensors  the PyTorch outputs under the op's output names
                             (F32), metadata {"script", "torch", "case"}

Outputs are computed the way a user would: float32 tensors on the CPU through
torch.nn.functional, with deterministic algorithms and a single thread. The
two ops PyTorch has no function for, divisive_norm and neurn, are written out
from the formulas of docs/ops.md (divisive normalization, NeuRN) and computed
in float64 from the float32 inputs; their outputs are then rounded to float32.
Each case draws its inputs from its own seed (derived from the case name), so
adding or removing a case does not change the others.

Rerun from the repository root:

    python3 scripts/golden_torch.py

(needs `pip install torch safetensors`; output is byte-identical across reruns
with the same torch build). The script reloads every file it
wrote and checks metadata, dtypes and shapes before it exits.
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import (  # noqa: E402
    check_all, check_params, describe, deterministic_torch, expected_meta, randn,
    seeder, summary, uniform, write_all,
)

SCRIPT = "scripts/golden_torch.py"
BASE_SEED = 20240611
seed = seeder(BASE_SEED)
deterministic_torch()

CASES = []  # (name, op, params, inputs, outputs)


def case(name, op, params, inputs, outputs):
    check_params(name, params)
    CASES.append((name, op, params, inputs, outputs))


def pair(s):
    return tuple(int(v) for v in s.split(","))


# --------------------------------------------------------------------------- conv2d

def conv_case(name, x_shape, w_shape, bias, params, pad4=None):
    """params: the metadata strings. pad4 = (top, bottom, left, right) for the
    asymmetric form, applied with F.pad before a padding-0 convolution."""
    seed(name)
    groups = int(params.get("groups", "1"))
    o, cg, kh, kw = w_shape
    assert cg * groups == x_shape[1]
    fan_in = cg * kh * kw
    x = randn(*x_shape)
    w = randn(*w_shape, scale=1.0 / math.sqrt(fan_in))
    b = randn(o, scale=1.0 / math.sqrt(fan_in)) if bias else None
    stride = pair(params.get("stride", "1,1"))
    dilation = pair(params.get("dilation", "1,1"))
    if pad4 is not None:
        top, bottom, left, right = pad4
        xp = F.pad(x, (left, right, top, bottom))
        y = F.conv2d(xp, w, b, stride=stride, padding=0, dilation=dilation, groups=groups)
    else:
        padding = pair(params.get("padding", "0,0"))
        y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    inputs = {"input": x, "weight": w}
    if b is not None:
        inputs["bias"] = b
    case(name, "conv2d", params, inputs, {"output": y})


conv_case("conv2d_a_basic", [2, 3, 11, 13], [5, 3, 3, 3], True,
          {"stride": "1,1", "padding": "1,1", "dilation": "1,1", "groups": "1"})
conv_case("conv2d_b_stride_dilation_nobias", [2, 3, 10, 8], [4, 3, 3, 2], False,
          {"stride": "2,1", "padding": "0,2", "dilation": "2,1"})
conv_case("conv2d_c_groups2", [2, 4, 9, 10], [6, 2, 3, 3], True,
          {"stride": "2,2", "padding": "1,1", "groups": "2"})
conv_case("conv2d_d_depthwise_k7", [2, 8, 9, 9], [8, 1, 7, 7], True,
          {"stride": "1,1", "padding": "3,3", "dilation": "1,1", "groups": "8"})
conv_case("conv2d_e_depthwise_mult2", [2, 3, 8, 8], [6, 1, 3, 3], True,
          {"groups": "3"})
conv_case("conv2d_f_1x1", [2, 16, 7, 5], [12, 16, 1, 1], True,
          {"stride": "1,1", "padding": "0,0", "dilation": "1,1", "groups": "1"})
conv_case("conv2d_g_k9", [2, 1, 12, 15], [4, 1, 9, 9], True, {})
conv_case("conv2d_h_kernel_eq_input", [1, 2, 5, 5], [3, 2, 5, 5], True,
          {"padding": "0,0"})
conv_case("conv2d_i_asym_padding", [2, 3, 6, 7], [4, 3, 3, 3], True,
          {"padding": "1,0,2,1"}, pad4=(1, 0, 2, 1))
conv_case("conv2d_j_one_row", [3, 2, 1, 17], [4, 2, 1, 3], True,
          {"stride": "1,1", "padding": "0,1"})


# --------------------------------------------------------------------------- conv3d

def triple(s):
    v = tuple(int(p) for p in s.split(","))
    return v * 3 if len(v) == 1 else v


def conv3d_case(name, x_shape, w_shape, bias, params, pad6=None):
    """F.conv3d on [N, C, T, H, W]. params: the metadata strings. pad6 = (front,
    back, top, bottom, left, right) for the asymmetric form, applied with F.pad
    before a padding-0 convolution."""
    seed(name)
    groups = int(params.get("groups", "1"))
    o, cg, kt, kh, kw = w_shape
    assert cg * groups == x_shape[1]
    fan_in = cg * kt * kh * kw
    x = randn(*x_shape)
    w = randn(*w_shape, scale=1.0 / math.sqrt(fan_in))
    b = randn(o, scale=1.0 / math.sqrt(fan_in)) if bias else None
    stride = triple(params.get("stride", "1"))
    dilation = triple(params.get("dilation", "1"))
    if pad6 is not None:
        front, back, top, bottom, left, right = pad6
        xp = F.pad(x, (left, right, top, bottom, front, back))
        y = F.conv3d(xp, w, b, stride=stride, padding=0, dilation=dilation, groups=groups)
    else:
        padding = triple(params.get("padding", "0"))
        y = F.conv3d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    inputs = {"input": x, "weight": w}
    if b is not None:
        inputs["bias"] = b
    case(name, "conv3d", params, inputs, {"output": y})


conv3d_case("conv3d_a_basic", [2, 3, 5, 7, 8], [4, 3, 3, 3, 3], True,
            {"stride": "1,1,1", "padding": "1,1,1", "dilation": "1,1,1", "groups": "1"})
conv3d_case("conv3d_b_stride_dilation_nobias", [1, 2, 9, 8, 7], [3, 2, 2, 3, 2], False,
            {"stride": "2,1,3", "padding": "0,2,1", "dilation": "3,2,1"})
conv3d_case("conv3d_c_groups2", [2, 4, 4, 6, 6], [6, 2, 2, 3, 3], True,
            {"stride": "1,2,2", "padding": "1", "groups": "2"})
conv3d_case("conv3d_d_depthwise", [1, 5, 6, 7, 7], [5, 1, 3, 3, 3], True,
            {"padding": "1,1,1", "groups": "5"})
conv3d_case("conv3d_e_spatial_1x11x11", [2, 1, 3, 14, 16], [4, 1, 1, 11, 11], True, {})
conv3d_case("conv3d_f_temporal_kt5", [1, 6, 9, 3, 4], [5, 6, 5, 1, 1], True,
            {"stride": "1", "dilation": "2,1,1"})
conv3d_case("conv3d_g_asym_padding", [1, 2, 3, 5, 4], [3, 2, 2, 3, 3], True,
            {"padding": "1,0,0,2,1,1"}, pad6=(1, 0, 0, 2, 1, 1))


# --------------------------------------------------------------------------- linear

def linear_case(name, x_shape, w_shape, bias, params):
    seed(name)
    o, i = w_shape
    x = randn(*x_shape)
    w = randn(o, i, scale=1.0 / math.sqrt(i))
    b = randn(o, scale=1.0 / math.sqrt(i)) if bias else None
    y = F.linear(x, w, b)
    inputs = {"input": x, "weight": w}
    if b is not None:
        inputs["bias"] = b
    case(name, "linear", params, inputs, {"output": y})


linear_case("linear_a", [7, 13], [5, 13], True, {})
linear_case("linear_b_3d_nobias", [2, 3, 9], [4, 9], False, {})
linear_case("linear_c_scalar", [1, 1], [1, 1], True, {})


# --------------------------------------------------------------------------- activation

def activation_input(name):
    seed(name)
    x = torch.empty(3 * 5 * 7, dtype=torch.float32).uniform_(-6.0, 6.0)
    # a few exact zeros and the interval ends, at fixed places
    x[0] = 0.0
    x[17] = 0.0
    x[52] = 0.0
    x[104] = 0.0
    x[1] = -6.0
    x[2] = 6.0
    return x.reshape(3, 5, 7).contiguous()


ACTIVATIONS = [
    # name, kind, params (besides kind), function
    ("elu", "elu", {}, lambda x: F.elu(x)),
    ("elu1", "elu1", {}, lambda x: F.elu(x) + 1.0),
    ("relu", "relu", {}, lambda x: F.relu(x)),
    ("sigmoid", "sigmoid", {}, lambda x: torch.sigmoid(x)),
    ("tanh", "tanh", {}, lambda x: torch.tanh(x)),
    ("softplus", "softplus", {}, lambda x: F.softplus(x)),
    ("softplus_beta2_th5", "softplus", {"beta": "2.0", "threshold": "5.0"},
     lambda x: F.softplus(x, beta=2.0, threshold=5.0)),
    ("gelu", "gelu", {}, lambda x: F.gelu(x)),
    ("silu", "silu", {}, lambda x: F.silu(x)),
]

for short, kind, extra, fn in ACTIVATIONS:
    name = "activation_" + short
    x = activation_input(name)
    case(name, "activation", {"kind": kind, **extra}, {"input": x}, {"output": fn(x)})


# --------------------------------------------------------------------------- batch_norm

def batch_norm_case(name, x_shape, params):
    seed(name)
    c = x_shape[1]
    x = randn(*x_shape)
    mean = randn(c, scale=0.5)
    var = (torch.rand(c, dtype=torch.float32) + 0.5).contiguous()
    w = (1.0 + randn(c, scale=0.3)).contiguous()
    b = randn(c, scale=0.3)
    eps = float(params.get("eps", "1e-5"))
    y = F.batch_norm(x, mean, var, w, b, training=False, eps=eps)
    case(name, "batch_norm", params,
         {"input": x, "running_mean": mean, "running_var": var, "weight": w, "bias": b},
         {"output": y})


batch_norm_case("batch_norm_a_nchw", [4, 6, 5, 3], {"eps": "1e-5"})
batch_norm_case("batch_norm_b_nc", [5, 3], {})
batch_norm_case("batch_norm_c_ncl_eps1e-3", [2, 4, 9], {"eps": "1e-3"})


# --------------------------------------------------------------------------- layer_norm

def layer_norm_case(name, x_shape, affine, params):
    seed(name)
    dims = int(params.get("dims", "1"))
    eps = float(params.get("eps", "1e-5"))
    norm_shape = x_shape[len(x_shape) - dims:]
    x = randn(*x_shape)
    inputs = {"input": x}
    w = b = None
    if affine:
        w = (1.0 + randn(*norm_shape, scale=0.3)).contiguous()
        b = randn(*norm_shape, scale=0.3)
        inputs["weight"] = w
        inputs["bias"] = b
    y = F.layer_norm(x, norm_shape, w, b, eps=eps)
    case(name, "layer_norm", params, inputs, {"output": y})


layer_norm_case("layer_norm_a", [6, 10], True, {})
layer_norm_case("layer_norm_b_dims2", [3, 4, 5, 6], True, {"dims": "2", "eps": "1e-5"})
layer_norm_case("layer_norm_c_noaffine", [5, 33], False, {"dims": "1"})
layer_norm_case("layer_norm_d_dims3_eps1e-3", [2, 3, 7], True, {"dims": "3", "eps": "1e-3"})


# --------------------------------------------------------------------------- box filter (float64)

def box_sum(plane, kh, kw):
    """Window sums of a float64 [N,C,H,W] tensor, each plane on its own: 'SAME'
    zero padding, stride 1, output the same size. The window at row i covers
    rows [i - (kh-1)//2, i - (kh-1)//2 + kh - 1] (for even kh it leans down,
    like TF 'SAME'), the same for columns; positions outside the image are
    zeros and count in the sum. Windows may be larger than the image."""
    assert plane.dtype == torch.float64 and plane.dim() == 4
    n, c, h, w = plane.shape
    bh, bw = (kh - 1) // 2, (kw - 1) // 2
    xp = F.pad(plane.reshape(n * c, 1, h, w), (bw, kw - 1 - bw, bh, kh - 1 - bh))
    ones = torch.ones(1, 1, kh, kw, dtype=torch.float64)
    return F.conv2d(xp, ones).reshape(n, c, h, w)


# --------------------------------------------------------------------------- divisive_norm

def divisive_norm_ref(x, gamma, beta, params):
    """docs/ops.md, divisive normalization, with the engine's parameters. Returns (output, centered)
    in float64."""
    x = x.to(torch.float64)
    field = params.get("field", "local")
    sigma = float(params.get("sigma", "1.0"))
    if field == "local":
        sh, sw = pair(params.get("sum_window", "3,3"))
        ph, pw = pair(params.get("sup_window", "3,3"))
        divisor = params.get("sup_divisor", "sum_window")
        d = {"sum_window": sh * sw, "sup_window": ph * pw}[divisor]
        m = x.mean(dim=1, keepdim=True)                  # [N,1,H,W]
        mu = box_sum(m, sh, sw) / (sh * sw)
        v = x - mu
        q = (v * v).mean(dim=1, keepdim=True)
        s2 = box_sum(q, ph, pw) / d
    else:
        dims = {"batch": (0, 2, 3), "layer": (1, 2, 3)}[field]
        mu = x.mean(dim=dims, keepdim=True)
        v = x - mu
        s2 = (v * v).mean(dim=dims, keepdim=True)        # biased variance
    y = v / torch.sqrt(s2 + sigma * sigma)
    c = x.shape[1]
    if gamma is not None:
        y = y * gamma.to(torch.float64).reshape(1, c, 1, 1)
    if beta is not None:
        y = y + beta.to(torch.float64).reshape(1, c, 1, 1)
    return y, v


def divisive_norm_case(name, x_shape, params, gamma=False, beta=False):
    seed(name)
    c = x_shape[1]
    x = uniform(*x_shape, lo=-2.0, hi=2.0)
    g = (1.0 + randn(c, scale=0.3)).contiguous() if gamma else None
    b = randn(c, scale=0.3) if beta else None
    y, v = divisive_norm_ref(x, g, b, params)
    inputs = {"input": x}
    if g is not None:
        inputs["gamma"] = g
    if b is not None:
        inputs["beta"] = b
    case(name, "divisive_norm", params, inputs,
         {"output": y.to(torch.float32), "centered": v.to(torch.float32)})


divisive_norm_case("divisive_norm_a_defaults", [2, 5, 7, 9],
                   {"sum_window": "3,3", "sup_window": "3,3", "sigma": "1.0",
                    "sup_divisor": "sum_window", "field": "local"})
divisive_norm_case("divisive_norm_b_sum5_sup3", [1, 3, 6, 6],
                   {"sum_window": "5,5", "sup_window": "3,3", "sigma": "0.5"})
divisive_norm_case("divisive_norm_c_sup_divisor", [1, 3, 6, 6],
                   {"sum_window": "5,5", "sup_window": "3,3", "sigma": "0.5",
                    "sup_divisor": "sup_window"})
divisive_norm_case("divisive_norm_d_even_windows", [2, 4, 5, 7],
                   {"sum_window": "4,2", "sup_window": "2,3"})
divisive_norm_case("divisive_norm_e_windows_gt_image", [1, 2, 4, 5],
                   {"sum_window": "9,9", "sup_window": "11,7"})
divisive_norm_case("divisive_norm_f_1x1", [3, 4, 1, 1], {})
divisive_norm_case("divisive_norm_g_one_channel", [2, 1, 8, 8], {})
divisive_norm_case("divisive_norm_h_batch_affine", [3, 4, 5, 6], {"field": "batch"},
                   gamma=True, beta=True)
divisive_norm_case("divisive_norm_i_layer_sigma0.1", [2, 3, 4, 5],
                   {"field": "layer", "sigma": "0.1"})
divisive_norm_case("divisive_norm_j_gamma_only", [1, 6, 5, 5], {"field": "local"},
                   gamma=True)


# --------------------------------------------------------------------------- neurn

def neurn_ref(x, params):
    """docs/ops.md, NeuRN, with zero padding: local population standard
    deviation over a k x k window (padded zeros count as values), divided by
    its maximum per (n, c) ("channel") or per n ("image") plus eps. float64."""
    x = x.to(torch.float64)
    k = int(params.get("kernel", "3"))
    scope = params.get("max_scope", "channel")
    eps = float(params.get("eps", "1e-8"))
    mean = box_sum(x, k, k) / (k * k)
    var = (box_sum(x * x, k, k) / (k * k) - mean * mean).clamp_min(0.0)
    sd = torch.sqrt(var)
    dims = {"channel": (2, 3), "image": (1, 2, 3)}[scope]
    return sd / (sd.amax(dim=dims, keepdim=True) + eps)


def neurn_case(name, x_shape, params, make=None):
    """make(shape) -> float32 input, drawn after the seed; default uniform [0,1]."""
    seed(name)
    x = make(x_shape) if make else uniform(*x_shape, lo=0.0, hi=1.0)
    y = neurn_ref(x, params)
    case(name, "neurn", params, {"input": x}, {"output": y.to(torch.float32)})


def bytes_like(shape):
    # integers 0..255 as float32, like an 8-bit image
    return torch.randint(0, 256, tuple(shape)).to(torch.float32).contiguous()


def constant_channel0(shape):
    x = uniform(*shape, lo=0.0, hi=1.0)
    x[:, 0] = 7.0
    return x.contiguous()


neurn_case("neurn_a_defaults", [2, 3, 11, 13],
           {"kernel": "3", "max_scope": "channel", "eps": "1e-8"})
neurn_case("neurn_b_k5_image", [1, 3, 9, 9], {"kernel": "5", "max_scope": "image"})
neurn_case("neurn_c_k4_even", [2, 2, 7, 6], {"kernel": "4"})
neurn_case("neurn_d_k11_gt_image", [1, 2, 6, 8], {"kernel": "11"})
neurn_case("neurn_e_1x1", [2, 3, 1, 1], {})
neurn_case("neurn_f_8bit_range", [1, 1, 16, 16], {"kernel": "3"}, make=bytes_like)
neurn_case("neurn_g_constant_channel", [1, 2, 5, 5], {}, make=constant_channel0)
neurn_case("neurn_h_k1_zero_sd", [2, 3, 3, 4], {"kernel": "1"})


# --------------------------------------------------------------------------- max_pool2d, avg_pool2d


def pool_case(name, op, x_shape, params, nan_at=None):
    """torch.nn.functional.{max,avg}_pool2d on a standard normal input (optionally with NaN at
    flat indices `nan_at`); the case's parameters are the eval ones (stride defaults to kernel)."""
    seed(name)
    x = randn(*x_shape)
    if nan_at:
        x.view(-1)[list(nan_at)] = float("nan")
    k = pair(params["kernel"])
    kw = dict(kernel_size=k, stride=pair(params.get("stride", params["kernel"])),
              padding=pair(params.get("padding", "0,0")),
              ceil_mode=params.get("ceil_mode", "false") == "true")
    if op == "max_pool2d":
        y = F.max_pool2d(x, dilation=pair(params.get("dilation", "1,1")), **kw)
    else:
        d = params.get("divisor_override")
        y = F.avg_pool2d(x, count_include_pad=params.get("count_include_pad", "true") == "true",
                         divisor_override=int(d) if d else None, **kw)
    case(name, op, params, {"input": x}, {"output": y.contiguous()})


pool_case("max_pool2d_a_2x2", "max_pool2d", [2, 3, 8, 8], {"kernel": "2"})
pool_case("max_pool2d_b_odd_ceil_pad", "max_pool2d", [1, 2, 7, 9],
          {"kernel": "3", "stride": "2", "padding": "1", "ceil_mode": "true"})
pool_case("max_pool2d_c_dilated", "max_pool2d", [1, 2, 10, 11],
          {"kernel": "3,2", "stride": "2,1", "dilation": "2,3", "padding": "1,0"})
pool_case("avg_pool2d_a_2x2", "avg_pool2d", [2, 3, 8, 8], {"kernel": "2"})
pool_case("avg_pool2d_b_ceil_pad_include", "avg_pool2d", [1, 2, 5, 7],
          {"kernel": "2", "padding": "1", "ceil_mode": "true"})
pool_case("avg_pool2d_c_ceil_pad_exclude", "avg_pool2d", [1, 2, 6, 6],
          {"kernel": "3", "stride": "2", "padding": "1", "ceil_mode": "true",
           "count_include_pad": "false"})
pool_case("avg_pool2d_d_divisor", "avg_pool2d", [1, 3, 9, 5],
          {"kernel": "3,2", "stride": "1,2", "padding": "1", "divisor_override": "5"})


# --------------------------------------------------------------------------- write + check

def golden_files():
    return [(name, op, params, inputs, outputs, expected_meta(SCRIPT, name))
            for name, op, params, inputs, outputs in CASES]


def main():
    write_all(golden_files())
    total = check_all(golden_files(), 200 * 1024, 2 * 1024 * 1024)
    print(f"torch {torch.__version__}: {summary(len(CASES), total)}")
    for name, op, params, inputs, outputs in CASES:
        print(f"  {name:36s} {op:13s} {describe(params, inputs, outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
