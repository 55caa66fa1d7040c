#!/usr/bin/env python3
"""Golden data for a Sensorium-style readout whose positions come from a grid_mean_predictor (the
Sensorium tutorial's configuration: cortex coordinates -> Linear(2, 30) -> ELU -> Linear(30, 2) ->
Tanh), so its state_dict has `readout.<key>.mu_transform.*` and the `source_grid` buffer instead of
`_mu`. A small Stacked2dCore (2 layers, 8 channels) in front; outputs ELU+1 in float64.

    PYTHONPATH=/tmp/nplib python3 scripts/golden_sensorium_gmp.py     (from the repository root)
Writes kernels-tests/data/sensorium_gmp/{weights,images,expected}.safetensors and config.json.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import prepare_neuralpredictors_import  # noqa: E402

prepare_neuralpredictors_import()

from neuralpredictors.layers.cores import Stacked2dCore  # noqa: E402
from neuralpredictors.layers.readouts import FullGaussian2d  # noqa: E402

OUT = os.path.join("kernels-tests", "data", "sensorium_gmp")
M = 19


class Model(nn.Module):
    def __init__(self, source_grid):
        super().__init__()
        self.core = Stacked2dCore(input_channels=1, hidden_channels=8, input_kern=9, hidden_kern=7, layers=2, gamma_input=1.0,
                                  skip=0, final_nonlinearity=True, bias=False, momentum=0.9, pad_input=False, batch_norm=True,
                                  hidden_dilation=1, laplace_padding=None, input_regularizer="LaplaceL2norm", stack=-1,
                                  depth_separable=True, linear=False)
        shape = self.core(torch.zeros(1, 1, 20, 24)).shape[1:]
        gmp = {"hidden_layers": 1, "hidden_features": 30, "final_tanh": True}
        self.readout = nn.ModuleDict({"sessC": FullGaussian2d(tuple(shape), M, bias=True, init_sigma=0.1, gauss_type="full",
                                                              grid_mean_predictor=gmp, source_grid=source_grid)})

    def forward(self, x):
        return F.elu(self.readout["sessC"](self.core(x))) + 1


def main():
    torch.manual_seed(11)
    rng = np.random.default_rng(11)
    model = Model(rng.uniform(-300, 500, size=(M, 2)))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
        r = model.readout["sessC"]
        for p in r.mu_transform.parameters():
            p.normal_(0, 0.8)
        r._features.normal_(0, 0.3)
        r.bias.normal_(0, 0.3)
    model.eval()
    images = torch.randn(3, 1, 20, 24)
    os.makedirs(OUT, exist_ok=True)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(dict(sorted(sd.items())), os.path.join(OUT, "weights.safetensors"))
    save_file({"images": images}, os.path.join(OUT, "images.safetensors"))
    m64 = Model(np.zeros((M, 2)))
    m64.load_state_dict(model.state_dict())
    m64 = m64.double().eval()
    with torch.no_grad():
        want = m64(images.double()).float()
    save_file({"sessC": want.contiguous()}, os.path.join(OUT, "expected.safetensors"))
    config = {
        "core": {"input_channels": 1, "hidden_channels": 8, "input_kern": 9, "hidden_kern": 7, "layers": 2, "pad_input": False,
                 "depth_separable": True, "stack": -1, "batch_norm_eps": 1e-5},
        "readouts": {"sessC": {"neurons": M, "align_corners": True, "grid_mean_final_tanh": True}},
        "elu_offset": 0.0,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    print(sorted((k, tuple(v.shape)) for k, v in sd.items() if "readout" in k))


if __name__ == "__main__":
    main()
