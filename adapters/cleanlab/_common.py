"""Estimator checks shared by the pred_probs, Datalab and comparison modules.

The cleansing settings and the decision (scores -> flagged rows) are
:func:`tod_cleanse.scores.check_cleansing_params` and
:func:`tod_cleanse.scores.select_issues`, shared with :class:`tod_cleanse.ToDCleanser`.
"""

from __future__ import annotations

from typing import Any

from sklearn.utils.validation import check_is_fitted

from tod_cleanse.estimators.base import BaseToDClassifier


def check_tod_estimator(estimator: Any, name: str = "estimator") -> BaseToDClassifier:
    """Return ``estimator`` if it is a ToD estimator with turn-over dropout on."""
    if not isinstance(estimator, BaseToDClassifier):
        raise TypeError(
            f"{name} must be a ToD estimator (ToDMLPClassifier, ToDTextClassifier, "
            f"ToDVGGClassifier, ToDResNetClassifier, ToDViTClassifier), got "
            f"{type(estimator).__name__}."
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
