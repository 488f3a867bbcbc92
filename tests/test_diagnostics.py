"""Fit-reliability warnings and the out-of-sample temperature (tod_cleanse.diagnostics)."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from tod_cleanse.diagnostics import (
    MAX_ISSUE_FRACTION,
    FitReliabilityWarning,
    fit_temperature,
    fit_warnings,
    softmax_temperature,
    warn_if_unreliable,
)


def _nll(logits, labels, t):
    p = softmax_temperature(logits, t)
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def _fitted(labels, proba, losses=(0.1,), n_classes=None, full=None):
    """A stand-in for a fitted estimator: just the attributes the checks read."""
    k = n_classes or proba.shape[1]
    full = proba if full is None else full
    return SimpleNamespace(y_train_=np.asarray(labels), classes_=np.arange(k),
                           oos_proba_=np.asarray(proba, dtype=float),
                           train_proba_=np.asarray(full, dtype=float),
                           history_=[{"epoch": i + 1, "train_loss": v}
                                     for i, v in enumerate(losses)])


def test_fit_temperature_softens_overconfident_logits_and_lowers_nll():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    logits = 6.0 * np.eye(3)[y] + rng.normal(0, 0.5, (600, 3))
    given = np.where(rng.random(600) < 0.25, (y + 1) % 3, y)  # 25% wrong labels
    t = fit_temperature(logits, given)
    assert t > 1.5
    assert _nll(logits, given, t) < _nll(logits, given, 1.0) - 0.1


def test_fit_temperature_sharpens_underconfident_logits():
    y = np.repeat([0, 1], 100)
    logits = 0.2 * np.eye(2)[y]  # always right, barely sure
    t = fit_temperature(logits, y)
    assert t < 0.2
    assert _nll(logits, y, t) < _nll(logits, y, 1.0)


def test_fit_temperature_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="logits must have shape"):
        fit_temperature(np.zeros((3, 2)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="logits contains NaN"):
        fit_temperature(np.array([[0.0, np.nan]]), np.array([0]))


def test_softmax_temperature_rows_sum_to_one_and_keep_argmax():
    logits = np.array([[1.0, 3.0, -2.0], [500.0, 0.0, 1.0]])
    for t in (0.1, 1.0, 7.0):
        p = softmax_temperature(logits, t)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert p.argmax(axis=1).tolist() == [1, 0]


def test_sound_fit_has_no_reasons():
    y = np.repeat([0, 1, 2], 50)
    proba = np.full((150, 3), 0.05)
    proba[np.arange(150), y] = 0.9
    assert fit_warnings(_fitted(y, proba, losses=(1.0, 0.2))) == []


def test_high_training_loss_is_named():
    y = np.repeat([0, 1, 2], 50)
    proba = np.full((150, 3), 0.05)
    proba[np.arange(150), y] = 0.9
    reasons = fit_warnings(_fitted(y, proba, losses=(1.09, 1.05)))
    assert len(reasons) == 1
    assert "training loss still high" in reasons[0]
    assert "1.050" in reasons[0] and f"{0.5 * math.log(3):.3f}" in reasons[0]


def test_near_chance_oos_accuracy_is_named():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 400)
    proba = rng.dirichlet(np.ones(4), 400)  # predictions unrelated to the labels
    reasons = fit_warnings(_fitted(y, proba))
    assert any("out-of-sample accuracy near chance" in r for r in reasons)


def test_issue_count_above_bound_is_named():
    # the flipped sub-networks confidently disagree with 70% of the labels
    rng = np.random.default_rng(2)
    truth = np.repeat([0, 1, 2], 100)
    y = np.where(rng.random(300) < 0.7, (truth + 1) % 3, truth)
    proba = np.full((300, 3), 0.02)
    proba[np.arange(300), truth] = 0.96
    reasons = fit_warnings(_fitted(y, proba))
    bound = f"{MAX_ISSUE_FRACTION:.0%}"
    assert any("estimated label issues above the bound" in r and bound in r for r in reasons)


def test_issue_bound_reads_the_auto_count_of_both_views():
    # one view disagrees with most labels, the other agrees: the "auto" count (both
    # views must disagree) stays low, whichever view it is
    y = np.repeat([0, 1, 2], 100)
    wrong = np.full((300, 3), 0.02)
    wrong[np.arange(300), (y + 1) % 3] = 0.96
    right = np.full((300, 3), 0.02)
    right[np.arange(300), y] = 0.96
    for oos, full in ((wrong, right), (right, wrong)):
        reasons = fit_warnings(_fitted(y, oos, full=full))
        assert not any("above the bound" in r for r in reasons)
    assert any("above the bound" in r for r in fit_warnings(_fitted(y, wrong, full=wrong)))


def test_warn_if_unreliable_raises_one_userwarning_per_reason():
    y = np.repeat([0, 1], 50)
    proba = np.full((100, 2), 0.5)
    with pytest.warns(FitReliabilityWarning) as record:
        reasons = warn_if_unreliable(_fitted(y, proba, losses=(0.69,)))
    assert len(record) == len(reasons) >= 2
    assert issubclass(record[0].category, UserWarning)
    assert "the fit looks unreliable: training loss still high" in str(record[0].message)


def test_undertrained_estimator_warns_during_fit():
    from sklearn.datasets import load_iris

    from tod_cleanse import ToDMLPClassifier

    X, y = load_iris(return_X_y=True)
    est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=1, lr=1e-5, random_state=0,
                           verbose=0)
    with pytest.warns(FitReliabilityWarning) as record:
        est.fit(X, y)
    messages = [str(w.message) for w in record]
    assert any("training loss still high" in m for m in messages), messages


def test_well_trained_estimator_fits_silently():
    from sklearn.datasets import load_iris

    from tod_cleanse import ToDMLPClassifier

    X, y = load_iris(return_X_y=True)
    est = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=30, lr=0.01, random_state=0,
                           verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FitReliabilityWarning)
        est.fit(X, y)
