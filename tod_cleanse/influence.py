"""Batched, chunked turn-over dropout influence: ``I(z_t, z_i)`` for many pairs at once.

Two estimates:

``"exact"`` (:func:`iter_influence_blocks`)
    The paper's [1]_ ``L(z_t; flipped_i) - L(z_t; seen_i)``: two forward passes per pair,
    needs only the training keys.
``"gradient"`` (:func:`iter_gradient_influence_blocks`)
    The cosine between the target's loss gradient and training row ``i``'s loss
    gradient, both in the full network (every unit, inference scaling), taken on the
    weights and bias of the network's *first* ``nn.Linear`` fed a 2-D input (for an
    MLP, the input layer). That layer's per-row gradient is the outer product
    ``delta [a, 1]^T``, so a pair costs
    ``cos(delta_t, delta_i) * cos([a_t, 1], [a_i, 1])``; the output error
    ``softmax - onehot`` is computed in float64 with the label's entry written as
    minus the sum of the others, so that confidently fitted rows keep the direction
    of their (tiny) gradient. Needs the training rows.

    Why this form (linear datamodeling score, ``examples/benchmarks/results/influence/``):
    the earlier estimate, the plain dot product over all layers in the row's seen
    sub-network, was dominated by the few rows with large gradients and, on
    Fashion-MNIST, by the seen sub-network's output error, which is a memorisation
    residual (training loss 0.01 in the seen sub-network against 0.73 in the full
    network); LDS 0.054 there, below a full-network Grad-Dot (0.184). Normalising
    the row's gradient (Grad-Cos, [2]_, [3]_) and keeping the first layer (as [4]_
    found for language models) gives 0.25-0.26 on that cell and 0.69-0.71 on digits
    (TracIn with 4 checkpoints: 0.198 and 0.519; TRAK-1: 0.139 and 0.122). Taking
    the row's gradient in the full network rather than in its seen sub-network
    (the form until issue 12 step 4) is higher on all 6 cells measured, by
    0.005-0.036 paired over targets on 17 of 18 (cell, fit) pairs (the 18th: -0.0003),
    and costs one pass without masks. The ToD masks therefore do not enter this
    estimate; they do in ``"exact"``, in ``self_influence_`` and in ``oos_proba_``.
    A target's scores are scaled by a positive constant (its own gradient norm),
    which changes no ranking within a target but weighs every target alike under
    ``reduce="sum"``.

``"exact"`` in blocks: for a block of targets ``T`` and a block of training keys ``K``, the
mask-independent trunk output of each target is computed once, repeated ``|K|``
times, and the head runs on all ``|T| x |K|`` (target, mask) pairs in one
vectorised forward pass per sub-network (seen, flipped). Memory is bounded by
``pairs_per_batch`` pairs at a time, whatever the numbers of targets and
training rows; only the returned ``(|T|, n_train)`` block is kept.

References
----------
.. [1] Kobayashi et al., *Efficient Estimation of Influence of a Training Instance*,
   SustaiNLP 2020, arXiv:2012.04207.
.. [2] Charpiat et al., *Input Similarity from the Neural Network Perspective*,
   NeurIPS 2019.
.. [3] Hammoudeh and Lowd, *Identifying a Training-Set Attack's Target Using
   Renormalized Influence Estimation*, CCS 2022, arXiv:2201.10055.
.. [4] Yeh et al., *First is Better Than Last for Language Data Influence*,
   NeurIPS 2022, arXiv:2202.11844.
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
           "exact_output_error", "first_layer_directions", "pair_batches", "resolve_estimate",
           "ESTIMATES"]

#: The influence estimates :meth:`score_influence` computes (it also accepts ``"auto"``,
#: see :func:`resolve_estimate`).
ESTIMATES = ("exact", "gradient")


def resolve_estimate(estimate: str, train_set: Any) -> str:
    """The estimate that ``estimate`` names; ``"auto"``: ``"gradient"`` given the training
    rows (``train_set``), else ``"exact"``.

    ``"auto"`` is the default of ``score_influence``, ``iter_influence`` and ``explain``:
    the faithful estimate whenever it can be computed, and the paper's (which needs
    only the fitted model) otherwise, so that ``score_influence(X_t, y_t)`` keeps its
    meaning, ``I(z_t, z_i)`` with ``diag(score_influence(X_train, y_train)) ==
    self_influence_``, and the callers that pass no training rows (the cleanser's
    ``method="eval_influence"``) are unchanged.

    Examples
    --------
    >>> resolve_estimate("auto", None), resolve_estimate("auto", ([[0.0]], [0]))
    ('exact', 'gradient')
    >>> resolve_estimate("exact", ([[0.0]], [0]))
    'exact'
    """
    if estimate == "auto":
        return "gradient" if train_set is not None else "exact"
    if estimate not in ESTIMATES:
        raise ValueError(f"estimate must be one of {('auto', *ESTIMATES)}, got {estimate!r}.")
    return estimate

#: Factors = list over linear layers (forward order) of ``(a, delta, has_bias)``.
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


def exact_output_error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``softmax(logits) - onehot(y)`` in float64, the label's entry as ``-sum(others)``.

    That entry, ``p_y - 1``, rounds to 0 once ``p_y`` is within machine epsilon of 1
    (in float32 for a margin of about 17 nats), while the others stay exact; writing
    it as minus their sum keeps the whole vector exact.

    Examples
    --------
    >>> import torch
    >>> err = exact_output_error(torch.tensor([[40.0, 0.0]]), torch.tensor([0]))
    >>> bool(err[0, 0] < 0), float(err.sum())
    (True, 0.0)
    """
    p = torch.softmax(logits.detach().double(), dim=1)
    rest = p.scatter(1, y[:, None], 0.0).sum(1, keepdim=True)
    return p.scatter(1, y[:, None], -rest)


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
    list of ``(a, delta, has_bias)``, in the order the forward pass runs the layers
        ``a`` (B, in) the layer's input, ``delta`` (B, out, float64) the gradient of
        the row's loss w.r.t. the layer's output: the row's weight gradient is
        ``delta a^T``. The output error is :func:`exact_output_error`, backpropagated
        at unit norm per row and rescaled in float64, so tiny gradients of
        confidently fitted rows keep their direction instead of underflowing.

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
    store: dict[int, tuple[nn.Module, torch.Tensor, torch.Tensor]] = {}
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]

    def hook(mod: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        if inp[0].ndim == 2 and out.requires_grad and id(mod) not in store:
            store[id(mod)] = (mod, inp[0].detach(), out)

    handles = [m.register_forward_hook(hook) for m in linears]
    try:
        with torch.enable_grad():
            logits = forward()
    finally:
        for h in handles:
            h.remove()
    used = list(store.values())  # forward order
    if not used:
        raise ValueError(
            "estimate='gradient' needs at least one nn.Linear layer fed a 2-D "
            f"input in the network; {type(net).__name__} has none."
        )
    # float64 work happens on the CPU for devices without float64 (Apple MPS)
    work = torch.device("cpu") if logits.device.type == "mps" else logits.device
    err = exact_output_error(logits.to(work), y.to(work))
    scale = err.norm(dim=1, keepdim=True)
    unit = err / scale.clamp_min(torch.finfo(torch.float64).tiny)
    with torch.enable_grad():
        deltas = torch.autograd.grad(logits, [out for _, _, out in used],
                                     grad_outputs=unit.to(logits.device, logits.dtype))
    return [(a.to(work).float(), d.detach().to(work).double() * scale, m.bias is not None)
            for (m, a, _), d in zip(used, deltas, strict=True)]


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm in float64, returned as float32 (zero rows stay zero)."""
    x = x.double()
    return (x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)).float()


def first_layer_directions(f: Factors) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit ``([a, 1], delta)`` of the first layer: their products' dot is the cosine.

    The first layer's per-row weight-and-bias gradient is ``delta [a, 1]^T`` (``a``
    without the 1 when the layer has no bias), whose norm is
    ``||delta|| ||[a, 1]||``, so the cosine of two rows' gradients is
    ``cos(delta_t, delta_i) * cos([a_t, 1], [a_i, 1])``.
    """
    a, d, bias = f[0]
    if bias:
        a = torch.cat([a, torch.ones_like(a[:, :1])], dim=1)
    return _unit_rows(a), _unit_rows(d)


def _direction_cos(ft: tuple[torch.Tensor, torch.Tensor],
                   fi: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``(len targets, len rows)`` cosines of the first layer's gradients.

    Clamped to ``[-1, 1]``: a row with itself can round to just above 1 in float32.
    """
    return ((ft[1] @ fi[1].T) * (ft[0] @ fi[0].T)).clamp_(-1.0, 1.0)


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

    ``block[a, i]`` is the cosine, in ``[-1, 1]``, between the first layer's loss
    gradients of target ``a`` and training row ``i`` (:func:`first_layer_directions`).

    Parameters
    ----------
    target_factors, train_factors : callable ``idx -> factors``
        :func:`gradient_factors` of the targets and of the training rows at
        positions ``idx`` (the package takes both in the full network).
    n_targets, n_train : int
    pairs_per_batch : int, default=4096
        Training rows per factor batch, and (target, row) pairs per block.
    max_cached : int, default=2**26
        The training rows' first-layer directions are computed once and kept when
        they hold at most this many numbers; otherwise they are recomputed for every
        block of targets, so memory stays bounded whatever ``n_train``.
    verbose : bool
        Show a progress bar.
    """
    row_bs = max(1, min(n_train, pairs_per_batch))
    t_bs = max(1, min(n_targets, pairs_per_batch * 16 // max(n_train, 1)))
    chunks = [np.arange(k0, min(n_train, k0 + row_bs)) for k0 in range(0, n_train, row_bs)]

    def rows_dirs(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return first_layer_directions(train_factors(idx))

    cached: list[tuple[torch.Tensor, torch.Tensor]] | None = None
    if chunks:
        first = rows_dirs(chunks[0])
        width = first[0].shape[1] + first[1].shape[1]
        if width * n_train <= max_cached:
            parts = [first] + [rows_dirs(c) for c in chunks[1:]]
            cached = [(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))]
            chunks = [np.arange(n_train)]
    bar = tqdm(total=-(-n_targets // t_bs), desc="influence", unit="block",
               disable=not verbose or n_targets <= t_bs, leave=False)
    try:
        with torch.no_grad():
            for t0 in range(0, n_targets, t_bs):
                rows = np.arange(t0, min(n_targets, t0 + t_bs))
                ft = first_layer_directions(target_factors(rows))
                block = np.empty((rows.shape[0], n_train), dtype=np.float64)
                for j, idx in enumerate(chunks):
                    fi = cached[j] if cached is not None else rows_dirs(idx)
                    block[:, idx[0]:idx[-1] + 1] = _direction_cos(ft, fi).double().cpu().numpy()
                bar.update(1)
                yield rows, block
    finally:
        bar.close()
