"""The one table loader of the command line: a Parquet or CSV ``INPUT`` -> X, y, keys.

:func:`check_table` validates the columns from the schema alone (no data read for
Parquet), so a subcommand's ``check`` refuses a bad ``--label``/``--key``/
``--features`` before any training; :func:`load_table` reads the data and checks
what only the values show (missing labels, NaN features, duplicate keys, ragged
lists). Every error is a :class:`~tod_cleanse.cli.options.CLIError` naming the
file and the flag or column.

Feature columns are numbers (one column each) or fixed-length lists of numbers
(e.g. the ``pixels`` column of ``tod-cleanse clean --export-demo``), stacked
side by side into one float64 matrix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .options import CLIError, check_input_path

__all__ = ["Table", "check_table", "load_table"]

_CSV_SUFFIXES = (".csv", ".csv.gz")


@dataclass
class Table:
    """What :func:`load_table` read.

    Attributes
    ----------
    X : ndarray of float64, shape (n, n_features)
    y : ndarray of shape (n,)
        The ``--label`` column.
    keys : ndarray or None
        The ``--key`` column, if given.
    feature_names : list of str
        One name per column of ``X`` (``col[j]`` for the j-th entry of a list column).
    source : str
        The file name, for messages and titles.
    extra : dict of str to ndarray
        Further columns asked for by name (e.g. a ground-truth noise column).
    """

    X: np.ndarray
    y: np.ndarray
    keys: np.ndarray | None
    feature_names: list[str]
    source: str
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(_CSV_SUFFIXES)


def _read_schema(path: Path, option: str) -> pa.Schema:
    if _is_csv(path):
        try:
            head = pd.read_csv(path, nrows=1000)
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise CLIError(f"{option} {path.name!r} is not a readable CSV file: {exc}") from None
        return pa.Schema.from_pandas(head, preserve_index=False)
    import pyarrow.dataset as ds

    try:
        return ds.dataset(path, format="parquet").schema
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise CLIError(
            f"{option} {path.name!r} is not a readable Parquet file or folder "
            f"(a CSV must end in .csv): {' '.join(str(exc).split())}"
        ) from None


def _is_numeric(dtype: pa.DataType) -> bool:
    return (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
            or pa.types.is_boolean(dtype) or pa.types.is_decimal(dtype))


def _is_feature(dtype: pa.DataType) -> bool:
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_fixed_size_list(
            dtype):
        return _is_numeric(dtype.value_type)
    return _is_numeric(dtype)


def _resolve_columns(schema: pa.Schema, source: str, label: str | None, key: str | None,
                     features: Sequence[str] | None, extra: dict[str, str]) -> list[str]:
    names = list(schema.names)
    if not label:
        raise CLIError(f"--label is required with INPUT {source!r} (its label column); "
                       f"columns: {names[:20]}.")
    asked = [("--label", label)] + ([("--key", key)] if key else []) + [
        (opt, col) for opt, col in extra.items() if col]
    asked += [("--features", col) for col in features or ()]
    for option, col in asked:
        if col not in names:
            raise CLIError(f"{option} {col!r} is not a column of {source}; "
                           f"columns: {names[:20]}.")
    used = {label, key, *extra.values()}
    chosen = list(features) if features else [c for c in names if c not in used]
    if not chosen:
        raise CLIError(f"INPUT {source!r} has no feature column besides --label/--key.")
    both = [c for c in chosen if c in used]
    if both:
        raise CLIError(f"--features {both} also serve as --label, --key or another column.")
    bad = [f"{c} ({schema.field(c).type})" for c in chosen if not _is_feature(schema.field(c).type)]
    if bad:
        raise CLIError(f"--features of {source} must be numeric (numbers or lists of numbers); "
                       f"not numeric: {', '.join(bad[:5])}.")
    return chosen


def check_table(path: str | os.PathLike, *, label: str | None, key: str | None = None,
                features: Sequence[str] | None = None,
                extra: dict[str, str] | None = None) -> list[str]:
    """Check ``INPUT`` and its columns from the schema; return the feature columns.

    Parameters
    ----------
    path : path-like
        A Parquet file or folder, or a ``.csv`` file.
    label, key : str or None
        The ``--label`` (required) and ``--key`` columns.
    features : sequence of str, optional
        ``--features``; default every column but the label, key and ``extra`` ones.
    extra : dict of str to str, optional
        Further columns by flag name, e.g. ``{"--noise-column": "is_noisy"}``.

    Returns
    -------
    list of str
        The feature columns.

    Raises
    ------
    CLIError
        Naming the file and the flag or column at fault.
    """
    p = check_input_path(path)
    if p.is_dir() and _is_csv(p):
        raise CLIError(f"INPUT {str(p)!r} is a folder, not a CSV file.")
    return _resolve_columns(_read_schema(p, "INPUT"), p.name, label, key, features,
                            dict(extra or {}))


def _column_matrix(values: pd.Series, name: str, source: str) -> np.ndarray:
    first = values.iloc[0] if len(values) else None
    try:
        if isinstance(first, list | tuple | np.ndarray):
            lengths = values.map(lambda v: -1 if v is None else len(v))
            if lengths.nunique() != 1 or lengths.iloc[0] < 1:
                raise CLIError(f"--features column {name!r} of {source} holds lists of "
                               "different lengths (or empty/missing ones); every row needs "
                               "the same length.")
            return np.stack([np.asarray(v, dtype=np.float64) for v in values])
        return values.to_numpy(dtype=np.float64, na_value=np.nan).reshape(-1, 1)
    except (TypeError, ValueError) as exc:  # e.g. a CSV column with text past its head
        raise CLIError(f"--features column {name!r} of {source} is not numeric: "
                       f"{' '.join(str(exc).split())}") from None


def load_table(path: str | os.PathLike, *, label: str | None, key: str | None = None,
               features: Sequence[str] | None = None,
               extra: dict[str, str] | None = None) -> Table:
    """Read ``INPUT`` into a :class:`Table` (same arguments as :func:`check_table`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> pd.DataFrame({"a": [0.5, 1.0], "b": [1, 2], "label": ["x", "y"]}).to_csv(path,
    ...                                                                         index=False)
    >>> t = load_table(path, label="label")
    >>> t.X.shape, t.y.tolist(), t.feature_names
    ((2, 2), ['x', 'y'], ['a', 'b'])
    """
    extra = dict(extra or {})
    chosen = check_table(path, label=label, key=key, features=features, extra=extra)
    p = Path(path)
    columns = list(dict.fromkeys([label, *([key] if key else []),
                                  *[c for c in extra.values() if c], *chosen]))
    try:
        frame = (pd.read_csv(p, usecols=columns) if _is_csv(p)
                 else pd.read_parquet(p, columns=columns))
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise CLIError(f"INPUT {p.name!r} could not be read: {' '.join(str(exc).split())}"
                       ) from None
    source = p.name
    if frame.empty:
        raise CLIError(f"INPUT {source!r} has no rows.")
    if frame[label].isna().any():
        raise CLIError(f"--label column {label!r} of {source} has "
                       f"{int(frame[label].isna().sum())} missing values.")
    keys = None
    if key:
        keys = frame[key].to_numpy()
        dup = frame[key].duplicated()
        if frame[key].isna().any() or dup.any():
            raise CLIError(f"--key column {key!r} of {source} must be unique and non-missing; "
                           f"e.g. {frame[key][dup | frame[key].isna()].iloc[0]!r} is not.")
    blocks, names = [], []
    for col in chosen:
        block = _column_matrix(frame[col], col, source)
        bad = ~np.isfinite(block)
        if bad.any():
            raise CLIError(f"--features column {col!r} of {source} has missing or infinite "
                           f"values in {int(bad.any(axis=1).sum())} rows.")
        blocks.append(block)
        names += [col] if block.shape[1] == 1 else [f"{col}[{j}]" for j in range(block.shape[1])]
    return Table(X=np.hstack(blocks), y=frame[label].to_numpy(), keys=keys,
                 feature_names=names, source=source,
                 extra={opt: frame[col].to_numpy() for opt, col in extra.items() if col})
