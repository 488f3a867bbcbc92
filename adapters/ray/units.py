"""The driver's plan: the input cut into units of whole row groups, in scan order.

A unit is a run of consecutive row groups of one input file. It is the grain of
every Ray pass: a worker reads one unit (only its row groups), and writes the
unit's rows to files whose names come from the unit alone
(``kept/<input file>/part-<k>.parquet``), so that a retried task rewrites the same
files instead of adding new ones. A unit knows its global start row, which gives
keyless inputs their scan-order row positions on any worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from tod_cleanse.adapters.parquet.source import Source

__all__ = ["Unit", "plan_units", "DEFAULT_UNIT_ROWS"]

#: Rows per unit (whole row groups are never split).
DEFAULT_UNIT_ROWS = 262_144


@dataclass(frozen=True)
class Unit:
    """One task's share of the input.

    Attributes
    ----------
    index : int
        Position of the unit in scan order (0, 1, ...).
    file_index : int
        Index of the input file in the source's sorted fragments.
    rel : str
        Path of the input file relative to the input root.
    part : int
        Number of the unit within its file.
    start, rows : int
        Global scan-order position of its first row, and its row count.
    fragment : pyarrow.dataset.ParquetFileFragment
        The file restricted to the unit's row groups (picklable; carries the hive
        partition values).
    """

    index: int
    file_index: int
    rel: str
    part: int
    start: int
    rows: int
    fragment: Any

    @property
    def stop(self) -> int:
        return self.start + self.rows

    def out_name(self, part: str) -> str:
        """Relative path of this unit's file in ``kept``/``dropped``."""
        return os.path.join(part, self.rel, f"part-{self.part:05d}.parquet")

    def issues_name(self) -> str:
        """Relative path of this unit's share of ``issues.parquet`` (a folder)."""
        return os.path.join("issues.parquet", f"part-{self.index:06d}.parquet")

    def batches(self, schema: pa.Schema, columns: list[str], batch_rows: int
                ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Yield ``(global start row, batch)`` over the unit; checks the row count."""
        got = 0
        try:
            for batch in self.fragment.to_batches(schema=schema, columns=columns,
                                                  batch_size=batch_rows):
                if batch.num_rows:
                    yield self.start + got, batch
                    got += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise OSError(f"{self.fragment.path}: cannot be read ({exc})") from None
        if got != self.rows:
            raise OSError(f"{self.fragment.path}: read {got} rows of row groups "
                          f"{self.part} but the footer says {self.rows} (did it change?)")

    def partition_value(self, column: str) -> Any:
        """Value of a hive partition column for this unit's file."""
        return ds.get_partition_keys(self.fragment.partition_expression)[column]


def plan_units(src: Source, unit_rows: int = DEFAULT_UNIT_ROWS) -> list[Unit]:
    """Cut ``src`` into units of consecutive row groups of about ``unit_rows`` rows.

    The plan depends only on the input files and ``unit_rows``, never on the number
    of workers, so that output file names are the same whatever the cluster.

    Parameters
    ----------
    src : Source
    unit_rows : int
        A unit grows by whole row groups until it holds at least this many rows.

    Returns
    -------
    list of Unit
        In scan order; their row counts sum to ``src.n_rows``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pyarrow as pa, pyarrow.parquet as pq
    >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
    >>> pq.write_table(pa.table({"id": list(range(10))}), path, row_group_size=3)
    >>> [(u.start, u.rows, u.part) for u in plan_units(Source(path, 4), unit_rows=5)]
    [(0, 6, 0), (6, 4, 1)]
    """
    units: list[Unit] = []
    start = 0
    for fi, frag in enumerate(src.fragments):
        meta = frag.metadata
        groups: list[int] = []
        rows = 0
        part = 0
        sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        for g, size in enumerate(sizes):
            groups.append(g)
            rows += size
            if rows >= unit_rows or g == len(sizes) - 1:
                units.append(Unit(len(units), fi, src.rel_paths[fi], part, start, rows,
                                  frag.subset(row_group_ids=groups)))
                start += rows
                part += 1
                groups, rows = [], 0
        if not sizes:  # a file without row groups still gets its (empty) outputs
            units.append(Unit(len(units), fi, src.rel_paths[fi], 0, start, 0, frag))
    if start != src.n_rows:  # pragma: no cover - footers changed under us
        raise OSError(f"{src.path}: row groups hold {start} rows but the footers say "
                      f"{src.n_rows}")
    return units


def staged_files(root: Path) -> set[str]:
    """Every file below ``root``, relative, except ``summary.json``."""
    found = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel != "summary.json":
                found.add(rel)
    return found
