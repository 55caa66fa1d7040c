#!/usr/bin/env python3
"""Golden data for the Sensorium model with a behaviour modulator: the model of
scripts/golden_sensorium.py (same neuralpredictors 0.3.0 core, readouts and shifter, built by its
`build_model`) inside a FiringRateEncoder that also has a modulator and a non-zero ELU offset.

Rerun (from the repository root; needs torch, safetensors, neuralpredictors 0.3.0 and scipy, which
neuralpredictors' `layers.hermite` imports at module level):

    pip install --no-deps --target /tmp/nplib neuralpredictors==0.3.0
    PYTHONPATH=/tmp/nplib python3 scripts/golden_sensorium_modulator.py

Writes kernels-tests/data/sensorium_mod/{weights,images,expected}.safetensors and config.json,
byte-identical across reruns with the same torch (golden_sensorium.save's fixed layout).

neuralpredictors 0.3.0 ships no modulator (its layers/modulators is empty), so `MLP` and
`MLPModulator` below are written in plain PyTorch with the structure and state_dict key names of
later neuralpredictors' layers/modulators/mlp.py: a ModuleDict keyed by data key whose values hold
`modulator_networks = ModuleList([Sequential(Linear(B, hidden), ReLU, ..., Linear(prev, neurons),
ReLU)])` (layers - 1 hidden Linear+ReLU blocks, n_parameters_to_modulate = 1) and compute
forward(x, behavior) = x * (elu(net(behavior)) + 1). The one extension: `hidden_channels` and
`layers` may be given per data key (as `input_channels` already may there). The keys are
`modulator.<key>.modulator_networks.0.{0,2,4,...}.{weight,bias}`.

FiringRateEncoder (neuralpredictors 0.3.0, as sinzlab/sensorium uses it) computes
    x = core(images); x = readout(x, data_key, shift=shifter[data_key](eye) if shifter)
    x = modulator[data_key](x, behavior=behavior) if modulator; return elu(x + elu_offset) + 1.
Its shifter is applied to every data key when it has one, so "sessA" (no shifter) goes through a
FiringRateEncoder without a shifter over the same core, readouts and modulator.

The model: golden_sensorium's core (16 channels) and FullGaussian2d readouts ("sessA": 23 neurons,
"sessB": 31), its MLPShifter for "sessB" only, and a modulator for both keys: "sessA" B = 3 -> 6 ->
6 -> 23 (layers 3), "sessB" 3 -> 5 -> 31 (layers 2), ReLU after every Linear. elu_offset = -0.5:
with a modulator the offset cannot fold into the readout bias, so the engine's unfolded path runs.
Core and readouts are randomised as golden_sensorium does, then the modulator's weights so that
its gains vary (some final ReLU outputs zero, i.e. gain 1, some gains above 3), and the
pre-nonlinearity values y * gain - 0.5 take both signs.

Checks made here: an independent re-implementation of the modulated forward from the state_dict
alone (golden_sensorium.reference_readout for core, readout and shifter, the modulator walked from
its keys) matches the neuralpredictors model within 1e-10 relative (and absolute) in float64 and
within 1e-6 + 1e-5 |rate| elementwise in float32;
the float32 model is within 1e-6 + 1e-5 |rate| of the float64 one (see close32).
"""
import copy
import importlib.metadata
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_sensorium as gs  # noqa: E402  (also prepares the neuralpredictors import)

from neuralpredictors.layers.encoders import FiringRateEncoder  # noqa: E402

OUT = os.path.join("kernels-tests", "data", "sensorium_mod")
SCRIPT = "scripts/golden_sensorium_modulator.py"
NEURONS = gs.NEURONS  # {"sessA": 23, "sessB": 31}
SHIFTER_KEYS = gs.SHIFTER_KEYS  # ["sessB"]
BEHAVIOR = 3
MOD_HIDDEN = {"sessA": 6, "sessB": 5}
MOD_LAYERS = {"sessA": 3, "sessB": 2}
ELU_OFFSET = -0.5
BATCH = gs.BATCH
IMAGE = gs.IMAGE
SEED = 2027


# ----------------------------------------------------------------- the modulator (plain PyTorch)

