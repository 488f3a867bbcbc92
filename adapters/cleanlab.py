"""cleanlab plug-in: a Datalab issue type, one-run ``pred_probs``, a side-by-side comparison.

Three ways to use turn-over dropout (ToD) [1]_ from cleanlab [2]_:

* ``"tod_influence"``, a Datalab issue type (:class:`ToDInfluenceIssueManager`,
  registered on import of this module)::

      Datalab(df, label_name="y").find_issues(
          issue_types={"tod_influence": {"estimator": ToDMLPClassifier(), "features": X}})

* :func:`tod_pred_probs`: the out-of-sample probabilities of a fitted ToD estimator
  (the flipped sub-network on each training row) for ``cleanlab.filter.find_label_issues``,
  ``cleanlab.rank.get_label_quality_scores`` or ``Datalab.find_issues(pred_probs=...)``,
  in place of K-fold ``cross_val_predict`` (one training instead of K).

* :func:`compare_finders` and ``tod-cleanse compare``: ToD cleansing methods next to
  cleanlab's ``find_label_issues`` on K-fold cross-validated ``pred_probs`` and on the ToD
  one-run ``pred_probs``, on the same data and model family.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of Influence of a
   Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
.. [2] C. Northcutt, L. Jiang, I. Chuang. *Confident Learning: Estimating Uncertainty in
   Dataset Labels*. JAIR 70, 2021.
"""

from __future__ import annotations

import argparse
import logging
import numbers
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from cleanlab.datalab.internal.issue_manager import IssueManager
from cleanlab.datalab.internal.issue_manager_factory import REGISTRY, register
from cleanlab.datalab.internal.task import Task
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from scipy.stats import rankdata
from sklearn.base import clone
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from tod_cleanse.cleanser import ToDCleanser, fitted_scores
from tod_cleanse.estimators.base import BaseToDClassifier
from tod_cleanse.scores import (
    DEFAULT_METHOD,
    METHODS,
    estimate_issue_count,
    flag_issues,
)

logger = logging.getLogger(__name__)

__all__ = [
    "ToDInfluenceIssueManager",
    "tod_pred_probs",
    "tod_labels",
    "tod_quality_scores",
    "compare_finders",
    "noisy_digits",
    "markdown_table",
    "add_arguments",
    "run",
]

ISSUE_NAME = "tod_influence"


# --------------------------------------------------------------------------- helpers
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


def _rank_and_flag(
    scores: np.ndarray,
    method: str,
    drop_fraction: float | str,
    threshold: float | None,
    count_proba: np.ndarray | None,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = most harmful) and flagged rows, by the same rule as :class:`ToDCleanser`.

    Used when the estimator is already fitted (``ToDCleanser.fit`` always trains),
    so that one training run serves every method; a test checks that it agrees
    with ``ToDCleanser.issues_``.
    """
    if threshold is None and drop_fraction == "auto" and count_proba is None:
        raise ValueError(
            "drop_fraction='auto' needs out-of-sample probabilities (pred_probs= or "
            "estimator=); pass drop_fraction=<float> or threshold=<float> instead."
        )
    auto_count = None if count_proba is None else estimate_issue_count(count_proba, labels)
    return flag_issues(scores, drop_fraction=drop_fraction, threshold=threshold,
                       auto_count=auto_count)


def _check_tod_estimator(estimator: Any, name: str = "estimator") -> BaseToDClassifier:
    if not isinstance(estimator, BaseToDClassifier):
        raise TypeError(
            f"{name} must be a ToD estimator (ToDMLPClassifier, ToDBertClassifier, "
            f"ToDVGGClassifier), got {type(estimator).__name__}."
        )
    if not getattr(estimator, "turn_over", True):
        raise ValueError(f"{name} has turn_over=False: ToD scores need turn-over dropout.")
    return estimator


def _check_fitted_tod(estimator: Any, what: str) -> BaseToDClassifier:
    est = _check_tod_estimator(estimator)
    check_is_fitted(est, msg=f"{what} needs a fitted ToD estimator: call fit(X, y) first.")
    if not hasattr(est, "oos_proba_"):
        raise ValueError(f"{what}: estimator has no oos_proba_ (was it fitted with turn_over?).")
    return est


def _check_scores(scores: Any, n: int, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) (one per example), got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return arr


def _check_proba(proba: Any, n: int, k: int, name: str = "pred_probs") -> np.ndarray:
    arr = np.asarray(proba)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if arr.ndim != 2 or arr.shape != (n, k):
        raise ValueError(
            f"{name} must have shape ({n}, {k}) (examples x classes), got {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1 + 1e-6:
        raise ValueError(f"{name} must hold probabilities in [0, 1].")
    return arr


# --------------------------------------------------------------------- pred_probs
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
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=2, random_state=0,
    ...                        verbose=0).fit(X, y)
    >>> tod_labels(est)[[0, -1]].tolist()
    [0, 1]
    """
    est = _check_fitted_tod(estimator, "tod_labels")
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

    Row ``i`` is the flipped sub-network's prediction on training row ``i`` (the
    sub-network that never trained on it) [1]_: a one-run stand-in for the K-fold
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
    est = _check_fitted_tod(estimator, "tod_pred_probs")
    if labels is not None:
        _check_cleanlab_labels(est, labels)
    proba = np.asarray(est.oos_proba_, dtype=np.float64)
    return proba / proba.sum(axis=1, keepdims=True)


