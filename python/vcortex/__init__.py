"""vcortex: a GPU compute engine for models of the visual system, from Python.

numpy arrays in, numpy arrays out. Every array argument is converted to float32 C-contiguous
(float16 and float64 arrays, non-contiguous views, and objects with ``.numpy()`` such as torch
tensors are converted; integer, boolean, complex and object arrays are refused with a
``TypeError`` naming the argument). Each op is one submit to the device. What the engine refuses
raises :class:`VcortexError` (a ``ValueError``) with the engine's message; a missing adapter or a
device failure raises :class:`DeviceError`; a bug inside the engine raises :class:`InternalError`,
never a crash.

The ops take PyTorch's argument names and defaults (``torch.nn.functional``; nflows for the
spline, diffusers for the scheduler steps). The models are those the ``vcortex`` command runs:
:class:`Sensorium`, :class:`Cotrain`, :class:`Flow`, :class:`Cgnf` and :class:`Platypose`, each
loaded from a safetensors file or a dict of arrays (a PyTorch ``state_dict``) and a JSON config
(a path or a dict). Without a ``context=`` argument everything runs on one default
:class:`Context`, opened on first use.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _vcortex as _native
from ._vcortex import DeviceError, InternalError, VcortexError

__version__ = "0.1.0"

__all__ = [
    "Context",
    "default_context",
    "adapters",
    "read_safetensors",
    "write_safetensors",
    "VcortexError",
    "DeviceError",
    "InternalError",
    "Sensorium",
    "Cotrain",
    "Latent",
    "Video",
    "VideoStream",
    "LatentStream",
    "Flow",
    "Cgnf",
    "Platypose",
    "load",
    "from_state_dict",
    "conv2d",
    "conv3d",
    "scores",
    "conv_gru",
    "gru",
    "zig_readout",
    "zig_map",
    "zig_moments",
    "zig_latent_params",
    "zig_latent_loglik",
    "linear",
    "activation",
    "relu",
    "elu",
    "elu1",
    "sigmoid",
    "tanh",
    "softplus",
    "gelu",
    "silu",
    "adaptive_elu",
    "batch_norm",
    "layer_norm",
    "divisive_norm",
    "neurn",
    "max_pool2d",
    "avg_pool2d",
    "grid_sample",
    "gaussian_readout",
    "poisson_nll",
    "zig_loglik",
    "affine_coupling",
    "rq_spline",
    "ddpm_step",
    "ddim_step",
    "run_op",
]


# --------------------------------------------------------------------------------------------
# Context


class Context:
    """One device and everything that lives as long as it.

    ``adapter`` picks the adapter by a case-insensitive part of its name or by its backend
    (``"vulkan"``, ``"gl"``, ``"metal"``, ``"dx12"``), as ``VCORTEX_ADAPTER`` does for the
    command line; ``None`` takes ``VCORTEX_ADAPTER`` if set, else the best device (a real GPU
    before a software rasterizer). Raises :class:`DeviceError` when nothing matches.
    """

    def __init__(self, adapter: Optional[str] = None) -> None:
        if adapter is not None and not isinstance(adapter, str):
            raise TypeError(f"adapter: expected a string or None, got {type(adapter).__name__}")
        self._c = _native.Context(adapter)

    def info(self) -> Dict[str, Any]:
        """The adapter (name, backend, device_type, driver), its optional features, its limits,
        the buffer pool's state and the shader checks, as a dict."""
        return self._c.info()

    def trim(self) -> None:
        """Frees the idle buffers the pool keeps for reuse."""
        self._c.trim()

    def __repr__(self) -> str:
        return repr(self._c)


_default: Optional[Context] = None


def default_context() -> Context:
    """The context used where no ``context=`` is given (opened on first use)."""
    global _default
    if _default is None:
        _default = Context()
    return _default


def _ctx(context: Optional[Context]):
    if context is None:
        return default_context()._c
    if not isinstance(context, Context):
        raise TypeError(f"context: expected a vcortex.Context, got {type(context).__name__}")
    return context._c


def adapters() -> list:
    """Every adapter wgpu sees, as dicts (name, backend, device_type, driver)."""
    return _native.adapters()


def read_safetensors(path, *, weights: bool = False, metadata: bool = False):
    """The tensors of a safetensors file as ``{name: float32 array}`` (F32, F16, BF16 and F64
    widened or narrowed to float32; with ``weights=True`` integer and boolean tensors too, as a
    PyTorch state dict's buffers). ``metadata=True`` returns ``(tensors, metadata)``. The
    engine's own reader: no ``safetensors`` package needed."""
    tensors, meta = _native.read_safetensors(os.fspath(path), bool(weights))
    return (tensors, meta) if metadata else tensors


def write_safetensors(path, tensors: Dict[str, Any], metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes ``{name: array}`` as float32 tensors to a safetensors file, with string metadata."""
    if not isinstance(tensors, dict):
        raise TypeError(f"tensors: expected a dict of arrays, got {type(tensors).__name__}")
    meta = {} if metadata is None else metadata
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise TypeError("metadata: expected a dict of str to str")
    _native.write_safetensors(os.fspath(path), {k: _array(v, k) for k, v in tensors.items()}, meta)


# --------------------------------------------------------------------------------------------
# Argument conversion


def _array(x: Any, name: str, allow_int: bool = False) -> np.ndarray:
    """``x`` as a float32 C-contiguous array; refuses what is not a real-valued array."""
    if isinstance(x, np.ndarray):
        a = x
    elif hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch tensor (torch is never imported)
        t = x.detach().cpu()
        if allow_int or t.is_floating_point():
            t = t.float()
        a = t.numpy()
    elif hasattr(x, "numpy") and callable(x.numpy):
        a = np.asarray(x.numpy())
    elif isinstance(x, (list, tuple, float, int)) and not isinstance(x, bool):
        a = np.asarray(x)
    else:
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    kind = a.dtype.kind
    if kind != "f" and not (allow_int and kind in "iub"):
        raise TypeError(
            f"{name}: dtype {a.dtype} is not a floating-point dtype "
            "(pass float32; float16 and float64 are converted)"
        )
    return np.ascontiguousarray(a, dtype=np.float32)


def _opt(x: Any, name: str) -> Optional[np.ndarray]:
    return None if x is None else _array(x, name)


def _int(v: Any, name: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name}: {v} must be >= {minimum}")
    return int(v)


def _ints(v: Any, name: str, lengths: Sequence[int] = (1, 2)) -> str:
    """An int or a tuple of ints as the engine's comma-separated list."""
    vals = [v] if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(vals, (list, tuple)) or len(vals) not in lengths:
        raise TypeError(f"{name}: expected an int or a tuple of {' or '.join(map(str, lengths))} ints, got {v!r}")
    return ",".join(str(_int(x, name)) for x in vals)


def _float(v: Any, name: str) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{name}: {f} is not finite")
    return repr(f)


def _bool(v: Any, name: str) -> str:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(v).__name__}")
    return "true" if v else "false"


