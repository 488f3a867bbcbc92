"""ToDCleanser: drop the training rows that turn-over dropout finds most harmful."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from imblearn.under_sampling.base import BaseCleaningSampler
from imblearn.utils import check_target_type
from sklearn import config_context
from sklearn.base import clone
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted, validate_data

from ._constraints import StrOptions, real_interval
from .estimators.base import BaseToDClassifier
from .scores import (
    AUTO_METHOD,
    METHODS,
    auto_count_views,
    check_cleansing_params,
    cleansing_scores,
    resolve_method,
    select_issues,
)

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
        One of :data:`tod_cleanse.scores.METHODS`, or ``"auto"``: the estimator
        family's ``default_method`` (:func:`~tod_cleanse.scores.resolve_method`).
    eval_set : tuple (X_val, y_val), optional
        Required by ``"eval_influence"``.

    Returns
    -------
    ndarray of shape (n_train,)
        More negative = more harmful.
    """
    method = resolve_method(method, estimator)
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


class ToDCleanser(BaseCleaningSampler):
    """Cleaning sampler: fit a ToD estimator once, drop the most harmful training rows.

    An imbalanced-learn cleaning sampler (``imblearn.base.is_sampler`` is true):
    :meth:`fit_resample` validates its input and returns the kept ``X, y``, and
    ``sample_indices_`` holds the kept positions. So it is an intermediate step of
    :class:`imblearn.pipeline.Pipeline`, and it may end a
    :class:`sklearn.pipeline.Pipeline` (``fit``, then read ``[-1].sample_indices_``
    or ``[-1].issues_``). It has no ``transform`` and no ``fit_transform``: a
    scikit-learn transformer returns one output row per input row, so it cannot
    drop rows; resampling is what imbalanced-learn's ``fit_resample`` is for.

    Instance keys reach the cleanser through ``fit_resample(X, y, instance_keys=...)``
    or ``fit``. Inside :class:`imblearn.pipeline.Pipeline` pass them with
    scikit-learn's metadata routing (``sklearn.set_config(enable_metadata_routing=True)``,
    ``cleanser.set_fit_resample_request(instance_keys=True)
    .set_fit_request(instance_keys=True)``, then ``pipe.fit(X, y, instance_keys=keys)``):
    without routing, imbalanced-learn gives ``step__param`` fit parameters to ``fit``
    only, never to a sampler's ``fit_resample``, and the keys default to row positions.

    Every score is oriented so that more negative = more harmful; see
    :mod:`tod_cleanse.scores` and the README for each method's formula.

    Parameters
    ----------
    estimator : BaseToDClassifier or None, default=None
        Unfitted ToD estimator (cloned). ``None``: ``ToDMLPClassifier()``.
    method : str, default="auto"
        ``"eval_influence"`` (the paper's cleansing: summed influence on
        ``eval_set``), ``"self_influence"``, ``"memorisation"``,
        ``"oos_likelihood"``, ``"confident_learning"``, ``"full_likelihood"``,
        ``"two_view_margin"`` or ``"two_view_likelihood"``. ``"auto"``: the estimator family's
        ``default_method``, the score the benchmark ranks best for it
        (``"full_likelihood"`` for the MLP, ``"two_view_margin"`` for VGG and
        ResNet, ``"two_view_likelihood"`` for the text family; see the README,
        "Benchmarks");
        ``method_`` holds the one used.
    drop_fraction : float or "auto", default="auto"
        Fraction of the training rows to drop (the lowest scores). ``"auto"``
        drops as many rows as confident learning estimates are mislabeled (the
        off-diagonal mass of a calibrated confident joint in which a row is off its
        label only where both the full network's ``train_proba_`` and the
        out-of-sample ``oos_proba_`` are confident of another class,
        :func:`tod_cleanse.scores.estimate_issue_count`), choosing them by
        ``method``'s ranking. Ignored when ``threshold`` is set.
    threshold : float or None, default=None
        Drop every row whose score is below this value.
    eval_set : tuple (X_val, y_val) or None, default=None
        Validation data for ``method="eval_influence"``.
    sampling_strategy : str, list or callable, default="all"
        The classes whose rows may be dropped (imbalanced-learn's cleaning-sampler
        convention: ``"all"``, ``"majority"``, ``"not minority"``,
        ``"not majority"``, ``"auto"`` = ``"not minority"``, a list of classes, or
        a callable). Rows of other classes are kept even when the rule above
        flags them (``issues_["is_issue"]`` stays ``False`` for them).

    Attributes
    ----------
    estimator_ : BaseToDClassifier
        The fitted ToD estimator.
    method_ : str
        The score used (``method``, with ``"auto"`` resolved).
    scores_ : ndarray of shape (n_samples,)
        Signed score per training row; more negative = more harmful.
    sample_indices_ : ndarray of int
        Positions of the kept rows, in input order.
    sampling_strategy_ : dict
        The classes that may lose rows (keys).
    issues_ : pandas.DataFrame
        One row per training row: ``key`` (the raw instance key the estimator
        kept, ``estimator_.instance_keys_``), ``score``, ``rank`` (1 = most
        harmful), ``is_issue``, ``label``, ``oos_label``, ``oos_proba_label``,
        ``oos_confidence``, ``self_influence``. Its index is X's index for a
        DataFrame, else the row positions.
    n_dropped_ : int
    n_features_in_ : int
        Defined when ``X`` is a 2-D array or a DataFrame.
    feature_names_in_ : ndarray of str
        Defined when ``X`` is a DataFrame with string column names.

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

    _parameter_constraints: dict = {
        **BaseCleaningSampler._parameter_constraints,
        "estimator": [BaseToDClassifier, None],
        "method": [StrOptions({*METHODS, AUTO_METHOD})],
        # a string is "auto" or a number, read by scores.parse_drop_fraction in fit
        "drop_fraction": [real_interval(0, 1, closed="left"), str],
        "threshold": [real_interval(None, None, closed="neither"), None],
        "eval_set": [tuple, list, None],
    }

    def __init__(
        self,
        estimator: BaseToDClassifier | None = None,
        *,
        method: str = AUTO_METHOD,
        drop_fraction: float | str = "auto",
        threshold: float | None = None,
        eval_set: tuple[Any, Any] | None = None,
        sampling_strategy: Any = "all",
    ) -> None:
        super().__init__(sampling_strategy=sampling_strategy)
        self.estimator = estimator
        self.method = method
        self.drop_fraction = drop_fraction
        self.threshold = threshold
        self.eval_set = eval_set

    def _check_X_y(self, X: Any, y: Any, accept_sparse: Any = None) -> tuple[Any, Any, bool]:
        """Validate ``y``; leave ``X`` to the estimator (texts, images, DataFrames...).

        ``X`` keeps its type (a DataFrame keeps its index), except a list, which
        becomes an array (imbalanced-learn turns the kept rows back into a list).
        """
        y, binarize_y = check_target_type(y, indicate_one_vs_all=True)
        if isinstance(X, list):
            try:
                X = np.asarray(X)
            except ValueError:  # ragged rows
                X = np.array(X + [None], dtype=object)[:-1]
        n_x = X.shape[0] if hasattr(X, "shape") else None if isinstance(X, dict) else len(X)
        if n_x is not None and n_x != y.shape[0]:
            raise ValueError(f"y has {y.shape[0]} entries but X has {n_x} rows.")
        X = validate_data(self, X, reset=True, skip_check_array=True)
        return X, y, binarize_y

    def _make_estimator(self) -> BaseToDClassifier:
        if self.estimator is None:
            from .estimators.mlp import ToDMLPClassifier

            return ToDMLPClassifier()
        if not self.estimator.turn_over:
            raise ValueError("estimator has turn_over=False: ToDCleanser needs turn-over dropout.")
        return clone(self.estimator)

    def _fit_resample(self, X: Any, y: Any, instance_keys: Any = None) -> tuple[Any, Any]:
        method, drop_fraction, threshold = check_cleansing_params(
            self.method, self.drop_fraction, self.threshold, self.eval_set
        )
        est = self._make_estimator()
        # The estimator is a user-given object: validate its parameters even though
        # imbalanced-learn's fit_resample skips nested validation.
        with config_context(skip_parameter_validation=False):
            est.fit(X, y, instance_keys=instance_keys)
        self.estimator_ = est
        self.method_ = method = resolve_method(method, est)
        labels = est.y_train_
        scores = fitted_scores(est, method, self.eval_set)
        rank, is_issue = select_issues(scores, labels, **auto_count_views(est),
                                       drop_fraction=drop_fraction, threshold=threshold)
        is_issue &= np.isin(np.asarray(y), list(self.sampling_strategy_))
        self.scores_ = scores
        self.sample_indices_ = np.flatnonzero(~is_issue)
        self.n_dropped_ = int(is_issue.sum())
        self.issues_ = self._issues_frame(X, scores, rank, is_issue)
        logger.info("ToDCleanser(method=%s) flags %d of %d rows", method, self.n_dropped_,
                    labels.shape[0])
        return (_safe_indexing(X, self.sample_indices_),
                _safe_indexing(y, self.sample_indices_))

    def _issues_frame(self, X: Any, scores: np.ndarray, rank: np.ndarray,
                      is_issue: np.ndarray) -> pd.DataFrame:
        est = self.estimator_
        labels = est.y_train_
        n = labels.shape[0]
        oos_label = np.argmax(est.oos_proba_, axis=1)
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else pd.RangeIndex(n)
        return pd.DataFrame(
            {
                "key": est.instance_keys_,
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

    def fit(self, X: Any, y: Any, instance_keys: Any = None) -> ToDCleanser:
        """Fit the ToD estimator on ``(X, y)`` and score every training row.

        The same work as :meth:`fit_resample`, returning ``self`` (so the
        cleanser can end a :class:`sklearn.pipeline.Pipeline`).

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
        self.fit_resample(X, y, instance_keys=instance_keys)
        return self

    def fit_resample(self, X: Any, y: Any, instance_keys: Any = None) -> tuple[Any, Any]:
        """Fit, then return the kept rows of ``X`` and ``y`` (imbalanced-learn contract).

        A DataFrame ``X`` (or Series ``y``) comes back as one, with the original
        index of the kept rows; a list comes back as a list.

        Parameters
        ----------
        X : array-like
        y : array-like of shape (n_samples,)
        instance_keys : array-like of shape (n_samples,), optional
            Stable unique keys, passed to the estimator's ``fit``.

        Returns
        -------
        X_kept, y_kept
        """
        return super().fit_resample(X, y, instance_keys=instance_keys)

    def get_kept_mask(self) -> np.ndarray:
        """Boolean mask of the kept rows, in input order."""
        check_is_fitted(self)
        return ~self.issues_["is_issue"].to_numpy()

    def __sklearn_tags__(self):  # noqa: D105 - imbalanced-learn's tags
        tags = super().__sklearn_tags__()
        tags.sampler_tags.sample_indices = True
        return tags
