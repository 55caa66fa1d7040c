#!/usr/bin/env python3
"""Golden data for the Sensorium model pipeline: a randomly initialised Sensorium-2022-style
baseline assembled exactly as sinzlab/sensorium's `stacked_core_full_gauss_readout` assembles it
from neuralpredictors 0.3.0 classes (Stacked2dCore, a MultiReadoutSharedParametersBase of
FullGaussian2d readouts, an MLPShifter, all inside a FiringRateEncoder), its weights as
safetensors (the full state_dict with PyTorch's key names, buffers and num_batches_tracked
included), a JSON config, images, eye positions and the model's rates computed in float64.

Rerun (from the repository root; needs torch, safetensors and neuralpredictors 0.3.0):

    pip install --no-deps --target /tmp/nplib neuralpredictors==0.3.0
    PYTHONPATH=/tmp/nplib python3 scripts/golden_sensorium.py

neuralpredictors' `layers.cores` imports torchvision at module level without using it for this
model: the import is stubbed below (no torchvision install needed). On Python >= 3.10
`collections.Iterable` is restored before the import. The output is byte-identical across reruns
with the same torch (the files are written by a small writer with a fixed key order).
Writes kernels-tests/data/sensorium/{weights,images,expected}.safetensors and config.json.

The model: Stacked2dCore(1 -> 16 channels, 9x9 input conv without padding, three depth-separable
7x7 layers, BN after every conv, ELU after every BN including the last, stack=-1) on 36x64 images,
one FullGaussian2d readout per data key ("sessA": 23 neurons, "sessB": 31 neurons), an MLPShifter
(2 -> 5 -> 5 -> 2, tanh) for "sessB" only, then ELU(y + 0) + 1. The sensorium hyperparameters are
the tutorial's (notebooks/model_tutorial/1a_model_training_sensorium.ipynb) with hidden_channels 16
instead of 64 and no grid_mean_predictor. BN running statistics and affine parameters, readout
positions (some outside [-1, 1]), features and biases are randomised so that folding and clamping
are exercised.

Checks made here: the float32 model is within 1e-5 relative of the float64 one; an independent
re-implementation of the forward from the state_dict alone (BN folded into a per-channel
scale/shift, bilinear sampling written out with align_corners=True, shift added after the clamp)
matches neuralpredictors within 1e-12 relative in float64 and 1e-5 in float32.
"""
import copy
import importlib.metadata
import json
import os
import struct
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import prepare_neuralpredictors_import  # noqa: E402

prepare_neuralpredictors_import()

from neuralpredictors.layers.cores import Stacked2dCore  # noqa: E402
from neuralpredictors.layers.encoders import FiringRateEncoder  # noqa: E402
from neuralpredictors.layers.readouts import FullGaussian2d, MultiReadoutSharedParametersBase  # noqa: E402
from neuralpredictors.layers.shifters import MLPShifter  # noqa: E402
from neuralpredictors.utils import get_module_output  # noqa: E402

OUT = os.path.join("kernels-tests", "data", "sensorium")
SCRIPT = "scripts/golden_sensorium.py"
NEURONS = {"sessA": 23, "sessB": 31}
SHIFTER_KEYS = ["sessB"]
IMAGE = (1, 36, 64)  # Sensorium images scaled by 0.25
BATCH = 5
ELU_OFFSET = 0.0
EPS = 1e-5  # BatchNorm2d's default; Stacked2dCore does not set it


class MultipleFullGaussian2d(MultiReadoutSharedParametersBase):
    """sinzlab/sensorium sensorium/models/readouts.py, verbatim."""

    _base_readout = FullGaussian2d