def _choice(v: Any, name: str, allowed: Sequence[str]) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise ValueError(f"{name}: {v!r} is not one of {', '.join(map(repr, allowed))}")
    return v


def run_op(
    op: str,
    tensors: Mapping[str, Any],
    params: Optional[Mapping[str, str]] = None,
    *,
    context: Optional[Context] = None,
) -> Dict[str, np.ndarray]:
    """Runs one op of the engine's op table in one submit, with the tensor and parameter names
    of ``vcortex eval``'s case files (parameters as strings, as in a case file's metadata).
    Returns the op's named outputs. The functions below are this with PyTorch's names."""
    if not isinstance(op, str):
        raise TypeError(f"op: expected a string, got {type(op).__name__}")
    arrays = {k: _array(v, f"{op}: {k}") for k, v in tensors.items() if v is not None}
    return _native.run_op(_ctx(context), op, arrays, dict(params or {}))


_OPTIONAL = {op: set(spec["optional"]) for op, spec in _native.op_table().items()}


def _run(op: str, context: Optional[Context], params: Dict[str, Optional[str]], **tensors: Any):
    optional = _OPTIONAL[op]
    arrays = {k: _array(v, k) for k, v in tensors.items() if v is not None or k not in optional}
    return _native.run_op(_ctx(context), op, arrays, {k: v for k, v in params.items() if v is not None})


# --------------------------------------------------------------------------------------------
# Ops


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, context=None) -> np.ndarray:
    """``torch.nn.functional.conv2d``: input [N, C, H, W], weight [O, C/groups, KH, KW], bias [O].

    ``padding`` is an int, ``(ph, pw)``, ``(top, bottom, left, right)`` (the engine's own
    asymmetric form), ``"valid"`` or ``"same"`` (stride 1; an odd total goes to the bottom and
    right, as PyTorch pads)."""
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same":
            if stride not in (1, (1, 1), [1, 1]):
                raise ValueError("padding='same' is not supported for strided convolutions")
            kh, kw = np.shape(weight)[2:4] if np.ndim(weight) == 4 else (1, 1)
            dh, dw = (dilation, dilation) if isinstance(dilation, int) else tuple(dilation)
            th, tw = dh * (kh - 1), dw * (kw - 1)
            padding = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(f"padding: {padding!r} is not 'valid' or 'same'")
    pad = _ints(padding, "padding", (1, 2, 4))
    if pad.count(",") == 1:  # (ph, pw) means ph on top and bottom, pw left and right
        ph, pw = pad.split(",")
        pad = f"{ph},{ph},{pw},{pw}"
    params = {"stride": _ints(stride, "stride"), "padding": pad, "dilation": _ints(dilation, "dilation")}
    params["groups"] = str(_int(groups, "groups", 1))
    return _run("conv2d", context, params, input=input, weight=weight, bias=bias)["output"]


def linear(input, weight, bias=None, *, context=None) -> np.ndarray:
    """``torch.nn.functional.linear``: input [..., I], weight [O, I], bias [O] → [..., O]."""
    return _run("linear", context, {}, input=input, weight=weight, bias=bias)["output"]


_ACTIVATIONS = ("identity", "relu", "elu", "elu1", "sigmoid", "tanh", "softplus", "gelu", "silu", "adaptive_elu")


def activation(input, kind: str, *, beta=None, threshold=None, xshift=None, yshift=None, context=None) -> np.ndarray:
    """An activation by name: ``identity``, ``relu``, ``elu``, ``elu1`` (ELU + 1), ``sigmoid``,
    ``tanh``, ``softplus`` (``beta``, ``threshold``), ``gelu`` (erf form), ``silu`` or
    ``adaptive_elu`` (``xshift``, ``yshift``)."""
    params = {"kind": _choice(kind, "kind", _ACTIVATIONS)}
    for k, v in (("beta", beta), ("threshold", threshold), ("xshift", xshift), ("yshift", yshift)):
        if v is not None:
            params[k] = _float(v, k)
    return _run("activation", context, params, input=input)["output"]


def relu(input, *, context=None) -> np.ndarray:
    """``torch.nn.functional.relu``."""
    return activation(input, "relu", context=context)


def elu(input, alpha=1.0, *, context=None) -> np.ndarray:
    """``torch.nn.functional.elu`` (``alpha`` = 1 only)."""
    if float(alpha) != 1.0:
        raise ValueError(f"alpha: only 1.0 is supported, got {alpha}")
    return activation(input, "elu", context=context)


def elu1(input, *, context=None) -> np.ndarray:
    """ELU(x) + 1, neuralpredictors' output nonlinearity."""
    return activation(input, "elu1", context=context)


def sigmoid(input, *, context=None) -> np.ndarray:
    """``torch.sigmoid``."""
    return activation(input, "sigmoid", context=context)


