#!/usr/bin/env python3
"""Golden data for the rotation-equivariant Sensorium core: neuralpredictors 0.3.0's
RotationEquivariant2dCore (layers/cores/conv2d.py, with the Hermite filters of layers/hermite.py)
in front of FullGaussian2d readouts inside a FiringRateEncoder, assembled as
scripts/golden_sensorium.py assembles the Stacked2dCore baseline. Three small models:

- "a": 1 input channel, 3 features x 8 rotations (24 channels), 5x5 input kernel unpadded, two
  3x3 hidden layers, upsampling 2, the rotation-shared batch norm (`norm.batch_norm.*`), ELU after
  every layer; data keys "sessA" (17 neurons) and "sessB" (11 neurons, with an MLPShifter).
- "b": 2 input channels, 2 features x 4 rotations, 7x7 input kernel padded, one 5x5 hidden layer,
  upsampling 3, stride 2, `independent_bn_bias=False, batch_norm_scale=False` (a non-affine batch
  norm followed by a rotation-shared `bias.bias`), no ELU after the last layer, elu_offset 0.2;
  one data key "sessC" (9 neurons). neuralpredictors 0.3.0 drops the core's `stride` argument
  (always 1); later versions pass it to every layer's HermiteConv2D, which is what this script
  sets after construction, and so its config says `"semantics": "head"` (with head's names for
  the same batch-norm arguments).
- "c": 1 input channel, 2 features x 4 rotations, 5x5 input kernel padded, hidden kernels [3, 5]
  (both padded by 3 // 2, neuralpredictors' hidden_padding default), `stack=[-2, 0]` (layers 1 and
  0 concatenated), AdaptiveELU shifts (0.4, -0.2) and none after the last layer,
  `bias=False, independent_bn_bias=False` (a non-affine batch norm followed by a rotation-shared
  `scale.scale`), elu_offset -0.1; one data key "sessD" (7 neurons).

Each model's full state_dict (PyTorch's key names, the frozen Hermite basis `rotate_hermite.H`
and rotations `rotate_hermite.Rs.*`, buffers and num_batches_tracked included) is written as
safetensors with a JSON config, images (and eye positions), and the rates computed in float64.

Rerun (from the repository root; needs torch, numpy, scipy, safetensors and neuralpredictors 0.3.0):

    pip install --no-deps --target /tmp/nplib neuralpredictors==0.3.0
    PYTHONPATH=/tmp/nplib python3 scripts/golden_rot_eq.py

neuralpredictors 0.3.0's hermite_2d calls math.factorial on numpy floats, which Python >= 3.10
refuses: hermite's `math` is replaced below by one whose factorial takes integral floats (same
values). Writes kernels-tests/data/rot_eq/{a,b,c}/{weights,images,expected}.safetensors and
config.json; reruns are byte-identical with the same torch.

Checks made here:
- the kernels built from the state_dict alone (numpy, float64: rotate the coefficients with each
  Rs.r, combine the basis H, roll the input channels by r*F for layers after the first, sum each
  upsampling x upsampling block, output channel r*F + f) equal the module's own
  `weights_all_rotations` within 1e-6 (float32 module) and 1e-12 (float64 module);
- a forward written out from those kernels (conv2d, the batch norm shared over rotations folded to
  a per-feature scale/shift, ELU, the Gaussian readout of golden_sensorium.reference_readout)
  matches the float64 model within 1e-12 relative, and the float32 model within 1e-5;
- the core is equivariant: rotating a square input by 90 degrees (torch.rot90(x, 1, (2, 3)))
  rotates the core's output the same way and moves rotation block r to block r + R/4 (mod R).
The built kernels of "a" (layers 0 and 1) are saved with the expected rates (`weights.layer0`,
`weights.layer1`), and its core output for a square image and its rotation (`core_square`,
`core_square_rot90`, from `square` in images.safetensors).
"""
import copy
import importlib.metadata
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import prepare_neuralpredictors_import  # noqa: E402

prepare_neuralpredictors_import()

import neuralpredictors.layers.hermite as hermite  # noqa: E402
from neuralpredictors.layers.cores import RotationEquivariant2dCore  # noqa: E402
from neuralpredictors.layers.encoders import FiringRateEncoder  # noqa: E402
from neuralpredictors.layers.shifters import MLPShifter  # noqa: E402
from neuralpredictors.utils import get_module_output  # noqa: E402

from golden_sensorium import MultipleFullGaussian2d, rel, save  # noqa: E402
import golden_sensorium  # noqa: E402

hermite.math = types.SimpleNamespace(factorial=lambda n: math.factorial(int(n)))

OUT = os.path.join("kernels-tests", "data", "rot_eq")
SCRIPT = "scripts/golden_rot_eq.py"
EPS = 1e-5  # RotationEquivariantBatchNorm2D's default

