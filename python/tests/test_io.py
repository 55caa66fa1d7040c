"""vcortex.read_safetensors / write_safetensors: the engine's own reader and writer."""

import os

import numpy as np
import pytest

import vcortex
from conftest import DATA, read_safetensors


def test_round_trip_with_metadata(tmp_path):
    rng = np.random.default_rng(1)
    t = {"a": rng.standard_normal((2, 3, 4)).astype(np.float32), "b": np.arange(5, dtype=np.float64)}
    p = tmp_path / "t.safetensors"
    vcortex.write_safetensors(p, t, {"who": "test"})
    got, meta = vcortex.read_safetensors(p, metadata=True)
    assert set(got) == {"a", "b"} and meta["who"] == "test"
    np.testing.assert_array_equal(got["a"], t["a"])
    assert got["b"].dtype == np.float32
    np.testing.assert_array_equal(got["b"], t["b"].astype(np.float32))
    # The file is a plain safetensors file: the tests' independent reader agrees.
    other, _ = read_safetensors(str(p))
    np.testing.assert_array_equal(other["a"], t["a"])


def test_reads_the_goldens_as_the_test_reader_does():
    path = os.path.join(DATA, "video", "factorised", "inputs.safetensors")
    got = vcortex.read_safetensors(path)
    want, _ = read_safetensors(path)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    # A state dict's int64 buffers need weights=True.
    w = os.path.join(DATA, "video", "factorised", "weights.safetensors")
    with pytest.raises(vcortex.VcortexError) as e:
        vcortex.read_safetensors(w)
    assert "num_batches_tracked" in str(e.value)
    sd = vcortex.read_safetensors(w, weights=True)
    assert sd["core.features.layer0.norm.num_batches_tracked"].dtype == np.float32


def test_refusals(tmp_path):
    with pytest.raises(vcortex.VcortexError) as e:
        vcortex.read_safetensors(tmp_path / "missing.safetensors")
    assert "missing.safetensors" in str(e.value)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{not")
    with pytest.raises(vcortex.VcortexError):
        vcortex.read_safetensors(bad)
    with pytest.raises(TypeError):
        vcortex.write_safetensors(tmp_path / "x.safetensors", [1, 2])
    with pytest.raises(TypeError):
        vcortex.write_safetensors(tmp_path / "x.safetensors", {"a": np.zeros(2)}, {"k": 1})
