"""Shared helpers of the Python tests: the repository's data folders and a small safetensors
reader (numpy only, so that the tests need nothing beyond numpy and pytest)."""

import json
import os
import struct

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "kernels-tests", "data")
EXAMPLES = os.path.join(ROOT, "examples", "data")

_DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "U8": np.uint8, "BOOL": np.bool_}


def read_safetensors(path):
    """(tensors as float32 arrays, metadata) of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    body = raw[8 + n :]
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        if t["dtype"] == "BF16":
            u = np.frombuffer(body[a:b], np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(body[a:b], _DTYPES[t["dtype"]])
        out[name] = arr.reshape(t["shape"]).astype(np.float32)
    return out, meta


def data(*parts):
    return os.path.join(DATA, *parts)


@pytest.fixture(scope="session")
def ctx():
    import vcortex

    return vcortex.default_context()


def assert_tolerance(got, want, elementwise, what=""):
    """The tolerance of docs/eval-format.md: elementwise 1e-4 + 1e-4·|ref| per element,
    reductions and convolutions 1e-3·max|ref| + 1e-4; NaN and infinities must match."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    special = ~np.isfinite(want)
    assert np.array_equal(np.isnan(got[special]), np.isnan(want[special])), f"{what}: NaN positions"
    fin = ~special
    assert np.all(np.isfinite(got[fin])), f"{what}: non-finite where the reference is finite"
    if elementwise:
        tol = 1e-4 + 1e-4 * np.abs(want[fin])
    else:
        tol = 1e-3 * (np.abs(want[fin]).max() if fin.any() else 0.0) + 1e-4
    err = np.abs(got[fin] - want[fin])
    assert np.all(err <= tol), f"{what}: max error {err.max() if err.size else 0}"
