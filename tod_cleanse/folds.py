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
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .layers import context_keys, context_rows
from .masks import hash32

__all__ = ["OutOfFoldMembers", "MEMBER_INPUT_DIM", "dropout_scale", "input_projection",
           "key_fold", "member_loss", "member_loss_weights", "weighted_member_loss",
           "out_of_fold_logits"]

_FOLD_SALT = 0x2545F491


def _dropout_table(p: float, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    """``(table, bits)``: row ``v`` of ``table`` is the dropout scale of the ``8 // bits``
    draws packed in the random byte ``v`` (``bits`` bits each, lowest first)."""
    bits = next((b for b in (1, 2, 4) if float(p * 2**b).is_integer()), 8)
    levels = 2**bits
    threshold = int(round(p * levels))  # p itself when it is a multiple of 1 / 2**bits
    keep = 1.0 - threshold / levels
    slots = torch.arange(0, 8, bits)
    draws = (torch.arange(256)[:, None] >> slots) & (levels - 1)
    table = (draws >= threshold).to(torch.float64) / keep
    return table.to(device=device, dtype=dtype), bits


def dropout_scale(shape: tuple[int, ...], p: float, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                  table: tuple[torch.Tensor, int] | None = None) -> torch.Tensor:
    """Ordinary dropout's scale: ``1 / (1 - p)`` with probability ``1 - p``, else 0.

    The random bits are drawn in bulk, 64 at a time (one ``int64`` of
    :func:`torch.randint`), and unpacked through a 256-row table: ``b`` bits a
    draw, the fewest of 1, 2, 4, 8 for which ``p * 2**b`` is an integer (1 for
    ``p = 0.5``). The rate is exactly ``p`` when ``p`` is a multiple of 1/256, else
    ``p`` rounded to the nearest one (scale ``1 / (1 - rounded p)``). On one CPU
    thread a ``(64, 640)`` draw at ``p = 0.5`` costs about a quarter of
    ``torch.rand(shape) >= p`` (49 us against 175 us,
    ``examples/benchmarks/results/oos/README.md``, round 4).

    Parameters
    ----------
    shape : tuple of int
        Shape of the scale tensor.
    p : float
        Drop rate in ``[0, 1)``.
    generator : torch.Generator or None, default=None
        Source of the random bits (torch's global generator when ``None``).
    device, dtype : default=None, torch.float32
        Device and dtype of the result (the generator's device by default).
    table : tuple or None, default=None
        A cached ``_dropout_table(p, device, dtype)`` (built when ``None``).

    Returns
    -------
    torch.Tensor of shape ``shape``

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> s = dropout_scale((200, 500), 0.5, g)
    >>> sorted(s.unique().tolist()), round((s == 0).float().mean().item(), 2)
    ([0.0, 2.0], 0.5)
    >>> bool(torch.equal(s, dropout_scale((200, 500), 0.5, torch.Generator().manual_seed(0))))
    True
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"p must be in [0, 1), got {p!r}.")
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    tbl, bits = table if table is not None else _dropout_table(p, torch.device(device), dtype)
    n = math.prod(shape)
    n_bytes = -(-n * bits // 8)
    words = torch.randint(-(2**63), 2**63 - 1, (-(-n_bytes // 8),), generator=generator,
                          device=device, dtype=torch.int64)
    byte = words.view(torch.uint8)[:n_bytes].long()
    return torch.index_select(tbl, 0, byte).view(-1)[:n].view(shape)


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
        state.pop("_tables", None)
        state.pop("_input_cache", None)
        return state

    def _dropout_generator(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed + 1)
        return self._generator

    def extra_repr(self) -> str:
        return f"n_folds={self.n_folds}, width={self.width}, p={self.p}"

    def _scale_table(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
        tables = self.__dict__.setdefault("_tables", {})
        key = (device, dtype)
        if key not in tables:
            tables[key] = _dropout_table(self.p, device, dtype)
        return tables[key]

    @torch.no_grad()
    def cache_inputs(self, keys: torch.Tensor | None, X: Any = None,
                     max_entries: int = 2**24) -> None:
        """Remember the projected inputs of the training rows, or forget them (``None``).

        With a projection, a training step then reads its rows' projected inputs by
        position (the ``rows`` of the active :func:`~tod_cleanse.layers.tod_context`,
        positions in ``keys``), else by key (its keys), instead of multiplying the
        batch by ``components``: on Fashion-MNIST that product was
        the members' largest operation. Only for batches that are the rows of ``X``
        as they are (the estimator does not call it when it augments batches); kept
        when it holds at most ``max_entries`` values. Not part of the module's state.

        Parameters
        ----------
        keys : torch.Tensor of int64, shape (n,), or None
            Unique instance keys of the rows of ``X``.
        X : array-like of shape (n, in_features)
            The inputs the members are fed in training, row ``i`` with key ``keys[i]``.
        max_entries : int, default=2**24
            Largest cache (``n * projected width`` values).
        """
        self.__dict__["_input_cache"] = None
        if keys is None or self.components is None:
            return
        n = int(keys.shape[0])
        if n == 0 or n * int(self.components.shape[1]) > max_entries:
            return
        sorted_keys, order = torch.sort(keys.to(self.components.device, torch.int64))
        if bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
            return
        X = torch.as_tensor(X).to(self.components.device, self.components.dtype)
        X = X.reshape(n, -1)
        offset = self._projection_offset()
        step = max(1, 2**20 // X.shape[1])
        rows = torch.cat([torch.addmm(offset, X[i:i + step], self.components)
                          for i in range(0, n, step)])  # row i: keys[i]'s projection
        self.__dict__["_input_cache"] = (sorted_keys, order, rows)

    def _projection_offset(self) -> torch.Tensor:
        """``-center @ components``: the projection ``(x - center) @ components`` is
        ``x @ components`` plus this."""
        return -(self.center @ self.components)

    def _cached_projection(self, x: torch.Tensor) -> torch.Tensor | None:
        """The batch's projected inputs, transposed, from :meth:`cache_inputs`, else None."""
        cache = self.__dict__.get("_input_cache")
        keys = context_keys() if cache is not None and self.training else None
        if keys is None or keys.shape[0] != x.shape[0]:
            return None
        sorted_keys, order, rows = cache
        positions = context_rows()  # the batch's training rows, when the loop gave them
        if positions is not None and positions.shape == keys.shape:
            return torch.index_select(rows, 0, positions.to(rows.device)).t()
        keys = keys.to(sorted_keys.device)
        pos = torch.searchsorted(sorted_keys, keys).clamp_(max=sorted_keys.numel() - 1)
        if not bool((sorted_keys[pos] == keys).all()):
            return None
        return rows[order[pos]].t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits, shape ``(B, K, n_classes)``.

        Computed transposed (rows last: ``(K * width, B)``, then ``(K, n_classes, B)``):
        on one CPU thread the narrow second layer is several times cheaper as
        ``weight2^T @ h^T`` than as ``h @ weight2``; dropout and ReLU are applied in
        place (``relu(z * s) = relu(z) * s`` for a scale ``s >= 0``). The result is a
        ``(B, K, n_classes)`` view of the ``(K, n_classes, B)`` logits, which
        :func:`member_loss` reads without a copy.
        """
        cached = self._cached_projection(x) if self.components is not None else None
        if cached is not None:
            xt = cached
        else:
            xt = x.reshape(x.shape[0], -1).t()
            if self.components is not None:  # (x - center) @ components, transposed
                xt = torch.addmm(self._projection_offset()[:, None], self.components.t(), xt)
        zt = torch.addmm(self.bias1[:, None], self.weight1.t(), xt)  # (K * width, B)
        if self.training and self.p > 0:
            scale = dropout_scale(zt.shape, self.p, self._dropout_generator(zt.device),
                                  zt.device, zt.dtype, self._scale_table(zt.device, zt.dtype))
            zt = zt.mul_(scale)
        ht = zt.relu_().view(self.n_folds, self.width, x.shape[0])
        out = torch.baddbmm(self.bias2[:, :, None], self.weight2.transpose(1, 2), ht)
        return out.permute(2, 0, 1)


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
    # (K, n_classes, B): contiguous for the members' own (transposed) logits
    logp = F.log_softmax(logits.float().permute(1, 2, 0), dim=1)
    picked = logp.gather(1, y[None, None, :].expand(k, 1, n)).squeeze(1)  # (K, B)
    trains = folds[None, :] != torch.arange(k, device=logits.device)[:, None]
    total = -(picked * trains).sum() / (k - 1)
    return total if reduction == "sum" else total / n


def member_loss_weights(folds: torch.Tensor, n_folds: int, n_rows: int,
                        reduction: str = "mean", scale: float = 1.0) -> torch.Tensor:
    """``(n_folds, len(folds))`` weights for :func:`weighted_member_loss`.

    ``weighted_member_loss(logits, y, w)`` with ``w = member_loss_weights(folds, K,
    B, reduction, scale)`` has the gradient of ``member_loss(logits, y, folds,
    reduction) * scale`` on a batch of ``B`` rows, bit for bit: entry ``(k, i)`` is
    ``-(((1 * scale) / B) / (K - 1))`` (``/ B`` only for ``"mean"``), the float32
    chain that back-propagation through :func:`member_loss` computes, where row ``i``
    trains member ``k``, and 0 where it does not. (Under a gradient scaler, the same
    as long as its scale is a power of two, as ``torch.amp.GradScaler``'s are.) The
    training loop builds them once per fit for the training rows, so that a step
    reads its rows' columns instead of recomputing the fold mask and the scalar
    chain (4 fewer operations forward and 4 fewer backward).

    Examples
    --------
    >>> import torch
    >>> member_loss_weights(torch.tensor([0, 1]), 2, 2).tolist()
    [[0.0, -0.5], [-0.5, 0.0]]
    """
    k = int(n_folds)
    c = torch.ones((), dtype=torch.float32, device=folds.device) * scale
    if reduction != "sum":
        c = c / n_rows
    c = -(c / (k - 1))
    trains = folds[None, :] != torch.arange(k, device=folds.device)[:, None]
    return torch.where(trains, c, torch.zeros((), dtype=c.dtype, device=c.device))


def weighted_member_loss(logits: torch.Tensor, y: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
    """``sum_{k, i} weights[k, i] * log p_k(y_i | x_i)`` over the members' ``(B, K,
    n_classes)`` logits: :func:`member_loss` with :func:`member_loss_weights` folded
    in (same gradient).

    Examples
    --------
    >>> import torch
    >>> logits, y = torch.randn(4, 3, 2), torch.tensor([0, 1, 1, 0])
    >>> folds = torch.tensor([0, 2, 1, 0])
    >>> w = member_loss_weights(folds, 3, 4)
    >>> bool(torch.isclose(weighted_member_loss(logits, y, w), member_loss(logits, y, folds)))
    True
    """
    n, k, _ = logits.shape
    logp = F.log_softmax(logits.float().permute(1, 2, 0), dim=1)
    picked = logp.gather(1, y[None, None, :].expand(k, 1, n)).squeeze(1)  # (K, B)
    return (picked * weights).sum()


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
