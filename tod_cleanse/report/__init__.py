"""Self-contained HTML report: what would be dropped, and why predictions went wrong.

:func:`write_report` fits (or takes) a :class:`~tod_cleanse.cleanser.ToDCleanser`
and writes one HTML file that makes no network request (plots and thumbnails are
embedded as base64 PNG, there is no script and no external URL), plus the plots
as PNG files beside it. The ``tod-cleanse report`` subcommand
(:mod:`tod_cleanse.cli.report`) does the same from the command line.

The package keeps its three jobs apart: :mod:`~tod_cleanse.report.collect` gathers
the data from the fitted cleanser (and checks that a fitted one is shown with the
data it saw), :mod:`~tod_cleanse.report.figures` draws the plots,
:mod:`~tod_cleanse.report.content` and :mod:`~tod_cleanse.report.html` lay out the
page. Every value taken from the data is escaped with :func:`html.escape`, so a
text row holding ``<script>`` shows as text.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..cleanser import ToDCleanser
from ..influence import ESTIMATES
from ..scores import AUTO_METHOD, METHODS
from .collect import collect, fitted_cleanser
from .content import Content
from .figures import render_figures
from .html import render_html

logger = logging.getLogger(__name__)

__all__ = ["Report", "write_report"]


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` wrote.

    Attributes
    ----------
    html : Path
        The self-contained HTML file.
    figures : dict of str to Path
        The PNG files of the plots, by name.
    cleanser : ToDCleanser
        The fitted cleanser that decided which rows to drop.
    explanations : pandas.DataFrame or None
        :func:`~tod_cleanse.explain.explain` of the misclassified test examples
        shown (``target`` is the position in ``X_test``).
    """

    html: Path
    figures: dict[str, Path] = field(default_factory=dict)
    cleanser: ToDCleanser | None = None
    explanations: pd.DataFrame | None = None


