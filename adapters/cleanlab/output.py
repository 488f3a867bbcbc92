"""Output of the comparison: markdown tables and precision-recall curves."""

from __future__ import annotations

import numbers
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve

__all__ = ["format_comparison", "markdown_table", "plot_pr_curves"]


def plot_pr_curves(path: str | os.PathLike, mask: np.ndarray, harm: dict[str, np.ndarray],
                   flagged: dict[str, np.ndarray]) -> Path:
    """Write the precision-recall curves of several finders to a PNG, atomically.

    Drawn on an Agg canvas (pyplot's global state is left alone); the file appears
    under its name only once complete.

    Parameters
    ----------
    path : path
        The PNG to write (its folder is created).
    mask : ndarray of bool, shape (n,)
        Ground truth, True = mislabeled row.
    harm : dict of str to ndarray of shape (n,)
        Per finder, its ranking score (higher = more likely mislabeled).
    flagged : dict of str to ndarray of bool, shape (n,)
        Per finder, the rows it flags (drawn as a dot on its curve).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, h in harm.items():
        precision, recall, _ = precision_recall_curve(mask, h)
        ap = average_precision_score(mask, h)
        (line,) = ax.plot(recall, precision, lw=1.4, label=f"{name} (AP {ap:.3f})",
                          ls="--" if name.startswith("cleanlab") else "-")
        f = flagged[name]
        if f.any():
            tp = np.sum(f & mask)
            ax.plot([tp / mask.sum()], [tp / f.sum()], "o", color=line.get_color(), ms=5)
    ax.axhline(mask.mean(), color="grey", lw=0.8, ls=":", label=f"random ({mask.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.02),
           title="Finding mislabeled rows (dots: the rows each finder flags)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A DataFrame as a GitHub markdown table (index first), without extra packages.

    Parameters
    ----------
    df : pandas.DataFrame
        Its index becomes the first column (headed by the index name).
    floatfmt : str, default=".3f"
        Format of real numbers; integers and booleans print as they are.

    Returns
    -------
    str
        The table, numeric columns right-aligned.

    Examples
    --------
    >>> print(markdown_table(pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]},
    ...                                   index=pd.Index(["x", "y"], name="k"))))
    | k | a | b |
    |---|--:|--:|
    | x | 1 | 0.500 |
    | y | 2 | 0.250 |
    """

    def fmt(v: Any) -> str:
        if isinstance(v, bool | np.bool_):
            return str(bool(v))
        if isinstance(v, numbers.Integral):
            return str(int(v))
        if isinstance(v, numbers.Real):
            return "nan" if np.isnan(v) else format(float(v), floatfmt)
        return str(v)

    head = [str(df.index.name or "")] + [str(c) for c in df.columns]
    align = ["---"] + [
        "--:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    for idx, row in zip(df.index, df.itertuples(index=False), strict=True):
        lines.append("| " + " | ".join([str(idx)] + [fmt(v) for v in row]) + " |")
    return "\n".join(lines)


def format_comparison(df: pd.DataFrame) -> str:
    """The comparison as two markdown tables: per-finder metrics, then Jaccard overlaps.

    Parameters
    ----------
    df : pandas.DataFrame
        The result of :func:`~tod_cleanse.adapters.cleanlab.compare_finders`.

    Returns
    -------
    str
        The metrics table (``jaccard:*`` columns left out, 3 decimals), a blank line,
        then the Jaccard table (one column per finder, 2 decimals).

    Examples
    --------
    >>> df = pd.DataFrame({"n_flagged": [3, 4], "jaccard:a": [1.0, 0.5],
    ...                    "jaccard:b": [0.5, 1.0]}, index=pd.Index(["a", "b"], name="finder"))
    >>> print(format_comparison(df))
    | finder | n_flagged |
    |---|--:|
    | a | 3 |
    | b | 4 |
    <BLANKLINE>
    | Jaccard | a | b |
    |---|--:|--:|
    | a | 1.00 | 0.50 |
    | b | 0.50 | 1.00 |
    """
    jac = [c for c in df.columns if c.startswith("jaccard:")]
    main = df.drop(columns=jac)
    overlap = df[jac].rename(columns=lambda c: c.split(":", 1)[1])
    overlap.index.name = "Jaccard"
    return markdown_table(main) + "\n\n" + markdown_table(overlap, floatfmt=".2f")
