#!/usr/bin/env python3
"""Golden data for the video model with latent factors (models::latent): both inference modes
(conditioned on responses, prior samples), the mean and the log-likelihood in bits, with the
normals eps saved alongside so that the engine runs on the same draws. A plain-PyTorch port
(float64) of the upstream modules on random weights, with upstream's state_dict keys.

Upstream followed:
- FinnSchmidt01/neuralpredictors, branch latent_space_model, commit
  f1549ed8b657295004b6d7c0a32266716f5e3b8f:
  * neuralpredictors/layers/cores/conv3d.py, Factorized3dCore with padding=False: per layer
    Conv3d (1, k, k) and Conv3d (kt, 1, 1), both with a bias, BatchNorm3d (eval: running
    statistics, affine), ELU; keys core.features.layer0.conv_spatial / conv_temporal, then
    layer{l}.conv_spatial_{l} / conv_temporal_{l}, layer{l}.norm;
  * neuralpredictors/layers/readouts/gaussian.py, FullGaussian2d.forward with zig=True in eval
    mode: grid_sample at the clamped _mu, the (kt, kc) Conv2d over (time, channel) per neuron with
    padding (kt // 2, kc // 2), the stored _features [1, C, 2, N] used through .view(2, C, N) and
    .reshape(1, C, N, 2), the bias [N] added to both outputs; sigma [1, N, 2, 2] (gauss_type
    "full") is unused in eval;
  * neuralpredictors/layers/encoders/zero_inflation_encoders.py: Response_Encoder.forward
    (Linear per data key, LayerNorm "layer_flex", ELU, nn.GRU batch_first, final_linear;
    mice_dim = 0, so mice.<key> is an empty [80, 0]); ZIGEncoder.forward with latent=True and
    dropout (eval: responses[:, : N // 2] = 0), means[:, -T':], and
    - conditioned, out_predicts=True: the ZIG mean (fitted_zig_mean) at z = means;
    - conditioned, out_predicts=False: samples = means + sigma * eps;
    - sample_prior=True: samples = eps, q and theta averaged over the samples, then the mean
      (forward_prior gives the same with repeats=1);
    the latent shifts are torch.einsum("bhi,hj->bji", samples, latent_feature[key + "_q"]) etc.;
    k and loc either from mle_fitting (k = mle_fitting[key + "fitted_k"], loc fixed to 0.005; the
    paper's model) or from logk / logloc (k = ELU(logk) + 1 + 1e-6, loc = exp(logloc));
  * neuralpredictors/measures/zero_inflated_losses.py, ZIGLoss.get_slab_logl.
- FinnSchmidt01/latent_space_model, commit 8f1ac15: eval.py (full_objective: masks
  target >= loc and target <= loc on the last T' frames, logsumexp over the samples - log S,
  divided by log 2) and the model's arguments (padding=False, momentum 0.7, layer_flex,
  mle_fitting).

eps is drawn here as float32 standard normals [S, B*T', L] (vcortex's layout; upstream's
[B, T', L, S] is a permute of it) and saved in inputs.safetensors as "noise".

Writes kernels-tests/data/latent/:
- config.json (the paper's k: "fitted", loc 0.005) and config_logk.json (k from logk, loc from
  logloc), both in the JSON vcortex reads;
- weights.safetensors: the state_dict under upstream's keys, plus "fitted_k.<key>" [N] (upstream
  keeps the fitted k outside the state dict, in the mle_fitting dict); with config_logk.json that
  key is dropped;
- inputs.safetensors: videos [B, 1, T, H, W], responses [B, N, T], noise [S, B*T', L];
- expected.safetensors: {cond_mean, cond_loglik, prior_mean, prior_loglik} for the fitted k and
  the same with a "logk_" prefix, each [B, T', N].
Deterministic; a few tens of KB. Rerun from the repository root:

    python3 scripts/golden_latent.py

(needs torch and safetensors; neither is needed to build or test the crate). kernels-tests/latent.rs
holds the GPU forward and the f64 CPU reference to these within 1e-4.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import deterministic_torch, save_file  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels-tests", "data", "latent")
KEY = "m0"
B, T, H, W, N = 2, 12, 9, 8, 9
HIDDEN = [4, 6]
KS_IN, KT_IN, KS_H, KT_H = 3, 4, 2, 3
HD, G, L, S = 6, 5, 3, 5
ZK = (5, 3)
LOC = 0.005
META = {"script": "scripts/golden_latent.py"}


def config(k):
    c = {
        "kind": "latent",
        "core": {"hidden_channels": HIDDEN, "spatial_input_kernel": KS_IN, "temporal_input_kernel": KT_IN,
                 "spatial_hidden_kernel": KS_H, "temporal_hidden_kernel": KT_H},
        "readout": {"data_key": KEY, "neurons": N, "kernel": list(ZK), "bias": True, "align_corners": True},
        "encoder": {"hidden_dim": HD, "hidden_gru": G, "output_dim": L},
        "samples": S,
        "seed": 0,
        "k": k,
    }
    if k == "fitted":
        c["loc"] = LOC
    return c


class Core(nn.Module):
    """Factorized3dCore(input_channels=1, padding=False, stride=1, bias=True, final_nonlin=True)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential()
        cin = 1
        for i, c in enumerate(HIDDEN):
            ks, kt = (KS_IN, KT_IN) if i == 0 else (KS_H, KT_H)
            s, t = ("conv_spatial", "conv_temporal") if i == 0 else (f"conv_spatial_{i}", f"conv_temporal_{i}")
            layer = nn.Sequential()
            layer.add_module(s, nn.Conv3d(cin, c, (1, ks, ks), bias=True))
            layer.add_module(t, nn.Conv3d(c, c, (kt, 1, 1), bias=True))
            layer.add_module("norm", nn.BatchNorm3d(c, momentum=0.7))
            layer.add_module("nonlin", nn.ELU())
            self.features.add_module(f"layer{i}", layer)
            cin = c

    def forward(self, x):
        for f in self.features:
            x = f(x)
        return x


