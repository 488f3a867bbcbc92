"""Cleansing scores: arrays in, arrays out (the functional core of :class:`ToDCleanser`).

Every score is oriented the same way: **the more negative, the more harmful** the
training row. With ``p_flip`` the flipped (out-of-sample) sub-network, ``p_seen``
the instance's own sub-network, ``p_full`` the full network and ``y_i`` the given
label of row ``i``:

==================== =====================================================================
method               score of training row ``i``
==================== =====================================================================
``eval_influence``   ``sum_t I(z_t, z_i)`` over a validation set (the paper's cleansing)
``self_influence``   ``-I(z_i, z_i) = log p_flip(y_i|x_i) - log p_seen(y_i|x_i)``
``memorisation``     ``p_flip(y_i|x_i) - p_seen(y_i|x_i)``
``oos_likelihood``   ``log p_flip(y_i|x_i)``
``confident_learning`` ``p_flip(y_i|x_i) - max_{j != y_i} p_flip(j|x_i)`` (normalised
                     margin; the confident-joint rule decides the flagged rows)
``full_likelihood``  ``log p_full(y_i|x_i)`` (in-sample, full network)
``two_view_margin``  ``m(p_full) + m(p_oos)``, ``m(p) = log p(y_i|x_i) - log max_{j != y_i}
                     p(j|x_i)``: the given label's log-margin in both views (:func:`log_margin`)
``two_view_likelihood`` ``log p_full(y_i|x_i) + log p_flip(y_i|x_i)``: the given label's
                     log-likelihood in both views
==================== =====================================================================

``method="auto"`` (the default of :class:`~tod_cleanse.ToDCleanser` and the adapters)
names the estimator family's own default, its class attribute ``default_method``
(:func:`resolve_method`): chosen per family from the benchmark (README, "Benchmarks").
"""

from __future__ import annotations

import numbers

import numpy as np

from .issue_count import auto_count_views, confident_joint_issues, estimate_issue_count

__all__ = [
    "METHODS",
    "DEFAULT_METHOD",
    "AUTO_METHOD",
    "resolve_method",
    "log_margin",
    "given_label_proba",
    "cleansing_scores",
    "confident_joint_issues",
    "estimate_issue_count",
    "auto_count_views",
    "flag_issues",
    "normalized_margin",
    "parse_drop_fraction",
    "check_threshold",
    "check_cleansing_params",
    "select_issues",
]

METHODS = (
    "eval_influence",
    "self_influence",
    "memorisation",
    "oos_likelihood",
    "confident_learning",
    "full_likelihood",
    "two_view_margin",
    "two_view_likelihood",
)
#: The default of a family that names no other (``default_method``); chosen from the
#: benchmark (see README, "Benchmarks").
DEFAULT_METHOD = "full_likelihood"
#: The ``method`` that resolves to the estimator family's ``default_method``.
AUTO_METHOD = "auto"


def resolve_method(method: str, estimator: object = None) -> str:
    """The cleansing score that ``method`` names for ``estimator``.

    ``"auto"`` (:data:`AUTO_METHOD`) is the estimator family's class attribute
    ``default_method`` (:data:`DEFAULT_METHOD` when it has none, or with no
    estimator); any other name is returned as it is (validate it with
    :func:`check_cleansing_params`).

    Parameters
    ----------
    method : str
        ``"auto"`` or one of :data:`METHODS`.
    estimator : object, optional
        A ToD estimator (fitted or not) or its class.

    Returns
    -------
    str

    Examples
    --------
    >>> class VisionFamily:
    ...     default_method = "two_view_margin"
    >>> resolve_method("auto", VisionFamily()), resolve_method("auto")
    ('two_view_margin', 'full_likelihood')
    >>> resolve_method("self_influence", VisionFamily())
    'self_influence'
    """
    if method != AUTO_METHOD:
        return method
    return getattr(estimator, "default_method", DEFAULT_METHOD)

_EPS = 1e-12


def parse_drop_fraction(value: object, name: str = "drop_fraction") -> float | str:
    """Read a drop fraction: ``"auto"``, or a number in [0, 1) (a float or numeric string).

    The one parser of "auto or fraction" for the cleanser, the adapters and the CLI.

    Parameters
    ----------
    value : str or float
        ``"auto"``, a real number, or a string holding one.
    name : str, default="drop_fraction"
        Named in the error message (e.g. ``"--drop-fraction"`` on the command line).

    Returns
    -------
    float or "auto"

    Raises
    ------
    ValueError
        If ``value`` is neither ``"auto"`` nor a finite number in [0, 1).

    Examples
    --------
    >>> parse_drop_fraction("auto"), parse_drop_fraction("0.05"), parse_drop_fraction(0.1)
    ('auto', 0.05, 0.1)
    """
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    number: float | None = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    ):
        number = float(value)
    if number is None or not np.isfinite(number) or not 0 <= number < 1:
        raise ValueError(f"{name} must be 'auto' or a number in [0, 1), got {value!r}.")
    return number


