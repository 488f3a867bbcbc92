"""The network container and device resolution shared by every ToD estimator."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FeatureTap", "ToDNetwork", "resolve_device", "repeat_rows"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as torch reads it.

    Raises
    ------
    ValueError
        Naming ``device`` when torch does not know the string or the device is
        absent here.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("bogus")
    Traceback (most recent call last):
    ...
    ValueError: device='bogus' is not a device torch knows; use 'auto', 'cpu', 'cuda' or 'cuda:N'.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device={device!r} is not a device torch knows; "
            "use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available here.")
    return dev


class FeatureTap(nn.Module):
    """Identity layer that keeps what passes through for the out-of-fold members.

    Placed inside a trunk (an image family's ``oos_stage``), it returns its input
    unchanged and keeps a detached copy, average-pooled to at most ``grid x grid``
    for a feature map and flattened: the input of the members
    (``ToDNetwork(members_input="tap")``). The copy is read once by
    :meth:`take` (the members of the same forward pass), never saved or pickled.

    Parameters
    ----------
    grid : int, default=8
        Largest spatial size kept; larger maps are average-pooled down to it.

    Examples
    --------
    >>> tap = FeatureTap(grid=2)
    >>> x = torch.arange(32.0).view(1, 2, 4, 4)
    >>> bool((tap(x) == x).all()), tap.take().shape, tap.take()
    (True, torch.Size([1, 8]), None)
    """

    def __init__(self, grid: int = 8) -> None:
        super().__init__()
        self.grid = int(grid)
        self.features: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.detach()
        if t.ndim == 4 and max(t.shape[-2:]) > self.grid:
            t = F.adaptive_avg_pool2d(t, (min(self.grid, t.shape[-2]),
                                          min(self.grid, t.shape[-1])))
        self.features = t.flatten(1)
        return x

    def take(self) -> torch.Tensor | None:
        """The features of the last forward pass, once (``None`` after)."""
        out, self.features = self.features, None
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "features": None}  # a batch's features are not state

    def extra_repr(self) -> str:
        return f"grid={self.grid}"


class ToDNetwork(nn.Module):
    """A network split at the lowest turn-over dropout layer.

    ``trunk`` holds everything below the first ToD layer: it does not depend on the
    instance mask, so scoring computes it once per target and reuses it for every
    training mask. ``head`` holds the ToD layers and everything above them.

    Parameters
    ----------
    trunk : nn.Module
        Mask-independent lower part (may be ``nn.Identity()``).
    head : nn.Module
        Upper part, containing every :class:`~tod_cleanse.layers.TurnOverDropout`.
    members : nn.Module or None, default=None
        Fold-structured members (:class:`~tod_cleanse.folds.OutOfFoldMembers`). In
        training mode :meth:`forward` then returns ``(logits, member_logits)`` so
        that one (data-parallel) forward pass trains both; in evaluation mode it
        returns the ToD network's logits only.
    members_input : {"input", "trunk", "tap"}, default="input"
        What the members read: the network's input (the MLP), the trunk's
        output, detached (the image families: the members' loss never reaches the
        trunk, so the ToD network trains as it would without them), or, detached
        too, the features kept by the trunk's :class:`FeatureTap` (an intermediate
        stage: ``oos_stage`` of the convolutional families).

    Examples
    --------
    >>> from torch import nn
    >>> net = ToDNetwork(nn.Identity(), nn.Linear(3, 2))
    >>> net(torch.zeros(4, 3)).shape
    torch.Size([4, 2])
    """

    def __init__(self, trunk: nn.Module, head: nn.Module,
                 members: nn.Module | None = None, members_input: str = "input") -> None:
        super().__init__()
        if members_input not in ("input", "trunk", "tap"):
            raise ValueError("members_input must be 'input', 'trunk' or 'tap', got "
                             f"{members_input!r}.")
        if members_input == "tap" and _feature_tap(trunk) is None:
            raise ValueError("members_input='tap' needs a FeatureTap inside the trunk.")
        self.trunk = trunk
        self.head = head
        self.members = members
        self.members_input = members_input

    def forward(self, x: Any) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        logits = self.head(h)
        if self.members is not None and self.training:
            return logits, self.member_logits(x, h)
        return logits

    def member_logits(self, x: Any, h: Any) -> torch.Tensor:
        """The members' logits ``(B, K, n_classes)`` for input ``x`` with trunk output ``h``.

        With ``members_input="tap"`` they read the features the trunk's
        :class:`FeatureTap` kept while computing ``h``; the trunk runs again on
        ``x`` when none are left (or they belong to a batch of another size).
        """
        if self.members_input == "tap":
            tap = _feature_tap(self.trunk)
            feats = tap.take()
            if feats is None or feats.shape[0] != h.shape[0]:
                self.trunk(x)
                feats = tap.take()
            return self.members(feats)
        return self.members(h.detach() if self.members_input == "trunk" else x)


def _feature_tap(trunk: nn.Module) -> FeatureTap | None:
    """The trunk's :class:`FeatureTap` (the first one), or ``None``."""
    return next((m for m in trunk.modules() if isinstance(m, FeatureTap)), None)


def repeat_rows(h: Any, k: int) -> Any:
    """Repeat every row of a (nested) batch ``k`` times, row-major: r0 x k, r1 x k..."""
    if isinstance(h, torch.Tensor):
        return h.repeat_interleave(k, dim=0)
    if isinstance(h, dict):
        return {name: repeat_rows(v, k) for name, v in h.items()}
    if isinstance(h, tuple | list):
        return type(h)(repeat_rows(v, k) for v in h)
    return h
