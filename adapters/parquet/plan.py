"""What a clean run is asked to do: validated parameters and the opened input.

:func:`prepare` checks every parameter and the input's footers and columns, and the
output path rules, without writing anything; the stages (:mod:`.stages`,
:mod:`.write`) then take the :class:`CleanPlan`.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from tod_cleanse.estimators.registry import (
    MODEL_NAMES,
    estimator_class,
    input_kind,
    pretrained_param,
)
from tod_cleanse.scores import AUTO_METHOD, check_cleansing_params, resolve_method

from .commit import OutputState, check_output
from .errors import fail
from .features import OPTIONS, Features
from .source import Source, is_text, value_type

__all__ = ["CleanConfig", "CleanPlan", "prepare", "ROW_COLUMN", "SAMPLED_METHODS", "MODELS",
           "label_kind"]

#: Column that carries the scan-order row position when no ``key`` is given.
ROW_COLUMN = "_tod_row"
#: Methods whose score of an untrained row (full network) has the same meaning as
#: the score of a trained row (``oos_proba_``: out-of-fold member or flipped sub-network).
SAMPLED_METHODS = ("oos_likelihood", "confident_learning")
#: Every ``--model`` name (tod_cleanse.estimators.registry: mlp, text/bert, vgg, resnet, vit).
MODELS = MODEL_NAMES


def label_kind(t: pa.DataType) -> str | None:
    """``"integer"``, ``"floating"``, ``"boolean"`` or ``"string"``; None for other types."""
    t = value_type(t)
    for kind, test in (("boolean", pa.types.is_boolean), ("integer", pa.types.is_integer),
                       ("floating", pa.types.is_floating), ("string", is_text)):
        if test(t):
            return kind
    return None


@dataclass(frozen=True)
class CleanConfig:
    """The validated parameters of :func:`clean_parquet` (see its docstring)."""

    label: str
    kind: str
    columns: tuple[str, ...]
    key: str | None
    image_shape: tuple[int, ...] | None
    method: str | None
    drop_fraction: float | str
    threshold: float | None
    eval_path: Path | None
    max_train_rows: int
    batch_rows: int
    seed: int
    overwrite: bool
    clear_stale_claim: bool
    report: bool
    progress: bool

    @property
    def option(self) -> str:
        """The option naming the input columns: ``--features``, ``--text`` or ``--image``."""
        return OPTIONS[self.kind]

    @property
    def key_column(self) -> str:
        """The key column of the outputs (``ROW_COLUMN`` without ``key``)."""
        return self.key or ROW_COLUMN


@dataclass
class CleanPlan:
    """A checked run: config, opened input, feature extractor, output and estimator."""

    config: CleanConfig
    src: Source
    extract: Features
    label_type: pa.DataType
    out: Path
    out_state: OutputState
    method: str
    method_note: str
    estimator: Any
    argv: tuple[str, ...]


def _positive_int(value: Any, option: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        fail(f"{option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _config(label: Any, features: Any, text: Any, image: Any, image_shape: Any,
            **kw: Any) -> CleanConfig:
    chosen = [n for n, v in (("features", features), ("text", text), ("image", image)) if v]
    if len(chosen) != 1:
        fail("give exactly one of --features, --text and --image"
             + (f" (got {', '.join('--' + c for c in chosen)})" if chosen else ""))
    kind = chosen[0]
    if isinstance(features, str):
        features = [features]
    columns = tuple(features) if kind == "features" else (text if kind == "text" else image,)
    for name, value in (("--label", label), (OPTIONS[kind], columns), ("--key", kw["key"])):
        values = value if isinstance(value, tuple) else (value,)
        if value is not None and any(not isinstance(v, str) or not v for v in values):
            fail(f"{name}: column names must be non-empty strings, got {value!r}")
    if label in columns:
        fail(f"{OPTIONS[kind]}: the label column {label!r} cannot also be a feature")
    key = kw["key"]
    if key is not None and (key == label or key in columns):
        fail(f"--key: column {key!r} is also used as label or feature")
    shape = None
    if image_shape is not None:
        if isinstance(image_shape, str) or not all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0
                for s in image_shape) or len(image_shape) not in (2, 3):
            fail(f"--image-shape must be 2 or 3 positive integers (HxW or CxHxW), "
                 f"got {image_shape!r}")
        shape = tuple(int(s) for s in image_shape)
    method = kw["method"]
    try:  # the one validator of the cleansing settings (names method, drop_fraction, ...)
        _, drop_fraction, threshold = check_cleansing_params(
            AUTO_METHOD if method is None else method, kw["drop_fraction"], kw["threshold"],
            require_eval_set=False)
    except ValueError as exc:
        fail(str(exc))
    eval_path = kw["eval_path"]
    return CleanConfig(
        label=label, kind=kind, columns=columns, key=key, image_shape=shape, method=method,
        drop_fraction=drop_fraction, threshold=threshold,
        eval_path=None if eval_path is None else Path(eval_path),
        max_train_rows=_positive_int(kw["max_train_rows"], "--max-train-rows", 2),
        batch_rows=_positive_int(kw["batch_rows"], "--batch-rows", 1),
        seed=_positive_int(kw["seed"], "--seed", 0), overwrite=bool(kw["overwrite"]),
        clear_stale_claim=bool(kw["clear_stale_claim"]), report=bool(kw["report"]),
        progress=bool(kw["progress"]))


def _estimator(model: str | None, model_params: dict[str, Any] | None, estimator: Any,
               kind: str, seed: int, progress: bool) -> Any:
    from sklearn.base import clone

    from tod_cleanse.estimators.base import BaseToDClassifier

    if estimator is not None:
        if not isinstance(estimator, BaseToDClassifier):
            fail(f"estimator must be a ToD estimator, got {type(estimator).__name__}")
        if not getattr(estimator, "turn_over", True):
            fail("estimator has turn_over=False: cleaning needs turn-over dropout")
        return clone(estimator)
    model = model or {"features": "mlp", "text": "bert", "image": "vgg"}[kind]
    if model not in MODELS:
        fail(f"--model must be one of {', '.join(MODELS)}, got {model!r}")
    if input_kind(model) != kind:
        fail(f"--model {model} reads {input_kind(model)} columns, not the --{kind} of this run")
    cls = estimator_class(model)
    accepted = cls().get_params()
    given = {k: v for k, v in (model_params or {}).items() if v is not None}
    path_param = pretrained_param(model)  # --model-path: model_name_or_path or weights_path
    if "model_name_or_path" in given and path_param not in (None, "model_name_or_path"):
        given[path_param] = given.pop("model_name_or_path")
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        fail(f"--model {model}: {cls.__name__} takes no parameter(s) {', '.join(unknown)}")
    defaults = {"random_state": seed, "verbose": int(progress)}
    try:
        return cls(**{**{k: v for k, v in defaults.items() if k in accepted}, **given})
    except (TypeError, ValueError) as exc:
        fail(f"--model {model}: {exc}")


def _method(cfg: CleanConfig, n: int, est: Any) -> tuple[str, str]:
    method, note = cfg.method, "given"
    if method in (None, AUTO_METHOD):
        default = resolve_method(AUTO_METHOD, est)
        method, note = default, f"default of {type(est).__name__}"
        if n > cfg.max_train_rows and method not in SAMPLED_METHODS:
            method = SAMPLED_METHODS[0]
            note = (f"default for a sampled run ({type(est).__name__}'s default {default!r} "
                    "has no out-of-sample score for untrained rows)")
    if method == "eval_influence" and cfg.eval_path is None:
        fail("--method eval_influence needs --eval PATH (validation Parquet data)")
    if cfg.eval_path is not None and method != "eval_influence":
        fail(f"--eval is only used by --method eval_influence, got --method {method}")
    if n > cfg.max_train_rows and method not in SAMPLED_METHODS:
        fail(f"--method {method} scores only rows the model trained on, but the dataset has "
             f"{n} rows > --max-train-rows {cfg.max_train_rows}; raise --max-train-rows or use "
             f"{' or '.join(SAMPLED_METHODS)}")
    return method, note


def prepare(input: str | os.PathLike, out: str | os.PathLike, *, label: str,
            features: Sequence[str] | None = None, text: str | None = None,
            image: str | None = None, image_shape: Sequence[int] | None = None,
            model: str | None = None, model_params: dict[str, Any] | None = None,
            estimator: Any = None, argv: Sequence[str] | None = None, **kw: Any) -> CleanPlan:
    """Check everything :func:`clean_parquet` is given, write nothing; see its docstring."""
    cfg = _config(label, features, text, image, image_shape, **kw)
    est = _estimator(model, model_params, estimator, cfg.kind, cfg.seed, cfg.progress)
    src = Source(input, cfg.batch_rows)
    label_type = value_type(src.check_column(cfg.label, "--label"))
    if label_kind(label_type) is None:
        fail(f"--label: column {cfg.label!r} has type {label_type}; labels must be integers, "
             "strings, booleans or floats")
    if cfg.key is not None:
        src.check_column(cfg.key, "--key")
    elif ROW_COLUMN in src.schema.names:
        fail(f"input {src.path} already has a column {ROW_COLUMN!r}; pass it as --key")
    extract = Features(src, cfg.kind, cfg.columns, cfg.option, cfg.image_shape)
    if cfg.eval_path is not None and not cfg.eval_path.exists():
        fail(f"--eval {cfg.eval_path}: no such file or folder")
    out_path, state = check_output(Path(out), src.path, cfg.overwrite)
    method, note = _method(cfg, src.n_rows, est)
    return CleanPlan(cfg, src, extract, label_type, out_path, state, method, note, est,
                     tuple(sys.argv if argv is None else argv))
