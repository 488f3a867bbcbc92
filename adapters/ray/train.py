"""Data-parallel training with Ray Train's ``TorchTrainer`` (torch DDP, one training loop).

Every Ray Train worker runs the same ``ToDCleanser.fit`` as the local engine; Ray
Train initialises ``torch.distributed`` (gloo on CPU, NCCL on GPU), and
:class:`~tod_cleanse.estimators.base.BaseToDClassifier` then wraps its network in
``DistributedDataParallel``: every global batch is cut into one shard per rank, each
row travels with its key (so its masks are right on any rank), and the gradients
are averaged. Rank 0 hands the fitted cleanser back to the driver as a checkpoint.

Without Ray, the same estimator trains under ``torchrun`` (see ``docs/scale-out.md``).
"""

from __future__ import annotations

import logging
import os
import pickle
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .session import engine_error, require_ray

logger = logging.getLogger(__name__)

__all__ = ["fit_with_torch_trainer"]

_MODEL_FILE = "cleanser.pkl"


def _train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: fit the cleanser (DDP inside), rank 0 reports it."""
    import ray
    import ray.train
    import torch

    torch.set_num_threads(1)
    cleanser, X, y, keys = ray.get(config["payload"])
    cleanser.fit(X, y, instance_keys=keys)
    if ray.train.get_context().get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            with open(Path(tmp) / _MODEL_FILE, "wb") as fh:
                pickle.dump(cleanser, fh)
            ray.train.report({"rows": len(y)},
                             checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report({"rows": len(y)})


def fit_with_torch_trainer(cleanser: Any, X: Any, y: Any, keys: Any, workers: int,
                           out: Path) -> Any:
    """Fit ``cleanser`` on ``workers`` Ray Train workers; return the fitted cleanser.

    Parameters
    ----------
    cleanser : ToDCleanser
        Unfitted; its estimator should have a fixed ``random_state`` (else rank 0's
        seed is broadcast).
    X, y, keys :
        The training rows, their labels and raw instance keys (shipped once through
        the object store; every rank holds the training sample and trains on its
        shard of each global batch).
    workers : int
        Ray Train workers (one CPU each).
    out : path
        The run's output folder: the checkpoint goes to a hidden folder beside it
        (shared storage on a multi-node cluster, like the output), removed at the end.

    Returns
    -------
    ToDCleanser
        Fitted by rank 0 (all ranks hold the same parameters).
    """
    ray = require_ray()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    storage = out.parent / f".{out.name}.tod-cleanse-train-{os.getpid()}-{secrets.token_hex(4)}"
    storage.mkdir(parents=True)
    try:
        trainer = TorchTrainer(
            _train_loop,
            train_loop_config={"payload": ray.put((cleanser, X, y, keys))},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                         resources_per_worker={"CPU": 1}),
            run_config=RunConfig(name="tod-cleanse-train", storage_path=str(storage)),
        )
        try:
            result = trainer.fit()
        except Exception as exc:  # TrainingFailedError wraps the worker's exception
            raise engine_error(exc, "training") from None
        if result.checkpoint is None:  # pragma: no cover
            raise engine_error(RuntimeError("rank 0 reported no model"), "training")
        with result.checkpoint.as_directory() as folder:
            with open(Path(folder) / _MODEL_FILE, "rb") as fh:
                fitted = pickle.load(fh)
    finally:
        shutil.rmtree(storage, ignore_errors=True)
    logger.info("trained on %d Ray Train workers", workers)
    return fitted
