"""``clean_parquet``: the named stages of a clean, run under a claim on the output."""

from __future__ import annotations

import logging
import os
import platform
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pyarrow as pa

from .claim import OutputClaim
from .commit import TOOL, check_output, commit
from .errors import OutputChangedError, fail
from .faults import checkpoint
from .plan import ROW_COLUMN, CleanPlan, prepare
from .stages import LabelsKeys, Scored, Trained, read_labels_keys, score, train
from .write import verify, write_outputs

logger = logging.getLogger(__name__)

__all__ = ["clean_parquet", "execute", "LocalEngine", "make_engine"]


class _Timer:
    """Per-stage wall times; entering a stage passes the test hook's checkpoint."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        checkpoint(name)
        t = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t, 3)

    def total(self) -> dict[str, float]:
        return {**self.timings, "total": round(time.perf_counter() - self.start, 3)}


@contextmanager
def _capture_user_warnings(messages: list[str]) -> Iterator[None]:
    """Record the messages of UserWarnings raised inside (e.g. "the fit looks
    unreliable") and re-emit every caught warning afterwards."""
    recorded: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                yield
            finally:
                recorded = list(caught)
    finally:
        for w in recorded:
            if issubclass(w.category, UserWarning):
                messages.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


class LocalEngine:
    """The embedded default engine: every stage runs in this process.

    An engine runs the ``train``, ``score``, ``write`` and ``verify`` stages and is
    the context manager of whatever they need (the Ray engine,
    :class:`tod_cleanse.adapters.ray.RayEngine`, connects to its cluster there).
    """

    name = "local"

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """What ``summary.json`` records under ``engine``."""
        return {"name": self.name}

    train = staticmethod(train)
    score = staticmethod(score)
    write = staticmethod(write_outputs)
    verify = staticmethod(verify)


def make_engine(engine: str = "local", ray_address: str | None = None,
                workers: int | None = None, train_workers: int | None = None) -> Any:
    """The engine ``"local"`` or ``"ray"``, its arguments checked (nothing started)."""
    if engine == "local":
        given = [opt for opt, v in (("--ray-address", ray_address), ("--workers", workers),
                                    ("--train-workers", train_workers)) if v is not None]
        if given:
            fail(f"{', '.join(given)}: only used with --engine ray")
        return LocalEngine()
    if engine == "ray":
        from tod_cleanse.adapters.ray.runner import RayEngine

        return RayEngine.create(ray_address, workers, train_workers)
    fail(f"--engine must be 'local' or 'ray', got {engine!r}")


def execute(plan: CleanPlan, engine: Any = None) -> dict[str, Any]:
    """Run a prepared clean: claim, read, train, score, write, verify, commit.

    See :func:`clean_parquet`; ``summary.json`` is the returned dict. ``engine``
    runs the train, score, write and verify stages (default :class:`LocalEngine`).
    """
    engine = engine or LocalEngine()
    timer = _Timer()
    claim = OutputClaim.acquire(plan.out, plan.argv, plan.config.clear_stale_claim)
    keep_staging = False
    try:
        # what --out is now that it is ours (another run may have committed meanwhile)
        _, out_state = check_output(plan.out, plan.src.path, plan.config.overwrite)
        claim.staging.mkdir()
        caught: list[str] = []
        with engine:
            with _capture_user_warnings(caught):
                with timer.stage("read"):
                    lk = read_labels_keys(plan)
                with timer.stage("train"):
                    tr = engine.train(plan, lk)
                with timer.stage("score"):
                    sc = engine.score(plan, lk, tr)
            with timer.stage("write"):
                written = engine.write(plan, lk, tr, sc, claim.staging)
            with timer.stage("verify"):
                check = engine.verify(plan, lk, sc, written, claim.staging)
        summary = _summary(plan, lk, tr, sc, check, claim, caught)
        summary["engine"] = engine.describe()
        if tr.report_data is not None:
            with timer.stage("report"):
                summary["report"] = _write_report(plan, tr, claim)
        summary["timings_s"] = timer.total()
        _write_json(claim.staging / "summary.json", summary)
        with timer.stage("commit"):
            try:
                commit(claim, out_state)
            except OutputChangedError:
                keep_staging = True
                raise
    except BaseException:
        claim.abandon(keep_staging=keep_staging)
        raise
    claim.release()
    logger.info("kept %d rows, dropped %d; partition check ok", lk.n - sc.n_dropped,
                sc.n_dropped)
    return summary


def _write_json(path: Any, data: dict[str, Any]) -> None:
    import json

    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())


