"""ToDMLPClassifier: separation, influence, labels, persistence, bad input, sklearn checks."""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch.nn import functional as F

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.layers import tod_context

TINY = dict(hidden_layer_sizes=(32,), max_epochs=2, batch_size=32, verbose=0, random_state=0)


def _blobs(seed=0, n=150):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal((-2, 0), 0.7, (n, 2)), rng.normal((2, 0), 0.7, (n, 2))])
    y = np.r_[np.zeros(n, int), np.ones(n, int)]
    return X, y


def test_exact_separation_flipped_subnetwork_untouched():
    """Gradient steps on one instance leave its flipped sub-network bit-identical."""
    X, y = _blobs()
    est = ToDMLPClassifier(hidden_layer_sizes=(16, 16), max_epochs=1, lr=0.05, verbose=0,
                           random_state=0).fit(X, y)
    est.optimizer_ = est._make_optimizer()  # fresh Adam, weight_decay=0: no momentum carry-over
    probe = torch.as_tensor(np.random.default_rng(1).normal(size=(20, 2)), dtype=torch.float32)
    key = torch.tensor([7])

    def outputs(mode):
        est.module_.eval()
        with torch.no_grad(), tod_context(key.repeat(20), mode):
            return est.module_(probe).clone()

    flipped_before, seen_before = outputs("flipped"), outputs("seen")
    xb = torch.as_tensor(((X[7:8] - est.mean_) / est.scale_), dtype=torch.float32)
    yb = torch.as_tensor(y[7:8])
    for _ in range(5):
        est.train_step(xb, yb, key)
    assert torch.equal(outputs("flipped"), flipped_before)
    # the check is not vacuous: the instance's own sub-network did move
    assert not torch.allclose(outputs("seen"), seen_before)


def test_constructed_influence_signs():
    """A clean point helps its twin most; a mislabeled point ranks among the most harmful."""
    X, y = _blobs()
    # a lone class-2 point (its twin is the target), and a class-0 point labelled 1
    X = np.vstack([X, [[0.0, 4.0]], [[-2.0, 0.2]]])
    y = np.r_[y, 2, 1]
    est = ToDMLPClassifier(hidden_layer_sizes=(256, 256), max_epochs=30, random_state=0,
                           verbose=0).fit(X, y)
    infl = est.score_influence(np.array([[0.0, 4.0]]), [2])[0]
    assert infl[300] > 0
    assert np.argmax(infl) == 300
    # self-influence: the mislabeled row is among the 3 most memorised of 302
    assert (est.self_influence_ > est.self_influence_[301]).sum() < 3
    # out-of-sample: the flipped sub-network gives its label a low probability
    p_given = est.oos_proba_[np.arange(302), est.y_train_]
    assert (p_given < p_given[301]).sum() < 3


def test_vectorised_influence_matches_pairwise_loop():
    X, y = _blobs(n=40)
    est = ToDMLPClassifier(**{**TINY, "hidden_layer_sizes": (16, 8)}).fit(X, y)
    M = est.score_influence(X[:3], y[:3])
    Xs = torch.as_tensor((X[:3] - est.mean_) / est.scale_, dtype=torch.float32)
    est.module_.eval()
    for t in range(3):
        for i in (0, 5, 79):
            with torch.no_grad():
                yt = torch.as_tensor(y[t:t + 1])
                with tod_context(torch.tensor([i]), "seen"):
                    ls = F.cross_entropy(est.module_(Xs[t:t + 1]), yt)
                with tod_context(torch.tensor([i]), "flipped"):
                    lf = F.cross_entropy(est.module_(Xs[t:t + 1]), yt)
            assert M[t, i] == pytest.approx(float(lf - ls), abs=1e-5)


