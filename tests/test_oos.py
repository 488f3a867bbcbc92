"""Issue 11: the one-run out-of-sample view (calibrated oos_proba_) and the drop count."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.diagnostics import FitReliabilityWarning


@pytest.fixture(scope="module")
def noisy_digits():
    X, y = load_digits(return_X_y=True)
    X, y = X[:400].astype(np.float32), y[:400]
    rng = np.random.default_rng(0)
    flip = rng.random(400) < 0.2
    y_noisy = np.where(flip, (y + rng.integers(1, 10, 400)) % 10, y)
    return X, y_noisy


def _fit(X, y, calibrate: bool, **kw) -> ToDMLPClassifier:
    # The temperature is fitted on whichever out-of-sample view the network has; the
    # per-instance flipped sub-network (no members) is the over-confident one.
    params = dict(hidden_layer_sizes=(64,), max_epochs=5, random_state=0, verbose=0,
                  oos_folds=None)
    est = ToDMLPClassifier(**{**params, **kw})
    est._calibrate_oos = calibrate
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitReliabilityWarning)
        return est.fit(X, y)


def _nll(proba, labels):
    return float(-np.mean(np.log(proba[np.arange(len(labels)), labels] + 1e-12)))


def test_oos_temperature_lowers_out_of_sample_nll(noisy_digits):
    X, y = noisy_digits
    raw, cal = _fit(X, y, calibrate=False), _fit(X, y, calibrate=True)
    assert raw.oos_temperature_ == 1.0 and cal.oos_temperature_ != 1.0
    assert _nll(cal.oos_proba_, cal.y_train_) < _nll(raw.oos_proba_, raw.y_train_) - 1e-3
    np.testing.assert_allclose(cal.oos_proba_.sum(axis=1), 1.0, rtol=1e-5)


def test_calibration_changes_neither_predictions_nor_influence(noisy_digits):
    X, y = noisy_digits
    raw, cal = _fit(X, y, calibrate=False), _fit(X, y, calibrate=True)
    # one temperature: same out-of-sample argmax; self-influence keeps its meaning
    np.testing.assert_array_equal(raw.oos_proba_.argmax(1), cal.oos_proba_.argmax(1))
    np.testing.assert_array_equal(raw.self_influence_, cal.self_influence_)
    np.testing.assert_array_equal(raw.train_proba_, cal.train_proba_)
    np.testing.assert_array_equal(raw.score_influence(X[:3], y[:3]),
                                  cal.score_influence(X[:3], y[:3]))


def test_default_mlp_gives_a_strong_out_of_sample_view():
    # 600 digits rows, 15% flipped labels. The default's out-of-fold members (one whole
    # network per fold that never saw it, issue 11) classify the clean rows better than
    # the per-instance flipped sub-network of the same run and settings.
    X, y = load_digits(return_X_y=True)
    X, y = X[:600].astype(np.float32), y[:600]
    rng = np.random.default_rng(0)
    flip = rng.random(600) < 0.15
    y_noisy = np.where(flip, (y + rng.integers(1, 10, 600)) % 10, y)
    clean = ~flip
    acc = {}
    for folds in (5, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitReliabilityWarning)
            est = ToDMLPClassifier(random_state=0, verbose=0, oos_folds=folds).fit(X, y_noisy)
        acc[folds] = float(np.mean(est.oos_proba_[clean].argmax(1) == y_noisy[clean]))
    assert acc[None] > 0.85, acc
    assert acc[5] > acc[None] + 0.01, acc
