"""The ``estimate="gradient"`` influence: first-layer full-network gradient cosines."""

from __future__ import annotations

import copy

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


@pytest.fixture(scope="module")
def fitted_wide():
    """Wide enough that every row's seen sub-network has live units (non-zero gradients)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    est = ToDMLPClassifier(hidden_layer_sizes=(32,), p=0.5, max_epochs=30, batch_size=16,
                           lr=0.02, random_state=0, verbose=0, device="cpu").fit(X, y)
    return est, X, y


def _first_layer_grad(est, x, label, keys, mode):
    """Brute force: float64 autograd of the row's loss w.r.t. the first layer's weight
    and bias (``trunk[0]``, the first ``nn.Linear`` of the MLP)."""
    module = copy.deepcopy(est.module_).double().eval()
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p):
        with tod_context(keys, mode):
            out = functional_call(module, p, (x.double(),))
        return F.cross_entropy(out, label)

    g = grad(loss)(params)
    return torch.cat([g["trunk.0.weight"].reshape(-1), g["trunk.0.bias"]])


def _cos(u, v):
    """Cosine; 0 where a gradient is exactly zero (a row whose seen units are all off)."""
    n = float(u.norm() * v.norm())
    return float(u @ v) / n if n > 0 else 0.0


def _check_against_brute_force(est, X, y, rows=(0, 7, 59), rel=1e-4):
    got = est.score_influence(X[:3], y[:3], estimate="gradient", train_set=(X, y))
    assert got.shape == (3, len(y))
    xs = torch.as_tensor(est._validate_X(X, reset=False))
    nonzero = 0
    for a in range(3):
        gt = _first_layer_grad(est, xs[a:a + 1], torch.tensor([y[a]]), None, "full")
        for i in rows:
            gi = _first_layer_grad(est, xs[i:i + 1], torch.tensor([y[i]]), None, "full")
            want = _cos(gt, gi)
            nonzero += abs(want) > 1e-3
            assert got[a, i] == pytest.approx(want, rel=rel, abs=1e-6)
    assert nonzero >= 3 * len(rows) - 3  # the check is not vacuous
    return got


def test_gradient_estimate_is_the_first_layer_gradient_cosine(fitted_wide):
    """Target gradient against row i's, both in the full network (issue 12 step 4: the
    row's seen sub-network scored lower LDS on every cell), cosine of the first layer's
    weight and bias gradients, checked by float64 autograd."""
    est, X, y = fitted_wide
    got = _check_against_brute_force(est, X, y)
    assert np.all(np.abs(got) <= 1 + 1e-6)


def test_gradient_estimate_keeps_the_direction_of_confidently_fitted_rows(fitted_wide):
    """Margins above ~18 nats: float32 cross-entropy rounds ``p_y - 1`` to 0 (the
    largest entry of the output error), which turns the gradient's direction; the
    exact float64 error keeps it."""
    est, X, y = fitted_wide
    est = copy.deepcopy(est)
    xs = torch.as_tensor(est._validate_X(X, reset=False))

    def margins():
        logits = est.module_.eval()(xs).detach()
        return logits, logits.max(1).values - logits.min(1).values

    with torch.no_grad():  # largest margin 25 nats: p_y rounds to 1 in float32, not float64
        est.module_.head[-1].weight.mul_(25.0 / float(margins()[1].max()))
    logits, margin = margins()
    saturated = int(torch.argmax(margin))
    assert 18 < margin[saturated] < 30
    err32 = torch.softmax(logits, 1) - F.one_hot(torch.as_tensor(y), 2)
    assert float(err32[saturated].abs().max()) < 1e-6
    _check_against_brute_force(est, X, y, rows=(saturated, 0, 7), rel=1e-3)


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
        blocks = iter_gradient_influence_blocks(factors("full"), factors("full"), 7, 60, **kw)
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


def test_auto_estimate_is_gradient_with_the_training_rows_else_exact(fitted):
    """``estimate="auto"`` (the default): the faithful estimate given ``train_set``, the
    paper's otherwise, whose diagonal on the training rows is ``self_influence_``."""
    est, X, y = fitted
    grad_ = est.score_influence(X[:4], y[:4], estimate="gradient", train_set=(X, y))
    np.testing.assert_array_equal(est.score_influence(X[:4], y[:4], train_set=(X, y)), grad_)
    exact = est.score_influence(X[:4], y[:4], estimate="exact")
    np.testing.assert_array_equal(est.score_influence(X[:4], y[:4]), exact)
    np.testing.assert_allclose(np.diag(est.score_influence(X, y)[:, :]), est.self_influence_,
                               atol=1e-5)
    summed = est.score_influence(X[:4], y[:4], reduce="sum", train_set=(X, y))
    np.testing.assert_allclose(summed, grad_.sum(0), rtol=1e-10)


def test_explain_auto_takes_the_gradient_estimate_with_the_training_rows(fitted):
    est, X, y = fitted
    auto = est.explain(X[:3], y[:3], k=2, train_set=(X, y))
    grad_ = est.explain(X[:3], y[:3], k=2, estimate="gradient", train_set=(X, y))
    exact = est.explain(X[:3], y[:3], k=2, estimate="exact")
    assert auto.equals(grad_)
    assert est.explain(X[:3], y[:3], k=2).equals(exact)
    assert float(auto.influence.abs().max()) <= 1.0 + 1e-9