def build_model():
    """stacked_core_full_gauss_readout(...) of sinzlab/sensorium with the tutorial's model_config,
    minus the data loaders (shapes given directly) and the grid_mean_predictor."""
    core = Stacked2dCore(
        input_channels=IMAGE[0], hidden_channels=16, input_kern=9, hidden_kern=7, layers=4,
        gamma_input=6.3831, skip=0, final_nonlinearity=True, bias=False, momentum=0.9,
        pad_input=False, batch_norm=True, hidden_dilation=1, laplace_padding=None,
        input_regularizer="LaplaceL2norm", stack=-1, depth_separable=True, linear=False,
        attention_conv=False, hidden_padding=None, use_avg_reg=False,
    )
    in_shape = tuple(get_module_output(core, (1,) + IMAGE, use_cuda=False)[1:])
    readout = MultipleFullGaussian2d(
        in_shape_dict={k: in_shape for k in NEURONS}, n_neurons_dict=NEURONS, init_mu_range=0.3,
        bias=True, init_sigma=0.1, gamma_readout=0.0076, gauss_type="full",
        grid_mean_predictor=None, grid_mean_predictor_type=None, source_grids=None,
    )
    shifter = MLPShifter(data_keys=SHIFTER_KEYS, input_channels=2, hidden_channels_shifter=5, shift_layers=3, gamma_shifter=0)
    return FiringRateEncoder(core=core, readout=readout, shifter=shifter, elu_offset=ELU_OFFSET)


def rates(model, images, key, eye):
    """The model's forward for one data key. FiringRateEncoder applies its shifter to every data
    key when it has one, so keys without a shifter go through a shifter-less FiringRateEncoder over
    the same core and readouts (what a model trained without a shifter is)."""
    if key in model.shifter:
        return model(images, data_key=key, pupil_center=eye)
    plain = FiringRateEncoder(core=model.core, readout=model.readout, shifter=None, elu_offset=model.offset)
    return plain(images, data_key=key)


def randomise(model):
    with torch.no_grad():
        for m in model.core.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        for r in model.readout.values():
            r._mu.uniform_(-1.2, 1.2)  # some outside [-1, 1]: the readout clamps
            r._features.normal_(0, 0.3)
            r.bias.normal_(0, 0.3)


# ----------------------------------------------------------------- independent re-implementation

def reference(sd, x, key, eye, dtype):
    """The forward written out from the state_dict alone (what the engine implements)."""
    y, core = reference_readout(sd, x, key, eye, dtype)
    return F.elu(y + ELU_OFFSET) + 1, core


def reference_readout(sd, x, key, eye, dtype):
    """The core and the readout (with its shifter, if any) from the state_dict alone: the readout's
    output before the output nonlinearity, and the core's output."""
    t = {k: v.to(dtype) for k, v in sd.items() if v.is_floating_point()}
    h = x.to(dtype)
    for l in range(4):
        p = f"core.features.layer{l}"
        if l == 0:
            h = F.conv2d(h, t[f"{p}.conv.weight"])  # 9x9, padding 0, no bias
        else:
            c = h.shape[1]
            h = F.conv2d(h, t[f"{p}.ds_conv.in_depth_conv.weight"])  # 1x1
            h = F.conv2d(h, t[f"{p}.ds_conv.spatial_conv.weight"], padding=3, groups=c)  # 7x7 depthwise
            h = F.conv2d(h, t[f"{p}.ds_conv.out_depth_conv.weight"])  # 1x1
        scale = t[f"{p}.norm.weight"] / torch.sqrt(t[f"{p}.norm.running_var"] + EPS)
        shift = t[f"{p}.norm.bias"] - t[f"{p}.norm.running_mean"] * scale
        h = F.elu(h * scale[:, None, None] + shift[:, None, None])
    core = h
    B, C, H, W = core.shape
    r = f"readout.{key}"
    n = t[f"{r}.bias"].shape[0]
    pos = t[f"{r}._mu"].reshape(n, 2).clamp(-1, 1).expand(B, n, 2)
    if f"shifter.{key}.mlp.0.weight" in t:
        s, j = eye.to(dtype), 0
        while f"shifter.{key}.mlp.{j}.weight" in t:
            s = torch.tanh(s @ t[f"shifter.{key}.mlp.{j}.weight"].T + t[f"shifter.{key}.mlp.{j}.bias"])
            j += 2
        pos = pos + s[:, None, :]  # after the clamp
    ix = (pos[..., 0] + 1) / 2 * (W - 1)  # x indexes width
    iy = (pos[..., 1] + 1) / 2 * (H - 1)
    x0, y0 = torch.floor(ix), torch.floor(iy)
    sampled = torch.zeros(B, C, n, dtype=dtype)
    for dx in (0, 1):
        for dy in (0, 1):
            xi, yi = x0 + dx, y0 + dy
            w = (1 - (ix - xi).abs()) * (1 - (iy - yi).abs())
            ok = (xi >= 0) & (xi <= W - 1) & (yi >= 0) & (yi <= H - 1)
            flat = (yi.clamp(0, H - 1) * W + xi.clamp(0, W - 1)).long()  # [B, n]
            v = torch.gather(core.reshape(B, C, H * W), 2, flat[:, None, :].expand(B, C, n))
            sampled += v * (w * ok)[:, None, :]
    y = torch.einsum("bcn,cn->bn", sampled, t[f"{r}._features"].reshape(C, n)) + t[f"{r}.bias"]
    return y, core


