"""Checks and the flagging rule shared by the pred_probs, Datalab and comparison modules."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from tod_cleanse.estimators.base import BaseToDClassifier
from tod_cleanse.scores import METHODS, estimate_issue_count, flag_issues, parse_drop_fraction


def check_tod_estimator(estimator: Any, name: str = "estimator") -> BaseToDClassifier:
    """Return ``estimator`` if it is a ToD estimator with turn-over dropout on."""
    if not isinstance(estimator, BaseToDClassifier):
        raise TypeError(
            f"{name} must be a ToD estimator (ToDMLPClassifier, ToDBertClassifier, "
            f"ToDVGGClassifier), got {type(estimator).__name__}."
        )
    if not getattr(estimator, "turn_over", True):
        raise ValueError(f"{name} has turn_over=False: ToD scores need turn-over dropout.")
    return estimator


def check_fitted_tod(estimator: Any, what: str) -> BaseToDClassifier:
    """Return a fitted ToD estimator that has ``oos_proba_``; ``what`` names the caller."""
    est = check_tod_estimator(estimator)
    check_is_fitted(est, msg=f"{what} needs a fitted ToD estimator: call fit(X, y) first.")
    if not hasattr(est, "oos_proba_"):
        raise ValueError(f"{what}: estimator has no oos_proba_ (was it fitted with turn_over?).")
    return est


def is_fitted(estimator: BaseToDClassifier) -> bool:
    """Whether ``check_is_fitted`` accepts ``estimator``."""
    try:
        check_is_fitted(estimator)
    except Exception:
        return False
    return True


def check_decision_params(
    method: str,
    drop_fraction: Any,
    threshold: Any,
    eval_set: Any,
) -> float | str:
    """Validate the scores -> flagged rows settings; return the parsed ``drop_fraction``.

    The same rules as :class:`tod_cleanse.ToDCleanser`: ``method`` among
    :data:`tod_cleanse.scores.METHODS`, ``eval_set`` exactly with
    ``"eval_influence"``, a finite ``threshold``, ``drop_fraction`` parsed by
    :func:`tod_cleanse.scores.parse_drop_fraction`.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if method == "eval_influence" and eval_set is None:
        raise ValueError("method='eval_influence' needs eval_set=(X_val, y_val).")
    if eval_set is not None:
        if method != "eval_influence":
            raise ValueError(
                f"eval_set is only used by method='eval_influence', got method={method!r}."
            )
        if not isinstance(eval_set, tuple | list) or len(eval_set) != 2:
            raise ValueError("eval_set must be a tuple (X_val, y_val).")
    return check_flag_rule(drop_fraction, threshold)


def check_flag_rule(drop_fraction: Any, threshold: Any) -> float | str:
    """Validate ``threshold`` (finite number or None); return the parsed ``drop_fraction``."""
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not np.isfinite(threshold)
    ):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}.")
    return parse_drop_fraction(drop_fraction)


def rank_and_flag(
    scores: np.ndarray,
    drop_fraction: float | str,
    threshold: float | None,
    count_proba: np.ndarray | None,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = most harmful) and flagged rows, by the same rule as :class:`ToDCleanser`.

    ``count_proba`` gives the ``"auto"`` count (:func:`tod_cleanse.scores.estimate_issue_count`);
    used when the estimator is already fitted, so that one training run serves every
    method. A test checks that it agrees with ``ToDCleanser.issues_``.
    """
    if threshold is None and drop_fraction == "auto" and count_proba is None:
        raise ValueError(
            "drop_fraction='auto' needs out-of-sample probabilities (pred_probs= or "
            "estimator=); pass drop_fraction=<float> or threshold=<float> instead."
        )
    auto_count = None if count_proba is None else estimate_issue_count(count_proba, labels)
    return flag_issues(scores, drop_fraction=drop_fraction, threshold=threshold,
                       auto_count=auto_count)