def check_threshold(value: object, name: str = "threshold") -> float | None:
    """``None``, or a finite real number (not a bool) as a float; ValueError naming ``name``.

    Examples
    --------
    >>> check_threshold(None), check_threshold(-2)
    (None, -2.0)
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real) or not np.isfinite(
        float(value)
    ):
        raise ValueError(f"{name} must be a finite number or None, got {value!r}.")
    return float(value)


def check_cleansing_params(
    method: str,
    drop_fraction: object = "auto",
    threshold: object = None,
    eval_set: object = None,
    *,
    require_eval_set: bool = True,
) -> tuple[str, float | str, float | None]:
    """Validate the cleansing settings once, for the cleanser, the adapters and the CLI.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`, or ``"auto"`` (resolved later by :func:`resolve_method`).
    drop_fraction : "auto", float or numeric string, default="auto"
        Read by :func:`parse_drop_fraction`.
    threshold : float or None, default=None
        Read by :func:`check_threshold`.
    eval_set : tuple (X_val, y_val) or None, default=None
        Only with ``method="eval_influence"``, which needs it.
    require_eval_set : bool, default=True
        ``False`` lets ``method="eval_influence"`` pass without ``eval_set`` (for a
        caller that reads the validation data later, e.g. from a file).

    Returns
    -------
    method, drop_fraction, threshold
        ``drop_fraction`` is ``"auto"`` or a float; ``threshold`` a float or None.

    Raises
    ------
    ValueError
        Naming the culprit: ``method``, ``drop_fraction``, ``threshold`` or ``eval_set``.

    Examples
    --------
    >>> check_cleansing_params("self_influence", "0.05")
    ('self_influence', 0.05, None)
    >>> check_cleansing_params("eval_influence")
    Traceback (most recent call last):
    ...
    ValueError: method='eval_influence' needs eval_set=(X_val, y_val).
    """
    if not isinstance(method, str) or method not in (*METHODS, AUTO_METHOD):
        raise ValueError(f"method must be 'auto' or one of {METHODS}, got {method!r}.")
    if eval_set is None:
        if method == "eval_influence" and require_eval_set:
            raise ValueError("method='eval_influence' needs eval_set=(X_val, y_val).")
    else:
        if method != "eval_influence":
            raise ValueError(
                f"eval_set is only used by method='eval_influence', got method={method!r}."
            )
        if not isinstance(eval_set, tuple | list) or len(eval_set) != 2:
            raise ValueError(
                f"eval_set must be a tuple (X_val, y_val), got {type(eval_set).__name__}."
            )
    return method, parse_drop_fraction(drop_fraction), check_threshold(threshold)


def given_label_proba(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``proba[i, labels[i]]`` for every row.

    Examples
    --------
    >>> given_label_proba(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0])).tolist()
    [0.9, 0.3]
    """
    labels = np.asarray(labels, dtype=np.int64)
    return np.asarray(proba)[np.arange(labels.shape[0]), labels]


def normalized_margin(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``p(y_i) - max_{j != y_i} p(j)``, in ``[-1, 1]``; negative when another class wins.

    Examples
    --------
    >>> normalized_margin(np.array([[0.6, 0.4], [0.2, 0.8]]), np.array([0, 0])).round(2).tolist()
    [0.2, -0.6]
    """
    proba = np.asarray(proba, dtype=np.float64)
    return given_label_proba(proba, labels) - _best_other(proba, labels)


def _best_other(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``max_{j != y_i} p(j)`` for every row."""
    others = np.array(proba, dtype=np.float64)
    others[np.arange(others.shape[0]), np.asarray(labels, dtype=np.int64)] = -np.inf
    return others.max(axis=1)


def log_margin(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``log p(y_i) - log max_{j != y_i} p(j)``: the given label's margin in log-odds.

    The logit margin of the area under the margin (Pleiss et al., NeurIPS 2020) at
    one point of training; negative when another class is more probable.

    Examples
    --------
    >>> log_margin(np.array([[0.6, 0.4], [0.2, 0.8]]), np.array([0, 0])).round(3).tolist()
    [0.405, -1.386]
    """
    proba = np.asarray(proba, dtype=np.float64)
    return (np.log(given_label_proba(proba, labels) + _EPS)
            - np.log(_best_other(proba, labels) + _EPS))


def flag_issues(
    scores: np.ndarray,
    *,
    drop_fraction: float | str = "auto",
    threshold: float | None = None,
    auto_count: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank rows (1 = most harmful) and flag the ones to drop. One rule for every caller.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Signed scores, more negative = more harmful.
    drop_fraction : float or "auto", default="auto"
        Drop the ``floor(drop_fraction * n)`` lowest scores; ``"auto"`` drops the
        ``auto_count`` lowest.
    threshold : float or None
        If set, flag every score below it (``drop_fraction`` is then ignored).
    auto_count : int or None
        Rows to drop under ``"auto"`` (see :func:`estimate_issue_count`).

    Returns
    -------
    rank : ndarray of int64, shape (n,)
    is_issue : ndarray of bool, shape (n,)

    Examples
    --------
    >>> rank, flag = flag_issues(np.array([0.5, -2.0, -0.1]), drop_fraction=0.5)
    >>> rank.tolist(), flag.tolist()
    ([3, 1, 2], [False, True, False])
    """
    scores = np.asarray(scores, dtype=np.float64)
    threshold = check_threshold(threshold)
    n = scores.shape[0]
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(scores, kind="stable")] = np.arange(1, n + 1)
    if threshold is not None:
        return rank, scores < threshold
    drop_fraction = parse_drop_fraction(drop_fraction)
    if drop_fraction == "auto":
        if auto_count is None:
            raise ValueError("drop_fraction='auto' needs auto_count.")
        return rank, rank <= int(auto_count)
    return rank, rank <= int(np.floor(float(drop_fraction) * n))


def select_issues(
    scores: np.ndarray,
    labels: np.ndarray,
    proba: np.ndarray | None,
    *,
    oos_proba: np.ndarray | None = None,
    drop_fraction: float | str = "auto",
    threshold: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scores -> (rank, is_issue), with the ``"auto"`` count taken from ``proba``.

    The decision of :class:`~tod_cleanse.ToDCleanser`: :func:`flag_issues` with
    ``auto_count = estimate_issue_count(proba, labels, oos_proba)`` (the cleanser
    passes the full network's ``train_proba_`` and ``oos_proba_``, see
    :func:`auto_count_views`). ``proba`` and ``oos_proba`` are only read under
    ``"auto"``.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        More negative = more harmful.
    labels : ndarray of int, shape (n,)
        Encoded given labels.
    proba : ndarray of shape (n, k) or None
        Probabilities the ``"auto"`` count is estimated from.
    oos_proba : ndarray of shape (n, k) or None, default=None
        A second, out-of-sample view for the ``"auto"`` count.
    drop_fraction : float or "auto", default="auto"
    threshold : float or None, default=None

    Returns
    -------
    rank : ndarray of int64, shape (n,)
        1 = most harmful.
    is_issue : ndarray of bool, shape (n,)

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.95, 0.05]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> scores = np.log(proba[np.arange(4), labels])
    >>> select_issues(scores, labels, proba)[1].tolist()
    [False, False, False, True]
    """
    auto_count = None
    if threshold is None and parse_drop_fraction(drop_fraction) == "auto":
        if proba is None:
            raise ValueError("drop_fraction='auto' needs proba to estimate the issue count.")
        auto_count = estimate_issue_count(proba, labels, oos_proba)
    return flag_issues(scores, drop_fraction=drop_fraction, threshold=threshold,
                       auto_count=auto_count)


def cleansing_scores(
    method: str,
    labels: np.ndarray,
    *,
    oos_proba: np.ndarray | None = None,
    seen_proba: np.ndarray | None = None,
    full_proba: np.ndarray | None = None,
    self_influence: np.ndarray | None = None,
    eval_influence: np.ndarray | None = None,
) -> np.ndarray:
    """Per-row cleansing score of ``method``; more negative = more harmful.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    labels : ndarray of int, shape (n,)
        Encoded given labels.
    oos_proba, seen_proba, full_proba : ndarray of shape (n, k), optional
        Flipped, seen and full-network probabilities of the training rows.
    self_influence : ndarray of shape (n,), optional
        ``I(z_i, z_i)``.
    eval_influence : ndarray of shape (n,), optional
        ``sum_t I(z_t, z_i)`` over a validation set.

    Returns
    -------
    ndarray of float64, shape (n,)

    Examples
    --------
    >>> oos = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> cleansing_scores("oos_likelihood", np.array([0, 0]), oos_proba=oos).round(3).tolist()
    [-0.105, -1.609]
    """
    labels = np.asarray(labels, dtype=np.int64)

    def need(name: str, value: np.ndarray | None) -> np.ndarray:
        if value is None:
            raise ValueError(f"method={method!r} needs {name}.")
        return np.asarray(value, dtype=np.float64)

    def loglik(name: str, value: np.ndarray | None) -> np.ndarray:
        """``log p(y_i|x_i)`` of the view ``name``."""
        return np.log(given_label_proba(need(name, value), labels) + _EPS)

    if method == "eval_influence":
        return need("eval_influence", eval_influence).copy()
    if method == "self_influence":
        return -need("self_influence", self_influence)
    if method == "memorisation":
        return given_label_proba(need("oos_proba", oos_proba), labels) - given_label_proba(
            need("seen_proba", seen_proba), labels
        )
    if method == "oos_likelihood":
        return loglik("oos_proba", oos_proba)
    if method == "confident_learning":
        return normalized_margin(need("oos_proba", oos_proba), labels)
    if method == "full_likelihood":
        return loglik("full_proba", full_proba)
    if method == "two_view_margin":
        return (log_margin(need("full_proba", full_proba), labels)
                + log_margin(need("oos_proba", oos_proba), labels))
    if method == "two_view_likelihood":
        return loglik("full_proba", full_proba) + loglik("oos_proba", oos_proba)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
