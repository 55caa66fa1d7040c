#!/usr/bin/env python3
"""Golden data for the cGNF pose flow (Pierzchlewicz et al.; docs/ops.md, cGNF message passing), written in plain
PyTorch (no torch_geometric / torch_sparse / nflows) from propose's code (sinzlab/propose:
models/flows/CondGraphFlow.py, transforms/transform.py, nn/CondGNN.py, layers/CondGCN.py,
nn/embedding.py SageEmbedding). The modules are named so that the state_dict keys are exactly
propose's (minus CondGCN's unused `attention` Linear, which newer propose versions also create).

Model (small sizes: J 16 joints, L 4 flow layers, hidden H 12, context Cc 5, embedding hidden 7):
- context: kp = 0.0139 (k - k[:, root]), root 0, y flipped; SageEmbedding = two DenseSAGEConv layers
  on a learned dense [J, J] adjacency whose rows / columns of unobserved keypoints are zeroed:
  out = lin_rel(A X / clamp(rowsum A, 1)) + lin_root(X), ReLU between the layers (2 -> 7 -> 5);
- flow: L x (GraphActNorm(3), GraphAffineCoupling with feature i % 3 transformed), the conditioner
  a CondGNN of two CondGCN layers (2 -> H -> H, then H -> H -> 2; aggregation = sum):
      h_i = ReLU(W_x x_i + b_x) + sum_{j skeleton neighbour of i, both directions} ReLU(W_xx x_j + b_xx)
            + obs_i ReLU(W_cx c_i + b_cx);   x_i' = W_pool h_i + b_pool;   c_i' = ReLU(W_c c_i + b_c)
  (both edge directions use the "x->x" Linear, as propose does; "prior" = no context terms at all);
  coupling: shift = p[..., 0], scale = sigmoid(p[..., 1] + 2) + 1e-3, y_T = x_T scale + shift;
- base: log N(z) per node = -0.5 sum z^2 - 1.5 log 2 pi; log p per node = log N(z) + forward logdet.
- sampling: z = tau eps (eps drawn here and stored, tau 0.8), inverse in reverse order, per-sample
  log p per node = log N(z) - sum of inverse logdets (kept PER SAMPLE; propose averages over samples).
Everything is computed in float64 from the float32 weights / inputs that are stored, then rounded to
float32. Self-checks: inverse(forward(x)) = x (1e-10), sum of per-node logdets = log|det| of the full
[J*3, J*3] autograd Jacobian of each pose's flow (posterior and prior), the sampled log p equals the
density of the returned samples, and the samples axis agrees with running each sample on its own.

Root-node variant (`*_root` files; propose's CondGCN with the `r` node type, docs/ops.md, cGNF message passing): the same
sizes, its own seed (SEED_ROOT), and one root node r per pose besides the J x and J c nodes: 3
features, the root joint's 3-D position (io tensor `root` [B, 3], drawn randn * 0.5). r is not a flow
variable (never transformed, no logdet, held fixed in the Jacobian) and has no samples axis (it
broadcasts over samples like the context). Edges r -> x go to the x nodes config_root.json lists in
"root": {"children": [2, 3, 7]}. Each CondGCN layer adds to the h above
      + [i in children] ReLU(W_rx r + b_rx);   r' = ReLU(W_r r + b_r)   (r' feeds the next layer)
with the state dict's `layers.r` / `layers.r->x` Linears (layer 0: 3 -> H, layer 1: H -> H); the
root terms stay in prior mode (only the c terms vanish). The variant also checks that the root
changes log p (posterior and prior) and that with no r -> x edges it is the main model.

    python3 scripts/golden_cgnf.py     (from the repository root; needs torch and safetensors)
Writes kernels-tests/data/cgnf/{weights.safetensors, io.safetensors, config.json} and the variant's
{weights_root.safetensors, io_root.safetensors (io's tensors + `root`), config_root.json (config.json +
"root")}; reruns are byte-identical with the same torch build.
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_common import check_file, deterministic_torch, save_file  # noqa: E402

SCRIPT = "scripts/golden_cgnf.py"
OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "kernels-tests", "data", "cgnf")

J, L, H, CC, EH, B, S = 16, 4, 12, 5, 7, 3, 4
TAU = 0.8
ROOT, KP_SCALE = 0, 0.0139
EDGES = [[0, 1], [1, 2], [2, 6], [6, 3], [3, 4], [4, 5], [6, 7], [7, 8], [8, 9], [8, 12],
         [12, 11], [11, 10], [8, 13], [13, 14], [14, 15]]
UNOBSERVED = {0: [3, 9], 1: [], 2: [0, 5, 10, 15]}
LOG_2PI = math.log(2 * math.pi)
# The last CondGCN's pool is scaled up so the coupling scales spread away from sigmoid(2) ~ 0.88
# (log-scale std ~0.17 over the posterior's nodes); 3.0 already lets the inverse blow samples up
# to ~3e3, which a float32 engine cannot follow.
POOL_GAIN = 2.0
SEED = 8301
# Root-node variant (propose's `r` node type): its own seed, the r -> x edges to these x nodes (the
# three skeleton neighbours of joint 6), root positions drawn randn * ROOT_STD. The seed is the first
# after 8301 whose draws pass the checks below with samples as tame as the main golden's (8302 blows
# samples past 50, others leave the coupling scales too close to sigmoid(2)).
SEED_ROOT, ROOT_CHILDREN, ROOT_STD = 8315, [2, 3, 7], 0.5


# --------------------------------------------------------------------------- model

def node_mix(m, t):
    """sum_j m[i, j] t[..., j, :] over the node axis (-2)."""
    return torch.einsum("ij,...jh->...ih", m.to(t.dtype), t)


class CondGCN(nn.Module):
    """propose.models.layers.CondGCN (aggr="add", default relations), on dense [..., J, F] nodes."""

    def __init__(self, in_features, context_features, out_features, hidden_features, root_features):
        super().__init__()
        feats = {"x": in_features, "c": context_features, "r": root_features}
        # "x<-x" is built but unused (x->x serves both directions); "r", "r->x" only serve the
        # root-node variant (unused in the main golden)
        rels = ["x", "c", "r", "x->x", "x<-x", "c->x", "r->x"]
        self.layers = nn.ModuleDict({r: nn.Linear(feats[r[0]], hidden_features) for r in rels})
        self.pool = nn.Linear(hidden_features, out_features)
        self.act = nn.ReLU()

    def forward(self, x, c, obs, nbr, root=None):
        """x [..., J, in]; c [..., J, ctx] or None (prior); obs [..., J]; nbr [J, J] symmetric
        neighbour counts; root None (no root node) or (r [..., root_in], children [J] 0/1): the root
        node's features and which x nodes it sends to (r -> x). Returns (x', c', r')."""
        h = self.act(self.layers["x"](x))  # self loop
        h = h + node_mix(nbr, self.act(self.layers["x->x"](x)))  # x->x and x<-x, same weights
        if c is not None:
            h = h + obs[..., None] * self.act(self.layers["c->x"](c))  # c_i -> x_i if observed
            c = self.act(self.layers["c"](c))
        r = None
        if root is not None:  # also in prior mode: the root node is not context
            r, children = root
            msg = self.act(self.layers["r->x"](r))[..., None, :]  # [..., 1, H], same for each child
            h = h + children.to(h.dtype)[:, None] * msg
            r = self.act(self.layers["r"](r))
        return self.pool(h), c, r


class CondGNN(nn.Module):
    def __init__(self, in_features, context_features, out_features, hidden_features, root_features=3):
        super().__init__()
        self.layers = nn.ModuleList([
            CondGCN(in_features, context_features, hidden_features, hidden_features, root_features),
            CondGCN(hidden_features, hidden_features, out_features, hidden_features, hidden_features),
        ])

    def forward(self, x, c, obs, nbr, root=None):
        for layer in self.layers:
            x, c, r = layer(x, c, obs, nbr, root)
            root = None if root is None else (r, root[1])
        return x


class GraphActNorm(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.register_buffer("initialized", torch.tensor(True, dtype=torch.bool))
        self.log_scale = nn.Parameter(torch.zeros(features))
        self.shift = nn.Parameter(torch.zeros(features))

    def forward(self, x, c, obs, nbr, root=None):
        ld = self.log_scale.sum() * x.new_ones(x.shape[:-1])
        return torch.exp(self.log_scale) * x + self.shift, ld

    def inverse(self, y, c, obs, nbr, root=None):
        ld = -self.log_scale.sum() * y.new_ones(y.shape[:-1])
        return (y - self.shift) * torch.exp(-self.log_scale), ld


class GraphAffineCouplingTransform(nn.Module):
    def __init__(self, mask, transform_net_create_fn):
        super().__init__()
        v = torch.arange(len(mask))
        self.register_buffer("identity_features", v.masked_select(mask <= 0))
        self.register_buffer("transform_features", v.masked_select(mask > 0))
        self.transform_net = transform_net_create_fn(len(self.identity_features),
                                                     2 * len(self.transform_features))

    def _scale_shift(self, x, c, obs, nbr, root=None):
        p = self.transform_net(x[..., self.identity_features], c, obs, nbr, root)
        n = len(self.transform_features)
        return torch.sigmoid(p[..., n:] + 2) + 1e-3, p[..., :n]

    def forward(self, x, c, obs, nbr, root=None):
        scale, shift = self._scale_shift(x, c, obs, nbr, root)
        y = x.clone()
        y[..., self.transform_features] = x[..., self.transform_features] * scale + shift
        return y, torch.log(scale).sum(-1)

    def inverse(self, y, c, obs, nbr, root=None):
        scale, shift = self._scale_shift(y, c, obs, nbr, root)
        x = y.clone()
        x[..., self.transform_features] = (y[..., self.transform_features] - shift) / scale
        return x, -torch.log(scale).sum(-1)


class GraphCompositeTransform(nn.Module):
    def __init__(self, transforms):
        super().__init__()
        self._transforms = nn.ModuleList(transforms)

    def forward(self, x, c, obs, nbr, root=None):
        total = x.new_zeros(x.shape[:-1])
        for t in self._transforms:
            x, ld = t(x, c, obs, nbr, root)
            total = total + ld
        return x, total

    def inverse(self, z, c, obs, nbr, root=None):
        total = z.new_zeros(z.shape[:-1])
        for t in reversed(self._transforms):
            z, ld = t.inverse(z, c, obs, nbr, root)
            total = total + ld
        return z, total


class DenseSAGEConv(nn.Module):
    """torch_geometric.nn.dense.DenseSAGEConv (normalize=False, bias=True), by hand. NOTE: PyG 2.x
    puts the bias on lin_root (lin_rel = Linear(bias=False), lin_root = Linear(bias=bias)); the
    contract of this golden has it on lin_rel. The output is the same (the bias is added once
    either way); only the key of the bias differs (`lin_rel.bias` here, `lin_root.bias` in PyG)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.lin_rel = nn.Linear(in_channels, out_channels, bias=True)
        self.lin_root = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x, adj):
        out = torch.matmul(adj, x) / adj.sum(dim=-1, keepdim=True).clamp(min=1)
        return self.lin_rel(out) + self.lin_root(x)


