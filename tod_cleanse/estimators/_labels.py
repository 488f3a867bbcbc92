"""Label encoding of the ToD estimators: any label type in, indices into ``classes_`` out."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

__all__ = ["LabelEncodingMixin"]


class LabelEncodingMixin:
    """``_encode_y`` (fit and later calls) and the public :meth:`encode_labels`."""

    def _encode_y(self, y: Any, n_rows: int, *, fitting: bool, name: str = "y") -> np.ndarray:
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y_arr = column_or_1d(np.asarray(y, dtype=object if _is_pandas_categorical(y) else None),
                             warn=True)
        if y_arr.shape[0] != n_rows:
            raise ValueError(f"{name} has {y_arr.shape[0]} entries but X has {n_rows} rows.")
        if y_arr.dtype.kind == "f" and not np.all(np.isfinite(y_arr)):
            raise ValueError(f"{name} contains NaN or infinite labels.")
        if y_arr.dtype.kind == "O" and any(v is None or v != v for v in y_arr):
            raise ValueError(f"{name} contains missing labels (None or NaN).")
        if fitting:
            if y_arr.dtype.kind == "O":
                kinds = {"number" if isinstance(v, numbers.Number) else type(v).__name__
                         for v in y_arr.tolist()}
                if len(kinds) > 1:
                    raise TypeError(
                        f"{name} mixes label types ({', '.join(sorted(kinds))}); "
                        "use labels of one type."
                    )
            check_classification_targets(y_arr)
            try:
                classes, encoded = np.unique(y_arr, return_inverse=True)
            except TypeError as exc:
                raise TypeError(
                    f"{name} mixes label types that cannot be compared ({exc}); "
                    "use labels of one type."
                ) from None
            if classes.shape[0] < 2:
                raise ValueError(
                    "Classifier can't train when only one class is present: "
                    f"{name} has the single class {classes[0]!r}; ToD needs at least two."
                )
            self.classes_ = classes
            return encoded.astype(np.int64)
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        try:
            return np.fromiter((lookup[v] for v in y_arr.tolist()), dtype=np.int64,
                               count=y_arr.shape[0])
        except (KeyError, TypeError):
            unknown = sorted({repr(v) for v in y_arr.tolist() if v not in lookup})[:5]
            raise ValueError(
                f"{name} contains labels never seen in fit: {', '.join(unknown)}; "
                f"known classes are {self.classes_.tolist()!r}."
            ) from None

    def encode_labels(self, y: Any, *, name: str = "y") -> np.ndarray:
        """Indices into ``classes_`` of the labels ``y`` (ValueError naming ``name``).

        Parameters
        ----------
        y : array-like of shape (n,)
            Labels among ``classes_``.
        name : str, default="y"
            Named in the error message.

        Returns
        -------
        ndarray of int64, shape (n,)
        """
        check_is_fitted(self)
        y_arr = np.asarray(y, dtype=object if _is_pandas_categorical(y) else None)
        return self._encode_y(y_arr, y_arr.shape[0] if y_arr.ndim else 1, fitting=False,
                              name=name)


def _is_pandas_categorical(y: Any) -> bool:
    is_pandas = type(y).__name__ in ("Series", "Categorical")
    return is_pandas and str(getattr(y, "dtype", "")) == "category"