def tanh(input, *, context=None) -> np.ndarray:
    """``torch.tanh``."""
    return activation(input, "tanh", context=context)


def softplus(input, beta=1.0, threshold=20.0, *, context=None) -> np.ndarray:
    """``torch.nn.functional.softplus``: log(1 + exp(beta·x)) / beta, x where beta·x > threshold."""
    return activation(input, "softplus", beta=beta, threshold=threshold, context=context)


def gelu(input, approximate="none", *, context=None) -> np.ndarray:
    """``torch.nn.functional.gelu`` (the exact erf form; ``approximate='none'`` only)."""
    if approximate != "none":
        raise ValueError(f"approximate: only 'none' (the erf form) is supported, got {approximate!r}")
    return activation(input, "gelu", context=context)


def silu(input, *, context=None) -> np.ndarray:
    """``torch.nn.functional.silu``."""
    return activation(input, "silu", context=context)


def adaptive_elu(input, xshift=0.0, yshift=0.0, *, context=None) -> np.ndarray:
    """neuralpredictors' adaptive ELU: elu(x − xshift) + yshift."""
    return activation(input, "adaptive_elu", xshift=xshift, yshift=yshift, context=context)


def batch_norm(
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
    *,
    context=None,
) -> np.ndarray:
    """``torch.nn.functional.batch_norm`` in inference mode (``training=False`` only): input
    [N, C, ...] normalized per channel by the running statistics; ``weight`` and ``bias`` default
    to ones and zeros. ``momentum`` is accepted and unused, as in inference."""
    if training:
        raise ValueError("training: only inference (training=False) is supported")
    mean = _array(running_mean, "running_mean")
    c = mean.shape[0] if mean.ndim == 1 else 1
    weight = np.ones(c, np.float32) if weight is None else weight
    bias = np.zeros(c, np.float32) if bias is None else bias
    params = {"eps": _float(eps, "eps")}
    return _run(
        "batch_norm",
        context,
        params,
        input=input,
        running_mean=mean,
        running_var=running_var,
        weight=weight,
        bias=bias,
    )["output"]


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5, *, context=None) -> np.ndarray:
    """``torch.nn.functional.layer_norm`` over the trailing ``normalized_shape`` dims."""
    x = _array(input, "input")
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else tuple(normalized_shape)
    if not shape or x.shape[x.ndim - len(shape) :] != tuple(int(s) for s in shape) or len(shape) > x.ndim:
        raise ValueError(f"normalized_shape: {list(shape)} is not the trailing shape of input {list(x.shape)}")
    params = {"dims": str(len(shape)), "eps": _float(eps, "eps")}
    return _run("layer_norm", context, params, input=x, weight=weight, bias=bias)["output"]


def divisive_norm(
    input,
    gamma=None,
    beta=None,
    field="local",
    sum_window=3,
    sup_window=3,
    sigma=1.0,
    sup_divisor="sum_window",
    return_centered=False,
    *,
    context=None,
):
    """Divisive normalization of input [N, C, H, W] (docs/ops.md): ``field`` ``local`` (windows
    ``sum_window`` and ``sup_window``), ``batch`` or ``layer``; eps = sigma²; ``gamma`` and
    ``beta`` [C] optional. Returns the output, or (output, centered) with ``return_centered``."""
    params = {
        "field": _choice(field, "field", ("local", "batch", "layer")),
        "sum_window": _ints(sum_window, "sum_window"),
        "sup_window": _ints(sup_window, "sup_window"),
        "sigma": _float(sigma, "sigma"),
        "sup_divisor": _choice(sup_divisor, "sup_divisor", ("sum_window", "sup_window")),
    }
    out = _run("divisive_norm", context, params, input=input, gamma=gamma, beta=beta)
    return (out["output"], out["centered"]) if return_centered else out["output"]


def neurn(input, kernel=3, max_scope="channel", eps=1e-8, *, context=None) -> np.ndarray:
    """NeuRN of input [N, C, H, W] (docs/ops.md): a ``kernel`` × ``kernel`` window, the maximum
    per channel (``max_scope='channel'``) or per image (``'image'``)."""
    params = {
        "kernel": str(_int(kernel, "kernel", 1)),
        "max_scope": _choice(max_scope, "max_scope", ("channel", "image")),
        "eps": _float(eps, "eps"),
    }
    return _run("neurn", context, params, input=input)["output"]


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *, context=None):
    """``torch.nn.functional.max_pool2d`` (no ``return_indices``)."""
    params = {
        "kernel": _ints(kernel_size, "kernel_size"),
        "stride": None if stride is None or stride == [] else _ints(stride, "stride"),
        "padding": _ints(padding, "padding"),
        "dilation": _ints(dilation, "dilation"),
        "ceil_mode": _bool(ceil_mode, "ceil_mode"),
    }
    return _run("max_pool2d", context, params, input=input)["output"]


def avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    *,
    context=None,
):
    """``torch.nn.functional.avg_pool2d``."""
    params = {
        "kernel": _ints(kernel_size, "kernel_size"),
        "stride": None if stride is None or stride == [] else _ints(stride, "stride"),
        "padding": _ints(padding, "padding"),
        "ceil_mode": _bool(ceil_mode, "ceil_mode"),
        "count_include_pad": _bool(count_include_pad, "count_include_pad"),
        "divisor_override": None if divisor_override is None else str(_int(divisor_override, "divisor_override", 1)),
    }
    return _run("avg_pool2d", context, params, input=input)["output"]


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None, *, context=None):
    """``torch.nn.functional.grid_sample`` (bilinear, zero padding): input [N, C, H, W], grid
    [N, Ho, Wo, 2] → [N, C, Ho, Wo]. ``align_corners=None`` is False, as in PyTorch."""
    _choice(mode, "mode", ("bilinear",))
    _choice(padding_mode, "padding_mode", ("zeros",))
    params = {"align_corners": _bool(bool(align_corners), "align_corners")}
    return _run("grid_sample", context, params, input=input, grid=grid)["output"]


