"""The Ray engine of ``tod-cleanse clean``: score, write and verify on a Ray cluster.

The driver keeps the plan (labels, keys, the training sample), trains, takes the one
decision on all scores and commits; Ray Data runs the passes over the rows on an
actor pool (``map_batches`` with a callable class that loads the fitted estimator
once per actor):

``score``
    one task per :class:`~.units.Unit` (whole row groups): the actor reads the unit's
    feature columns and scores the rows outside the training sample with the same
    :func:`~tod_cleanse.adapters.parquet.stages.score_batch` as the local engine;
    only ``(position, score, prediction, probability)`` come back.
``write``
    one task per input file: the same
    :func:`~tod_cleanse.adapters.parquet.write.write_fragment` as the local engine
    writes the file's kept / dropped rows and its share of ``issues.parquet`` (a
    folder of ``part-<file>.parquet``) into a private attempt folder, then renames
    them to their deterministic names. A retried task (Ray retries a dead worker's
    task) rewrites the same names: no duplicate file, no half-written file. The task
    then re-reads the written keys and returns their
    :class:`~tod_cleanse.adapters.parquet.checksum.KeyChecksum`.
``verify`` (driver)
    the staged folder holds exactly the expected files, and the combined checksums
    prove ``kept + dropped = input`` before the commit.

Scores do not depend on the worker: a row's masks are a pure function of its key,
and untrained rows are scored by the full network.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tod_cleanse.adapters.parquet.checksum import KeyChecksum
from tod_cleanse.adapters.parquet.errors import PartitionCheckError
from tod_cleanse.adapters.parquet.features import to_estimator
from tod_cleanse.adapters.parquet.plan import ROW_COLUMN, CleanPlan
from tod_cleanse.adapters.parquet.stages import (
    ClassMap,
    LabelsKeys,
    Scored,
    Trained,
    _decide,
    score_batch,
)
from tod_cleanse.adapters.parquet.write import (
    Written,
    file_checksum,
    issues_schema,
    partition_proof,
    write_fragment,
)
from tod_cleanse.scores import given_label_proba

from .session import engine_error, require_ray
from .units import DEFAULT_UNIT_ROWS, Unit, plan_units, staged_files

logger = logging.getLogger(__name__)

__all__ = ["RayOptions", "WrittenOnRay", "score_on_ray", "write_on_ray", "verify_on_ray",
           "pause_once"]

PAUSE_ENV = "TOD_CLEANSE_TEST_PAUSE_AT"
_ATTEMPTS = ".attempts"


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs.

    Parameters
    ----------
    address : str, optional
        Cluster address; ``None`` starts a local Ray instance.
    workers : int, default=2
        Actors in each pass's pool (one CPU each).
    train_workers : int, default=0
        ``> 0``: train with Ray Train's ``TorchTrainer`` on that many workers
        (torch DDP); ``0``: train on the driver.
    unit_rows : int
        Rows per scoring task (whole row groups).
    max_retries : int, default=3
        Restarts of a dead actor, and retries of its task, before the run fails.
    """

    address: str | None = None
    workers: int = 2
    train_workers: int = 0
    unit_rows: int = DEFAULT_UNIT_ROWS
    max_retries: int = 3


def pause_once(point: str) -> None:
    """Test hook: pause a worker once at ``point`` so that a test can ``kill -9`` it.

    ``TOD_CLEANSE_TEST_PAUSE_AT=<point>=<marker>``: the first worker that reaches
    ``point`` creates ``<marker>`` (exclusively) with its pid and sleeps; a retried
    task finds the marker and goes on. ``<point>=kill``: every worker that reaches
    ``point`` kills itself (SIGKILL), so that the retries run out. Unset, nothing
    happens.
    """
    spec = os.environ.get(PAUSE_ENV, "")
    at, _, marker = spec.partition("=")
    if at != point or not marker:
        return
    if marker == "kill":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as fh:
        fh.write(str(os.getpid()))
    import time

    time.sleep(60)


def _set_threads() -> None:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("TOD_CLEANSE_TORCH_THREADS", "1"))))


def _pool_args(opts: RayOptions) -> dict[str, Any]:
    from ray.data import ActorPoolStrategy

    # max_restarts / max_task_retries go through ``ray_remote_args`` (deprecated in
    # Ray 2.60, no named parameter yet): without them Ray Data restarts a dying
    # actor forever, and a worker that always dies would hang the run.
    return {"compute": ActorPoolStrategy(size=opts.workers), "num_cpus": 1, "batch_size": 1,
            "max_restarts": opts.max_retries, "max_task_retries": opts.max_retries}


def _run(items: list[dict[str, int]], actor: type, args: tuple, opts: RayOptions,
         stage: str) -> Iterator[dict[str, np.ndarray]]:
    """Map ``actor`` over ``items`` (one task each) on an actor pool; stream the output
    to the driver batch by batch.

    Every Ray failure becomes a one-line :class:`~.session.RayEngineError`.
    """
    import warnings

    import ray.data

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
            ds = ds.map_batches(actor, fn_constructor_args=args, **_pool_args(opts))
            yield from ds.iter_batches(batch_size=None, batch_format="numpy")
    except Exception as exc:  # RayTaskError, ActorDiedError, ... (see engine_error)
        raise engine_error(exc, stage) from None


