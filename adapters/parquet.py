"""Batch cleaning of Parquet datasets: ``tod-cleanse clean``.

Reads a Parquet file, a folder of Parquet files or a hive-partitioned dataset with
:mod:`pyarrow.dataset`, fits one turn-over dropout estimator [1]_ and writes

``DIR/kept/``
    the input rows that stay, file by file (same relative paths, same schema and
    metadata as the input files);
``DIR/dropped/``
    the rows removed: quarantined, never deleted;
``DIR/issues.parquet``
    one row per input row, in scan order: key, signed score (more negative = more
    harmful), rank (1 = most harmful), ``is_issue``, given label, out-of-sample
    predicted label, the out-of-sample probability of the given label and whether
    the row was ``trained`` on;
``DIR/summary.json``
    counts, parameters, versions, timings and the partition check.

Safety: the input is only ever read; the output folder is written under a temporary
name in the same parent folder and renamed at the very end, after a check that
``kept`` and ``dropped`` partition the input exactly (row counts and
order-independent 64-bit checksums of the keys, re-read from the written files).
Memory is bounded: every pass streams record batches; training holds only the
(sampled) training rows.

Scores. Rows the model trained on are scored by :class:`~tod_cleanse.ToDCleanser`
(``method``'s formula, see :mod:`tod_cleanse.scores`). Above ``max_train_rows`` the
model trains on a seeded sample and the other rows are scored with the *full*
network, which never saw them: their ``oos_likelihood`` is ``log p_full(y|x)`` and
their ``confident_learning`` margin is computed on ``p_full`` -- the same formulas,
fed with an out-of-sample network, as the flipped sub-network gives trained rows.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import numbers
import os
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from tod_cleanse.masks import keys_to_int64
from tod_cleanse.scores import (
    DEFAULT_METHOD,
    METHODS,
    cleansing_scores,
    flag_issues,
    given_label_proba,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CleanParquetError",
    "PartitionCheckError",
    "ROW_COLUMN",
    "clean_parquet",
    "export_demo",
    "key_checksum",
    "add_arguments",
    "run",
]

#: Column that carries the scan-order row position when no ``key`` is given.
ROW_COLUMN = "_tod_row"
#: Methods whose score of an untrained row (full network) has the same meaning as
#: the score of a trained row (flipped sub-network).
SAMPLED_METHODS = ("oos_likelihood", "confident_learning")
MODELS = ("mlp", "bert", "vgg")
_ESTIMATORS = {"mlp": "ToDMLPClassifier", "bert": "ToDBertClassifier", "vgg": "ToDVGGClassifier"}
_TMP_TAG = ".tod-cleanse-tmp-"
_OLD_TAG = ".tod-cleanse-old-"
_U64 = (1 << 64) - 1


class CleanParquetError(ValueError):
    """Bad input or output for :func:`clean_parquet`; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class PartitionCheckError(RuntimeError):
    """The written ``kept`` and ``dropped`` files do not partition the input."""


def _fail(message: str) -> NoReturn:
    raise CleanParquetError(message)


# ---------------------------------------------------------------- checksums
def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of uint64 values (wrapping arithmetic)."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class _Checksum:
    """Order-independent checksum of a multiset of int64 keys: count, sum and xor of
    ``splitmix64(key)`` modulo ``2**64``."""

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0
        self.xor = 0

    def update(self, keys: np.ndarray) -> None:
        if keys.shape[0] == 0:
            return
        h = _splitmix64(np.asarray(keys, dtype=np.int64).view(np.uint64))
        self.count += int(h.shape[0])
        self.sum = (self.sum + int(h.sum(dtype=np.uint64))) & _U64
        self.xor ^= int(np.bitwise_xor.reduce(h))

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.count, "key_hash_sum": f"{self.sum:016x}",
                "key_hash_xor": f"{self.xor:016x}"}


def key_checksum(keys: Sequence | np.ndarray) -> dict[str, Any]:
    """Order-independent checksum of instance keys, as recorded in ``summary.json``.

    Keys are turned into int64 with :func:`tod_cleanse.masks.keys_to_int64` (integers
    as they are, other keys by BLAKE2b), mixed with splitmix64, and summed and
    xor-ed modulo ``2**64``. The checksum of a union of disjoint sets is the
    sum (and xor) of their checksums, which is how the partition check works.

    Parameters
    ----------
    keys : array-like of shape (n,)
        Integer or string keys.

    Returns
    -------
    dict
        ``rows``, ``key_hash_sum`` and ``key_hash_xor`` (16 hex digits each).

    Examples
    --------
    >>> key_checksum([3, 1, 2]) == key_checksum([2, 3, 1])
    True
    >>> key_checksum(["a", "b"])["rows"]
    2
    """
    cs = _Checksum()
    cs.update(keys_to_int64(np.asarray(keys)))
    return cs.as_dict()


# -------------------------------------------------------------------- input
def _is_numeric(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t))