def gaussian_readout(input, mu, features, bias=None, shift=None, align_corners=True, *, context=None):
    """neuralpredictors' ``FullGaussian2d`` in eval mode, before its output nonlinearity: input
    [N, C, H, W], mu [M, 2] (clamped to [−1, 1]), features [C, M], bias [M], shift [N, 2] →
    [N, M]."""
    params = {"align_corners": _bool(align_corners, "align_corners")}
    out = _run("gaussian_readout", context, params, input=input, mu=mu, features=features, bias=bias, shift=shift)
    return out["output"]


def poisson_nll(input, target, log_input=False, full=False, eps=1e-8, reduction="mean", *, context=None):
    """``torch.nn.functional.poisson_nll_loss`` with rates (``log_input=False``, the only form):
    input − target·log(input + eps), reduced by ``reduction`` (``'none'``, ``'sum'``, ``'mean'``).
    PyTorch's default is ``log_input=True``: pass rates here."""
    if log_input:
        raise ValueError("log_input: only rates (log_input=False) are supported")
    if full:
        raise ValueError("full: the Stirling term (full=True) is not supported")
    params = {"eps": _float(eps, "eps"), "reduction": _choice(reduction, "reduction", ("none", "sum", "mean"))}
    return _run("poisson_nll", context, params, rate=input, target=target)["output"]


def zig_loglik(target, q, theta, k, loc, *, context=None) -> np.ndarray:
    """The zero-inflated gamma log-density per element (docs/ops.md); all arrays of one shape."""
    return _run("zig_loglik", context, {}, target=target, q=q, theta=theta, k=k, loc=loc)["output"]


def affine_coupling(input, shift, scale_raw, mask, inverse=False, *, context=None) -> Tuple[np.ndarray, np.ndarray]:
    """nflows' affine coupling transform: input [N, D], shift and scale_raw [N, T] for the T
    features where ``mask`` [D] is > 0 (scale = sigmoid(scale_raw + 2) + 1e-3). Returns
    (output [N, D], logabsdet [N])."""
    out = _run(
        "affine_coupling",
        context,
        {"inverse": _bool(inverse, "inverse")},
        input=input,
        shift=shift,
        scale_raw=scale_raw,
        mask=mask,
    )
    return out["output"], out["logdet"]


def rq_spline(
    inputs,
    unnormalized_widths,
    unnormalized_heights,
    unnormalized_derivatives,
    inverse=False,
    tails="linear",
    tail_bound=1.0,
    min_bin_width=1e-3,
    min_bin_height=1e-3,
    min_derivative=1e-3,
    *,
    context=None,
) -> Tuple[np.ndarray, np.ndarray]:
    """nflows' ``unconstrained_rational_quadratic_spline`` (linear tails): inputs [N, D], widths
    and heights [N, D, K], derivatives [N, D, K − 1]. Returns (outputs, logabsdet), both [N, D]."""
    _choice(tails, "tails", ("linear",))
    params = {
        "inverse": _bool(inverse, "inverse"),
        "tail_bound": _float(tail_bound, "tail_bound"),
        "min_bin_width": _float(min_bin_width, "min_bin_width"),
        "min_bin_height": _float(min_bin_height, "min_bin_height"),
        "min_derivative": _float(min_derivative, "min_derivative"),
    }
    out = _run(
        "rq_spline",
        context,
        params,
        input=inputs,
        widths=unnormalized_widths,
        heights=unnormalized_heights,
        derivatives=unnormalized_derivatives,
    )
    return out["output"], out["logabsdet"]


def _scheduler(kw: Dict[str, Any], timestep) -> Dict[str, str]:
    t_train = _int(kw["num_train_timesteps"], "num_train_timesteps", 1)
    steps = kw["num_inference_steps"]
    p = {
        "timestep": str(_int(timestep, "timestep")),
        "num_train_timesteps": str(t_train),
        "num_inference_steps": str(t_train if steps is None else _int(steps, "num_inference_steps", 1)),
        "beta_start": _float(kw["beta_start"], "beta_start"),
        "beta_end": _float(kw["beta_end"], "beta_end"),
        "beta_schedule": _choice(kw["beta_schedule"], "beta_schedule", ("linear", "scaled_linear", "squaredcos_cap_v2")),
        "prediction_type": _choice(kw["prediction_type"], "prediction_type", ("epsilon", "sample", "v_prediction")),
        "clip_sample": _bool(kw["clip_sample"], "clip_sample"),
        "clip_sample_range": _float(kw["clip_sample_range"], "clip_sample_range"),
        "thresholding": _bool(kw["thresholding"], "thresholding"),
        "dynamic_thresholding_ratio": _float(kw["dynamic_thresholding_ratio"], "dynamic_thresholding_ratio"),
        "sample_max_value": _float(kw["sample_max_value"], "sample_max_value"),
    }
    return p


def ddpm_step(
    model_output,
    timestep,
    sample,
    variance_noise=None,
    *,
    num_train_timesteps=1000,
    num_inference_steps=None,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    variance_type="fixed_small",
    clip_sample=True,
    clip_sample_range=1.0,
    prediction_type="epsilon",
    thresholding=False,
    dynamic_thresholding_ratio=0.995,
    sample_max_value=1.0,
    context=None,
) -> Dict[str, np.ndarray]:
    """diffusers' ``DDPMScheduler.step`` with the scheduler's config as keywords
    (``num_inference_steps=None``: every training step, as without ``set_timesteps``).
    ``variance_noise`` is the step's Gaussian noise (none: no noise is added). Returns
    ``{"prev_sample", "pred_original_sample"}``."""
    kw = dict(locals())
    p = _scheduler(kw, timestep)
    p["variance_type"] = _choice(variance_type, "variance_type", ("fixed_small", "fixed_large"))
    return _run("ddpm_step", context, p, sample=sample, model_output=model_output, noise=variance_noise)


