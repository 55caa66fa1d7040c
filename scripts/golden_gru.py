#!/usr/bin/env python3
"""Golden data for the recurrent cells (ops::gru): eval cases `conv_gru` and `gru`.

- conv_gru: a plain-PyTorch port of neuralpredictors' ConvGRUCell and GRU_Module
  (neuralpredictors/layers/rnn_modules/gru_module.py, sinzlab/neuralpredictors at commit
  a2055cdad9de1f0c07033484d628588d8aa7acc4): six biased nn.Conv2d (reset/update/out gate,
  each on the input and on the hidden state), input padding input_kern // 2 when pad_input
  (else none, the state input_kern - 1 smaller), hidden padding rec_kern // 2, h0 = 0,
      z = sigmoid(update_in(x) + update_hid(h)), r = sigmoid(reset_in(x) + reset_hid(h)),
      h' = h * (1 - z) + tanh(out_in(x) + out_hid(h * r)) * z,
  applied frame by frame over [N, C, T, H, W] and the states stacked on axis 2. The port is
  checked against upstream's own GRU_Module (same weights) when NEURALPREDICTORS_SRC names a
  checkout of that commit (neuralpredictors 0.3.0 on PyPI has no rnn_modules yet).
  Case tensors are the cell's state-dict names (`reset_gate_input.weight`, ...).
- gru: torch.nn.GRU(input_size, hidden_size, batch_first=True) itself, one layer; tensors
  weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, optional h0 [1, B, H]; outputs output
  [B, T, H] and h_n [1, B, H]. The 42 -> 20 case is the latent video model's encoder GRU.

The expected outputs are computed in float64 (the module cast with .double()); the float32 module
is checked to be within 1e-6 of them. Rerun (from the repository root; torch and safetensors):

    NEURALPREDICTORS_SRC=/path/to/neuralpredictors python3 scripts/golden_gru.py

Writes kernels-tests/data/gru/NAME.{case,expected}.safetensors (about 60 KB in all); byte-identical
across reruns with the same torch build. kernels-tests/gru.rs runs them through `vcortex eval` on
the GPU and the CPU reference and holds both within 1e-5 (absolute, plus 1e-5 relative).
"""
import os
import sys

import torch
from torch import nn

sys.dont_write_bytecode = True  # no scripts/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common  # noqa: E402
from golden_common import check_all, deterministic_torch, expected_meta, seeder, write_all  # noqa: E402

golden_common.OUT_DIR = os.path.join(os.path.dirname(golden_common.OUT_DIR), "gru")
SCRIPT = "scripts/golden_gru.py"
UPSTREAM = "a2055cdad9de1f0c07033484d628588d8aa7acc4"


class ConvGRUCell(nn.Module):
    """neuralpredictors' ConvGRUCell, forward pass only (no regularizer, no init)."""

    def __init__(self, input_channels, rec_channels, input_kern, rec_kern, groups=1, pad_input=True):
        super().__init__()
        input_padding = input_kern // 2 if pad_input else 0
        rec_padding = rec_kern // 2
        self.rec_channels = rec_channels
        self._shrinkage = 0 if pad_input else input_kern - 1

        def conv(cin, k, p):
            return nn.Conv2d(cin, rec_channels, k, padding=p, groups=groups)

        self.reset_gate_input = conv(input_channels, input_kern, input_padding)
        self.reset_gate_hidden = conv(rec_channels, rec_kern, rec_padding)
        self.update_gate_input = conv(input_channels, input_kern, input_padding)
        self.update_gate_hidden = conv(rec_channels, rec_kern, rec_padding)
        self.out_gate_input = conv(input_channels, input_kern, input_padding)
        self.out_gate_hidden = conv(rec_channels, rec_kern, rec_padding)

    def init_state(self, x):
        n, _, *spatial = x.shape
        return torch.zeros(n, self.rec_channels, *[s - self._shrinkage for s in spatial], dtype=x.dtype)

    def forward(self, x, prev_state):
        if prev_state is None:
            prev_state = self.init_state(x)
        update = torch.sigmoid(self.update_gate_input(x) + self.update_gate_hidden(prev_state))
        reset = torch.sigmoid(self.reset_gate_input(x) + self.reset_gate_hidden(prev_state))
        out = self.out_gate_input(x) + self.out_gate_hidden(prev_state * reset)
        h_t = torch.tanh(out)
        return prev_state * (1 - update) + h_t * update