def test_influence_chunking_and_reduce_are_consistent():
    X, y = _blobs(n=60)
    est = ToDMLPClassifier(**TINY).fit(X, y)
    full = est.score_influence(X[:25], y[:25])
    est.set_params(score_batch_size=50)  # blocks of 1 target x 50 keys
    assert np.allclose(est.score_influence(X[:25], y[:25]), full, atol=1e-5)
    assert np.allclose(est.score_influence(X[:25], y[:25], reduce="sum"), full.sum(0), atol=1e-4)
    assert np.allclose(est.score_influence(X[:25], y[:25], reduce="mean"), full.mean(0), atol=1e-5)
    # self-influence is the diagonal of the train x train influence matrix
    diag = np.diag(est.score_influence(X[:10], y[:10])[:, :10])
    assert np.allclose(est.self_influence_[:10], diag, atol=1e-5)
    with pytest.raises(ValueError, match="reduce"):
        est.score_influence(X[:2], y[:2], reduce="max")


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog"]),
        pd.Categorical(["low", "high"]),
        np.array([3, 11]),
    ],
    ids=["str", "categorical", "int"],
)
def test_any_label_type(labels):
    X, y01 = _blobs(n=30)
    y = np.asarray(labels)[y01] if not isinstance(labels, pd.Categorical) else pd.Series(
        pd.Categorical(np.asarray(labels)[y01]))
    est = ToDMLPClassifier(**TINY).fit(pd.DataFrame(X, columns=["a", "b"]), y)
    pred = est.predict(pd.DataFrame(X, columns=["a", "b"]))
    assert set(pred) <= set(np.asarray(labels))
    assert est.oos_proba_.shape == (60, 2)
    assert est.score_influence(pd.DataFrame(X[:2], columns=["a", "b"]),
                               np.asarray(y)[:2]).shape == (2, 60)


