"""Self-contained HTML report: what would be dropped, and why predictions went wrong.

:func:`write_report` fits (or takes) a :class:`~tod_cleanse.cleanser.ToDCleanser`
and writes one HTML file that makes no network request (plots and thumbnails are
embedded as base64 PNG, there is no script and no external URL), plus the plots
as PNG files beside it. The ``tod-cleanse report`` subcommand (:func:`run`) does
the same from the command line; with no arguments it cleans the digits data that
ship with scikit-learn after injecting 10% seeded label noise.

Every value taken from the data (labels, keys, texts, feature names) is escaped
with :func:`html.escape`, so a text row holding ``<script>`` shows as text.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted

from .cleanser import ToDCleanser
from .estimators.base import BaseToDClassifier
from .explain import explain
from .scores import DEFAULT_METHOD, METHODS

logger = logging.getLogger(__name__)

__all__ = ["Report", "write_report", "add_arguments", "run"]

_CONTENT_KINDS = ("auto", "image", "text", "table", "none")
_MAX_TEXT = 400
_MAX_FEATURES = 12

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;
max-width:1400px}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;
margin-top:32px}
table{border-collapse:collapse;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 7px;vertical-align:middle;text-align:left}
th{background:#f3f3f3}tr.dropped td.lab{color:#b00}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.figs{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #ddd;padding:6px;background:#fff}
figcaption{font-size:12px;color:#555;text-align:center}
img.thumb,img.big{image-rendering:pixelated;display:block;max-width:none}
img.fig{width:370px;height:auto}
table.cm td{text-align:right;min-width:22px}
pre.txt,code.feat{white-space:pre-wrap;font-size:12px;margin:0;max-width:520px;display:block}
.case{border:1px solid #ccc;border-radius:6px;padding:10px;margin:14px 0;
display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start}
.case .target{min-width:160px}.badge{background:#b00;color:#fff;border-radius:3px;
padding:0 4px;font-size:11px}
.note{color:#666;font-size:13px}
"""


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


