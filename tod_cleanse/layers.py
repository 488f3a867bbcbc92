"""The :class:`TurnOverDropout` module and how it learns which instances are in a batch.

The instance keys of the current batch and the sub-network to use reach every
``TurnOverDropout`` module through a context manager, :func:`tod_context`, so no
``forward`` signature has to change. That is what lets ToD sit inside a model we
did not write (a ``transformers`` BERT, a ``torchvision`` VGG).

Modes
-----
``"seen"``
    Keep the units of each instance's own mask ``m_i`` (scaled by ``1 / (1 - p)``).
    Training always uses this mode.
``"flipped"``
    Keep the units of ``1 - m_i`` (scaled by ``1 / p``): the sub-network that never
    learned instance ``i``.
``"full"``
    Keep every unit, no scaling: ordinary inference on new data. A module in
    training mode under ``"full"`` is ordinary (random) dropout at rate ``p``,
    which is how an estimator with ``turn_over=False`` trains the same architecture
    without ToD, as a baseline.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .masks import key_mask

__all__ = ["TurnOverDropout", "tod_context", "context_keys", "context_rows", "insert_tod",
           "tod_modules", "MODES"]

MODES = ("seen", "flipped", "full")


@dataclass(frozen=True)
class _ToDState:
    keys: torch.Tensor | None
    mode: str
    cycle: bool = False
    rows: torch.Tensor | None = None


_STATE: contextvars.ContextVar[_ToDState | None] = contextvars.ContextVar(
    "tod_state", default=None
)


@contextlib.contextmanager
def tod_context(keys: torch.Tensor | None, mode: str, cycle: bool = False,
                rows: torch.Tensor | None = None) -> Iterator[None]:
    """Tell every :class:`TurnOverDropout` module which instances and sub-network to use.

    Parameters
    ----------
    keys : torch.Tensor of int64, shape (B,), or None
        Instance keys of the rows of the batch (``None`` only for ``mode="full"``).
    mode : {"seen", "flipped", "full"}
        Which sub-network to run.
    cycle : bool, default=False
        Allow a batch of ``r * B`` rows, row ``j`` taking ``keys[j % B]``. Scoring
        uses it to run ``r`` targets against ``B`` training masks while hashing
        each mask once.
    rows : torch.Tensor of int64, shape (B,), or None
        The batch's positions in the training rows whose keys were given, in
        that order, to the caches (:meth:`TurnOverDropout.cache_masks`,
        :meth:`~tod_cleanse.folds.OutOfFoldMembers.cache_inputs`): ``keys ==
        cached_keys[rows]``. A speed hint for the training loop, which builds the
        caches and opens the contexts: a cache then reads row ``rows[j]`` instead of
        looking ``keys[j]`` up. Without it (or without a cache) keys are looked up.

    Examples
    --------
    >>> import torch
    >>> layer = TurnOverDropout(p=0.5, layer_seed=0).eval()
    >>> x = torch.ones(2, 8)
    >>> with tod_context(torch.tensor([0, 1]), "seen"):
    ...     seen = layer(x)
    >>> with tod_context(torch.tensor([0, 1]), "flipped"):
    ...     flipped = layer(x)
    >>> bool(((seen > 0) ^ (flipped > 0)).all())  # the two sub-networks are disjoint
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode != "full" and keys is None:
        raise ValueError(f"mode={mode!r} needs the instance keys of the batch.")
    token = _STATE.set(_ToDState(keys=keys, mode=mode, cycle=cycle, rows=rows))
    try:
        yield
    finally:
        _STATE.reset(token)


def context_keys() -> torch.Tensor | None:
    """Instance keys of the active :func:`tod_context` (``None`` outside one).

    Examples
    --------
    >>> import torch
    >>> with tod_context(torch.tensor([4, 2]), "seen"):
    ...     context_keys().tolist()
    [4, 2]
    >>> context_keys() is None
    True
    """
    state = _STATE.get()
    return None if state is None else state.keys


