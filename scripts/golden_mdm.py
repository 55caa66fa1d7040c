#!/usr/bin/env python3
"""Golden data for the MDM-style motion denoiser (docs/ops.md, attention and the MDM denoiser), written in plain PyTorch
from that description: per-frame Linear(D -> E); timestep token = Linear -> SiLU -> Linear applied to the sinusoidal
table's row t, prepended to the frames; sinusoidal positional encoding added; post-LN nn.TransformerEncoder layers
(GELU, no dropout); Linear(E -> D) on the frames. Small sizes (D 51, E 32, 4 heads, FF 64, 2 layers, 8 frames, batch 3);
output computed in float64.

    python3 scripts/golden_mdm.py     (from the repository root; needs torch and safetensors)
Writes kernels-tests/data/mdm/{weights,io}.safetensors.
"""
import math
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = os.path.join("kernels-tests", "data", "mdm")
D, E, HEADS, FF, LAYERS, FRAMES, S, T, MAX_LEN = 51, 32, 4, 64, 2, 8, 3, 37, 64


def table(length, e):
    pe = torch.zeros(length, e, dtype=torch.float64)
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, e, 2, dtype=torch.float64) * (-math.log(10000.0) / e))
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class Mdm(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_process = nn.Linear(D, E)
        self.embed_timestep = nn.Sequential(nn.Linear(E, E), nn.SiLU(), nn.Linear(E, E))
        layer = nn.TransformerEncoderLayer(E, HEADS, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=False)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.output_process = nn.Linear(E, D)

    def forward(self, x, t):
        pe = table(MAX_LEN, E).to(x.dtype)
        h = self.input_process(x)
        tok = self.embed_timestep(pe[t].expand(x.shape[0], E))[:, None, :]
        seq = torch.cat([tok, h], dim=1) + pe[: x.shape[1] + 1][None]
        return self.output_process(self.encoder(seq)[:, 1:])


def main():
    torch.manual_seed(5)
    model = Mdm().eval()
    x = torch.randn(S, FRAMES, D)
    with torch.no_grad():
        want = model.double()(x.double(), T).float()
    os.makedirs(OUT, exist_ok=True)
    sd = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    save_file(dict(sorted(sd.items())), os.path.join(OUT, "weights.safetensors"))
    save_file({"x": x, "output": want}, os.path.join(OUT, "io.safetensors"), metadata={"script": "scripts/golden_mdm.py", "torch": torch.__version__, "timestep": str(T)})
    print(sorted(sd)[:6], len(sd))


if __name__ == "__main__":
    main()
