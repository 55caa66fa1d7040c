"""Small ready-to-run inputs for every CLI command, in examples/data (see the README's "Try every
command"). Rerun from the repository root: `python3 scripts/make_examples.py` (needs numpy and
safetensors; no torch). Fixed seed: the files are the same on every run.

- flow/: a composite flow on 3 features (ActNorm, affine coupling, spline coupling with 8 bins),
  random weights with the key names of src/models/flow/mod.rs, and 16 input rows;
- cgnf/input.safetensors: the poses, keypoints and observed flags of the committed cGNF golden
  (kernels-tests/data/cgnf/io.safetensors), the tensors `vcortex flow density` takes, and
  cgnf/keypoints.safetensors, its keypoints and observed flags, what `vcortex flow sample` takes;
- platypose/config.json: a Platypose sampler for the committed MDM weights (kernels-tests/data/mdm).
"""
import json

import numpy as np
from safetensors.numpy import load_file, save_file

rng = np.random.default_rng(7)
D, H, K = 3, 16, 8


def lin(o, i):
    s = 1.0 / np.sqrt(i)
    return rng.uniform(-s, s, (o, i)).astype(np.float32), rng.uniform(-s, s, (o,)).astype(np.float32)


w = {
    "layers.0.log_scale": rng.uniform(-0.3, 0.3, (D,)).astype(np.float32),
    "layers.0.bias": rng.uniform(-0.2, 0.2, (D,)).astype(np.float32),
}
# Affine coupling of feature 0 on features 1, 2: P = 2T = 2; spline coupling of features 1, 2 on 0:
# P = T (3K - 1) = 2 * 23.
for i, mask, p in [(1, [1, 0, 0], 2), (2, [0, 1, 1], 2 * (3 * K - 1))]:
    t = sum(mask)
    w[f"layers.{i}.mask"] = np.array(mask, dtype=np.float32)
    w[f"layers.{i}.net.0.weight"], w[f"layers.{i}.net.0.bias"] = lin(H, D - t)
    ow, ob = lin(p, H)
    w[f"layers.{i}.net.out.weight"], w[f"layers.{i}.net.out.bias"] = 0.3 * ow, 0.3 * ob
save_file(w, "examples/data/flow/weights.safetensors", metadata={"script": "scripts/make_examples.py"})
with open("examples/data/flow/config.json", "w") as f:
    json.dump({"features": D, "layers": [{"type": "actnorm"}, {"type": "affine"},
                                         {"type": "spline", "bins": K, "tail_bound": 3.0}]}, f, indent=1)
    f.write("\n")
save_file({"input": rng.normal(size=(16, D)).astype(np.float32)}, "examples/data/flow/input.safetensors",
          metadata={"script": "scripts/make_examples.py"})

io = load_file("kernels-tests/data/cgnf/io.safetensors")
save_file({k: io[k] for k in ["poses", "keypoints", "observed"]}, "examples/data/cgnf/input.safetensors",
          metadata={"script": "scripts/make_examples.py", "from": "kernels-tests/data/cgnf/io.safetensors"})
save_file({k: io[k] for k in ["keypoints", "observed"]}, "examples/data/cgnf/keypoints.safetensors",
          metadata={"script": "scripts/make_examples.py", "from": "kernels-tests/data/cgnf/io.safetensors"})

with open("examples/data/platypose/config.json", "w") as f:
    json.dump({"mdm": {"features": 51, "latent": 32, "heads": 4, "layers": 2, "max_len": 64},
               "train_steps": 50, "steps": 10, "sampler": "ancestral", "energy_scale": 30.0, "substeps": 3},
              f, indent=1)
    f.write("\n")