class SageEmbedding(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim):
        super().__init__()
        self.layers = nn.ModuleList([DenseSAGEConv(input_dim, hidden_dim),
                                     DenseSAGEConv(hidden_dim, output_dim)])
        self.relu = nn.ReLU()
        self.adj = nn.Parameter(torch.ones(J, J))

    def forward(self, kp, obs):
        """kp [B, J, 2] preprocessed keypoints, obs [B, J] 0/1 -> [B, J, out]."""
        adj = self.adj * obs[:, :, None] * obs[:, None, :]
        x = self.relu(self.layers[0](kp, adj))
        return self.layers[1](x, adj)


def preprocess(k):
    kp = KP_SCALE * (k - k[:, ROOT:ROOT + 1])
    return torch.stack([kp[..., 0], -kp[..., 1]], dim=-1)


class CondGraphFlow(nn.Module):
    def __init__(self, root_children=None):
        """root_children None: no root node (main golden); else the x nodes the root node sends to."""
        super().__init__()

        def create_net(i, o):
            return CondGNN(i, CC, o, H, root_features=3)

        layers = []
        for i in range(L):
            mask = -torch.ones(3)
            mask[i % 3] = 1
            layers += [GraphActNorm(3), GraphAffineCouplingTransform(mask, create_net)]
        self._transform = GraphCompositeTransform(layers)
        self._embedding_net = SageEmbedding(2, EH, CC)
        nbr = torch.zeros(J, J)
        for s, d in EDGES:
            nbr[d, s] += 1  # x->x: message s -> d
            nbr[s, d] += 1  # x<-x: message d -> s
        self.register_buffer("nbr", nbr, persistent=False)
        mask = None
        if root_children is not None:
            mask = torch.zeros(J)
            mask[list(root_children)] = 1
            assert int(mask.sum()) == len(root_children) > 0
        self.register_buffer("root_mask", mask, persistent=False)  # [J] 0/1 or None

    def context(self, k, obs):
        return self._embedding_net(preprocess(k), obs)

    def _bcast(self, x, c, obs, r):
        """With a samples axis (x [B, S, J, 3]) the context / mask / root broadcast over S. Returns
        (c, obs, root) with root = (r, children) or None."""
        assert (r is None) == (self.root_mask is None)
        if x.dim() == 4:
            c = None if c is None else c[:, None]
            obs = obs[:, None]
            r = None if r is None else r[:, None]
        return c, obs, (None if r is None else (r, self.root_mask))

    def forward_flow(self, x, c, obs, r=None):
        c, obs, root = self._bcast(x, c, obs, r)
        return self._transform(x, c, obs, self.nbr, root)

    def inverse_flow(self, z, c, obs, r=None):
        c, obs, root = self._bcast(z, c, obs, r)
        return self._transform.inverse(z, c, obs, self.nbr, root)

    def log_prob(self, x, c, obs, r=None):
        z, ld = self.forward_flow(x, c, obs, r)
        return z, log_normal(z) + ld

    def sample(self, eps, c, obs, tau, r=None):
        z = tau * eps
        x, ld = self.inverse_flow(z, c, obs, r)
        return x, log_normal(z) - ld


