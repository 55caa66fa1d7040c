#!/usr/bin/env python3
"""Golden test data for the ZIG ops of the video-latent model: the ZIG readout,
the parameter maps, the ZIG mean and variance, the latent logit shifts and the
video-latent log-likelihood, from a plain-PyTorch port (float64) of the
upstream code.

Upstream followed (FinnSchmidt01/neuralpredictors, branch latent_space_model,
commit f1549ed8b657295004b6d7c0a32266716f5e3b8f):
- neuralpredictors/layers/readouts/gaussian.py, FullGaussian2d.forward with
  zig=True in eval mode (sample=False): grid = clamp(mu), + shift, grid_sample,
  the reshape to [B*N, 1, T, C], nn.Conv2d(1, out_channels=2, kernel_size,
  padding=(k0 // 2, k1 // 2)) with its default bias, the reshape back, and
  `feat = features.view(2, C, N)` then `feat.reshape(1, C, N, 2)` on the
  stored features [1, C, 2, N]; + bias [N] when given. The lines are copied
  as they are (same reshapes and permutes), so the output is that of the
  upstream module with these parameters; the engine's `output` is the stacked
  [2, B*T, N] (row 0 the q logits, row 1 the theta logits, the order
  ZIGEncoder.forward_base reads them in).
- neuralpredictors/layers/encoders/zero_inflation_encoders.py: q_nl
  (sigmoid * 0.99999 + 1e-6), theta_nl / k_nl (ELU + 1 + 1e-6), loc_nl (exp),
  and the latent shifts `torch.einsum("bhi,hj->bji", samples, latent_feature)`
  with samples [B*T, L, S] (the engine stores z as [S, B*T, L]).
- neuralpredictors/layers/encoders/mean_variance_functions.py:
  fitted_zig_mean, fitted_zig_variance.
- neuralpredictors/measures/zero_inflated_losses.py: ZIGLoss.get_slab_logl,
  with the masks of FinnSchmidt01/latent_space_model eval.py (commit 8f1ac15):
  nonzero_mask = target >= loc, zero_mask = target <= loc, as integers; then
  `torch.logsumexp(zig_loss, -1) - log(n_samples)` over the samples, divided
  by log 2 (bits), per (b, t, n) (eval.py averages that afterwards).

Writes eval cases (docs/eval-format.md) into kernels-tests/data/zig/: for each
case NAME, NAME.case.safetensors (F32 inputs, metadata "op" and parameters)
and NAME.expected.safetensors (F32 outputs). Inputs are drawn as float32, the
outputs computed from them in float64 and rounded at the end; each case draws
from its own seed (deterministic; rerunning gives byte-identical files).

Rerun from the repository root: python3 scripts/golden_zig.py
(needs torch and safetensors; neither is needed to build or test the crate).
"""

import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_common  # noqa: E402
from golden_common import (  # noqa: E402
    as_f32, check_all, deterministic_torch, describe, expected_meta, f64, seeder, summary, uniform, write_all,
)

SCRIPT = "scripts/golden_zig.py"
golden_common.OUT_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels-tests", "data", "zig")
seed = seeder(1515)
CASES = []


def case(name, op, params, inputs, outputs):
    CASES.append((name, op, params, inputs, outputs))


# --------------------------------------------------------------------------- the upstream port