def _write_report(plan: CleanPlan, tr: Trained, claim: OutputClaim) -> str:
    from tod_cleanse.report import write_report

    X_rep, y_rep = tr.report_data
    cfg = plan.config
    named = cfg.kind == "features" and np.ndim(X_rep) == 2 and X_rep.shape[1] == len(cfg.columns)
    write_report(tr.cleanser, X_rep, y_rep, claim.staging / "report.html",
                 instance_keys=tr.cleanser.estimator_.instance_keys_,
                 feature_names=list(cfg.columns) if named else None,
                 figures_dir=claim.staging / "report_figures",
                 title=f"tod-cleanse clean {plan.src.path}")
    return "report.html"


def _summary(plan: CleanPlan, lk: LabelsKeys, tr: Trained, sc: Scored, check: dict[str, Any],
             claim: OutputClaim, caught: list[str]) -> dict[str, Any]:
    from tod_cleanse import __version__

    cfg, n, m = plan.config, lk.n, tr.m
    est = tr.cleanser.estimator_
    return {
        "tool": TOOL,
        "tool_version": __version__,
        "input": str(plan.src.path),
        "output": str(plan.out),
        "arguments": list(plan.argv),
        "claim": claim.holder.as_dict(),
        "counts": {
            "input": n, "kept": n - sc.n_dropped, "dropped": sc.n_dropped, "trained": m,
            "untrained": n - m, "files": len(plan.src.fragments), "classes": len(lk.classes),
            "dropped_fraction": round(sc.n_dropped / n, 6),
        },
        "parameters": {
            "label": cfg.label, "features": list(cfg.columns) if cfg.kind == "features" else None,
            "text": cfg.columns[0] if cfg.kind == "text" else None,
            "image": cfg.columns[0] if cfg.kind == "image" else None,
            "image_shape": list(cfg.image_shape) if cfg.image_shape else None,
            "key": cfg.key or f"{ROW_COLUMN} (row position)",
            "method": plan.method, "method_choice": plan.method_note,
            "drop_fraction": cfg.drop_fraction, "threshold": cfg.threshold,
            "decision": sc.decision, "max_train_rows": cfg.max_train_rows,
            "batch_rows": cfg.batch_rows, "seed": cfg.seed, "overwrite": cfg.overwrite,
            "eval": str(cfg.eval_path) if cfg.eval_path is not None else None,
            "estimator": type(est).__name__,
            "estimator_params": {p: _jsonable(v) for p, v in est.get_params().items()},
        },
        "scores": {
            "trained_rows": f"ToDCleanser, method {plan.method!r}",
            "untrained_rows": (f"{plan.method!r} formula on the full network's probabilities "
                               "(out-of-sample for these rows)") if m < n else None,
        },
        "partition_check": check,
        "warnings": caught,
        "versions": {
            "tod_cleanse": __version__, "pyarrow": pa.__version__, "numpy": np.__version__,
            "torch": _torch_version(), "python": platform.python_version(),
        },
    }


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


