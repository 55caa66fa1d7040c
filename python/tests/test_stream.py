"""The streams from Python: a video stream fed one frame at a time and in chunks equals
``Video.predict`` on the clip (and the PyTorch golden, kernels-tests/data/video); a latent stream's
pushes and finish equal ``Latent.predict`` in both modes; refusals name the argument and leave the
stream unchanged."""

import json
import os
import threading

import numpy as np
import pytest

import vcortex
from conftest import DATA, read_safetensors
from test_errors import refused
from test_video import _latent_config


def _golden(name):
    d = os.path.join(DATA, "video", name)
    m = vcortex.Video.load(os.path.join(d, "weights.safetensors"), os.path.join(d, "config.json"))
    inputs, _ = read_safetensors(os.path.join(d, "inputs.safetensors"))
    want, _ = read_safetensors(os.path.join(d, "expected.safetensors"))
    return m, inputs["video"], inputs["pupil_center"], want


def _chunks(sizes, t):
    t0 = 0
    for k in sizes:
        k = min(k, t - t0)
        if k > 0:
            yield t0, t0 + k
        t0 += k


@pytest.mark.parametrize("name", ["factorised", "gru2d"])
def test_video_stream_equals_predict(name):
    m, video, pupil, want = _golden(name)
    b, _, t, h, w = video.shape
    clip = m.predict(video, pupil_center=pupil)
    for key in m.data_keys:
        for sizes in [[1] * t, [1, 3, 2, t]]:
            s = m.stream(key, b, h, w)
            assert s.data_key == key and s.frames_seen == 0
            got = []
            for lo, hi in _chunks(sizes, t):
                # pupil_center is ignored by a readout without a shifter, as in predict.
                y = s.push(video[:, :, lo:hi], pupil[:, :, lo:hi])
                assert y.dtype == np.float32 and y.shape[:2] == (b, want[key].shape[1])
                got.append(y)
            assert s.frames_seen == t
            got = np.concatenate(got, axis=2)
            np.testing.assert_allclose(got, clip[key], rtol=1e-4, atol=1e-5, err_msg=f"{name} {key} {sizes}")
            np.testing.assert_allclose(got, want[key], rtol=1e-4, atol=1e-5, err_msg=f"{name} {key} golden")


def test_video_stream_fills_the_receptive_field_then_reset():
    m, video, pupil, _ = _golden("factorised")
    b, _, t, h, w = video.shape
    s = m.stream("m1", b, h, w)
    tout = m.predict(video, "m1", pupil)["m1"].shape[2]
    r = t - tout + 1  # the receptive field in frames
    shapes = [s.push(video[:, :, f : f + 1], pupil[:, :, f : f + 1]).shape[2] for f in range(t)]
    assert shapes == [0] * (r - 1) + [1] * (t - r + 1)
    # After a reset the stream starts a new clip: the first R frames give one frame's rates.
    s.reset()
    first = s.push(video[:, :, :r], pupil[:, :, :r])
    assert first.shape[2] == 1
    s.reset()
    assert s.frames_seen == 0
    np.testing.assert_array_equal(s.push(video[:, :, :r], pupil[:, :, :r]), first)


def test_video_stream_refusals_leave_it_unchanged():
    m, video, pupil, _ = _golden("factorised")
    b, c, t, h, w = video.shape
    s = m.stream("m1", b, h, w)
    s.push(video[:, :, :2], pupil[:, :, :2])
    refused(lambda: s.push(video[:, :, 2:3, :, :-1], pupil[:, :, 2:3]), "Shape", "frames")
    refused(lambda: s.push(video[:1, :, 2:3], pupil[:1, :, 2:3]), "Shape", "frames")
    refused(lambda: s.push(video[:, :2, 2:3], pupil[:, :, 2:3]), "Shape", "frames")
    refused(lambda: s.push(video[:, :, 2:3]), "Param", "pupil_center")
    refused(lambda: s.push(video[:, :, 2:5], np.ascontiguousarray(pupil[:, :, 2:5].transpose(0, 2, 1))), "Shape", "pupil_center")
    with pytest.raises(TypeError, match="frames"):
        s.push(np.zeros((b, c, 1, h, w), np.int32), pupil[:, :, 2:3])
    assert s.frames_seen == 2
    rest = s.push(video[:, :, 2:], pupil[:, :, 2:])
    np.testing.assert_allclose(rest, m.predict(video, "m1", pupil)["m1"], rtol=1e-4, atol=1e-5)
    # Refused when made: an unknown key, a frame too small for the core, batch 0.
    refused(lambda: m.stream("nope", b, h, w), "Param", "data_key")
    refused(lambda: m.stream("m1", b, 4, w), "Shape", "video")
    with pytest.raises(ValueError, match="batch"):
        m.stream("m1", 0, h, w)


