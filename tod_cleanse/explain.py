"""Which training rows made the model predict this? Top-k helpful and harmful rows.

For a target ``z_t`` the influence ``I(z_t, z_i)`` of every training row ``z_i`` is
the value of :meth:`~tod_cleanse.estimators.base.BaseToDClassifier.score_influence`:
given the training rows (``train_set``), the first-layer gradient cosine that tracks
retraining (``estimate="gradient"``); without them, the paper's turn-over dropout
estimate ``L(z_t; flipped_i) - L(z_t; seen_i)`` [1]_. Positive values helped the
target's label, negative ones pushed the model away from it.
:func:`explain` keeps, for every target, the ``k`` most positive (``helpful``) and
the ``k`` most negative (``harmful``) training rows, reducing each block of
:meth:`~tod_cleanse.estimators.base.BaseToDClassifier.iter_influence` to its top-k
as soon as it is computed, so memory stays bounded by one block plus ``2k`` rows
per target, whatever the sizes of the training and target sets.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

__all__ = ["explain", "EXPLAIN_COLUMNS"]

#: Columns of the DataFrame returned by :func:`explain`, in order.
EXPLAIN_COLUMNS = (
    "target",
    "kind",
    "rank",
    "train_index",
    "train_key",
    "influence",
    "train_label",
    "predicted_label",
    "true_label",
)


def _filter_codes(estimator: Any, label_filter: Any, pred_enc: np.ndarray,
                  true_enc: np.ndarray | None) -> np.ndarray | list[int] | None:
    """Per-target class codes (array) or a fixed set of codes (list), or None."""
    if label_filter is None:
        return None
    if isinstance(label_filter, str) and label_filter == "predicted":
        return pred_enc
    if isinstance(label_filter, str) and label_filter == "true":
        if true_enc is None:
            raise ValueError("label_filter='true' needs y_t (the true labels of the targets).")
        return true_enc
    values = (list(label_filter) if isinstance(label_filter, list | tuple | set | np.ndarray)
              else [label_filter])
    lookup = {c: i for i, c in enumerate(estimator.classes_.tolist())}
    codes = []
    for value in values:
        key = value.item() if isinstance(value, np.generic) else value
        if key not in lookup:
            raise ValueError(
                f"label_filter must be None, 'predicted', 'true', a class label or a list of "
                f"class labels; {value!r} is not among classes_ {estimator.classes_.tolist()!r}."
            )
        codes.append(lookup[key])
    return codes


def _top_k(values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of the ``k`` largest finite entries of each row.

    Returns ``(idx, val)`` of shape ``(n_rows, k')``, sorted descending, ties
    broken by the lower position (the order of a stable sort); missing entries
    (fewer than ``k`` finite values) have ``idx = -1``.
    """
    n_rows, n_cols = values.shape
    kk = min(k, n_cols)
    idx = np.full((n_rows, kk), -1, dtype=np.int64)
    val = np.full((n_rows, kk), -np.inf)
    for r in range(n_rows):
        v = values[r]
        if kk < n_cols:
            thr = v[np.argpartition(-v, kk - 1)[:kk]].min()
            # every entry tied with the k-th value competes, so ties go to the lower position
            cand = np.flatnonzero(v >= thr) if np.isfinite(thr) else np.flatnonzero(np.isfinite(v))
        else:
            cand = np.flatnonzero(np.isfinite(v))
        best = cand[np.lexsort((cand, -v[cand]))][:kk]
        idx[r, :best.shape[0]] = best
        val[r, :best.shape[0]] = v[best]
    return idx, val


def _top_rows(estimator: Any, X_t: Any, y_for_influence: np.ndarray, filt: Any,
              y_train: np.ndarray, k: int, estimate: str = "auto",
              train_set: tuple[Any, Any] | None = None) -> dict[str, np.ndarray]:
    """Reduce every block of influences to the top-``k`` helpful and harmful rows."""
    parts: list[dict[str, np.ndarray]] = []
    for rows, block in estimator.iter_influence(X_t, y_for_influence, estimate=estimate,
                                                train_set=train_set):
        if filt is None:
            allowed = np.ones((1, y_train.shape[0]), dtype=bool)
        elif isinstance(filt, list):
            allowed = np.isin(y_train, filt)[None, :]
        else:
            allowed = y_train[None, :] == filt[rows][:, None]
        for kind, sign in (("helpful", 1.0), ("harmful", -1.0)):
            signed = np.where(allowed & (sign * block > 0), sign * block, -np.inf)
            idx, val = _top_k(signed, k)
            tgt, rnk = np.nonzero(idx >= 0)
            parts.append({
                "target": rows[tgt],
                "kind": np.full(tgt.shape[0], kind, dtype=object),
                "rank": rnk + 1,
                "train_index": idx[tgt, rnk],
                "influence": sign * val[tgt, rnk],
            })
    cols = {name: np.concatenate([p[name] for p in parts]) if parts else np.empty(0)
            for name in ("target", "kind", "rank", "train_index", "influence")}
    return cols


