"""ToDCleanser: drop the training rows that turn-over dropout finds most harmful."""

from __future__ import annotations

import logging
import numbers
import sys
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.utils import _safe_indexing
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted

from .estimators.base import BaseToDClassifier
from .scores import DEFAULT_METHOD, METHODS, cleansing_scores, estimate_issue_count, flag_issues

logger = logging.getLogger(__name__)

__all__ = ["ToDCleanser", "fitted_scores"]


def fitted_scores(estimator: BaseToDClassifier, method: str,
                  eval_set: tuple[Any, Any] | None = None) -> np.ndarray:
    """Signed cleansing scores of ``method`` for the training rows of a fitted ToD estimator.

    The one place that turns a fitted estimator's attributes (and, for
    ``"eval_influence"``, its summed influence on ``eval_set``) into
    :func:`~tod_cleanse.scores.cleansing_scores`; :class:`ToDCleanser` and the
    cleanlab plug-in both call it.

    Parameters
    ----------
    estimator : BaseToDClassifier
        Fitted, with ``turn_over=True``.
    method : str
        One of :data:`tod_cleanse.scores.METHODS`.
    eval_set : tuple (X_val, y_val), optional
        Required by ``"eval_influence"``.

    Returns
    -------
    ndarray of shape (n_train,)
        More negative = more harmful.
    """
    eval_influence = None
    if method == "eval_influence":
        if eval_set is None:
            raise ValueError("method='eval_influence' needs eval_set=(X_val, y_val).")
        X_val, y_val = eval_set
        eval_influence = estimator.score_influence(X_val, y_val, reduce="sum")
    return cleansing_scores(
        method,
        estimator.y_train_,
        oos_proba=estimator.oos_proba_,
        seen_proba=estimator.seen_proba_,
        full_proba=estimator.train_proba_,
        self_influence=estimator.self_influence_,
        eval_influence=eval_influence,
    )