def test_pickle_round_trip_keeps_predictions_and_influence():
    X, y = _blobs(n=40)
    est = ToDMLPClassifier(**TINY).fit(X, y)
    clone = pickle.loads(pickle.dumps(est))
    assert clone.device_.type == "cpu"
    np.testing.assert_array_equal(clone.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(clone.score_influence(X[:3], y[:3]),
                                  est.score_influence(X[:3], y[:3]))
    np.testing.assert_array_equal(clone.self_influence_, est.self_influence_)


def test_string_instance_keys_drive_the_masks():
    X, y = _blobs(n=30)
    keys = [f"row-{i}" for i in range(60)]
    a = ToDMLPClassifier(**TINY).fit(X, y, instance_keys=keys)
    b = ToDMLPClassifier(**TINY).fit(X, y, instance_keys=keys)
    c = ToDMLPClassifier(**TINY).fit(X, y)
    np.testing.assert_array_equal(a.self_influence_, b.self_influence_)
    assert not np.array_equal(a.train_keys_, c.train_keys_)


def test_turn_over_false_is_a_plain_dropout_baseline():
    X, y = _blobs(n=40)
    est = ToDMLPClassifier(**{**TINY, "turn_over": False}).fit(X, y)
    assert est.predict(X).shape == (80,)
    assert not hasattr(est, "self_influence_")
    with pytest.raises(ValueError, match="turn_over=False"):
        est.score_influence(X[:2], y[:2])


def test_device_auto_is_cpu_without_cuda():
    X, y = _blobs(n=20)
    est = ToDMLPClassifier(**TINY).fit(X, y)
    assert est.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")


# ---------------------------------------------------------------- bad input
X_OK, Y_OK = _blobs(n=10)


@pytest.mark.parametrize(
    "X, y, kwargs, exc, match",
    [
        (X_OK, Y_OK[:-1], {}, ValueError, "y has 19 entries but X has 20 rows"),
        (X_OK[:, 0], Y_OK, {}, ValueError, "Expected 2D array"),
        (np.where(np.arange(40).reshape(20, 2) == 3, np.nan, X_OK), Y_OK, {}, ValueError,
         "Input X contains NaN"),
        (np.where(np.arange(40).reshape(20, 2) == 3, np.inf, X_OK), Y_OK, {}, ValueError,
         "Input X contains infinity"),
        (X_OK, np.zeros(20, int), {}, ValueError, "only one class"),
        (X_OK[:0], Y_OK[:0], {}, ValueError, "0 sample"),
        (X_OK, Y_OK, {"instance_keys": [1] * 20}, ValueError, "instance_keys must be unique"),
        (X_OK, Y_OK, {"instance_keys": [1, 2]}, ValueError, "one key per row of X"),
        (np.array([["a", "b"]] * 20, dtype=object), Y_OK, {}, ValueError,
         "X must hold numbers only"),
        (X_OK, np.r_[Y_OK[:-1].astype(float), np.nan], {}, ValueError, "NaN"),
        (X_OK, None, {}, ValueError, "requires y to be passed"),
        (X_OK, np.array([0, "a"] * 10, dtype=object), {}, TypeError, "mixes label types"),
    ],
    ids=["len-mismatch", "1d-X", "nan", "inf", "one-class", "empty", "dup-keys", "keys-len",
         "strings", "nan-label", "no-y", "mixed-labels"],
)
def test_bad_fit_input_is_named(X, y, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ToDMLPClassifier(**TINY).fit(X, y, **kwargs)


def test_bad_parameters_and_targets():
    with pytest.raises(ValueError, match="'p' parameter of ToDMLPClassifier"):
        ToDMLPClassifier(**{**TINY, "p": 1.0}).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        ToDMLPClassifier(**{**TINY, "hidden_layer_sizes": ()}).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="max_epochs"):
        ToDMLPClassifier(**{**TINY, "max_epochs": 0}).fit(X_OK, Y_OK)
    est = ToDMLPClassifier(**TINY).fit(X_OK, Y_OK)
    with pytest.raises(ValueError, match="y_t contains labels never seen in fit: 5"):
        est.score_influence(X_OK[:2], [0, 5])
    with pytest.raises(ValueError, match="y_t has 1 entries but X has 2 rows"):
        est.score_influence(X_OK[:2], [0])
    with pytest.raises(ValueError, match="X has 3 features"):
        est.predict(np.zeros((2, 3)))


# ------------------------------------------------------------ sklearn checks
# Settings that learn the checks' small blob problems in a few hundred steps.
CHECK_PARAMS = dict(hidden_layer_sizes=(32,), max_epochs=25, batch_size=16, lr=0.01,
                    verbose=0, random_state=0)

# Every check applies to a numeric-feature classifier and passes: no expected failures.
@parametrize_with_checks([ToDMLPClassifier(**CHECK_PARAMS)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_fast_optimizer_fused_on_cpu_and_same_update_as_foreach():
    """The training loop's optimiser uses fused kernels on the CPU, falls back to a
    foreach update where torch refuses them, and both give the same step up to rounding."""
    from tod_cleanse.estimators._training import _fast_optimizer

    def step(make):
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(8, 4))
        b = torch.nn.Parameter(torch.randn(4))
        opt = make([{"params": [w], "weight_decay": 0.01}, {"params": [b], "weight_decay": 0.0}])
        for _ in range(3):
            opt.zero_grad()
            (torch.randn(5, 8) @ w + b).square().sum().backward()
            opt.step()
        return opt, torch.cat([w.detach().ravel(), b.detach().ravel()])

    fused, p_fused = step(lambda g: _fast_optimizer(torch.optim.AdamW, g, lr=0.01))
    plain, p_plain = step(lambda g: torch.optim.AdamW(g, lr=0.01, foreach=True))
    assert fused.defaults["fused"] is True
    assert torch.allclose(p_fused, p_plain, atol=1e-6)
    assert not torch.equal(p_plain, step(lambda g: torch.optim.AdamW(g, lr=0.0))[1])  # moved

    class NoFused(torch.optim.SGD):  # a torch without fused kernels for this optimiser
        def __init__(self, params, fused=None, **kw):
            if fused:
                raise RuntimeError("fused kernels are not supported")
            super().__init__(params, **kw)

    opt, p_sgd = step(lambda g: _fast_optimizer(NoFused, g, lr=0.1, momentum=0.9))
    assert opt.defaults["foreach"] is True
    _, p_ref = step(lambda g: torch.optim.SGD(g, lr=0.1, momentum=0.9))
    assert torch.allclose(p_sgd, p_ref, atol=1e-6)