MODELS = {
    "a": dict(
        core=dict(input_channels=1, hidden_channels=3, input_kern=5, hidden_kern=3, layers=3, num_rotations=8,
                  upsampling=2, stride=1, pad_input=False, final_nonlinearity=True),
        bn=dict(bias=True, batch_norm_scale=True, independent_bn_bias=True),
        neurons={"sessA": 17, "sessB": 11}, shifter=["sessB"], image=(1, 22, 30), batch=4, elu_offset=0.0,
        seed=2027,
    ),
    "b": dict(
        core=dict(input_channels=2, hidden_channels=2, input_kern=7, hidden_kern=5, layers=2, num_rotations=4,
                  upsampling=3, stride=2, pad_input=True, final_nonlinearity=False),
        bn=dict(bias=True, batch_norm_scale=False, independent_bn_bias=False),
        neurons={"sessC": 9}, shifter=[], image=(2, 15, 13), batch=3, elu_offset=0.2,
        seed=2028,
    ),
    "c": dict(
        core=dict(input_channels=1, hidden_channels=2, input_kern=5, hidden_kern=[3, 5], layers=3, num_rotations=4,
                  upsampling=2, stride=1, pad_input=True, final_nonlinearity=False, elu_shift=(0.4, -0.2)),
        bn=dict(bias=False, batch_norm_scale=True, independent_bn_bias=False),
        stack=[-2, 0],
        neurons={"sessD": 7}, shifter=[], image=(1, 12, 14), batch=2, elu_offset=-0.1,
        seed=2029,
    ),
}


def build_model(spec):
    c = spec["core"]
    core = RotationEquivariant2dCore(
        **c, **spec["bn"], gamma_input=6.3831, gamma_hidden=0.0, skip=0, momentum=0.9, batch_norm=True,
        laplace_padding=None, input_regularizer="LaplaceL2norm", stack=spec.get("stack", -1), use_avg_reg=False,
    )
    # 0.3.0 drops its `stride` argument (Stacked2dCore's default 1 overwrites it before the layers
    # are built); later neuralpredictors passes it to every HermiteConv2D, as set here.
    for m in core.modules():
        if isinstance(m, hermite.HermiteConv2D):
            m.stride = c["stride"]
    in_shape = tuple(get_module_output(core, (1,) + spec["image"], use_cuda=False)[1:])
    assert in_shape[0] == len(core.stack) * c["hidden_channels"] * c["num_rotations"], in_shape
    readout = MultipleFullGaussian2d(
        in_shape_dict={k: in_shape for k in spec["neurons"]}, n_neurons_dict=spec["neurons"], init_mu_range=0.3,
        bias=True, init_sigma=0.1, gamma_readout=0.0076, gauss_type="full",
        grid_mean_predictor=None, grid_mean_predictor_type=None, source_grids=None,
    )
    shifter = None
    if spec["shifter"]:
        shifter = MLPShifter(data_keys=spec["shifter"], input_channels=2, hidden_channels_shifter=5, shift_layers=3,
                             gamma_shifter=0)
    return FiringRateEncoder(core=core, readout=readout, shifter=shifter, elu_offset=spec["elu_offset"])


def randomise(model):
    with torch.no_grad():
        for m in model.core.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.affine:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
            if isinstance(m, hermite.RotationEquivariantBias2DLayer):
                m.bias.normal_(0, 0.3)
            if isinstance(m, hermite.RotationEquivariantScale2DLayer):
                m.scale.uniform_(0.5, 1.5)
        for r in model.readout.values():
            r._mu.uniform_(-1.2, 1.2)  # some outside [-1, 1]: the readout clamps
            r._features.normal_(0, 0.3)
            r.bias.normal_(0, 0.3)


def rates(model, images, key, eye):
    """golden_sensorium.rates, for a model that may have no shifter at all."""
    if model.shifter is None:
        return model(images, data_key=key)
    return golden_sensorium.rates(model, images, key, eye)


# ----------------------------------------------------------------- independent re-implementation

