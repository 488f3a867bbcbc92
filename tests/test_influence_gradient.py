"""The ``estimate="gradient"`` influence: sub-network gradient dot products."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad
from torch.nn import functional as F

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.influence import gradient_factors, iter_gradient_influence_blocks
from tod_cleanse.layers import tod_context


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    est = ToDMLPClassifier(hidden_layer_sizes=(8, 6), max_epochs=8, batch_size=16, lr=0.02,
                           random_state=0, verbose=0, device="cpu").fit(X, y)
    return est, X, y


def _flat_grad(est, x, label, keys, mode):
    module = est.module_.eval()
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p):
        with tod_context(keys, mode):
            out = functional_call(module, p, (x,))
        return F.cross_entropy(out, label)

    g = grad(loss)(params)
    return torch.cat([v.reshape(-1) for v in g.values()])


def test_gradient_estimate_is_the_sub_network_gradient_dot_product(fitted):
    est, X, y = fitted
    X_t, y_t = X[:3], y[:3]
    got = est.score_influence(X_t, y_t, estimate="gradient", train_set=(X, y))
    assert got.shape == (3, 60)
    xs = torch.as_tensor(est._validate_X(X, reset=False))
    keys = torch.as_tensor(est.train_keys_)
    for a in range(3):
        gt = _flat_grad(est, xs[a:a + 1], torch.tensor([y_t[a]]), None, "full")
        for i in (0, 7, 59):
            gi = _flat_grad(est, xs[i:i + 1], torch.tensor([y[i]]), keys[i:i + 1], "seen")
            assert got[a, i] == pytest.approx(float(gt @ gi), rel=1e-4, abs=1e-6)


def test_gradient_estimate_reduce_sum_and_mean(fitted):
    est, X, y = fitted
    full = est.score_influence(X[:5], y[:5], estimate="gradient", train_set=(X, y))
    total = est.score_influence(X[:5], y[:5], reduce="sum", estimate="gradient",
                                train_set=(X, y))
    mean = est.score_influence(X[:5], y[:5], reduce="mean", estimate="gradient",
                               train_set=(X, y))
    np.testing.assert_allclose(total, full.sum(0), rtol=1e-10)
    np.testing.assert_allclose(mean, full.mean(0), rtol=1e-10)


def test_uncached_blocks_give_the_same_values(fitted):
    """Past ``max_cached`` the training factors are recomputed per block: same values."""
    est, X, y = fitted
    xs = torch.as_tensor(est._validate_X(X, reset=False))
    ys = torch.as_tensor(y)
    keys = torch.as_tensor(est.train_keys_)
    module = est.module_.eval()

    def factors(mode):
        def run(idx):
            kb = keys[idx] if mode == "seen" else None

            def forward():
                with tod_context(kb, mode):
                    return module(xs[idx])
            return gradient_factors(module, forward, ys[idx])
        return run

    def collect(**kw):
        blocks = iter_gradient_influence_blocks(factors("full"), factors("seen"), 7, 60, **kw)
        return np.concatenate([b for _, b in blocks])

    ref = collect(pairs_per_batch=4096)
    small = collect(pairs_per_batch=8, max_cached=1)
    np.testing.assert_allclose(small, ref, rtol=1e-5, atol=1e-7)
    assert small.shape == (7, 60)


def test_gradient_estimate_needs_the_training_rows(fitted):
    est, X, y = fitted
    with pytest.raises(ValueError, match="train_set=\\(X_train, y_train\\)"):
        est.score_influence(X[:2], y[:2], estimate="gradient")
    with pytest.raises(ValueError, match="train_set has 59 rows .* fitted on 60"):
        est.score_influence(X[:2], y[:2], estimate="gradient", train_set=(X[1:], y[1:]))
    with pytest.raises(ValueError, match="estimate must be one of"):
        est.score_influence(X[:2], y[:2], estimate="hessian")


def test_gradient_factors_needs_a_linear_layer():
    net = torch.nn.Sequential(torch.nn.Flatten())
    with pytest.raises(ValueError, match="nn.Linear"):
        gradient_factors(net, lambda: net(torch.ones(2, 3, requires_grad=True)),
                         torch.tensor([0, 1]))