class MLP(nn.Module):
    """neuralpredictors.layers.modulators.mlp.MLP (later versions), without the kwargs warning."""

    def __init__(self, neurons, input_channels=3, hidden_channels=10, layers=2, bias=True, n_parameters_to_modulate=1):
        super().__init__()
        self.n_parameters_to_modulate = n_parameters_to_modulate
        self.modulator_networks = nn.ModuleList()
        for _ in range(self.n_parameters_to_modulate):
            prev_output = input_channels
            feat = []
            for _ in range(layers - 1):
                feat.extend([nn.Linear(prev_output, hidden_channels, bias=bias), nn.ReLU()])
                prev_output = hidden_channels
            feat.extend([nn.Linear(prev_output, neurons, bias=bias), nn.ReLU()])
            self.modulator_networks.append(nn.Sequential(*feat))

    def forward(self, x, behavior):
        mods = [F.elu(network(behavior)) + 1 for network in self.modulator_networks]
        mods = mods[0] if self.n_parameters_to_modulate == 1 else torch.stack(mods)
        return x * mods


class MLPModulator(nn.ModuleDict):
    """neuralpredictors' StaticModulator / MLPModulator (later versions): one MLP per data key;
    here hidden_channels and layers may also be dicts keyed by data key."""

    def __init__(self, n_neurons, input_channels=3, hidden_channels=5, layers=2, gamma_modulator=0, bias=True,
                 n_parameters_to_modulate=1):
        super().__init__()
        self.gamma_modulator = gamma_modulator
        pick = lambda v, k: v[k] if isinstance(v, dict) else v  # noqa: E731
        for k, n in n_neurons.items():
            self.add_module(k, MLP(n, pick(input_channels, k), pick(hidden_channels, k), layers=pick(layers, k),
                                   bias=bias, n_parameters_to_modulate=n_parameters_to_modulate))

    def regularizer(self, data_key):
        return 0  # gamma_modulator = 0


def build_model():
    """golden_sensorium's FiringRateEncoder (core, readouts, shifter) with a modulator and ELU_OFFSET."""
    base = gs.build_model()
    modulator = MLPModulator(NEURONS, input_channels=BEHAVIOR, hidden_channels=MOD_HIDDEN, layers=MOD_LAYERS)
    return FiringRateEncoder(core=base.core, readout=base.readout, shifter=base.shifter, modulator=modulator,
                             elu_offset=ELU_OFFSET)


def randomise_modulator(model):
    with torch.no_grad():
        for mlp in model.modulator.values():
            for layer in mlp.modulator_networks[0]:
                if isinstance(layer, nn.Linear):
                    layer.weight.normal_(0, 1.3 / layer.in_features ** 0.5)
                    layer.bias.normal_(0.1, 0.4)


def rates(model, images, key, eye, behavior):
    """The model's forward for one data key (sessA: a FiringRateEncoder without the shifter)."""
    if key in model.shifter:
        return model(images, data_key=key, pupil_center=eye, behavior=behavior)
    plain = FiringRateEncoder(core=model.core, readout=model.readout, shifter=None, modulator=model.modulator,
                              elu_offset=model.offset)
    return plain(images, data_key=key, behavior=behavior)


# ----------------------------------------------------------------- independent re-implementation

def reference_gain(sd, key, behavior, dtype):
    """ELU(MLP(behavior)) + 1, the MLP walked from `modulator.<key>.modulator_networks.0.{0,2,..}`
    with ReLU after every Linear. Also returns every layer's ReLU output."""
    h, j, acts = behavior.to(dtype), 0, []
    p = f"modulator.{key}.modulator_networks.0"
    while f"{p}.{j}.weight" in sd:
        h = torch.relu(h @ sd[f"{p}.{j}.weight"].to(dtype).T + sd[f"{p}.{j}.bias"].to(dtype))
        acts.append(h)
        j += 2
    assert j > 0, key
    return F.elu(h) + 1, acts


def reference(sd, x, key, eye, behavior, dtype):
    y, _ = gs.reference_readout(sd, x, key, eye, dtype)
    gain, acts = reference_gain(sd, key, behavior, dtype)
    z = y * gain + ELU_OFFSET
    return F.elu(z) + 1, z, gain, acts


def close32(a, want):
    """max |a - want| / (1e-6 + 1e-5 |want|): a float32 result's share of an elementwise tolerance
    ten times tighter in rtol than the engine's test (1e-6 + 1e-4 |want|). A plain relative bound
    does not fit float32 here: the largest gains (up to ~6.7) drive y * gain - 0.5 down to about -7,
    where the rate exp(z) ~ 7e-4 carries float32's absolute error in z as a relative one."""
    return ((a.double() - want).abs() / (1e-6 + 1e-5 * want.abs())).max().item()


