#!/usr/bin/env python3
"""Golden data for the Sensorium 2023 video twin (models::video): one small model per core type.

A plain-PyTorch port of the upstream modules (neuralpredictors 0.3.0 on PyPI has no 3-D cores):
- Factorized3dCore and Basic3dCore: neuralpredictors/layers/cores/conv3d.py (sinzlab/neuralpredictors),
  as ecker-lab/sensorium_2023 builds them in sensorium/models/make_model.py: per layer
  Conv3d(1, k, k) then Conv3d(kt, 1, 1) (factorised) or one Conv3d(kt, k, k) (basic), both with a
  bias, no temporal padding, then an affine BatchNorm3d (eval: running statistics) and ELU;
  upstream's key names (core.features.layer{l}.conv_spatial{_l}, conv_temporal{_l}, conv{_l}, norm);
- FullGaussian2d (neuralpredictors/layers/readouts/gaussian.py), eval mode: mu clamped to [-1, 1],
  shift added after the clamp, grid_sample(align_corners=True), features, bias; one readout with a
  stored `_mu`, one with a grid_mean_predictor (source_grid -> Linear, ELU, Linear, Tanh);
- MLPShifter (neuralpredictors/layers/shifters/mlp.py): 2 -> 5 -> 5 -> 2, Tanh after each layer,
  fed pupil_center[:, :, -T':] frame by frame;
- VideoFiringRateEncoder.forward (sensorium/models/video_encoder.py): core, frames flattened to
  [B*T', C, H, W], readout, elu(x + offset) + 1, reshaped to [B, T', N]. The expected files hold it
  permuted to vcortex's [B, N, T'].

Expected outputs are computed in float64 (the modules cast with .double()). Rerun from the
repository root (torch and safetensors):

    python3 scripts/golden_video.py

Writes kernels-tests/data/video/{factorised,basic}/{config.json, weights, inputs, expected}.safetensors
(a few tens of KB); kernels-tests/video.rs holds the GPU and the CPU reference within 1e-4.
"""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels-tests", "data", "video")


class Core3d(nn.Module):
    def __init__(self, kind, cin, hidden, ks_in, kt_in, ks_h, kt_h):
        super().__init__()
        self.features = nn.Sequential()
        for l, c in enumerate(hidden):
            layer = nn.Module()
            ks, kt = (ks_in, kt_in) if l == 0 else (ks_h, kt_h)
            sfx = "" if l == 0 else f"_{l}"
            if kind == "3D_factorised":
                setattr(layer, f"conv_spatial{sfx}", nn.Conv3d(cin, c, (1, ks, ks)))
                setattr(layer, f"conv_temporal{sfx}", nn.Conv3d(c, c, (kt, 1, 1)))
                layer.convs = [f"conv_spatial{sfx}", f"conv_temporal{sfx}"]
            else:
                setattr(layer, f"conv{sfx}", nn.Conv3d(cin, c, (kt, ks, ks)))
                layer.convs = [f"conv{sfx}"]
            layer.norm = nn.BatchNorm3d(c, momentum=0.7)
            self.features.add_module(f"layer{l}", layer)
            cin = c

    def forward(self, x):
        for layer in self.features:
            for name in layer.convs:
                x = getattr(layer, name)(x)
            x = F.elu(layer.norm(x))
        return x


class Readout(nn.Module):
    def __init__(self, c, n, gmp):
        super().__init__()
        if gmp:
            grid = torch.rand(n, 2) * 4 - 2
            grid = grid - grid.mean(0)
            grid = grid / grid.abs().max()
            self.register_buffer("source_grid", grid)
            self.mu_transform = nn.Sequential(nn.Linear(2, 7), nn.ELU(), nn.Linear(7, 2), nn.Tanh())
        else:
            self._mu = nn.Parameter(torch.rand(1, n, 1, 2) * 2.2 - 1.1)
        self.sigma = nn.Parameter(torch.rand(1, n, 2, 2) * 0.2)
        self._features = nn.Parameter(torch.randn(1, c, 1, n) * 0.3)
        self.bias = nn.Parameter(torch.randn(n) * 0.3)
        self.gmp = gmp

    def forward(self, x, shift=None):
        mu = self.mu_transform(self.source_grid).view(1, -1, 1, 2) if self.gmp else self._mu
        grid = mu.clamp(-1, 1).expand(x.shape[0], -1, -1, -1)
        if shift is not None:
            grid = grid + shift[:, None, None, :]
        y = F.grid_sample(x, grid, align_corners=True)
        return (y.squeeze(-1) * self._features.view(1, -1, mu.shape[1])).sum(1) + self.bias