# ------------------------------------------------------------------- score
class _ScoreActor:
    """Holds the fitted estimator; scores the untrained rows of one unit per call."""

    def __init__(self, shared: Any, units: list[Unit]) -> None:
        import ray

        _set_threads()
        self.plan, self.est, self.cmap, self.codes, self.trained = ray.get(shared)
        if hasattr(self.est, "verbose"):
            self.est.set_params(verbose=0)
        self.units = units

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pos_all, out = [], ([], [], [])
        cfg = self.plan.config
        for ui in batch["unit"].tolist():
            unit = self.units[ui]
            trained = self.trained[unit.start:unit.stop]
            if trained.all():
                continue
            for start, b in unit.batches(self.plan.src.schema, list(cfg.columns),
                                         cfg.batch_rows):
                sel = np.flatnonzero(~trained[start - unit.start:start - unit.start
                                              + b.num_rows])
                if not sel.size:
                    continue
                X = self.plan.extract(b.take(pa.array(sel)), unit.fragment.path)
                pos = start + sel
                res = score_batch(self.est, to_estimator(cfg.kind, X), self.codes[pos],
                                  self.plan.method, self.cmap)
                pos_all.append(pos)
                for acc, values in zip(out, res, strict=True):
                    acc.append(values)
            pause_once("ray:score")
        if not pos_all:
            return {"pos": np.empty(0, np.int64), "score": np.empty(0, np.float64),
                    "oos_pred": np.empty(0, np.int32), "p_label": np.empty(0, np.float32)}
        return {"pos": np.concatenate(pos_all), "score": np.concatenate(out[0]),
                "oos_pred": np.concatenate(out[1]).astype(np.int32),
                "p_label": np.concatenate(out[2]).astype(np.float32)}


def score_on_ray(plan: CleanPlan, lk: LabelsKeys, tr: Trained, opts: RayOptions) -> Scored:
    """Stage ``score`` on Ray: the same scores and the same decision as the local engine.

    Trained rows keep the cleanser's scores (computed at fit); every other row is
    scored by a worker. The decision (:func:`tod_cleanse.scores.flag_issues`) is
    taken once, on the driver, over all scores.
    """
    ray = require_ray()
    n = lk.n
    est = tr.cleanser.estimator_
    cmap = ClassMap.of(est, lk.classes_np)
    scores = np.full(n, np.nan, dtype=np.float64)
    oos_pred = np.zeros(n, dtype=np.int32)
    p_label = np.zeros(n, dtype=np.float32)
    scores[tr.train_pos] = tr.cleanser.scores_
    oos_pred[tr.train_pos] = cmap.to_global[np.argmax(est.oos_proba_, axis=1)]
    p_label[tr.train_pos] = given_label_proba(est.oos_proba_, est.y_train_)
    if tr.m < n:
        units = plan_units(plan.src, opts.unit_rows)
        todo = [u.index for u in units if not tr.trained[u.start:u.stop].all()]
        shared = ray.put((plan, est, cmap, lk.codes, tr.trained))
        seen = np.zeros(n, dtype=bool)
        for batch in _run([{"unit": i} for i in todo], _ScoreActor, (shared, units), opts,
                          "scoring"):
            pos = batch["pos"]
            if seen[pos].any():  # a retried task's rows arrive once more: same values
                logger.info("engine ray: %d scored rows arrived twice (a retried task)",
                            int(seen[pos].sum()))
            seen[pos] = True
            scores[pos], oos_pred[pos], p_label[pos] = (batch["score"], batch["oos_pred"],
                                                        batch["p_label"])
        missing = int(np.count_nonzero(~(seen | tr.trained)))
        if missing:
            raise PartitionCheckError(f"engine ray: {missing} rows came back unscored; "
                                      "nothing was written")
    rank, is_issue, decision = _decide(plan, tr, scores)
    return Scored(scores, oos_pred, p_label, rank, is_issue, decision)


# ------------------------------------------------------------ write + verify
def _file_schema(plan: CleanPlan, fi: int) -> pa.Schema:
    phys = plan.src.physical[fi]
    return phys if plan.config.key else phys.append(pa.field(ROW_COLUMN, pa.int64()))


def _issues_name(fi: int) -> str:
    return os.path.join("issues.parquet", f"part-{fi:05d}.parquet")


