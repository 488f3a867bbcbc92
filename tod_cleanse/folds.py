"""Fold-structured turn-over dropout: K-fold cross-validation packed in one network.

Every instance key is hashed into one of ``K`` folds. The network carries ``K``
small *members* side by side (one per fold, each an independent one-hidden-layer
MLP: no weight is shared between members). Instance ``z_i`` of fold ``k`` trains
every member except member ``k``: its fixed dropout mask, at the level of members,
is "all members but its own fold's". Member ``k`` is therefore a whole network,
trained by the other ``K - 1`` folds, that never saw ``z_i`` -- exactly the model
that ``K``-fold cross-validation would have trained for that fold, obtained in the
same training run, on the same batches, as the per-instance ToD network.

That coherent out-of-fold network is what the per-instance flipped sub-network is
not: the flipped combination of per-unit masks never appears in training, and each
of its units learnt from a fixed ``1 - p`` share of the rows. The members give the
out-of-sample view (``oos_proba_``, cleanlab's ``pred_probs``); the per-instance
masks keep giving influence, self-influence and the full network (issue 11,
``examples/benchmarks/results/oos/``).

The members hold raw parameters (no ``nn.Linear``), so per-layer gradient readers of
the ToD network (:func:`tod_cleanse.influence.gradient_factors`) never see them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .masks import hash32

__all__ = ["OutOfFoldMembers", "MEMBER_INPUT_DIM", "input_projection", "key_fold", "member_loss",
           "out_of_fold_logits"]

_FOLD_SALT = 0x2545F491


def key_fold(keys: torch.Tensor, n_folds: int, seed: int = 0) -> torch.Tensor:
    """The fold (``0 .. n_folds - 1``) of every instance key: a pure function of the key.

    Parameters
    ----------
    keys : torch.Tensor of int64, shape (B,)
        Instance keys (the estimator's ``train_keys_``).
    n_folds : int
        Number of folds, at least 2.
    seed : int, default=0
        Global seed (the estimator's ``mask_seed``).

    Returns
    -------
    torch.Tensor of int64, shape (B,)

    Examples
    --------
    >>> import torch
    >>> f = key_fold(torch.arange(10_000), 5)
    >>> sorted(torch.bincount(f).tolist())[0] > 1_900
    True
    >>> bool(torch.equal(f, key_fold(torch.arange(10_000), 5)))
    True
    """
    if int(n_folds) < 2:
        raise ValueError(f"n_folds must be at least 2, got {n_folds!r}.")
    keys = keys.to(torch.int64)
    mask32 = 0xFFFFFFFF
    lo, hi = keys & mask32, (keys >> 32) & mask32
    salt = torch.full_like(keys, (int(seed) * 0x9E3779B9 + _FOLD_SALT) & mask32)
    return hash32(lo ^ hash32(hi ^ hash32(salt))) % int(n_folds)


class OutOfFoldMembers(nn.Module):
    """``K`` independent one-hidden-layer MLPs evaluated in one batched pass.

    Parameters
    ----------
    in_features : int
        Width of the input (the same input the ToD network sees).
    n_folds : int
        Number of members ``K`` (one per fold).
    width : int
        Hidden units of each member.
    n_classes : int
        Number of classes.
    p : float, default=0.5
        Ordinary dropout on each member's hidden units (training only).
    projection : tuple of (center, components) or None, default=None
        A fixed, label-free linear map of the input, ``(x - center) @ components``
        (see :func:`input_projection`), applied before the members; stored as
        buffers, never trained.
    seed : int, default=0
        Seed of the members' own random generator (initial weights, then dropout
        masks); torch's global generator is never drawn from.

    Examples
    --------
    >>> import torch
    >>> m = OutOfFoldMembers(in_features=4, n_folds=5, width=8, n_classes=3)
    >>> m(torch.zeros(2, 4)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, in_features: int, n_folds: int, width: int, n_classes: int,
                 p: float = 0.5, projection: tuple | None = None, seed: int = 0) -> None:
        super().__init__()
        self.n_folds, self.width, self.p, self.seed = int(n_folds), int(width), float(p), int(seed)
        k, h = self.n_folds, self.width
        # The members draw their initial weights and dropout masks from their own
        # generator, never from torch's global one: adding them leaves the training of
        # the ToD network itself bit-identical.
        self._generator: torch.Generator | None = None
        gen = torch.Generator().manual_seed(self.seed)
        self.center: torch.Tensor | None
        self.components: torch.Tensor | None
        if projection is None:
            self.register_buffer("center", None)
            self.register_buffer("components", None)
        else:
            center, components = (torch.as_tensor(v, dtype=torch.float32) for v in projection)
            self.register_buffer("center", center.reshape(-1).clone())
            self.register_buffer("components", components.clone())
            in_features = int(components.shape[1])
        # nn.Linear's default initialisation, member by member.
        b1, b2 = 1.0 / math.sqrt(in_features), 1.0 / math.sqrt(h)

        def uniform(*shape: int, bound: float) -> nn.Parameter:
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound, generator=gen))

        self.weight1 = uniform(in_features, k * h, bound=b1)
        self.bias1 = uniform(k * h, bound=b1)
        self.weight2 = uniform(k, h, n_classes, bound=b2)
        self.bias2 = uniform(k, n_classes, bound=b2)

    def __getstate__(self) -> dict:  # a torch.Generator does not pickle
        state = dict(self.__dict__)
        state["_generator"] = None
        return state

    def _dropout_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed + 1)
        return self._generator

    def extra_repr(self) -> str:
        return f"n_folds={self.n_folds}, width={self.width}, p={self.p}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits, shape ``(B, K, n_classes)``."""
        x = x.reshape(x.shape[0], -1)
        if self.components is not None:
            x = (x - self.center) @ self.components
        h = F.relu(torch.addmm(self.bias1, x, self.weight1)).view(x.shape[0], self.n_folds,
                                                                   self.width)
        if self.training and self.p > 0:
            keep = torch.rand(h.shape, generator=self._dropout_generator(h.device),
                              device=h.device) >= self.p
            h = h * keep / (1.0 - self.p)
        out = torch.baddbmm(self.bias2[:, None, :], h.transpose(0, 1), self.weight2)
        return out.transpose(0, 1)


