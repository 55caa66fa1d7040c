"""Every golden PyTorch case of kernels-tests/data/golden (made by scripts/golden_torch.py and
its siblings), run through the public functions with PyTorch's keyword names, and through
run_op with the case file's own names, against the expected outputs."""

import glob
import os

import numpy as np
import pytest

import vcortex
from conftest import DATA, assert_tolerance, read_safetensors

# The op cases of kernels-tests/data: golden/ (scripts/golden_torch.py), gru/ (scripts/golden_gru.py)
# and zig/ (scripts/golden_zig.py).
CASES = sorted(c for d in ("golden", "gru", "zig") for c in glob.glob(os.path.join(DATA, d, "*.case.safetensors")))
# Ops whose golden is not an op case file: scores (kernels-tests/data/scores, test_scores_golden).
NO_CASE_FILE = {"scores"}
ELEMENTWISE = {"activation", "ddpm_step", "ddim_step", "affine_coupling", "rq_spline", "zig_loglik", "grid_sample"}


def _ints(s):
    v = tuple(int(p) for p in s.split(","))
    return v[0] if len(v) == 1 else v


def _bool(s):
    return {"true": True, "false": False}[s]


def _sched(m, ddim):
    kw = {}
    for k in ("num_train_timesteps", "num_inference_steps", "steps_offset"):
        if k in m:
            kw[k] = int(m[k])
    kw.setdefault("num_inference_steps", 1000)  # the case format's default
    for k in ("beta_start", "beta_end", "clip_sample_range", "dynamic_thresholding_ratio", "sample_max_value", "eta"):
        if k in m:
            kw[k] = float(m[k])
    for k in ("clip_sample", "thresholding", "set_alpha_to_one"):
        if k in m:
            kw[k] = _bool(m[k])
    for k in ("beta_schedule", "prediction_type", "variance_type", "timestep_spacing"):
        if k in m:
            kw[k] = m[k]
    return kw


def call(op, t, m):
    """The case as a call of the public function; returns the named outputs."""
    if op == "conv2d":
        kw = {k: _ints(m[k]) for k in ("stride", "padding", "dilation", "groups") if k in m}
        return {"output": vcortex.conv2d(t["input"], t["weight"], t.get("bias"), **kw)}
    if op == "linear":
        return {"output": vcortex.linear(t["input"], t["weight"], t.get("bias"))}
    if op == "activation":
        kind = m["kind"]
        if kind == "softplus":
            kw = {k: float(m[k]) for k in ("beta", "threshold") if k in m}
            return {"output": vcortex.softplus(t["input"], **kw)}
        return {"output": getattr(vcortex, kind)(t["input"])}
    if op == "batch_norm":
        kw = {"eps": float(m["eps"])} if "eps" in m else {}
        y = vcortex.batch_norm(t["input"], t["running_mean"], t["running_var"], t["weight"], t["bias"], **kw)
        return {"output": y}
    if op == "layer_norm":
        dims = int(m.get("dims", "1"))
        kw = {"eps": float(m["eps"])} if "eps" in m else {}
        shape = t["input"].shape[t["input"].ndim - dims :]
        return {"output": vcortex.layer_norm(t["input"], shape, t.get("weight"), t.get("bias"), **kw)}
    if op == "divisive_norm":
        kw = {k: _ints(m[k]) for k in ("sum_window", "sup_window") if k in m}
        kw.update({k: m[k] for k in ("field", "sup_divisor") if k in m})
        if "sigma" in m:
            kw["sigma"] = float(m["sigma"])
        y, v = vcortex.divisive_norm(t["input"], t.get("gamma"), t.get("beta"), return_centered=True, **kw)
        return {"output": y, "centered": v}
    if op == "neurn":
        kw = {"kernel": int(m["kernel"])} if "kernel" in m else {}
        if "max_scope" in m:
            kw["max_scope"] = m["max_scope"]
        if "eps" in m:
            kw["eps"] = float(m["eps"])
        return {"output": vcortex.neurn(t["input"], **kw)}
    if op in ("max_pool2d", "avg_pool2d"):
        kw = {k: _ints(m[k]) for k in ("stride", "padding", "dilation") if k in m}
        kw.update({k: _bool(m[k]) for k in ("ceil_mode", "count_include_pad") if k in m})
        if "divisor_override" in m:
            kw["divisor_override"] = int(m["divisor_override"])
        return {"output": getattr(vcortex, op)(t["input"], _ints(m["kernel"]), **kw)}
    if op == "grid_sample":
        return {"output": vcortex.grid_sample(t["input"], t["grid"], align_corners=_bool(m.get("align_corners", "false")))}
    if op == "gaussian_readout":
        y = vcortex.gaussian_readout(
            t["input"], t["mu"], t["features"], t.get("bias"), t.get("shift"), _bool(m.get("align_corners", "true"))
        )
        return {"output": y}
    if op == "poisson_nll":
        kw = {"eps": float(m["eps"])} if "eps" in m else {}
        return {"output": vcortex.poisson_nll(t["rate"], t["target"], reduction=m.get("reduction", "none"), **kw)}
    if op == "zig_loglik":
        return {"output": vcortex.zig_loglik(t["target"], t["q"], t["theta"], t["k"], t["loc"])}
    if op == "affine_coupling":
        y, ld = vcortex.affine_coupling(t["input"], t["shift"], t["scale_raw"], t["mask"], _bool(m.get("inverse", "false")))
        return {"output": y, "logdet": ld}
    if op == "rq_spline":
        kw = {k: float(m[k]) for k in ("tail_bound", "min_bin_width", "min_bin_height", "min_derivative") if k in m}
        y, lad = vcortex.rq_spline(
            t["input"], t["widths"], t["heights"], t["derivatives"], inverse=_bool(m.get("inverse", "false")), **kw
        )
        return {"output": y, "logabsdet": lad}
    if op == "ddpm_step":
        return vcortex.ddpm_step(t["model_output"], int(m["timestep"]), t["sample"], t.get("noise"), **_sched(m, False))
    if op == "ddim_step":
        kw = _sched(m, True)
        eta = kw.pop("eta", 0.0)
        return vcortex.ddim_step(t["model_output"], int(m["timestep"]), t["sample"], eta, t.get("noise"), **kw)
    if op == "conv3d":
        kw = {k: _ints(m[k]) for k in ("stride", "padding", "dilation") if k in m}
        if "groups" in m:
            kw["groups"] = int(m["groups"])
        return {"output": vcortex.conv3d(t["input"], t["weight"], t.get("bias"), **kw)}
    if op == "conv_gru":
        w = {k: v for k, v in t.items() if k != "input"}
        kw = {"groups": int(m["groups"])} if "groups" in m else {}
        if "pad_input" in m:
            kw["pad_input"] = _bool(m["pad_input"])
        return {"output": vcortex.conv_gru(t["input"], w, **kw)}
    if op == "gru":
        y, hn = vcortex.gru(
            t["input"], t["weight_ih_l0"], t["weight_hh_l0"], t.get("bias_ih_l0"), t.get("bias_hh_l0"), t.get("h0")
        )
        return {"output": y, "h_n": hn}
    if op == "zig_readout":
        kw = {k: t.get(k) for k in ("conv_bias", "bias", "shift")}
        y = vcortex.zig_readout(
            t["input"], t["mu"], t["conv_weight"], t["features"], int(m["frames"]),
            align_corners=_bool(m.get("align_corners", "true")), **kw,
        )
        return {"output": y}
    if op == "zig_map":
        return {"output": vcortex.zig_map(t["input"], m["map"])}
    if op == "zig_moments":
        return {"output": vcortex.zig_moments(t["q"], t["theta"], t["k"], t["loc"], m.get("moment", "mean"))}
    if op == "zig_latent_params":
        q, th = vcortex.zig_latent_params(t["logits"], t["z"], t["w_q"], t["w_theta"])
        return {"q": q, "theta": th}
    if op == "zig_latent_loglik":
        y = vcortex.zig_latent_loglik(t["target"], t["logits"], t["z"], t["w_q"], t["w_theta"], t["k"], t["loc"])
        return {"output": y}
    raise AssertionError(f"no public function for {op}")