def ddim_step(
    model_output,
    timestep,
    sample,
    eta=0.0,
    variance_noise=None,
    *,
    num_train_timesteps=1000,
    num_inference_steps=None,
    beta_start=0.0001,
    beta_end=0.02,
    beta_schedule="linear",
    clip_sample=True,
    clip_sample_range=1.0,
    set_alpha_to_one=True,
    steps_offset=0,
    prediction_type="epsilon",
    thresholding=False,
    dynamic_thresholding_ratio=0.995,
    sample_max_value=1.0,
    timestep_spacing="leading",
    context=None,
) -> Dict[str, np.ndarray]:
    """diffusers' ``DDIMScheduler.step`` with the scheduler's config as keywords; needs
    ``variance_noise`` when ``eta`` > 0. Returns ``{"prev_sample", "pred_original_sample"}``."""
    kw = dict(locals())
    p = _scheduler(kw, timestep)
    p["eta"] = _float(eta, "eta")
    p["set_alpha_to_one"] = _bool(set_alpha_to_one, "set_alpha_to_one")
    p["steps_offset"] = str(_int(steps_offset, "steps_offset"))
    p["timestep_spacing"] = _choice(timestep_spacing, "timestep_spacing", ("leading", "trailing", "linspace"))
    return _run("ddim_step", context, p, sample=sample, model_output=model_output, noise=variance_noise)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, *, context=None) -> np.ndarray:
    """``torch.nn.functional.conv3d``: input [N, C, T, H, W], weight [O, C/groups, KT, KH, KW],
    bias [O]. ``stride`` and ``dilation`` are an int or ``(t, h, w)``; ``padding`` an int,
    ``(pt, ph, pw)`` or the engine's asymmetric ``(front, back, top, bottom, left, right)``."""
    params = {
        "stride": _ints(stride, "stride", (1, 3)),
        "padding": _ints(padding, "padding", (1, 3, 6)),
        "dilation": _ints(dilation, "dilation", (1, 3)),
        "groups": str(_int(groups, "groups", 1)),
    }
    return _run("conv3d", context, params, input=input, weight=weight, bias=bias)["output"]


def scores(responses, predictions, image_ids=None, eps=1e-8, *, context=None) -> Dict[str, np.ndarray]:
    """The Sensorium scores per neuron of responses and predictions [trials, neurons]: the
    single-trial ``correlation``, and with ``image_ids`` [trials] (equal ids are repeats of one
    image, at least 2 each) ``repeat_correlation``, ``fev`` and ``feve`` (sensorium's
    ``utility/scores.py``)."""
    return _run("scores", context, {"eps": _float(eps, "eps")}, responses=responses, predictions=predictions,
                image_ids=image_ids)


def conv_gru(input, weights: Mapping[str, Any], groups=1, pad_input=True, *, context=None) -> np.ndarray:
    """neuralpredictors' ``GRU_Module`` (a ``ConvGRUCell`` run over time from h0 = 0) on
    input [N, C, T, H, W]: every hidden state [N, Ch, T, H', W']. ``weights`` holds the cell's
    twelve tensors ``{reset,update,out}_gate_{input,hidden}.{weight,bias}`` (a state dict's,
    without the module prefix)."""
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights: expected a mapping of the cell's tensors, got {type(weights).__name__}")
    params = {"groups": str(_int(groups, "groups", 1)), "pad_input": _bool(pad_input, "pad_input")}
    return _run("conv_gru", context, params, input=input, **dict(weights))["output"]


def gru(input, weight_ih_l0, weight_hh_l0, bias_ih_l0=None, bias_hh_l0=None, h0=None, *, context=None):
    """``torch.nn.GRU`` (one layer, ``batch_first=True``) on input [B, T, I] with its state-dict
    tensors: (output [B, T, H], h_n [1, B, H]). ``h0`` [1, B, H] defaults to zeros."""
    out = _run(
        "gru",
        context,
        {},
        input=input,
        weight_ih_l0=weight_ih_l0,
        weight_hh_l0=weight_hh_l0,
        bias_ih_l0=bias_ih_l0,
        bias_hh_l0=bias_hh_l0,
        h0=h0,
    )
    return out["output"], out["h_n"]


def zig_readout(
    input, mu, conv_weight, features, frames, conv_bias=None, bias=None, shift=None, align_corners=True, *, context=None
) -> np.ndarray:
    """The latent video model's ZIG readout on frames [B·T, C, H, W]: the Gaussian samples at mu
    [N, 2], the (time, channel) conv ``conv_weight`` [2, 1, kt, kc] (+ ``conv_bias`` [2]), the
    channel reduction by ``features`` ([C, N, 2], or as stored [1, C, 2, N]), + ``bias`` [N]:
    the logits of q and θ [2, B·T, N]. ``frames`` is T."""
    params = {"frames": str(_int(frames, "frames", 1)), "align_corners": _bool(align_corners, "align_corners")}
    return _run("zig_readout", context, params, input=input, mu=mu, conv_weight=conv_weight, features=features,
                conv_bias=conv_bias, bias=bias, shift=shift)["output"]


def zig_map(input, map: str, *, context=None) -> np.ndarray:
    """A ZIG parameter map of raw values: ``"q"`` (sigmoid·0.99999 + 1e-6), ``"theta"`` or ``"k"``
    (ELU + 1 + 1e-6), ``"loc"`` (exp)."""
    return _run("zig_map", context, {"map": _choice(map, "map", ("q", "theta", "k", "loc"))}, input=input)["output"]


