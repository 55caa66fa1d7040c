#!/usr/bin/env python3
"""Golden data for the co-training twin (models::cotrain): the neural branch of
sinzlab/neural_cotraining's MTL_VGG (neural_cotraining/models/mtl_vgg.py: MTL_VGG_Core with
v1_model_layer=17, MultipleGaussian2d, `F.elu(y + v1_elu_offset) + 1`) assembled the way that
file assembles it: torchvision's vgg19_bn (weights=None: random init, no download) cut to
`features[:17]`, a grey image expanded to 3 channels with `x.expand(-1, 3, -1, -1)`, one
Gaussian2d readout per session, then elu(y - 1) + 1.

The readout is neuralpredictors 0.3.0's `layers.readouts.Gaussian2d` (the successor of the
`mlutils.layers.legacy.Gaussian2d` that neural_cotraining imports; same parameters mu [1,N,1,2],
sigma [1,N,1,2], features [1,C,1,N], bias [N], and in eval mode the same grid: clamp(mu, -1, 1),
no sampling). The legacy class calls `F.grid_sample(x, grid)` with no align_corners, which since
PyTorch 1.3 means align_corners=False; neuralpredictors' class takes the argument (default True).
Session "sessA" uses False (the legacy behaviour, the config's default), "sessB" True, and has no
bias (v1_readout_bias=False).

Rerun (from the repository root; needs torch, torchvision, safetensors and neuralpredictors 0.3.0):

    python3 scripts/golden_cotrain.py

Writes kernels-tests/data/cotrain/{weights,images,expected}.safetensors and config.json. The
weights are the whole features[:17] state_dict (torchvision's key names `features.N.*`,
num_batches_tracked included) plus `readout.<key>.{mu,sigma,features[,bias]}`: about 2.2 MB of
float32, the one large golden file. BN running statistics and affine parameters, readout positions
(some outside [-1, 1]), features and biases are randomised so that folding and clamping are
exercised. Images: 3 grey 32x32 images. Expected: the model in float64 (rates [3, N] per session);
the float32 model is checked to be within 1e-5 relative of it. The files are byte-identical across
reruns with the same torch build.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision  # before neuralpredictors, so its import stub leaves the real one

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import deterministic_torch, prepare_neuralpredictors_import, save_file  # noqa: E402

prepare_neuralpredictors_import()

import warnings  # noqa: E402

from neuralpredictors.layers.readouts import Gaussian2d  # noqa: E402

OUT = os.path.join("kernels-tests", "data", "cotrain")
SCRIPT = "scripts/golden_cotrain.py"
LAYERS = 17
NEURONS = {"sessA": 20, "sessB": 17}
ALIGN = {"sessA": False, "sessB": True}
BIAS = {"sessA": True, "sessB": False}
IMAGE = (1, 32, 32)
BATCH = 3
ELU_OFFSET = -1.0


class Twin(torch.nn.Module):
    """MTL_VGG's neural path: v1_block, a readout per session, elu(y + offset) + 1."""

    def __init__(self):
        super().__init__()
        vgg = torchvision.models.vgg19_bn(weights=None)
        self.features = torch.nn.Sequential(*list(vgg.features.children())[:LAYERS])
        with torch.no_grad():
            c, h, w = self.features(torch.zeros(1, 3, *IMAGE[1:])).shape[1:]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.readout = torch.nn.ModuleDict({
                k: Gaussian2d(in_shape=(c, h, w), outdims=n, bias=BIAS[k], init_mu_range=0.4,
                              init_sigma_range=0.6, align_corners=ALIGN[k])
                for k, n in NEURONS.items()})

    def forward(self, x, data_key):
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        y = self.readout[data_key](self.features(x))
        return F.elu(y + ELU_OFFSET) + 1


def randomise(model):
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(7)
        for r in model.readout.values():
            r.mu.uniform_(-1.2, 1.2)  # some outside [-1, 1]: clamped
            r.features.uniform_(-0.4, 0.4)
            if r.bias is not None:
                r.bias.uniform_(0.5, 1.5)


def main():
    deterministic_torch()
    torch.manual_seed(20210617)
    model = Twin()
    randomise(model)
    model.eval()
    images = torch.rand(BATCH, *IMAGE)
    m64 = Twin().double()
    m64.load_state_dict(model.state_dict())
    m64.eval()
    out = {}
    with torch.no_grad():
        for key in NEURONS:
            want = m64(images.double(), key)
            got = model(images, key)
            rel = ((got.double() - want).abs() / want.abs().clamp_min(1e-6)).max().item()
            assert rel < 1e-5, (key, rel)
            # The rates spread over ELU+1's both sides (not all saturated near 0).
            assert (want > 1).any() and (want < 1).any(), key
            out[key] = want.float().contiguous()
    os.makedirs(OUT, exist_ok=True)
    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(OUT, "weights.safetensors"), None)
    save_file({"images": images.contiguous()}, os.path.join(OUT, "images.safetensors"), None)
    meta = {"script": SCRIPT, "torch": torch.__version__, "torchvision": torchvision.__version__}
    save_file(out, os.path.join(OUT, "expected.safetensors"), meta)
    config = {
        "kind": "cotrain",
        "core": {"vgg_type": "vgg19_bn", "layers": LAYERS, "input_channels": 1, "batch_norm_eps": 1e-5},
        "readouts": {k: {"neurons": n, "bias": BIAS[k], "align_corners": ALIGN[k]} for k, n in NEURONS.items()},
        "elu_offset": ELU_OFFSET,
    }
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"torch {torch.__version__}: wrote {OUT} ({size} bytes); keys {len(sd)}; "
          + ", ".join(f"{k} {list(v.shape)} in [{v.min():.3f}, {v.max():.3f}]" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
