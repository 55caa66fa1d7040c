#!/usr/bin/env python3
"""Golden data for the Sensorium 2023 video twin's 2-D core + ConvGRU (models::video, core.type "2D").

What runs, as ecker-lab/sensorium_2023 builds it in sensorium/models/make_model.py
(`make_video_model(core_type="2D", use_gru=True, gru_dict=...)`):
- the core: neuralpredictors 0.3.0's own Stacked2dCore or RotationEquivariant2dCore (PyPI;
  its conv2d.py matches the options used here; core_type "2D" / "2D_equivariant"), run on every
  frame;
- GRU_Module / ConvGRUCell: a plain-PyTorch port of neuralpredictors
  layers/rnn_modules/gru_module.py at commit a2055cdad9de1f0c07033484d628588d8aa7acc4 (not in
  0.3.0): six biased Conv2d (reset/update/out gate, input and hidden), input convs padded by
  input_kern // 2 when pad_input (else the state is input_kern - 1 smaller), hidden convs by
  rec_kern // 2, h0 = 0, every hidden state stacked on the frame axis; the keys it saves are
  gru_module.gru.{reset_gate_input, ...}.{weight, bias};
- the 2-D path of VideoFiringRateEncoder.forward (sensorium/models/video_encoder.py): the clip
  [B, C, T, H, W] transposed to frames [B*T, C, H, W], the core, back to [B, C', T, H', W'], the
  GRU, then as for the 3-D cores (scripts/golden_video.py, whose readout and shifter ports this
  reuses): frames flattened, shifter on pupil_center[:, :, -T:], FullGaussian2d, elu(x + offset)
  + 1, [B, T, N] (saved permuted to vcortex's [B, N, T]). A 2-D core keeps every frame (T' = T).

Three small models: "gru2d" (plain convs, GRU input padded, upstream's demo layout), "gru2d_ds"
(depth-separable core, GRU input unpadded, rec_kern 5) and "roteq2d" (a rotation-equivariant
core, 4 rotations of 2 Hermite filters); each with a readout "m1" with `_mu` and a
shifter, and "m2" whose positions come from a grid_mean_predictor. Expected outputs in float64.
Rerun from the repository root (torch, safetensors, neuralpredictors 0.3.0):

    python3 scripts/golden_video2d.py

Writes kernels-tests/data/video/{gru2d,gru2d_ds,roteq2d}/{config.json, weights, inputs,
expected}.safetensors (a few tens of KB); kernels-tests/video.rs holds the GPU and the CPU
reference within 1e-4.
"""
import math
import os
import sys
import types
import warnings

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import prepare_neuralpredictors_import  # noqa: E402
from golden_video import Readout, Shifter, save_case  # noqa: E402

prepare_neuralpredictors_import()
warnings.filterwarnings("ignore")

import neuralpredictors.layers.hermite as hermite  # noqa: E402
from neuralpredictors.layers.cores import RotationEquivariant2dCore, Stacked2dCore  # noqa: E402

# neuralpredictors 0.3.0's hermite_2d calls math.factorial on numpy floats (as scripts/golden_rot_eq.py).
hermite.math = types.SimpleNamespace(factorial=lambda n: math.factorial(int(n)))


class ConvGRUCell(nn.Module):
    def __init__(self, input_channels, rec_channels, input_kern, rec_kern, pad_input=True):
        super().__init__()
        ip = input_kern // 2 if pad_input else 0
        rp = rec_kern // 2
        self.rec_channels = rec_channels
        self._shrinkage = 0 if pad_input else input_kern - 1
        self.reset_gate_input = nn.Conv2d(input_channels, rec_channels, input_kern, padding=ip)
        self.reset_gate_hidden = nn.Conv2d(rec_channels, rec_channels, rec_kern, padding=rp)
        self.update_gate_input = nn.Conv2d(input_channels, rec_channels, input_kern, padding=ip)
        self.update_gate_hidden = nn.Conv2d(rec_channels, rec_channels, rec_kern, padding=rp)
        self.out_gate_input = nn.Conv2d(input_channels, rec_channels, input_kern, padding=ip)
        self.out_gate_hidden = nn.Conv2d(rec_channels, rec_channels, rec_kern, padding=rp)

    def forward(self, x, prev):
        if prev is None:
            n, _, h, w = x.shape
            prev = torch.zeros(n, self.rec_channels, h - self._shrinkage, w - self._shrinkage, dtype=x.dtype)
        update = torch.sigmoid(self.update_gate_input(x) + self.update_gate_hidden(prev))
        reset = torch.sigmoid(self.reset_gate_input(x) + self.reset_gate_hidden(prev))
        out = torch.tanh(self.out_gate_input(x) + self.out_gate_hidden(prev * reset))
        return prev * (1 - update) + out * update


