"""ToD cleansing methods side by side with cleanlab's label-issue finders.

:func:`compare_finders` runs, on the same ``X, y`` and model family,

* ``tod:<method>``: ToD with every method in ``methods``; **one** training run of
  ``estimator``, every method scored from the same fitted estimator, rows flagged by
  the rule of :class:`tod_cleanse.ToDCleanser` (``drop_fraction``);
* ``cleanlab:cv<K>``: ``cleanlab.filter.find_label_issues`` on K-fold cross-validated
  ``pred_probs`` of the same architecture trained without ToD
  (``clone(estimator).set_params(turn_over=False)``; K training runs);
* ``cleanlab:tod``: ``find_label_issues`` on the ToD one-run ``pred_probs``
  (:func:`~tod_cleanse.adapters.cleanlab.tod_pred_probs`, the same training run as
  the ToD rows).

:func:`~tod_cleanse.adapters.cleanlab.format_comparison` prints the result (the
``tod-cleanse compare`` command uses it), :func:`~tod_cleanse.adapters.cleanlab.plot_pr_curves`
draws it.
"""

from __future__ import annotations

import logging
import numbers
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.base import clone
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.utils import _safe_indexing

from tod_cleanse.cleanser import fitted_scores
from tod_cleanse.estimators.base import BaseToDClassifier
from tod_cleanse.noise import flip_labels
from tod_cleanse.scores import (
    METHODS,
    auto_count_views,
    check_cleansing_params,
    select_issues,
)

from ._common import check_tod_estimator
from .output import plot_pr_curves
from .pred_probs import tod_pred_probs

logger = logging.getLogger(__name__)

__all__ = ["compare_finders", "noisy_digits"]