# ------------------------------------------------------------------ content
def _png_b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_png(img: np.ndarray) -> bytes:
    """A PNG of one image: (H, W), (H, W, C) or (C, H, W), scaled to its own range."""
    from matplotlib.image import imsave

    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    a = np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) if hi > lo else a * 0
    buf = io.BytesIO()
    imsave(buf, a, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()


def _image_hw(img: np.ndarray) -> tuple[int, int]:
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        return int(a.shape[1]), int(a.shape[2])
    return int(a.shape[0]), int(a.shape[1])


class _Content:
    """Renders row ``i`` of some data as an HTML snippet (thumbnail, text or features)."""

    def __init__(self, X: Any, content: str, image_shape: Sequence[int] | None,
                 feature_names: Sequence[str] | None) -> None:
        if content not in _CONTENT_KINDS:
            raise ValueError(f"content must be one of {_CONTENT_KINDS}, got {content!r}.")
        self.X = X
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape else None
        self.kind = self._resolve(X, content)
        self.names: list[str] = []
        if self.kind == "table":
            if isinstance(X, pd.DataFrame):
                self.names = [str(c) for c in X.columns]
            elif feature_names is not None:
                self.names = [str(c) for c in feature_names]
            else:
                n_feat = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
                self.names = [f"x{j}" for j in range(n_feat)]

    def _resolve(self, X: Any, content: str) -> str:
        if content == "image" or (content == "auto" and self.image_shape is not None):
            arr = np.asarray(X) if not isinstance(X, pd.DataFrame) else X.to_numpy()
            if self.image_shape is None and arr.ndim < 3:
                raise ValueError(
                    "content='image' needs X of shape (n, H, W[, C]) or (n, C, H, W), or "
                    f"image_shape=(H, W) to reshape flat rows; X has shape {arr.shape}."
                )
            if self.image_shape is not None and int(np.prod(arr.shape[1:])) != int(
                    np.prod(self.image_shape)):
                raise ValueError(
                    f"image_shape={self.image_shape} does not match the "
                    f"{int(np.prod(arr.shape[1:]))} values per row of X."
                )
            return "image"
        if content != "auto":
            return content
        if isinstance(X, pd.DataFrame):
            return "table"
        if isinstance(X, pd.Series):
            return "text" if X.dtype.kind in "OUS" or str(X.dtype) == "str" else "table"
        if isinstance(X, dict):
            return "none"
        arr = np.asarray(X, dtype=object) if isinstance(X, list) else np.asarray(X)
        if arr.ndim >= 3:
            return "image"
        if arr.ndim == 1 or arr.dtype.kind in "OUS":
            return "text"
        return "table"

    def row(self, i: int, big: bool = False) -> str:
        if self.kind == "none":
            return ""
        X = self.X
        if self.kind == "image":
            arr = X.to_numpy() if isinstance(X, pd.DataFrame) else X
            img = np.asarray(arr[i])
            if self.image_shape is not None:
                img = img.reshape(self.image_shape)
            cls, height = ("big", 96) if big else ("thumb", 40)
            png = _image_png(img)
            h_px, w_px = _image_hw(img)
            width = max(1, round(height * w_px / h_px))
            return (f'<img class="{cls}" alt="row image" width="{width}" height="{height}" '
                    f'src="{_png_b64(png)}"/>')
        if self.kind == "text":
            value = X.iloc[i] if isinstance(X, pd.Series) else X[i]
            text = str(value)
            if len(text) > _MAX_TEXT:
                text = text[:_MAX_TEXT] + "\u2026"
            return f'<pre class="txt">{html.escape(text)}</pre>'
        values = (X.iloc[i].tolist() if isinstance(X, pd.DataFrame)
                  else np.atleast_1d(np.asarray(X)[i]).tolist())
        shown = []
        for name, value in zip(self.names[:_MAX_FEATURES], values[:_MAX_FEATURES], strict=False):
            if isinstance(value, float | np.floating):
                value = f"{value:.4g}"
            text = str(value)
            if len(text) > 80:
                text = text[:80] + "\u2026"
            shown.append(f"{name}={text}")
        if len(values) > _MAX_FEATURES:
            shown.append(f"\u2026 (+{len(values) - _MAX_FEATURES} more features)")
        return f'<code class="feat">{html.escape(chr(10).join(shown))}</code>'


# ------------------------------------------------------------------ figures
def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _fig_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fig_scores(scores: np.ndarray, dropped: np.ndarray, method: str) -> bytes:
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    finite = scores[np.isfinite(scores)]
    bins = np.histogram_bin_edges(finite, bins=50) if finite.size else 10
    ax.hist([scores[~dropped], scores[dropped]], bins=bins, stacked=True,
            color=["#4c78a8", "#e45756"], label=["kept", "dropped"])
    ax.set_yscale("log")
    ax.set_xlabel(f"score ({method}; more negative = more harmful)")
    ax.set_ylabel("training rows")
    ax.set_title("Score distribution")
    ax.legend()
    return _fig_bytes(fig)


def _fig_by_class(labels: np.ndarray, dropped: np.ndarray, classes: np.ndarray) -> bytes:
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    total = np.bincount(labels, minlength=len(classes))
    drop = np.bincount(labels[dropped], minlength=len(classes))
    pos = np.arange(len(classes))
    ax.bar(pos, 100.0 * drop / np.maximum(total, 1), color="#e45756")
    ax.set_xticks(pos, [str(c) for c in classes], rotation=45 if len(classes) > 8 else 0,
                  ha="right" if len(classes) > 8 else "center", fontsize=8)
    ax.set_xlabel("given label")
    ax.set_ylabel("% of the class dropped")
    ax.set_title("Dropped rows per class")
    return _fig_bytes(fig)


def _fig_confusion(matrix: np.ndarray, classes: np.ndarray) -> bytes:
    fig = _new_figure(5.2, 4.4)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Reds")
    names = [str(c) for c in classes]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("out-of-sample predicted label")
    ax.set_ylabel("given label")
    ax.set_title("Class pairs of the dropped rows")
    if len(names) <= 15:
        top = matrix.max() if matrix.size else 0
        for (r, c), v in np.ndenumerate(matrix):
            if v:
                ax.text(c, r, str(int(v)), ha="center", va="center", fontsize=7,
                        color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _fig_bytes(fig)


def _fig_loss(history: list[dict]) -> bytes:
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.set_title("Training loss (ToD)")
    return _fig_bytes(fig)


# --------------------------------------------------------------------- HTML
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float) -> str:
    return f"{value:.4g}" if np.isfinite(value) else _e(value)


def _table(header: Sequence[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(rows)
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<table{cls_attr}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fitted_cleanser(estimator: Any, X: Any, y: Any, instance_keys: Any, method: str,
                     drop_fraction: float | str) -> ToDCleanser:
    if isinstance(estimator, ToDCleanser):
        if hasattr(estimator, "estimator_"):
            n = len(estimator.issues_)
            if len(y) != n:
                raise ValueError(
                    f"the fitted ToDCleanser saw {n} training rows but y has {len(y)}; pass "
                    "the data it was fitted on."
                )
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


def write_report(
    estimator: Any,
    X: Any,
    y: Any,
    path: str | os.PathLike,
    *,
    X_test: Any = None,
    y_test: Any = None,
    instance_keys: Any = None,
    method: str = DEFAULT_METHOD,
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
        (``X, y`` must be its training data; ``method``, ``drop_fraction`` and
        ``instance_keys`` are then ignored). An unfitted one is fitted on
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
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 0):
        raise ValueError(f"max_rows must be None or a non-negative integer, got {max_rows!r}.")
    if not isinstance(max_test, int) or max_test < 0:
        raise ValueError(f"max_test must be a non-negative integer, got {max_test!r}.")
    if (X_test is None) != (y_test is None):
        raise ValueError("X_test and y_test must be given together.")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    path = Path(path)
    for name, shown, data in (("display", display, X), ("display_test", display_test, X_test)):
        if shown is not None and (data is None or len(shown) != len(data)):
            raise ValueError(f"{name} must have one entry per row of "
                             f"{'X' if name == 'display' else 'X_test'}.")
    train_content = _Content(X if display is None else display, content, image_shape,
                             feature_names)
    test_content = (_Content(X_test if display_test is None else display_test,
                             train_content.kind, image_shape,
                             feature_names or train_content.names or None)
                    if X_test is not None else None)

    cl = _fitted_cleanser(estimator, X, y, instance_keys, method, drop_fraction)
    check_is_fitted(cl)
    est = cl.estimator_
    classes = est.classes_
    labels = np.asarray(est.y_train_)
    issues = cl.issues_
    dropped = issues["is_issue"].to_numpy()
    scores = np.asarray(cl.scores_, dtype=np.float64)
    oos = np.asarray(est.oos_proba_)
    oos_pred = np.argmax(oos, axis=1)
    n = labels.shape[0]
    keys = issues["key"].to_numpy()

    # ---- figures
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels[dropped], oos_pred[dropped]), 1)
    pngs: dict[str, tuple[bytes, str]] = {
        "score_distribution": (_fig_scores(scores, dropped, cl.method_),
                               "Cleansing scores; red: the rows to be dropped."),
        "dropped_by_class": (_fig_by_class(labels, dropped, classes),
                             "Share of each given label that is dropped."),
        "class_confusion": (_fig_confusion(confusion, classes),
                            "Given label vs. out-of-sample prediction of the dropped rows."),
    }
    if getattr(est, "history_", None):
        pngs["training_loss"] = (_fig_loss(est.history_), "Mean training loss per epoch.")
    fig_dir = Path(figures_dir) if figures_dir is not None else path.with_name(
        f"{path.stem}_figures")
    fig_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for name, (data, _) in pngs.items():
        figures[name] = fig_dir / f"{name}.png"
        _atomic_write(figures[name], data)

    # ---- summary
    summary: list[tuple[str, str]] = [
        ("training rows", f"{n}"),
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

    # ---- explanations of misclassified test examples
    explanations = None
    cases_html = ""
    if X_test is not None:
        proba = est.predict_proba(X_test)
        y_test_arr = np.asarray(y_test)
        pred = classes[np.argmax(proba, axis=1)]
        wrong = np.flatnonzero(pred != y_test_arr)
        wrong = wrong[np.argsort(-proba[wrong].max(axis=1), kind="stable")][:max_test]
        summary.append(("test accuracy", f"{(pred == y_test_arr).mean():.4f} "
                        f"({len(y_test_arr)} rows)"))
        summary.append(("misclassified test examples",
                        f"{int((pred != y_test_arr).sum())} (explained: {len(wrong)})"))
        if len(wrong):
            X_w, y_w = _safe_indexing(X_test, wrong), _safe_indexing(y_test, wrong)
            if isinstance(label_filter, str) and label_filter == "paper":
                harm = explain(est, X_w, y_w, k=k, label_filter="predicted")
                helps = explain(est, X_w, y_w, k=k, label_filter="true")
                sub = pd.concat([harm[harm["kind"] == "harmful"],
                                 helps[helps["kind"] == "helpful"]], ignore_index=True)
                sub = sub.sort_values(["target", "kind", "rank"], kind="stable")
                sub = sub.reset_index(drop=True)
            else:
                sub = explain(est, X_w, y_w, k=k, label_filter=label_filter)
            sub["target"] = wrong[sub["target"].to_numpy()]
            explanations = sub
            cases_html = _cases_html(sub, wrong, proba, pred, y_test_arr, classes,
                                     train_content, test_content, dropped,
                                     paper=isinstance(label_filter, str)
                                     and label_filter == "paper")
        else:
            cases_html = '<p class="note">No test example is misclassified.</p>'

    # ---- dropped rows
    order = np.flatnonzero(dropped)
    order = order[np.argsort(scores[order], kind="stable")]
    shown = order if max_rows is None else order[:max_rows]
    rows_html = []
    for i in shown:
        rows_html.append(
            f'<tr class="dropped" data-key="{_e(keys[i])}">'
            f'<td class="num">{int(issues["rank"].iloc[i])}</td><td>{_e(keys[i])}</td>'
            f'<td class="lab">{_e(classes[labels[i]])}</td><td>{_e(classes[oos_pred[i]])}</td>'
            f'<td class="num">{oos[i, oos_pred[i]]:.3f}</td>'
            f'<td class="num">{oos[i, labels[i]]:.3f}</td>'
            f'<td class="num">{_fmt(scores[i])}</td>'
            f'<td>{train_content.row(int(i))}</td></tr>'
        )
    header = ["rank", "key", "given label", "OOS predicted", "OOS p(predicted)",
              "OOS p(given)", "score", "content"]
    more = (f'<p class="note">{len(order) - len(shown)} more dropped rows are not listed '
            f"(max_rows={max_rows}).</p>" if len(shown) < len(order) else "")

    confusion_html = _confusion_html(confusion, classes) if dropped.any() else (
        '<p class="note">No row is dropped.</p>')

    figs_html = "\n".join(
        f'<figure><img class="fig" alt="{_e(name)}" src="{_png_b64(data)}"/>'
        f"<figcaption>{_e(caption)} ({_e(name)}.png)</figcaption></figure>"
        for name, (data, caption) in pngs.items()
    )
    summary_rows = [f"<tr><th>{_e(a)}</th><td>{_e(b)}</td></tr>" for a, b in summary]
    doc = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8"/>
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{_e(title)}</h1>
<p class="note">Turn-over dropout (Kobayashi et al., SustaiNLP 2020, arXiv:2012.04207):
one training run; each row's out-of-sample prediction comes from the sub-network that never
saw it. Scores are oriented so that more negative = more harmful.</p>
<p class="note">Sections: <a href="#summary">summary</a> | <a href="#figures">figures</a> |
<a href="#confusion">class pairs</a> |{' <a href="#explanations">misclassified test examples</a> |'
 if X_test is not None else ''} <a href="#dropped">rows to be dropped</a></p>
<section id="summary">
<h2>Summary</h2>
<table class="kv"><tbody>
{chr(10).join(summary_rows)}
</tbody></table>
</section>
<section id="figures">
<h2>Figures</h2>
<div class="figs">
{figs_html}
</div>
</section>
<section id="confusion">
<h2>Class pairs of the dropped rows</h2>
<p class="note">Rows: given label; columns: out-of-sample predicted label; cells: dropped rows.
</p>
{confusion_html}
</section>
{'<section id="explanations"><h2>Misclassified test examples: the training rows behind '
 'them</h2>' + chr(10) + cases_html + chr(10) + '</section>' if X_test is not None else ''}
<section id="dropped">
<h2>Rows to be dropped ({len(order)}), most harmful first</h2>
{_table(header, rows_html, "rows") if rows_html else '<p class="note">No row is dropped.</p>'}
{more}
</section>
</body>
</html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, doc.encode("utf-8"))
    logger.info("wrote %s (%d dropped rows) and %d figures in %s", path, len(order),
                len(figures), fig_dir)
    return Report(html=path, figures=figures, cleanser=cl, explanations=explanations)


def _confusion_html(confusion: np.ndarray, classes: np.ndarray) -> str:
    header = ["given \\ predicted", *[str(c) for c in classes], "total"]
    rows = []
    for a, row in enumerate(confusion):
        cells = "".join(f"<td>{int(v) if v else ''}</td>" for v in row)
        rows.append(f"<tr><th>{_e(classes[a])}</th>{cells}<td>{int(row.sum())}</td></tr>")
    return _table(header, rows, "cm")


def _cases_html(table: pd.DataFrame, wrong: np.ndarray, proba: np.ndarray, pred: np.ndarray,
                y_test: np.ndarray, classes: np.ndarray, train_content: _Content,
                test_content: _Content | None, dropped: np.ndarray, paper: bool) -> str:
    scope = ("Harmful rows are searched among the training rows labelled with the wrongly "
             "predicted label, helpful rows among those labelled with the true label. "
             if paper else "")
    out = [
        '<p class="note">Influence is taken w.r.t. the true label: harmful rows pushed the '
        f"model away from it, helpful rows towards it. {scope}"
        '<span class="badge">dropped</span> marks rows the cleanser drops.</p>'
    ]
    for t in wrong:
        p_pred = float(proba[t].max())
        target = (
            f'<div class="target"><strong>test row {int(t)}</strong><br/>'
            f"true: {_e(y_test[t])}<br/>predicted: <span class=\"lab\">{_e(pred[t])}</span> "
            f"(p={p_pred:.3f})<br/>"
            f"{test_content.row(int(t), big=True) if test_content is not None else ''}</div>"
        )
        blocks = [target]
        for kind in ("harmful", "helpful"):
            sub = table[(table["target"] == t) & (table["kind"] == kind)]
            rows = []
            for r in sub.itertuples(index=False):
                badge = ' <span class="badge">dropped</span>' if dropped[r.train_index] else ""
                rows.append(
                    f'<tr data-train-key="{_e(r.train_key)}"><td class="num">{r.rank}</td>'
                    f"<td>{_e(r.train_key)}{badge}</td><td>{_e(r.train_label)}</td>"
                    f'<td class="num">{r.influence:.4g}</td>'
                    f"<td>{train_content.row(int(r.train_index))}</td></tr>"
                )
            body = (_table(["rank", "key", "given label", "influence", "content"], rows)
                    if rows else '<p class="note">none</p>')
            blocks.append(f"<div><strong>top {kind}</strong>{body}</div>")
        out.append(f'<div class="case" data-target="{int(t)}">' + "".join(blocks) + "</div>")
    return "\n".join(out)


# ---------------------------------------------------------------------- CLI
def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a shape like 28x28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape like 28x28, got {text!r}")
    return shape


def _parse_drop_fraction(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse report``."""
    parser.add_argument("--input", type=Path, default=None,
                        help="CSV or Parquet table (default: the digits demo with 10%% "
                             "seeded label noise, offline)")
    parser.add_argument("--label-column", default="label", help="label column of --input")
    parser.add_argument("--key-column", default=None, help="instance key column of --input")
    parser.add_argument("--image-shape", type=_parse_shape, default=None,
                        help="show rows as images of this shape, e.g. 28x28 (digits: 8x8)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="held-out share whose misclassified rows are explained (0: none)")
    parser.add_argument("--noise", type=float, default=None,
                        help="share of training labels to flip, seeded (default 0.1 for the "
                             "demo, 0 for --input)")
    parser.add_argument("--method", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument("--drop-fraction", type=_parse_drop_fraction, default="auto")
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--k", type=int, default=5, help="training rows per explanation")
    parser.add_argument("--max-test", type=int, default=20,
                        help="misclassified test examples to explain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=Path("tod_report.html"))


def _flip_labels(y: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Seeded uniform label noise: ``fraction`` of the rows get another class."""
    classes = np.unique(y)
    y_noisy = y.copy()
    flip = rng.choice(y.shape[0], size=int(round(fraction * y.shape[0])), replace=False)
    for i in flip:
        others = classes[classes != y[i]]
        y_noisy[i] = others[rng.integers(len(others))]
    return y_noisy


def _load_table(args: argparse.Namespace) -> tuple[Any, np.ndarray, Any, str]:
    path: Path = args.input
    if not path.exists():
        raise FileNotFoundError(f"--input {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        raise ValueError(f"--input must be a .csv or .parquet file, got {path.name!r}.")
    if args.label_column not in df.columns:
        raise ValueError(f"--label-column {args.label_column!r} is not a column of {path.name}; "
                         f"columns: {list(df.columns)[:20]}.")
    keys = None
    drop = [args.label_column]
    if args.key_column is not None:
        if args.key_column not in df.columns:
            raise ValueError(f"--key-column {args.key_column!r} is not a column of {path.name}.")
        keys = df[args.key_column].to_numpy()
        drop.append(args.key_column)
    X = df.drop(columns=drop)
    non_numeric = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    if non_numeric:
        raise ValueError(f"the MLP of `tod-cleanse report` needs numeric feature columns; "
                         f"{non_numeric[:5]} are not numeric.")
    return X, df[args.label_column].to_numpy(), keys, path.name


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse report``: fit, decide the drops, write the HTML and PNG files."""
    from sklearn.model_selection import train_test_split

    from .estimators.mlp import ToDMLPClassifier

    rng = np.random.default_rng(args.seed)
    if args.input is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        X_all, y_all, keys_all, source = digits.data, digits.target, None, "digits"
        image_shape = args.image_shape or (8, 8)
        noise = 0.1 if args.noise is None else args.noise
    else:
        X_all, y_all, keys_all, source = _load_table(args)
        image_shape = args.image_shape
        noise = 0.0 if args.noise is None else args.noise
    if not 0 <= noise < 1:
        raise ValueError(f"--noise must be in [0, 1), got {noise}.")
    if not 0 <= args.test_fraction < 1:
        raise ValueError(f"--test-fraction must be in [0, 1), got {args.test_fraction}.")
    keys_all = np.arange(len(y_all)) if keys_all is None else keys_all
    X_test = y_test = None
    if args.test_fraction > 0:
        X, X_test, y, y_test, keys, _ = train_test_split(
            X_all, y_all, keys_all, test_size=args.test_fraction, random_state=args.seed,
            stratify=y_all)
    else:
        X, y, keys = X_all, y_all, keys_all
    y = np.asarray(y)
    y_given = _flip_labels(y, noise, rng) if noise > 0 else y
    est = ToDMLPClassifier(max_epochs=args.max_epochs, random_state=args.seed,
                           verbose=0 if args.quiet else 1)
    cleanser = ToDCleanser(est, method=args.method, drop_fraction=args.drop_fraction)
    cleanser.fit(X, y_given, instance_keys=keys)
    rep = write_report(cleanser, X, y_given, args.output, X_test=X_test, y_test=y_test,
                       image_shape=image_shape, k=args.k, max_test=args.max_test,
                       title=f"tod_cleanse report: {source}")
    dropped = cleanser.issues_["is_issue"].to_numpy()
    print(f"data: {source}, {len(y_given)} training rows"
          + (f", {noise:.0%} labels flipped (seed {args.seed})" if noise > 0 else ""))
    print(f"rows to drop: {int(dropped.sum())} (method={cleanser.method_})")
    if noise > 0:
        flipped = y_given != y
        hit = int((dropped & flipped).sum())
        print(f"flipped labels among them: {hit} (precision {hit / max(1, dropped.sum()):.3f}, "
              f"recall {hit / max(1, flipped.sum()):.3f})")
    print(f"report: {rep.html}")
    for name, fig in rep.figures.items():
        print(f"figure {name}: {fig}")
    return 0
