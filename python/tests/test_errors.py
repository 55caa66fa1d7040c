"""Bad input from Python: refused with a TypeError, a ValueError or the engine's VcortexError
(carrying the engine's message, variant and named field), never a crash."""

import os

import numpy as np
import pytest

import vcortex
from conftest import data, read_safetensors

SENS = data("sensorium")
RNG = np.random.default_rng(1)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def refused(fn, kind, field=None):
    with pytest.raises(vcortex.VcortexError) as e:
        fn()
    assert e.value.kind == kind, (e.value.kind, str(e.value))
    if field is not None:
        assert e.value.field == field, (e.value.field, str(e.value))
    assert isinstance(e.value, ValueError)
    return str(e.value)


@pytest.mark.parametrize(
    "bad",
    [np.arange(12).reshape(3, 4), np.ones((3, 4), bool), np.ones((3, 4), np.complex64), np.array([["a"]]),
     np.array([object()]), "not an array", None, {"a": 1}],
    ids=["int", "bool", "complex", "str-array", "object", "str", "None", "dict"],
)
def test_wrong_dtype_is_a_type_error(bad):
    with pytest.raises(TypeError, match="input|weight"):
        vcortex.linear(bad, rand(2, 4))


def test_float16_float64_lists_and_views_are_converted():
    x, w = rand(3, 8), rand(5, 8)
    want = vcortex.linear(x, w)
    np.testing.assert_allclose(vcortex.linear(x.astype(np.float64), w.astype(np.float16).astype(np.float32)), x @ w.astype(np.float16).astype(np.float32).T, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(vcortex.linear(x.tolist(), w), want, rtol=1e-6)
    # Non-contiguous views (a transpose, a strided slice, Fortran order) give the contiguous answer.
    big = rand(6, 16)
    np.testing.assert_allclose(vcortex.linear(big[::2, ::2], w), vcortex.linear(np.ascontiguousarray(big[::2, ::2]), w))
    np.testing.assert_allclose(vcortex.linear(x, np.asfortranarray(w)), want, rtol=1e-6)
    np.testing.assert_allclose(vcortex.linear(x, w.T.copy().T), want, rtol=1e-6)
    imgs = np.ascontiguousarray(rand(2, 6, 20, 3).transpose(0, 3, 1, 2))  # NHWC → NCHW view
    view = rand(2, 6, 20, 3).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(vcortex.relu(view), np.maximum(view, 0))
    assert vcortex.relu(imgs).flags["C_CONTIGUOUS"]


def test_wrong_rank_and_shape_name_the_tensor():
    refused(lambda: vcortex.conv2d(rand(3, 8, 8), rand(4, 3, 3, 3)), "Shape", "input")
    refused(lambda: vcortex.conv2d(rand(1, 3, 8, 8), rand(4, 2, 3, 3)), "Shape", "weight")
    refused(lambda: vcortex.conv2d(rand(1, 3, 8, 8), rand(4, 3, 3, 3), rand(5)), "Shape", "bias")
    refused(lambda: vcortex.linear(rand(3, 8), rand(5, 7)), "Shape", "weight")
    refused(lambda: vcortex.grid_sample(rand(1, 2, 4, 4), rand(1, 3, 3, 3)), "Shape", "grid")
    refused(lambda: vcortex.poisson_nll(rand(3, 4), rand(4, 3)), "Shape", "target")
    with pytest.raises(ValueError, match="normalized_shape"):
        vcortex.layer_norm(rand(2, 5), (4,))
    msg = refused(lambda: vcortex.run_op("conv2d", {"input": rand(1, 1, 3, 3)}), "Case")
    assert "weight" in msg
    refused(lambda: vcortex.run_op("nope", {}), "UnknownOp", "nope")


def test_bad_parameters():
    refused(lambda: vcortex.conv2d(rand(1, 4, 8, 8), rand(4, 2, 3, 3), groups=3), "Param", "groups")
    refused(lambda: vcortex.softplus(rand(4), beta=0.0), "Param", "beta")
    refused(lambda: vcortex.ddpm_step(rand(2, 3), 5, rand(2, 3), num_inference_steps=10), "Param", "timestep")
    refused(lambda: vcortex.rq_spline(rand(2, 3), rand(2, 3, 4), rand(2, 3, 4), rand(2, 3, 3), min_bin_width=0.5), "Param")
    with pytest.raises(ValueError, match="not finite"):
        vcortex.softplus(rand(4), beta=float("nan"))
    with pytest.raises(ValueError, match="groups"):
        vcortex.conv2d(rand(1, 4, 8, 8), rand(4, 4, 3, 3), groups=0)
    with pytest.raises(TypeError, match="stride"):
        vcortex.conv2d(rand(1, 4, 8, 8), rand(4, 4, 3, 3), stride=1.5)
    with pytest.raises(ValueError, match="reduction"):
        vcortex.poisson_nll(rand(4), rand(4), reduction="avg")
    with pytest.raises(ValueError, match="log_input"):
        vcortex.poisson_nll(rand(4), rand(4), log_input=True)
    with pytest.raises(ValueError, match="training"):
        vcortex.batch_norm(rand(2, 3), rand(3), rand(3), training=True)
    with pytest.raises(ValueError, match="mode"):
        vcortex.grid_sample(rand(1, 1, 4, 4), rand(1, 2, 2, 2), mode="nearest")


def test_nan_where_refused():
    q = np.full((2, 3), 0.5, np.float32)
    pos = np.ones((2, 3), np.float32)
    bad_q = q.copy()
    bad_q[1, 2] = np.nan
    msg = refused(lambda: vcortex.zig_loglik(pos, bad_q, pos, pos, pos), "Param", "q")
    assert "element 5" in msg
    # NaN in the weights of a model is refused by key.
    w, _ = read_safetensors(os.path.join(SENS, "weights.safetensors"))
    key = sorted(w)[0]
    w[key] = w[key].copy()
    w[key].flat[0] = np.nan
    msg = refused(lambda: vcortex.Sensorium.load(w, os.path.join(SENS, "config.json")), "Weights")
    assert key in msg and "non-finite" in msg
    # NaN in an input is not refused: it propagates, as in PyTorch.
    x = rand(2, 3)
    x[0, 1] = np.nan
    y = vcortex.relu(x)
    assert np.isnan(y[0, 1]) and np.isfinite(np.delete(y.ravel(), 1)).all()


def test_missing_and_unexpected_keys_are_named():
    w, _ = read_safetensors(os.path.join(SENS, "weights.safetensors"))
    cfg = os.path.join(SENS, "config.json")
    key = next(k for k in w if k.endswith("_mu"))
    msg = refused(lambda: vcortex.Sensorium.load({k: v for k, v in w.items() if k != key}, cfg), "Weights")
    assert "missing key" in msg and key in msg
    msg = refused(lambda: vcortex.Sensorium.load(dict(w, extra=np.zeros(3, np.float32)), cfg), "Weights")
    assert "extra" in msg
    msg = refused(lambda: vcortex.Sensorium.load(dict(w, **{key: np.zeros((1, 2), np.float32)}), cfg), "Weights")
    assert key in msg and "shape" in msg
    # From files, the error names the file.
    with pytest.raises(vcortex.VcortexError, match="weights.safetensors.*missing key"):
        vcortex.Sensorium.load(data("cotrain", "weights.safetensors"), os.path.join(SENS, "config.json"))
    with pytest.raises(vcortex.VcortexError, match="config.json.*kind"):
        vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), data("cotrain", "config.json"))


