"""Turn the feature, text or image columns of a record batch into estimator input."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import fail
from .source import Source, decode, is_binary, is_numeric, is_text, is_vector, value_type

__all__ = ["Features", "to_estimator", "concat"]

#: The option that names each input kind in error messages.
OPTIONS = {"features": "--features", "text": "--text", "image": "--image"}


class Features:
    """Callable ``batch -> X`` for one input kind, checked against the source's schema.

    Parameters
    ----------
    src : Source
    kind : {"features", "text", "image"}
        Numeric and vector columns (MLP), one string column (BERT), or one column of
        encoded image bytes or pixel lists (VGG).
    columns : sequence of str
    option : str
        How error messages name the columns' option (e.g. ``"--features"``).
    image_shape : tuple of int, optional
        Shape of one pixel-list image.
    """

    def __init__(self, src: Source, kind: str, columns: Sequence[str], option: str,
                 image_shape: tuple[int, ...] | None = None) -> None:
        self.kind, self.columns, self.option = kind, list(columns), option
        self.image_shape = image_shape
        self.widths: dict[str, int] = {}
        if not self.columns:
            fail(f"{option}: give at least one column")
        for c in self.columns:
            self._check_type(c, value_type(src.check_column(c, option)))

    def _check_type(self, c: str, t: pa.DataType) -> None:
        option, kind = self.option, self.kind
        if kind == "features":
            if not (is_numeric(t) or is_vector(t)):
                fail(f"{option}: column {c!r} has type {t}; features must be numeric columns "
                     "or lists of numbers (text goes to --text, images to --image)")
            if pa.types.is_fixed_size_list(t):
                self.widths[c] = t.list_size
            elif is_numeric(t):
                self.widths[c] = 1
        elif kind == "text" and not is_text(t):
            fail(f"{option}: column {c!r} has type {t}; --text needs a string column")
        elif kind == "image" and not (is_binary(t) or is_vector(t)):
            fail(f"{option}: column {c!r} has type {t}; --image needs encoded image bytes "
                 "or lists of pixel values")

    def _vectors(self, arr: pa.Array, c: str, where: str) -> np.ndarray:
        n = len(arr)
        if pa.types.is_fixed_size_list(arr.type):
            width = arr.type.list_size
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if n else 0
            if n and np.any(lengths != width):
                fail(f"{where}: column {c!r} holds vectors of different lengths "
                     f"({int(lengths.min())} to {int(lengths.max())})")
            if self.widths.setdefault(c, width) != width:
                fail(f"{where}: column {c!r} holds vectors of length {width} but earlier rows "
                     f"have length {self.widths[c]}")
        flat = arr.flatten()
        if flat.null_count:
            fail(f"{where}: column {c!r} has missing values inside its vectors")
        return flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, width)

    def __call__(self, batch: pa.RecordBatch, where: str) -> np.ndarray:
        """The estimator input of ``batch`` (``where`` names the file in errors)."""
        parts = []
        for c in self.columns:
            arr = decode(batch.column(c))
            if arr.null_count:
                fail(f"{where}: column {c!r} has {arr.null_count} missing value(s)")
            if self.kind == "text":
                return np.asarray(arr.to_pylist(), dtype=object)
            if self.kind == "image":
                return self._images(arr, c, where)
            if is_vector(arr.type):
                mat = self._vectors(arr, c, where)
            else:
                mat = arr.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)
            if not np.isfinite(mat).all():
                fail(f"{where}: feature column {c!r} contains NaN or infinite values")
            parts.append(mat)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _images(self, arr: pa.Array, c: str, where: str) -> np.ndarray:
        if is_vector(arr.type):
            mat = self._vectors(arr, c, where)
            if self.image_shape is not None:
                if math.prod(self.image_shape) != mat.shape[1]:
                    fail(f"{where}: --image-shape {'x'.join(map(str, self.image_shape))} does "
                         f"not match the {mat.shape[1]} values per row of column {c!r}")
                mat = mat.reshape(mat.shape[0], *self.image_shape)
            return mat
        from PIL import Image, UnidentifiedImageError

        images = []
        for i, blob in enumerate(arr.to_pylist()):
            try:
                with Image.open(io.BytesIO(blob)) as im:
                    images.append(np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB")
                                             else im))
            except (UnidentifiedImageError, OSError) as exc:
                fail(f"{where}: column {c!r}, row {i} of the batch is not a decodable image "
                     f"({exc})")
            if images[-1].shape != images[0].shape:
                fail(f"{where}: column {c!r} holds images of different shapes "
                     f"({images[0].shape} and {images[-1].shape}); resize them first")
        out = np.stack(images)
        if self.widths.setdefault(c, out[0].size) != out[0].size:
            fail(f"{where}: column {c!r} holds images of a different size than earlier rows")
        return out


def to_estimator(kind: str, X: np.ndarray) -> Any:
    """What the estimator's ``fit``/``predict_proba`` take: a list of strings for text."""
    return X.tolist() if kind == "text" else X


def concat(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate row blocks (no copy for one block)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
