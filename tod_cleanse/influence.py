"""Batched, chunked turn-over dropout influence: ``I(z_t, z_i)`` for many pairs at once.

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
from torch.nn import functional as F
from tqdm.auto import tqdm

__all__ = ["iter_influence_blocks", "pair_batches"]


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