def noisy_digits(
    noise_rate: float = 0.1, random_state: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The digits data (ships with scikit-learn) with seeded uniform label noise.

    The labels go through :func:`tod_cleanse.noise.flip_labels`: ``round(noise_rate
    * n)`` rows, drawn without replacement, get a label drawn uniformly from the
    *other* nine classes, so every flipped row is wrong.

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
    ((1797, 64), 180)
    """
    from sklearn.datasets import load_digits

    if (isinstance(noise_rate, bool) or not isinstance(noise_rate, numbers.Real)
            or not 0 <= noise_rate < 1):
        raise ValueError(f"noise_rate must be a number in [0, 1), got {noise_rate!r}.")
    X, y = load_digits(return_X_y=True)
    y_noisy, mask = flip_labels(y, noise_rate, random_state=random_state)
    return X.astype(np.float64), y_noisy, mask


@dataclass
class _Finders:
    """Per finder: flagged rows, ranking score (higher = more likely mislabeled), cost."""

    flagged: dict[str, np.ndarray] = field(default_factory=dict)
    harm: dict[str, np.ndarray] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)
    wall: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, flagged: np.ndarray, harm: np.ndarray, runs: int,
            wall: float) -> None:
        self.flagged[name], self.harm[name] = flagged, harm
        self.runs[name], self.wall[name] = runs, wall


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
    """ToD cleansing methods next to cleanlab's label-issue finders, on the same data.

    Finders (see the module): ``tod:<method>``, ``cleanlab:cv<K>``, ``cleanlab:tod``.

    Parameters
    ----------
    X, y : array-like
        Inputs for ``estimator`` and the given (possibly noisy) labels.
    estimator : BaseToDClassifier, optional
        Unfitted ToD estimator (cloned). Default ``ToDMLPClassifier(verbose=0)``.
    noise_mask : array-like of bool, shape (n,), optional
        Ground truth (True = mislabeled). Adds precision, recall, F1, AUROC and AP.
    cv : int, default=5
        Folds of the cleanlab cross-validation baseline (stratified, shuffled).
    methods : sequence of str, optional
        ToD methods; default every method of ``tod_cleanse.scores.METHODS`` that the
        inputs allow (``eval_influence`` only with ``eval_set``).
    drop_fraction, eval_set
        As in :class:`tod_cleanse.ToDCleanser` (``eval_set`` for ``"eval_influence"``).
    random_state : int or None, default=0
        Seed of the CV split and, when ``estimator`` is None, of the default estimator.
    plot : path, optional
        Write precision-recall curves (needs ``noise_mask``) to this PNG.
    return_details : bool, default=False
        Also return a dict: ``flagged`` and ``harm`` (ranking score, higher = more
        likely mislabeled) per finder, ``pred_probs_cv`` and the fitted ``estimator``.

    Returns
    -------
    pandas.DataFrame
        One row per finder (index ``finder``): ``training_runs``, ``n_flagged``,
        ``wall_time_s`` (ToD rows and ``cleanlab:tod`` include the shared training;
        an untimed 1-epoch warm-up fit on <= 64 rows runs first); with
        ``noise_mask`` also ``precision``, ``recall``, ``f1``, ``auroc``, ``ap``;
        then ``jaccard:<finder>`` for every finder.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> mask = np.zeros(150, bool); mask[:5] = True
    >>> y_noisy = y.copy(); y_noisy[:5] = 2
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=30, lr=0.01,
    ...                        random_state=0, verbose=0)
    >>> df = compare_finders(X, y_noisy, est, noise_mask=mask, cv=3,
    ...                      methods=["oos_likelihood", "self_influence"])
    >>> df.index.tolist()
    ['tod:oos_likelihood', 'tod:self_influence', 'cleanlab:cv3', 'cleanlab:tod']
    >>> df["training_runs"].tolist()
    [1, 1, 3, 1]
    """
    estimator, methods, drop, mask = _check_compare_args(
        estimator, y, noise_mask, cv, methods, drop_fraction, eval_set, random_state, plot)
    finders = _Finders()
    _warm_up(estimator, X, np.asarray(y))
    est, t_fit = _run_tod(finders, estimator, X, y, methods, drop, eval_set)
    pred_cv = _run_cleanlab(finders, estimator, est, t_fit, X, int(cv), random_state)
    df = _comparison_table(finders, mask)
    if plot is not None and mask is not None:
        plot_pr_curves(Path(plot), mask, finders.harm, finders.flagged)
    if return_details:
        return df, {"flagged": finders.flagged, "harm": finders.harm,
                    "pred_probs_cv": pred_cv, "estimator": est}
    return df


def _check_compare_args(
    estimator: Any, y: Any, noise_mask: Any, cv: Any, methods: Sequence[str] | None,
    drop_fraction: Any, eval_set: Any, random_state: int | None, plot: Any,
) -> tuple[BaseToDClassifier, list[str], float | str, np.ndarray | None]:
    """Every argument of :func:`compare_finders` checked before any training."""
    from tod_cleanse.estimators.mlp import ToDMLPClassifier

    if estimator is None:
        estimator = ToDMLPClassifier(random_state=random_state, verbose=0)
    check_tod_estimator(estimator)
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
    for m in methods:
        _, drop, _ = check_cleansing_params(m, drop_fraction, None,
                                            eval_set if m == "eval_influence" else None)
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
                      UserWarning, stacklevel=3)
    return estimator, methods, drop, mask


def _run_tod(finders: _Finders, estimator: BaseToDClassifier, X: Any, y: Any,
             methods: list[str], drop: float | str, eval_set: Any
             ) -> tuple[BaseToDClassifier, float]:
    """One ToD training run, every method scored from it; the fitted estimator, its fit time."""
    t0 = time.perf_counter()
    est = clone(estimator).fit(X, y)
    t_fit = time.perf_counter() - t0
    for m in methods:
        t1 = time.perf_counter()
        scores = fitted_scores(est, m, eval_set)
        _, is_issue = select_issues(scores, est.y_train_, **auto_count_views(est),
                                    drop_fraction=drop)
        finders.add(f"tod:{m}", is_issue, -scores, 1, t_fit + time.perf_counter() - t1)
    return est, t_fit


def _run_cleanlab(finders: _Finders, estimator: BaseToDClassifier, est: BaseToDClassifier,
                  t_fit: float, X: Any, cv: int, random_state: int | None) -> np.ndarray:
    """cleanlab on K-fold CV ``pred_probs`` (no ToD) and on the ToD one-run ``pred_probs``."""
    labels = est.y_train_
    t0 = time.perf_counter()
    base = clone(estimator).set_params(turn_over=False)
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    pred_cv = cross_val_predict(base, X, labels, cv=folds, method="predict_proba")
    finders.add(f"cleanlab:cv{cv}", find_label_issues(labels, pred_cv, n_jobs=1),
                -get_label_quality_scores(labels, pred_cv), cv, time.perf_counter() - t0)
    t0 = time.perf_counter()
    pred_tod = tod_pred_probs(est, labels=labels)
    finders.add("cleanlab:tod", find_label_issues(labels, pred_tod, n_jobs=1),
                -get_label_quality_scores(labels, pred_tod), 1,
                t_fit + time.perf_counter() - t0)
    return pred_cv


def _comparison_table(finders: _Finders, mask: np.ndarray | None) -> pd.DataFrame:
    """One row per finder: cost, flagged count, metrics against ``mask``, Jaccard overlaps."""
    names = list(finders.flagged)
    rows = []
    for f in names:
        flagged = finders.flagged[f]
        row: dict[str, Any] = {"finder": f, "training_runs": finders.runs[f],
                               "n_flagged": int(flagged.sum()), "wall_time_s": finders.wall[f]}
        if mask is not None:
            row.update(_detection_metrics(flagged, finders.harm[f], mask))
        for g in names:
            row[f"jaccard:{g}"] = _jaccard(flagged, finders.flagged[g])
        rows.append(row)
    return pd.DataFrame(rows).set_index("finder")


def _detection_metrics(flagged: np.ndarray, harm: np.ndarray, mask: np.ndarray
                       ) -> dict[str, float]:
    """Precision, recall, F1 of the flagged rows; AUROC and AP of the ranking score."""
    tp = int(np.sum(flagged & mask))
    n_flagged = int(flagged.sum())
    prec = tp / n_flagged if n_flagged else 0.0
    rec = tp / int(mask.sum()) if mask.any() else 0.0
    both = mask.any() and not mask.all()
    return {
        "precision": prec,
        "recall": rec,
        "f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "auroc": roc_auc_score(mask, harm) if both else np.nan,
        "ap": average_precision_score(mask, harm) if both else np.nan,
    }


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = int(np.sum(a | b))
    return float(np.sum(a & b) / union) if union else 1.0


def _warm_up(estimator: BaseToDClassifier, X: Any, y: np.ndarray) -> None:
    """One untimed 1-epoch fit on <= 64 rows, so that the first timed finder does not
    pay torch's one-off start-up cost (seconds on a CPU) and wall times compare fairly.

    Its warnings (a 1-epoch fit looks unreliable by design) are silenced, and a
    failure is left to the first real fit, which raises the same error with the
    estimator's own message.
    """
    try:
        _, first = np.unique(y, return_index=True)
        idx = np.unique(np.r_[first, np.arange(min(len(y), 64))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clone(estimator).set_params(max_epochs=1, verbose=0).fit(_safe_indexing(X, idx),
                                                                     y[idx])
    except Exception as exc:  # the timed fit reports it
        logger.debug("warm-up fit failed (%s); the timed fit will report it", exc)
