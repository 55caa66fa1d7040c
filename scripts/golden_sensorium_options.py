#!/usr/bin/env python3
"""Golden data for every Stacked2dCore option that changes inference: small Sensorium-style
models (a core, one FullGaussian2d readout, sometimes an MLPShifter, in a FiringRateEncoder),
each covering some options, with their state_dicts (PyTorch's key names), vcortex config.json
files, inputs and the rates computed in float64.

Five models use neuralpredictors 0.3.0's own Stacked2dCore (layers/cores/conv2d.py of the pip
release): `skip_dilated` (pad_input, plain dilated hidden convs, skip=2, stack=-2, AdaptiveELU
shifts, no final nonlinearity, a shifter fed as `pupil_center`), `linear_no_bn` (batch_norm off so
the first conv has its bias, linear, depth-separable, stack as a list), `bias_layer` (stride 2,
a list of hidden kernels with 0.3's single hidden padding, independent_bn_bias=False with
batch_norm_scale=False: non-affine norms and `bias.bias`), `scale_layer` (bias=False,
independent_bn_bias=False: non-affine norms and `scale.scale`, depth-separable without biases,
an explicit hidden_padding, stack=None), and `baseline_elu` (the training-only arguments a user
copies from Python, accepted and ignored, with stack as an int counting from the front).

`head_lists` follows neuralpredictors' main branch, commit a2055cdad9de1f0c07033484d628588d8aa7acc4,
file neuralpredictors/layers/cores/conv2d.py (Stacked2dCore.__init__, add_first_layer,
add_subsequent_conv_layer, add_activation, forward) and layers/cores/base.py
(ConvCore.add_bn_layer), ported below in plain PyTorch (HeadStacked2dCore) with 0.3's
building blocks, which that commit leaves unchanged (Bias2DLayer, Scale2DLayer, AdaptiveELU,
DepthSeparableConv2d): per-layer hidden_channels, bias, batch_norm and batch_norm_scale lists,
final_batchnorm_scale, input_stride, per-layer hidden padding (and `hidden_padding=0` meaning
computed), no bias on the first conv whatever the options, stack as a list out of order.

Rerun from the repository root (torch, safetensors, neuralpredictors 0.3.0; see
scripts/golden_sensorium.py for the import shims):

    python3 scripts/golden_sensorium_options.py

Writes kernels-tests/data/sensorium_options/<name>/{weights,images,expected}.safetensors and
config.json. Each model's float32 forward is checked against its float64 one (1e-5 relative).
"""
import copy
import importlib.metadata
import json
import os
import sys
from collections import OrderedDict

import torch
from torch import nn

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import prepare_neuralpredictors_import  # noqa: E402

prepare_neuralpredictors_import()

from golden_sensorium import MultipleFullGaussian2d, rel, save  # noqa: E402
from neuralpredictors.layers.activations import AdaptiveELU  # noqa: E402
from neuralpredictors.layers.affine import Bias2DLayer, Scale2DLayer  # noqa: E402
from neuralpredictors.layers.conv import DepthSeparableConv2d  # noqa: E402
from neuralpredictors.layers.cores import Stacked2dCore  # noqa: E402
from neuralpredictors.layers.encoders import FiringRateEncoder  # noqa: E402
from neuralpredictors.layers.shifters import MLPShifter  # noqa: E402
from neuralpredictors.utils import get_module_output  # noqa: E402

ROOT = os.path.join("kernels-tests", "data", "sensorium_options")
SCRIPT = "scripts/golden_sensorium_options.py"
KEY = "sess"
BATCH = 3
TRAINING_ONLY = ["momentum", "gamma_input", "gamma_hidden", "use_avg_reg", "laplace_padding", "input_regularizer"]