def test_video_stream_holds_its_model_and_threads_share_it():
    m, video, pupil, _ = _golden("factorised")
    b, _, t, h, w = video.shape
    want = m.predict(video, "m1", pupil)["m1"]
    s = m.stream("m1", b, h, w)
    del m  # the stream keeps the model
    out = {}

    def run():
        out["y"] = s.push(video, pupil)

    th = threading.Thread(target=run)
    th.start()
    th.join()
    np.testing.assert_allclose(out["y"], want, rtol=1e-4, atol=1e-5)


def _latent(seed=21):
    ctx = vcortex.default_context()
    return vcortex.Latent(vcortex.Latent._native_cls._random(ctx._c, json.dumps(_latent_config()), seed), ctx)


def _latent_inputs(b=2, t=11, n=5):
    rng = np.random.default_rng(8)
    video = rng.uniform(-1, 1, (b, 1, t, 6, 7)).astype(np.float32)
    responses = np.maximum(rng.uniform(-0.5, 2, (b, n, t)), 0).astype(np.float32)
    return video, responses


def _run_latent(s, video, responses, sizes):
    outs = []
    for lo, hi in _chunks(sizes, video.shape[2]):
        outs.append(s.push(video[:, :, lo:hi], None if responses is None else responses[:, :, lo:hi]))
        assert s.frames_seen == hi
    outs.append(s.finish())
    assert s.frames_seen == 0 and s.frames_emitted == 0
    return {k: np.concatenate([o[k] for o in outs], axis=2) for k in outs[0]}


@pytest.mark.parametrize("sizes", [[1] * 11, [3, 5, 3], [11]], ids=["frames", "chunks", "clip"])
def test_latent_stream_equals_predict(sizes):
    m = _latent()
    video, responses = _latent_inputs()
    b, _, t, h, w = video.shape
    prior = m.predict(video, samples=4, seed=9)
    got = _run_latent(m.stream(b, h, w, samples=4, seed=9), video, None, sizes)
    assert set(got) == {"mean"} and got["mean"].shape == prior["mean"].shape
    np.testing.assert_allclose(got["mean"], prior["mean"], rtol=1e-4, atol=1e-5)
    # The config's samples and seed by default, as predict.
    got = _run_latent(m.stream(b, h, w), video, None, sizes)
    np.testing.assert_allclose(got["mean"], m.predict(video)["mean"], rtol=1e-4, atol=1e-5)
    cond = m.predict(video, responses)
    got = _run_latent(m.stream(b, h, w, conditioned=True), video, responses, sizes)
    assert set(got) == {"mean", "loglik_bits"}
    for k in got:
        np.testing.assert_allclose(got[k], cond[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_latent_stream_emits_late_and_counts():
    m = _latent()
    video, _ = _latent_inputs()
    b, _, t, h, w = video.shape
    s = m.stream(b, h, w, samples=3, seed=1)
    r, half = 4, 2  # the core's receptive field in frames, the readout's kt/2
    for f in range(t):
        y = s.push(video[:, :, f : f + 1])
        done = max(0, f + 2 - (r + half))
        assert s.frames_emitted == done and y["mean"].shape == (b, 5, 1 if done else 0)
    assert s.finish()["mean"].shape == (b, 5, half)
    # The prior mode takes responses with every push or with none.
    s.push(video[:, :, :1])
    refused(lambda: s.push(video[:, :, 1:2], np.ones((b, 5, 1), np.float32)), "Param", "responses")
    s.reset()
    assert (s.frames_seen, s.frames_emitted) == (0, 0)
    y = s.push(video[:, :, :t], np.ones((b, 5, t), np.float32))
    assert set(y) == {"mean", "loglik_bits"}


def test_latent_stream_refusals_leave_it_unchanged():
    m = _latent()
    video, responses = _latent_inputs()
    b, _, t, h, w = video.shape
    s = m.stream(b, h, w, conditioned=True)
    first = s.push(video[:, :, :3], responses[:, :, :3])
    refused(lambda: s.push(video[:, :, 3:4, :, :-1], responses[:, :, 3:4]), "Shape", "frames")
    refused(lambda: s.push(video[:1, :, 3:4], responses[:1, :, 3:4]), "Shape", "frames")
    refused(lambda: s.push(video[:, :, 3:4]), "Param", "responses")
    refused(lambda: s.push(video[:, :, 3:4], responses[:, :, 3:5]), "Shape", "responses")
    swapped = np.ascontiguousarray(responses[:, :, 3:5].transpose(0, 2, 1))
    refused(lambda: s.push(video[:, :, 3:5], swapped), "Shape", "responses")
    assert s.frames_seen == 3
    outs = [first, s.push(video[:, :, 3:], responses[:, :, 3:]), s.finish()]
    got = {k: np.concatenate([o[k] for o in outs], axis=2) for k in first}
    cond = m.predict(video, responses)
    for k in got:
        np.testing.assert_allclose(got[k], cond[k], rtol=1e-4, atol=1e-5, err_msg=k)
    # Refused when made.
    refused(lambda: m.stream(b, 2, w), "Shape", "frames")
    with pytest.raises(ValueError, match="samples"):
        m.stream(b, h, w, samples=0)
    with pytest.raises(TypeError, match="conditioned"):
        m.stream(b, h, w, conditioned=1)