def _is_vector(t: pa.DataType) -> bool:
    return ((pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))
            and _is_numeric(t.value_type))


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _decode(arr: pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


class _Source:
    """The input dataset: sorted fragments, their schemas and row counts."""

    def __init__(self, path: str | os.PathLike, batch_rows: int, what: str = "input") -> None:
        self.path = Path(path)
        self.batch_rows = batch_rows
        if not self.path.exists():
            _fail(f"{what} {self.path}: no such file or folder")
        if not os.access(self.path, os.R_OK | (os.X_OK if self.path.is_dir() else 0)):
            _fail(f"{what} {self.path}: permission denied (cannot read it)")
        try:
            if self.path.is_dir():
                dataset = ds.dataset(str(self.path), format="parquet", partitioning="hive")
            else:
                dataset = ds.dataset(str(self.path), format="parquet")
            fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
        except (pa.ArrowException, OSError) as exc:
            _fail(f"{what} {self.path}: cannot be read as Parquet ({exc})")
        if not fragments:
            _fail(f"{what} {self.path}: no Parquet files found")
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.fragments = fragments
        self.rel_paths = [os.path.relpath(f.path, self.root) for f in fragments]
        self.physical: list[pa.Schema] = []
        self.rows: list[int] = []
        self.codecs: list[str] = []
        first: pa.Schema | None = None
        for frag in fragments:
            try:
                schema = frag.physical_schema
                meta = frag.metadata
            except (pa.ArrowException, OSError) as exc:
                _fail(f"{frag.path}: not a readable Parquet file ({exc})")
            if first is None:
                first = schema
            elif schema.names != first.names:
                _fail(f"{frag.path}: its columns {schema.names} differ from "
                      f"{first.names} in {fragments[0].path}")
            else:
                for field, ref in zip(schema, first, strict=True):
                    if not field.type.equals(ref.type):
                        _fail(f"mixed types: column {field.name!r} is {field.type} in {frag.path} "
                              f"but {ref.type} in {fragments[0].path}")
            self.physical.append(schema)
            self.rows.append(int(meta.num_rows))
            codec = "snappy"
            if meta.num_row_groups and meta.num_columns:
                codec = str(meta.row_group(0).column(0).compression).lower()
            self.codecs.append(codec if codec in ("snappy", "gzip", "brotli", "zstd", "lz4",
                                                  "none", "uncompressed") else "snappy")
        self.schema = dataset.schema
        self.n_rows = int(sum(self.rows))
        if self.n_rows == 0:
            _fail(f"{what} {self.path}: the dataset is empty (0 rows)")

    def check_column(self, name: str, option: str) -> pa.DataType:
        if name not in self.schema.names:
            _fail(f"{option}: column {name!r} not found in {self.path} "
                  f"(columns: {', '.join(self.schema.names)})")
        return self.schema.field(name).type

    def batches(self, columns: list[str], only: int | None = None
                ) -> Iterator[tuple[int, int, pa.RecordBatch]]:
        """Yield ``(fragment index, global start row, batch)`` in deterministic scan order.

        ``only`` restricts the scan to one fragment (global row numbers are kept).
        """
        start = 0
        for fi, frag in enumerate(self.fragments):
            if only is not None and fi != only:
                start += self.rows[fi]
                continue
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
                _fail(f"{frag.path}: cannot be read ({exc})")
            if got != self.rows[fi]:
                _fail(f"{frag.path}: read {got} rows but its footer says {self.rows[fi]} "
                      "(did it change during the run?)")
            start += got


def _bar(total: int, desc: str, progress: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not progress,
                leave=False, dynamic_ncols=True)


def _keys_of(arr: pa.Array, key: str, where: str) -> np.ndarray:
    arr = _decode(arr)
    if arr.null_count:
        _fail(f"{where}: key column {key!r} has {arr.null_count} missing value(s)")
    try:
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
            return keys_to_int64(arr.to_numpy(zero_copy_only=False))
        if _is_text(arr.type) or _is_binary(arr.type):
            return keys_to_int64(np.asarray(arr.to_pylist(), dtype=object))
    except (TypeError, ValueError) as exc:
        _fail(f"{where}: key column {key!r}: {exc}")
    _fail(f"{where}: key column {key!r} has type {arr.type}; keys must be integers or strings")


class _Features:
    """Turns the feature / text / image columns of a batch into estimator input."""

    def __init__(self, src: _Source, kind: str, columns: list[str], option: str,
                 image_shape: tuple[int, ...] | None = None) -> None:
        self.kind, self.columns, self.option = kind, columns, option
        self.image_shape = image_shape
        self.widths: dict[str, int] = {}
        if not columns:
            _fail(f"{option}: give at least one column")
        for c in columns:
            t = _value_type(src.check_column(c, option))
            if kind == "features":
                if not (_is_numeric(t) or _is_vector(t)):
                    _fail(f"{option}: column {c!r} has type {t}; features must be numeric columns "
                          "or lists of numbers (text goes to --text, images to --image)")
                if pa.types.is_fixed_size_list(t):
                    self.widths[c] = t.list_size
                elif _is_numeric(t):
                    self.widths[c] = 1
            elif kind == "text" and not _is_text(t):
                _fail(f"{option}: column {c!r} has type {t}; --text needs a string column")
            elif kind == "image" and not (_is_binary(t) or _is_vector(t)):
                _fail(f"{option}: column {c!r} has type {t}; --image needs encoded image bytes "
                      "or lists of pixel values")

    def _vectors(self, arr: pa.Array, c: str, where: str) -> np.ndarray:
        n = len(arr)
        if pa.types.is_fixed_size_list(arr.type):
            width = arr.type.list_size
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if n else 0
            if n and np.any(lengths != width):
                _fail(f"{where}: column {c!r} holds vectors of different lengths "
                      f"({int(lengths.min())} to {int(lengths.max())})")
            if self.widths.setdefault(c, width) != width:
                _fail(f"{where}: column {c!r} holds vectors of length {width} but earlier rows "
                      f"have length {self.widths[c]}")
        flat = arr.flatten()
        if flat.null_count:
            _fail(f"{where}: column {c!r} has missing values inside its vectors")
        return flat.to_numpy(zero_copy_only=False).astype(np.float32).reshape(n, width)

    def __call__(self, batch: pa.RecordBatch, where: str) -> np.ndarray:
        parts = []
        for c in self.columns:
            arr = _decode(batch.column(c))
            if arr.null_count:
                _fail(f"{where}: column {c!r} has {arr.null_count} missing value(s)")
            if self.kind == "text":
                return np.asarray(arr.to_pylist(), dtype=object)
            if self.kind == "image":
                return self._images(arr, c, where)
            if _is_vector(arr.type):
                mat = self._vectors(arr, c, where)
            else:
                mat = arr.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, 1)
            if not np.isfinite(mat).all():
                _fail(f"{where}: feature column {c!r} contains NaN or infinite values")
            parts.append(mat)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def _images(self, arr: pa.Array, c: str, where: str) -> np.ndarray:
        if _is_vector(arr.type):
            mat = self._vectors(arr, c, where)
            if self.image_shape is not None:
                if math.prod(self.image_shape) != mat.shape[1]:
                    _fail(f"{where}: --image-shape {self.image_shape} does not match the "
                          f"{mat.shape[1]} values per row of column {c!r}")
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
                _fail(f"{where}: column {c!r}, row {i} of the batch is not a decodable image "
                      f"({exc})")
            if images[-1].shape != images[0].shape:
                _fail(f"{where}: column {c!r} holds images of different shapes "
                      f"({images[0].shape} and {images[-1].shape}); resize them first")
        out = np.stack(images)
        if self.widths.setdefault(c, out[0].size) != out[0].size:
            _fail(f"{where}: column {c!r} holds images of a different size than earlier rows")
        return out


