"""The models of the CLI from Python: the committed golden models (Sensorium, Cotrain, cGNF), the
example flow and Platypose, loading from paths, dicts of arrays and state-dict-like objects."""

import json
import os

import numpy as np
import pytest

import vcortex
from conftest import DATA, EXAMPLES, data, read_safetensors

SENS = data("sensorium")


def _json(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def sensorium():
    return vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), os.path.join(SENS, "config.json"))


def test_sensorium_golden(sensorium):
    x, _ = read_safetensors(os.path.join(SENS, "images.safetensors"))
    want, _ = read_safetensors(os.path.join(SENS, "expected.safetensors"))
    assert sensorium.data_keys == ["sessA", "sessB"]
    got = sensorium.predict(x["images"], pupil_center=x["eye"])
    assert sorted(got) == ["sessA", "sessB"]
    for k in got:
        assert got[k].dtype == np.float32 and got[k].shape == want[k].shape
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6)
    # One key, and batches of 2 (the last one short): the same responses.
    one = sensorium.predict(x["images"], data_key="sessB", pupil_center=x["eye"], batch=2)
    assert list(one) == ["sessB"]
    np.testing.assert_allclose(one["sessB"], want["sessB"], rtol=1e-4, atol=1e-6)


def test_sensorium_from_a_state_dict_and_a_config_dict(sensorium):
    w, _ = read_safetensors(os.path.join(SENS, "weights.safetensors"))
    cfg = _json(os.path.join(SENS, "config.json"))
    x, _ = read_safetensors(os.path.join(SENS, "images.safetensors"))
    want, _ = read_safetensors(os.path.join(SENS, "expected.safetensors"))

    class FakeTensor:  # anything with .numpy(), as a torch tensor has
        def __init__(self, a):
            self.a = a

        def numpy(self):
            return self.a.astype(np.float64)

    sd = {k: FakeTensor(v) for k, v in w.items()}
    for m in (vcortex.from_state_dict(sd, cfg), vcortex.Sensorium.load(w, json.dumps(cfg)), vcortex.load(w, cfg)):
        assert isinstance(m, vcortex.Sensorium)
        got = m.predict(x["images"], pupil_center=x["eye"])
        np.testing.assert_allclose(got["sessA"], want["sessA"], rtol=1e-4, atol=1e-6)
    # "kind": "sensorium" is accepted, another kind refused by name.
    m = vcortex.from_state_dict(w, dict(cfg, kind="sensorium"))
    assert isinstance(m, vcortex.Sensorium)
    with pytest.raises(vcortex.VcortexError, match="kind"):
        vcortex.Sensorium.load(w, dict(cfg, kind="cotrain"))


def test_cotrain_golden():
    d = data("cotrain")
    m = vcortex.load(os.path.join(d, "weights.safetensors"), os.path.join(d, "config.json"))
    assert isinstance(m, vcortex.Cotrain) and m.data_keys == ["sessA", "sessB"]
    x, _ = read_safetensors(os.path.join(d, "images.safetensors"))
    want, _ = read_safetensors(os.path.join(d, "expected.safetensors"))
    got = m.predict(x["images"], batch=2)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)


def test_flow_log_prob_and_sample():
    d = os.path.join(EXAMPLES, "flow")
    f = vcortex.Flow.load(os.path.join(d, "weights.safetensors"), os.path.join(d, "config.json"))
    x, _ = read_safetensors(os.path.join(d, "input.safetensors"))
    x = next(iter(x.values()))
    out = f.log_prob(x)
    assert out["log_prob"].shape == (x.shape[0],) and out["z"].shape == x.shape
    assert np.all(np.isfinite(out["log_prob"]))
    s = f.sample(64, temperature=0.8, seed=3)
    assert s.shape == (64, x.shape[1]) and np.all(np.isfinite(s))
    np.testing.assert_array_equal(s, f.sample(64, temperature=0.8, seed=3))  # seeded
    assert not np.array_equal(s, f.sample(64, temperature=0.8, seed=4))
    # The flow is invertible: the density of a sample at temperature 1 matches its draw.
    lp = f.log_prob(f.sample(8, seed=1))["log_prob"]
    assert np.all(np.isfinite(lp))
    same = vcortex.load(read_safetensors(os.path.join(d, "weights.safetensors"))[0], _json(os.path.join(d, "config.json")))
    assert isinstance(same, vcortex.Flow)
    np.testing.assert_allclose(same.log_prob(x)["log_prob"], out["log_prob"], rtol=1e-6)


@pytest.mark.parametrize("suffix", ["", "_root"])
def test_cgnf_golden(suffix):
    d = data("cgnf")
    m = vcortex.Cgnf.load(os.path.join(d, f"weights{suffix}.safetensors"), os.path.join(d, f"config{suffix}.json"))
    io, _ = read_safetensors(os.path.join(d, f"io{suffix}.safetensors"))
    root = io.get("root")
    observed = io["observed"] > 0.5  # booleans are accepted
    got = m.log_prob(io["poses"], io["keypoints"], observed, root)
    np.testing.assert_allclose(got["log_prob"], io["logp"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["z"], io["z"], rtol=1e-4, atol=1e-4)
    prior = m.log_prob(io["poses"], root=root)
    np.testing.assert_allclose(prior["log_prob"], io["logp_prior"], rtol=1e-4, atol=1e-4)
    mode = m.mode(io["keypoints"], observed, root)
    np.testing.assert_allclose(mode, io["mode"], rtol=1e-4, atol=1e-4)
    s = m.sample(5, io["keypoints"], observed, root, temperature=0.5, seed=7)
    b, j = io["poses"].shape[:2]
    assert s["samples"].shape == (b, 5, j, 3) and s["log_prob"].shape == (b, 5, j)
    # Each sample's log p is the density the model gives it.
    again = m.log_prob(s["samples"][:, 0], io["keypoints"], observed, root)["log_prob"]
    np.testing.assert_allclose(s["log_prob"][:, 0], again, rtol=1e-3, atol=1e-3)


def test_platypose_sample():
    cfg = _json(os.path.join(EXAMPLES, "platypose", "config.json"))
    w = data("mdm", "weights.safetensors")
    m = vcortex.Platypose.load(w, cfg)
    obs, _ = read_safetensors(data("platypose", "cameras.safetensors"))
    out = m.sample(samples=3, observations=obs, seed=1)
    frames = obs["x2d"].shape[1]
    assert out["samples"].shape == (3, frames, 51) and out["energy"].shape == (3,)
    assert np.all(np.isfinite(out["samples"])) and np.all(out["energy"] >= 0)
    again = m.sample(samples=3, observations=obs, seed=1)
    np.testing.assert_array_equal(out["samples"], again["samples"])
    unguided = m.sample(samples=2, frames=8)
    assert list(unguided) == ["samples"] and unguided["samples"].shape == (2, 8, 51)
    with pytest.raises(vcortex.VcortexError, match="frames"):
        m.sample(samples=2)
    assert isinstance(vcortex.load(w, cfg), vcortex.Platypose)


def test_models_keep_their_context():
    ctx = vcortex.Context()
    m = vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), os.path.join(SENS, "config.json"), context=ctx)
    assert m.context is ctx
    x = np.random.default_rng(0).random((2, 1, 36, 64), dtype=np.float32)
    assert m.predict(x, data_key="sessA")["sessA"].shape == (2, 23)
