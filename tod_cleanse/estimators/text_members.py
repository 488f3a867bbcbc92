"""What the text family's out-of-fold members read: an encoder layer's token mean.

The members (:class:`~tod_cleanse.folds.OutOfFoldMembers`) of
:class:`~tod_cleanse.estimators.text_layout.TextToDNetwork` read, detached, the output
of one encoder layer averaged over each row's tokens (``oos_layer``; issue 11, round
6), or the encoder's pooled output. This module holds which layer that is
(:func:`member_layer`), where the encoder's layers are (:func:`encoder_layers`) and the
hook that keeps the features while the encoder runs (:func:`keep_member_features`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["encoder_features", "encoder_layers", "keep_member_features", "member_layer",
           "token_mean"]


class _Stop(Exception):
    """Raised by a hook to end a forward pass once what it needs is captured."""


def encoder_layers(model: nn.Module) -> nn.ModuleList | None:
    """The list of ``num_hidden_layers`` encoder blocks of one class, if there is one."""
    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for mod in model.base_model.modules():
        if not isinstance(mod, nn.ModuleList) or not len(mod):
            continue
        if len({type(m) for m in mod}) != 1 or (n is not None and len(mod) != n):
            continue
        if best is None or len(mod) > len(best):
            best = mod
    return best


def encoder_features(pooled: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
    """The encoder's pooled output, else the first token's last hidden state."""
    return pooled if pooled is not None else hidden[:, 0]


def token_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``(B, T, D)`` hidden states over each row's tokens (``attention_mask`` 1).

    Examples
    --------
    >>> h = torch.tensor([[[1.0], [3.0], [9.0]]])
    >>> token_mean(h, torch.tensor([[1, 1, 0]]))
    tensor([[2.]])
    """
    if hidden.ndim != 3 or hidden.shape[0] != attention_mask.shape[0]:
        raise ValueError(
            f"oos_layer: the encoder layer's output has shape {tuple(hidden.shape)}, not "
            f"(batch={attention_mask.shape[0]}, tokens, hidden) (an unpadded attention "
            "path?); use oos_layer=None (the members read the pooled output).")
    mask = attention_mask[:, :hidden.shape[1]].to(torch.float32)[..., None]
    return (hidden.float() * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def member_layer(value: Any, n_layers: int | None, n_tod_layers: int) -> int | None:
    """The encoder layer whose output the out-of-fold members read (``oos_layer``).

    ``"auto"``: two thirds of the way up (``ceil(2 L / 3)``; layer 4 of 6 was the best of
    layers 3-5 on the WordNet cells, ``examples/benchmarks/results/oos/README.md``),
    lowered to the last layer without ToD; ``None`` when the encoder has no list of
    layers. ``None``: the encoder's pooled output. An integer must lie in
    ``0..L - n_tod_layers`` (``0``: the embeddings).

    Examples
    --------
    >>> member_layer("auto", 6, 0), member_layer("auto", 12, 0), member_layer("auto", 6, 3)
    (4, 8, 3)
    >>> member_layer(None, 6, 0) is None, member_layer("auto", None, 0) is None
    (True, True)
    """
    if value is None:
        return None
    if value == "auto":
        return None if n_layers is None else min(-(-2 * n_layers // 3), n_layers - n_tod_layers)
    if n_layers is None:
        raise ValueError(f"oos_layer={value!r} needs a list of encoder layers, which this "
                         "model does not have (shared or grouped layers?); use 'auto' or None.")
    top = n_layers - n_tod_layers
    if not 0 <= int(value) <= top:
        raise ValueError(
            f"oos_layer={value!r} must lie in 0..{top}: the members read a layer below every "
            f"ToD layer ({n_layers} encoder layers, {n_tod_layers} of them with ToD).")
    return int(value)


@contextlib.contextmanager
def keep_member_features(model: nn.Module, layer: int | None, batch: dict[str, torch.Tensor],
                         stop: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """While ``model``'s encoder runs on ``batch``: keep the members' features, detached.

    Yields a dict whose ``"features"`` holds them once the pass is over: the token mean
    of encoder layer ``layer``'s output (``0``: the embeddings, the input of the first
    layer), or with ``layer=None`` :func:`encoder_features` of the encoder's output.
    With ``stop`` the pass ends as soon as they are kept (the exception that ends it
    is swallowed here).
    """
    captured: dict[str, Any] = {}

    def keep(output: Any) -> None:
        if layer is None:
            captured["features"] = encoder_features(
                getattr(output, "pooler_output", None), output[0]).detach()
        else:
            hidden = output[0] if isinstance(output, tuple | list) else output
            captured["features"] = token_mean(hidden.detach(), batch["attention_mask"])
        if stop:
            raise _Stop

    if layer is None:
        hook = model.base_model.register_forward_hook(lambda m, a, out: keep(out))
    elif layer == 0:  # the embeddings: the input of the first layer
        hook = encoder_layers(model)[0].register_forward_pre_hook(
            lambda m, a, kw: keep(a[0] if a else kw["hidden_states"]), with_kwargs=True)
    else:
        hook = encoder_layers(model)[layer - 1].register_forward_hook(
            lambda m, a, out: keep(out))
    try:
        yield captured
    except _Stop:
        pass
    finally:
        hook.remove()