def readout(x, mu, conv, feat_stored, bias, batch_size, time_points):
    """FullGaussian2d.forward, zig=True, eval mode (sample=False): [2, B*T', N]."""
    bs, c, h, w = x.size()
    grid = mu.clamp(-1, 1).expand(bs, N, 1, 2)
    feat = feat_stored.view(2, c, N)
    y = F.grid_sample(x, grid, align_corners=True)
    batch_time, depth, num_neurons, _ = y.shape
    y = y.reshape(batch_size, time_points, depth, num_neurons, 1)
    y = y.permute(0, 3, 1, 2, 4).reshape(batch_size * num_neurons, 1, time_points, depth)
    y = conv(y)
    y = y.reshape(batch_size, num_neurons, 2, time_points, -1)
    y = y.permute(0, 3, 4, 1, 2)
    y = y.reshape(-1, y.shape[2], y.shape[3], y.shape[4])
    feat = feat.reshape(1, depth, num_neurons, 2)
    y = (y.squeeze(-1) * feat).sum(1).permute(2, 0, 1)
    return y + bias


def main():
    deterministic_torch()
    torch.manual_seed(2024)
    core = Core()
    conv = nn.Conv2d(1, 2, kernel_size=ZK, padding=(ZK[0] // 2, ZK[1] // 2))
    enc_lin = nn.Linear(N, HD)
    norm = nn.LayerNorm([HD])
    gru = nn.GRU(HD, G, num_layers=1, dropout=0.0, batch_first=True)
    final = nn.Linear(G, L)
    with torch.no_grad():
        for mod in core.features:
            mod.norm.running_mean.uniform_(-0.2, 0.2)
            mod.norm.running_var.uniform_(0.5, 1.5)
            mod.norm.weight.uniform_(0.8, 1.2)
            mod.norm.bias.uniform_(-0.1, 0.1)
            mod.norm.num_batches_tracked.fill_(7)
        norm.weight.uniform_(0.8, 1.2)
        norm.bias.uniform_(-0.1, 0.1)
    mu = torch.empty(1, N, 1, 2).uniform_(-0.9, 0.9)
    sigma_ro = torch.full((1, N, 2, 2), 0.1)
    feats = torch.empty(1, HIDDEN[-1], 2, N).uniform_(-0.4, 0.4)
    ro_bias = torch.empty(N).uniform_(-0.3, 0.3)
    # Upstream initialises the latent features to 0; random here so that z matters.
    w_q = torch.empty(L, N).uniform_(-0.5, 0.5)
    w_t = torch.empty(L, N).uniform_(-0.5, 0.5)
    sigma = torch.tensor([0.7])
    fitted_k = torch.empty(N).uniform_(0.4, 2.5)
    # logk with both signs (both ELU branches), logloc around log 0.1 as upstream initialises it.
    logk = torch.empty(1, N).uniform_(-0.8, 0.8)
    logloc = (torch.rand(1, N) + 1) * math.log(0.1)
    mice = torch.zeros(80, 0)

    videos = torch.rand(B, 1, T, H, W)
    # Zeros (below either loc), values just above loc and large ones.
    responses = (torch.rand(B, N, T) * 2.0 - 0.6).clamp(min=0.0)
    responses[0, 1, -1] = 0.0051
    responses[1, 2, -2] = LOC
    t_out = T - (KT_IN - 1) - (KT_H - 1)
    noise = torch.randn(S, B * t_out, L)

    sd = {}
    for k, v in core.state_dict().items():
        sd[f"core.{k}"] = v
    sd[f"readout.{KEY}._mu"] = mu
    sd[f"readout.{KEY}.sigma"] = sigma_ro
    sd[f"readout.{KEY}._features"] = feats
    sd[f"readout.{KEY}.bias"] = ro_bias
    sd[f"readout.{KEY}.conv.weight"] = conv.weight.detach()
    sd[f"readout.{KEY}.conv.bias"] = conv.bias.detach()
    sd[f"mice.{KEY}"] = mice
    sd[f"encoder.linear.{KEY}.weight"] = enc_lin.weight.detach()
    sd[f"encoder.linear.{KEY}.bias"] = enc_lin.bias.detach()
    sd["encoder.norm.weight"] = norm.weight.detach()
    sd["encoder.norm.bias"] = norm.bias.detach()
    for k, v in gru.state_dict().items():
        sd[f"encoder.GRU.{k}"] = v
    sd["encoder.final_linear.weight"] = final.weight.detach()
    sd["encoder.final_linear.bias"] = final.bias.detach()
    sd[f"latent_feature.{KEY}_q"] = w_q
    sd[f"latent_feature.{KEY}_theta"] = w_t
    sd["sigma"] = sigma
    sd[f"logloc.{KEY}"] = logloc
    sd[f"logk.{KEY}"] = logk
    sd[f"fitted_k.{KEY}"] = fitted_k
    sd = {k: v.detach().clone().contiguous() for k, v in sd.items()}

    # ---- the forward in float64, eval mode
    for m in (core, conv, enc_lin, norm, gru, final):
        m.double().eval()
    d = lambda t: t.double()  # noqa: E731
    out = {}
    with torch.no_grad():
        x = core(d(videos))
        x = torch.transpose(x, 1, 2)
        bsz, tp = x.shape[0], x.shape[1]
        assert tp == t_out
        x = x.reshape((-1,) + x.size()[2:])
        lg = readout(x, d(mu), conv, d(feats), d(ro_bias), bsz, tp)
        q_l, th_l = lg[0], lg[1]  # [B*T', N]

        r = d(responses).clone()
        r[:, : N // 2, :] = 0
        h = enc_lin(r.permute(0, 2, 1)).permute(0, 2, 1)
        h = norm(h.permute(0, 2, 1)).permute(0, 2, 1)
        h = F.elu(h).permute(0, 2, 1)
        h = gru(h)[0]
        means = final(h)[:, -tp:, :]  # [B, T', L]
        eps = d(noise).reshape(S, bsz, tp, L).permute(1, 2, 3, 0)  # [B, T', L, S]
        q_nl = lambda v: torch.sigmoid(v) * 0.99999 + 1e-6  # noqa: E731
        th_nl = lambda v: F.elu(v) + 1 + 1e-6  # noqa: E731

        for prefix, k, loc in [
            # upstream's torch.tensor(0.005) is float32; compared with float32 targets, so a
            # response of exactly float32(0.005) is in both masks.
            ("", d(fitted_k).view(1, N), torch.full((1, N), LOC, dtype=torch.float32).double()),
            ("logk_", F.elu(d(logk)) + 1 + 1e-6, torch.exp(d(logloc))),
        ]:
            def zig_mean(th, q):
                return (1 - q) * 0.5 * loc + q * (k * th + loc)

            # conditioned, out_predicts=True
            m2 = means.reshape(-1, L)
            cond_mean = zig_mean(th_nl(th_l + torch.einsum("bh,hj->bj", m2, d(w_t))),
                                 q_nl(q_l + torch.einsum("bh,hj->bj", m2, d(w_q))))

            def loglik(samples):
                s = samples.reshape(-1, L, S)
                q = q_nl(q_l.unsqueeze(-1) + torch.einsum("bhi,hj->bji", s, d(w_q)))
                th = th_nl(th_l.unsqueeze(-1) + torch.einsum("bhi,hj->bji", s, d(w_t)))
                y = d(responses).transpose(2, 1)[:, -tp:, :].reshape(-1, N).unsqueeze(-1)
                lc = loc.view(1, N, 1)
                nz = (y >= lc).double()
                zm = (y <= lc).double()
                kk = k.view(1, N, 1)
                ll = (torch.log((1 - q) * zm + nz) + torch.log(q * nz + zm)
                      + (kk - 1) * torch.log(y * nz - lc * nz + zm) - (y * nz - lc * nz) / th
                      - kk * torch.log(th) - torch.lgamma(kk))
                return (torch.logsumexp(ll, -1) - math.log(S)) / math.log(2), q, th

            cond_ll, _, _ = loglik(means.unsqueeze(-1) + d(sigma) * eps)
            prior_ll, q, th = loglik(eps)
            prior_mean = zig_mean(th.mean(dim=2), q.mean(dim=2))
            shp = lambda t: t.reshape(B, tp, N).float().contiguous()  # noqa: E731
            out[prefix + "cond_mean"] = shp(cond_mean)
            out[prefix + "cond_loglik"] = shp(cond_ll)
            out[prefix + "prior_mean"] = shp(prior_mean)
            out[prefix + "prior_loglik"] = shp(prior_ll)

    os.makedirs(OUT, exist_ok=True)
    for name, k in [("config.json", "fitted"), ("config_logk.json", "logk")]:
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(config(k), f, indent=1)
            f.write("\n")
    save_file(sd, os.path.join(OUT, "weights.safetensors"), META)
    save_file({"videos": videos, "responses": responses, "noise": noise},
              os.path.join(OUT, "inputs.safetensors"), META)
    save_file(out, os.path.join(OUT, "expected.safetensors"), dict(META, torch=torch.__version__))
    print("wrote", OUT, "T' =", tp)


if __name__ == "__main__":
    main()
