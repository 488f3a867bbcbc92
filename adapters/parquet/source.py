"""The input side: a Parquet dataset read in a deterministic scan order, and its keys.

:class:`Source` opens a Parquet file, a folder of Parquet files or a hive-partitioned
dataset with :mod:`pyarrow.dataset`, sorts its files by path and streams record
batches with global row numbers, so that every pass (and every worker) sees row ``r``
at the same place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from tqdm.auto import tqdm

from tod_cleanse.masks import keys_to_int64

from .errors import fail

__all__ = ["Source", "keys_of", "progress_bar", "decode", "value_type", "is_numeric",
           "is_vector", "is_text", "is_binary"]

_CODECS = ("snappy", "gzip", "brotli", "zstd", "lz4", "none", "uncompressed")


def is_numeric(t: pa.DataType) -> bool:
    """Integer, floating, boolean or decimal."""
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t))


def is_vector(t: pa.DataType) -> bool:
    """A (fixed-size or large) list of numbers."""
    return ((pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))
            and is_numeric(t.value_type))


def is_text(t: pa.DataType) -> bool:
    """A string column."""
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def is_binary(t: pa.DataType) -> bool:
    """A binary column."""
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def decode(arr: pa.Array) -> pa.Array:
    """One contiguous array, dictionary-decoded."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def value_type(t: pa.DataType) -> pa.DataType:
    """The value type of a dictionary type, else ``t``."""
    return t.value_type if pa.types.is_dictionary(t) else t


def progress_bar(total: int, desc: str, progress: bool) -> tqdm:
    """A row-counting tqdm bar that ``progress=False`` silences."""
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not progress,
                leave=False, dynamic_ncols=True)


def keys_of(arr: pa.Array, key: str, where: str) -> np.ndarray:
    """int64 keys of a key column (:func:`~tod_cleanse.masks.keys_to_int64`)."""
    arr = decode(arr)
    if arr.null_count:
        fail(f"{where}: key column {key!r} has {arr.null_count} missing value(s)")
    try:
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            return keys_to_int64(arr.to_numpy(zero_copy_only=False))
        if is_text(arr.type) or is_binary(arr.type):
            return keys_to_int64(np.asarray(arr.to_pylist(), dtype=object))
    except (TypeError, ValueError) as exc:
        fail(f"{where}: key column {key!r}: {exc}")
    fail(f"{where}: key column {key!r} has type {arr.type}; keys must be integers or strings")


class Source:
    """The input dataset: sorted fragments, their schemas, row counts and codecs.

    Parameters
    ----------
    path : path
        Parquet file, folder of Parquet files or hive-partitioned dataset.
    batch_rows : int
        Rows per streamed record batch.
    what : str, default="input"
        How error messages name the dataset (e.g. ``"--eval"``).

    Examples
    --------
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"id": [1, 2, 3], "y": ["a", "b", "a"]}), path)
    >>> src = Source(path, batch_rows=2)
    >>> src.n_rows, [(start, b.num_rows) for _, start, b in src.batches(["id"])]
    (3, [(0, 2), (2, 1)])
    """

    def __init__(self, path: str | os.PathLike, batch_rows: int, what: str = "input") -> None:
        self.path = Path(path)
        self.batch_rows = batch_rows
        self.what = what
        if not self.path.exists():
            fail(f"{what} {self.path}: no such file or folder")
        if not os.access(self.path, os.R_OK | (os.X_OK if self.path.is_dir() else 0)):
            fail(f"{what} {self.path}: permission denied (cannot read it)")
        try:
            if self.path.is_dir():
                dataset = ds.dataset(str(self.path), format="parquet", partitioning="hive")
            else:
                dataset = ds.dataset(str(self.path), format="parquet")
            fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
        except (pa.ArrowException, OSError) as exc:
            fail(f"{what} {self.path}: cannot be read as Parquet ({exc})")
        if not fragments:
            fail(f"{what} {self.path}: no Parquet files found")
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.fragments = fragments
        self.rel_paths = [os.path.relpath(f.path, self.root) for f in fragments]
        self._read_footers()
        self.schema = dataset.schema
        self.n_rows = int(sum(self.rows))
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)
        if self.n_rows == 0:
            fail(f"{what} {self.path}: the dataset is empty (0 rows)")

    def _read_footers(self) -> None:
        self.physical: list[pa.Schema] = []
        self.rows: list[int] = []
        self.codecs: list[str] = []
        first = self.fragments[0]
        for frag in self.fragments:
            try:
                schema = frag.physical_schema
                meta = frag.metadata
            except (pa.ArrowException, OSError) as exc:
                fail(f"{frag.path}: not a readable Parquet file ({exc})")
            if self.physical:
                ref = self.physical[0]
                if schema.names != ref.names:
                    fail(f"{frag.path}: its columns {schema.names} differ from "
                         f"{ref.names} in {first.path}")
                for field, ref_field in zip(schema, ref, strict=True):
                    if not field.type.equals(ref_field.type):
                        fail(f"mixed types: column {field.name!r} is {field.type} in {frag.path} "
                             f"but {ref_field.type} in {first.path}")
            self.physical.append(schema)
            self.rows.append(int(meta.num_rows))
            codec = "snappy"
            if meta.num_row_groups and meta.num_columns:
                codec = str(meta.row_group(0).column(0).compression).lower()
            self.codecs.append(codec if codec in _CODECS else "snappy")

    def check_column(self, name: str, option: str) -> pa.DataType:
        """Type of column ``name``; a missing one is an error naming ``option``."""
        if name not in self.schema.names:
            fail(f"{option}: column {name!r} not found in {self.path} "
                 f"(columns: {', '.join(self.schema.names)})")
        return self.schema.field(name).type

    def batches(self, columns: list[str], only: int | None = None
                ) -> Iterator[tuple[int, int, pa.RecordBatch]]:
        """Yield ``(fragment index, global start row, batch)`` in deterministic scan order.

        ``only`` restricts the scan to one fragment (global row numbers are kept).
        """
        for fi, frag in enumerate(self.fragments):
            if only is not None and fi != only:
                continue
            start = int(self.offsets[fi])
            got = 0
            try:
                scan = frag.to_batches(
                    schema=self.schema, columns=columns, batch_size=self.batch_rows,
                    batch_readahead=2, fragment_readahead=1,
                )
                for batch in scan:
                    if batch.num_rows:
                        yield fi, start + got, batch
                        got += batch.num_rows
            except (pa.ArrowException, OSError) as exc:
                fail(f"{frag.path}: cannot be read ({exc})")
            if got != self.rows[fi]:
                fail(f"{frag.path}: read {got} rows but its footer says {self.rows[fi]} "
                     "(did it change during the run?)")

    def raw_key(self, key: str, position: int) -> Any:
        """The raw value of column ``key`` at global row ``position``."""
        fi = int(np.searchsorted(self.offsets, position, side="right") - 1)
        for _, start, batch in self.batches([key], only=fi):
            if start <= position < start + batch.num_rows:
                return batch.column(key)[int(position - start)].as_py()
        raise IndexError(position)  # pragma: no cover
