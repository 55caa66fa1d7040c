"""The context, and memory: a long loop of predicts does not grow the process."""

import os

import numpy as np

import vcortex
from conftest import data

SENS = data("sensorium")


def test_context_info():
    ctx = vcortex.Context()
    info = ctx.info()
    for k in ("name", "backend", "device_type", "driver", "features", "limits", "pool", "shader_checks"):
        assert k in info
    assert set(info["features"]) == {"timestamps", "shader_f16", "subgroups"}
    assert info["limits"]["max_buffer_size"] > 0 and info["pool"]["budget_bytes"] > 0
    assert "Context(" in repr(ctx)
    seen = vcortex.adapters()
    assert seen and all({"name", "backend"} <= set(a) for a in seen)
    # By name or by backend, as VCORTEX_ADAPTER.
    named = vcortex.Context(adapter=info["backend"])
    assert named.info()["backend"] == info["backend"]
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    np.testing.assert_array_equal(vcortex.relu(x, context=named), np.maximum(x, 0))
    ctx.trim()
    assert vcortex.default_context() is vcortex.default_context()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_thousand_predicts_do_not_grow_the_process():
    m = vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), os.path.join(SENS, "config.json"))
    x = np.random.default_rng(0).random((1, 1, 24, 32), dtype=np.float32)
    eye = np.zeros((1, 2), np.float32)
    for _ in range(50):  # warm up: pipelines, pooled buffers, bind groups
        m.predict(x, pupil_center=eye)
    before = _rss_bytes()
    first = m.predict(x, pupil_center=eye)
    for _ in range(1000):
        out = m.predict(x, pupil_center=eye)
    grown = _rss_bytes() - before
    assert grown < 16 << 20, f"the process grew by {grown / 2**20:.1f} MiB over 1000 predicts"
    for k in first:
        np.testing.assert_array_equal(out[k], first[k])