class HeadStacked2dCore(nn.Module):
    """neuralpredictors@a2055cd layers/cores/conv2d.py Stacked2dCore (its inference path) in plain
    PyTorch: the same modules under the same names, so the state_dict keys are HEAD's."""

    def __init__(self, input_channels, hidden_channels, input_kern, hidden_kern, layers=3, skip=0, stride=1,
                 input_stride=1, final_nonlinearity=True, elu_shift=(0, 0), bias=True, pad_input=True,
                 hidden_padding=None, batch_norm=True, batch_norm_scale=True, final_batchnorm_scale=True,
                 hidden_dilation=1, stack=None, depth_separable=False, linear=False, momentum=0.1):
        super().__init__()
        self.batch_norm = batch_norm if isinstance(batch_norm, list) else [batch_norm] * layers
        if isinstance(batch_norm_scale, bool):
            self.batch_norm_scale = [batch_norm_scale] * (layers - 1) + [final_batchnorm_scale]
        else:
            self.batch_norm_scale = batch_norm_scale
        self.bias = bias if isinstance(bias, list) else [bias] * layers
        self.num_layers = layers
        self.hidden_channels = hidden_channels if isinstance(hidden_channels, list) else [hidden_channels] * layers
        self.skip = skip
        self.elu_xshift, self.elu_yshift = elu_shift
        self.final_nonlinearity, self.linear = final_nonlinearity, linear
        self.stack = range(layers) if stack is None else ([*range(layers)[stack:]] if isinstance(stack, int) else stack)
        hidden_kern = hidden_kern if isinstance(hidden_kern, list) else [hidden_kern] * (layers - 1)
        conv_name, Conv = ("ds_conv", DepthSeparableConv2d) if depth_separable else ("conv", nn.Conv2d)
        self.features = nn.Sequential()
        # add_first_layer: `self.bias and not self.batch_norm` on lists is False.
        layer = OrderedDict()
        layer["conv"] = nn.Conv2d(input_channels, self.hidden_channels[0], input_kern, stride=input_stride,
                                  padding=input_kern // 2 if pad_input else 0, bias=self.bias and not self.batch_norm)
        self.add_bn_layer(layer, 0, momentum)
        self.add_activation(layer)
        self.features.add_module("layer0", nn.Sequential(layer))
        for l in range(1, layers):
            layer = OrderedDict()
            layer[conv_name] = Conv(
                in_channels=self.hidden_channels[l - 1] if not skip > 1 else min(skip, l) * self.hidden_channels[0],
                out_channels=self.hidden_channels[l], kernel_size=hidden_kern[l - 1], stride=stride,
                padding=hidden_padding or ((hidden_kern[l - 1] - 1) * hidden_dilation + 1) // 2,
                dilation=hidden_dilation, bias=bool(self.bias),  # the list itself, truthy
            )
            self.add_bn_layer(layer, l, momentum)
            self.add_activation(layer)
            self.features.add_module(f"layer{l}", nn.Sequential(layer))

    def add_bn_layer(self, layer, l, momentum):  # layers/cores/base.py ConvCore.add_bn_layer
        if self.batch_norm[l]:
            c, bias, scale = self.hidden_channels[l], self.bias[l], self.batch_norm_scale[l]
            layer["norm"] = nn.BatchNorm2d(c, momentum=momentum, affine=bias and scale)
            if bias and not scale:
                layer["bias"] = Bias2DLayer(c)
            elif not bias and scale:
                layer["scale"] = Scale2DLayer(c)

    def add_activation(self, layer):
        if self.linear:
            return
        if len(self.features) != self.num_layers - 1 or self.final_nonlinearity:
            layer["nonlin"] = AdaptiveELU(self.elu_xshift, self.elu_yshift)

    def forward(self, input_):
        ret = []
        for l, feat in enumerate(self.features):
            do_skip = l >= 1 and self.skip > 1
            input_ = feat(input_ if not do_skip else torch.cat(ret[-min(self.skip, l):], dim=1))
            ret.append(input_)
        return torch.cat([ret[ind] for ind in self.stack], dim=1)


# name: (semantics, core kwargs, image [C, H, W], neurons, shifter)
MODELS = {
    "skip_dilated": ("0.3", dict(
        input_channels=2, hidden_channels=5, input_kern=5, hidden_kern=3, layers=4, pad_input=True,
        hidden_dilation=2, skip=2, stack=-2, depth_separable=False, elu_shift=(0.4, -0.3),
        final_nonlinearity=False), (2, 13, 17), 9, True),
    "linear_no_bn": ("0.3", dict(
        input_channels=1, hidden_channels=4, input_kern=3, hidden_kern=5, layers=3, pad_input=False,
        batch_norm=False, linear=True, depth_separable=True, stack=[2, 0]), (1, 12, 15), 7, False),
    "bias_layer": ("0.3", dict(
        input_channels=1, hidden_channels=6, input_kern=5, hidden_kern=[5, 3], layers=3, pad_input=False,
        stride=2, independent_bn_bias=False, batch_norm_scale=False, bias=True, stack=-1,
        depth_separable=False), (1, 21, 26), 8, False),
    "scale_layer": ("0.3", dict(
        input_channels=1, hidden_channels=4, input_kern=3, hidden_kern=3, layers=3, pad_input=True,
        independent_bn_bias=False, batch_norm_scale=True, bias=False, hidden_padding=1, stack=None,
        depth_separable=True), (1, 11, 14), 6, False),
    "baseline_elu": ("0.3", dict(
        input_channels=1, hidden_channels=6, input_kern=7, hidden_kern=5, layers=3, pad_input=False,
        stack=1, depth_separable=True, elu_shift=(0.0, 1.0), momentum=0.9, gamma_input=6.3831,
        gamma_hidden=0.1, use_avg_reg=False, laplace_padding=None, input_regularizer="LaplaceL2norm",
        hidden_dilation=1), (1, 14, 20), 5, True),
    "head_lists": ("head", dict(
        input_channels=1, hidden_channels=[4, 6, 5], input_kern=5, hidden_kern=[5, 3], layers=3,
        pad_input=True, input_stride=2, bias=[True, False, True], batch_norm=[True, True, True],
        batch_norm_scale=True, final_batchnorm_scale=False, hidden_padding=0, stack=[2, 1],
        depth_separable=False, elu_shift=(0.2, -0.1)), (1, 19, 23), 7, False),
}


def build(semantics, kw, image, neurons, shifter):
    kw = dict(kw)
    if semantics == "head":
        core = HeadStacked2dCore(**kw)
    else:
        core = Stacked2dCore(**kw)
    in_shape = tuple(get_module_output(core, (1,) + image, use_cuda=False)[1:])
    readout = MultipleFullGaussian2d(
        in_shape_dict={KEY: in_shape}, n_neurons_dict={KEY: neurons}, init_mu_range=0.3, bias=True,
        init_sigma=0.1, gamma_readout=0.0, gauss_type="full", grid_mean_predictor=None,
        grid_mean_predictor_type=None, source_grids=None,
    )
    sh = MLPShifter(data_keys=[KEY], input_channels=2, hidden_channels_shifter=4, shift_layers=2) if shifter else None
    return FiringRateEncoder(core=core, readout=readout, shifter=sh, elu_offset=0.0), in_shape


def randomise(model):
    with torch.no_grad():
        for name, p in model.core.named_parameters():
            if name.endswith(".bias") and p.dim() == 1:
                p.normal_(0, 0.2)  # conv biases start at zero
            if name.endswith("bias.bias"):
                p.normal_(0, 0.3)
            if name.endswith("scale.scale"):
                p.uniform_(0.5, 1.5)
        for m in model.core.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
        for r in model.readout.values():
            r._mu.uniform_(-1.1, 1.1)
            r._features.normal_(0, 0.4)
            r.bias.normal_(0, 0.3)


def config_of(semantics, kw, neurons, shifter):
    core = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    if semantics == "head":
        core["semantics"] = "head"
    # vcortex's defaults are the Sensorium baseline's; say the Python defaults where they differ.
    core.setdefault("pad_input", True)
    core.setdefault("depth_separable", False)
    core.setdefault("stack", None)
    if "bias" not in core:
        core["bias"] = True
    readout = {"neurons": neurons, "align_corners": True}
    if shifter:
        readout["shifter"] = True
    return {"core": core, "readouts": {KEY: readout}, "elu_offset": 0.0}


def main():
    meta = {"script": SCRIPT, "torch": torch.__version__, "neuralpredictors": importlib.metadata.version("neuralpredictors")}
    total = 0
    for i, (name, (semantics, kw, image, neurons, shifter)) in enumerate(MODELS.items()):
        torch.manual_seed(700 + i)
        model, in_shape = build(semantics, kw, image, neurons, shifter)
        randomise(model)
        model.eval()
        images = torch.randn(BATCH, *image)
        pupil = torch.rand(BATCH, 2) * 2 - 1
        sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
        m64 = copy.deepcopy(model).double().eval()
        with torch.no_grad():
            args = {"pupil_center": pupil.double()} if shifter else {}
            want = m64(images.double(), data_key=KEY, **args)
            got32 = model(images, data_key=KEY, **({"pupil_center": pupil} if shifter else {}))
        assert rel(got32, want) < 1e-5, (name, rel(got32, want))
        out = os.path.join(ROOT, name)
        os.makedirs(out, exist_ok=True)
        save(sd, os.path.join(out, "weights.safetensors"))
        inputs = {"images": images}
        if shifter:
            inputs["pupil_center"] = pupil  # neuralpredictors' name for the shifter's input
        save(inputs, os.path.join(out, "images.safetensors"))
        save({KEY: want.float(), "core_shape": torch.tensor(in_shape, dtype=torch.float32)},
             os.path.join(out, "expected.safetensors"), metadata=dict(meta, model=name, semantics=semantics))
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(config_of(semantics, kw, neurons, shifter), f, indent=2)
            f.write("\n")
        size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
        total += size
        keys = sorted(k for k in sd if k.startswith("core.features"))
        print(f"{name}: core {in_shape}, rates {tuple(want.shape)}, f32 rel {rel(got32, want):.1e}, {size} bytes; "
              f"{len(keys)} core keys, e.g. {[k for k in keys if 'bias.bias' in k or 'scale.scale' in k or 'layer0.conv.bias' in k]}")
    print(f"{total} bytes in {ROOT}")
    assert total < 300_000


if __name__ == "__main__":
    main()
