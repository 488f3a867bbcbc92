"""How many training rows are mislabeled: confident learning's calibrated joint.

The count behind ``drop_fraction="auto"``: :func:`estimate_issue_count` on the two
views of a fitted ToD estimator (:func:`auto_count_views`), and the confident-joint
rule of :func:`confident_joint_issues`. Arrays in, arrays out; re-exported by
:mod:`tod_cleanse.scores`. Confident learning: Northcutt, Jiang, Chuang, JAIR 70, 2021.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auto_count_views", "confident_joint_issues", "estimate_issue_count"]


def confident_joint_issues(proba: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows off the diagonal of the confident joint (confident learning [2]_).

    A row is *confidently* of class ``j`` when ``p(j|x) >= t_j``, the mean
    probability of class ``j`` over the rows labelled ``j``; among several such
    classes the most probable one wins. A row whose confident class exists and
    differs from its given label is a label issue.

    Parameters
    ----------
    proba : ndarray of shape (n, k)
        Out-of-sample probabilities.
    labels : ndarray of int, shape (n,)

    Returns
    -------
    ndarray of bool, shape (n,)

    References
    ----------
    .. [2] C. Northcutt, L. Jiang, I. Chuang. *Confident Learning: Estimating
       Uncertainty in Dataset Labels*. JAIR 70, 2021.

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.95, 0.05]])
    >>> confident_joint_issues(proba, np.array([0, 0, 1, 1])).tolist()
    [False, False, False, True]
    """
    has_confident, assigned = _confident_classes(proba, labels)
    return has_confident & (assigned != np.asarray(labels, dtype=np.int64))


def _confident_classes(proba: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether some class is confident (``p(j|x) >= t_j``), and the most probable one."""
    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    k = proba.shape[1]
    thresholds = np.full(k, np.inf)
    for j in range(k):
        rows = labels == j
        if rows.any():
            thresholds[j] = proba[rows, j].mean()
    confident = np.where(proba >= thresholds[None, :] - 1e-12, proba, -np.inf)
    return np.isfinite(confident).any(axis=1), confident.argmax(axis=1)


def estimate_issue_count(proba: np.ndarray, labels: np.ndarray,
                         oos_proba: np.ndarray | None = None) -> int:
    """Number of label issues estimated by a calibrated confident joint [2]_.

    With ``proba`` alone: counts (given label ``i``, confident class ``j``) pairs
    as in :func:`confident_joint_issues`, rescales each row of that joint so that
    it sums to the number of rows labelled ``i`` (calibration), and returns the
    mass off the diagonal, rounded.

    With a second view ``oos_proba`` (what :class:`ToDCleanser` passes: the full
    network's in-sample ``train_proba_`` and the out-of-sample ``oos_proba_``): a
    row sits off its label's diagonal only where **both** views are confident of
    a class other than its given label (at the full network's class); the joint
    counts the rows confident in either view, and is calibrated as above. A model
    error that only one view makes is not counted as a label issue, so the count
    no longer carries the floor of confidently misclassified clean rows that a
    single view does.

    Measured with the MLP defaults, 11 noisy cells x 2 seeds
    (``examples/benchmarks/results/oos/count.md``): the two-view count is
    within +-20% of the true number of flipped labels on 16 of 22, against 10 of 22
    for the full network alone (which overshoots Fashion-MNIST by 14-98%; the two-view
    count is within +-20% on all 8 Fashion-MNIST 10k cells); it undercounts digits
    by up to 26% (model errors are rare there, and a flip that one view misses is
    lost) and still counts 5.2% of clean Fashion-MNIST 3k (one view: 10.1-10.5%;
    5-fold cross-validation: 12%) and 11-13% of a clean set with overlapping classes
    (one view: 16-16.5%): on clean labels it counts the rows that both views
    confidently misclassify, which no count from the model's own predictions can
    tell from label noise. With the flipped sub-network as the second view (no
    members, ``count_no_members.md``): 6 of 7 noisy cells against 4 of 7.
    :mod:`tod_cleanse.diagnostics` warns when it exceeds half of the rows.

    Parameters
    ----------
    proba : ndarray of shape (n, k)
        Class probabilities of the training rows (the full network's in-sample
        ``train_proba_``, or any out-of-sample ``pred_probs``).
    labels : ndarray of int, shape (n,)
        Encoded given labels.
    oos_proba : ndarray of shape (n, k) or None, default=None
        A second, out-of-sample view of the same rows (``oos_proba_``).

    Returns
    -------
    int

    Examples
    --------
    >>> proba = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.95, 0.05]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> estimate_issue_count(proba, labels)
    1
    >>> oos = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.3, 0.7]])
    >>> estimate_issue_count(proba, labels, oos_proba=oos)  # row 3: only one view disagrees
    0
    """
    labels = np.asarray(labels, dtype=np.int64)
    has_confident, assigned = _confident_classes(proba, labels)
    if oos_proba is None:
        return _calibrated_off_diagonal(labels, assigned, has_confident, np.shape(proba)[1])
    if np.shape(oos_proba) != np.shape(proba):
        raise ValueError(f"oos_proba must have the shape of proba {np.shape(proba)}, got "
                         f"{np.shape(oos_proba)}.")
    has_oos, assigned_oos = _confident_classes(oos_proba, labels)
    off = has_confident & has_oos & (assigned != labels) & (assigned_oos != labels)
    return _calibrated_off_diagonal(labels, np.where(off, assigned, labels),
                                    has_confident | has_oos, np.shape(proba)[1])


def _calibrated_off_diagonal(labels: np.ndarray, assigned: np.ndarray, counted: np.ndarray,
                            n_classes: int) -> int:
    """Off-diagonal mass of the calibrated joint of (given label, assigned class).

    The joint counts the ``counted`` rows at ``(labels[i], assigned[i])``; each row
    of it is rescaled to the number of rows given that label [2]_. The count
    :func:`estimate_issue_count` returns, for any rule that assigns classes.

    Examples
    --------
    >>> _calibrated_off_diagonal(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]),
    ...                         np.array([True, True, True, False]), 2)
    1
    """
    n_per_label = np.bincount(labels, minlength=n_classes)
    joint = np.zeros((n_classes, n_classes))
    np.add.at(joint, (labels[counted], assigned[counted]), 1.0)
    joint = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1.0) * n_per_label[:, None]
    return int(round(joint.sum() - np.trace(joint)))


def auto_count_views(estimator: object) -> dict[str, np.ndarray]:
    """The views a fitted ToD estimator gives the ``"auto"`` count, as keyword arguments.

    ``{"proba": train_proba_, "oos_proba": oos_proba_}``: the full network's
    in-sample probabilities and the out-of-sample view (out-of-fold members, or
    the flipped sub-networks) of the training rows. Every caller of
    :func:`select_issues` on a fitted estimator (the cleanser, the Datalab issue
    type, the finder comparison, the fit diagnostics) reads them here.

    Examples
    --------
    >>> class Fitted:
    ...     train_proba_ = np.array([[0.9, 0.1]])
    ...     oos_proba_ = np.array([[0.6, 0.4]])
    >>> sorted(auto_count_views(Fitted()))
    ['oos_proba', 'proba']
    """
    return {"proba": estimator.train_proba_,
            "oos_proba": getattr(estimator, "oos_proba_", None)}