def write_report(
    estimator: Any,
    X: Any,
    y: Any,
    path: str | os.PathLike,
    *,
    X_test: Any = None,
    y_test: Any = None,
    instance_keys: Any = None,
    method: str = AUTO_METHOD,
    drop_fraction: float | str = "auto",
    content: str = "auto",
    image_shape: Sequence[int] | None = None,
    feature_names: Sequence[str] | None = None,
    display: Any = None,
    display_test: Any = None,
    k: int = 5,
    label_filter: Any = "paper",
    max_rows: int | None = 1000,
    max_test: int = 20,
    influence_estimate: str = "gradient",
    figures_dir: str | os.PathLike | None = None,
    title: str = "tod_cleanse report",
) -> Report:
    """Write a self-contained HTML report of the rows ToD would drop, and why.

    The report holds: a summary, the score distribution and the other plots, the
    class-pair confusion (given label x out-of-sample predicted label) of the
    dropped rows, the dropped rows ranked (most harmful first) with their given
    label, out-of-sample predicted label and its probability and their content,
    and, for each misclassified test example, its top harmful and top helpful
    training rows (:func:`~tod_cleanse.explain.explain` w.r.t. the true label).
    It makes no network request: images are inline base64 PNG, there is no
    script and no external URL. The plots are also written as PNG files.

    Parameters
    ----------
    estimator : ToDCleanser, ToD estimator or None
        A fitted :class:`~tod_cleanse.cleanser.ToDCleanser` is used as it is
        (``X, y`` must be its training data, in the same order: ``y``, the
        ``instance_keys`` if given, and the predictions on a sample of rows of
        ``X`` are checked against the fit, and a mismatch raises ValueError;
        ``method`` and ``drop_fraction`` are then ignored). An unfitted one is fitted on
        ``X, y``. A ToD estimator (or ``None``: the default MLP) is wrapped in
        ``ToDCleanser(estimator, method=method, drop_fraction=drop_fraction)``,
        which clones and fits it.
    X : array-like
        Training inputs, as the estimator takes them.
    y : array-like of shape (n_samples,)
        Given training labels.
    path : str or path-like
        The HTML file to write (parent folders are created). Written atomically.
    X_test, y_test : optional
        Held-out data; its misclassified examples get explanations.
    instance_keys : array-like, optional
        Stable row keys, passed to ``fit``; the report shows them.
    method, drop_fraction : see :class:`~tod_cleanse.cleanser.ToDCleanser`.
    content : {"auto", "image", "text", "table", "none"}, default="auto"
        How to show a row: a thumbnail (data of shape (n, H, W[, C]) or
        (n, C, H, W), or flat rows with ``image_shape``), escaped text (1-D
        strings), feature values (2-D numbers, DataFrames) or nothing. ``"auto"``
        decides from the shape and type of the shown data (``display``, else
        ``X``), never from the estimator.
    image_shape : tuple of int, optional
        Reshape each flat row to this shape for thumbnails (e.g. ``(8, 8)``).
    feature_names : sequence of str, optional
        Names of the columns of a 2-D array (DataFrames use their columns).
    display, display_test : array-like, optional
        What to show for each row of ``X`` / ``X_test`` instead of the model
        input itself, e.g. the raw texts or images behind embedding features.
        Same number of rows.
    k : int, default=5
        Harmful and helpful training rows shown per misclassified test example.
    label_filter : "paper" or anything :func:`~tod_cleanse.explain.explain` takes
        ``"paper"`` (default): harmful rows among the training rows labelled with
        the wrongly predicted label, helpful rows among those labelled with the
        true label (both w.r.t. the true label). Any other value is passed to
        ``explain`` for both kinds (``None``: all training rows).
    max_rows : int or None, default=1000
        Most dropped rows listed (``None``: all); the count of the rest is stated.
    max_test : int, default=20
        Most misclassified test examples explained (the most confident first).
    influence_estimate : {"gradient", "exact"}, default="gradient"
        The influence estimate that picks the training rows behind each test
        example (``score_influence``'s ``estimate``; the report holds the training
        rows ``X, y`` that ``"gradient"`` needs). ``"gradient"`` tracks retraining
        far more closely than the paper's ``"exact"`` on every cell measured
        (LDS, ``examples/benchmarks/results/influence/``).
    figures_dir : str or path-like, optional
        Where the PNG files go; default ``<path stem>_figures`` beside the HTML.
    title : str, default="tod_cleanse report"

    Returns
    -------
    Report

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier, write_report
    >>> X, y = load_iris(return_X_y=True)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(16,), max_epochs=5, random_state=0,
    ...                        verbose=0)
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> rep = write_report(est, X[::2], y[::2], out, X_test=X[1::2], y_test=y[1::2])
    >>> rep.html.exists(), sorted(rep.figures)[0]
    (True, 'class_confusion')
    """
    _check_args(k, max_rows, max_test, X, X_test, y_test, method, display, display_test)
    if influence_estimate not in ESTIMATES:
        raise ValueError(f"influence_estimate must be one of {ESTIMATES}, "
                         f"got {influence_estimate!r}.")
    path = Path(path)
    train_content = Content(X if display is None else display, content, image_shape,
                            feature_names)
    test_content = (Content(X_test if display_test is None else display_test,
                            train_content.kind, image_shape,
                            feature_names or train_content.names or None)
                    if X_test is not None else None)
    cl = fitted_cleanser(estimator, X, y, instance_keys, method, drop_fraction)
    data = collect(cl, X_test, y_test, k=k, label_filter=label_filter, max_test=max_test,
                   estimate=influence_estimate, train_set=(X, y))
    pngs = render_figures(data.scores, data.dropped, cl.method_, data.labels, data.classes,
                          data.confusion, getattr(data.estimator, "history_", None))
    fig_dir = Path(figures_dir) if figures_dir is not None else path.with_name(
        f"{path.stem}_figures")
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for name, (png, _) in pngs.items():
        figures[name] = fig_dir / f"{name}.png"
        _atomic_write(figures[name], png)
    doc = render_html(data, pngs, train_content, test_content, title=title, max_rows=max_rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, doc.encode("utf-8"))
    logger.info("wrote %s (%d dropped rows) and %d figures in %s", path,
                int(data.dropped.sum()), len(figures), fig_dir)
    explanations = data.cases.table if data.cases is not None else None
    return Report(html=path, figures=figures, cleanser=cl, explanations=explanations)


def _check_args(k: Any, max_rows: Any, max_test: Any, X: Any, X_test: Any, y_test: Any,
                method: Any, display: Any, display_test: Any) -> None:
    """The arguments of :func:`write_report` that need no fitted model, checked first."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool)
                                 or max_rows < 0):
        raise ValueError(f"max_rows must be None or a non-negative integer, got {max_rows!r}.")
    if not isinstance(max_test, int) or isinstance(max_test, bool) or max_test < 0:
        raise ValueError(f"max_test must be a non-negative integer, got {max_test!r}.")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together.")
    if method not in (*METHODS, AUTO_METHOD):
        raise ValueError(f"method must be 'auto' or one of {METHODS}, got {method!r}.")
    for name, shown, data in (("display", display, X), ("display_test", display_test, X_test)):
        if shown is not None and (data is None or len(shown) != len(data)):
            raise ValueError(f"{name} must have one entry per row of "
                             f"{'X' if name == 'display' else 'X_test'}.")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
