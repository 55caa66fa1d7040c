"""The video models from Python: the Sensorium 2023 video twin against its PyTorch goldens
(kernels-tests/data/video, scripts/golden_video.py and golden_video2d.py: every core type), and the
latent video model in both modes."""

import json
import os

import numpy as np
import pytest

import vcortex
from conftest import DATA, read_safetensors


@pytest.mark.parametrize("name", ["factorised", "basic", "gru2d", "gru2d_ds", "roteq2d"])
def test_video_golden(name):
    d = os.path.join(DATA, "video", name)
    m = vcortex.Video.load(os.path.join(d, "weights.safetensors"), os.path.join(d, "config.json"))
    inputs, _ = read_safetensors(os.path.join(d, "inputs.safetensors"))
    want, _ = read_safetensors(os.path.join(d, "expected.safetensors"))
    got = m.predict(inputs["video"], pupil_center=inputs["pupil_center"])
    assert set(got) == set(want) == set(m.data_keys)
    for k, w in want.items():
        assert got[k].shape == w.shape and got[k].dtype == np.float32
        np.testing.assert_allclose(got[k], w, rtol=1e-4, atol=1e-5, err_msg=k)
    # The same through vcortex.load, which reads the config's kind.
    again = vcortex.load(os.path.join(d, "weights.safetensors"), os.path.join(d, "config.json"))
    assert isinstance(again, vcortex.Video)
    # A readout with a shifter refuses a call without pupil_center, naming it.
    with pytest.raises(vcortex.VcortexError) as e:
        m.predict(inputs["video"], data_key="m1")
    assert "pupil_center" in str(e.value)


def _latent_config():
    return {
        "kind": "latent",
        "core": {
            "hidden_channels": [3, 5],
            "spatial_input_kernel": 3,
            "temporal_input_kernel": 3,
            "spatial_hidden_kernel": 3,
            "temporal_hidden_kernel": 2,
        },
        "readout": {"data_key": "m", "neurons": 5, "kernel": [5, 3], "bias": True},
        "encoder": {"hidden_dim": 6, "hidden_gru": 4, "output_dim": 3},
        "samples": 7,
        "seed": 3,
    }


def test_latent_modes():
    ctx = vcortex.default_context()
    m = vcortex.Latent(vcortex.Latent._native_cls._random(ctx._c, json.dumps(_latent_config()), 21), ctx)
    assert m.data_key == "m"
    rng = np.random.default_rng(4)
    b, t, n = 2, 8, 5
    video = rng.uniform(-1, 1, (b, 1, t, 6, 7)).astype(np.float32)
    responses = np.maximum(rng.uniform(-0.5, 2, (b, n, t)), 0).astype(np.float32)
    prior = m.predict(video, samples=4)
    assert set(prior) == {"mean"} and prior["mean"].shape == (b, n, t - 3)
    assert np.all(np.isfinite(prior["mean"])) and np.all(prior["mean"] > 0)
    np.testing.assert_array_equal(prior["mean"], m.predict(video, samples=4)["mean"])
    assert not np.array_equal(prior["mean"], m.predict(video, samples=4, seed=9)["mean"])
    cond = m.predict(video, responses)
    assert set(cond) == {"mean", "loglik_bits"} and cond["loglik_bits"].shape == (b, n, t - 3)
    assert np.all(np.isfinite(cond["loglik_bits"]))
    # Prior samples with the responses as targets: the same mean as without them, plus their
    # log-likelihood under the unconditioned model.
    targeted = m.predict(video, responses, samples=4, conditioned=False)
    assert set(targeted) == {"mean", "loglik_bits"}
    np.testing.assert_array_equal(targeted["mean"], prior["mean"])
    assert np.all(np.isfinite(targeted["loglik_bits"]))
    assert not np.allclose(targeted["loglik_bits"], m.predict(video, responses, samples=4)["loglik_bits"])
    with pytest.raises(vcortex.VcortexError) as e:
        m.predict(video, conditioned=True)
    assert "responses" in str(e.value)
    with pytest.raises(TypeError):
        m.predict(video, responses, conditioned="yes")
    with pytest.raises(vcortex.VcortexError) as e:
        m.predict(video, responses[:, :, :-1])
    assert "responses" in str(e.value)
    with pytest.raises(ValueError):
        m.predict(video, samples=0)
