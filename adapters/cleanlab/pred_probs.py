"""One-run ``pred_probs`` for cleanlab, and ToD scores on cleanlab's ``[0, 1]`` scale.

:func:`tod_pred_probs` is the estimator's out-of-sample prediction on every training row
(``oos_proba_``: the out-of-fold member of its fold in ``ToDMLPClassifier``, else the
flipped sub-network of turn-over dropout [1]_): a stand-in for the K-fold cross-validated
``pred_probs`` that ``cleanlab.filter.find_label_issues`` expects, from one training run.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of Influence of a
   Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata

from tod_cleanse.estimators.base import BaseToDClassifier

from ._common import check_fitted_tod

__all__ = ["tod_labels", "tod_pred_probs", "tod_quality_scores"]


def tod_quality_scores(scores: Any) -> np.ndarray:
    """Map signed ToD scores onto cleanlab's convention: ``[0, 1]``, lower = more harmful.

    The mapping is rank-based (a monotone transform that ignores the scale of the
    signed scores, so it means the same for every cleansing method):
    ``quality_i = (r_i - 1) / (n - 1)`` with ``r_i`` the rank of row ``i`` when the
    signed scores are sorted from most negative (``r = 1``) upwards, ties sharing
    their average rank. The most harmful row gets 0, the least harmful 1, and
    ``quality_i`` is the fraction of the other rows that look more harmful than
    row ``i``. A single row gets 1.

    Parameters
    ----------
    scores : array-like of shape (n,)
        Signed scores, more negative = more harmful (as ``ToDCleanser.scores_``).

    Returns
    -------
    ndarray of float64, shape (n,)

    Examples
    --------
    >>> tod_quality_scores([-3.0, 0.5, -1.0, 2.0]).round(3).tolist()
    [0.0, 0.667, 0.333, 1.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    if n == 1:
        return np.ones(1)
    return (rankdata(s, method="average") - 1.0) / max(n - 1, 1)


def tod_labels(estimator: BaseToDClassifier) -> np.ndarray:
    """Encoded training labels matching the columns of :func:`tod_pred_probs`.

    cleanlab wants labels ``0..K-1`` where label ``j`` is column ``j`` of
    ``pred_probs``; column ``j`` of a ToD estimator's probabilities is class
    ``estimator.classes_[j]``, so these are the training labels encoded by
    ``classes_`` (``estimator.classes_[tod_labels(estimator)]`` gives back ``y``).

    Parameters
    ----------
    estimator : BaseToDClassifier
        A fitted ToD estimator.

    Returns
    -------
    ndarray of int64, shape (n_train,)

    Examples
    --------
    >>> import numpy as np
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X = np.r_[np.zeros((20, 2)), np.ones((20, 2))]
    >>> y = np.array(["cat"] * 20 + ["dog"] * 20)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=10, lr=0.05,
    ...                        random_state=0, verbose=0).fit(X, y)
    >>> tod_labels(est)[[0, -1]].tolist()
    [0, 1]
    """
    est = check_fitted_tod(estimator, "tod_labels")
    return np.asarray(est.y_train_, dtype=np.int64).copy()


def _check_cleanlab_labels(est: BaseToDClassifier, labels: Any) -> None:
    lab = np.asarray(labels)
    n = est.y_train_.shape[0]
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(
            f"labels must have one entry per training row of the estimator ({n}), "
            f"got shape {lab.shape}."
        )
    if lab.dtype.kind in "iu" and np.array_equal(lab, est.y_train_):
        return
    given = est.classes_[est.y_train_]
    same_values = np.array_equal(np.asarray(given, dtype=object), np.asarray(lab, dtype=object))
    if same_values:
        raise ValueError(
            "labels are the original class values, but cleanlab needs labels encoded "
            "0..K-1 in the column order of pred_probs (column j is estimator.classes_[j] = "
            f"{est.classes_.tolist()!r}); pass labels=tod_labels(estimator)."
        )
    k = len(est.classes_)
    if lab.dtype.kind in "iu" and lab.min(initial=0) >= 0 and lab.max(initial=0) < k:
        differ = int((lab != est.y_train_).sum())
        raise ValueError(
            f"labels do not follow the class order of pred_probs: {differ} of {n} labels differ "
            "from the estimator's encoded training labels (column j of pred_probs is "
            f"estimator.classes_[j] = {est.classes_.tolist()!r}). Encode labels with "
            "np.searchsorted(estimator.classes_, y), or pass labels=tod_labels(estimator)."
        )
    raise ValueError(
        f"labels differ from the labels the estimator was fitted on (classes "
        f"{est.classes_.tolist()!r}); fit the estimator on these rows and labels, then pass "
        "labels=tod_labels(estimator)."
    )


def tod_pred_probs(estimator: BaseToDClassifier, labels: Any = None) -> np.ndarray:
    """Out-of-sample ``pred_probs`` for cleanlab from one ToD training run.

    Row ``i`` is ``oos_proba_[i]``: the prediction on training row ``i`` of a network
    that never trained on it (the out-of-fold member of its fold, or the flipped
    sub-network) [1]_: a one-run stand-in for the K-fold
    cross-validated ``pred_probs`` that ``cleanlab.filter.find_label_issues``,
    ``cleanlab.rank.get_label_quality_scores`` and ``Datalab.find_issues`` expect.

    Column ``j`` is class ``estimator.classes_[j]`` (sorted, as ``np.unique`` and
    Datalab order them), so the matching cleanlab labels are
    :func:`tod_labels` ``(estimator)``.

    Parameters
    ----------
    estimator : BaseToDClassifier
        A fitted ToD estimator (``turn_over=True``).
    labels : array-like of shape (n_train,), optional
        The labels you will give cleanlab; if passed, they are checked against the
        column order (a ``ValueError`` says how to fix a mismatch).

    Returns
    -------
    ndarray of float64, shape (n_train, n_classes)
        A new array whose rows sum to 1.

    Examples
    --------
    >>> import numpy as np
    >>> from cleanlab.filter import find_label_issues
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(64,), max_epochs=30, random_state=0,
    ...                        verbose=0).fit(X, y_noisy)
    >>> pred_probs = tod_pred_probs(est, labels=y_noisy)
    >>> pred_probs.shape
    (150, 3)
    >>> issues = find_label_issues(y_noisy, pred_probs, n_jobs=1)
    >>> int(issues[:5].sum()) >= 4
    True
    """
    est = check_fitted_tod(estimator, "tod_pred_probs")
    if labels is not None:
        _check_cleanlab_labels(est, labels)
    proba = np.asarray(est.oos_proba_, dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True)
