"""Saving and loading fitted ToD estimators without pickling torch modules.

What is written is plain data only: the network's and the optimiser's state
dicts (tensors), the constructor parameters and the fitted attributes, with
numpy arrays stored as tensors or nested lists plus their dtype. Every file
loads with ``torch.load(..., weights_only=True)``, which refuses to run code
from a file, and on a machine without the GPU the model was trained on (the
tensors are mapped to the CPU). The network is rebuilt from the parameters by
the estimator's own ``_rebuild_module`` and then receives the saved weights.

:class:`PersistenceMixin` (pickle, ``copy.deepcopy``, ``joblib``) uses the
same state dicts; :func:`save` / :func:`load` write and read one ``.pt`` file.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
from typing import Any

import numpy as np
import torch

from ._network import resolve_device

logger = logging.getLogger(__name__)

__all__ = ["FORMAT", "PersistenceMixin", "dump_state", "load", "load_state", "save", "to_plain",
           "from_plain"]

#: Written into every saved file; :func:`load` refuses other formats.
FORMAT = "tod_cleanse.estimator/1"

# Attributes that only matter during fit, or that are rebuilt on load.
_TRANSIENT = ("scheduler_", "scaler_", "module_", "optimizer_", "device_")


def to_plain(value: Any) -> Any:
    """Turn numpy arrays and scalars (also inside lists, tuples, dicts) into plain data.

    Numeric arrays become tensors; other arrays (strings, objects) become
    ``{"__ndarray__": nested list, "dtype": str}``.

    Examples
    --------
    >>> from_plain(to_plain(np.array(["a", "b"]))).tolist()
    ['a', 'b']
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuf" and value.dtype != np.float16:
            return {"__tensor__": torch.from_numpy(np.ascontiguousarray(value)),
                    "dtype": value.dtype.str}
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.str,
                "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.device):
        return str(value)
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_plain(v) for v in value)
    return value


