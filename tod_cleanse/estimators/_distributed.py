"""Data-parallel training of the ToD estimators under ``torch.distributed`` (DDP).

When a process group runs with several processes (``torchrun``, Ray Train's
``TorchTrainer``), :meth:`BaseToDClassifier.fit
<tod_cleanse.estimators.base.BaseToDClassifier.fit>` trains data-parallel with its
one training loop and ``train_step``: every rank holds the training rows, draws the
same global batches (rank 0's seed), and trains on its shard of each batch -- each
row with its own key, so its masks are the same on any rank -- while
``DistributedDataParallel`` averages the gradients. Without a process group
nothing here runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["ddp_world", "ddp_seed", "ddp_wrap", "ddp_mean"]


def ddp_world() -> tuple[int, int] | None:
    """``(rank, world size)`` when ``torch.distributed`` runs with several processes.

    Then :meth:`BaseToDClassifier.fit` trains data-parallel (torchrun, Ray Train):
    every rank holds the training rows, draws the same global batches and trains on
    its shard of each, with the same ``train_step``.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def ddp_seed(seed: int) -> int:
    """Rank 0's seed on every rank (same initial weights, same batch order)."""
    if ddp_world() is None:
        return seed
    import torch.distributed as dist

    box = [seed]
    dist.broadcast_object_list(box, src=0)
    return int(box[0])


def ddp_wrap(net: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True)


def ddp_mean(losses: list[float]) -> float:
    """Mean loss of an epoch over all ranks (each step's scaled losses sum to its mean)."""
    import torch.distributed as dist

    total = torch.tensor([float(np.sum(losses))], dtype=torch.float64)
    dist.all_reduce(total)
    return float(total.item()) / dist.get_world_size() / max(1, len(losses))