class GRUModule(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.gru = ConvGRUCell(**kw)

    def forward(self, x):
        states, h = [], None
        for t in range(x.shape[2]):
            h = self.gru(x[:, :, t], h)
            states.append(h)
        return torch.stack(states, 2)


class Model(nn.Module):
    def __init__(self, core, gru, neurons, equivariant=False):
        super().__init__()
        self.core = RotationEquivariant2dCore(**core) if equivariant else Stacked2dCore(**core)
        self.gru_module = GRUModule(**gru)
        self.readout = nn.ModuleDict({k: Readout(gru["rec_channels"], n, k == "m2") for k, n in neurons.items()})
        self.shifter = nn.ModuleDict({"m1": Shifter()})

    def forward(self, x, key, pupil_center=None, offset=0.0):
        b = x.shape[0]
        x = torch.transpose(x, 1, 2)
        x = x.reshape((-1,) + x.shape[2:])
        x = self.core(x)
        x = torch.transpose(x.reshape((b, -1) + x.shape[1:]), 1, 2)
        x = self.gru_module(x).transpose(1, 2)
        t = x.shape[1]
        shift = None
        if key in self.shifter:
            p = pupil_center[:, :, -t:].transpose(1, 2).reshape(-1, 2)
            shift = self.shifter[key].mlp(p)
        y = self.readout[key](x.reshape((-1,) + x.shape[2:]), shift)
        y = F.elu(y + offset) + 1
        return y.reshape(b, t, -1)


def make(name, seed, depth_separable, gru_pad, rec_kern):
    torch.manual_seed(seed)
    core = dict(input_channels=3, hidden_channels=6, input_kern=5, hidden_kern=3, layers=3, pad_input=False,
                final_nonlinearity=False, bias=True, batch_norm=True, depth_separable=depth_separable, stack=-1,
                skip=0, momentum=0.9, gamma_input=500.0, gamma_hidden=1000.0, input_regularizer="LaplaceL2norm")
    gru = dict(input_channels=6, rec_channels=5, input_kern=3, rec_kern=rec_kern, pad_input=gru_pad)
    neurons, offset = {"m1": 11, "m2": 7}, 0.1
    m = Model(core, gru, neurons)
    with torch.no_grad():
        for layer in m.core.features:
            layer.norm.running_mean.uniform_(-0.3, 0.3)
            layer.norm.running_var.uniform_(0.5, 1.5)
            layer.norm.weight.uniform_(0.5, 1.5)
            layer.norm.bias.uniform_(-0.3, 0.3)
            layer.norm.num_batches_tracked.fill_(12)
        for p in m.gru_module.parameters():
            p.uniform_(-0.4, 0.4)
    m.eval()
    cfg_core = {k: v for k, v in core.items() if k not in ("momentum", "gamma_input", "gamma_hidden", "input_regularizer")}
    parts = {"core": {"type": "2D", **cfg_core}, "gru": gru}
    save_case(name, m, torch.randn(2, 3, 6, 13, 15), torch.rand(2, 2, 6) * 2 - 1, neurons, offset, parts)


def make_equivariant(name, seed):
    """A RotationEquivariant2dCore (4 rotations of 2 Hermite filters: 8 channels) under the GRU."""
    torch.manual_seed(seed)
    core = dict(input_channels=3, hidden_channels=2, input_kern=5, hidden_kern=3, layers=2, num_rotations=4,
                upsampling=2, stride=1, pad_input=False, final_nonlinearity=False, bias=True, batch_norm=True,
                batch_norm_scale=True, independent_bn_bias=True, stack=-1, skip=0, momentum=0.9,
                gamma_input=6.3, gamma_hidden=0.0, laplace_padding=None, input_regularizer="LaplaceL2norm",
                use_avg_reg=False)
    gru = dict(input_channels=8, rec_channels=5, input_kern=3, rec_kern=3, pad_input=True)
    neurons, offset = {"m1": 11, "m2": 7}, 0.1
    m = Model(core, gru, neurons, equivariant=True)
    with torch.no_grad():
        for mod in m.core.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.running_mean.normal_(0, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
        for p in m.gru_module.parameters():
            p.uniform_(-0.4, 0.4)
    m.eval()
    drop = ("momentum", "gamma_input", "gamma_hidden", "input_regularizer", "laplace_padding", "use_avg_reg",
            "batch_norm", "skip")
    cfg_core = {k: v for k, v in core.items() if k not in drop}
    parts = {"core": {"type": "2D_equivariant", **cfg_core}, "gru": gru}
    save_case(name, m, torch.randn(2, 3, 5, 14, 13), torch.rand(2, 2, 5) * 2 - 1, neurons, offset, parts)


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    make("gru2d", 3, False, True, 3)
    make("gru2d_ds", 4, True, False, 5)
    make_equivariant("roteq2d", 5)
