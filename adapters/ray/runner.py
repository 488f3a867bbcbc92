"""The Ray engine as :func:`~tod_cleanse.adapters.parquet.clean.execute` sees it.

:class:`RayEngine` has the stage methods of the local engine (``train``, ``score``,
``write``, ``verify``) and is the context manager of the run's Ray connection.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from tod_cleanse.adapters.parquet.plan import CleanPlan
from tod_cleanse.adapters.parquet.stages import LabelsKeys, Scored, Trained, train
from tod_cleanse.adapters.parquet.write import Written

from .engine import RayOptions, score_on_ray, verify_on_ray, write_on_ray
from .session import RayEngineError, RaySession, _check_reachable, require_ray
from .units import DEFAULT_UNIT_ROWS

__all__ = ["RayEngine"]


def _count(value: Any, option: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise RayEngineError(f"{option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class RayEngine:
    """Runs the score and write passes on Ray (and training, with ``train_workers``).

    Parameters
    ----------
    options : RayOptions

    Examples
    --------
    What ``clean_parquet(..., engine="ray", workers=2)`` does (needs Ray)::

        engine = RayEngine.create(address=None, workers=2)
        summary = execute(prepare(...), engine)   # summary["engine"]["workers"] == 2
    """

    name = "ray"

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.session: RaySession | None = None
        self.nodes = 0

    @classmethod
    def create(cls, address: str | None = None, workers: int | None = None,
               train_workers: int | None = None, unit_rows: int | None = None) -> RayEngine:
        """Check the engine's arguments (and that Ray is installed); connect to nothing.

        Raises
        ------
        RayEngineError
            Ray is missing, a count is not a positive integer, or ``address`` does
            not accept connections.
        """
        try:
            require_ray()
        except ImportError as exc:
            raise RayEngineError(str(exc)) from None
        opts = RayOptions(
            address=address or None,
            workers=_count(2 if workers is None else workers, "--workers", 1),
            train_workers=_count(train_workers or 0, "--train-workers", 0),
            unit_rows=_count(unit_rows or DEFAULT_UNIT_ROWS, "unit_rows", 1),
        )
        if opts.address is not None:
            _check_reachable(opts.address)
        return cls(opts)

    def __enter__(self) -> RayEngine:
        o = self.options
        self.session = RaySession(o.address, num_cpus=max(o.workers, o.train_workers))
        self.session.__enter__()
        self.nodes = self.session.n_nodes()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.session is not None:
            self.session.__exit__(*exc)
            self.session = None

    def describe(self) -> dict[str, Any]:
        """What ``summary.json`` records under ``engine``."""
        o = self.options
        return {"name": "ray", "address": o.address or "local instance", "nodes": self.nodes,
                "workers": o.workers, "train_workers": o.train_workers,
                "unit_rows": o.unit_rows}

    # ------------------------------------------------------------- stages
    def train(self, plan: CleanPlan, lk: LabelsKeys) -> Trained:
        """On the driver, or data-parallel with Ray Train (``train_workers > 0``)."""
        if not self.options.train_workers:
            return train(plan, lk)
        from .train import fit_with_torch_trainer

        def fit(cleanser: Any, X: Any, y: Any, keys: Any) -> Any:
            return fit_with_torch_trainer(cleanser, X, y, keys, self.options.train_workers,
                                          plan.out)

        return train(plan, lk, fit=fit)

    def score(self, plan: CleanPlan, lk: LabelsKeys, tr: Trained) -> Scored:
        return score_on_ray(plan, lk, tr, self.options)

    def write(self, plan: CleanPlan, lk: LabelsKeys, tr: Trained, sc: Scored,
              staging: Path) -> Written:
        return write_on_ray(plan, lk, tr, sc, staging, self.options)

    def verify(self, plan: CleanPlan, lk: LabelsKeys, sc: Scored, written: Any,
               staging: Path) -> dict[str, Any]:
        return verify_on_ray(plan, lk, sc, written, staging)