def zig_moments(q, theta, k, loc, moment="mean", *, context=None) -> np.ndarray:
    """The ZIG mean (or ``moment="variance"``) from q and θ [..., N] and k, loc (that shape or [N])."""
    params = {"moment": _choice(moment, "moment", ("mean", "variance"))}
    return _run("zig_moments", context, params, q=q, theta=theta, k=k, loc=loc)["output"]


def zig_latent_params(logits, z, w_q, w_theta, *, context=None) -> Tuple[np.ndarray, np.ndarray]:
    """q and θ [S, B·T, N] of the logits [2, B·T, N] shifted by z [S, B·T, L] times w_q and
    w_theta [L, N], through the ZIG maps."""
    out = _run("zig_latent_params", context, {}, logits=logits, z=z, w_q=w_q, w_theta=w_theta)
    return out["q"], out["theta"]


def zig_latent_loglik(target, logits, z, w_q, w_theta, k, loc, *, context=None) -> np.ndarray:
    """The latent model's log-likelihood in bits of target [B·T, N]: logsumexp over the S samples
    z [S, B·T, L] of the ZIG log-density (the video-latent variant), minus log S; k and loc [N]."""
    return _run("zig_latent_loglik", context, {}, target=target, logits=logits, z=z, w_q=w_q, w_theta=w_theta,
                k=k, loc=loc)["output"]


# --------------------------------------------------------------------------------------------
# Models


def _weights(weights: Any) -> Union[str, Dict[str, np.ndarray]]:
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"weights: no such file: {path}")
        return path
    if isinstance(weights, Mapping):
        out = {}
        for k, v in weights.items():
            if not isinstance(k, str):
                raise TypeError(f"weights: keys must be strings, got {type(k).__name__}")
            out[k] = _array(v, f"weights[{k!r}]", allow_int=True)
        return out
    raise TypeError(f"weights: expected a path or a dict of arrays (a state_dict), got {type(weights).__name__}")


def _config(config: Any) -> Tuple[str, bool]:
    """(JSON text or path, is_path)."""
    if isinstance(config, Mapping):
        return json.dumps(config), False
    if isinstance(config, str) and config.lstrip().startswith("{"):
        return config, False
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config: no such file: {path}")
        return path, True
    raise TypeError(f"config: expected a path, a dict or JSON text, got {type(config).__name__}")


class _Model:
    _native_cls: Any = None

    def __init__(self, native: Any, context: Context) -> None:
        self._m = native
        self.context = context

    @classmethod
    def load(cls, weights, config, *, context: Optional[Context] = None):
        """Loads ``weights`` (a safetensors path, or a dict of arrays such as a PyTorch
        ``state_dict``, torch tensors accepted) and ``config`` (a JSON path, a dict or JSON text)
        and uploads them. A missing, unexpected, mis-shaped or non-finite key raises
        :class:`VcortexError` naming it."""
        ctx = context if context is not None else default_context()
        w = _weights(weights)
        c, is_path = _config(config)
        return cls(cls._native_cls.load(_ctx(ctx), w, c, is_path), ctx)

    def __repr__(self) -> str:
        return f"vcortex.{type(self).__name__}(on {self.context!r})"


def _batch(batch: Any) -> int:
    return _int(batch, "batch", 1)


class Sensorium(_Model):
    """A Sensorium-style model (neuralpredictors' stacked core and Gaussian readouts, one per
    data key; docs/models.md). ``Sensorium.load(weights, config)``."""

    _native_cls = _native.Sensorium

    @property
    def data_keys(self) -> list:
        """The readouts' data keys."""
        return self._m.data_keys()

    def predict(
        self,
        images,
        data_key: Optional[str] = None,
        pupil_center=None,
        behavior=None,
        batch: int = 128,
    ) -> Dict[str, np.ndarray]:
        """Responses of images [N, C, H, W] per data key (``data_key``, or every key), as
        ``{key: [N, neurons]}``; ``batch`` images per submit. ``pupil_center`` [N, 2] is needed
        by a readout with a shifter, ``behavior`` [N, B] by one with a modulator."""
        if data_key is not None and not isinstance(data_key, str):
            raise TypeError(f"data_key: expected a string or None, got {type(data_key).__name__}")
        return self._m.predict(
            _array(images, "images"),
            data_key,
            _opt(pupil_center, "pupil_center"),
            _opt(behavior, "behavior"),
            _batch(batch),
        )


class Cotrain(_Model):
    """The monkey V1 co-training twin (vgg19_bn features and legacy Gaussian readouts;
    docs/models.md). ``Cotrain.load(weights, config)``."""

    _native_cls = _native.Cotrain

    @property
    def data_keys(self) -> list:
        """The readouts' data keys."""
        return self._m.data_keys()

    def predict(self, images, data_key: Optional[str] = None, batch: int = 128) -> Dict[str, np.ndarray]:
        """Responses of images [N, C, H, W] per data key, as ``{key: [N, neurons]}``."""
        if data_key is not None and not isinstance(data_key, str):
            raise TypeError(f"data_key: expected a string or None, got {type(data_key).__name__}")
        return self._m.predict(_array(images, "images"), data_key, _batch(batch))


class Video(_Model):
    """The Sensorium 2023 video twin (a 3-D core, a Gaussian readout per frame and data key, the
    shifter per frame; docs/models.md). ``Video.load(weights, config)``."""

    _native_cls = _native.Video

    @property
    def data_keys(self) -> list:
        """The readouts' data keys."""
        return self._m.data_keys()

    def predict(self, video, data_key: Optional[str] = None, pupil_center=None) -> Dict[str, np.ndarray]:
        """Responses of clips [B, C, T, H, W] per data key, as ``{key: [B, N, T']}`` (the last T'
        frames); ``pupil_center`` [B, 2, T] for readouts with a shifter."""
        if data_key is not None and not isinstance(data_key, str):
            raise TypeError(f"data_key: expected a string or None, got {type(data_key).__name__}")
        p = None if pupil_center is None else _array(pupil_center, "pupil_center")
        return self._m.predict(_array(video, "video"), data_key, p)

    @property
    def input_channels(self) -> int:
        """The channels C of a frame (video, and behaviour channels where the config has them)."""
        return self._m.input_channels()

    def stream(self, data_key: str, batch: int, height: int, width: int) -> "VideoStream":
        """A :class:`VideoStream` into the readout of ``data_key`` for ``batch`` videos of
        ``height`` × ``width`` frames: frames fed as they come, each costing one frame's work."""
        if not isinstance(data_key, str):
            raise TypeError(f"data_key: expected a string, got {type(data_key).__name__}")
        native = self._m.stream(data_key, _batch(batch), _int(height, "height", 1), _int(width, "width", 1))
        return VideoStream(native, self)