def from_plain(value: Any) -> Any:
    """Inverse of :func:`to_plain`."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return value["__tensor__"].numpy().astype(np.dtype(value["dtype"]), copy=False)
        if "__ndarray__" in value:
            dtype = np.dtype(value["dtype"])
            if dtype.kind == "O" and len(value["shape"]) == 1:
                out = np.empty(value["shape"][0], dtype=object)
                out[:] = value["__ndarray__"]  # keeps tuples as elements
                return out
            return np.array(value["__ndarray__"], dtype=dtype)
        return {k: from_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(from_plain(v) for v in value)
    return value


def _tensor_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_state(data: bytes | str | os.PathLike, device: torch.device | str = "cpu") -> Any:
    """``torch.load(data, map_location=device, weights_only=True)`` of bytes or a path."""
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return torch.load(source, map_location=device, weights_only=True)


def dump_state(estimator: Any) -> dict:
    """The picklable state of a ToD estimator: ``__dict__`` with the torch objects as bytes.

    ``module_`` and ``optimizer_`` become the bytes of their state dicts; what
    only matters during fit (scheduler, grad scaler) is dropped.
    """
    state = {k: v for k, v in estimator.__dict__.items() if k not in _TRANSIENT}
    if "module_" in estimator.__dict__:
        state["module_"] = _tensor_bytes(estimator.module_.state_dict())
        state["optimizer_"] = _tensor_bytes(estimator.optimizer_.state_dict())
        state["device_"] = str(estimator.device_)
    return state


class PersistenceMixin:
    """Pickling through state dicts (``__getstate__`` / ``__setstate__``).

    The estimator supplies ``_rebuild_module()`` (a network of the fitted shape)
    and ``_make_optimizer()``. ``__setstate__`` puts the network on the saved
    ``device_``, or on the CPU when that device is absent here. A parameter added
    after a model was saved takes the value in ``_params_added`` (the behaviour
    before it existed), for pickles and :func:`load` alike.
    """

    #: Parameters added since the first file format -> the value that rebuilds the
    #: network of a model saved before they existed.
    _params_added: dict = {}

    def __getstate__(self) -> dict:
        return dump_state(self)

    def __setstate__(self, state: dict) -> None:
        state = {**self._params_added, **state}
        module_bytes = state.pop("module_", None)
        optimizer_bytes = state.pop("optimizer_", None)
        saved_device = state.pop("device_", None)
        self.__dict__.update(state)
        if module_bytes is None:
            return
        dev = torch.device(saved_device or "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            logger.info("model was trained on %s; loading it on the CPU", dev)
            dev = torch.device("cpu")
        self.device_ = dev
        with torch.random.fork_rng(devices=[]):  # building draws initial weights
            module = self._rebuild_module()
        module.load_state_dict(load_state(module_bytes, dev))
        self.module_ = module.to(dev)
        self.optimizer_ = self._make_optimizer()
        if optimizer_bytes is not None:
            self.optimizer_.load_state_dict(load_state(optimizer_bytes, dev))


def save(estimator: Any, path: str | os.PathLike) -> None:
    """Write a fitted ToD estimator to one file that loads with ``weights_only=True``.

    Parameters
    ----------
    estimator : BaseToDClassifier
        Fitted (or not: then only the parameters are written).
    path : str or path-like
        Target file (conventionally ``*.pt``); written to a temporary name, then
        renamed.

    Raises
    ------
    TypeError
        If a parameter or fitted attribute is not plain data (e.g. a
        ``RandomState`` instance as ``random_state``, a tokenizer): such an
        estimator has its own format (``ToDBertClassifier.save_pretrained``) or
        pickles.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sklearn.datasets import load_iris
    >>> from tod_cleanse import ToDMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=1, verbose=0).fit(X, y)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> save(est, path)
    >>> back = load(path)
    >>> bool((back.predict_proba(X) == est.predict_proba(X)).all())
    True
    """
    cls = type(estimator)
    state = dump_state(estimator)
    payload = {
        "format": FORMAT,
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "params": to_plain(estimator.get_params(deep=False)),
        "module": None if "module_" not in state else load_state(state.pop("module_")),
        "optimizer": None if "optimizer_" not in state else load_state(state.pop("optimizer_")),
        "device": state.pop("device_", None),
        "fitted": to_plain(state),
    }
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(payload, tmp)
        load_state(tmp)  # refuse to write what weights_only=True could not read back
    except Exception as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise
        raise TypeError(
            f"{cls.__name__} holds something that is not plain data, which a file loaded "
            f"with weights_only=True cannot hold ({exc}); pickle it instead."
        ) from None
    os.replace(tmp, path)


def load(path: str | os.PathLike, device: str | torch.device | None = None) -> Any:
    """Read an estimator written by :func:`save` (``torch.load(weights_only=True)``).

    Parameters
    ----------
    path : str or path-like
    device : str, torch.device or None, default=None
        Where to put the network: ``None`` = where it was trained (the CPU when
        that device is absent here), ``"auto"``, ``"cpu"``, ``"cuda:0"``...

    Returns
    -------
    BaseToDClassifier
    """
    payload = load_state(os.fspath(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a file written by tod_cleanse's save().")
    module_name, _, class_name = payload["class"].rpartition(".")
    if not module_name.startswith("tod_cleanse."):
        raise ValueError(f"{os.fspath(path)!r} names the class {payload['class']!r}, "
                         "which is not a tod_cleanse estimator.")
    cls = getattr(importlib.import_module(module_name), class_name)
    estimator = cls(**{**getattr(cls, "_params_added", {}), **from_plain(payload["params"])})
    state = from_plain(payload["fitted"])
    if payload["module"] is not None:
        state["module_"] = _tensor_bytes(payload["module"])
        state["optimizer_"] = _tensor_bytes(payload["optimizer"])
        state["device_"] = (payload["device"] if device is None
                            else str(resolve_device(device)))
    estimator.__setstate__(state)
    return estimator
