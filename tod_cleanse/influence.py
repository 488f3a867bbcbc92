"""Batched, chunked turn-over dropout influence: ``I(z_t, z_i)`` for many pairs at once.

Two estimates:

``"exact"`` (:func:`iter_influence_blocks`)
    The paper's [1]_ ``L(z_t; flipped_i) - L(z_t; seen_i)``: two forward passes per pair,
    needs only the training keys.
``"gradient"`` (:func:`iter_gradient_influence_blocks`)
    The dot product of the target's loss gradient (full network) with the training
    row's loss gradient taken in the row's own sub-network ``seen_i`` -- the only
    weights that row ever updated. For every ``nn.Linear`` fed a 2-D input the
    per-row gradient is the outer product ``delta a^T``, so a pair costs
    ``sum_layers (delta_t . delta_i)(a_t . a_i + 1)``; needs the training rows.
    It tracks retraining much more closely (see
    ``examples/benchmarks/results/influence/``).

For a block of targets ``T`` and a block of training keys ``K``, the
mask-independent trunk output of each target is computed once, repeated ``|K|``
times, and the head runs on all ``|T| x |K|`` (target, mask) pairs in one
vectorised forward pass per sub-network (seen, flipped). Memory is bounded by
``pairs_per_batch`` pairs at a time, whatever the numbers of targets and
training rows; only the returned ``(|T|, n_train)`` block is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = ["iter_influence_blocks", "iter_gradient_influence_blocks", "gradient_factors",
           "pair_batches", "ESTIMATES"]

#: The influence estimates :meth:`score_influence` accepts.
ESTIMATES = ("exact", "gradient")

#: Factors = list over linear layers of ``(a, delta, has_bias)``.
Factors = list[tuple[torch.Tensor, torch.Tensor, bool]]


def pair_batches(n_targets: int, n_train: int, pairs_per_batch: int) -> tuple[int, int]:
    """Block sizes ``(targets, training keys)`` whose product is at most ``pairs_per_batch``.

    Examples
    --------
    >>> pair_batches(100, 1000, 4096)
    (4, 1000)
    >>> pair_batches(3, 10**6, 4096)
    (1, 4096)
    """
    if pairs_per_batch < 1:
        raise ValueError(f"pairs_per_batch must be >= 1, got {pairs_per_batch}.")
    k = max(1, min(n_train, pairs_per_batch))
    t = max(1, min(n_targets, pairs_per_batch // k))
    return t, k


@torch.no_grad()
def iter_influence_blocks(
    trunk: Callable[[np.ndarray], Any],
    head: Callable[[Any, torch.Tensor, str], torch.Tensor],
    repeat: Callable[[Any, int], Any],
    y_targets: np.ndarray,
    train_keys: np.ndarray,
    pairs_per_batch: int = 4096,
    device: torch.device | str = "cpu",
    verbose: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(target_rows, block)`` with ``block[a, i] = L_flipped - L_seen``.

    Parameters
    ----------
    trunk : callable ``idx -> h``
        Mask-independent features of the targets at positions ``idx``.
    head : callable ``(h, keys, mode) -> logits``
        Runs the ToD part of the network on ``h`` under ``mode``. ``h`` holds
        ``r * len(keys)`` rows, row ``j`` taking ``keys[j % len(keys)]`` (the
        ``cycle`` form of :func:`~tod_cleanse.layers.tod_context`).
    repeat : callable ``(h, k) -> h``
        Repeats each row of ``h`` ``k`` times (row-major).
    y_targets : ndarray of int, shape (n_targets,)
        Encoded target labels.
    train_keys : ndarray of int64, shape (n_train,)
        Keys of the training instances (their masks).
    pairs_per_batch : int, default=4096
        Maximum number of (target, mask) pairs per forward pass.
    device : torch.device or str
    verbose : bool
        Show a progress bar.

    Yields
    ------
    target_rows : ndarray of int
    block : ndarray of float64, shape (len(target_rows), n_train)
    """
    n_t = int(y_targets.shape[0])
    n_train = int(train_keys.shape[0])
    t_bs, k_bs = pair_batches(n_t, n_train, pairs_per_batch)
    keys_all = torch.as_tensor(train_keys, dtype=torch.int64, device=device)
    y_all = torch.as_tensor(y_targets, dtype=torch.int64, device=device)
    n_blocks = -(-n_t // t_bs) * -(-n_train // k_bs)
    bar = tqdm(total=n_blocks, desc="influence", unit="block",
               disable=not verbose or n_blocks < 2, leave=False)
    try:
        for t0 in range(0, n_t, t_bs):
            rows = np.arange(t0, min(n_t, t0 + t_bs))
            h = trunk(rows)
            yt = y_all[t0:t0 + rows.shape[0]]
            block = np.empty((rows.shape[0], n_train), dtype=np.float64)
            for k0 in range(0, n_train, k_bs):
                kk = keys_all[k0:k0 + k_bs]
                nk = kk.shape[0]
                h_rep = repeat(h, nk)
                y_rep = yt.repeat_interleave(nk)
                l_seen = F.cross_entropy(head(h_rep, kk, "seen"), y_rep, reduction="none")
                l_flip = F.cross_entropy(head(h_rep, kk, "flipped"), y_rep, reduction="none")
                diff = (l_flip - l_seen).view(rows.shape[0], nk)
                block[:, k0:k0 + nk] = diff.double().cpu().numpy()
                bar.update(1)
            yield rows, block
    finally:
        bar.close()


def gradient_factors(net: nn.Module, forward: Callable[[], torch.Tensor],
                     y: torch.Tensor) -> Factors:
    """Per-row factors of the cross-entropy gradient of every ``nn.Linear`` of ``net``.

    Parameters
    ----------
    net : nn.Module
        Network whose ``nn.Linear`` layers are read (those fed a 2-D input only).
    forward : callable ``() -> logits``
        Runs ``net`` on a batch (under whatever ToD context the caller chose).
    y : torch.Tensor of int64, shape (B,)
        Encoded labels of the batch.

    Returns
    -------
    list of ``(a, delta, has_bias)``
        ``a`` (B, in) the layer's input, ``delta`` (B, out) the gradient of the row's
        loss w.r.t. the layer's output: the row's weight gradient is ``delta a^T``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    >>> f = gradient_factors(net, lambda: net(x), y)
    >>> [tuple(a.shape) + tuple(d.shape) for a, d, _ in f]
    [(5, 3, 5, 4), (5, 4, 5, 2)]
    """
    store: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        if inp[0].ndim == 2 and out.requires_grad:
            store[id(mod)] = (inp[0].detach(), out)

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(forward().float(), y, reduction="sum")
            used = [m for m in linears if id(m) in store]
            if not used:
                raise ValueError(
                    "estimate='gradient' needs at least one nn.Linear layer fed a 2-D "
                    f"input in the network; {type(net).__name__} has none."
                )
            deltas = torch.autograd.grad(loss, [store[id(m)][1] for m in used])
    finally:
        for h in handles:
            h.remove()
    return [(store[id(m)][0].float(), d.detach().float(), m.bias is not None)
            for m, d in zip(used, deltas, strict=True)]


def _factor_dot(ft: Factors, fi: Factors) -> torch.Tensor:
    """``(len targets, len rows)`` sum over layers of the weight (and bias) gradient dots."""
    out = None
    for (at, dt, bias), (ai, di, _) in zip(ft, fi, strict=True):
        act = at @ ai.T
        if bias:
            act = act + 1.0
        term = (dt @ di.T) * act
        out = term if out is None else out + term
    return out


def _cat_factors(parts: list[Factors]) -> Factors:
    return [(torch.cat([p[j][0] for p in parts]), torch.cat([p[j][1] for p in parts]),
             parts[0][j][2]) for j in range(len(parts[0]))]


def iter_gradient_influence_blocks(
    target_factors: Callable[[np.ndarray], Factors],
    train_factors: Callable[[np.ndarray], Factors],
    n_targets: int,
    n_train: int,
    pairs_per_batch: int = 4096,
    max_cached: int = 2**26,
    verbose: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(target_rows, block)`` of the ``"gradient"`` estimate (see module doc).

    Parameters
    ----------
    target_factors, train_factors : callable ``idx -> factors``
        :func:`gradient_factors` of the targets (full network) and of the training
        rows (each in its own seen sub-network) at positions ``idx``.
    n_targets, n_train : int
    pairs_per_batch : int, default=4096
        Training rows per factor batch, and (target, row) pairs per block.
    max_cached : int, default=2**26
        The training rows' factors are computed once and kept when they hold at most
        this many numbers; otherwise they are recomputed for every block of targets,
        so memory stays bounded whatever ``n_train``.
    verbose : bool
        Show a progress bar.
    """
    row_bs = max(1, min(n_train, pairs_per_batch))
    t_bs = max(1, min(n_targets, pairs_per_batch * 16 // max(n_train, 1)))
    chunks = [np.arange(k0, min(n_train, k0 + row_bs)) for k0 in range(0, n_train, row_bs)]
    cached: list[Factors] | None = None
    if chunks:
        first = train_factors(chunks[0])
        width = sum(a.shape[1] + d.shape[1] for a, d, _ in first)
        if width * n_train <= max_cached:
            cached = [first] + [train_factors(c) for c in chunks[1:]]
            cached = [_cat_factors(cached)]
            chunks = [np.arange(n_train)]
    bar = tqdm(total=-(-n_targets // t_bs), desc="influence", unit="block",
               disable=not verbose or n_targets <= t_bs, leave=False)
    try:
        with torch.no_grad():
            for t0 in range(0, n_targets, t_bs):
                rows = np.arange(t0, min(n_targets, t0 + t_bs))
                ft = target_factors(rows)
                block = np.empty((rows.shape[0], n_train), dtype=np.float64)
                for j, idx in enumerate(chunks):
                    fi = cached[j] if cached is not None else train_factors(idx)
                    block[:, idx[0]:idx[-1] + 1] = _factor_dot(ft, fi).double().cpu().numpy()
                bar.update(1)
                yield rows, block
    finally:
        bar.close()