# ----------------------------------------------------------------- files

def core_config():
    """The core's part of vcortex's config.json (build_model's Stacked2dCore)."""
    return {
        "input_channels": 1, "hidden_channels": 16, "input_kern": 9, "hidden_kern": 7, "layers": 4,
        "pad_input": False, "depth_separable": True, "stack": -1, "batch_norm_eps": EPS,
        "hidden_dilation": 1, "input_stride": 1, "stride": 1, "final_nonlinearity": True,
    }


_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save(tensors, path, metadata=None):
    """safetensors with a fixed layout: tensors ordered as safetensors orders them (widest dtype
    first, then by name, so the I64 data stays 8-byte aligned) and sorted metadata, so reruns are
    byte-identical (safetensors' own writer orders the metadata at random)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for k in sorted(tensors, key=lambda k: (-tensors[k].element_size(), k)):
        v = tensors[k].detach().contiguous()
        b = v.numpy().tobytes()
        header[k] = {"dtype": _DTYPES[v.dtype], "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(path)  # read back with the real reader
    assert sorted(back) == sorted(tensors)
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v), k


def rel(a, b):
    return ((a - b).abs() / b.abs().clamp_min(1e-6)).max().item()


def main():
    torch.manual_seed(2026)
    model = build_model()
    randomise(model)
    model.eval()
    images = torch.randn(BATCH, *IMAGE)
    eye = torch.rand(BATCH, 2) * 2 - 1
    # Saved before any forward: the readout's forward clamps _mu in place.
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert all(v.dtype in _DTYPES for v in sd.values())
    m64 = copy.deepcopy(model).double().eval()

    with torch.no_grad():
        out = {}
        for key in NEURONS:
            e = eye if key in SHIFTER_KEYS else None
            want = rates(m64, images.double(), key, None if e is None else e.double())
            f32 = rates(model, images, key, e)
            assert rel(f32, want) < 1e-5, (key, "float32 model", rel(f32, want))
            ref64, core64 = reference(sd, images, key, e, torch.float64)
            assert rel(ref64, want) < 1e-12, (key, "reference float64", rel(ref64, want))
            ref32, _ = reference(sd, images, key, e, torch.float32)
            assert rel(ref32, want) < 1e-5, (key, "reference float32", rel(ref32, want))
            assert (want > 0).all()
            out[key] = want.float()
            print(f"{key}: f32 model rel {rel(f32, want):.2e}, reference f64 {rel(ref64, want):.2e}, f32 {rel(ref32, want):.2e}")
        core = m64.core(images.double())
        assert (core - core64).abs().max().item() < 1e-12
        # The first image's core output only, for debugging: all five would be 490 KB.
        out["core"] = core[:1].float()
        n_out = sum((r._mu.abs() > 1).sum().item() for r in model.readout.values())
        print(f"readout positions outside [-1, 1] before clamping: {sum((sd[f'readout.{k}._mu'].abs() > 1).sum().item() for k in NEURONS)} (after forward: {n_out})")

    os.makedirs(OUT, exist_ok=True)
    save(sd, os.path.join(OUT, "weights.safetensors"))
    save({"images": images, "eye": eye}, os.path.join(OUT, "images.safetensors"))
    meta = {"script": SCRIPT, "torch": torch.__version__, "neuralpredictors": importlib.metadata.version("neuralpredictors")}
    save(out, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    config = {
        "core": core_config(),
        "readouts": {k: dict(neurons=m, align_corners=True, **({"shifter": True} if k in SHIFTER_KEYS else {})) for k, m in NEURONS.items()},
        "elu_offset": ELU_OFFSET,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for k, v in sorted(sd.items()):
        print(f"{k:60s} {tuple(v.shape)} {v.dtype}")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print({k: tuple(v.shape) for k, v in out.items()}, f"{total} bytes in {OUT}")
    assert total < 500_000


if __name__ == "__main__":
    main()
