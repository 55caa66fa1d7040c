#!/usr/bin/env python3
"""Golden data for `ops::scores` (the Sensorium evaluation scores): a plain
numpy port of the upstream functions on a small random test set.

Ports, formula for formula:

- sinzlab/sensorium `sensorium/utility/scores.py` at c433fed25f23:
  `split_images` (trials of equal image id, images in np.unique order),
  `get_correlations` (corr over all trials, NaN set to 0 before the mean),
  `get_signal_correlations` (corr of the per-image mean responses and
  predictions), `get_fev` (fev with return_exp_var, FEVE kept where
  FEV >= fev_threshold = 0.15, then the mean);
- sinzlab/neuralpredictors `neuralpredictors/measures/np_functions.py` at
  a2055cdad9de: `corr` (z-scores with std ddof 0 plus eps 1e-8, mean of the
  product) and `fev` (total variance ddof 1 over all trials, noise variance the
  mean over images of the variance across repeats ddof 1, mse over all
  trials; fev = (total - noise) / total, feve = 1 - (mse - noise) /
  (total - noise)).

The port is cross-checked against the installed neuralpredictors' `corr` and
`fev` when it imports.

The test set: 13 images with 2 to 7 repeats each (60 trials, shuffled), 21
neurons. Responses are an image signal plus trial noise; predictions follow the
signal with a gain per neuron (some neurons near zero explainable variance, so
the FEV filter matters); neuron 0 is constant (corr 0, FEV NaN, FEVE -inf, as
numpy divides). Inputs are float32; everything is computed in float64 from
them and stored as float32.

Writes kernels-tests/data/scores/scores.safetensors: `responses`,
`predictions` [60, 21] (F32), `image_ids` [60] (I64), per neuron
`correlation`, `repeat_correlation`, `fev`, `feve` [21], and `means` [3]
(the three summary numbers sensorium reports: mean single-trial correlation,
mean correlation to the average, mean FEVE over FEV >= 0.15).

Rerun from the repository root: python3 scripts/golden_scores.py
(deterministic: the file is byte-identical on every run).
"""

import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import save_file  # noqa: E402  (byte-stable safetensors layout)

OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "kernels-tests", "data", "scores", "scores.safetensors",
)


def corr(y1, y2, axis=-1, eps=1e-8):
    y1 = (y1 - y1.mean(axis=axis, keepdims=True)) / (y1.std(axis=axis, keepdims=True, ddof=0) + eps)
    y2 = (y2 - y2.mean(axis=axis, keepdims=True)) / (y2.std(axis=axis, keepdims=True, ddof=0) + eps)
    return (y1 * y2).mean(axis=axis)


def fev(targets, predictions):
    img_var, pred_var = [], []
    for target, prediction in zip(targets, predictions):
        pred_var.append((target - prediction) ** 2)
        img_var.append(np.var(target, axis=0, ddof=1))
    pred_var = np.vstack(pred_var)
    img_var = np.vstack(img_var)
    total_var = np.var(np.vstack(targets), axis=0, ddof=1)
    noise_var = np.mean(img_var, axis=0)
    fev_ = (total_var - noise_var) / total_var
    pred_var = np.mean(pred_var, axis=0)
    fev_e = 1 - (pred_var - noise_var) / (total_var - noise_var)
    return fev_, fev_e


def split_images(responses, image_ids):
    return [responses[image_ids == i] for i in np.unique(image_ids)]


def main():
    rng = np.random.RandomState(20240808)
    reps = rng.randint(2, 8, size=13)
    ids = np.repeat(np.arange(13, dtype=np.int64) * 37 - 100, reps)
    ids = ids[rng.permutation(len(ids))]
    t, m = len(ids), 21
    signal = rng.uniform(-1, 1, size=(13, m))
    img = np.searchsorted(np.unique(ids), ids)
    gain = np.linspace(0.2, 1.2, m)
    strength = np.linspace(0.05, 1.0, m)  # image signal per neuron: low FEV on the left
    responses = (2.0 + strength * signal[img] + 0.4 * rng.standard_normal((t, m))).astype(np.float32)
    predictions = (2.0 + gain * strength * signal[img] + 0.1 * rng.standard_normal((t, m))).astype(np.float32)
    responses[:, 0] = 0.75

    r, p = responses.astype(np.float64), predictions.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        correlation = corr(r, p, axis=0)
        mr = np.vstack([x.mean(axis=0, keepdims=True) for x in split_images(r, ids)])
        mp = np.vstack([x.mean(axis=0, keepdims=True) for x in split_images(p, ids)])
        repeat_correlation = corr(mr, mp, axis=0)
        fev_, feve = fev(split_images(r, ids), split_images(p, ids))
        c0 = correlation.copy()
        c0[np.isnan(c0)] = 0
        means = np.array([c0.mean(), repeat_correlation.mean(), feve[fev_ >= 0.15].mean()])
        try:
            import collections
            import collections.abc

            collections.Iterable = collections.abc.Iterable
            from neuralpredictors.measures import np_functions as npf

            assert np.allclose(npf.corr(r, p, axis=0), correlation, rtol=1e-12, atol=1e-12, equal_nan=True)
            f2, e2 = npf.fev(split_images(r, ids), split_images(p, ids), return_exp_var=True)
            assert np.allclose(f2, fev_, equal_nan=True) and np.allclose(e2, feve, equal_nan=True)
            print("cross-checked against neuralpredictors", getattr(npf, "__name__", ""))
        except ImportError:
            print("neuralpredictors not importable: not cross-checked")

    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(
        {
            "responses": f32(responses),
            "predictions": f32(predictions),
            "image_ids": torch.from_numpy(np.ascontiguousarray(ids)),
            "correlation": f32(correlation),
            "repeat_correlation": f32(repeat_correlation),
            "fev": f32(fev_),
            "feve": f32(feve),
            "means": f32(means),
        },
        OUT,
        metadata={"script": "scripts/golden_scores.py", "numpy": np.__version__},
    )
    print(f"wrote {OUT}: T {t}, M {m}, {len(reps)} images; means {means}")
    print(f"neurons with FEV >= 0.15: {(fev_ >= 0.15).sum()} of {m}")


if __name__ == "__main__":
    main()