def test_every_op_of_the_table_has_golden_cases():
    ops = {read_safetensors(c)[1]["op"] for c in CASES}
    assert len(CASES) >= 115
    assert ops | NO_CASE_FILE == set(vcortex._native.op_table())


def test_scores_golden():
    """vcortex.scores against the numpy port of sensorium's scores (kernels-tests/data/scores)."""
    t, _ = read_safetensors(os.path.join(DATA, "scores", "scores.safetensors"))
    got = vcortex.scores(t["responses"], t["predictions"], t["image_ids"])
    for name in ("correlation", "repeat_correlation", "fev", "feve"):
        np.testing.assert_allclose(got[name], t[name], rtol=1e-4, atol=1e-5, err_msg=name)
    only = vcortex.scores(t["responses"], t["predictions"])
    assert set(only) == {"correlation"}
    with pytest.raises(vcortex.VcortexError) as e:
        vcortex.scores(t["responses"], t["predictions"][:, :5])
    assert e.value.field == "predictions"


@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c).replace(".case.safetensors", "") for c in CASES])
def test_golden_case(case):
    tensors, meta = read_safetensors(case)
    op = meta.pop("op")
    want, _ = read_safetensors(case.replace(".case.safetensors", ".expected.safetensors"))
    elementwise = op in ELEMENTWISE or (op == "poisson_nll" and meta.get("reduction", "none") == "none")
    got = call(op, tensors, meta)
    assert set(got) == set(want), f"outputs {sorted(got)} vs {sorted(want)}"
    for name, w in want.items():
        assert got[name].dtype == np.float32 and got[name].flags["C_CONTIGUOUS"]
        assert_tolerance(got[name], w, elementwise, f"{op} {name}")
    raw = vcortex.run_op(op, tensors, meta)
    for name, w in want.items():
        assert_tolerance(raw[name], w, elementwise, f"run_op {op} {name}")


def test_special_values_match_pytorch():
    """NaN, ±Inf, signed zeros and f32 extremes through every activation, as PyTorch gives them
    (golden/special_values.safetensors)."""
    t, _ = read_safetensors(os.path.join(DATA, "golden", "special_values.safetensors"))
    x = t["x"]
    softplus = {"softplus_b2_t5": (2.0, 5.0), "softplus_b0.5_t1": (0.5, 1.0), "softplus_b-1_t5": (-1.0, 5.0)}
    for name, want in t.items():
        if not name.startswith("y."):
            continue
        kind = name[2:]
        if kind in softplus:
            beta, threshold = softplus[kind]
            got = vcortex.softplus(x, beta=beta, threshold=threshold)
        else:
            got = vcortex.activation(x, kind)
        assert np.array_equal(np.isnan(got), np.isnan(want)), kind
        inf = np.isinf(want)
        assert np.array_equal(got[inf], want[inf]), kind
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-5, err_msg=kind)