class Latent(_Model):
    """The probabilistic video model with latent factors (a factorized 3-D core, the ZIG
    readout, a GRU response encoder; docs/models.md). ``Latent.load(weights, config)``."""

    _native_cls = _native.Latent

    @property
    def data_key(self) -> str:
        """The session's data key."""
        return self._m.data_key()

    def predict(
        self,
        video,
        responses=None,
        samples: Optional[int] = None,
        seed: Optional[int] = None,
        conditioned: Optional[bool] = None,
    ):
        """The ZIG mean of video [B, 1, T, H, W] as ``{"mean": [B, N, T']}`` (the last T' frames).
        With ``responses`` [B, N, T] the latent state is conditioned on them (the first half of
        the neurons zeroed, as upstream's evaluation) and ``"loglik_bits"`` [B, N, T'] is added;
        without them ``samples`` draws from the prior (defaults: the config's ``samples`` and
        ``seed``). ``conditioned=False`` with responses keeps the prior samples and gives the
        responses' log-likelihood under them; ``conditioned=True`` needs responses."""
        s = None if samples is None else _int(samples, "samples", 1)
        sd = None if seed is None else _int(seed, "seed")
        r = None if responses is None else _array(responses, "responses")
        if conditioned is not None and not isinstance(conditioned, bool):
            raise TypeError(f"conditioned: expected a bool or None, got {type(conditioned).__name__}")
        return self._m.predict(_array(video, "video"), r, s, sd, conditioned)

    def stream(
        self,
        batch: int,
        height: int,
        width: int,
        conditioned: bool = False,
        samples: Optional[int] = None,
        seed: Optional[int] = None,
    ) -> "LatentStream":
        """A :class:`LatentStream` of ``batch`` videos of ``height`` × ``width`` frames. With
        ``conditioned=True`` every push needs the frames' responses and the latent state is
        conditioned on them, as ``predict(video, responses)``; otherwise ``samples`` draws from
        the prior (defaults: the config's ``samples`` and ``seed``), as ``predict(video)``."""
        _bool(conditioned, "conditioned")
        s = None if samples is None else _int(samples, "samples", 1)
        sd = None if seed is None else _int(seed, "seed")
        native = self._m.stream(_batch(batch), _int(height, "height", 1), _int(width, "width", 1), bool(conditioned), s, sd)
        return LatentStream(native, self)


class VideoStream:
    """A stream of frames into one readout of a :class:`Video` model (``Video.stream``). The
    stream keeps what the next frame needs (each temporal conv's last input frames, the ConvGRU's
    state) on the device, so a push of k frames costs k frames' work and the rates equal those of
    ``Video.predict`` on the whole clip. The stream holds its model; a failed push leaves it
    unchanged."""

    def __init__(self, native: Any, model: "Video") -> None:
        self._s = native
        self.model = model

    @property
    def data_key(self) -> str:
        """The readout's data key."""
        return self._s.data_key()

    def push(self, frames, pupil_center=None) -> np.ndarray:
        """New frames [B, C, k, H, W] (with ``pupil_center`` [B, 2, k] for a readout with a
        shifter; ignored by one without, as in ``predict``) → rates [B, N, k'] of the new frames
        past the receptive field: k' = k once it is full, fewer (down to 0) while the first
        R − 1 frames of a clip fill it."""
        p = None if pupil_center is None else _array(pupil_center, "pupil_center")
        return self._s.push(_array(frames, "frames"), p)

    @property
    def frames_seen(self) -> int:
        """Frames pushed since the stream was made or reset."""
        return self._s.frames_seen()

    def reset(self) -> None:
        """Forgets every frame: the next push starts a new clip."""
        self._s.reset()

    def __repr__(self) -> str:
        return f"vcortex.VideoStream({self.data_key!r}, {self.frames_seen} frames seen)"


class LatentStream:
    """A stream of frames (and responses) into a :class:`Latent` model (``Latent.stream``). A
    push of k frames costs k frames' work. The readout's time kernel looks kt/2 frames ahead, so
    an output frame comes out kt/2 frames after the core makes it; :meth:`finish` ends the clip
    with the last ones. The pushes' and the finish's outputs, concatenated along the last axis,
    equal ``Latent.predict`` on the whole clip. The stream holds its model; a failed push leaves
    it unchanged."""

    def __init__(self, native: Any, model: "Latent") -> None:
        self._s = native
        self.model = model

    def push(self, frames, responses=None) -> Dict[str, np.ndarray]:
        """New frames [B, 1, k, H, W] (and their ``responses`` [B, N, k]: needed when
        conditioned; optional in the prior mode, then with every push since the last reset) →
        ``{"mean": [B, N, K]}`` (with responses also ``"loglik_bits"`` [B, N, K]) of the K output
        frames that became final, frames last as in ``predict``; K may be 0."""
        r = None if responses is None else _array(responses, "responses")
        return self._s.push(_array(frames, "frames"), r)

    def finish(self) -> Dict[str, np.ndarray]:
        """Ends the clip: the output frames still held back (as :meth:`push` returns them), with
        the zero padding ``predict`` has past a clip's last frame. The stream then starts over."""
        return self._s.finish()

    @property
    def frames_seen(self) -> int:
        """Frames pushed since the stream was made, reset or finished."""
        return self._s.frames_seen()

    @property
    def frames_emitted(self) -> int:
        """Output frames returned since the stream was made, reset or finished."""
        return self._s.frames_emitted()

    def reset(self) -> None:
        """Forgets every frame: the next push starts a new clip (output frame 0, noise stream 0)."""
        self._s.reset()

    def __repr__(self) -> str:
        return f"vcortex.LatentStream({self.frames_seen} frames seen, {self.frames_emitted} emitted)"


