"""Fit-reliability checks and calibration of the out-of-sample view.

Two things live here, both about how far the one-run out-of-sample view of a
fitted ToD estimator can be trusted:

* :func:`fit_temperature` fits one temperature on the out-of-sample view's own
  rows (out-of-fold members or the flipped sub-network; temperature scaling, Guo et
  al. 2017 [2]_); the estimator applies it to ``oos_proba_`` before cleanlab's thresholds see it.
* :func:`fit_warnings` / :func:`warn_if_unreliable` look at a fitted estimator
  and say, in words, why its scores should not be trusted: training loss still
  high, out-of-sample accuracy near chance, or an estimated number of label
  issues above :data:`MAX_ISSUE_FRACTION`. The estimators call
  :func:`warn_if_unreliable` at the end of ``fit``, so the warnings reach
  whoever fits them (the Parquet cleaner records them in ``summary.json``).

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
.. [2] C. Guo, G. Pleiss, Y. Sun, K. Weinberger. *On Calibration of Modern
   Neural Networks*. ICML 2017.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "FitReliabilityWarning",
    "MAX_ISSUE_FRACTION",
    "MAX_LOSS_FRACTION",
    "MIN_ACCURACY_GAIN",
    "fit_temperature",
    "fit_warnings",
    "softmax_temperature",
    "warn_if_unreliable",
]

#: Final training loss above this fraction of ``log(n_classes)`` (the loss of a
#: uniform guess) means the network has not fitted its training data.
MAX_LOSS_FRACTION = 0.5
#: Out-of-sample accuracy on the given labels must beat the majority-class rate
#: by this share of the distance to 1; less is "near chance".
MIN_ACCURACY_GAIN = 0.2
#: An estimated share of wrong labels above this is not believable: the labels
#: would then disagree with themselves more often than not.
MAX_ISSUE_FRACTION = 0.5


class FitReliabilityWarning(UserWarning):
    """The fit looks unreliable; its influence scores and drop count may mislead."""


def softmax_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` in float64.

    Examples
    --------
    >>> softmax_temperature(np.array([[0.0, np.log(3.0)]]), 1.0).round(2).tolist()
    [[0.25, 0.75]]
    """
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(labels.shape[0]), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature ``T`` that minimises the mean NLL of ``softmax(logits / T)``.

    Applied to the out-of-sample logits of the training rows (out-of-fold members or
    the flipped sub-network, which never trained on them), it is the usual
    temperature scaling [2]_ with the out-of-sample rows as the calibration set: no
    held-out data needed.

    Parameters
    ----------
    logits : ndarray of shape (n, k)
        Out-of-sample logits.
    labels : ndarray of int, shape (n,)
        Encoded given labels.
    bounds : (float, float), default=(0.05, 20.0)
        Search interval of ``T``.

    Returns
    -------
    float
        The fitted temperature (``> 1`` softens over-confident probabilities).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 500)
    >>> logits = np.where(np.eye(2)[y] > 0, 5.0, 0.0)   # right label, far too sure
    >>> flip = rng.random(500) < 0.2                      # ... but wrong on 20%
    >>> y_given = np.where(flip, 1 - y, y)
    >>> fit_temperature(logits, y_given) > 1.5
    True
    """
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"logits must have shape (n, k) with n = len(labels) = {labels.shape[0]}, "
            f"got {logits.shape}."
        )
    if not np.all(np.isfinite(logits)):
        raise ValueError("logits contains NaN or infinite values.")
    if logits.shape[0] == 0:
        return 1.0
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(lambda t: _nll(logits, labels, math.exp(t)), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-3})
    return float(math.exp(res.x))


def fit_warnings(estimator: Any) -> list[str]:
    """Reasons, in words, why a fitted ToD estimator's scores may mislead.

    Checks (thresholds are the module constants):

    * the last epoch's mean training loss is above ``MAX_LOSS_FRACTION * log(k)``
      (``k`` classes): the network is under-trained;
    * the out-of-sample accuracy on the given labels beats the majority-class
      rate by less than ``MIN_ACCURACY_GAIN`` of the way to 1: near chance;
    * the estimated number of label issues (the ``"auto"`` drop count:
      :func:`tod_cleanse.scores.estimate_issue_count` on ``train_proba_`` and
      ``oos_proba_``) is
      above ``MAX_ISSUE_FRACTION`` of the rows.

    Parameters
    ----------
    estimator : BaseToDClassifier
        A fitted estimator (with ``history_``, ``y_train_``, ``oos_proba_``,
        ``train_proba_``).

    Returns
    -------
    list of str
        Empty when nothing looks wrong.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=1, lr=1e-4,
    ...                            random_state=0, verbose=0).fit(X, y)
    >>> any("training loss" in r for r in fit_warnings(est))
    True
    """
    from .scores import estimate_issue_count

    reasons: list[str] = []
    labels = np.asarray(estimator.y_train_, dtype=np.int64)
    n, k = labels.shape[0], len(estimator.classes_)
    history = getattr(estimator, "history_", None) or []
    if history:
        loss, bound = float(history[-1]["train_loss"]), MAX_LOSS_FRACTION * math.log(k)
        if loss > bound:
            reasons.append(
                f"training loss still high: {loss:.3f} after {len(history)} epoch(s), above "
                f"{bound:.3f} (half the loss of a uniform guess over {k} classes); "
                "train longer (max_epochs) or raise lr"
            )
    proba = getattr(estimator, "oos_proba_", None)
    if proba is None or n == 0:
        return reasons
    acc = float(np.mean(np.argmax(proba, axis=1) == labels))
    chance = float(np.bincount(labels, minlength=k).max() / n)
    floor = chance + MIN_ACCURACY_GAIN * (1.0 - chance)
    if acc < floor:
        reasons.append(
            f"out-of-sample accuracy near chance: {acc:.3f} on the given labels, below "
            f"{floor:.3f} (majority-class rate {chance:.3f}); the flipped sub-networks "
            "cannot tell the classes apart"
        )
    # the count ToDCleanser's drop_fraction="auto" uses (both views)
    count_proba = getattr(estimator, "train_proba_", None)
    count = (estimate_issue_count(proba, labels) if count_proba is None
             else estimate_issue_count(count_proba, labels, proba))
    if count > MAX_ISSUE_FRACTION * n:
        reasons.append(
            f"estimated label issues above the bound: {count} of {n} rows "
            f"({count / n:.0%}, bound {MAX_ISSUE_FRACTION:.0%}); an estimate this high "
            "says more about the fit than about the labels"
        )
    return reasons


def warn_if_unreliable(estimator: Any) -> list[str]:
    """Issue one :class:`FitReliabilityWarning` per reason of :func:`fit_warnings`.

    Parameters
    ----------
    estimator : BaseToDClassifier
        A fitted estimator.

    Returns
    -------
    list of str
        The reasons (also logged), empty when the fit looks sound.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=30, lr=0.01,
    ...                        random_state=0, verbose=0).fit(X, y)
    >>> warn_if_unreliable(est)
    []
    """
    reasons = fit_warnings(estimator)
    name = type(estimator).__name__
    for reason in reasons:
        logger.warning("%s: unreliable fit: %s", name, reason)
        warnings.warn(f"{name}: the fit looks unreliable: {reason}.", FitReliabilityWarning,
                      stacklevel=4)
    return reasons