def context_rows() -> torch.Tensor | None:
    """Training-row positions of the active :func:`tod_context` (``None`` when it has none).

    Examples
    --------
    >>> import torch
    >>> with tod_context(torch.tensor([40, 20]), "seen", rows=torch.tensor([4, 2])):
    ...     context_rows().tolist()
    [4, 2]
    >>> with tod_context(torch.tensor([40, 20]), "seen"):
    ...     context_rows() is None
    True
    """
    state = _STATE.get()
    return None if state is None else state.rows


class TurnOverDropout(nn.Module):
    """Dropout whose mask is fixed per training instance (turn-over dropout [1]_).

    Parameters
    ----------
    p : float, default=0.5
        Drop rate: each instance's own sub-network keeps a fraction ``1 - p`` of the
        units, the flipped one keeps the other ``p``.
    layer_seed : int, default=0
        Distinguishes the ToD layers of one network (set by :func:`insert_tod`).
    dim : int, default=-1
        Dimension that indexes the units (``-1`` for features / hidden states, ``1``
        for the channels of a convolution).
    seed : int, default=0
        Global mask seed shared by the layers of one network.
    n_groups : int or None, default=None
        Share one mask among all the instances of a hashed group.
    inner_p : float, default=0.0
        Ordinary dropout applied, during training only, inside the instance's own
        sub-network (a regulariser: it never touches the flipped units).

    References
    ----------
    .. [1] Kobayashi et al., *Efficient Estimation of Influence of a Training
       Instance*, SustaiNLP 2020, arXiv:2012.04207.

    Examples
    --------
    >>> import torch
    >>> layer = TurnOverDropout(p=0.25, layer_seed=3)
    >>> with tod_context(torch.arange(4), "seen"):
    ...     y = layer(torch.ones(4, 1000))
    >>> round((y == 0).float().mean().item(), 2)
    0.25
    """

    def __init__(
        self,
        p: float = 0.5,
        layer_seed: int = 0,
        dim: int = -1,
        seed: int = 0,
        n_groups: int | None = None,
        inner_p: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0.0 < p < 1.0:
            raise ValueError(f"TurnOverDropout: p must be in (0, 1), got {p!r}.")
        if not 0.0 <= inner_p < 1.0:
            raise ValueError(f"TurnOverDropout: inner_p must be in [0, 1), got {inner_p!r}.")
        self.p = float(p)
        self.layer_seed = int(layer_seed)
        self.dim = int(dim)
        self.seed = int(seed)
        self.n_groups = n_groups
        self.inner_p = float(inner_p)

    def extra_repr(self) -> str:
        return f"p={self.p}, layer_seed={self.layer_seed}, dim={self.dim}"

    def cache_masks(self, keys: torch.Tensor | None, max_entries: int = 2**26) -> None:
        """Remember the masks of ``keys`` (the training set), or forget them (``None``).

        Training visits every key once per epoch; hashing its masks again each
        time costs as much as a small MLP's forward pass. The table (one bool per
        key and unit, built on the first forward pass, row ``i`` for ``keys[i]``) is
        only kept when it holds at most ``max_entries`` values; masks of other keys
        are hashed as usual. A :func:`tod_context` opened with ``rows`` (positions in
        ``keys``) reads its rows directly; otherwise keys are looked up. The cache
        is not part of the module's state (the estimator clears it after training).
        """
        if keys is None:
            self._cache = None
            return
        keys = keys.to(torch.int64)
        sorted_keys, order = torch.sort(keys)
        self._cache = {"keys": keys, "sorted": sorted_keys, "order": order,
                       "max_entries": int(max_entries), "tables": {}}

    def _cached_table(self, cache: dict, width: int, device: torch.device) -> torch.Tensor:
        """The cache's (n_keys, width) seen masks on ``device``, built on first use."""
        table = cache["tables"].get((width, device))
        if table is None:  # (key_mask hashes it a cache-sized block of keys at a time)
            table = key_mask(cache["keys"].to(device), width, self.p, self.layer_seed,
                             self.seed, self.n_groups)
            cache["tables"][(width, device)] = table
        return table

    def mask(self, keys: torch.Tensor, width: int, flipped: bool,
             rows: torch.Tensor | None = None) -> torch.Tensor:
        """Boolean (B, width) mask of the seen or flipped sub-network.

        ``rows``: the keys' positions in the keys given to :meth:`cache_masks`
        (``keys == cached_keys[rows]``, see :func:`tod_context`), read directly
        from the cache when there is one.
        """
        m = None
        cache = getattr(self, "_cache", None)
        if cache is not None and cache["keys"].numel() * width <= cache["max_entries"]:
            table = self._cached_table(cache, width, keys.device)
            if rows is not None and rows.shape == keys.shape:
                m = torch.index_select(table, 0, rows.to(keys.device))
            else:
                ck = cache["sorted"].to(keys.device)
                pos = torch.searchsorted(ck, keys).clamp_(max=ck.numel() - 1)
                if bool((ck[pos] == keys).all()):
                    m = table[cache["order"].to(keys.device)[pos]]
        if m is None:
            m = key_mask(keys, width, self.p, self.layer_seed, self.seed, self.n_groups)
        return ~m if flipped else m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = _STATE.get()
        if state is None and self.training:
            raise RuntimeError(
                "TurnOverDropout needs the instance keys during training: wrap the "
                "forward pass in `with tod_context(keys, 'seen'):`."
            )
        if state is None or state.mode == "full":
            # Training in "full" mode is ordinary dropout at rate p: the baseline
            # "same architecture trained without ToD".
            return F.dropout(x, self.p, training=self.training)
        keys = state.keys
        n_keys, n_rows = keys.shape[0], x.shape[0]
        reps = n_rows // n_keys if n_keys else 0
        if n_keys != n_rows and not (state.cycle and reps * n_keys == n_rows):
            raise RuntimeError(
                f"tod_context holds {n_keys} keys but the batch has {n_rows} rows."
            )
        dim = self.dim % x.ndim
        flipped = state.mode == "flipped"
        m = self.mask(keys.to(x.device), x.shape[dim], flipped, state.rows)
        keep = self.p if flipped else 1.0 - self.p
        scale = m.to(x.dtype) / keep
        if self.training and self.inner_p > 0 and not flipped:
            inner = torch.rand_like(scale) >= self.inner_p
            scale = scale * inner.to(x.dtype) / (1.0 - self.inner_p)
        shape = [n_keys] + [1] * (x.ndim - 1)
        shape[dim] = x.shape[dim]
        if reps > 1:  # cycle: view the batch as (reps, n_keys, ...) and broadcast the masks
            return (x.view(reps, n_keys, *x.shape[1:]) * scale.view(shape)).view(x.shape)
        return x * scale.view(shape)


def tod_modules(module: nn.Module) -> list[TurnOverDropout]:
    """All :class:`TurnOverDropout` layers of ``module``, in registration order."""
    return [m for m in module.modules() if isinstance(m, TurnOverDropout)]


def insert_tod(
    model: nn.Module,
    where: Callable[[str, nn.Module], bool] | None = None,
    p: float = 0.5,
    dim: int = -1,
    seed: int = 0,
    n_groups: int | None = None,
    inner_p: float = 0.0,
    first_layer_seed: int = 0,
) -> list[str]:
    """Replace modules of an existing torch model with :class:`TurnOverDropout`, in place.

    Parameters
    ----------
    model : torch.nn.Module
        Model to modify.
    where : callable ``(qualified_name, module) -> bool``, optional
        Which modules to replace. Default: every ``nn.Dropout``.
    p, dim, seed, n_groups, inner_p : see :class:`TurnOverDropout`.
    first_layer_seed : int, default=0
        Layer seeds are ``first_layer_seed, first_layer_seed + 1, ...`` in
        registration order.

    Returns
    -------
    list of str
        Qualified names of the replaced modules.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    >>> insert_tod(net, p=0.5)
    ['2']
    >>> type(net[2]).__name__
    'TurnOverDropout'
    """
    if where is None:

        def where(name: str, mod: nn.Module) -> bool:
            return isinstance(mod, nn.Dropout)

    targets = [(name, mod) for name, mod in model.named_modules() if name and where(name, mod)]
    for i, (name, _) in enumerate(targets):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(
            parent,
            attr,
            TurnOverDropout(
                p=p,
                layer_seed=first_layer_seed + i,
                dim=dim,
                seed=seed,
                n_groups=n_groups,
                inner_p=inner_p,
            ),
        )
    return [name for name, _ in targets]
