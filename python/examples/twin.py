"""A digital twin from Python: load the committed Sensorium golden model
(kernels-tests/data/sensorium, made by scripts/golden_sensorium.py from neuralpredictors), predict
the responses to its test images, compare them with the responses PyTorch computed, and plot the
per-neuron correlation when matplotlib is installed.

    python python/examples/twin.py [--out twin.png]
"""

import argparse
import os
import sys

import numpy as np

import vcortex

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "kernels-tests", "data", "sensorium")



def pearson(a, b):
    """Correlation of each column of a with the same column of b."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a neuron constant over the images: NaN
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="twin.png", help="where the plot goes (needs matplotlib)")
    a = p.parse_args()
    model = vcortex.Sensorium.load(os.path.join(DATA, "weights.safetensors"), os.path.join(DATA, "config.json"))
    inputs = vcortex.read_safetensors(os.path.join(DATA, "images.safetensors"))
    expected = vcortex.read_safetensors(os.path.join(DATA, "expected.safetensors"))
    print(f"{model.context.info()['name']}: images {list(inputs['images'].shape)}, data keys {model.data_keys}")
    responses = model.predict(inputs["images"], pupil_center=inputs["eye"])
    worst = 0.0
    corr = {}
    for key, r in responses.items():
        err = float(np.abs(r - expected[key]).max())
        worst = max(worst, err)
        corr[key] = pearson(r.astype(np.float64), expected[key].astype(np.float64))
        print(f"  {key}: {r.shape[1]} neurons, max |vcortex − PyTorch| = {err:.2e}, "
              f"per-neuron correlation min {np.nanmin(corr[key]):.6f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
    else:
        fig, ax = plt.subplots(figsize=(6, 3))
        for key, c in corr.items():
            ax.plot(np.arange(len(c)), c, "o", label=key)
        ax.set_xlabel("neuron")
        ax.set_ylabel("correlation with PyTorch")
        ax.set_title("vcortex against the PyTorch model, per neuron")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.out, dpi=100)
        print(f"wrote {a.out}")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
