"""What the image estimators (VGG, ResNet, ViT) share: input layouts, padding, the ToD head.

:class:`ImageInputMixin` turns any accepted image array into standardised
``float32 (N, C, H, W)`` tensors (grey ``(N, H, W)``, ``(N, H, W, C)``,
``(N, C, H, W)``, flattened rows; uint8 read as ``/255``), zero-pads images
smaller than :attr:`ImageInputMixin._min_side` and can augment a batch with flips
and shifts. :func:`tod_head` builds the bias-free classification head whose
weight matrices are exactly separated between an instance's sub-network and its
flipped one. :func:`load_local_weights` reads a torchvision checkpoint from disk.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..folds import OutOfFoldMembers
from ..layers import TurnOverDropout
from ._network import FeatureTap, ToDNetwork, _feature_tap

__all__ = ["ImageInputMixin", "tod_head", "load_local_weights", "torchvision_models",
           "with_trunk_members", "split_network"]


def with_trunk_members(net: ToDNetwork, n_classes: int, input_shape: tuple[int, ...], *,
                       n_folds: int | None, width: int, enabled: bool = True) -> ToDNetwork:
    """``net`` with out-of-fold members on its trunk's detached features.

    The members (:class:`~tod_cleanse.folds.OutOfFoldMembers`) read the flattened
    trunk output or, when the trunk holds a :class:`FeatureTap` (placed by
    :func:`split_network`), the features it keeps; their width comes from one forward
    pass of a zero batch in evaluation mode (batch-norm statistics are left
    untouched). Their weights come from their own generator, so the ToD network is
    initialised as without them.

    Parameters
    ----------
    net : ToDNetwork
        An image family's network (trunk, head).
    n_classes : int
    input_shape : tuple of int
        ``(C, H, W)`` of the network input.
    n_folds : int or None
        Number of folds (members); ``None`` returns ``net`` unchanged.
    width : int
        Hidden units of each member.
    enabled : bool, default=True
        ``False`` (no turn-over dropout) returns ``net`` unchanged.

    Returns
    -------
    ToDNetwork

    Examples
    --------
    >>> net = ToDNetwork(nn.Sequential(nn.Flatten(1), nn.Linear(12, 6)), nn.Linear(6, 2))
    >>> out = with_trunk_members(net, 2, (3, 2, 2), n_folds=5, width=8)
    >>> out.members_input, out.members.n_folds, out.train()(torch.zeros(4, 3, 2, 2))[1].shape
    ('trunk', 5, torch.Size([4, 5, 2]))
    """
    if not (enabled and n_folds):
        return net
    tap = _feature_tap(net.trunk)
    was_training = net.trunk.training
    net.trunk.eval()
    with torch.no_grad():
        out = net.trunk(torch.zeros(2, *input_shape))
        feats = out.flatten(1) if tap is None else tap.take()
    net.trunk.train(was_training)
    members = OutOfFoldMembers(int(feats.shape[1]), int(n_folds), int(width), n_classes,
                               seed=torch.initial_seed() % 2**31)
    return ToDNetwork(net.trunk, net.head, members,
                      members_input="trunk" if tap is None else "tap")


def split_network(layers: list[nn.Module], cut: int, *, stage: int | None = None,
                  ends: list[int] | tuple[int, ...] = (), grid: int = 8,
                  param: str = "oos_stage") -> ToDNetwork:
    """``layers`` split into trunk (below ``cut``) and head, with a :class:`FeatureTap`
    after convolutional stage ``stage``.

    The out-of-fold members then read that stage's output (detached, pooled to at
    most ``grid x grid``) instead of the trunk's: lower stages memorise the rows
    less (issue 11, ``examples/benchmarks/results/oos/families.md``).

    Parameters
    ----------
    layers : list of nn.Module
        The network's layers, in order (trunk, then head).
    cut : int
        Index of the lowest ToD layer in ``layers`` (where the trunk ends).
    stage : int or None, default=None
        Stage whose output the members read (1 = the first); ``None``: no tap.
    ends : sequence of int, default=()
        Index in ``layers`` of the last layer of each stage (stage ``s`` ends at
        ``ends[s - 1]``).
    grid : int, default=8
    param : str, default="oos_stage"
        Parameter name for the error messages.

    Returns
    -------
    ToDNetwork
        Without members (:func:`with_trunk_members` adds them).

    Raises
    ------
    ValueError
        When ``stage`` is beyond the last stage, or its output lies above the lowest
        ToD layer (it would depend on the instance mask).

    Examples
    --------
    >>> layers = [nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2),
    ...           TurnOverDropout(), nn.Flatten(1)]
    >>> net = split_network(layers, 4, stage=1, ends=[1, 3])
    >>> [type(m).__name__ for m in net.trunk], type(net.head[0]).__name__
    (['Conv2d', 'MaxPool2d', 'FeatureTap', 'Conv2d', 'MaxPool2d'], 'TurnOverDropout')
    """
    layers = list(layers)
    if stage is not None:
        if not 1 <= stage <= len(ends):
            raise ValueError(f"{param} must be None or an integer in [1, {len(ends)}] (the "
                             f"network's convolutional stages), got {stage!r}.")
        at = ends[stage - 1] + 1
        if at > cut:
            raise ValueError(f"{param}={stage}: that stage's output lies above the lowest "
                             "ToD layer, where the features depend on the instance mask; "
                             "choose a lower stage, or fewer ToD layers among the "
                             "convolutions.")
        layers.insert(at, FeatureTap(grid))
        cut += 1
    return ToDNetwork(nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:]))


logger = logging.getLogger(__name__)


def torchvision_models(name: str):
    """Import ``torchvision.models.<name>``; a missing torchvision names the extra."""
    try:
        import importlib

        return importlib.import_module(f"torchvision.models.{name}")
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise ModuleNotFoundError(
            "the image estimators need torchvision: pip install 'tod-cleanse' (or pip install "
            "torchvision)."
        ) from exc


def tod_head(in_features: int, width: int, n_classes: int, tod: dict[str, Any],
             activation: type[nn.Module] = nn.ReLU, first_seed: int = 0) -> list[nn.Module]:
    """``ToD -> Linear -> act -> ToD -> Linear (no bias)``, or ``ToD -> Linear`` when ``width=0``.

    Every weight matrix has its input masked by the instance mask (and the
    hidden one its output too); the output layer has no bias (a bias is shared
    by every sub-network). One training step on an instance therefore leaves the
    flipped sub-network of the head bit-identical (exact separation, with a
    fresh Adam and no weight decay).

    Parameters
    ----------
    in_features : int
        Width of the pooled features.
    width : int
        Hidden units of the head; ``0`` for a single linear layer.
    n_classes : int
    tod : dict
        Keyword arguments of :class:`~tod_cleanse.layers.TurnOverDropout`
        (``p``, ``seed``, ``n_groups``, ``inner_p``).
    activation : nn.Module class, default=nn.ReLU
    first_seed : int, default=0
        Layer seed of the first ToD layer (the next one gets ``first_seed + 1``).

    Returns
    -------
    list of nn.Module

    Examples
    --------
    >>> head = nn.Sequential(*tod_head(8, 4, 3, {"p": 0.5}))
    >>> [type(m).__name__ for m in head]
    ['TurnOverDropout', 'Linear', 'ReLU', 'TurnOverDropout', 'Linear']
    """
    first = TurnOverDropout(layer_seed=first_seed, **tod)
    if not width:
        return [first, nn.Linear(in_features, n_classes, bias=False)]
    return [first, nn.Linear(in_features, width), activation(),
            TurnOverDropout(layer_seed=first_seed + 1, **tod),
            nn.Linear(width, n_classes, bias=False)]


def load_local_weights(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.pth``/``.pt`` file (a torchvision checkpoint).

    Accepts a plain state dict or a dict with a ``"state_dict"`` / ``"model"``
    entry. Never downloads.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"weights_path={path!r} is not a file; {what} loads pretrained "
                         "weights from a local torchvision checkpoint (.pth).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ValueError(f"weights_path={path!r}: not a torch checkpoint ({exc}).") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f"weights_path={path!r} does not hold a state dict of tensors.")
    return state


def adapt_first_conv(weight: torch.Tensor, in_channels: int, path: Any) -> torch.Tensor:
    """Fit a pretrained first-convolution kernel to ``in_channels`` image channels.

    Grey images (1 channel) get the sum over the RGB kernels, so a grey image
    repeated on three channels gives the same response.
    """
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    raise ValueError(
        f"weights_path={str(path)!r} expects {weight.shape[1]}-channel images, X has "
        f"{in_channels} channels."
    )


class ImageInputMixin:
    """Image validation shared by the image estimators (VGG, ResNet, ViT).

    Subclasses set ``_min_side`` (images are zero-padded, centred, up to it after
    standardisation) and may override :meth:`_target_side` (e.g. a multiple of
    the ViT patch size). They need the parameters ``data_format``,
    ``image_shape`` and ``augment``.
    """

    _min_side: int = 1

    def _target_side(self, h: int, w: int) -> tuple[int, int]:
        return max(h, self._min_side), max(w, self._min_side)

    def _to_nchw(self, X: Any, reset_shape: bool = True) -> np.ndarray:
        """Any accepted layout -> float32 (N, C, H, W), uint8 scaled to [0, 1]."""
        name = type(self).__name__
        if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
            raise TypeError(f"Sparse data was passed for X, but {name} needs dense "
                            "images; convert with X.toarray().")
        if hasattr(X, "to_numpy"):  # pandas
            X = X.to_numpy()
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            arr = np.asarray(X)
        except ValueError as exc:
            raise ValueError(f"X must be an array of images: {exc}") from None
        if arr.dtype.kind == "c" or (arr.dtype == object and any(
                isinstance(v, complex) for v in arr.ravel()[:1000].tolist())):
            raise ValueError("Complex data not supported: X must hold real pixel values.")
        if arr.dtype.kind not in "biuf":
            try:
                arr = arr.astype(np.float32)
            except ValueError as exc:
                raise ValueError(f"X must hold numbers only (pixel values): {exc}") from None
            except TypeError as exc:
                raise TypeError(f"X must hold numbers only (pixel values): {exc}") from None
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError(f"X must hold at least one image, got shape {arr.shape}.")
        if arr.ndim == 1:
            raise ValueError(
                f"X must be 2-D (flattened images), 3-D (N, H, W) or 4-D images, got a 1-D "
                f"array of shape {arr.shape}. Reshape your data: X.reshape(-1, 1) for a "
                "single pixel per sample."
            )
        if 0 in arr.shape[1:]:
            raise ValueError(f"0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                             "required: X holds empty images.")
        if arr.ndim == 2 and hasattr(self, "n_features_in_") and not reset_shape:
            if arr.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {arr.shape[1]} features, but {name} is expecting "
                    f"{self.n_features_in_} features as input."
                )
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        arr = arr.astype(np.float32, copy=False)
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or infinity.")
        if arr.ndim == 2:
            arr = self._unflatten(arr)
        elif arr.ndim == 3:
            arr = arr[:, None]
        elif arr.ndim == 4:
            arr = self._channels_first(arr)
        else:
            raise ValueError(f"X must have 2, 3 or 4 dimensions, got shape {arr.shape}.")
        if scale != 1.0:
            arr = arr / scale
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _unflatten(self, arr: np.ndarray) -> np.ndarray:
        n, d = arr.shape
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if len(shape) == 2:
                shape = (1, *shape)
            if len(shape) != 3 or math.prod(shape) != d:
                raise ValueError(
                    f"image_shape={self.image_shape!r} does not match the {d} values per row of X."
                )
            return arr.reshape(n, *shape)
        side = math.isqrt(d)
        if side * side == d:
            return arr.reshape(n, 1, side, side)
        # Not a square: read each row as a grey image one pixel high.
        return arr.reshape(n, 1, 1, d)

    def _channels_first(self, arr: np.ndarray) -> np.ndarray:
        fmt = self.data_format
        if fmt not in ("auto", "channels_last", "channels_first"):
            raise ValueError(
                "data_format must be 'auto', 'channels_last' or 'channels_first', "
                f"got {fmt!r}."
            )
        if fmt == "auto":
            first, last = arr.shape[1] <= 4, arr.shape[3] <= 4
            if first == last:
                raise ValueError(
                    f"cannot tell the channel axis of X with shape {arr.shape}; pass "
                    "data_format='channels_last' (N, H, W, C) or 'channels_first' (N, C, H, W)."
                )
            fmt = "channels_first" if first else "channels_last"
        return arr if fmt == "channels_first" else arr.transpose(0, 3, 1, 2)

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        arr = self._to_nchw(X, reset_shape=reset)
        if reset:
            self.image_shape_ = tuple(int(s) for s in arr.shape[1:])
            self.n_features_in_ = int(math.prod(self.image_shape_))
            self.mean_ = arr.mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
            std = arr.std(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)
            self.std_ = np.where(std > 1e-6, std, 1.0).astype(np.float32)
        elif tuple(arr.shape[1:]) != self.image_shape_:
            raise ValueError(
                f"X has images of shape {tuple(arr.shape[1:])} (C, H, W) but "
                f"{type(self).__name__} was fitted on {self.image_shape_}."
            )
        arr = (arr - self.mean_[None, :, None, None]) / self.std_[None, :, None, None]
        _, _, h, w = arr.shape
        th, tw = self._target_side(h, w)
        ph, pw = th - h, tw - w
        if ph or pw:
            arr = np.pad(arr, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        return np.ascontiguousarray(arr, dtype=np.float32)

    def _padded_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the network input (after padding)."""
        c, h, w = self.image_shape_
        return (c, *self._target_side(h, w))

    def _augment(self, xb: torch.Tensor) -> torch.Tensor:
        if not self.augment:
            return xb
        n, _, h, w = xb.shape
        flip = torch.rand(n, device=xb.device) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        pad = 4
        padded = F.pad(xb, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,)).tolist()
        dx = torch.randint(0, 2 * pad + 1, (n,)).tolist()
        return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