def main():
    torch.manual_seed(SEED)
    model = build_model()
    gs.randomise(model)
    randomise_modulator(model)
    model.eval()
    images = torch.randn(BATCH, *IMAGE)
    eye = torch.rand(BATCH, 2) * 2 - 1
    behavior = torch.randn(BATCH, BEHAVIOR)
    # Saved before any forward: the readout's forward clamps _mu in place.
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    assert all(v.dtype in gs._DTYPES for v in sd.values())
    mod_keys = sorted(k for k in sd if k.startswith("modulator."))
    want_keys = sorted(f"modulator.{k}.modulator_networks.0.{2 * j}.{p}"
                       for k in NEURONS for j in range(MOD_LAYERS[k]) for p in ("weight", "bias"))
    assert mod_keys == want_keys, mod_keys
    m64 = copy.deepcopy(model).double().eval()

    with torch.no_grad():
        out = {}
        for key in NEURONS:
            e = eye if key in SHIFTER_KEYS else None
            e64 = None if e is None else e.double()
            want = rates(m64, images.double(), key, e64, behavior.double())
            f32 = rates(model, images, key, e, behavior)
            assert close32(f32, want) < 1, (key, "float32 model", close32(f32, want))
            ref64, z, gain, acts = reference(sd, images, key, e, behavior, torch.float64)
            assert gs.rel(ref64, want) < 1e-10, (key, "reference float64", gs.rel(ref64, want))
            assert (ref64 - want).abs().max().item() < 1e-10, key
            ref32, *_ = reference(sd, images, key, e, behavior, torch.float32)
            assert close32(ref32, want) < 1, (key, "reference float32", close32(ref32, want))
            # The modulator's own output against the nn.Module's.
            mod = m64.modulator[key].modulator_networks[0](behavior.double())
            assert (F.elu(mod) + 1 - gain).abs().max().item() < 1e-12, key
            # What the data exercises: zero and large gains, dead hidden units, both ELU branches.
            zero = (acts[-1] == 0).double().mean().item()
            assert 0.15 < zero < 0.7 and gain.max().item() > 3.0, (key, zero, gain.max().item())
            assert all((a == 0).any() and (a > 0).any() for a in acts), key
            assert (z < 0).double().mean().item() > 0.15 and (z > 0).double().mean().item() > 0.15, key
            assert (want > 0).all() and torch.isfinite(want).all()
            out[key] = want.float()
            print(f"{key}: reference f64 rel {gs.rel(ref64, want):.2e} (abs {(ref64 - want).abs().max().item():.2e}); "
                  f"float32 share of 1e-6 + 1e-5|want|: model {close32(f32, want):.3f}, reference {close32(ref32, want):.3f}; "
                  f"gain in [{gain.min().item():.3f}, {gain.max().item():.3f}], {zero:.0%} of gains exactly 1, "
                  f"hidden ReLU zeros {[f'{(a == 0).double().mean().item():.0%}' for a in acts[:-1]]}, "
                  f"{(z < 0).double().mean().item():.0%} of y*gain-0.5 negative")

    os.makedirs(OUT, exist_ok=True)
    gs.save(sd, os.path.join(OUT, "weights.safetensors"))
    gs.save({"images": images, "eye": eye, "behavior": behavior}, os.path.join(OUT, "images.safetensors"))
    meta = {"script": SCRIPT, "torch": torch.__version__,
            "neuralpredictors": importlib.metadata.version("neuralpredictors"),
            "modulator": "plain PyTorch MLPModulator, the structure of later neuralpredictors' layers/modulators/mlp.py"}
    gs.save(out, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    readouts = {}
    for k, m in NEURONS.items():
        readouts[k] = {"neurons": m, "align_corners": True}
        if k in SHIFTER_KEYS:
            readouts[k]["shifter"] = True
        readouts[k]["modulator"] = True
    config = {"core": gs.core_config(), "readouts": readouts, "elu_offset": ELU_OFFSET}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    for k in mod_keys:
        print(f"{k:60s} {tuple(sd[k].shape)}")
    sizes = {f: os.path.getsize(os.path.join(OUT, f)) for f in sorted(os.listdir(OUT))}
    total = sum(sizes.values())
    print({k: tuple(v.shape) for k, v in out.items()}, sizes, f"{total} bytes in {OUT}")
    assert total < 300_000


if __name__ == "__main__":
    main()