class GRUModule(nn.Module):
    """neuralpredictors' GRU_Module: the cell over the frames (axis 2), every state stacked."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.gru = ConvGRUCell(*args, **kwargs)

    def forward(self, x):
        states, hidden = [], None
        for t in range(x.shape[2]):
            hidden = self.gru(x[:, :, t], hidden)
            states.append(hidden)
        return torch.stack(states, 2)


def randomize(module, scale):
    """Weights N(0, scale^2 / fan_in) and biases N(0, 0.3^2): every gate away from 0 and 1."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "weight" in name:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape) * scale / fan_in ** 0.5)
            else:
                p.copy_(torch.randn(p.shape) * 0.3)


def upstream_check(model, args, kwargs, x):
    """The port against upstream's own GRU_Module (same weights), when a checkout of
    neuralpredictors at UPSTREAM is named by NEURALPREDICTORS_SRC (0.3.0 on PyPI predates
    rnn_modules). gru_module.py imports only torch, so it is loaded from its file."""
    src = os.environ.get("NEURALPREDICTORS_SRC")
    if not src:
        print("  (NEURALPREDICTORS_SRC not set: port not cross-checked against upstream)")
        return
    import importlib.util
    path = os.path.join(src, "neuralpredictors", "layers", "rnn_modules", "gru_module.py")
    spec = importlib.util.spec_from_file_location("upstream_gru_module", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # Upstream's init_state makes a float32 zero state, so the two are compared in float32.
    up = mod.GRU_Module(*args, **kwargs)
    up.load_state_dict(model.state_dict())
    with torch.no_grad():
        diff = (up(x) - model(x)).abs().max().item()
    assert diff == 0.0, diff
    print("  port == upstream GRU_Module (bit for bit, float32)")


def conv_gru_case(name, n, c, ch, t, h, w, ki, kr, groups, pad_input):
    seed(name)
    args = (c, ch, ki, kr)
    kwargs = dict(groups=groups, pad_input=pad_input)
    model = GRUModule(*args, **kwargs)
    randomize(model, 1.5)
    x = torch.randn(n, c, t, h, w)
    with torch.no_grad():
        want = model.double()(x.double())
        got32 = model.float()(x)
    err = (got32.double() - want).abs().max().item()
    assert err < 1e-6, (name, err)
    upstream_check(model, args, kwargs, x)
    inputs = {"input": x}
    inputs.update({k[len("gru."):]: v for k, v in model.state_dict().items()})
    params = {"groups": str(groups), "pad_input": "true" if pad_input else "false"}
    print(f"{name}: output {list(want.shape)}, float32 torch within {err:.1e}")
    return (name, "conv_gru", params, inputs, {"output": want}, expected_meta(SCRIPT, name, upstream=UPSTREAM))


def gru_case(name, b, t, i, hs, with_h0):
    seed(name)
    model = nn.GRU(i, hs, batch_first=True)
    randomize(model, 1.5)
    x = torch.randn(b, t, i)
    h0 = torch.randn(1, b, hs) * 0.5 if with_h0 else None
    with torch.no_grad():
        want, hn = model.double()(x.double(), None if h0 is None else h0.double())
        got32, _ = model.float()(x, h0)
    err = (got32.double() - want).abs().max().item()
    assert err < 1e-6, (name, err)
    inputs = {"input": x, **model.state_dict()}
    if h0 is not None:
        inputs["h0"] = h0
    print(f"{name}: output {list(want.shape)}, float32 torch within {err:.1e}")
    return (name, "gru", {}, inputs, {"output": want, "h_n": hn}, expected_meta(SCRIPT, name))


if __name__ == "__main__":
    deterministic_torch()
    seed = seeder(1500)
    files = [
        conv_gru_case("conv_gru_padded", n=2, c=3, ch=4, t=5, h=6, w=7, ki=3, kr=3, groups=1, pad_input=True),
        conv_gru_case("conv_gru_unpadded_groups", n=1, c=4, ch=6, t=4, h=7, w=6, ki=4, kr=5, groups=2,
                      pad_input=False),
        gru_case("gru_42x20", b=3, t=12, i=42, hs=20, with_h0=False),
        gru_case("gru_h0_odd", b=2, t=7, i=5, hs=3, with_h0=True),
    ]
    write_all(files)
    total = check_all(files, max_file_bytes=64 * 1024, max_total_bytes=200 * 1024)
    print(f"wrote {len(files)} cases to {golden_common.OUT_DIR} ({total} bytes)")