def zig_readout_upstream(x, mu, conv_weight, conv_bias, features, bias, shift, batch_size, time_points, align):
    """FullGaussian2d.forward (zig=True, eval mode), float64. features is the
    stored [1, C, 2, N] Parameter; conv_weight [2, 1, kt, kc]."""
    bs, c, h, w = x.size()
    outdims = mu.shape[0]
    out_channels = 2
    feat = features.view(out_channels, c, outdims)
    grid = mu.view(1, outdims, 1, 2).clamp(-1, 1).expand(bs, outdims, 1, 2)  # sample_grid(sample=False)
    if shift is not None:
        grid = grid + shift[:, None, None, :]
    y = F.grid_sample(x, grid, align_corners=align)
    conv = nn.Conv2d(1, out_channels, kernel_size=tuple(conv_weight.shape[2:]),
                     padding=(conv_weight.shape[2] // 2, conv_weight.shape[3] // 2)).double()
    with torch.no_grad():
        conv.weight.copy_(conv_weight)
        conv.bias.copy_(conv_bias if conv_bias is not None else torch.zeros(2, dtype=torch.float64))
        batch_time, depth, num_neurons, _ = y.shape
        y = y.reshape(batch_size, time_points, depth, num_neurons, 1)
        y = y.permute(0, 3, 1, 2, 4).reshape(batch_size * num_neurons, 1, time_points, depth)
        y = conv(y)
        y = y.reshape(batch_size, num_neurons, out_channels, time_points, -1)
        y = y.permute(0, 3, 4, 1, 2)
        y = y.reshape(-1, y.shape[2], y.shape[3], y.shape[4])
        feat = feat.reshape(1, depth, num_neurons, out_channels)
        y = (y.squeeze(-1) * feat).sum(1).permute(2, 0, 1)
    if bias is not None:
        y = y + bias
    return y  # [2, B*T, N]


def q_nl(q):
    return torch.sigmoid(q) * 0.99999 + 1e-6


def theta_nl(logtheta):
    return F.elu(logtheta) + 1 + 1e-6


def fitted_zig_mean(theta, k, loc, q):
    return (1 - q) * 0.5 * loc + q * (k * theta + loc)


def fitted_zig_variance(theta, k, loc, q):
    expectation_of_variances = q * k * theta**2 + (1 - q) * loc**2 / 12
    variance_of_expectations = q * (1 - q) * (k * theta + loc / 2) ** 2
    return expectation_of_variances + variance_of_expectations


def get_slab_logl(theta, k, loc, q, target, zero_mask, nonzero_mask):
    return (
        torch.log((1 - q) * zero_mask + 1 * nonzero_mask)
        + torch.log(q * nonzero_mask + 1.0 * zero_mask)
        + (k - 1) * torch.log(target * nonzero_mask - loc * nonzero_mask + 1.0 * zero_mask)
        - (target * nonzero_mask - loc * nonzero_mask) / theta
        - k * torch.log(theta)
        - torch.lgamma(k)
    )


def latent_params(logits, z, w_q, w_theta):
    """q, theta [B*T, N, S] as ZIGEncoder.forward_prior makes them; z [S, B*T, L]."""
    samples = z.permute(1, 2, 0)  # (B*time, hidden, samples)
    latent_repr_theta = torch.einsum("bhi,hj->bji", samples, w_theta)
    latent_repr_q = torch.einsum("bhi,hj->bji", samples, w_q)
    logtheta = logits[1].unsqueeze(-1) + latent_repr_theta
    q = logits[0].unsqueeze(-1) + latent_repr_q
    return q_nl(q), theta_nl(logtheta)


def latent_loglik(target, logits, z, w_q, w_theta, k, loc):
    q, theta = latent_params(logits, z, w_q, w_theta)
    n_samples = z.shape[0]
    nonzero_mask = (target >= loc).int().unsqueeze(-1)
    zero_mask = (target <= loc).int().unsqueeze(-1)
    zig_loss = get_slab_logl(theta, k.view(1, -1, 1), loc.view(1, -1, 1), q, target.unsqueeze(-1),
                             zero_mask, nonzero_mask)
    log_likelihood = torch.logsumexp(zig_loss, -1) - torch.log(torch.tensor(float(n_samples), dtype=torch.float64))
    return log_likelihood / math.log(2.0)


# --------------------------------------------------------------------------- cases

def readout_case(name, b, t, c, h, w, n, kernel, conv_bias, bias, shift, align):
    seed(name)
    bt = b * t
    ins = {
        "input": uniform(bt, c, h, w, lo=-1.0, hi=1.0),
        "mu": uniform(n, 2, lo=-1.1, hi=1.1),
        "conv_weight": uniform(2, 1, *kernel, lo=-0.3, hi=0.3),
        "features": uniform(1, c, 2, n, lo=-0.5, hi=0.5),
    }
    if conv_bias:
        ins["conv_bias"] = uniform(2, lo=-0.5, hi=0.5)
    if bias:
        ins["bias"] = uniform(n, lo=-1.0, hi=1.0)
    if shift:
        ins["shift"] = uniform(bt, 2, lo=-0.2, hi=0.2)
    d = {k: f64(v) for k, v in ins.items()}
    y = zig_readout_upstream(d["input"], d["mu"], d["conv_weight"], d.get("conv_bias"), d["features"],
                             d.get("bias"), d.get("shift"), b, t, align)
    case(name, "zig_readout", {"frames": str(t), "align_corners": "true" if align else "false"}, ins, {"output": y})


def targets(bt, n, loc):
    """Zeros, values at loc exactly, spike values below loc and slab values."""
    y = uniform(bt, n, lo=0.0, hi=3.0) + loc
    sel = torch.arange(bt * n).view(bt, n) % 5
    y = torch.where(sel == 0, torch.zeros_like(y), y)
    y = torch.where(sel == 1, loc.expand(bt, n), y)
    y = torch.where(sel == 2, 0.5 * loc.expand(bt, n), y)
    return y.contiguous()


def latent_inputs(name, bt, n, s, l):
    seed(name)
    loc = torch.full((n,), 0.005, dtype=torch.float32)
    return {
        "target": targets(bt, n, loc),
        "logits": uniform(2, bt, n, lo=-2.0, hi=2.0),
        "z": torch.randn(s, bt, l, dtype=torch.float32),
        "w_q": uniform(l, n, lo=-0.3, hi=0.3),
        "w_theta": uniform(l, n, lo=-0.3, hi=0.3),
        "k": uniform(n, lo=0.3, hi=3.0),
        "loc": loc,
    }


def loglik_case(name, bt, n, s, l):
    ins = latent_inputs(name, bt, n, s, l)
    d = {k: f64(v) for k, v in ins.items()}
    y = latent_loglik(d["target"], d["logits"], d["z"], d["w_q"], d["w_theta"], d["k"], d["loc"])
    case(name, "zig_latent_loglik", {}, ins, {"output": y})


def params_case(name, bt, n, s, l):
    ins = latent_inputs(name, bt, n, s, l)
    ins = {k: ins[k] for k in ("logits", "z", "w_q", "w_theta")}
    d = {k: f64(v) for k, v in ins.items()}
    q, theta = latent_params(d["logits"], d["z"], d["w_q"], d["w_theta"])  # [B*T, N, S]
    case(name, "zig_latent_params", {}, ins,
         {"q": q.permute(2, 0, 1).contiguous(), "theta": theta.permute(2, 0, 1).contiguous()})


def moments_case(name, rows, n, moment):
    seed(name)
    ins = {
        "q": q_nl(uniform(rows, n, lo=-4.0, hi=4.0)).float(),
        "theta": theta_nl(uniform(rows, n, lo=-3.0, hi=3.0)).float(),
        "k": uniform(n, lo=0.2, hi=4.0),
        "loc": uniform(n, lo=0.001, hi=0.1),
    }
    d = {k: f64(v) for k, v in ins.items()}
    fn = fitted_zig_mean if moment == "mean" else fitted_zig_variance
    case(name, "zig_moments", {"moment": moment}, ins, {"output": fn(d["theta"], d["k"], d["loc"], d["q"])})


def map_case(name, which):
    seed(name)
    x = torch.cat([uniform(60, lo=-8.0, hi=8.0), torch.tensor([0.0, -30.0, 30.0, 1e-7], dtype=torch.float32)])
    fn = {"q": q_nl, "theta": theta_nl, "k": theta_nl, "loc": torch.exp}[which]
    case(name, "zig_map", {"map": which}, {"input": x}, {"output": fn(f64(x))})


def build_cases():
    CASES.clear()
    # The paper's (11, 5) kernel with its conv bias and a shift; T shorter than the kernel; a 1x1
    # kernel with a readout bias; one neuron.
    readout_case("zig_readout_paper_k11x5", 2, 12, 16, 6, 8, 10, (11, 5), True, False, True, True)
    readout_case("zig_readout_short_t", 1, 4, 3, 5, 5, 5, (11, 5), True, True, False, False)
    readout_case("zig_readout_k1x1_bias", 3, 2, 4, 3, 4, 6, (1, 1), False, True, True, True)
    readout_case("zig_readout_one_neuron", 2, 7, 6, 4, 4, 1, (11, 5), True, True, False, True)
    loglik_case("zig_latent_loglik_s100", 8, 12, 100, 12)
    loglik_case("zig_latent_loglik_s1", 6, 7, 1, 12)
    loglik_case("zig_latent_loglik_n1", 5, 1, 30, 3)
    params_case("zig_latent_params_s3", 4, 9, 3, 12)
    moments_case("zig_moments_mean", 6, 11, "mean")
    moments_case("zig_moments_variance", 6, 11, "variance")
    for which in ("q", "theta", "loc"):
        map_case(f"zig_map_{which}", which)


def main():
    deterministic_torch()
    build_cases()
    files = [(name, op, params, ins, outs, expected_meta(SCRIPT, name)) for name, op, params, ins, outs in CASES]
    write_all(files)
    total = check_all(files, 200 * 1024, 600 * 1024)
    print(f"torch {torch.__version__}: {summary(len(CASES), total)}")
    for name, op, params, ins, outs in CASES:
        print(f"  {name:30s} {op:18s} {describe(params, as_f32(ins), as_f32(outs))}")


if __name__ == "__main__":
    main()
