"""PyTorch's answers for every activation on NaN, infinities, signed zeros and f32 extremes.

Writes kernels-tests/data/golden/special_values.safetensors: `x` [n] and one `y.<name>` [n] per
activation (the names of kernels-tests/nan.rs), computed by torch.nn.functional on the CPU in
float32. Rerun from the repository root: `python3 scripts/golden_special_values.py`
(needs `pip install torch safetensors`).

One exception: PyTorch's vectorized float32 GELU returns NaN at +inf while its scalar float32 path
and its float64 path return +inf (x * Phi(x) with Phi(inf) = 1), and it overflows to +inf at
3.4e38 (x * (1 + erf) before the halving) where the float64 value rounds to 3.4e38. vcortex follows
the float64 path, so `y.gelu` is the float64 computation rounded to float32 (the two agree to 1e-5
everywhere else, which the script asserts).
"""
import math

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

inf, nan = math.inf, math.nan
xs = [nan, inf, -inf, 0.0, -0.0, 1e-7, -1e-7, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 20.0, -20.0,
      30.0, -30.0, 88.0, -88.0, 100.0, -100.0, 1e4, -1e4, 1e30, -1e30, 3.4e38, -3.4e38]
x = torch.tensor(xs, dtype=torch.float32)

acts = {
    "identity": lambda v: v,
    "relu": F.relu,
    "elu": F.elu,
    "elu1": lambda v: F.elu(v) + 1,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": F.softplus,
    "softplus_b2_t5": lambda v: F.softplus(v, beta=2.0, threshold=5.0),
    "softplus_b0.5_t1": lambda v: F.softplus(v, beta=0.5, threshold=1.0),
    "softplus_b-1_t5": lambda v: F.softplus(v, beta=-1.0, threshold=5.0),
    "gelu": F.gelu,
    "silu": F.silu,
}

out = {"x": x}
for name, f in acts.items():
    y = f(x)
    if name == "gelu":
        y64 = f(x.double()).float()
        same = torch.isclose(y, y64, rtol=1e-5, atol=1e-7, equal_nan=True)
        assert bool(same[x.abs() < 1e38].all()), "gelu: float32 and float64 disagree away from +inf"
        y = y64
    out[f"y.{name}"] = y.clone()

save_file(out, "kernels-tests/data/golden/special_values.safetensors",
          metadata={"script": "scripts/golden_special_values.py", "torch": torch.__version__})
for k, v in out.items():
    print(k, v.tolist())