def log_normal(z):
    return -0.5 * (z ** 2).sum(-1) - 1.5 * LOG_2PI


# --------------------------------------------------------------------------- files

def save_st(tensors, path, metadata=None):
    """golden_common's byte-stable writer (F32, I64 and BOOL), then a reload check."""
    save_file(tensors, path, metadata)
    check_file(path, metadata or {}, tensors)


# --------------------------------------------------------------------------- main

def golden(seed, root_children=None, suffix=""):
    """One golden: the main one (no root node) or, with root_children, the root-node variant, whose
    draws are the main one's followed by the root positions. Writes weights{suffix}.safetensors,
    io{suffix}.safetensors, config{suffix}.json and returns their total size."""
    rooted = root_children is not None
    torch.manual_seed(seed)
    model = CondGraphFlow(root_children)
    with torch.no_grad():
        for i, t in enumerate(model._transform._transforms):
            if i % 2 == 0:
                t.log_scale.copy_(torch.randn(3) * 0.2)
                t.shift.copy_(torch.randn(3) * 0.2)
            else:
                pool = t.transform_net.layers[1].pool
                pool.weight.mul_(POOL_GAIN)
                pool.bias.mul_(POOL_GAIN)
        model._embedding_net.adj.copy_(torch.rand(J, J) + 0.5)

    k = torch.rand(B, J, 2) * 100.0
    obs = torch.ones(B, J)
    for b, idx in UNOBSERVED.items():
        obs[b, idx] = 0.0
    poses = torch.randn(B, J, 3)
    eps = torch.randn(B, S, J, 3)
    root = torch.randn(B, 3) * ROOT_STD if rooted else None  # root joint's 3-D position, not flowed

    sd = {name: v.detach().clone().contiguous() for name, v in model.state_dict().items()}
    m = model.double()
    d = torch.float64
    kd, od, xd, ed = k.to(d), obs.to(d), poses.to(d), eps.to(d)
    rd = root.to(d) if rooted else None

    with torch.no_grad():
        c = m.context(kd, od)
        z, logp = m.log_prob(xd, c, od, rd)
        z_prior, logp_prior = m.log_prob(xd, None, od, rd)
        samples, sample_logp = m.sample(ed, c, od, TAU, rd)
        mode, _ = m.inverse_flow(torch.zeros(B, J, 3, dtype=d), c, od, rd)

        # self-checks: inverse(forward(x)) = x; logdets cancel
        for cc, zz in ((c, z), (None, z_prior)):
            back, ld_inv = m.inverse_flow(zz, cc, od, rd)
            _, ld_fwd = m.forward_flow(xd, cc, od, rd)
            assert (back - xd).abs().max() < 1e-10
            assert (ld_inv + ld_fwd).abs().max() < 1e-10
        # sampled log p = density of the returned samples (per node, per sample), z comes back
        z_back, logp_back = m.log_prob(samples, c, od, rd)
        assert (z_back - TAU * ed).abs().max() < 1e-10
        assert (logp_back - sample_logp).abs().max() < 1e-10
        # the samples axis agrees with running each sample alone (context and root broadcast)
        for s in range(S):
            xs, lps = m.sample(ed[:, s], c, od, TAU, rd)
            assert (xs - samples[:, s]).abs().max() < 1e-12
            assert (lps - sample_logp[:, s]).abs().max() < 1e-12
        # unobserved keypoints' values do not matter (their rows / columns of A and c->x are cut)
        k2 = kd.clone()
        for b, idx in UNOBSERVED.items():
            k2[b, [i for i in idx if i != ROOT]] += 37.0
        z2, logp2 = m.log_prob(xd, m.context(k2, od), od, rd)
        assert (z2 - z).abs().max() < 1e-12 and (logp2 - logp).abs().max() < 1e-12
        # the context matters, and scales vary
        assert (logp - logp_prior).abs().max() > 1e-2
        if rooted:
            # the root matters, with and without context (a zero root still sends ReLU(b_rx))
            for cc, lp in ((c, logp), (None, logp_prior)):
                _, lp2 = m.log_prob(xd, cc, od, rd + 1.0)
                assert (lp2 - lp).abs().max() > 1e-2
            # with no r -> x edges the variant is the main model (the root terms are all it adds)
            mask, m.root_mask = m.root_mask, torch.zeros_like(m.root_mask)
            _, lp_nr = m.log_prob(xd, c, od, rd)
            m.root_mask = None
            _, lp_plain = m.log_prob(xd, c, od)
            m.root_mask = mask
            assert (lp_nr - lp_plain).abs().max() < 1e-12 and (lp_plain - logp).abs().max() > 1e-2

    # total logdet = log|det| of the full [J*3, J*3] Jacobian of each pose's flow (posterior, prior);
    # the root (like the context) is held fixed: it is not a flow variable
    for b in range(B):
        rb = rd[b:b + 1] if rooted else None
        for cc in (c[b:b + 1], None):
            def f(v):
                return m.forward_flow(v.reshape(1, J, 3), cc, od[b:b + 1], rb)[0].reshape(-1)
            jac = torch.autograd.functional.jacobian(f, xd[b].reshape(-1))
            sign, lad = torch.linalg.slogdet(jac)
            with torch.no_grad():
                ld = m.forward_flow(xd[b:b + 1], cc, od[b:b + 1], rb)[1].sum()
            assert sign != 0 and abs(float(lad - ld)) < 1e-10, (b, float(lad), float(ld))

    # scale statistics of the couplings (so the golden exercises scales well away from sigmoid(2))
    with torch.no_grad():
        logs = []
        x_cur = xd
        cb, ob, rootb = m._bcast(x_cur, c, od, rd)
        for t in m._transform._transforms:
            if isinstance(t, GraphAffineCouplingTransform):
                scale, _ = t._scale_shift(x_cur, cb, ob, m.nbr, rootb)
                logs.append(torch.log(scale).reshape(-1))
            x_cur, _ = t(x_cur, cb, ob, m.nbr, rootb)
        logs = torch.cat(logs)
    assert float(logs.std()) > 0.1 and float(logs.min()) < -0.5, (float(logs.std()), float(logs.min()))

    os.makedirs(OUT, exist_ok=True)
    names = [f"weights{suffix}.safetensors", f"io{suffix}.safetensors", f"config{suffix}.json"]
    save_st(sd, os.path.join(OUT, names[0]))
    io = {
        "keypoints": k, "observed": obs, "poses": poses, "context": c, "z": z, "logp": logp,
        "z_prior": z_prior, "logp_prior": logp_prior, "eps": eps, "samples": samples,
        "sample_logp": sample_logp, "mode": mode,
    }
    if rooted:
        io["root"] = root
    io = {name: v.to(torch.float32).contiguous() for name, v in io.items()}
    for name, v in io.items():
        assert torch.isfinite(v).all(), name
    assert float(io["samples"].abs().max()) < 50.0
    save_st(io, os.path.join(OUT, names[1]),
            metadata={"script": SCRIPT, "torch": torch.__version__, "temperature": str(TAU)})
    config = {"joints": J, "layers": L, "hidden": H, "context_features": CC, "edges": EDGES,
              "embedding": {"hidden": EH, "keypoint_scale": KP_SCALE, "root": ROOT, "flip_y": True}}
    if rooted:
        config["root"] = {"children": list(root_children)}
    text = json.dumps(config, indent=2)
    text = text.replace(json.dumps(EDGES, indent=2).replace("\n", "\n  "), json.dumps(EDGES))
    if rooted:
        text = text.replace(json.dumps(list(root_children), indent=2).replace("\n", "\n    "),
                            json.dumps(list(root_children)))
    assert json.loads(text) == config
    with open(os.path.join(OUT, names[2]), "w") as f:
        f.write(text + "\n")

    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in names)
    print(f"wrote {len(sd)} weights, {len(io)} io tensors to {os.path.relpath(OUT)}/{{{','.join(names)}}} "
          f"({total} bytes); checks passed (inverse, Jacobian log|det|, sampling density"
          f"{', root' if rooted else ''})")
    print(f"  coupling log-scale: min {float(logs.min()):.3f} max {float(logs.max()):.3f} "
          f"std {float(logs.std()):.3f}; logp [{float(logp.min()):.2f}, {float(logp.max()):.2f}], "
          f"logp_prior [{float(logp_prior.min()):.2f}, {float(logp_prior.max()):.2f}], "
          f"sample_logp [{float(sample_logp.min()):.2f}, {float(sample_logp.max()):.2f}], "
          f"|samples| max {float(io['samples'].abs().max()):.2f}")
    return total


def main():
    deterministic_torch()
    total = golden(SEED)
    assert total < 100_000, total
    total_root = golden(SEED_ROOT, ROOT_CHILDREN, "_root")
    assert total_root < 80_000, total_root


if __name__ == "__main__":
    main()
