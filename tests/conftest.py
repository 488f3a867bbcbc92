"""Shared test set-up: offline hubs, small data."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Test models are tiny: one intra-op thread is faster than two fighting over
# small matrices (and CI machines have 2 cores).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_small():
    """400 digits rows (64 features, 10 classes) with 10% seeded label noise."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    rng = np.random.default_rng(0)
    noisy = rng.random(y.shape[0]) < 0.1
    y_noisy = y.copy()
    y_noisy[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10
    return X, y, y_noisy, noisy


def _noisy_blobs(n=240, n_features=6, n_classes=3, noise=0.1, seed=0):
    """Gaussian blobs (float32) with ``noise`` of the labels moved to the next class."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(n_classes, size=n)
    X = (centers[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    y_noisy = y.copy()
    flip = rng.choice(n, size=int(noise * n), replace=False)
    y_noisy[flip] = (y[flip] + 1) % n_classes
    return X, y, y_noisy


def _small_mlp(**kw):
    """A tiny ToDMLPClassifier (16 hidden units, 8 epochs); ``kw`` overrides."""
    from tod_cleanse import ToDMLPClassifier

    params = dict(hidden_layer_sizes=(16,), max_epochs=8, batch_size=32, random_state=0,
                  verbose=0)
    params.update(kw)
    return ToDMLPClassifier(**params)


@pytest.fixture(scope="session")
def noisy_blobs():
    """Factory of small noisy blob data sets (see :func:`_noisy_blobs`)."""
    return _noisy_blobs


@pytest.fixture(scope="session")
def small_mlp():
    """Factory of tiny MLP estimators (see :func:`_small_mlp`)."""
    return _small_mlp


def _naive_influence(clf, X_t, y_t):
    """I(z_t, z_i) from the whole network's plain forward pass, once per (target, row) pair.

    The reference that the trunk-reusing, batched ``score_influence`` of every
    estimator family is checked against.
    """
    from tod_cleanse.layers import tod_context

    inputs = clf._validate_X(X_t, reset=False)
    y_enc = torch.as_tensor(np.searchsorted(clf.classes_, y_t))
    out = np.empty((len(y_t), len(clf.train_keys_)))
    clf.module_.eval()
    with torch.no_grad():
        for a in range(len(y_t)):
            xb = clf._batch(inputs, np.array([a]))
            for i, key in enumerate(clf.train_keys_):
                losses = []
                for mode in ("flipped", "seen"):
                    with tod_context(torch.tensor([key]), mode):
                        logits = clf.module_(xb)
                    losses.append(torch.nn.functional.cross_entropy(logits, y_enc[a:a + 1]))
                out[a, i] = float(losses[0] - losses[1])
    return out


@pytest.fixture(scope="session")
def naive_influence():
    """The per-pair reference influence (see :func:`_naive_influence`)."""
    return _naive_influence


def _assert_same_tod_network(with_members, without):
    """Two fits, with and without out-of-fold members, hold the same ToD network: every
    parameter and buffer outside the members, the self-influence and the full network's
    probabilities are bit-identical, and only ``oos_proba_`` differs."""
    assert without.module_.members is None
    tod = {_without_tap(with_members.module_, k): v
           for k, v in with_members.module_.state_dict().items() if not k.startswith("members.")}
    assert tod.keys() == without.module_.state_dict().keys()
    for name, value in tod.items():
        assert torch.equal(value, without.module_.state_dict()[name]), name
    np.testing.assert_array_equal(with_members.self_influence_, without.self_influence_)
    np.testing.assert_array_equal(with_members.train_proba_, without.train_proba_)
    assert not np.array_equal(with_members.oos_proba_, without.oos_proba_)


def _without_tap(net, key):
    """``key`` of a state dict as it reads without the trunk's ``FeatureTap`` (the
    parameter-free layer ``oos_stage`` inserts: the layers above it sit one index up)."""
    from tod_cleanse.estimators._network import FeatureTap

    taps = [i for i, m in enumerate(getattr(net.trunk, "children", list)())
            if isinstance(m, FeatureTap)]
    part, _, rest = key.partition(".")
    index, _, tail = rest.partition(".")
    if part != "trunk" or not taps or not index.isdigit() or int(index) < taps[0]:
        return key
    return f"trunk.{int(index) - 1}.{tail}"


@pytest.fixture(scope="session")
def assert_same_tod_network():
    """:func:`_assert_same_tod_network`, for the member tests of every family."""
    return _assert_same_tod_network