class Shifter(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, 5), nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 2), nn.Tanh())


class Model(nn.Module):
    def __init__(self, kind, cin, hidden, ks_in, kt_in, ks_h, kt_h, neurons):
        super().__init__()
        self.core = Core3d(kind, cin, hidden, ks_in, kt_in, ks_h, kt_h)
        self.readout = nn.ModuleDict({k: Readout(hidden[-1], n, k == "m2") for k, n in neurons.items()})
        self.shifter = nn.ModuleDict({"m1": Shifter()})

    def forward(self, x, key, pupil_center=None, offset=0.0):
        x = self.core(x).transpose(1, 2)
        b, t = x.shape[:2]
        shift = None
        if key in self.shifter:
            p = pupil_center[:, :, -t:].transpose(1, 2).reshape(-1, 2)
            shift = self.shifter[key].mlp(p)
        y = self.readout[key](x.reshape((-1,) + x.shape[2:]), shift)
        y = F.elu(y + offset) + 1
        return y.reshape(b, t, -1)


def save_case(name, m, video, pupil, neurons, offset, parts):
    """Runs the float64 copy of model `m` on `video` (pupil_center `pupil` for m1, the readout with
    the shifter) and writes data/video/NAME/: the float32 state dict, the inputs, the expected
    [B, N, T'] per data key, and config.json (`parts` the config's core and gru sections)."""
    md = m.double()
    expected = {}
    with torch.no_grad():
        for k in neurons:
            y = md(video.double(), k, pupil.double() if k == "m1" else None, offset)
            expected[k] = y.permute(0, 2, 1).float().contiguous()
    sd = {k: v.float().contiguous() if v.is_floating_point() else v.contiguous() for k, v in m.state_dict().items()}
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    save_file(sd, os.path.join(out, "weights.safetensors"))
    save_file({"video": video, "pupil_center": pupil}, os.path.join(out, "inputs.safetensors"))
    save_file(expected, os.path.join(out, "expected.safetensors"))
    config = {
        "kind": "video",
        **parts,
        "readouts": {"m1": {"neurons": 11, "shifter": True}, "m2": {"neurons": 7, "grid_mean_final_tanh": True}},
        "elu_offset": offset,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    print(name, {k: tuple(v.shape) for k, v in expected.items()})


def make(name, kind, seed):
    torch.manual_seed(seed)
    hidden, neurons, offset = [4, 6], {"m1": 11, "m2": 7}, 0.1
    m = Model(kind, 3, hidden, 5, 3, 3, 2, neurons)
    for layer in m.core.features:
        layer.norm.running_mean.uniform_(-0.3, 0.3)
        layer.norm.running_var.uniform_(0.5, 1.5)
        layer.norm.weight.data.uniform_(0.5, 1.5)
        layer.norm.bias.data.uniform_(-0.3, 0.3)
        layer.norm.num_batches_tracked.fill_(12)
    m.eval()
    core = {"type": kind, "input_channels": 3, "hidden_channels": hidden, "spatial_input_kernel": 5,
            "temporal_input_kernel": 3, "spatial_hidden_kernel": 3, "temporal_hidden_kernel": 2,
            "padding": False, "final_nonlin": True}
    save_case(name, m, torch.randn(2, 3, 10, 12, 15), torch.rand(2, 2, 10) * 2 - 1, neurons, offset, {"core": core})


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    make("factorised", "3D_factorised", 1)
    make("basic", "3D", 2)
