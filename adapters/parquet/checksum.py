"""Order-independent checksums of instance keys, combinable across partitions.

A multiset of keys is summarised by its count and by the sum and the xor, modulo
``2**64``, of ``splitmix64(int64 key)``. The checksum of a union of disjoint parts
is the :meth:`KeyChecksum.combine` of the parts' checksums, so that workers can
each checksum their own files and a coordinator can prove that ``kept`` and
``dropped`` partition the input without ever holding all keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tod_cleanse.masks import keys_to_int64

__all__ = ["KeyChecksum", "key_checksum", "splitmix64"]

_U64 = (1 << 64) - 1


def splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser of uint64 values (wrapping arithmetic).

    Examples
    --------
    >>> int(splitmix64(np.array([0], dtype=np.uint64))[0])
    16294208416658607535
    """
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@dataclass
class KeyChecksum:
    """Count, sum and xor of ``splitmix64(key)`` of a multiset of int64 keys.

    Parameters
    ----------
    rows : int, default=0
    hash_sum : int, default=0
        Sum modulo ``2**64``.
    hash_xor : int, default=0

    Examples
    --------
    >>> a = KeyChecksum().update(np.array([1, 2], dtype=np.int64))
    >>> b = KeyChecksum().update(np.array([3], dtype=np.int64))
    >>> a + b == KeyChecksum().update(np.array([3, 1, 2], dtype=np.int64))
    True
    >>> KeyChecksum.from_dict((a + b).as_dict()) == a + b
    True
    """

    rows: int = 0
    hash_sum: int = 0
    hash_xor: int = 0

    def update(self, keys: np.ndarray) -> KeyChecksum:
        """Add int64 ``keys`` (already hashed with :func:`keys_to_int64`); returns self."""
        keys = np.asarray(keys, dtype=np.int64)
        if keys.shape[0] == 0:
            return self
        h = splitmix64(keys.view(np.uint64))
        self.rows += int(h.shape[0])
        self.hash_sum = (self.hash_sum + int(h.sum(dtype=np.uint64))) & _U64
        self.hash_xor ^= int(np.bitwise_xor.reduce(h))
        return self

    def __add__(self, other: KeyChecksum) -> KeyChecksum:
        """Checksum of the union of two disjoint multisets."""
        return KeyChecksum(self.rows + other.rows, (self.hash_sum + other.hash_sum) & _U64,
                           self.hash_xor ^ other.hash_xor)

    @classmethod
    def combine(cls, parts: Iterable[KeyChecksum]) -> KeyChecksum:
        """Checksum of the union of disjoint parts (e.g. one per file or worker)."""
        total = cls()
        for part in parts:
            total = total + part
        return total

    @classmethod
    def of_keys(cls, keys: Sequence | np.ndarray) -> KeyChecksum:
        """Checksum of raw keys (integers or strings), hashed like instance keys."""
        return cls().update(keys_to_int64(np.asarray(keys)))

    def as_dict(self) -> dict[str, Any]:
        """``rows``, ``key_hash_sum`` and ``key_hash_xor`` (16 hex digits), as in summary.json."""
        return {"rows": self.rows, "key_hash_sum": f"{self.hash_sum:016x}",
                "key_hash_xor": f"{self.hash_xor:016x}"}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyChecksum:
        """Inverse of :meth:`as_dict`."""
        return cls(int(d["rows"]), int(d["key_hash_sum"], 16), int(d["key_hash_xor"], 16))


def key_checksum(keys: Sequence | np.ndarray) -> dict[str, Any]:
    """Order-independent checksum of instance keys, as recorded in ``summary.json``.

    Keys are turned into int64 with :func:`tod_cleanse.masks.keys_to_int64` (integers
    as they are, other keys by BLAKE2b), mixed with splitmix64, and summed and
    xor-ed modulo ``2**64``. The checksum of a union of disjoint sets is the
    sum (and xor) of their checksums (:meth:`KeyChecksum.combine`), which is how
    the partition check works.

    Parameters
    ----------
    keys : array-like of shape (n,)
        Integer or string keys.

    Returns
    -------
    dict
        ``rows``, ``key_hash_sum`` and ``key_hash_xor`` (16 hex digits each).

    Examples
    --------
    >>> key_checksum([3, 1, 2]) == key_checksum([2, 3, 1])
    True
    >>> key_checksum(["a", "b"])["rows"]
    2
    """
    return KeyChecksum.of_keys(keys).as_dict()