def _to_estimator(kind: str, X: np.ndarray) -> Any:
    return X.tolist() if kind == "text" else X


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


# ------------------------------------------------------------------- output
def _check_output(out: Path, input_path: Path, overwrite: bool) -> Path:
    """Refuse an output that holds the input, lies inside it, or is not ours to replace."""
    out_real = Path(os.path.realpath(out))
    inp_real = Path(os.path.realpath(input_path))
    if out_real == inp_real or inp_real.is_relative_to(out_real):
        _fail(f"output {out} holds the input {input_path}; choose another --out")
    if inp_real.is_dir() and out_real.is_relative_to(inp_real):
        _fail(f"output {out} lies inside the input folder {input_path}; choose another --out")
    if out_real.exists():
        if not out_real.is_dir():
            _fail(f"output {out} exists and is not a folder")
        if any(out_real.iterdir()):
            if not overwrite:
                _fail(f"output folder {out} is not empty; pass --overwrite to replace a previous "
                      "tod-cleanse output, or choose another --out")
            if not _is_our_output(out_real):
                _fail(f"refusing to overwrite {out}: it is not a tod-cleanse output folder "
                      "(no summary.json written by tod-cleanse)")
    ancestor = out_real.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        _fail(f"output {out}: cannot write in {ancestor} (permission denied)")
    return out_real


def _is_our_output(folder: Path) -> bool:
    try:
        with open(folder / "summary.json", encoding="utf-8") as fh:
            return json.load(fh).get("tool") == "tod-cleanse clean"
    except (OSError, ValueError, AttributeError):
        return False


def _remove_stale(out: Path) -> None:
    """Remove temporary folders that killed runs left next to ``out``."""
    parent = out.parent
    if not parent.is_dir():
        return
    for tag in (_TMP_TAG, _OLD_TAG):
        for stale in parent.glob(f".{out.name}{tag}*"):
            try:
                pid = int(stale.name[len(out.name) + 1 + len(tag):].split("-")[0])
            except ValueError:
                continue
            if pid == os.getpid() or _pid_alive(pid):
                continue
            logger.warning("removing %s, left by an interrupted run (pid %d)", stale, pid)
            shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. Windows
        return True
    return True


def _commit(tmp: Path, out: Path) -> None:
    """Move the finished temporary folder to ``out`` (rename; atomic on one filesystem)."""
    if out.exists() and any(out.iterdir()):
        old = out.parent / f".{out.name}{_OLD_TAG}{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _open_writer(path: Path, schema: pa.Schema, codec: str) -> pq.ParquetWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(str(path), schema, compression=codec)


