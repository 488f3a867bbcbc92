"""The network container and device resolution shared by every ToD estimator."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["ToDNetwork", "resolve_device", "repeat_rows"]


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
    members_input : {"input", "trunk"}, default="input"
        What the members read: the network's input (the MLP), or the trunk's
        output, detached (the image families: the members' loss never reaches the
        trunk, so the ToD network trains as it would without them).

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
        if members_input not in ("input", "trunk"):
            raise ValueError(f"members_input must be 'input' or 'trunk', got {members_input!r}.")
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
        """The members' logits ``(B, K, n_classes)`` for input ``x`` with trunk output ``h``."""
        return self.members(h.detach() if self.members_input == "trunk" else x)


def repeat_rows(h: Any, k: int) -> Any:
    """Repeat every row of a (nested) batch ``k`` times, row-major: r0 x k, r1 x k..."""
    if isinstance(h, torch.Tensor):
        return h.repeat_interleave(k, dim=0)
    if isinstance(h, dict):
        return {name: repeat_rows(v, k) for name, v in h.items()}
    if isinstance(h, tuple | list):
        return type(h)(repeat_rows(v, k) for v in h)
    return h