# -------------------------------------------------------------------- Datalab
class ToDInfluenceIssueManager(IssueManager):
    """Datalab issue type ``"tod_influence"``: harmful training rows found by ToD [1]_.

    Registered for classification when :mod:`tod_cleanse.adapters.cleanlab` is
    imported. Datalab passes the dictionary of ``issue_types["tod_influence"]`` to
    both the constructor and :meth:`find_issues`; the constructor validates every
    argument before any work and raises a ``ValueError``/``TypeError`` that
    reaches the caller. Errors during the work itself are caught by Datalab (it
    prints one line and moves on), so this manager also logs them and raises a
    ``RuntimeWarning`` with the message.

    Parameters
    ----------
    datalab : cleanlab.Datalab
    estimator : BaseToDClassifier, optional
        A ToD estimator. Unfitted: it is trained (once, via :class:`ToDCleanser`)
        on ``features`` and the Datalab's labels. Fitted: it must have been fitted
        on the Datalab's rows, in order, with the Datalab's labels (original or
        encoded); nothing is retrained.
    features : array-like, optional
        Model inputs, one per Datalab row; needed with an unfitted ``estimator``.
    scores : array-like of shape (n,), optional
        Precomputed signed scores (more negative = more harmful, as
        ``ToDCleanser.scores_``), instead of ``estimator``.
    pred_probs : array-like of shape (n, K), optional
        With ``scores``: out-of-sample probabilities (e.g. :func:`tod_pred_probs`),
        used for the predicted-label column and ``drop_fraction="auto"``.
    method : str, optional
        Cleansing method (``tod_cleanse.scores.METHODS``), as in :class:`ToDCleanser`;
        default ``tod_cleanse.scores.DEFAULT_METHOD``.
    drop_fraction : float or "auto", default="auto"
        As in :class:`ToDCleanser`: ``"auto"`` flags as many rows as confident
        learning finds off the diagonal of the confident joint of the out-of-sample
        probabilities; a float flags that fraction of rows (lowest scores).
    threshold : float, optional
        Flag every row whose signed score is below this value.
    eval_set : tuple (X_val, y_val), optional
        Validation data for ``method="eval_influence"``.

    Notes
    -----
    Columns of ``lab.get_issues("tod_influence")``:

    * ``is_tod_influence_issue``: flagged rows.
    * ``tod_influence_score``: ``[0, 1]``, lower = more harmful, a rank-based map of
      the signed score (see :func:`tod_quality_scores`).
    * ``tod_influence_raw_score``: the signed score of ``method``.
    * ``tod_influence_predicted_label``: the out-of-sample (flipped sub-network)
      prediction, as a class name; ``None`` with ``scores`` and no ``pred_probs``.

    The summary score is ``1 - (flagged rows) / n``, the convention of cleanlab's
    label health score.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from cleanlab import Datalab
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> lab = Datalab(pd.DataFrame({"label": y_noisy}), label_name="label", verbosity=0)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(64,), max_epochs=30, random_state=0,
    ...                        verbose=0)
    >>> lab.find_issues(issue_types={"tod_influence": {"estimator": est, "features": X}})
    >>> issues = lab.get_issues("tod_influence")
    >>> sorted(issues.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['is_tod_influence_issue', 'tod_influence_predicted_label', 'tod_influence_raw_score',
     'tod_influence_score']
    >>> int(issues["is_tod_influence_issue"][:5].sum()) >= 4
    True
    """

    description: ClassVar[str] = (
        "Examples whose given label the model could not learn from the other examples, found "
        "by turn-over dropout (ToD; Kobayashi et al., SustaiNLP 2020) from one training run: "
        "every example trains only its own dropout sub-network, so the flipped sub-network "
        "never saw it and gives an out-of-sample prediction and an influence estimate.\n\n"
        "The raw score (tod_influence_raw_score) is signed, more negative = more harmful, from "
        "the chosen method (e.g. full_likelihood = log p_full(given label), oos_likelihood = "
        "log p_flipped(given label), self_influence "
        "= -I(z_i, z_i), eval_influence = influence on a validation set). "
        "tod_influence_score maps it onto [0, 1] by rank (0 = most harmful row). "
        "tod_influence_predicted_label is the out-of-sample predicted class."
    )
    issue_name: ClassVar[str] = ISSUE_NAME
    verbosity_levels: ClassVar[dict[int, list[str]]] = {
        0: [],
        1: ["method", "drop_rule"],
        2: ["training_runs", "score_mapping"],
        3: ["raw_score_summary"],
    }

    def __init__(
        self,
        datalab: Any,
        estimator: BaseToDClassifier | None = None,
        features: Any = None,
        scores: Any = None,
        pred_probs: Any = None,
        method: str | None = None,
        drop_fraction: float | str = "auto",
        threshold: float | None = None,
        eval_set: tuple[Any, Any] | None = None,
        **_: Any,
    ) -> None:
        super().__init__(datalab)
        self._config = self._validate(
            estimator=estimator, features=features, scores=scores, pred_probs=pred_probs,
            method=method, drop_fraction=drop_fraction, threshold=threshold, eval_set=eval_set,
        )

    # ---------------------------------------------------------------- checks
    def _validate(
        self,
        *,
        estimator: Any,
        features: Any,
        scores: Any,
        pred_probs: Any,
        method: str | None,
        drop_fraction: Any,
        threshold: Any,
        eval_set: Any,
    ) -> dict[str, Any]:
        lab = self.datalab
        prefix = "issue type 'tod_influence': "
        try:
            if not getattr(lab, "has_labels", False):
                raise ValueError("the Datalab has no labels; pass label_name= to Datalab.")
            labels = np.asarray(lab.labels, dtype=np.int64)
            n = labels.shape[0]
            class_names = np.asarray(lab.class_names, dtype=object)
            if (estimator is None) == (scores is None):
                raise ValueError(
                    "pass exactly one of estimator= (a ToD estimator, with features= when it "
                    "is not fitted) or scores= (precomputed signed scores), got "
                    + ("both." if estimator is not None else "neither.")
                )
            cfg: dict[str, Any] = {
                "labels": labels, "class_names": class_names, "n": n,
                "drop_fraction": drop_fraction, "threshold": threshold, "eval_set": eval_set,
            }
            if scores is not None:
                if eval_set is not None:
                    raise ValueError("eval_set= is only used with estimator=, not scores=.")
                if features is not None:
                    warnings.warn(
                        "tod_influence: features= is ignored when scores= is given.",
                        UserWarning, stacklevel=4,
                    )
                # ToDCleanser holds the one validation of drop_fraction / threshold.
                ToDCleanser(drop_fraction=drop_fraction, threshold=threshold)._check_params()
                cfg["scores"] = _check_scores(scores, n)
                cfg["pred_probs"] = (
                    None if pred_probs is None
                    else _check_proba(pred_probs, n, len(class_names))
                )
                if cfg["pred_probs"] is None and threshold is None and drop_fraction == "auto":
                    raise ValueError(
                        "drop_fraction='auto' needs pred_probs= (out-of-sample probabilities) "
                        "with scores=; pass pred_probs=, drop_fraction=<float> or threshold=."
                    )
                cfg["method"] = method or "precomputed"
                return cfg
            _check_tod_estimator(estimator)
            cfg["method"] = method or DEFAULT_METHOD
            if pred_probs is not None:
                raise ValueError("pred_probs= is only used with scores=, not estimator=.")
            ToDCleanser(estimator=estimator, method=cfg["method"], drop_fraction=drop_fraction,
                        threshold=threshold, eval_set=eval_set)._check_params()
            cfg["estimator"] = estimator
            if _is_fitted(estimator):
                cfg["encoded"] = self._check_fitted_matches(estimator, labels, class_names)
                cfg["fitted"] = True
            else:
                if features is None:
                    raise ValueError(
                        "an unfitted estimator needs features= (the model inputs of every "
                        "Datalab row) to be trained on."
                    )
                try:
                    n_feat = len(features)
                except TypeError:
                    raise TypeError(
                        f"features must be array-like with one entry per row, got "
                        f"{type(features).__name__}."
                    ) from None
                if n_feat != n:
                    raise ValueError(f"features has {n_feat} rows but the Datalab has {n}.")
                cfg["features"] = features
                cfg["fitted"] = False
            return cfg
        except (ValueError, TypeError) as exc:
            msg = prefix + str(exc)
            logger.error(msg)
            raise type(exc)(msg) from None

    @staticmethod
    def _check_fitted_matches(
        est: BaseToDClassifier, labels: np.ndarray, class_names: np.ndarray
    ) -> bool:
        """Check a fitted estimator against the Datalab; True if fitted on encoded labels."""
        if not hasattr(est, "oos_proba_"):
            raise ValueError("estimator is fitted but has no oos_proba_; refit it with ToD.")
        n_train = est.y_train_.shape[0]
        if n_train != labels.shape[0]:
            raise ValueError(
                f"estimator was fitted on {n_train} rows but the Datalab has {labels.shape[0]}; "
                "fit it on the Datalab's rows in order, or pass it unfitted with features=."
            )
        given = np.asarray(est.classes_[est.y_train_], dtype=object)
        original = class_names[labels]
        if np.array_equal(given, original):
            return False
        if np.array_equal(given, labels.astype(object)):
            return True
        differ = int(np.sum(given != original))
        raise ValueError(
            f"estimator was fitted on other labels than the Datalab's ({differ} of "
            f"{labels.shape[0]} rows differ); fit it on the Datalab's label column, in row "
            "order, or pass it unfitted with features=."
        )

    # ------------------------------------------------------------------ work
    def find_issues(self, **kwargs: Any) -> None:
        """Score every row and fill ``issues``, ``summary`` and ``info``.

        Parameters
        ----------
        **kwargs
            The same arguments as the constructor (Datalab passes them to both);
            when given, they are validated again and replace the stored ones.
        """
        keys = ("estimator", "features", "scores", "pred_probs", "method", "drop_fraction",
                "threshold", "eval_set")
        try:
            if any(k in kwargs for k in keys):
                merged = {
                    "estimator": None, "features": None, "scores": None, "pred_probs": None,
                    "method": None, "drop_fraction": "auto", "threshold": None, "eval_set": None,
                }
                merged.update({k: v for k, v in kwargs.items() if k in keys})
                self._config = self._validate(**merged)
            self._find_issues(self._config)
        except Exception as exc:  # Datalab swallows it: make it visible first.
            msg = f"issue type 'tod_influence' failed: {type(exc).__name__}: {exc}"
            logger.error(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            raise

    def _find_issues(self, cfg: dict[str, Any]) -> None:
        labels, class_names, n = cfg["labels"], cfg["class_names"], cfg["n"]
        training_runs = 0
        estimator = None
        if "scores" in cfg:
            scores = cfg["scores"]
            proba = cfg["pred_probs"]
            rank, is_issue = _rank_and_flag(scores, cfg["method"], cfg["drop_fraction"],
                                             cfg["threshold"], proba, labels)
            predicted = None if proba is None else class_names[np.argmax(proba, axis=1)]
        elif cfg["fitted"]:
            estimator = cfg["estimator"]
            scores = fitted_scores(estimator, cfg["method"], cfg["eval_set"])
            rank, is_issue = _rank_and_flag(scores, cfg["method"], cfg["drop_fraction"],
                                             cfg["threshold"], estimator.train_proba_,
                                             estimator.y_train_)
            predicted = self._predicted_names(estimator, class_names, cfg["encoded"])
        else:
            cleanser = ToDCleanser(
                estimator=cfg["estimator"], method=cfg["method"],
                drop_fraction=cfg["drop_fraction"], threshold=cfg["threshold"],
                eval_set=cfg["eval_set"],
            ).fit(cfg["features"], np.asarray(class_names[labels].tolist()))
            training_runs = 1
            estimator = cleanser.estimator_
            scores = cleanser.scores_
            rank = cleanser.issues_["rank"].to_numpy()
            is_issue = cleanser.issues_["is_issue"].to_numpy()
            predicted = self._predicted_names(estimator, class_names, False)
        quality = tod_quality_scores(scores)
        self.issues = pd.DataFrame(
            {
                f"is_{self.issue_name}_issue": np.asarray(is_issue, dtype=bool),
                self.issue_score_key: quality,
                f"{self.issue_name}_raw_score": scores,
                f"{self.issue_name}_predicted_label": (
                    pd.Series([None] * n, dtype=object) if predicted is None
                    else pd.Series(predicted, dtype=object)
                ),
            }
        )
        n_flagged = int(np.sum(is_issue))
        self.summary = self.make_summary(score=1.0 - n_flagged / max(n, 1))
        self.info = self.collect_info(
            cfg=cfg, scores=scores, rank=rank, n_flagged=n_flagged, predicted=predicted,
            training_runs=training_runs, estimator=estimator,
        )
        logger.info("tod_influence (method=%s) flags %d of %d rows", cfg["method"], n_flagged, n)

    @staticmethod
    def _predicted_names(
        est: BaseToDClassifier, class_names: np.ndarray, encoded: bool
    ) -> np.ndarray:
        """Out-of-sample predicted class; as a class name when fitted on encoded labels."""
        pred = est.classes_[np.argmax(est.oos_proba_, axis=1)]
        if encoded:
            return class_names[np.asarray(pred, dtype=np.int64)]
        return np.asarray(pred, dtype=object)

    def collect_info(
        self,
        *,
        cfg: dict[str, Any],
        scores: np.ndarray,
        rank: np.ndarray,
        n_flagged: int,
        predicted: np.ndarray | None,
        training_runs: int,
        estimator: BaseToDClassifier | None,
    ) -> dict[str, Any]:
        """The ``info`` dict: settings, counts, labels and a summary of the raw scores."""
        if cfg["threshold"] is not None:
            drop_rule = f"threshold={cfg['threshold']!r}"
        elif cfg["drop_fraction"] == "auto":
            drop_rule = "auto (as many rows as the confident joint of the out-of-sample proba)"
        else:
            drop_rule = f"drop_fraction={cfg['drop_fraction']!r}"
        q = np.quantile(scores, [0.0, 0.05, 0.5, 0.95, 1.0]) if scores.size else [np.nan] * 5
        return {
            "method": cfg["method"],
            "drop_rule": drop_rule,
            f"num_{self.issue_name}_issues": n_flagged,
            "training_runs": training_runs,
            "score_mapping": "tod_influence_score = (rank - 1) / (n - 1), rank 1 = most "
                             "negative raw score (ties: average rank)",
            "raw_score_summary": {
                "min": float(q[0]), "q05": float(q[1]), "median": float(q[2]),
                "q95": float(q[3]), "max": float(q[4]),
            },
            "rank": rank.tolist(),
            "given_label": cfg["class_names"][cfg["labels"]].tolist(),
            "predicted_label": None if predicted is None else list(predicted),
            "estimator": estimator,
        }


def _is_fitted(est: BaseToDClassifier) -> bool:
    try:
        check_is_fitted(est)
    except Exception:
        return False
    return True


def _register() -> None:
    """Register the issue type for classification; idempotent (also on module reload)."""
    task = Task.CLASSIFICATION
    current = REGISTRY[task].get(ISSUE_NAME)
    if current is ToDInfluenceIssueManager:
        return
    if (
        current is not None
        and current.__qualname__ == ToDInfluenceIssueManager.__qualname__
        and current.__module__.endswith("adapters.cleanlab")
    ):
        # This module loaded again (a reload, or imported under a second name).
        REGISTRY[task][ISSUE_NAME] = ToDInfluenceIssueManager
        return
    register(ToDInfluenceIssueManager, task=str(task))


_register()


# ------------------------------------------------------------------ comparison
def noisy_digits(
    noise_rate: float = 0.1, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits data (ships with scikit-learn) with seeded uniform label noise.

    A fraction ``noise_rate`` of the rows, drawn without replacement, gets a label
    drawn uniformly from the *other* nine classes, so every flipped row is wrong.

    Parameters
    ----------
    noise_rate : float, default=0.1
    random_state : int, default=0

    Returns
    -------
    X : ndarray of shape (1797, 64)
    y_noisy : ndarray of int, shape (1797,)
    noise_mask : ndarray of bool, shape (1797,)
        True where the label was flipped.

    Examples
    --------
    >>> X, y, mask = noisy_digits(0.1, random_state=0)
    >>> X.shape, int(mask.sum())
    ((1797, 64), 179)
    """
    from sklearn.datasets import load_digits

    if not isinstance(noise_rate, numbers.Real) or not 0 <= noise_rate < 1:
        raise ValueError(f"noise_rate must be a number in [0, 1), got {noise_rate!r}.")
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(random_state)
    n = y.shape[0]
    idx = rng.choice(n, size=int(noise_rate * n), replace=False)
    y_noisy = y.copy()
    y_noisy[idx] = (y[idx] + rng.integers(1, 10, size=idx.shape[0])) % 10
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return X.astype(np.float64), y_noisy, mask


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.sum(a | b))
    return float(np.sum(a & b) / union) if union else 1.0


def compare_finders(
    X: Any,
    y: Any,
    estimator: BaseToDClassifier | None = None,
    *,
    noise_mask: Any = None,
    cv: int = 5,
    methods: Sequence[str] | None = None,
    drop_fraction: float | str = "auto",
    eval_set: tuple[Any, Any] | None = None,
    random_state: int | None = 0,
    plot: str | os.PathLike | None = None,
    return_details: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]:
    """ToD cleansing methods side by side with cleanlab's label-issue finders.

    On the same ``X, y`` and model family it runs

    * ``tod:<method>``: ToD with every method in ``methods``; **one** training run of
      ``estimator``, every method scored from the same fitted estimator, rows flagged
      by the rule of :class:`ToDCleanser` (``drop_fraction``);
    * ``cleanlab:cv<K>``: ``cleanlab.filter.find_label_issues`` on K-fold
      cross-validated ``pred_probs`` of the same architecture trained without ToD
      (``clone(estimator).set_params(turn_over=False)``; K training runs);
    * ``cleanlab:tod``: ``find_label_issues`` on the ToD one-run ``pred_probs``
      (:func:`tod_pred_probs`, the same training run as the ToD rows).

    Parameters
    ----------
    X : array-like
        Inputs for ``estimator``.
    y : array-like of shape (n,)
        Given (possibly noisy) labels.
    estimator : BaseToDClassifier, optional
        Unfitted ToD estimator (cloned). Default ``ToDMLPClassifier(verbose=0)``.
    noise_mask : array-like of bool, shape (n,), optional
        Ground truth (True = mislabeled). Adds precision, recall, F1, AUROC and AP.
    cv : int, default=5
        Folds of the cleanlab cross-validation baseline (stratified, shuffled).
    methods : sequence of str, optional
        ToD methods; default every method of ``tod_cleanse.scores.METHODS`` that the
        inputs allow (``eval_influence`` only with ``eval_set``).
    drop_fraction : float or "auto", default="auto"
        As in :class:`ToDCleanser`.
    eval_set : tuple (X_val, y_val), optional
        Validation data for ``"eval_influence"``.
    random_state : int or None, default=0
        Seed of the CV split and, when ``estimator`` is None, of the default estimator.
    plot : path, optional
        Write precision-recall curves (needs ``noise_mask``) to this PNG.
    return_details : bool, default=False
        Also return a dict with, per finder, ``flagged`` (bool array) and ``harm``
        (ranking score, higher = more likely mislabeled), and ``pred_probs_cv``.

    Returns
    -------
    pandas.DataFrame
        One row per finder (index ``finder``): ``training_runs``, ``n_flagged``,
        ``wall_time_s`` (ToD rows and ``cleanlab:tod`` include the shared training
        time; an untimed 1-epoch warm-up fit on <= 64 rows runs first so that no
        finder pays torch's start-up cost); with ``noise_mask`` also
        ``precision``, ``recall``, ``f1``, ``auroc``, ``ap``; then
        ``jaccard:<finder>`` for every finder.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> mask = np.zeros(150, bool); mask[:5] = True
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=10, random_state=0,
    ...                        verbose=0)
    >>> df = compare_finders(X, y_noisy, est, noise_mask=mask, cv=3,
    ...                      methods=["oos_likelihood", "self_influence"])
    >>> df.index.tolist()
    ['tod:oos_likelihood', 'tod:self_influence', 'cleanlab:cv3', 'cleanlab:tod']
    >>> df["training_runs"].tolist()
    [1, 1, 3, 1]
    """
    from tod_cleanse.estimators.mlp import ToDMLPClassifier

    if estimator is None:
        estimator = ToDMLPClassifier(random_state=random_state, verbose=0)
    _check_tod_estimator(estimator)
    if isinstance(cv, bool) or not isinstance(cv, numbers.Integral) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2, got {cv!r}.")
    if methods is None:
        methods = [m for m in METHODS if m != "eval_influence" or eval_set is not None]
    methods = list(methods)
    if not methods:
        raise ValueError("methods must name at least one ToD method.")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"methods must be among {METHODS}, got {bad}.")
    if "eval_influence" in methods and eval_set is None:
        raise ValueError("method 'eval_influence' needs eval_set=(X_val, y_val).")
    for m in methods:  # drop_fraction, eval_set: ToDCleanser's checks
        ToDCleanser(method=m, drop_fraction=drop_fraction,
                    eval_set=eval_set if m == "eval_influence" else None)._check_params()
    if "turn_over" not in estimator.get_params():
        raise ValueError("estimator has no turn_over parameter: cannot build the CV baseline.")
    y_arr = np.asarray(y)
    n = y_arr.shape[0] if y_arr.ndim else 0
    mask = None
    if noise_mask is not None:
        mask = np.asarray(noise_mask)
        if mask.ndim != 1 or mask.shape[0] != n:
            raise ValueError(f"noise_mask must have shape ({n},), got {mask.shape}.")
        if mask.dtype.kind not in "biu" or not np.isin(mask, [0, 1]).all():
            raise ValueError("noise_mask must be boolean (True = mislabeled row).")
        mask = mask.astype(bool)
    if plot is not None and mask is None:
        warnings.warn("plot= needs noise_mask= (ground truth); no plot is written.",
                      UserWarning, stacklevel=2)

    flagged: dict[str, np.ndarray] = {}
    harm: dict[str, np.ndarray] = {}
    runs: dict[str, int] = {}
    wall: dict[str, float] = {}

    _warm_up(estimator, X, y_arr)

    # --- ToD: one training run, every method from the same fitted estimator.
    t0 = time.perf_counter()
    est = clone(estimator).fit(X, y)
    t_fit = time.perf_counter() - t0
    labels = est.y_train_
    for m in methods:
        t1 = time.perf_counter()
        scores = fitted_scores(est, m, eval_set)
        _, is_issue = _rank_and_flag(scores, m, drop_fraction, None, est.train_proba_, labels)
        name = f"tod:{m}"
        flagged[name], harm[name] = is_issue, -scores
        runs[name], wall[name] = 1, t_fit + time.perf_counter() - t1

    # --- cleanlab on K-fold cross-validated pred_probs, same architecture without ToD.
    name = f"cleanlab:cv{cv}"
    t1 = time.perf_counter()
    base = clone(estimator).set_params(turn_over=False)
    folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
    pred_cv = cross_val_predict(base, X, labels, cv=folds, method="predict_proba")
    flagged[name] = find_label_issues(labels, pred_cv, n_jobs=1)
    harm[name] = -get_label_quality_scores(labels, pred_cv)
    runs[name], wall[name] = int(cv), time.perf_counter() - t1

    # --- cleanlab on the ToD one-run pred_probs.
    name = "cleanlab:tod"
    t1 = time.perf_counter()
    pred_tod = tod_pred_probs(est, labels=labels)
    flagged[name] = find_label_issues(labels, pred_tod, n_jobs=1)
    harm[name] = -get_label_quality_scores(labels, pred_tod)
    runs[name], wall[name] = 1, t_fit + time.perf_counter() - t1

    names = list(flagged)
    rows = []
    for f in names:
        row: dict[str, Any] = {
            "finder": f,
            "training_runs": runs[f],
            "n_flagged": int(flagged[f].sum()),
            "wall_time_s": wall[f],
        }
        if mask is not None:
            tp = int(np.sum(flagged[f] & mask))
            prec = tp / row["n_flagged"] if row["n_flagged"] else 0.0
            rec = tp / int(mask.sum()) if mask.any() else 0.0
            both = mask.any() and not mask.all()
            row.update(
                precision=prec,
                recall=rec,
                f1=2 * prec * rec / (prec + rec) if prec + rec else 0.0,
                auroc=roc_auc_score(mask, harm[f]) if both else np.nan,
                ap=average_precision_score(mask, harm[f]) if both else np.nan,
            )
        for g in names:
            row[f"jaccard:{g}"] = _jaccard(flagged[f], flagged[g])
        rows.append(row)
    df = pd.DataFrame(rows).set_index("finder")
    if plot is not None and mask is not None:
        _plot_pr(Path(plot), mask, harm, flagged)
    if return_details:
        return df, {"flagged": flagged, "harm": harm, "pred_probs_cv": pred_cv,
                    "estimator": est}
    return df


def _warm_up(estimator: BaseToDClassifier, X: Any, y: np.ndarray) -> None:
    """One untimed 1-epoch fit on <= 64 rows, so that the first timed finder does not
    pay torch's one-off start-up cost (seconds on a CPU) and wall times compare fairly.

    A failure here is left to the first real fit, which raises the same error with
    the estimator's own message.
    """
    try:
        _, first = np.unique(y, return_index=True)
        idx = np.unique(np.r_[first, np.arange(min(len(y), 64))])
        clone(estimator).set_params(max_epochs=1, verbose=0).fit(_safe_indexing(X, idx), y[idx])
    except Exception as exc:  # the timed fit reports it
        logger.debug("warm-up fit failed (%s); the timed fit will report it", exc)


def _plot_pr(path: Path, mask: np.ndarray, harm: dict[str, np.ndarray],
             flagged: dict[str, np.ndarray]) -> None:
    """Precision-recall curves (Agg canvas; pyplot's global state is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, h in harm.items():
        precision, recall, _ = precision_recall_curve(mask, h)
        ap = average_precision_score(mask, h)
        (line,) = ax.plot(recall, precision, lw=1.4, label=f"{name} (AP {ap:.3f})",
                          ls="--" if name.startswith("cleanlab") else "-")
        f = flagged[name]
        if f.any():
            tp = np.sum(f & mask)
            ax.plot([tp / mask.sum()], [tp / f.sum()], "o", color=line.get_color(), ms=5)
    ax.axhline(mask.mean(), color="grey", lw=0.8, ls=":", label=f"random ({mask.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02),
           title="Finding mislabeled rows (dots: the rows each finder flags)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A DataFrame as a GitHub markdown table (index first), without extra packages.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]},
    ...                                   index=pd.Index(["x", "y"], name="k"))))
    | k | a | b |
    |---|--:|--:|
    | x | 1 | 0.500 |
    | y | 2 | 0.250 |
    """

    def fmt(v: Any) -> str:
        if isinstance(v, bool | np.bool_):
            return str(bool(v))
        if isinstance(v, numbers.Integral):
            return str(int(v))
        if isinstance(v, numbers.Real):
            return "nan" if np.isnan(v) else format(float(v), floatfmt)
        return str(v)

    head = [str(df.index.name or "")] + [str(c) for c in df.columns]
    align = ["---"] + [
        "--:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        lines.append("| " + " | ".join([str(idx)] + [fmt(v) for v in row]) + " |")
    return "\n".join(lines)


def format_comparison(df: pd.DataFrame) -> str:
    """The comparison as two markdown tables: per-finder metrics, then Jaccard overlaps."""
    jac = [c for c in df.columns if c.startswith("jaccard:")]
    main = df.drop(columns=jac)
    overlap = df[jac].rename(columns=lambda c: c.split(":", 1)[1])
    overlap.index.name = "Jaccard"
    return markdown_table(main) + "\n\n" + markdown_table(overlap, floatfmt=".2f")


# -------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``tod-cleanse compare``."""
    parser.add_argument("--input", type=Path, default=None,
                        help="CSV or Parquet file (default: digits with injected label noise)")
    parser.add_argument("--label", default=None, help="label column of --input")
    parser.add_argument("--noise-column", default=None,
                        help="boolean ground-truth column of --input (True = mislabeled)")
    parser.add_argument("--noise-rate", type=float, default=0.1,
                        help="label noise injected into the digits demo data (default 0.1)")
    parser.add_argument("--cv", type=int, default=5, help="folds of the cleanlab baseline")
    parser.add_argument("--methods", default=None,
                        help=f"comma-separated ToD methods (default: all of {METHODS} "
                             "except eval_influence)")
    parser.add_argument("--drop-fraction", default="auto",
                        help="'auto' or a fraction in [0, 1) (as ToDCleanser)")
    parser.add_argument("--hidden", default="256,256", help="MLP hidden layer sizes")
    parser.add_argument("--epochs", type=int, default=20, help="training epochs")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is fastest for small MLPs on a busy machine)")
    parser.add_argument("--plot", type=Path, default=Path("tod_compare_pr.png"),
                        help="PNG of the precision-recall curves (default tod_compare_pr.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    parser.add_argument("--csv", type=Path, default=None, help="also write the table as CSV")


def _load_table(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    path: Path = args.input
    if not path.exists():
        raise FileNotFoundError(f"--input {path} does not exist.")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".txt"):
        frame = pd.read_csv(path)
    else:
        raise ValueError(f"--input must be a .csv or .parquet file, got {path.name!r}.")
    if not args.label:
        raise ValueError("--label is required with --input (the label column).")
    for col, opt in ((args.label, "--label"), (args.noise_column, "--noise-column")):
        if col is not None and col not in frame.columns:
            raise ValueError(f"{opt} {col!r} is not a column of {path.name}.")
    y = frame[args.label].to_numpy()
    mask = None
    if args.noise_column:
        mask = frame[args.noise_column].to_numpy()
    feats = frame.drop(columns=[c for c in (args.label, args.noise_column) if c])
    non_numeric = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if non_numeric:
        raise ValueError(
            f"feature columns must be numeric for the MLP; not numeric: {non_numeric[:5]}."
        )
    return feats.to_numpy(dtype=np.float64), y, mask


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse compare``: print the markdown tables, write the PNG."""
    from tod_cleanse.estimators.mlp import ToDMLPClassifier

    if args.threads:
        import torch

        torch.set_num_threads(int(args.threads))
    try:
        if args.input is not None:
            X, y, mask = _load_table(args)
            source = str(args.input)
        else:
            X, y, mask = noisy_digits(args.noise_rate, random_state=args.seed)
            source = f"digits, {args.noise_rate:.0%} injected label noise (seed {args.seed})"
        try:
            hidden = tuple(int(h) for h in str(args.hidden).split(",") if h.strip())
        except ValueError:
            raise ValueError(
                f"--hidden must be comma-separated integers, got {args.hidden!r}."
            ) from None
        drop = args.drop_fraction
        if drop != "auto":
            try:
                drop = float(drop)
            except ValueError:
                raise ValueError(
                    f"--drop-fraction must be 'auto' or a number, got {drop!r}."
                ) from None
        methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
        est = ToDMLPClassifier(hidden_layer_sizes=hidden, max_epochs=args.epochs,
                               random_state=args.seed, device=args.device,
                               verbose=0 if getattr(args, "quiet", False) else 1)
        plot = None if args.no_plot or mask is None else args.plot
        df = compare_finders(X, y, est, noise_mask=mask, cv=args.cv, methods=methods,
                             drop_fraction=drop, random_state=args.seed, plot=plot)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"tod-cleanse compare: error: {exc}", file=sys.stderr)
        return 2
    print(f"Data: {source}; {len(y)} rows; model: ToDMLPClassifier(hidden_layer_sizes="
          f"{hidden}, max_epochs={args.epochs}); cleanlab baseline: {args.cv}-fold CV.\n")
    print(format_comparison(df))
    if plot is not None:
        print(f"\nprecision-recall curves: {plot}")
    if args.csv is not None:
        df.to_csv(args.csv)
        print(f"table: {args.csv}")
    return 0