#: Inputs wider than this reach the members through a fixed PCA map to this many
#: dimensions (:func:`input_projection`): the members' cost then no longer grows with
#: the input width, and on Fashion-MNIST (784 pixels) they were as good or better
#: (``examples/benchmarks/results/oos/``).
MEMBER_INPUT_DIM = 64


def input_projection(X: np.ndarray, dim: int = MEMBER_INPUT_DIM, max_rows: int = 5_000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """A fixed PCA map ``(center, components)`` of ``X`` to ``dim`` whitened dimensions.

    Label-free: it reads the inputs only (on at most ``max_rows`` sampled rows), like
    the standardisation before it, never a label. Randomised PCA
    (:func:`torch.pca_lowrank`, two power iterations) on torch's threads. ``None``
    when ``X`` has at most ``dim`` columns (the members then read ``X`` itself).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 100)).astype(np.float32)
    >>> center, comp = input_projection(X, dim=8)
    >>> Z = (X - center) @ comp
    >>> Z.shape, bool(np.allclose(Z.std(0), 1.0, atol=0.05))
    ((500, 8), True)
    >>> input_projection(X[:, :8], dim=8) is None
    True
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] <= dim or X.shape[0] < 2:
        return None
    rng = np.random.default_rng(seed)
    rows = X if X.shape[0] <= max_rows else X[rng.choice(X.shape[0], max_rows, replace=False)]
    rows = torch.as_tensor(rows, dtype=torch.float32)
    center = rows.mean(0)
    k = min(dim, rows.shape[0] - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, sing, v = torch.pca_lowrank(rows - center, q=min(k + 8, *rows.shape), center=False,
                                       niter=2)
    scale = (sing[:k] / (rows.shape[0] - 1) ** 0.5).clamp_min(1e-6)
    return center.numpy(), (v[:, :k] / scale).numpy()


def member_loss(logits: torch.Tensor, y: torch.Tensor, folds: torch.Tensor,
                reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of every row in every member but its own fold's.

    Each row's loss is the mean over its ``K - 1`` members; ``reduction`` then
    averages or sums over rows (``"sum"``: data-parallel training).

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(2, 3, 4)
    >>> logits[0, 0, 1] = 100.0  # member 0 is row 0's own fold: never trained by it
    >>> round(member_loss(logits, torch.tensor([0, 0]), torch.tensor([0, 1])).item(), 4)
    1.3863
    """
    n, k, _ = logits.shape
    ce = F.cross_entropy(logits.float().permute(0, 2, 1), y[:, None].expand(n, k),
                         reduction="none")
    trains = folds[:, None] != torch.arange(k, device=logits.device)[None, :]
    per_row = (ce * trains).sum(1) / (k - 1)
    return per_row.sum() if reduction == "sum" else per_row.mean()


def out_of_fold_logits(logits: torch.Tensor, folds: torch.Tensor) -> torch.Tensor:
    """Each row's logits from the member of its own fold (the one that never saw it).

    Examples
    --------
    >>> import torch
    >>> logits = torch.arange(12.0).view(2, 3, 2)
    >>> out_of_fold_logits(logits, torch.tensor([2, 0])).tolist()
    [[4.0, 5.0], [6.0, 7.0]]
    """
    return logits[torch.arange(logits.shape[0], device=logits.device), folds]
