"""Model names -> ToD estimator classes, for the command line and the adapters.

One table says which estimator a ``--model`` name builds, which kind of input it
reads and which parameter takes a local pretrained checkpoint. The classes are
imported only when asked for, so listing the names imports neither
transformers nor torchvision.

Examples
--------
>>> from tod_cleanse.estimators.registry import MODEL_NAMES, make_estimator
>>> MODEL_NAMES
('mlp', 'text', 'bert', 'vgg', 'resnet', 'vit')
>>> make_estimator("resnet", width_multiplier=0.125, verbose=0).arch
'resnet18'
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

__all__ = [
    "MODEL_NAMES",
    "DEFAULT_MODEL",
    "ModelSpec",
    "estimator_class",
    "input_kind",
    "make_estimator",
    "model_spec",
    "pretrained_param",
]


class ModelSpec(NamedTuple):
    """What a model name stands for."""

    module: str
    """Module under ``tod_cleanse.estimators`` that defines the class."""
    class_name: str
    input_kind: str
    """``"features"`` (numeric table), ``"text"`` (strings) or ``"image"`` (pixel arrays)."""
    pretrained_param: str | None
    """Constructor parameter that takes a local pretrained checkpoint, if any."""


_SPECS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("mlp", "ToDMLPClassifier", "features", None),
    # Any encoder AutoModelForSequenceClassification loads (BERT, RoBERTa, DistilBERT,
    # DeBERTa-v2/v3, ELECTRA, ModernBERT...); "bert" is the historical name.
    "text": ModelSpec("text", "ToDTextClassifier", "text", "model_name_or_path"),
    "bert": ModelSpec("text", "ToDTextClassifier", "text", "model_name_or_path"),
    "vgg": ModelSpec("vgg", "ToDVGGClassifier", "image", None),
    "resnet": ModelSpec("resnet", "ToDResNetClassifier", "image", "weights_path"),
    "vit": ModelSpec("vit", "ToDViTClassifier", "image", "weights_path"),
}

#: Every name :func:`make_estimator` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(_SPECS)
#: The model used for each input kind when none is named.
DEFAULT_MODEL: dict[str, str] = {"features": "mlp", "text": "text", "image": "vgg"}


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; an unknown name lists the known ones."""
    key = str(name).lower()
    if key not in _SPECS:
        raise ValueError(f"model must be one of {', '.join(MODEL_NAMES)}, got {name!r}.")
    return _SPECS[key]


def estimator_class(name: str) -> type:
    """The estimator class of a model name (imports its module on first use).

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES` (case-insensitive).

    Returns
    -------
    type
        A subclass of :class:`~tod_cleanse.estimators.base.BaseToDClassifier`.
    """
    spec = model_spec(name)
    module = importlib.import_module(f"tod_cleanse.estimators.{spec.module}")
    return getattr(module, spec.class_name)


def input_kind(name: str) -> str:
    """``"features"``, ``"text"`` or ``"image"``: what the model named ``name`` reads."""
    return model_spec(name).input_kind


def pretrained_param(name: str) -> str | None:
    """The constructor parameter that takes a local checkpoint (``None`` if there is none)."""
    return model_spec(name).pretrained_param


def make_estimator(name: str, **params: Any) -> Any:
    """Build the unfitted estimator a model name stands for.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    **params
        Constructor parameters; ``None`` values are dropped (the estimator's
        default applies).

    Returns
    -------
    BaseToDClassifier
        Unfitted.

    Raises
    ------
    ValueError
        Unknown model name, or parameters the estimator does not take (the
        message names them and the model).
    """
    cls = estimator_class(name)
    accepted = set(cls().get_params())
    given = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(f"model {name!r} ({cls.__name__}) takes no parameter(s) "
                         f"{', '.join(unknown)}.")
    return cls(**given)
