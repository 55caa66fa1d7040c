"""vcortex against torch.nn.functional (and PyTorch formulas where F has no such op) on random
inputs, one test per op. Skipped where torch is not installed: torch is never needed to build,
install or use the package."""

import numpy as np
import pytest

import vcortex

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(42)


def rand(*shape, lo=None):
    a = RNG.standard_normal(shape).astype(np.float32)
    return a if lo is None else (np.abs(a) + lo).astype(np.float32)


def T(a):
    return torch.from_numpy(np.asarray(a, np.float64))


def close(got, want, rtol=1e-4, atol=1e-4):
    want = want.detach().numpy() if hasattr(want, "detach") else want
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "n,c,h,w,o,k,stride,padding,dilation,groups",
    [(2, 3, 11, 13, 5, 3, 1, 1, 1, 1), (1, 4, 9, 7, 6, 3, 2, 0, 2, 2), (3, 8, 6, 6, 8, 5, 1, 2, 1, 8),
     (1, 1, 1, 17, 2, 1, 1, 0, 1, 1), (2, 6, 10, 12, 4, (3, 1), (2, 1), (1, 0), 1, 2)],
)
def test_conv2d(n, c, h, w, o, k, stride, padding, dilation, groups):
    kh, kw = (k, k) if isinstance(k, int) else k
    x, wt, b = rand(n, c, h, w), rand(o, c // groups, kh, kw), rand(o)
    got = vcortex.conv2d(x, wt, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    close(got, F.conv2d(T(x), T(wt), T(b), stride, padding, dilation, groups))
    same = vcortex.conv2d(x, wt, None, padding="same", dilation=dilation, groups=groups)
    close(same, F.conv2d(T(x), T(wt), None, 1, "same", dilation, groups))


def test_linear():
    for shape in [(7, 33), (2, 3, 5), (1, 1)]:
        x, w, b = rand(*shape), rand(9, shape[-1]), rand(9)
        close(vcortex.linear(x, w, b), F.linear(T(x), T(w), T(b)))
        close(vcortex.linear(x, w), F.linear(T(x), T(w)))


def test_activations():
    x = rand(3, 257) * 4
    close(vcortex.relu(x), F.relu(T(x)))
    close(vcortex.elu(x), F.elu(T(x)))
    close(vcortex.elu1(x), F.elu(T(x)) + 1)
    close(vcortex.sigmoid(x), torch.sigmoid(T(x)))
    close(vcortex.tanh(x), torch.tanh(T(x)))
    close(vcortex.softplus(x), F.softplus(T(x)))
    close(vcortex.softplus(x, beta=2.0, threshold=5.0), F.softplus(T(x), beta=2.0, threshold=5.0))
    close(vcortex.gelu(x), F.gelu(T(x)))
    close(vcortex.silu(x), F.silu(T(x)))
    close(vcortex.adaptive_elu(x, 0.5, 1.5), F.elu(T(x) - 0.5) + 1.5)


def test_batch_norm():
    for shape in [(4, 3, 5, 6), (7, 3), (2, 3, 9)]:
        x, m, v, w, b = rand(*shape), rand(3), rand(3, lo=0.1), rand(3), rand(3)
        close(vcortex.batch_norm(x, m, v, w, b, eps=1e-3), F.batch_norm(T(x), T(m), T(v), T(w), T(b), eps=1e-3))
        close(vcortex.batch_norm(x, m, v), F.batch_norm(T(x), T(m), T(v)))


def test_layer_norm():
    x = rand(3, 4, 17)
    w, b = rand(4, 17), rand(4, 17)
    close(vcortex.layer_norm(x, (4, 17), w, b), F.layer_norm(T(x), (4, 17), T(w), T(b)))
    close(vcortex.layer_norm(x, 17), F.layer_norm(T(x), (17,)))


def test_pools():
    x = rand(2, 3, 11, 9)
    close(vcortex.max_pool2d(x, 3, 2, 1), F.max_pool2d(T(x), 3, 2, 1))
    close(vcortex.max_pool2d(x, (2, 3), ceil_mode=True), F.max_pool2d(T(x), (2, 3), ceil_mode=True))
    close(vcortex.avg_pool2d(x, 3, 2, 1), F.avg_pool2d(T(x), 3, 2, 1))
    close(
        vcortex.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        F.avg_pool2d(T(x), 3, 2, 1, ceil_mode=True, count_include_pad=False),
    )


@pytest.mark.parametrize("align", [False, True])
def test_grid_sample(align):
    x, g = rand(2, 3, 7, 9), rand(2, 4, 5, 2) * 1.2
    close(vcortex.grid_sample(x, g, align_corners=align), F.grid_sample(T(x), T(g), align_corners=align))


def test_gaussian_readout():
    n, c, h, w, m = 3, 5, 8, 10, 13
    x, mu, feat, bias, shift = rand(n, c, h, w), rand(m, 2) * 0.8, rand(c, m), rand(m), rand(n, 2) * 0.1
    grid = T(mu).clamp(-1, 1)[None, :, None, :] + T(shift)[:, None, None, :]
    s = F.grid_sample(T(x), grid, align_corners=True)[..., 0]  # [N, C, M]
    want = (s * T(feat)[None]).sum(1) + T(bias)
    close(vcortex.gaussian_readout(x, mu, feat, bias, shift), want)


def test_poisson_nll():
    r, t = rand(4, 9, lo=0.01), np.abs(rand(4, 9))
    for red in ("none", "sum", "mean"):
        close(vcortex.poisson_nll(r, t, reduction=red), F.poisson_nll_loss(T(r), T(t), log_input=False, reduction=red))


def test_zig_loglik():
    # The masked ZIG log-density (docs/ops.md): log(1 − q) + log U(0, loc) below loc for zeros,
    # log q + log Gamma(y − loc; k, θ) above.
    shape = (3, 11)
    q = (RNG.random(shape) * 0.8 + 0.1).astype(np.float32)
    theta, k, loc = rand(*shape, lo=0.5), rand(*shape, lo=0.5), rand(*shape, lo=0.05) * 0.1
    y = np.where(RNG.random(shape) < 0.4, 0.0, loc + rand(*shape, lo=0.1)).astype(np.float32)
    got = vcortex.zig_loglik(y, q, theta, k, loc)
    yt, qt, tt, kt, lt = map(T, (y, q, theta, k, loc))
    zero = yt <= lt
    above = (yt - lt).clamp(min=1e-30)
    gamma = (kt - 1) * torch.log(above) - above / tt - kt * torch.log(tt) - torch.lgamma(kt)
    want = torch.where(zero, torch.log(1 - qt) - torch.log(lt), torch.log(qt) + gamma)
    close(got, want, 1e-4, 1e-3)


@pytest.mark.parametrize("inverse", [False, True])
def test_affine_coupling(inverse):
    n, d = 6, 5
    mask = np.array([1, 0, 1, 0, 0], np.float32)
    x, shift, raw = rand(n, d), rand(n, 2), rand(n, 2)
    y, ld = vcortex.affine_coupling(x, shift, raw, mask, inverse=inverse)
    scale = torch.sigmoid(T(raw) + 2) + 1e-3
    xt = T(x).clone()
    idx = torch.tensor([0, 2])
    xt[:, idx] = (xt[:, idx] - T(shift)) / scale if inverse else xt[:, idx] * scale + T(shift)
    close(y, xt)
    close(ld, (-1 if inverse else 1) * torch.log(scale).sum(1))


def test_rq_spline_inverts_itself_and_its_logdet():
    n, d, k = 5, 3, 6
    x = rand(n, d) * 1.5
    w, h, der = rand(n, d, k), rand(n, d, k), rand(n, d, k - 1)
    y, lad = vcortex.rq_spline(x, w, h, der, tail_bound=2.0)
    back, lad_inv = vcortex.rq_spline(y, w, h, der, inverse=True, tail_bound=2.0)
    close(back, x, 1e-3, 1e-3)
    close(lad_inv, -lad, 1e-3, 1e-3)
    # The log-derivative against a finite difference in float64 torch of the engine itself.
    eps = 1e-2
    y2, _ = vcortex.rq_spline(x + eps, w, h, der, tail_bound=2.0)
    np.testing.assert_allclose((y2 - y) / eps, np.exp(lad), rtol=0.1, atol=0.05)


def _alphas(t_train=1000, start=1e-4, end=0.02):
    betas = torch.linspace(start, end, t_train, dtype=torch.float64)
    return betas, torch.cumprod(1 - betas, 0)


def test_ddpm_step():
    betas, ac = _alphas()
    s, eps, z = rand(3, 7), rand(3, 7), rand(3, 7)
    t = 500
    out = vcortex.ddpm_step(eps, t, s, z, clip_sample=False)
    x0 = (T(s) - (1 - ac[t]).sqrt() * T(eps)) / ac[t].sqrt()
    prev = ac[t - 1]
    mean = (prev.sqrt() * betas[t] / (1 - ac[t])) * x0 + ((1 - betas[t]).sqrt() * (1 - prev) / (1 - ac[t])) * T(s)
    var = (1 - prev) / (1 - ac[t]) * betas[t]
    close(out["pred_original_sample"], x0)
    close(out["prev_sample"], mean + var.clamp(min=1e-20).sqrt() * T(z))


def test_ddim_step():
    _, ac = _alphas()
    s, eps = rand(2, 9), rand(2, 9)
    t, steps = 981, 50  # leading spacing: 980, 960, ... with steps_offset 1
    out = vcortex.ddim_step(eps, t, s, num_inference_steps=steps, steps_offset=1, clip_sample=False)
    prev_t = t - 1000 // steps
    x0 = (T(s) - (1 - ac[t]).sqrt() * T(eps)) / ac[t].sqrt()
    want = ac[prev_t].sqrt() * x0 + (1 - ac[prev_t]).sqrt() * T(eps)
    close(out["pred_original_sample"], x0)
    close(out["prev_sample"], want)


def test_divisive_norm_and_neurn_run_on_random_inputs():
    # No PyTorch op to compare with: the golden cases (test_golden.py) hold them to the
    # formulas of docs/ops.md. Here: shapes, finiteness and the centred field.
    x = rand(2, 4, 9, 11)
    for field in ("local", "batch", "layer"):
        y, v = vcortex.divisive_norm(x, field=field, return_centered=True)
        assert y.shape == x.shape and np.isfinite(y).all() and v.shape == x.shape
    y = vcortex.neurn(np.abs(x), kernel=3)
    assert y.shape == x.shape and np.isfinite(y).all()


def test_from_a_torch_state_dict():
    # A Sensorium-sized conv layer's weights as torch tensors (float64 and int64 buffers).
    import json
    import os

    from conftest import data, read_safetensors

    w, _ = read_safetensors(data("sensorium", "weights.safetensors"))
    sd = {k: torch.from_numpy(v.astype(np.float64)) for k, v in w.items()}
    with open(data("sensorium", "config.json")) as f:
        cfg = json.load(f)
    m = vcortex.from_state_dict(sd, cfg)
    x, _ = read_safetensors(data("sensorium", "images.safetensors"))
    want, _ = read_safetensors(data("sensorium", "expected.safetensors"))
    got = m.predict(torch.from_numpy(x["images"]), pupil_center=torch.from_numpy(x["eye"]))
    np.testing.assert_allclose(got["sessB"], want["sessB"], rtol=1e-4, atol=1e-6)
    assert os.path.exists(data("sensorium", "config.json"))