class Flow(_Model):
    """A composite normalizing flow on [N, D] (ActNorm, affine and spline couplings; nflows'
    conventions). ``Flow.load(weights, config)``."""

    _native_cls = _native.Flow

    def log_prob(self, x) -> Dict[str, np.ndarray]:
        """``{"log_prob": [N], "z": [N, D]}``: the density of each row and its base point."""
        return self._m.log_prob(_array(x, "x"))

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """``n`` samples [n, D], base draws from the engine's Philox generator scaled by
        ``temperature``."""
        return self._m.sample(_int(n, "n", 1), float(_float(temperature, "temperature")), _int(seed, "seed"))


class Cgnf(_Model):
    """The cGNF pose model (propose's CondGraphFlow). ``keypoints`` [B, J, 2] condition every
    call (``observed`` [B, J] of 0/1 or booleans, all observed by default; ``root`` [B, 3] for a
    config with a root node); without them the prior."""

    _native_cls = _native.Cgnf

    @staticmethod
    def _cond(keypoints, observed, root):
        obs = None
        if observed is not None:
            o = np.asarray(observed)
            obs = _array(o.astype(np.float32) if o.dtype == np.bool_ else o, "observed")
        return _opt(keypoints, "keypoints"), obs, _opt(root, "root")

    def log_prob(self, poses, keypoints=None, observed=None, root=None) -> Dict[str, np.ndarray]:
        """``{"log_prob": [B, J], "z": [B, J, 3]}`` for poses [B, J, 3] (log p per joint)."""
        k, o, r = self._cond(keypoints, observed, root)
        return self._m.log_prob(_array(poses, "poses"), k, o, r)

    def sample(self, n: int, keypoints=None, observed=None, root=None, temperature: float = 1.0, seed: int = 0):
        """``{"samples": [B, n, J, 3], "log_prob": [B, n, J]}``: ``n`` hypotheses per pose."""
        k, o, r = self._cond(keypoints, observed, root)
        return self._m.sample(_int(n, "n", 1), k, o, r, float(_float(temperature, "temperature")), _int(seed, "seed"))

    def mode(self, keypoints=None, observed=None, root=None) -> np.ndarray:
        """The posterior mode [B, J, 3] (z = 0 mapped through the flow)."""
        k, o, r = self._cond(keypoints, observed, root)
        return self._m.mode(k, o, r)


class Platypose(_Model):
    """The Platypose sampler (MDM denoiser, multi-view energy refinement). ``Platypose.load(
    weights, config)`` with MDM weights and a Platypose config (docs/models.md)."""

    _native_cls = _native.Platypose

    def sample(self, samples: int = 200, frames: Optional[int] = None, observations=None, seed: int = 0):
        """``{"samples": [S, F, 51]}`` (and ``"energy"`` [S] with ``observations``, a dict of the
        cameras and 2-D keypoints as in an observations file); one submit for the whole run.
        Unguided without observations, then ``frames`` is needed."""
        obs = None
        if observations is not None:
            if not isinstance(observations, Mapping):
                raise TypeError("observations: expected a dict of arrays")
            obs = {k: _array(v, f"observations[{k!r}]", allow_int=True) for k, v in observations.items()}
        f = None if frames is None else _int(frames, "frames", 1)
        return self._m.sample(_int(samples, "samples", 1), f, obs, _int(seed, "seed"))


_KINDS = {"sensorium": Sensorium, "cotrain": Cotrain, "latent": Latent, "video": Video, "flow": Flow, "cgnf": Cgnf, "platypose": Platypose}


def _kind_of(config: Mapping) -> str:
    kind = config.get("kind")
    if kind is not None:
        if kind not in _KINDS:
            raise ValueError(f"config: \"kind\" is {kind!r}, expected one of {', '.join(map(repr, _KINDS))}")
        return kind
    if "joints" in config:
        return "cgnf"
    if "mdm" in config:
        return "platypose"
    if "features" in config and "layers" in config:
        return "flow"
    return "sensorium"


def load(weights, config, *, context: Optional[Context] = None):
    """Loads the model a config describes: its ``"kind"`` (``sensorium``, ``cotrain``, ``flow``,
    ``cgnf``, ``platypose``), or without one a cGNF for a ``"joints"`` key, Platypose for
    ``"mdm"``, a flow for ``"features"`` and ``"layers"``, else a Sensorium model."""
    if isinstance(config, (str, os.PathLike)) and not str(config).lstrip().startswith("{"):
        with open(os.fspath(config)) as f:
            cfg = json.load(f)
    elif isinstance(config, str):
        cfg = json.loads(config)
    else:
        cfg = config
    if not isinstance(cfg, Mapping):
        raise TypeError("config: expected a JSON object")
    return _KINDS[_kind_of(cfg)].load(weights, cfg, context=context)


def from_state_dict(state_dict: Mapping[str, Any], config, *, context: Optional[Context] = None):
    """The model of ``config`` (as :func:`load`) from a PyTorch ``state_dict``: any mapping of
    names to arrays or to objects with ``.numpy()`` (torch tensors; torch itself is never
    imported). Integer and boolean buffers are converted as the file loader does."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"state_dict: expected a mapping of names to tensors, got {type(state_dict).__name__}")
    return load(dict(state_dict), config, context=context)
