"""What the report shows, collected from a fitted :class:`~tod_cleanse.cleanser.ToDCleanser`.

:func:`fitted_cleanser` fits (or takes) the cleanser; a cleanser that is already
fitted is checked against the ``X, y`` (and keys) it is shown with, so no row is
ever printed next to another row's key, label or score. :func:`collect` gathers
the arrays, the summary and the explanations of misclassified test examples;
:mod:`~tod_cleanse.report.figures` and :mod:`~tod_cleanse.report.html` only draw
and lay them out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import _num_samples, check_is_fitted

from ..cleanser import ToDCleanser
from ..estimators.base import BaseToDClassifier
from ..explain import explain

logger = logging.getLogger(__name__)

__all__ = ["TestCases", "ReportData", "fitted_cleanser", "check_fitted_on", "collect"]

#: rows of X re-predicted to check that X is the data a fitted cleanser saw
_FINGERPRINT_ROWS = 32
#: largest difference of a probability allowed between ``train_proba_`` and a fresh
#: prediction of the same row, by device type: far above float32 noise (other batch
#: sizes or padding on a CPU; TF32 convolutions and other kernels on a GPU), below
#: what a different row gives even from a barely trained model on a CPU
_FINGERPRINT_ATOL = {"cpu": 1e-4}
_FINGERPRINT_ATOL_ACCELERATOR = 1e-2


@dataclass
class TestCases:
    """Misclassified test examples and the training rows behind them."""

    proba: np.ndarray
    pred: np.ndarray
    y_test: np.ndarray
    wrong: np.ndarray
    n_wrong: int
    table: pd.DataFrame | None
    paper: bool


@dataclass
class ReportData:
    """Everything the report shows, one entry per training row where it is an array."""

    cleanser: ToDCleanser
    estimator: BaseToDClassifier
    classes: np.ndarray
    labels: np.ndarray
    keys: np.ndarray
    rank: np.ndarray
    scores: np.ndarray
    dropped: np.ndarray
    oos: np.ndarray
    oos_pred: np.ndarray
    confusion: np.ndarray
    summary: list[tuple[str, str]]
    cases: TestCases | None


def check_fitted_on(cleanser: ToDCleanser, X: Any, y: Any, instance_keys: Any) -> None:
    """Raise ValueError unless ``X, y`` (and keys) are what ``cleanser`` was fitted on.

    ``y`` must equal the training labels row by row, ``instance_keys`` (if given)
    the training keys, and the full network's probabilities on up to 32 rows of
    ``X`` must equal the ones stored at fit (``train_proba_``): a cheap
    fingerprint that catches reordered or different rows.
    """
    est = cleanser.estimator_
    n = len(cleanser.issues_)
    y_arr = np.asarray(y)
    if y_arr.ndim != 1 or y_arr.shape[0] != n:
        raise ValueError(f"y must be the {n} training labels the fitted ToDCleanser saw; "
                         f"got shape {y_arr.shape}.")
    given = np.asarray(est.classes_)[np.asarray(est.y_train_)]
    if not np.array_equal(y_arr.astype(object), given.astype(object)):
        first = int(np.flatnonzero(y_arr.astype(object) != given.astype(object))[0])
        raise ValueError(f"y does not match the labels the fitted ToDCleanser was trained on "
                         f"(row {first}: {y_arr[first]!r} vs {given[first]!r}); pass its "
                         "training data in the same order.")
    if instance_keys is not None:
        keys = np.asarray(instance_keys, dtype=object)
        trained = cleanser.issues_["key"].to_numpy(dtype=object)
        if keys.shape != trained.shape or not np.array_equal(keys, trained):
            raise ValueError("instance_keys do not match the keys the fitted ToDCleanser was "
                             "trained on (same keys, same order expected).")
    if _num_samples(X) != n:
        raise ValueError(f"X has {_num_samples(X)} rows but the fitted ToDCleanser saw {n}.")
    idx = np.unique(np.linspace(0, n - 1, num=min(n, _FINGERPRINT_ROWS)).astype(np.int64))
    proba = est.predict_proba(_safe_indexing(X, idx))
    device = getattr(getattr(est, "device_", None), "type", "cpu")
    atol = _FINGERPRINT_ATOL.get(device, _FINGERPRINT_ATOL_ACCELERATOR)
    if not np.allclose(proba, np.asarray(est.train_proba_)[idx], rtol=0.0, atol=atol):
        raise ValueError("X does not match the rows the fitted ToDCleanser was trained on "
                         "(its predictions differ from the ones stored at fit); pass its "
                         "training data in the same order.")


def fitted_cleanser(estimator: Any, X: Any, y: Any, instance_keys: Any, method: str,
                    drop_fraction: float | str) -> ToDCleanser:
    """The fitted cleanser behind a report (see :func:`~tod_cleanse.report.write_report`)."""
    if isinstance(estimator, ToDCleanser):
        if hasattr(estimator, "estimator_"):
            check_fitted_on(estimator, X, y, instance_keys)
            return estimator
        return estimator.fit(X, y, instance_keys=instance_keys)
    if estimator is None or isinstance(estimator, BaseToDClassifier):
        if estimator is not None and hasattr(estimator, "classes_"):
            logger.info("write_report: the estimator is cloned and refitted inside a "
                        "ToDCleanser; pass a fitted ToDCleanser to reuse a fit.")
        cleanser = ToDCleanser(estimator, method=method, drop_fraction=drop_fraction)
        return cleanser.fit(X, y, instance_keys=instance_keys)
    raise TypeError(
        "estimator must be a ToDCleanser, a ToD estimator (ToDMLPClassifier, "
        f"ToDBertClassifier, ToDVGGClassifier) or None, got {type(estimator).__name__}."
    )


def _test_cases(est: BaseToDClassifier, X_test: Any, y_test: Any, k: int, label_filter: Any,
                max_test: int, estimate: str = "exact",
                train_set: tuple[Any, Any] | None = None) -> TestCases:
    classes = est.classes_
    proba = est.predict_proba(X_test)
    y_arr = np.asarray(y_test)
    pred = classes[np.argmax(proba, axis=1)]
    wrong_all = np.flatnonzero(pred != y_arr)
    wrong = wrong_all[np.argsort(-proba[wrong_all].max(axis=1), kind="stable")][:max_test]
    paper = isinstance(label_filter, str) and label_filter == "paper"
    table = None
    if len(wrong):
        X_w, y_w = _safe_indexing(X_test, wrong), _safe_indexing(y_test, wrong)
        if paper:
            how = dict(estimate=estimate, train_set=train_set)
            harm = explain(est, X_w, y_w, k=k, label_filter="predicted", **how)
            helps = explain(est, X_w, y_w, k=k, label_filter="true", **how)
            table = pd.concat([harm[harm["kind"] == "harmful"],
                               helps[helps["kind"] == "helpful"]], ignore_index=True)
            table = table.sort_values(["target", "kind", "rank"], kind="stable")
            table = table.reset_index(drop=True)
        else:
            table = explain(est, X_w, y_w, k=k, label_filter=label_filter,
                            estimate=estimate, train_set=train_set)
        table["target"] = wrong[table["target"].to_numpy()]
    return TestCases(proba=proba, pred=pred, y_test=y_arr, wrong=wrong,
                     n_wrong=len(wrong_all), table=table, paper=paper)


def collect(cl: ToDCleanser, X_test: Any = None, y_test: Any = None, *, k: int = 5,
            label_filter: Any = "paper", max_test: int = 20, estimate: str = "exact",
            train_set: tuple[Any, Any] | None = None) -> ReportData:
    """Gather what the report shows from a fitted cleanser (and optional test data).

    ``estimate`` / ``train_set``: the influence estimate behind the test explanations
    (see :func:`~tod_cleanse.explain.explain`)."""
    check_is_fitted(cl)
    est = cl.estimator_
    classes = np.asarray(est.classes_)
    labels = np.asarray(est.y_train_)
    issues = cl.issues_
    dropped = issues["is_issue"].to_numpy()
    oos = np.asarray(est.oos_proba_)
    oos_pred = np.argmax(oos, axis=1)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels[dropped], oos_pred[dropped]), 1)
    summary: list[tuple[str, str]] = [
        ("training rows", f"{labels.shape[0]}"),
        ("rows to drop", f"{int(dropped.sum())} ({100.0 * dropped.mean():.2f}%)"),
        ("method", cl.method_),
        ("drop rule", f"threshold={cl.threshold}" if cl.threshold is not None
         else f"drop_fraction={cl.drop_fraction}"),
        ("classes", ", ".join(str(c) for c in classes)),
        ("estimator", type(est).__name__),
        ("out-of-sample accuracy on the given labels", f"{(oos_pred == labels).mean():.4f}"),
    ]
    if getattr(est, "history_", None):
        summary.append(("final training loss", f"{est.history_[-1]['train_loss']:.4f}"))
    cases = None
    if X_test is not None:
        cases = _test_cases(est, X_test, y_test, k, label_filter, max_test, estimate,
                            train_set)
        summary.append(("test accuracy", f"{(cases.pred == cases.y_test).mean():.4f} "
                        f"({len(cases.y_test)} rows)"))
        summary.append(("misclassified test examples",
                        f"{cases.n_wrong} (explained: {len(cases.wrong)})"))
    return ReportData(cleanser=cl, estimator=est, classes=classes, labels=labels,
                      keys=issues["key"].to_numpy(), rank=issues["rank"].to_numpy(),
                      scores=np.asarray(cl.scores_, dtype=np.float64), dropped=dropped,
                      oos=oos, oos_pred=oos_pred, confusion=confusion, summary=summary,
                      cases=cases)