def built_kernels(sd, spec, layer):
    """The layer's conv weight [R*F, Cin_total, k, k] from the state_dict alone, in float64."""
    c = spec["core"]
    R, up = c["num_rotations"], c["upsampling"]
    p = f"core.features.layer{layer}.hermite_conv"
    coeffs = sd[f"{p}.coeffs"].double().numpy()  # [n_coeffs, Cin_total, F]
    H = sd[f"{p}.rotate_hermite.H"].double().numpy()  # [n_coeffs, k*up, k*up]
    nc, cin, nf = coeffs.shape
    k = H.shape[1] // up
    fin = cin // R
    out = np.zeros((R * nf, cin, k, k))
    for r in range(R):
        rot = sd[f"{p}.rotate_hermite.Rs.{r}"].double().numpy()
        cr = np.einsum("ab,bcf->acf", rot, coeffs)
        w = np.einsum("auv,acf->uvcf", H, cr)  # [k*up, k*up, Cin_total, F]
        if layer > 0:
            w = w[:, :, (np.arange(cin) - r * fin) % cin, :]  # in[c] <- in[c - r*F]
        w = w.reshape(k, up, k, up, cin, nf).sum(axis=(1, 3))  # sum each up x up block
        out[r * nf:(r + 1) * nf] = w.transpose(3, 2, 0, 1)
    return out


def folded_norm(sd, spec, layer):
    """The per-channel scale and shift [R*F] of the layer's rotation-shared batch norm (and bias)."""
    c = spec["core"]
    p = f"core.features.layer{layer}"
    t = {k: v.double() for k, v in sd.items() if k.startswith(p) and v.is_floating_point()}
    n = f"{p}.norm.batch_norm"
    scale = t.get(f"{n}.weight", torch.ones(c["hidden_channels"], dtype=torch.float64)) / torch.sqrt(
        t[f"{n}.running_var"] + EPS)
    shift = t.get(f"{n}.bias", torch.zeros(c["hidden_channels"], dtype=torch.float64)) - t[f"{n}.running_mean"] * scale
    if f"{p}.bias.bias" in t:
        shift = shift + t[f"{p}.bias.bias"].reshape(-1)
    if f"{p}.scale.scale" in t:
        scale, shift = scale * t[f"{p}.scale.scale"].reshape(-1), shift * t[f"{p}.scale.scale"].reshape(-1)
    return scale.repeat(c["num_rotations"]), shift.repeat(c["num_rotations"])