def test_bad_files_and_configs():
    with pytest.raises(FileNotFoundError):
        vcortex.Sensorium.load("/nonexistent/weights.safetensors", os.path.join(SENS, "config.json"))
    with pytest.raises(FileNotFoundError):
        vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), "/nonexistent/config.json")
    with pytest.raises(vcortex.VcortexError, match="images.safetensors.*missing key"):
        vcortex.Sensorium.load(os.path.join(SENS, "images.safetensors"), os.path.join(SENS, "config.json"))
    refused(lambda: vcortex.Sensorium.load({}, {"core": {}, "readouts": {}}), "Config")
    with pytest.raises(vcortex.VcortexError, match="not JSON"):
        vcortex.Sensorium.load({}, "{not json")
    with pytest.raises(TypeError, match="weights"):
        vcortex.Sensorium.load(42, {})
    with pytest.raises(ValueError, match="kind"):
        vcortex.load({}, {"kind": "resnet"})


def test_predict_inputs():
    m = vcortex.Sensorium.load(os.path.join(SENS, "weights.safetensors"), os.path.join(SENS, "config.json"))
    x = rand(2, 1, 36, 64)
    refused(lambda: m.predict(x), "Param", "pupil_center")  # sessB has a shifter
    refused(lambda: m.predict(x[0], data_key="sessA"), "Shape", "images")
    refused(lambda: m.predict(x, pupil_center=rand(3, 2)), "Shape", "pupil_center")
    refused(lambda: m.predict(rand(2, 3, 36, 64), data_key="sessA"), "Shape")
    msg = str(pytest.raises(vcortex.VcortexError, m.predict, x, data_key="nope").value)
    assert "nope" in msg
    with pytest.raises(ValueError, match="batch"):
        m.predict(x, data_key="sessA", batch=0)
    with pytest.raises(TypeError, match="data_key"):
        m.predict(x, data_key=3)
    with pytest.raises(TypeError, match="images"):
        m.predict(x.astype(np.int32), data_key="sessA")


def test_a_panic_never_reaches_python():
    with pytest.raises(vcortex.InternalError, match="deliberate panic"):
        vcortex._native._panic_for_test()
    # The module still works after it.
    assert vcortex.relu(np.array([-1.0, 2.0], np.float32)).tolist() == [0.0, 2.0]


def test_context_errors():
    with pytest.raises(vcortex.DeviceError) as e:
        vcortex.Context(adapter="no such adapter, surely")
    assert e.value.kind == "AdapterNotFound"
    with pytest.raises(TypeError):
        vcortex.Context(adapter=3)
    with pytest.raises(TypeError, match="context"):
        vcortex.relu(rand(3), context="gpu")
