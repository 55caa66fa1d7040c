#!/usr/bin/env python3
"""Golden data for the Sensorium model pipeline: a randomly initialised Sensorium-2022-style
baseline built from the real neuralpredictors classes, its weights as safetensors (the full
state_dict with PyTorch's key names, buffers included), a JSON config, images, eye positions and
the model's outputs computed in float64.

    PYTHONPATH=/tmp/nplib python3 scripts/golden_sensorium.py     (from the repository root)

Needs torch, safetensors, scipy and neuralpredictors 0.3.0 (`pip install --no-deps --target
/tmp/nplib neuralpredictors`; its torchvision import is stubbed below: nothing used here needs it).
Writes kernels-tests/data/sensorium/{weights,images,expected}.safetensors and config.json.

The model: Stacked2dCore(1 -> 16 channels, 9x9 input conv without padding, three depth-separable
7x7 layers, BN, ELU, stack=-1) and one FullGaussian2d readout per data key ("sessA": 23 neurons,
"sessB": 31 neurons with an MLPShifter of 3 layers), in a ModuleDict as MultiReadoutBase names
them, then ELU+1. BN running statistics, readout positions (some outside [-1, 1]), features and
biases are randomised so that folding and clamping are exercised.
"""
import collections
import collections.abc
import json
import os
import sys
import types

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

collections.Iterable = collections.abc.Iterable


class _Stub(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        m = _Stub(f"{self.__name__}.{name}")
        sys.modules[m.__name__] = m
        return m

    def __call__(self, *a, **k):
        return self


for _name in ["torchvision", "torchvision.models", "torchvision.transforms"]:
    sys.modules.setdefault(_name, _Stub(_name))

import neuralpredictors  # noqa: E402
from neuralpredictors.layers.cores import Stacked2dCore  # noqa: E402
from neuralpredictors.layers.readouts import FullGaussian2d  # noqa: E402
from neuralpredictors.layers.shifters import MLPShifter  # noqa: E402

OUT = os.path.join("kernels-tests", "data", "sensorium")
KEYS = {"sessA": 23, "sessB": 31}


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.core = Stacked2dCore(
            input_channels=1, hidden_channels=16, input_kern=9, hidden_kern=7, layers=4, gamma_input=6.3831,
            skip=0, final_nonlinearity=True, bias=False, momentum=0.9, pad_input=False, batch_norm=True,
            hidden_dilation=1, laplace_padding=None, input_regularizer="LaplaceL2norm", stack=-1,
            depth_separable=True, linear=False,
        )
        shape = self.core(torch.zeros(1, 1, 36, 64)).shape[1:]
        self.readout = nn.ModuleDict(
            {k: FullGaussian2d(tuple(shape), m, bias=True, init_mu_range=0.3, init_sigma=0.1, gauss_type="full") for k, m in KEYS.items()}
        )
        self.shifter = MLPShifter(["sessB"], input_channels=2, hidden_channels_shifter=5, shift_layers=3)

    def forward(self, x, key, eye=None):
        shift = self.shifter[key](eye) if key in self.shifter else None
        return F.elu(self.readout[key](self.core(x), shift=shift)) + 1


def main():
    torch.manual_seed(2026)
    model = Model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        for r in model.readout.values():
            r._mu.uniform_(-1.2, 1.2)  # some outside [-1, 1]: the readout clamps
            r._features.normal_(0, 0.3)
            r.bias.normal_(0, 0.3)
    model.eval()
    images = torch.randn(5, 1, 36, 64)
    eye = torch.rand(5, 2) * 2 - 1
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    os.makedirs(OUT, exist_ok=True)
    save_file(dict(sorted(sd.items())), os.path.join(OUT, "weights.safetensors"))
    save_file({"images": images, "eye": eye}, os.path.join(OUT, "images.safetensors"))
    m64 = Model()
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    with torch.no_grad():
        out = {k: m64(images.double(), k, eye.double()).float() for k in KEYS}
        out["core"] = m64.core(images[:1].double()).float()  # the first image's core output, for debugging
        # float32 model as a sanity bound on what f32 engines can reach
        for k in KEYS:
            f32 = model(images, k, eye)
            rel = ((f32 - out[k]).abs() / out[k].abs().clamp_min(1e-6)).max().item()
            assert rel < 1e-5, (k, rel)
    meta = {"script": "scripts/golden_sensorium.py", "torch": torch.__version__, "neuralpredictors": "0.3.0"}
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    config = {
        "core": {
            "input_channels": 1, "hidden_channels": 16, "input_kern": 9, "hidden_kern": 7, "layers": 4,
            "pad_input": False, "depth_separable": True, "stack": -1, "batch_norm_eps": 1e-5,
            "hidden_dilation": 1, "input_stride": 1, "stride": 1, "final_nonlinearity": True,
        },
        "readouts": {
            "sessA": {"neurons": 23, "align_corners": True},
            "sessB": {"neurons": 31, "align_corners": True, "shifter": True},
        },
        "elu_offset": 0.0,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for k, v in sorted(sd.items()):
        print(f"{k:60s} {tuple(v.shape)} {v.dtype}")
    print({k: tuple(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main()
