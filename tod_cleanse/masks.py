"""Instance key -> turn-over dropout mask.

A mask is a pure function of ``(key, seed, layer_seed, width, p)``. It is computed
on the fly, on the tensor's device, with a counter-based integer hash, so it needs
no storage, never depends on batch position and is identical on every process
and machine (no Python ``hash()``, which is salted per process, and no global RNG).

The hash is Chris Wellons' *lowbias32* 32-bit integer mixer. All arithmetic is
done on non-negative ``int64`` tensors whose intermediate products stay below
``2**63``, so no step relies on signed overflow: results are bit-identical on
CPU and CUDA.

References
----------
.. [1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. *Efficient Estimation of
   Influence of a Training Instance*. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["hash32", "key_mask", "keys_to_int64", "keep_fraction", "flip"]

_M32 = 0xFFFFFFFF
_C1 = 0x7FEB352D
_C2 = 0x846CA68B
_GOLDEN = 0x9E3779B9


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32`` without int64 overflow."""
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _M32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Mix 32-bit unsigned values held in an ``int64`` tensor (lowbias32).

    Parameters
    ----------
    x : torch.Tensor of dtype int64
        Values in ``[0, 2**32)``.

    Returns
    -------
    torch.Tensor
        Hashed values in ``[0, 2**32)``, same shape and device.

    Examples
    --------
    >>> import torch
    >>> hash32(torch.tensor([0, 1, 2])).tolist()
    [0, 1753845952, 3507691905]
    """
    x = x & _M32
    x = x ^ (x >> 16)
    x = _mul32(x, _C1)
    x = x ^ (x >> 15)
    x = _mul32(x, _C2)
    x = x ^ (x >> 16)
    return x


def _hash32_(x: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """:func:`hash32` of ``x`` in place (``tmp``: scratch of ``x``'s shape and dtype).

    The same integer operations without a new tensor for each: on a cache-sized
    chunk of a mask table it runs about 1.5x faster."""
    x.bitwise_and_(_M32)
    for shift, c in ((16, _C1), (15, _C2), (16, None)):
        torch.bitwise_right_shift(x, shift, out=tmp)
        x.bitwise_xor_(tmp)
        if c is not None:  # x = (x * c) mod 2**32, as _mul32
            torch.bitwise_right_shift(x, 16, out=tmp)
            tmp.mul_(c).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
            x.bitwise_and_(0xFFFF).mul_(c).add_(tmp).bitwise_and_(_M32)
    return x


#: Entries of the (keys x units) hash computed at once by :func:`key_mask` on a CPU:
#: 1 MB of int64 intermediates stay in the cache (a 3000 x 512 table: 11 ms against
#: 81 ms in one piece, one thread). Other devices take bigger pieces (memory bound).
_CPU_CHUNK = 2**17
_DEVICE_CHUNK = 2**22


def keys_to_int64(keys: Sequence | np.ndarray) -> np.ndarray:
    """Turn user instance keys into stable ``int64`` keys.

    Integer keys are kept as they are. Any other key (strings, bytes, UUIDs...)
    is hashed with BLAKE2b of its ``str()`` UTF-8 bytes, which is the same on
    every process and machine.

    Parameters
    ----------
    keys : array-like of shape (n,)
        Integer or string-like keys.

    Returns
    -------
    ndarray of int64, shape (n,)

    Examples
    --------
    >>> keys_to_int64([3, 1, 2]).tolist()
    [3, 1, 2]
    >>> a = keys_to_int64(["row-1", "row-2"])
    >>> bool(a[0] != a[1]) and a.dtype.name
    'int64'
    """
    arr = np.asarray(keys)
    if arr.ndim != 1:
        raise ValueError(f"instance_keys must be one-dimensional, got shape {arr.shape}.")
    if arr.dtype.kind in "iu":
        if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError("instance_keys: unsigned keys must fit in int64.")
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        raise TypeError("instance_keys must be integers or strings, got booleans.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError("instance_keys must be integers or strings, got non-integral floats.")
        return arr.astype(np.int64)
    out = np.empty(arr.shape[0], dtype=np.int64)
    for i, k in enumerate(arr.tolist()):
        if k is None or (isinstance(k, float) and np.isnan(k)):
            raise ValueError(f"instance_keys contains a missing value at position {i}.")
        digest = hashlib.blake2b(str(k).encode("utf-8"), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little", signed=True)
    return out


def keep_fraction(p: float, flipped: bool) -> float:
    """Expected fraction of units kept by the seen (``1 - p``) or flipped (``p``) mask."""
    return p if flipped else 1.0 - p


def key_mask(
    keys: torch.Tensor,
    width: int,
    p: float,
    layer_seed: int,
    seed: int = 0,
    n_groups: int | None = None,
) -> torch.Tensor:
    """Boolean turn-over dropout masks for a batch of instance keys.

    Unit ``j`` of instance ``k`` is *dropped* with probability ``p``
    (``hash(k, seed, layer_seed, j) / 2**32 < p``), independently across units,
    layers and keys. The flipped mask is ``~key_mask(...)``.

    Parameters
    ----------
    keys : torch.Tensor of int64, shape (B,)
        Instance keys; the masks are computed on ``keys.device``.
    width : int
        Number of units in the layer.
    p : float
        Drop rate in ``(0, 1)``.
    layer_seed : int
        Distinguishes the layers of one network.
    seed : int, default=0
        Global mask seed (the estimator's ``mask_seed``).
    n_groups : int or None, default=None
        If given, keys are first hashed into ``n_groups`` buckets and instances in
        one bucket share a mask.

    Returns
    -------
    torch.Tensor of bool, shape (B, width)
        ``True`` where the unit belongs to the instance's own (seen) sub-network.

    Examples
    --------
    >>> import torch
    >>> m = key_mask(torch.arange(1000), width=256, p=0.3, layer_seed=1)
    >>> round(1 - m.float().mean().item(), 2)
    0.3
    >>> bool(torch.equal(m, key_mask(torch.arange(1000), 256, 0.3, 1)))
    True
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}.")
    keys = keys.to(torch.int64)
    lo = keys & _M32
    hi = (keys >> 32) & _M32
    h = hash32(lo ^ hash32(hi ^ hash32(torch.full_like(keys, (seed * _GOLDEN) & _M32))))
    complement = None
    if n_groups is not None:
        g = hash32(h) % int(n_groups)
        # Groups come in complementary pairs (2a, 2a + 1): the flipped sub-network
        # of one group is the seen sub-network of its partner, a sub-network that
        # was trained as a whole (on the partner's instances) and never saw this one.
        complement = (g & 1).bool()
        h = g >> 1
    h = hash32(h ^ ((layer_seed * _C1 + 0x5BD1E995) & _M32))
    units = torch.arange(width, device=keys.device, dtype=torch.int64)
    u = hash32((units * _GOLDEN + 0x632BE5AB) & _M32)
    threshold = int(round(p * 2**32))
    n = keys.shape[0]
    keep = torch.empty((n, width), dtype=torch.bool, device=keys.device)
    chunk = _CPU_CHUNK if keys.device.type == "cpu" else _DEVICE_CHUNK
    step = max(1, chunk // max(width, 1))
    tmp = torch.empty((min(step, n), width), dtype=torch.int64, device=keys.device)
    for i in range(0, n, step):  # r = hash32(h ^ u), a cache-sized block of keys at a time
        r = _hash32_(h[i:i + step, None] ^ u[None, :], tmp[:min(step, n - i)])
        torch.ge(r, threshold, out=keep[i:i + step])
    if complement is not None:
        keep = keep ^ complement[:, None]
    return keep


def flip(mask: torch.Tensor) -> torch.Tensor:
    """The flipped mask ``1 - m``: the sub-network that never saw the instance."""
    return ~mask