class _WriteActor:
    """Per call, one input file: write its kept / dropped rows and issue rows under
    their deterministic names, then re-read the written keys (checksums)."""

    def __init__(self, shared: Any, staging: str) -> None:
        import ray

        _set_threads()
        self.plan, self.lk, self.tr, self.sc = ray.get(shared)
        self.staging = Path(staging)

    def _write(self, fi: int) -> None:
        from tod_cleanse.adapters.parquet.commit import open_writer

        rel = self.plan.src.rel_paths[fi]
        attempt = self.staging / _ATTEMPTS / f"{fi}-{os.getpid()}-{secrets.token_hex(4)}"
        schema = issues_schema(self.plan)
        issues = open_writer(attempt / "issues.parquet", schema, "snappy")
        try:
            write_fragment(self.plan, fi, self.lk, self.tr, self.sc, attempt, issues, schema)
        finally:
            issues.close()
        pause_once("ray:write")  # here the rows exist only in the attempt folder
        for src_rel, dst_rel in ((f"kept/{rel}", f"kept/{rel}"),
                                 (f"dropped/{rel}", f"dropped/{rel}"),
                                 ("issues.parquet", _issues_name(fi))):
            dst = self.staging / dst_rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(attempt / src_rel, dst)
        shutil.rmtree(attempt, ignore_errors=True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import pyarrow.parquet as pq

        out: dict[str, list[int]] = {}
        key = self.plan.config.key_column
        for fi in batch["file"].tolist():
            self._write(fi)
            rel = self.plan.src.rel_paths[fi]
            schema = _file_schema(self.plan, fi)
            out.setdefault("file", []).append(fi)
            for part in ("kept", "dropped"):  # re-read from disk, after the rename
                cs = file_checksum(self.staging / part / rel, key, rel, schema,
                                   self.plan.src.schema)
                for name, v in (("rows", cs.rows), ("sum", cs.hash_sum), ("xor", cs.hash_xor)):
                    out.setdefault(f"{part}_{name}", []).append(v)
            meta = pq.read_metadata(self.staging / _issues_name(fi))
            out.setdefault("issues_rows", []).append(meta.num_rows)
        return {k: np.asarray(v, dtype=np.uint64) for k, v in out.items()}


@dataclass
class WrittenOnRay(Written):
    """:class:`~tod_cleanse.adapters.parquet.write.Written` plus the checksums that the
    workers re-read from each written file (by input file index)."""

    file_sums: dict[int, dict[str, int]] | None = None


def write_on_ray(plan: CleanPlan, lk: LabelsKeys, tr: Trained, sc: Scored, staging: Path,
                 opts: RayOptions) -> WrittenOnRay:
    """Stage ``write`` on Ray: one task per input file, deterministic names.

    Each task also re-reads the keys of the files it wrote (after their rename);
    :func:`verify_on_ray` combines these checksums into the partition proof.
    """
    ray = require_ray()
    n_files = len(plan.src.fragments)
    shared = ray.put((plan, lk, tr, sc))
    file_sums: dict[int, dict[str, int]] = {}
    for b in _run([{"file": fi} for fi in range(n_files)], _WriteActor, (shared, str(staging)),
                  opts, "writing"):
        for i, fi in enumerate(b["file"].tolist()):
            got = {k: int(v[i]) for k, v in b.items() if k != "file"}
            if file_sums.setdefault(int(fi), got) != got:  # pragma: no cover
                raise PartitionCheckError(f"engine ray: two attempts at input file {fi} "
                                          "wrote different rows; nothing was committed")
    shutil.rmtree(staging / _ATTEMPTS, ignore_errors=True)  # attempts of killed workers
    schemas = {rel: _file_schema(plan, fi) for fi, rel in enumerate(plan.src.rel_paths)}
    return WrittenOnRay(schemas, KeyChecksum().update(lk.keys[~sc.is_issue]), file_sums)


def verify_on_ray(plan: CleanPlan, lk: LabelsKeys, sc: Scored, written: WrittenOnRay,
                  staging: Path) -> dict[str, Any]:
    """Stage ``verify``: prove ``kept + dropped = input`` before the commit.

    The staged folder must hold exactly the expected files (no stray file of a
    killed attempt, none missing), and the checksums the workers re-read from every
    written file, combined, must equal the input's, with ``kept`` the chosen rows.
    """
    n_files = len(plan.src.fragments)
    expected = {os.path.join(part, rel) for rel in plan.src.rel_paths
                for part in ("kept", "dropped")}
    expected |= {_issues_name(fi) for fi in range(n_files)}
    found = staged_files(staging)
    stray, absent = sorted(found - expected), sorted(expected - found)
    if stray or absent or set(written.file_sums or {}) != set(range(n_files)):
        raise PartitionCheckError(
            f"engine ray: the staged output holds unexpected files ({', '.join(stray[:3])}) "
            f"or lacks files ({', '.join(absent[:3])}); nothing was committed")
    sums = {"kept": KeyChecksum(), "dropped": KeyChecksum()}
    for got in written.file_sums.values():
        for part in sums:
            sums[part] = sums[part] + KeyChecksum(got[f"{part}_rows"], got[f"{part}_sum"],
                                                  got[f"{part}_xor"])
    issues_rows = sum(got["issues_rows"] for got in written.file_sums.values())
    try:
        return partition_proof(
            sums["kept"], sums["dropped"], lk, sc, written,
            method="count, and sum and xor of splitmix64(int64 key) mod 2**64, re-read from "
                   "the written files by the Ray workers and combined on the driver",
            extra={"issue_rows_match": issues_rows == lk.n})
    except PartitionCheckError as exc:
        raise PartitionCheckError(f"engine ray: {exc}") from None
