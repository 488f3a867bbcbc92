"""The report's plots, drawn on matplotlib's object API (pyplot's global state untouched).

Class labels are text, not markup: every label is drawn with ``parse_math=False``,
so a label such as ``$\\frac{$`` shows literally instead of failing in mathtext.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

__all__ = ["render_figures"]


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _names(classes: np.ndarray) -> list[str]:
    return [str(c) for c in classes]


def fig_scores(scores: np.ndarray, dropped: np.ndarray, method: str) -> bytes:
    """Stacked histogram of the scores, kept vs dropped (log counts)."""
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    finite = scores[np.isfinite(scores)]
    bins = np.histogram_bin_edges(finite, bins=50) if finite.size else 10
    ax.hist([scores[~dropped], scores[dropped]], bins=bins, stacked=True,
            color=["#4c78a8", "#e45756"], label=["kept", "dropped"])
    ax.set_yscale("log")
    ax.set_xlabel(f"score ({method}; more negative = more harmful)", parse_math=False)
    ax.set_ylabel("training rows")
    ax.set_title("Score distribution")
    ax.legend()
    return _png(fig)


def fig_by_class(labels: np.ndarray, dropped: np.ndarray, classes: np.ndarray) -> bytes:
    """Share of each given label that is dropped."""
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    total = np.bincount(labels, minlength=len(classes))
    drop = np.bincount(labels[dropped], minlength=len(classes))
    pos = np.arange(len(classes))
    many = len(classes) > 8
    ax.bar(pos, 100.0 * drop / np.maximum(total, 1), color="#e45756")
    ax.set_xticks(pos, _names(classes), rotation=45 if many else 0,
                  ha="right" if many else "center", fontsize=8, parse_math=False)
    ax.set_xlabel("given label")
    ax.set_ylabel("% of the class dropped")
    ax.set_title("Dropped rows per class")
    return _png(fig)


def fig_confusion(matrix: np.ndarray, classes: np.ndarray) -> bytes:
    """Given label x out-of-sample predicted label of the dropped rows."""
    fig = _new_figure(5.2, 4.4)
    ax = fig.add_subplot()
    im = ax.imshow(matrix, cmap="Reds")
    names = _names(classes)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7, parse_math=False)
    ax.set_yticks(range(len(names)), names, fontsize=7, parse_math=False)
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
    return _png(fig)


def fig_loss(history: list[dict]) -> bytes:
    """Mean training loss per epoch."""
    fig = _new_figure(5.2, 3.4)
    ax = fig.add_subplot()
    ax.plot([h["epoch"] for h in history], [h["train_loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.set_title("Training loss (ToD)")
    return _png(fig)


def render_figures(scores: np.ndarray, dropped: np.ndarray, method: str, labels: np.ndarray,
                   classes: np.ndarray, confusion: np.ndarray,
                   history: list[dict] | None) -> dict[str, tuple[bytes, str]]:
    """Every plot of the report: name -> (PNG bytes, caption)."""
    pngs = {
        "score_distribution": (fig_scores(scores, dropped, method),
                               "Cleansing scores; red: the rows to be dropped."),
        "dropped_by_class": (fig_by_class(labels, dropped, classes),
                             "Share of each given label that is dropped."),
        "class_confusion": (fig_confusion(confusion, classes),
                            "Given label vs. out-of-sample prediction of the dropped rows."),
    }
    if history:
        pngs["training_loss"] = (fig_loss(history), "Mean training loss per epoch.")
    return pngs