def reference_core(sd, spec, x):
    c = spec["core"]
    h = x.double()
    hk = c["hidden_kern"] if isinstance(c["hidden_kern"], list) else [c["hidden_kern"]]
    xs, ys = c.get("elu_shift", (0, 0))
    outs = []
    for l in range(c["layers"]):
        w = torch.from_numpy(built_kernels(sd, spec, l))
        k = w.shape[-1]
        # hidden_padding None: the first hidden kernel's k // 2, for every hidden layer.
        pad = (k // 2 if c["pad_input"] else 0) if l == 0 else hk[0] // 2
        h = F.conv2d(h, w, stride=c["stride"], padding=pad)
        scale, shift = folded_norm(sd, spec, l)
        h = h * scale[:, None, None] + shift[:, None, None]
        if l + 1 < c["layers"] or c["final_nonlinearity"]:
            h = F.elu(h - xs) + ys
        outs.append(h)
    stack = spec.get("stack", -1)
    layers = list(range(c["layers"]))[stack:] if isinstance(stack, int) else stack
    return torch.cat([outs[i] for i in layers], dim=1)


def readout_rates(sd, core, key, eye, elu_offset):
    """The readout of `key` (with its shifter) on a core output, then ELU(y + offset) + 1, float64."""
    t = {k: v.double() for k, v in sd.items() if v.is_floating_point()}
    B, C, H, W = core.shape
    r = f"readout.{key}"
    n = t[f"{r}.bias"].shape[0]
    pos = t[f"{r}._mu"].reshape(n, 2).clamp(-1, 1).expand(B, n, 2)
    if f"shifter.{key}.mlp.0.weight" in t:
        s, j = eye.double(), 0
        while f"shifter.{key}.mlp.{j}.weight" in t:
            s = torch.tanh(s @ t[f"shifter.{key}.mlp.{j}.weight"].T + t[f"shifter.{key}.mlp.{j}.bias"])
            j += 2
        pos = pos + s[:, None, :]  # after the clamp
    grid = pos[:, :, None, :]  # [B, n, 1, 2]
    sampled = F.grid_sample(core, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[..., 0]
    y = torch.einsum("bcn,cn->bn", sampled, t[f"{r}._features"].reshape(C, n)) + t[f"{r}.bias"]
    return F.elu(y + elu_offset) + 1


# ----------------------------------------------------------------- files

def config_json(spec):
    c = spec["core"]
    core = {
        "kind": "rotation_equivariant", "input_channels": c["input_channels"],
        "hidden_channels": c["hidden_channels"], "input_kern": c["input_kern"], "hidden_kern": c["hidden_kern"],
        "layers": c["layers"], "num_rotations": c["num_rotations"], "upsampling": c["upsampling"],
        "stride": c["stride"], "pad_input": c["pad_input"], "final_nonlinearity": c["final_nonlinearity"],
        "stack": spec.get("stack", -1), "batch_norm_eps": EPS,
    }
    if "elu_shift" in c:
        core["elu_shift"] = list(c["elu_shift"])
    bn = spec["bn"]
    if c["stride"] == 1:
        # neuralpredictors 0.3.0's arguments, as the model was built.
        core.update(bias=bn["bias"], batch_norm_scale=bn["batch_norm_scale"],
                    independent_bn_bias=bn["independent_bn_bias"])
    else:
        # A stride on every layer is what later neuralpredictors ("head") does: its arguments for
        # the same layers (an affine norm where bias and batch_norm_scale, else a bias or scale
        # layer; the last layer's scale is final_batchnorm_scale).
        assert not bn["independent_bn_bias"]
        core.update(semantics="head", bias=bn["bias"], batch_norm_scale=bn["batch_norm_scale"],
                    final_batchnorm_scale=bn["batch_norm_scale"])
    readouts = {k: dict(neurons=m, align_corners=True, **({"shifter": True} if k in spec["shifter"] else {}))
                for k, m in spec["neurons"].items()}
    return {"core": core, "readouts": readouts, "elu_offset": spec["elu_offset"]}


def make(name, spec):
    torch.manual_seed(spec["seed"])
    model = build_model(spec)
    randomise(model)
    model.eval()
    images = torch.randn(spec["batch"], *spec["image"])
    eye = torch.rand(spec["batch"], 2) * 2 - 1
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    m64 = copy.deepcopy(model).double().eval()
    c = spec["core"]
    out = {}
    with torch.no_grad():
        # The built kernels against the module's own.
        for l in range(c["layers"]):
            want = built_kernels(sd, spec, l)
            for m, tol in ((model, 1e-6), (m64, 1e-12)):
                conv = m.core.features[l].hermite_conv
                conv(torch.zeros(1, conv.input_features, 9, 9, dtype=conv.coeffs.dtype))  # sets weights_all_rotations
                got = conv.weights_all_rotations.double().numpy()
                assert got.shape == want.shape and np.abs(got - want).max() < tol, (name, l, np.abs(got - want).max())
            if name == "a" and l < 2:
                out[f"weights.layer{l}"] = torch.from_numpy(want).float()
        core64 = m64.core(images.double())
        assert (core64 - reference_core(sd, spec, images)).abs().max().item() < 1e-12
        for key in spec["neurons"]:
            e = eye if key in spec["shifter"] else None
            want = rates(m64, images.double(), key, None if e is None else e.double())
            f32 = rates(model, images, key, e)
            assert rel(f32, want) < 1e-5, (name, key, "float32 model", rel(f32, want))
            ref = readout_rates(sd, core64, key, e, spec["elu_offset"])
            assert rel(ref, want) < 1e-12, (name, key, "reference", rel(ref, want))
            assert (want > 0).all()
            out[key] = want.float()
            print(f"{name}/{key}: f32 model rel {rel(f32, want):.2e}, reference {rel(ref, want):.2e}")
        # 90-degree equivariance of the core, on a square image (block r of each stacked layer).
        R, nf = c["num_rotations"], len(model.core.stack) * c["hidden_channels"]
        side = 17
        square = torch.randn(1, c["input_channels"], side, side)
        y = m64.core(square.double())
        yr = m64.core(torch.rot90(square, 1, (2, 3)).double())
        S = len(model.core.stack)
        yb, yrb = y.view(S, R, nf // S, *y.shape[2:]), yr.view(S, R, nf // S, *yr.shape[2:])
        moved = torch.rot90(yb, 1, (3, 4)).roll(R // 4, dims=1)  # block r -> r + R/4
        err = (moved - yrb).abs().max().item()
        assert err < 1e-9 * yb.abs().max().item(), (name, "equivariance", err)
        print(f"{name}: rot90 equivariance error {err:.2e}")
        if name == "a":
            out["core_square"] = y.float()
            out["core_square_rot90"] = yr.float()

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    save(sd, os.path.join(d, "weights.safetensors"))
    ins = {"images": images}
    if spec["shifter"]:
        ins["eye"] = eye
    if name == "a":
        ins["square"] = square
    save(ins, os.path.join(d, "images.safetensors"))
    meta = {"script": SCRIPT, "torch": torch.__version__, "neuralpredictors": importlib.metadata.version("neuralpredictors")}
    save(out, os.path.join(d, "expected.safetensors"), metadata=meta)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config_json(spec), f, indent=2)
        f.write("\n")
    for k, v in sorted(sd.items()):
        print(f"  {k:60s} {tuple(v.shape)} {v.dtype}")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))


def main():
    torch.set_num_threads(1)
    total = sum(make(name, spec) for name, spec in MODELS.items())
    print(f"{total} bytes in {OUT}")
    assert total < 400_000


if __name__ == "__main__":
    main()
