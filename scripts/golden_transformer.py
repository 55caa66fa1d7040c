#!/usr/bin/env python3
"""Golden data for the transformer encoder layer (the MDM denoiser's block): PyTorch's own
nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, activation="gelu",
batch_first=True, norm_first=False, dropout=0) in eval mode, random weights, its state_dict under
the prefix "layers.0", an input [2, 9, 16] and the output computed in float64.

    python3 scripts/golden_transformer.py     (from the repository root; needs torch, safetensors)
Writes kernels-tests/data/transformer/{weights,io}.safetensors.
"""
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = os.path.join("kernels-tests", "data", "transformer")


def main():
    torch.manual_seed(7)
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, activation="gelu", batch_first=True, norm_first=False, dropout=0.0)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # norms and biases away from their defaults
    layer.eval()
    x = torch.randn(2, 9, 16)
    with torch.no_grad():
        want = layer.double()(x.double()).float()
    os.makedirs(OUT, exist_ok=True)
    sd = {f"layers.0.{k}": v.float().contiguous() for k, v in layer.state_dict().items()}
    save_file(dict(sorted(sd.items())), os.path.join(OUT, "weights.safetensors"))
    save_file({"input": x, "output": want}, os.path.join(OUT, "io.safetensors"), metadata={"script": "scripts/golden_transformer.py", "torch": torch.__version__})
    print(sorted((k, tuple(v.shape)) for k, v in sd.items()))


if __name__ == "__main__":
    main()