def _write_batch(writer: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
    writer.write_batch(batch)


# ------------------------------------------------------------------ models
def _make_estimator(model: str, params: dict[str, Any], defaults: dict[str, Any]) -> Any:
    import tod_cleanse

    try:
        cls = getattr(tod_cleanse, _ESTIMATORS[model])
    except (ImportError, AttributeError) as exc:
        _fail(f"--model {model}: estimator {_ESTIMATORS[model]} is not available ({exc})")
    accepted = cls().get_params()
    given = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        _fail(f"--model {model}: {cls.__name__} takes no parameter(s) {', '.join(unknown)}")
    given = {**{k: v for k, v in defaults.items() if k in accepted}, **given}
    try:
        return cls(**given)
    except (TypeError, ValueError) as exc:
        _fail(f"--model {model}: {exc}")


# -------------------------------------------------------------------- main
def clean_parquet(
    input: str | os.PathLike,
    out: str | os.PathLike,
    *,
    label: str,
    features: Sequence[str] | None = None,
    text: str | None = None,
    image: str | None = None,
    image_shape: Sequence[int] | None = None,
    key: str | None = None,
    model: str | None = None,
    model_params: dict[str, Any] | None = None,
    estimator: Any = None,
    method: str | None = None,
    drop_fraction: float | str = "auto",
    threshold: float | None = None,
    eval_path: str | os.PathLike | None = None,
    max_train_rows: int = 100_000,
    batch_rows: int = 65_536,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    report: bool = False,
) -> dict[str, Any]:
    """Clean a Parquet dataset into ``out/kept``, ``out/dropped`` and an issue table.

    Parameters
    ----------
    input : path
        A Parquet file, a folder of Parquet files, or a hive-partitioned dataset
        (``col=value/`` folders). Files are scanned in sorted path order.
    out : path
        Output folder (created; must be new or empty, or a previous output with
        ``overwrite=True``). It must not hold the input or lie inside it.
    label : str
        Label column (no missing values, at least two classes).
    features : list of str, optional
        Numeric columns and list / fixed-size-list vector columns (concatenated).
    text : str, optional
        String column for :class:`~tod_cleanse.ToDBertClassifier`.
    image : str, optional
        Column of encoded image bytes (PNG, JPEG...) or pixel lists for
        :class:`~tod_cleanse.ToDVGGClassifier`. Exactly one of ``features``,
        ``text`` and ``image`` is required.
    image_shape : sequence of int, optional
        ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` of pixel-list images.
    key : str, optional
        Unique, stable id column (integers or strings). Without it, keys are
        scan-order row positions, written as column ``_tod_row`` to every output.
    model : {"mlp", "bert", "vgg"}, optional
        Estimator family; default from the input kind. Ignored when ``estimator``
        is given.
    model_params : dict, optional
        Parameters of the ``model`` estimator (e.g. ``{"max_epochs": 5}``); only
        the ones it accepts.
    estimator : BaseToDClassifier, optional
        Unfitted ToD estimator to use (cloned).
    method : str or None, default=None
        Cleansing score (:data:`tod_cleanse.scores.METHODS`). Above
        ``max_train_rows`` only ``"oos_likelihood"`` and ``"confident_learning"``
        score untrained rows on the same scale and are allowed. ``None``: the
        package default :data:`tod_cleanse.scores.DEFAULT_METHOD`, or
        ``"oos_likelihood"`` for a sampled run if the default is not one of those.
    drop_fraction : float or "auto", default="auto"
        Fraction of all rows to drop (lowest scores). ``"auto"``: the fraction of
        training rows that confident learning finds mislabeled.
    threshold : float, optional
        Drop rows whose score is below it (overrides ``drop_fraction``).
    eval_path : path, optional
        Validation Parquet data with the same columns, for ``method="eval_influence"``.
    max_train_rows : int, default=100000
        Above this many rows, train on a seeded sample of this size (plus a few rows
        of any class the sample missed).
    batch_rows : int, default=65536
        Rows per record batch in every streaming pass.
    seed : int, default=0
        Seeds the training sample and the estimator.
    overwrite : bool, default=False
        Replace ``out`` if it is a previous tod-cleanse output.
    progress : bool, default=True
        Show progress bars.
    report : bool, default=False
        Also write ``out/report.html`` (and its PNG figures in ``out/report_figures/``)
        with :func:`tod_cleanse.report.write_report`: the trained rows the cleanser
        flagged, ranked, with their content. Untrained rows (above
        ``max_train_rows``) are in ``issues.parquet`` but not in the report.

    Returns
    -------
    dict
        The content of ``summary.json``.

    Raises
    ------
    CleanParquetError
        Bad input or output (one-line message naming the file or column); nothing
        is written then.

    Examples
    --------
    >>> import tempfile, os
    >>> from tod_cleanse import ToDMLPClassifier
    >>> tmp = tempfile.mkdtemp()
    >>> data = export_demo(os.path.join(tmp, "digits.parquet"), n_rows=300)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(16,), max_epochs=2, verbose=0)
    >>> summary = clean_parquet(data, os.path.join(tmp, "out"), label="label",
    ...                         features=["pixels"], key="id", estimator=est,
    ...                         drop_fraction=0.1, progress=False)
    >>> summary["counts"]["kept"], summary["counts"]["dropped"]
    (270, 30)
    >>> summary["partition_check"]["ok"]
    True
    >>> sorted(os.listdir(os.path.join(tmp, "out")))
    ['dropped', 'issues.parquet', 'kept', 'summary.json']
    """
    from sklearn.base import clone

    from tod_cleanse import ToDCleanser, __version__
    from tod_cleanse.estimators.base import BaseToDClassifier

    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(stage: str, since: float) -> float:
        now = time.perf_counter()
        timings[stage] = round(now - since, 3)
        return now

    # ---- parameters
    chosen = [name for name, v in (("features", features), ("text", text), ("image", image))
              if v]
    if len(chosen) != 1:
        _fail("give exactly one of --features, --text and --image"
              + (f" (got {', '.join('--' + c for c in chosen)})" if chosen else ""))
    kind = chosen[0]
    if isinstance(features, str):
        features = [features]
    columns = list(features) if kind == "features" else [text if kind == "text" else image]
    option = {"features": "--features", "text": "--text", "image": "--image"}[kind]
    if not isinstance(max_train_rows, numbers.Integral) or max_train_rows < 2:
        _fail(f"--max-train-rows must be an integer >= 2, got {max_train_rows!r}")
    if not isinstance(batch_rows, numbers.Integral) or batch_rows < 1:
        _fail(f"--batch-rows must be a positive integer, got {batch_rows!r}")
    if estimator is None:
        model = model or {"features": "mlp", "text": "bert", "image": "vgg"}[kind]
        if model not in MODELS:
            _fail(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
        estimator = _make_estimator(model, model_params or {},
                                    {"random_state": seed, "verbose": int(progress)})
    elif not isinstance(estimator, BaseToDClassifier):
        _fail(f"estimator must be a ToD estimator, got {type(estimator).__name__}")
    else:
        estimator = clone(estimator)
    try:
        ToDCleanser(estimator=estimator, method=method or DEFAULT_METHOD,
                    drop_fraction=drop_fraction,
                    threshold=threshold,
                    eval_set=(None, None) if method == "eval_influence" else None)._check_params()
    except (TypeError, ValueError) as exc:
        _fail(str(exc))

    # ---- input and output checks (nothing is written before the write stage)
    t = time.perf_counter()
    src = _Source(input, int(batch_rows))
    label_type = _value_type(src.check_column(label, "--label"))
    if not (pa.types.is_integer(label_type) or pa.types.is_floating(label_type)
            or pa.types.is_boolean(label_type) or _is_text(label_type)):
        _fail(f"--label: column {label!r} has type {label_type}; labels must be integers, "
              "strings, booleans or floats")
    if key is not None:
        src.check_column(key, "--key")
        if key == label or key in columns:
            _fail(f"--key: column {key!r} is also used as label or feature")
    elif ROW_COLUMN in src.schema.names:
        _fail(f"input {src.path} already has a column {ROW_COLUMN!r}; pass it as --key")
    if label in columns:
        _fail(f"{option}: the label column {label!r} cannot also be a feature")
    shape = tuple(int(s) for s in image_shape) if image_shape is not None else None
    extract = _Features(src, kind, columns, option, shape)
    out_path = _check_output(Path(out), src.path, overwrite)
    n = src.n_rows
    if method is None:
        method, method_note = DEFAULT_METHOD, "package default"
        if n > max_train_rows and method not in SAMPLED_METHODS:
            method = SAMPLED_METHODS[0]
            method_note = (f"default for a sampled run (the package default {DEFAULT_METHOD!r} "
                           "has no out-of-sample score for untrained rows)")
    else:
        method_note = "given"
    if method == "eval_influence" and eval_path is None:
        _fail("--method eval_influence needs --eval PATH (validation Parquet data)")
    if eval_path is not None and method != "eval_influence":
        _fail(f"--eval is only used by --method eval_influence, got --method {method}")
    if n > max_train_rows and method not in SAMPLED_METHODS:
        _fail(f"--method {method} scores only rows the model trained on, but the dataset has "
              f"{n} rows > --max-train-rows {max_train_rows}; raise --max-train-rows or use "
              f"{' or '.join(SAMPLED_METHODS)}")

    # ---- pass 1: labels and keys
    label_chunks: list[pa.Array] = []
    keys = np.empty(n, dtype=np.int64)
    in_sum = _Checksum()
    read_cols = [label] + ([key] if key else [])
    with _bar(n, "reading labels and keys", progress) as bar:
        for fi, start, batch in src.batches(read_cols):
            where = src.fragments[fi].path
            lab = _decode(batch.column(label))
            if lab.null_count:
                _fail(f"{where}: label column {label!r} has {lab.null_count} missing value(s)")
            if pa.types.is_floating(lab.type) and not pc.all(pc.is_finite(lab)).as_py():
                _fail(f"{where}: label column {label!r} contains NaN or infinite labels")
            label_chunks.append(lab)
            stop = start + batch.num_rows
            if key:
                keys[start:stop] = _keys_of(batch.column(key), key, where)
            else:
                keys[start:stop] = np.arange(start, stop)
            bar.update(batch.num_rows)
    in_sum.update(keys)
    if key:
        sorted_keys = np.sort(keys)
        dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
        if dup.size:
            example = _find_raw_key(src, key, keys, int(sorted_keys[dup[0]]))
            _fail(f"--key: column {key!r} has duplicate values ({dup.size} duplicate(s), "
                  f"e.g. {example!r})")
        del sorted_keys
    labels_all = pa.chunked_array(label_chunks, type=label_chunks[0].type)
    del label_chunks
    classes = _decode(pc.unique(labels_all))
    classes = classes.take(pc.array_sort_indices(classes))
    if len(classes) < 2:
        _fail(f"--label: column {label!r} has the single class {classes[0].as_py()!r}; "
              "cleaning needs at least two classes")
    codes = pc.index_in(labels_all, value_set=classes).to_numpy().astype(np.int32)
    del labels_all
    classes_np = classes.to_numpy(zero_copy_only=False)
    k = len(classes)
    t = lap("read_labels_keys", t)

    # ---- training sample
    if n <= max_train_rows:
        train_pos = np.arange(n)
    else:
        rng = np.random.default_rng(seed)
        train_pos = np.sort(rng.choice(n, size=int(max_train_rows), replace=False))
        missing = np.setdiff1d(np.arange(k), np.unique(codes[train_pos]))
        if missing.size:
            extra = [rng.choice(np.flatnonzero(codes == c),
                                size=min(5, int(np.sum(codes == c))), replace=False)
                     for c in missing]
            train_pos = np.union1d(train_pos, np.concatenate(extra))
            logger.info("added %d rows of %d classes missing from the training sample",
                        sum(len(e) for e in extra), missing.size)
    trained = np.zeros(n, dtype=bool)
    trained[train_pos] = True
    m = int(train_pos.shape[0])

    # ---- pass 2: training rows
    parts: list[np.ndarray] = []
    with _bar(n, "collecting training rows", progress) as bar:
        for fi, start, batch in src.batches(columns):
            sel = np.flatnonzero(trained[start:start + batch.num_rows])
            if sel.size:
                parts.append(extract(batch.take(pa.array(sel)), src.fragments[fi].path))
            bar.update(batch.num_rows)
    X_train = _concat(parts)
    del parts
    y_train = classes_np[codes[train_pos]]
    eval_set = None
    if method == "eval_influence":
        eval_set = _read_eval(eval_path, int(batch_rows), label, kind, columns, option, shape,
                              classes)
    t = lap("collect_training_rows", t)

    # ---- training (ToDCleanser: one training run, scores of the trained rows)
    cleanser = ToDCleanser(estimator=estimator, method=method, drop_fraction=drop_fraction,
                           threshold=threshold, eval_set=eval_set)
    logger.info("training %s on %d of %d rows", type(estimator).__name__, m, n)
    X_est = _to_estimator(kind, X_train)
    try:
        cleanser.fit(X_est, y_train, instance_keys=keys[train_pos])
    except (TypeError, ValueError) as exc:
        _fail(f"training on {src.path} failed: {exc}")
    report_data = (X_est, y_train) if report else None
    del X_train, X_est, y_train
    est = cleanser.estimator_
    est_index = {c: i for i, c in enumerate(est.classes_.tolist())}
    global_to_est = np.array([est_index[c] for c in classes_np.tolist()], dtype=np.int64)
    est_to_global = np.array([classes_np.tolist().index(c) for c in est.classes_.tolist()],
                             dtype=np.int32)
    t = lap("train", t)

    # ---- pass 3: score the rows outside the training sample with the full network
    scores = np.empty(n, dtype=np.float64)
    oos_pred = np.empty(n, dtype=np.int32)
    p_label = np.empty(n, dtype=np.float32)
    scores[train_pos] = cleanser.scores_
    oos_pred[train_pos] = est_to_global[np.argmax(est.oos_proba_, axis=1)]
    p_label[train_pos] = given_label_proba(est.oos_proba_, est.y_train_)
    if m < n:
        if hasattr(est, "verbose"):
            est.set_params(verbose=0)
        with _bar(n - m, "scoring untrained rows (full network)", progress) as bar:
            for fi, start, batch in src.batches(columns):
                sel = np.flatnonzero(~trained[start:start + batch.num_rows])
                if not sel.size:
                    continue
                Xb = extract(batch.take(pa.array(sel)), src.fragments[fi].path)
                pos = start + sel
                proba = est.predict_proba(_to_estimator(kind, Xb))
                y_est = global_to_est[codes[pos]]
                scores[pos] = cleansing_scores(method, y_est, oos_proba=proba)
                oos_pred[pos] = est_to_global[np.argmax(proba, axis=1)]
                p_label[pos] = given_label_proba(proba, y_est)
                bar.update(sel.size)
        t = lap("score_untrained_rows", t)

    # ---- decision
    if m == n:
        rank = cleanser.issues_["rank"].to_numpy(dtype=np.int64)
        is_issue = cleanser.issues_["is_issue"].to_numpy(dtype=bool)
        rule_note = "ToDCleanser's decision on all rows"
    else:
        rate = cleanser.n_dropped_ / m
        rank, is_issue = flag_issues(scores, drop_fraction=drop_fraction, threshold=threshold,
                                     auto_count=int(round(rate * n)))
        if threshold is not None:
            rule_note = f"score < {threshold}"
        elif drop_fraction == "auto":
            rule_note = (f"auto: confident-learning issue rate of the training sample "
                         f"({rate:.4f}) times {n} rows, lowest scores")
        else:
            rule_note = f"lowest {drop_fraction} of all rows"
    expected_kept = _Checksum()
    expected_kept.update(keys[~is_issue])

    # ---- pass 4: write kept/, dropped/ and issues.parquet under a temporary name
    _remove_stale(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.parent / f".{out_path.name}{_TMP_TAG}{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as exc:
        _fail(f"output {out}: cannot create it ({exc})")
    try:
        key_field = (pa.field(key, _value_type(src.schema.field(key).type)) if key
                     else pa.field(ROW_COLUMN, pa.int64()))
        label_field = pa.field(label, label_type)
        issues_schema = pa.schema([
            key_field,
            pa.field("score", pa.float64()),
            pa.field("rank", pa.int64()),
            pa.field("is_issue", pa.bool_()),
            pa.field("label", label_field.type),
            pa.field("oos_label", label_field.type),
            pa.field("oos_proba_label", pa.float32()),
            pa.field("trained", pa.bool_()),
        ], metadata={"tod_cleanse.method": method, "tod_cleanse.label_column": label})
        expected_schemas: dict[str, pa.Schema] = {}
        issues_writer = _open_writer(tmp / "issues.parquet", issues_schema, "snappy")
        with _bar(n, "writing kept/ and dropped/", progress) as bar:
            try:
                for fi, frag in enumerate(src.fragments):
                    phys = src.physical[fi]
                    write_schema = phys if key else phys.append(pa.field(ROW_COLUMN, pa.int64()))
                    rel = src.rel_paths[fi]
                    expected_schemas[rel] = write_schema
                    writers = [_open_writer(tmp / part / rel, write_schema, src.codecs[fi])
                               for part in ("kept", "dropped")]
                    try:
                        cols = phys.names + ([key] if key and key not in phys.names else [])
                        for _, start, batch in src.batches(cols, only=fi):
                            stop = start + batch.num_rows
                            pos_keys = keys[start:stop]
                            if key:
                                got = _keys_of(batch.column(key), key, frag.path)
                                if not np.array_equal(got, pos_keys):
                                    _fail(f"{frag.path}: rows came back in a different order "
                                          "than in the first pass")
                                data = pa.RecordBatch.from_arrays(
                                    [batch.column(c) for c in phys.names], schema=phys)
                                key_arr = _decode(batch.column(key))
                            else:
                                key_arr = pa.array(pos_keys, pa.int64())
                                data = pa.RecordBatch.from_arrays(
                                    [batch.column(c) for c in phys.names] + [key_arr],
                                    schema=write_schema)
                            drop = is_issue[start:stop]
                            _write_batch(writers[0], data.filter(pa.array(~drop)))
                            _write_batch(writers[1], data.filter(pa.array(drop)))
                            _write_batch(issues_writer, pa.RecordBatch.from_arrays([
                                key_arr.cast(key_field.type),
                                pa.array(scores[start:stop]),
                                pa.array(rank[start:stop]),
                                pa.array(drop),
                                classes.take(pa.array(codes[start:stop])),
                                classes.take(pa.array(oos_pred[start:stop])),
                                pa.array(p_label[start:stop]),
                                pa.array(trained[start:stop]),
                            ], schema=issues_schema))
                            bar.update(batch.num_rows)
                    finally:
                        for w in writers:
                            w.close()
            finally:
                issues_writer.close()
        t = lap("write", t)

        # ---- pass 5: verify from the written files
        check = _verify(tmp, key or ROW_COLUMN, expected_schemas, in_sum, expected_kept,
                        int(is_issue.sum()), n, src.schema, progress)
        t = lap("verify", t)
        n_drop = int(is_issue.sum())
        summary = {
            "tool": "tod-cleanse clean",
            "input": str(src.path),
            "output": str(out_path),
            "counts": {
                "input": n, "kept": n - n_drop, "dropped": n_drop, "trained": m,
                "untrained": n - m, "files": len(src.fragments), "classes": k,
                "dropped_fraction": round(n_drop / n, 6),
            },
            "parameters": {
                "label": label, "features": columns if kind == "features" else None,
                "text": text, "image": image, "key": key or f"{ROW_COLUMN} (row position)",
                "method": method, "method_choice": method_note,
                "drop_fraction": drop_fraction, "threshold": threshold,
                "decision": rule_note, "max_train_rows": int(max_train_rows),
                "batch_rows": int(batch_rows), "seed": seed,
                "eval": str(eval_path) if eval_path is not None else None,
                "estimator": type(est).__name__,
                "estimator_params": {p: _jsonable(v) for p, v in est.get_params().items()},
            },
            "scores": {
                "trained_rows": f"ToDCleanser, method {method!r}",
                "untrained_rows": (f"{method!r} formula on the full network's probabilities "
                                   "(out-of-sample for these rows)") if m < n else None,
            },
            "partition_check": check,
            "versions": {
                "tod_cleanse": __version__, "pyarrow": pa.__version__, "numpy": np.__version__,
                "torch": _torch_version(), "python": platform.python_version(),
            },
            "timings_s": timings,
        }
        if report_data is not None:
            from tod_cleanse.report import write_report

            X_rep, y_rep = report_data
            named = kind == "features" and np.ndim(X_rep) == 2 and X_rep.shape[1] == len(columns)
            write_report(cleanser, X_rep, y_rep, tmp / "report.html",
                         instance_keys=cleanser.estimator_.instance_keys_,
                         feature_names=columns if named else None,
                         figures_dir=tmp / "report_figures",
                         title=f"tod-cleanse clean {src.path}")
            summary["report"] = "report.html"
            t = lap("report", t)
        timings["total"] = round(time.perf_counter() - t_start, 3)
        with open(tmp / "summary.json", "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
        _commit(tmp, out_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("kept %d rows, dropped %d; partition check ok", n - n_drop, n_drop)
    return summary


def _find_raw_key(src: _Source, key: str, keys: np.ndarray, value: int) -> Any:
    pos = np.flatnonzero(keys == value)[:1]
    if not pos.size:  # pragma: no cover
        return value
    for _, start, batch in src.batches([key]):
        if start <= pos[0] < start + batch.num_rows:
            return batch.column(key)[int(pos[0] - start)].as_py()
    return value  # pragma: no cover


def _read_eval(path: Any, batch_rows: int, label: str, kind: str, columns: list[str],
               option: str, shape: tuple[int, ...] | None, classes: pa.Array
               ) -> tuple[Any, np.ndarray]:
    src = _Source(path, batch_rows, what="--eval")
    src.check_column(label, "--eval --label")
    extract = _Features(src, kind, columns, f"--eval {option}", shape)
    parts, labels = [], []
    for fi, _, batch in src.batches(columns + [label]):
        where = src.fragments[fi].path
        lab = _decode(batch.column(label))
        if lab.null_count:
            _fail(f"{where}: label column {label!r} has missing values")
        if not pc.all(pc.is_in(lab, value_set=classes.cast(lab.type))).as_py():
            _fail(f"{where}: label column {label!r} has labels absent from the input")
        labels.append(lab.to_numpy(zero_copy_only=False))
        parts.append(extract(batch, where))
    return _to_estimator(kind, _concat(parts)), np.concatenate(labels)


def _verify(tmp: Path, key: str, expected_schemas: dict[str, pa.Schema], in_sum: _Checksum,
            expected_kept: _Checksum, n_dropped: int, n: int, input_schema: pa.Schema,
            progress: bool) -> dict[str, Any]:
    """Re-read the written kept/ and dropped/ keys; prove they partition the input."""
    sums = {}
    with _bar(n, "verifying the partition", progress) as bar:
        for part in ("kept", "dropped"):
            cs = _Checksum()
            for rel, schema in expected_schemas.items():
                path = tmp / part / rel
                got = pq.read_schema(path)
                if not got.equals(schema, check_metadata=True):
                    _fail(f"{path}: written schema differs from the input's")
                pf = pq.ParquetFile(path)
                if key in schema.names:
                    for batch in pf.iter_batches(columns=[key], batch_size=65_536):
                        arr = batch.column(0)
                        cs.update(_keys_of(arr, key, str(path)))
                        bar.update(batch.num_rows)
                else:  # key is a hive partition column: constant within the file
                    value = _partition_value(rel, key, input_schema)
                    rows = pf.metadata.num_rows
                    cs.update(_keys_of(pa.array([value] * rows, input_schema.field(key).type),
                                       key, str(path)))
                    bar.update(rows)
            sums[part] = cs
    kept, dropped = sums["kept"], sums["dropped"]
    ok_rows = kept.count + dropped.count == in_sum.count == n and dropped.count == n_dropped
    ok_sum = (kept.sum + dropped.sum) & _U64 == in_sum.sum
    ok_xor = kept.xor ^ dropped.xor == in_sum.xor
    ok_kept = kept.as_dict() == expected_kept.as_dict()
    check = {
        "ok": bool(ok_rows and ok_sum and ok_xor and ok_kept),
        "method": "count, and sum and xor of splitmix64(int64 key) mod 2**64, re-read from "
                  "the written files",
        "input": in_sum.as_dict(),
        "kept": kept.as_dict(),
        "dropped": dropped.as_dict(),
        "rows_match": bool(ok_rows),
        "sum_matches": bool(ok_sum),
        "xor_matches": bool(ok_xor),
        "kept_is_the_chosen_rows": bool(ok_kept),
    }
    if not check["ok"]:
        failed = [name for name, ok in check.items() if ok is False]
        raise PartitionCheckError(
            f"partition check failed ({', '.join(failed)}): kept {kept.count} + dropped "
            f"{dropped.count} rows vs {n} input rows; nothing was written")
    return check


def _partition_value(rel: str, key: str, schema: pa.Schema) -> Any:
    for part in Path(rel).parts[:-1]:
        name, _, value = part.partition("=")
        if name == key:
            return pa.scalar(value).cast(schema.field(key).type).as_py()
    raise RuntimeError(f"cannot find the value of {key!r} in {rel}")  # pragma: no cover


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return repr(value)


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    return torch.__version__


# --------------------------------------------------------------------- demo
def export_demo(path: str | os.PathLike, noise: float = 0.1, seed: int = 0,
                n_rows: int | None = None) -> Path:
    """Write the demo data (scikit-learn digits with seeded label noise) as Parquet.

    Columns: ``id`` (int64), ``pixels`` (fixed-size list of 64 float32), ``label``
    (the noisy label, int64) and ``true_label`` (the clean one, for evaluation only;
    never pass it as a feature).

    Parameters
    ----------
    path : path
        Parquet file to write (an existing file is replaced).
    noise : float, default=0.1
        Fraction of rows whose label is flipped to another class.
    seed : int, default=0
    n_rows : int, optional
        Use only the first ``n_rows`` digits.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> import pyarrow.parquet as pq
    >>> p = export_demo(os.path.join(tempfile.mkdtemp(), "digits.parquet"))
    >>> t = pq.read_table(p)
    >>> t.num_rows, t.column_names
    (1797, ['id', 'pixels', 'label', 'true_label'])
    >>> sum(a != b for a, b in zip(t["label"].to_pylist(), t["true_label"].to_pylist()))
    180
    """
    from sklearn.datasets import load_digits

    if not 0 <= noise < 1:
        raise ValueError(f"noise must be in [0, 1), got {noise!r}.")
    X, y = load_digits(return_X_y=True)
    if n_rows is not None:
        X, y = X[:n_rows], y[:n_rows]
    rng = np.random.default_rng(seed)
    flip = rng.choice(y.shape[0], size=int(round(noise * y.shape[0])), replace=False)
    y_noisy = y.copy()
    y_noisy[flip] = (y[flip] + rng.integers(1, 10, flip.shape[0])) % 10
    pixels = pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 64)
    table = pa.table({
        "id": pa.array(np.arange(y.shape[0]), pa.int64()),
        "pixels": pixels,
        "label": pa.array(y_noisy, pa.int64()),
        "true_label": pa.array(y, pa.int64()),
    }).replace_schema_metadata({
        "tod_cleanse.demo": json.dumps({"data": "sklearn digits", "noise": noise, "seed": seed}),
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


# ---------------------------------------------------------------------- CLI
def _fraction(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse clean``."""
    parser.add_argument("input", nargs="?", help="Parquet file, folder or partitioned dataset")
    parser.add_argument("--label", help="label column")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--features", nargs="+", metavar="COL",
                      help="numeric and vector (list) feature columns (MLP)")
    what.add_argument("--text", metavar="COL", help="text column (BERT)")
    what.add_argument("--image", metavar="COL", help="image column: encoded bytes or pixel "
                      "lists (VGG)")
    parser.add_argument("--image-shape", nargs="+", type=int, metavar="N",
                        help="shape of pixel-list images, e.g. 28 28 or 32 32 3")
    parser.add_argument("--key", metavar="COL", help="unique stable id column (default: "
                        f"scan-order row positions, written as {ROW_COLUMN})")
    parser.add_argument("--out", metavar="DIR", help="output folder (new or empty)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace DIR if it is a previous tod-cleanse output")
    parser.add_argument("--report", action="store_true",
                        help="also write DIR/report.html (tod_cleanse.write_report) on the "
                             "trained rows")
    parser.add_argument("--model", choices=MODELS,
                        help="estimator (default: mlp for --features, bert for --text, vgg for "
                        "--image)")
    parser.add_argument("--model-path", metavar="PATH",
                        help="pretrained weights for bert (model_name_or_path)")
    parser.add_argument("--method", choices=METHODS,
                        help=f"cleansing score (default {DEFAULT_METHOD}; oos_likelihood when "
                        "training on a sample needs it)")
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument("--drop-fraction", type=_fraction, default="auto", metavar="F",
                      help="fraction of rows to drop, or 'auto' (default)")
    rule.add_argument("--threshold", type=float, metavar="T",
                      help="drop rows whose score is below T")
    parser.add_argument("--eval", metavar="PATH", dest="eval_path",
                        help="validation Parquet data for --method eval_influence")
    parser.add_argument("--max-train-rows", type=int, default=100_000, metavar="N",
                        help="train on a seeded sample of N rows above this size "
                        "(default 100000)")
    parser.add_argument("--batch-rows", type=int, default=65_536, metavar="N",
                        help="rows per streamed record batch (default 65536)")
    parser.add_argument("--seed", type=int, default=0, help="sample and model seed")
    parser.add_argument("--epochs", type=int, metavar="E", help="training epochs")
    parser.add_argument("--hidden", type=int, nargs="+", metavar="W",
                        help="MLP hidden layer widths")
    parser.add_argument("--batch-size", type=int, metavar="B", help="training batch size")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--device", help="torch device (default auto)")
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars")
    parser.add_argument("--export-demo", metavar="PATH",
                        help="write the demo data (digits, 10%% seeded label noise) to PATH "
                        "as Parquet and exit")


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse clean``; returns the exit status (2 on bad input)."""
    progress = not getattr(args, "quiet", False)
    try:
        if args.export_demo:
            path = export_demo(args.export_demo)
            print(f"wrote {path} (1797 digits, 10% of labels flipped; columns id, pixels, "
                  "label, true_label)")
            return 0
        missing = [opt for opt, v in (("INPUT", args.input), ("--label", args.label),
                                      ("--out", args.out)) if not v]
        if missing:
            _fail(f"missing {', '.join(missing)} (see tod-cleanse clean --help)")
        model_params = {
            "max_epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "device": args.device,
            "hidden_layer_sizes": tuple(args.hidden) if args.hidden else None,
            "model_name_or_path": args.model_path,
        }
        summary = clean_parquet(
            args.input, args.out, label=args.label, features=args.features, text=args.text,
            image=args.image, image_shape=args.image_shape, key=args.key, model=args.model,
            model_params=model_params,
            method=args.method, drop_fraction=args.drop_fraction, threshold=args.threshold,
            eval_path=args.eval_path, max_train_rows=args.max_train_rows,
            batch_rows=args.batch_rows, seed=args.seed, overwrite=args.overwrite,
            progress=progress, report=args.report,
        )
    except (CleanParquetError, PartitionCheckError, ValueError, TypeError, OSError) as exc:
        logger.debug("clean failed", exc_info=True)
        print(f"tod-cleanse clean: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    c = summary["counts"]
    print(f"kept {c['kept']} rows, dropped {c['dropped']} of {c['input']} "
          f"({100 * c['dropped_fraction']:.2f}%); trained on {c['trained']}; "
          f"partition check {'ok' if summary['partition_check']['ok'] else 'FAILED'}; "
          f"{summary['timings_s']['total']:.1f} s -> {summary['output']}")
    return 0
