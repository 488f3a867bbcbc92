"""ToDVGGClassifier: image layouts, small images, trunk/head scoring, separation, pickle."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from tod_cleanse import ToDVGGClassifier
from tod_cleanse.layers import TurnOverDropout, tod_modules

TINY = dict(width_multiplier=1 / 32, classifier_width=16, max_epochs=2, batch_size=32,
            optimizer="adam", lr=1e-2, weight_decay=0.0, device="cpu", random_state=0,
            verbose=0)

# Checks that do not apply to a small CNN trained for two epochs on blob data
# read as 1-pixel-high images (how a 2-D X of non-square width is interpreted).
EXPECTED_FAILED = {
    "check_classifiers_train": "needs > 83% accuracy on blobs seen as 1-pixel-high images; "
                               "a 2-epoch CNN on padded 32x32 inputs does not reach it",
}


def _expected_failed(est):
    return EXPECTED_FAILED


@parametrize_with_checks([ToDVGGClassifier(**TINY)], expected_failed_checks=_expected_failed)
def test_sklearn_compatible(estimator, check):
    torch.set_num_threads(1)
    check(estimator)


def _images(n=64, size=12, channels=0, seed=0):
    """Two classes: a bright square top-left (0) or bottom-right (1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.integers(0, 60, size=(n, size, size) + ((channels,) if channels else ()),
                     dtype=np.uint8)
    h = size // 2
    for i, c in enumerate(y):
        sl = (slice(0, h), slice(0, h)) if c == 0 else (slice(h, size), slice(h, size))
        X[(i,) + sl] = 230
    return X, y


def test_layouts_give_the_same_model():
    X, y = _images(channels=3)
    nhwc = ToDVGGClassifier(**TINY).fit(X, y)
    nchw = ToDVGGClassifier(**TINY).fit(X.transpose(0, 3, 1, 2).copy(), y)
    as_float = ToDVGGClassifier(**TINY).fit(X.astype(np.float32) / 255, y)
    assert nhwc.image_shape_ == (3, 12, 12)
    np.testing.assert_array_equal(nhwc.self_influence_, nchw.self_influence_)
    np.testing.assert_allclose(nhwc.self_influence_, as_float.self_influence_, atol=1e-4)
    Xg, yg = _images()
    grey = ToDVGGClassifier(**TINY).fit(Xg, yg)
    flat = ToDVGGClassifier(**TINY).fit(Xg.reshape(len(Xg), -1), yg)
    last = ToDVGGClassifier(**TINY).fit(Xg[..., None], yg)
    assert grey.image_shape_ == flat.image_shape_ == last.image_shape_ == (1, 12, 12)
    np.testing.assert_array_equal(grey.oos_proba_, flat.oos_proba_)
    np.testing.assert_array_equal(grey.oos_proba_, last.oos_proba_)


def test_28x28_trains_without_resizing_and_learns():
    X, y = _images(n=96, size=28)
    clf = ToDVGGClassifier(**{**TINY, "max_epochs": 8, "width_multiplier": 1 / 16}).fit(X, y)
    assert clf.n_features_in_ == 28 * 28
    assert clf.score(X, y) > 0.9
    proba = clf.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.oos_proba_.shape == (96, 2) and clf.self_influence_.shape == (96,)
    with pytest.raises(ValueError, match="fitted on"):
        clf.predict(np.zeros((2, 32, 32), dtype=np.uint8))


def test_conv_tod_and_trunk_reuse_match_naive_scoring(naive_influence):
    X, y = _images(n=24)
    clf = ToDVGGClassifier(**{**TINY, "tod_conv_layers": 2}).fit(X, y, instance_keys=[
        f"img-{i}" for i in range(24)])
    conv_tod = [m for m in tod_modules(clf.module_) if m.dim == 1]
    assert len(conv_tod) == 2 and len(tod_modules(clf.module_.trunk)) == 0
    assert isinstance(clf.module_.head[0], TurnOverDropout)
    fast = clf.score_influence(X[:3], y[:3])
    np.testing.assert_allclose(fast, naive_influence(clf, X[:3], y[:3]), atol=1e-5)
    diag = np.array([naive_influence(clf, X[i:i + 1], y[i:i + 1])[0, i] for i in range(3)])
    np.testing.assert_allclose(clf.self_influence_[:3], diag, atol=1e-5)


def test_classifier_head_separation_is_exact():
    """Training steps on one instance leave its flipped head sub-network bit-identical."""
    X, y = _images(n=32)
    clf = ToDVGGClassifier(**TINY).fit(X, y)
    h = clf._trunk(clf._batch(clf._validate_X(X, reset=False), np.arange(8)))
    key = torch.tensor([int(clf.train_keys_[5])])
    before_flip = clf._head_logits(h, key, "flipped")
    before_seen = clf._head_logits(h, key, "seen")
    clf.optimizer_ = torch.optim.Adam(clf.module_.parameters(), lr=1e-2)  # fresh: no momentum
    xb = clf._batch(clf._validate_X(X[5:6], reset=False), np.array([0]))
    for _ in range(3):
        clf.train_step(xb, torch.tensor([1 - y[5]]), key)  # even a wrong label
    clf.module_.eval()
    assert torch.equal(clf._head_logits(h, key, "flipped"), before_flip)
    assert not torch.allclose(clf._head_logits(h, key, "seen"), before_seen)


def test_augmentation_only_flips_and_shifts_each_row():
    X, y = _images(n=6, size=10)
    clf = ToDVGGClassifier(**{**TINY, "augment": True}).fit(X, y)
    xb = torch.as_tensor(clf._validate_X(X, reset=False))
    torch.manual_seed(0)
    aug = clf._augment(xb)
    assert aug.shape == xb.shape
    padded = torch.nn.functional.pad(xb, (4, 4, 4, 4))
    size = xb.shape[-1]
    for i in range(len(xb)):  # row i is a flipped and/or shifted copy of row i, never another
        views = [img[:, dy:dy + size, dx:dx + size] for img in (padded[i], padded[i].flip(-1))
                 for dy in range(9) for dx in range(9)]
        assert any(torch.equal(aug[i], v) for v in views)


def test_pickle_round_trip_and_cpu_load():
    X, y = _images(n=32)
    clf = ToDVGGClassifier(**TINY).fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    assert clone.device_.type == "cpu"
    np.testing.assert_array_equal(clone.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(clone.score_influence(X[:2], y[:2]),
                                  clf.score_influence(X[:2], y[:2]))
    np.testing.assert_array_equal(clone.self_influence_, clf.self_influence_)


@pytest.mark.parametrize(
    ("X", "kwargs", "exc", "match"),
    [
        (np.zeros((4, 3, 8, 3)), {}, ValueError, "channel axis"),
        (np.full((4, 8, 8), np.nan), {}, ValueError, "NaN"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]]), {}, ValueError, "numbers"),
        (np.zeros(4), {}, ValueError, "2-D"),
        (np.zeros((4, 8, 8)), {"arch": "resnet"}, ValueError, "arch"),
        (np.zeros((4, 8, 8)), {"tod_conv_layers": 99}, ValueError, "tod_conv_layers"),
        (np.zeros((4, 8, 8, 3)), {"data_format": "nhwc"}, ValueError, "data_format"),
        (np.zeros((4, 10)), {"image_shape": (3, 3)}, ValueError, "image_shape"),
    ],
)
def test_bad_input_is_named(X, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ToDVGGClassifier(**{**TINY, **kwargs}).fit(X, [0, 1, 0, 1])