def clean_parquet(
    input: str | os.PathLike, out: str | os.PathLike, *, label: str,
    features: Sequence[str] | None = None, text: str | None = None, image: str | None = None,
    image_shape: Sequence[int] | None = None, key: str | None = None, model: str | None = None,
    model_params: dict[str, Any] | None = None, estimator: Any = None, method: str | None = None,
    drop_fraction: float | str = "auto", threshold: float | None = None,
    eval_path: str | os.PathLike | None = None, max_train_rows: int = 100_000,
    batch_rows: int = 65_536, seed: int = 0, overwrite: bool = False,
    clear_stale_claim: bool = False, progress: bool = True, report: bool = False,
    argv: Sequence[str] | None = None, engine: str = "local", ray_address: str | None = None,
    workers: int | None = None, train_workers: int | None = None,
) -> dict[str, Any]:
    """Clean a Parquet dataset into ``out/kept``, ``out/dropped`` and an issue table.

    Parameters
    ----------
    input, out : path
        Parquet file, folder of Parquet files or hive-partitioned dataset; the output
        folder (new, empty, or a previous output with ``overwrite``; apart from the input).
    label : str
        Label column (no missing values, at least two classes).
    features, text, image, image_shape : optional
        Exactly one of the first three: numeric / vector columns (MLP), a string column
        (BERT), or encoded image bytes or pixel lists (VGG; ``image_shape`` ``(H, W)`` or
        ``(C, H, W)``).
    key : str, optional
        Unique, stable id column (integers or strings); its raw values are the estimator's
        ``instance_keys``. Default: scan-order row positions, written as ``_tod_row``.
    model, model_params, estimator : optional
        ``"mlp"``, ``"bert"`` or ``"vgg"`` (default from the input kind) with its parameters,
        or an unfitted ToD estimator (cloned), which then wins.
    method, drop_fraction, threshold : optional
        As for :class:`~tod_cleanse.ToDCleanser`. Above ``max_train_rows`` only
        ``oos_likelihood`` and ``confident_learning`` are allowed (the default then).
    eval_path : path, optional
        Validation Parquet data for ``method="eval_influence"``; its labels must have
        the training labels' type.
    max_train_rows, batch_rows, seed : int
        Training sample size, rows per streamed batch, seed of sample and estimator.
    overwrite, clear_stale_claim : bool, default=False
        Replace ``out`` if it is a previous tod-cleanse output; take over a claim on
        ``out`` left by a run that is gone (same host, dead pid).
    progress, report : bool
        Progress bars; also write ``out/report.html`` (trained rows).
    argv : sequence of str, optional
        Command line recorded in the claim and summary (default ``sys.argv``).
    engine, ray_address, workers, train_workers : optional
        ``"local"`` (default) or ``"ray"``: score and write on a Ray cluster
        (``docs/scale-out.md``) at ``ray_address`` (default: a local instance) with
        ``workers`` actors (default 2), training with DDP on ``train_workers`` if given.

    Returns
    -------
    summary : dict
        The content of ``out/summary.json``.

    Raises
    ------
    CleanParquetError
        Bad input or output, or ``out`` claimed by another run; nothing is written.

    Examples
    --------
    >>> import os, tempfile
    >>> from tod_cleanse import ToDMLPClassifier
    >>> from tod_cleanse.adapters.parquet import export_demo
    >>> data = export_demo(os.path.join(tempfile.mkdtemp(), "digits.parquet"), n_rows=300)
    >>> summary = clean_parquet(data, os.path.join(os.path.dirname(data), "out"),
    ...     label="label", features=["pixels"], key="id", drop_fraction=0.1, progress=False,
    ...     estimator=ToDMLPClassifier(hidden_layer_sizes=(16,), max_epochs=2, verbose=0))
    >>> summary["counts"]["kept"], summary["counts"]["dropped"], summary["partition_check"]["ok"]
    (270, 30, True)
    """
    return execute(prepare(
        input, out, label=label, features=features, text=text, image=image,
        image_shape=image_shape, model=model, model_params=model_params, estimator=estimator,
        argv=argv, key=key, method=method, drop_fraction=drop_fraction, threshold=threshold,
        eval_path=eval_path, max_train_rows=max_train_rows, batch_rows=batch_rows, seed=seed,
        overwrite=overwrite, clear_stale_claim=clear_stale_claim, progress=progress,
        report=report), make_engine(engine, ray_address, workers, train_workers))
