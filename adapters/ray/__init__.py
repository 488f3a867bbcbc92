"""Scale-out of ``tod-cleanse clean`` on Ray: Ray Data scoring, Ray Train / DDP training.

``clean_parquet(..., engine="ray")`` (``tod-cleanse clean --engine ray``) runs the
passes over the rows on a Ray cluster (:mod:`.engine`) and, with
``train_workers > 0``, trains data-parallel with Ray Train's ``TorchTrainer``
(:mod:`.train`). Ray is an optional dependency: ``pip install 'tod-cleanse[ray]'``;
nothing here imports it at module import time.
"""

from .engine import RayOptions, score_on_ray, verify_on_ray, write_on_ray
from .session import LocalCluster, RayEngineError, RaySession, engine_error, require_ray

__all__ = ["RayOptions", "RayEngineError", "RaySession", "LocalCluster", "engine_error",
           "require_ray", "score_on_ray", "write_on_ray", "verify_on_ray"]