class ToDCleanser(BaseEstimator):
    """Cleaning sampler: fit a ToD estimator once, drop the most harmful training rows.

    Follows imbalanced-learn's sampler contract (``fit_resample`` returns the kept
    ``X, y``; ``sample_indices_`` holds the kept positions), so it works as an
    intermediate step of :class:`imblearn.pipeline.Pipeline`, and it has
    ``fit_transform`` (but no ``transform``: sklearn's ``transform`` never removes
    rows), so it works as the final step of :class:`sklearn.pipeline.Pipeline`.

    Every score is oriented so that more negative = more harmful; see
    :mod:`tod_cleanse.scores` and the README for each method's formula.

    Parameters
    ----------
    estimator : BaseToDClassifier or None, default=None
        Unfitted ToD estimator (cloned). ``None``: ``ToDMLPClassifier()``.
    method : str, default="full_likelihood"
        ``"eval_influence"`` (the paper's cleansing: summed influence on
        ``eval_set``), ``"self_influence"``, ``"memorisation"``,
        ``"oos_likelihood"``, ``"confident_learning"`` or ``"full_likelihood"``.
    drop_fraction : float or "auto", default="auto"
        Fraction of the training rows to drop (the lowest scores). ``"auto"``
        drops as many rows as confident learning estimates are mislabeled (the
        off-diagonal mass of the calibrated confident joint of the full network's
        ``train_proba_``, :func:`tod_cleanse.scores.estimate_issue_count`), choosing
        them by ``method``'s ranking. Ignored when ``threshold`` is set.
    threshold : float or None, default=None
        Drop every row whose score is below this value.
    eval_set : tuple (X_val, y_val) or None, default=None
        Validation data for ``method="eval_influence"``.

    Attributes
    ----------
    estimator_ : BaseToDClassifier
        The fitted ToD estimator.
    method_ : str
    scores_ : ndarray of shape (n_samples,)
        Signed score per training row; more negative = more harmful.
    sample_indices_ : ndarray of int
        Positions of the kept rows, in input order.
    issues_ : pandas.DataFrame
        One row per training row: ``key``, ``score``, ``rank`` (1 = most harmful),
        ``is_issue``, ``label``, ``oos_label``, ``oos_proba_label``,
        ``oos_confidence``, ``self_influence``. Its index is X's index for a
        DataFrame, else the row positions.
    n_dropped_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDCleanser, ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> y_noisy = y.copy(); y_noisy[:5] = 2          # five setosas labelled virginica
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(64,), max_epochs=30, random_state=0,
    ...                        verbose=0)
    >>> cl = ToDCleanser(est, drop_fraction=0.05)
    >>> X_kept, y_kept = cl.fit_resample(X, y_noisy)
    >>> X_kept.shape
    (143, 4)
    >>> int(np.isin(np.arange(5), cl.issues_.query("is_issue").index).sum()) >= 4
    True
    """

    def __init__(
        self,
        estimator: BaseToDClassifier | None = None,
        method: str = DEFAULT_METHOD,
        drop_fraction: float | str = "auto",
        threshold: float | None = None,
        eval_set: tuple[Any, Any] | None = None,
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.drop_fraction = drop_fraction
        self.threshold = threshold
        self.eval_set = eval_set

    def _check_params(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        if self.method == "eval_influence" and self.eval_set is None:
            raise ValueError("method='eval_influence' needs eval_set=(X_val, y_val).")
        if self.eval_set is not None:
            if self.method != "eval_influence":
                raise ValueError(
                    f"eval_set is only used by method='eval_influence', got method={self.method!r}."
                )
            if not isinstance(self.eval_set, tuple | list) or len(self.eval_set) != 2:
                raise ValueError("eval_set must be a tuple (X_val, y_val).")
        if self.threshold is not None:
            if not isinstance(self.threshold, numbers.Real) or not np.isfinite(self.threshold):
                raise ValueError(f"threshold must be a finite number, got {self.threshold!r}.")
        elif self.drop_fraction != "auto":
            frac = self.drop_fraction
            if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 <= frac < 1:
                raise ValueError(
                    f"drop_fraction must be 'auto' or a number in [0, 1), got {frac!r}."
                )
        if self.estimator is not None and not isinstance(self.estimator, BaseToDClassifier):
            raise TypeError(
                "estimator must be a ToD estimator (ToDMLPClassifier, ToDBertClassifier, "
                f"ToDVGGClassifier), got {type(self.estimator).__name__}."
            )
        if self.estimator is not None and not getattr(self.estimator, "turn_over", True):
            raise ValueError("estimator has turn_over=False: ToDCleanser needs turn-over dropout.")

    def fit(self, X: Any, y: Any, instance_keys: Any = None) -> ToDCleanser:
        """Fit the ToD estimator on ``(X, y)`` and score every training row.

        Parameters
        ----------
        X : array-like
            Training inputs, in whatever form the estimator takes.
        y : array-like of shape (n_samples,)
        instance_keys : array-like of shape (n_samples,), optional
            Stable unique keys, passed to the estimator's ``fit``.

        Returns
        -------
        self
        """
        self._check_params()
        if self.estimator is None:
            from .estimators.mlp import ToDMLPClassifier

            est = ToDMLPClassifier()
        else:
            est = clone(self.estimator)
        est.fit(X, y, instance_keys=instance_keys)
        self.estimator_ = est
        self.method_ = self.method
        labels = est.y_train_
        scores = fitted_scores(est, self.method, self.eval_set)
        n = labels.shape[0]
        rank, is_issue = flag_issues(
            scores,
            drop_fraction=self.drop_fraction,
            threshold=self.threshold,
            auto_count=estimate_issue_count(est.train_proba_, labels),
        )
        self.scores_ = scores
        self.sample_indices_ = np.flatnonzero(~is_issue)
        self.n_dropped_ = int(is_issue.sum())
        oos_label = np.argmax(est.oos_proba_, axis=1)
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(n)
        keys = np.asarray(instance_keys) if instance_keys is not None else np.arange(n)
        self.issues_ = pd.DataFrame(
            {
                "key": keys,
                "score": scores,
                "rank": rank,
                "is_issue": is_issue,
                "label": est.classes_[labels],
                "oos_label": est.classes_[oos_label],
                "oos_proba_label": est.oos_proba_[np.arange(n), labels],
                "oos_confidence": est.oos_proba_.max(axis=1),
                "self_influence": est.self_influence_,
            },
            index=index,
        )
        logger.info("ToDCleanser(method=%s) flags %d of %d rows", self.method, self.n_dropped_, n)
        return self

    def fit_resample(self, X: Any, y: Any, **fit_params: Any) -> tuple[Any, Any]:
        """Fit, then return the kept rows of ``X`` and ``y`` (imbalanced-learn contract).

        A DataFrame ``X`` (or Series ``y``) comes back as one, with the original
        index of the kept rows.

        Parameters
        ----------
        X : array-like
        y : array-like of shape (n_samples,)
        **fit_params : passed to :meth:`fit` (e.g. ``instance_keys``).

        Returns
        -------
        X_kept, y_kept
        """
        self.fit(X, y, **fit_params)
        return _safe_indexing(X, self.sample_indices_), _safe_indexing(y, self.sample_indices_)

    def _fit_transform_visible(self) -> bool:
        """Hide ``fit_transform`` from imbalanced-learn's ``Pipeline._fit`` only.

        imbalanced-learn (0.12+) routes an intermediate step through
        ``fit_transform`` whenever it has one, *before* trying ``fit_resample``,
        which would keep every label and break the X/y alignment. sklearn's
        ``Pipeline.fit_transform`` needs ``fit_transform`` on its final step. A
        cleaning step has to serve both, so the attribute is reported missing when
        (and only when) imbalanced-learn's pipeline asks for it.
        """
        frame = sys._getframe(1)
        for _ in range(8):
            if frame is None:
                break
            module = frame.f_globals.get("__name__", "")
            if module.startswith("imblearn.") and frame.f_code.co_name == "_fit":
                return False
            frame = frame.f_back
        return True

    @available_if(_fit_transform_visible)
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit, then return the kept rows of ``X`` (final step of a sklearn Pipeline).

        Parameters
        ----------
        X : array-like
        y : array-like of shape (n_samples,)
            Required (the labels are what is being checked).
        **fit_params : passed to :meth:`fit`.

        Returns
        -------
        X_kept
        """
        if y is None:
            raise ValueError("ToDCleanser.fit_transform needs y: cleansing checks the labels.")
        self.fit(X, y, **fit_params)
        return _safe_indexing(X, self.sample_indices_)

    def get_kept_mask(self) -> np.ndarray:
        """Boolean mask of the kept rows, in input order."""
        check_is_fitted(self)
        return ~self.issues_["is_issue"].to_numpy()
