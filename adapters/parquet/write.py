"""The write and verify stages: ``kept/``, ``dropped/`` and ``issues.parquet``, then proof.

:func:`write_fragment` writes one input file's rows (a unit another engine can run per
partition, with deterministic names); :func:`file_checksum` re-reads one written
file's keys; the checksums combine (:class:`~.checksum.KeyChecksum`) into the
partition proof of :func:`verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .checksum import KeyChecksum
from .commit import open_writer, write_batch
from .errors import PartitionCheckError, fail
from .faults import checkpoint
from .plan import ROW_COLUMN, CleanPlan
from .source import decode, keys_of, progress_bar, value_type
from .stages import LabelsKeys, Scored, Trained

__all__ = ["Written", "issues_schema", "write_fragment", "write_outputs", "file_checksum",
           "verify", "partition_proof"]

PARTS = ("kept", "dropped")
_METHOD = ("count, and sum and xor of splitmix64(int64 key) mod 2**64, re-read from the "
           "written files")


@dataclass
class Written:
    """Stage ``write``: the schema of every written file (by relative path) and the
    checksum of the keys chosen to stay."""

    schemas: dict[str, pa.Schema]
    expected_kept: KeyChecksum


def issues_schema(plan: CleanPlan) -> pa.Schema:
    """Schema of ``issues.parquet``: key, score, rank, decision, labels, trained."""
    cfg, src = plan.config, plan.src
    key_field = (pa.field(cfg.key, value_type(src.schema.field(cfg.key).type)) if cfg.key
                 else pa.field(ROW_COLUMN, pa.int64()))
    return pa.schema([
        key_field,
        pa.field("score", pa.float64()),
        pa.field("rank", pa.int64()),
        pa.field("is_issue", pa.bool_()),
        pa.field("label", plan.label_type),
        pa.field("oos_label", plan.label_type),
        pa.field("oos_proba_label", pa.float32()),
        pa.field("trained", pa.bool_()),
    ], metadata={"tod_cleanse.method": plan.method, "tod_cleanse.label_column": cfg.label})


def write_fragment(plan: CleanPlan, fi: int, lk: LabelsKeys, tr: Trained, sc: Scored,
                   staging: Path, issues: Any, schema: pa.Schema, bar: Any = None) -> pa.Schema:
    """Write input file ``fi``'s rows to ``staging/kept`` and ``staging/dropped`` (same
    relative path) and its issue rows to the ``issues`` writer; returns the file schema."""
    src, key = plan.src, plan.config.key
    phys, rel, frag = src.physical[fi], src.rel_paths[fi], src.fragments[fi]
    write_schema = phys if key else phys.append(pa.field(ROW_COLUMN, pa.int64()))
    writers = [open_writer(staging / part / rel, write_schema, src.codecs[fi]) for part in PARTS]
    try:
        cols = phys.names + ([key] if key and key not in phys.names else [])
        for _, start, batch in src.batches(cols, only=fi):
            stop = start + batch.num_rows
            if key:
                if not np.array_equal(keys_of(batch.column(key), key, frag.path),
                                      lk.keys[start:stop]):
                    fail(f"{frag.path}: rows came back in a different order than in the "
                         "first pass")
                key_arr = decode(batch.column(key))
                arrays = [batch.column(c) for c in phys.names]
            else:
                key_arr = pa.array(lk.keys[start:stop], pa.int64())
                arrays = [batch.column(c) for c in phys.names] + [key_arr]
            data = pa.RecordBatch.from_arrays(arrays, schema=write_schema)
            drop = sc.is_issue[start:stop]
            write_batch(writers[0], data.filter(pa.array(~drop)))
            write_batch(writers[1], data.filter(pa.array(drop)))
            write_batch(issues, pa.RecordBatch.from_arrays([
                key_arr.cast(schema.field(0).type), pa.array(sc.scores[start:stop]),
                pa.array(sc.rank[start:stop]), pa.array(drop),
                lk.classes.take(pa.array(lk.codes[start:stop])),
                lk.classes.take(pa.array(sc.oos_pred[start:stop])),
                pa.array(sc.p_label[start:stop]), pa.array(tr.trained[start:stop]),
            ], schema=schema))
            if bar is not None:
                bar.update(batch.num_rows)
    finally:
        for w in writers:
            w.close()
    return write_schema


def write_outputs(plan: CleanPlan, lk: LabelsKeys, tr: Trained, sc: Scored,
                  staging: Path) -> Written:
    """Stage ``write``: every input file, then ``issues.parquet``, into ``staging``."""
    schema = issues_schema(plan)
    schemas: dict[str, pa.Schema] = {}
    issues = open_writer(staging / "issues.parquet", schema, "snappy")
    try:
        with progress_bar(lk.n, "writing kept/ and dropped/", plan.config.progress) as bar:
            for fi, rel in enumerate(plan.src.rel_paths):
                schemas[rel] = write_fragment(plan, fi, lk, tr, sc, staging, issues, schema, bar)
                if fi == 0:
                    checkpoint("write:file")
    finally:
        issues.close()
    return Written(schemas, KeyChecksum().update(lk.keys[~sc.is_issue]))


def file_checksum(path: Path, key: str, rel: str, schema: pa.Schema,
                  input_schema: pa.Schema) -> KeyChecksum:
    """Checksum of the keys in one written file, re-read from disk.

    A key that is a hive partition column is not in the file: its value comes from
    the file's relative path ``rel``.
    """
    got = pq.read_schema(path)
    if not got.equals(schema, check_metadata=True):
        fail(f"{path}: written schema differs from the input's")
    pf = pq.ParquetFile(path)
    cs = KeyChecksum()
    if key in schema.names:
        for batch in pf.iter_batches(columns=[key], batch_size=65_536):
            cs.update(keys_of(batch.column(0), key, str(path)))
        return cs
    value = _partition_value(rel, key, input_schema)
    rows = pf.metadata.num_rows
    return cs.update(keys_of(pa.array([value] * rows, input_schema.field(key).type), key,
                             str(path)))


def _partition_value(rel: str, key: str, schema: pa.Schema) -> Any:
    for part in Path(rel).parts[:-1]:
        name, _, value = part.partition("=")
        if name == key:
            return pa.scalar(value).cast(schema.field(key).type).as_py()
    raise RuntimeError(f"cannot find the value of {key!r} in {rel}")  # pragma: no cover


def verify(plan: CleanPlan, lk: LabelsKeys, sc: Scored, written: Written,
           staging: Path) -> dict[str, Any]:
    """Stage ``verify``: prove from the written files that kept + dropped = input."""
    sums = {}
    key = plan.config.key_column
    with progress_bar(lk.n, "verifying the partition", plan.config.progress) as bar:
        for part in PARTS:
            parts = []
            for rel, schema in written.schemas.items():
                parts.append(file_checksum(staging / part / rel, key, rel, schema,
                                           plan.src.schema))
                bar.update(parts[-1].rows)
            sums[part] = KeyChecksum.combine(parts)
    return partition_proof(sums["kept"], sums["dropped"], lk, sc, written)


def partition_proof(kept: KeyChecksum, dropped: KeyChecksum, lk: LabelsKeys, sc: Scored,
                    written: Written, method: str = _METHOD,
                    extra: dict[str, bool] | None = None) -> dict[str, Any]:
    """Prove ``kept + dropped = input`` and ``kept`` = the chosen rows from checksums.

    ``kept`` and ``dropped`` are the checksums of the keys re-read from the written
    files, combined over files (or over workers: the Ray engine). ``extra`` adds named
    checks. Returns the ``partition_check`` record of ``summary.json``; raises
    :class:`PartitionCheckError` naming the failed checks.
    """
    inp, both = lk.checksum, kept + dropped
    check = {
        "ok": False,
        "method": method,
        "input": inp.as_dict(),
        "kept": kept.as_dict(),
        "dropped": dropped.as_dict(),
        "rows_match": bool(both.rows == inp.rows == lk.n and dropped.rows == sc.n_dropped),
        "sum_matches": both.hash_sum == inp.hash_sum,
        "xor_matches": both.hash_xor == inp.hash_xor,
        "kept_is_the_chosen_rows": kept == written.expected_kept,
        **(extra or {}),
    }
    check["ok"] = all(v for k, v in check.items() if k != "ok" and isinstance(v, bool))
    if not check["ok"]:
        failed = [name for name, ok in check.items() if ok is False and name != "ok"]
        raise PartitionCheckError(
            f"partition check failed ({', '.join(failed)}): kept {kept.rows} + dropped "
            f"{dropped.rows} rows vs {lk.n} input rows; nothing was written")
    return check
