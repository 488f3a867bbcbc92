"""How one row of data is shown in the report: a thumbnail, escaped text or feature values.

:class:`Content` decides the kind once from the shape and type of the shown data
(never from the estimator) and renders row ``i`` as an HTML snippet. Every value
taken from the data goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CONTENT_KINDS", "Content", "png_data_uri", "image_png"]

CONTENT_KINDS = ("auto", "image", "text", "table", "none")
_MAX_TEXT = 400
_MAX_FEATURES = 12


def png_data_uri(data: bytes) -> str:
    """A PNG as an inline ``data:`` URI (the report makes no network request)."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _channels_last(a: np.ndarray) -> np.ndarray:
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3, 4):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return a


def image_png(img: np.ndarray) -> bytes:
    """A PNG of one image: (H, W), (H, W, C) or (C, H, W), scaled to its own range."""
    from matplotlib.image import imsave

    a = _channels_last(np.asarray(img, dtype=np.float64))
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    a = np.clip((np.nan_to_num(a, nan=lo) - lo) / (hi - lo), 0, 1) if hi > lo else a * 0
    buf = io.BytesIO()
    imsave(buf, a, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()


def _image_hw(img: np.ndarray) -> tuple[int, int]:
    a = _channels_last(np.asarray(img))
    return int(a.shape[0]), int(a.shape[1])


def _feature_names(X: Any, feature_names: Sequence[str] | None) -> list[str]:
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    if feature_names is not None:
        return [str(c) for c in feature_names]
    n_feat = np.asarray(X).shape[1] if np.ndim(X) == 2 else 1
    return [f"x{j}" for j in range(n_feat)]


class Content:
    """Renders row ``i`` of some data as an HTML snippet (thumbnail, text or features).

    Parameters
    ----------
    X : array-like, DataFrame, Series or list
        The data shown, one entry per row.
    content : {"auto", "image", "text", "table", "none"}
    image_shape : sequence of int, optional
        Reshape flat rows to this shape for thumbnails.
    feature_names : sequence of str, optional
        Names of the columns of a 2-D array.
    """

    def __init__(self, X: Any, content: str, image_shape: Sequence[int] | None,
                 feature_names: Sequence[str] | None) -> None:
        if content not in CONTENT_KINDS:
            raise ValueError(f"content must be one of {CONTENT_KINDS}, got {content!r}.")
        self.X = X
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape else None
        self.kind = self._resolve(X, content)
        self.names = _feature_names(X, feature_names) if self.kind == "table" else []

    def _resolve(self, X: Any, content: str) -> str:
        if content == "image" or (content == "auto" and self.image_shape is not None):
            arr = np.asarray(X) if not isinstance(X, pd.DataFrame) else X.to_numpy()
            if self.image_shape is None and arr.ndim < 3:
                raise ValueError(
                    "content='image' needs X of shape (n, H, W[, C]) or (n, C, H, W), or "
                    f"image_shape=(H, W) to reshape flat rows; X has shape {arr.shape}."
                )
            per_row = int(np.prod(arr.shape[1:]))
            if self.image_shape is not None and per_row != int(np.prod(self.image_shape)):
                raise ValueError(
                    f"image_shape={self.image_shape} does not match the {per_row} values "
                    "per row of X."
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
        """The HTML snippet of row ``i`` (a larger thumbnail with ``big``)."""
        if self.kind == "none":
            return ""
        if self.kind == "image":
            return self._image(i, big)
        if self.kind == "text":
            value = self.X.iloc[i] if isinstance(self.X, pd.Series) else self.X[i]
            text = str(value)
            if len(text) > _MAX_TEXT:
                text = text[:_MAX_TEXT] + "\u2026"
            return f'<pre class="txt">{html.escape(text)}</pre>'
        return self._features(i)

    def _image(self, i: int, big: bool) -> str:
        arr = self.X.to_numpy() if isinstance(self.X, pd.DataFrame) else self.X
        img = np.asarray(arr[i])
        if self.image_shape is not None:
            img = img.reshape(self.image_shape)
        cls, height = ("big", 96) if big else ("thumb", 40)
        h_px, w_px = _image_hw(img)
        width = max(1, round(height * w_px / h_px))
        return (f'<img class="{cls}" alt="row image" width="{width}" height="{height}" '
                f'src="{png_data_uri(image_png(img))}"/>')

    def _features(self, i: int) -> str:
        X = self.X
        values = (X.iloc[i].tolist() if isinstance(X, pd.DataFrame)
                  else np.atleast_1d(np.asarray(X)[i]).tolist())
        shown = []
        for name, value in zip(self.names[:_MAX_FEATURES], values[:_MAX_FEATURES], strict=False):
            text = f"{value:.4g}" if isinstance(value, float | np.floating) else str(value)
            if len(text) > 80:
                text = text[:80] + "\u2026"
            shown.append(f"{name}={text}")
        if len(values) > _MAX_FEATURES:
            shown.append(f"\u2026 (+{len(values) - _MAX_FEATURES} more features)")
        return f'<code class="feat">{html.escape(chr(10).join(shown))}</code>'