def explain(estimator: Any, X_t: Any, y_t: Any = None, k: int = 5,
            label_filter: Any = None, *, estimate: str = "auto",
            train_set: tuple[Any, Any] | None = None) -> pd.DataFrame:
    """The ``k`` most helpful and ``k`` most harmful training rows of every target.

    Influence ``I(z_t, z_i)`` is the very value
    :meth:`~tod_cleanse.estimators.base.BaseToDClassifier.score_influence` gives
    (computed by the same ``iter_influence`` path, one block of targets at a time,
    each block reduced to its top-k at once: bounded memory).

    Parameters
    ----------
    estimator : BaseToDClassifier
        A fitted ToD estimator (``turn_over=True``).
    X_t : array-like
        Targets, in whatever form the estimator takes.
    y_t : array-like of shape (n_targets,), optional
        True labels of the targets. Given: influence w.r.t. the true label
        (harmful rows pushed the model away from the truth). ``None``: influence
        w.r.t. the label the model predicts (helpful rows support the prediction).
    k : int, default=5
        Rows per target and kind. ``helpful`` rows have ``influence > 0``,
        ``harmful`` rows ``influence < 0``, so a target may get fewer than ``k``.
    label_filter : None, "predicted", "true", a class label or a list of labels
        Consider only training rows whose *given* label is the target's predicted
        label (``"predicted"``: the paper's view of a wrong prediction: among the
        rows labelled with the wrong answer, which pushed the model hardest), the
        target's true label (``"true"``, needs ``y_t``) or one of the given classes.
        The strings ``"predicted"`` and ``"true"`` take precedence over class
        labels of the same spelling.
    estimate : {"auto", "exact", "gradient"}, default="auto"
        Which influence estimate ranks the rows (see ``score_influence``).
        ``"gradient"`` tracks retraining far more closely on the cells measured
        (``examples/benchmarks/results/influence/``) and needs ``train_set``;
        ``"auto"`` takes it when ``train_set`` is given, else ``"exact"``.
    train_set : tuple ``(X_train, y_train)``, optional
        The rows the estimator was fitted on, in the same order: pass them for the
        faithful estimate.

    Returns
    -------
    pandas.DataFrame
        One row per (target, training row) pair, ordered by target, kind
        (``helpful`` first) and rank, with columns ``target`` (position in
        ``X_t``), ``kind``, ``rank`` (1 = strongest), ``train_index`` (position in
        the training data), ``train_key`` (the key given to ``fit``, default the
        position), ``influence``, ``train_label`` (given label of the training
        row), ``predicted_label`` and ``true_label`` (of the target; ``None``
        without ``y_t``).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(32,), max_epochs=20, random_state=0,
    ...                        verbose=0).fit(X, y)
    >>> table = est.explain(X[:2], y[:2], k=3)
    >>> table.groupby(["target", "kind"]).size().tolist()
    [3, 3, 3, 3]
    >>> bool((table.query("kind == 'harmful'").influence < 0).all())
    True

    With the training rows, the rows that retraining would confirm (a cosine in
    ``[-1, 1]``):

    >>> faithful = est.explain(X[:2], y[:2], k=3, train_set=(X, y))
    >>> bool(faithful.influence.abs().max() <= 1.0)
    True
    """
    check_is_fitted(estimator)
    if not getattr(estimator, "turn_over", True):
        raise ValueError("explain needs turn-over dropout; this estimator has turn_over=False.")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    k = int(k)
    classes = estimator.classes_
    pred_enc = np.argmax(estimator.predict_proba(X_t), axis=1).astype(np.int64)
    n_t = pred_enc.shape[0]
    true_enc = None
    if y_t is not None:
        true_enc = estimator.encode_labels(y_t, name="y_t")
        if true_enc.shape[0] != n_t:
            raise ValueError(f"y_t has {true_enc.shape[0]} entries but X_t has {n_t} rows.")
    filt = _filter_codes(estimator, label_filter, pred_enc, true_enc)
    y_train = np.asarray(estimator.y_train_)
    keys = estimator.instance_keys_  # raw keys, as the user gave them
    y_for_influence = classes[true_enc if true_enc is not None else pred_enc]

    cols = _top_rows(estimator, X_t, y_for_influence, filt, y_train, k, estimate, train_set)
    target = cols["target"].astype(np.int64)
    train_index = cols["train_index"].astype(np.int64)
    table = pd.DataFrame({
        "target": target,
        "kind": pd.Categorical(cols["kind"], categories=["helpful", "harmful"]),
        "rank": cols["rank"].astype(np.int64),
        "train_index": train_index,
        "train_key": np.asarray(keys)[train_index],
        "influence": cols["influence"].astype(np.float64),
        "train_label": classes[y_train[train_index]],
        "predicted_label": classes[pred_enc[target]],
        "true_label": (classes[true_enc[target]] if true_enc is not None
                       else np.full(target.shape[0], None, dtype=object)),
    })
    table = table.sort_values(["target", "kind", "rank"], kind="stable").reset_index(drop=True)
    return table
