"""The key contract: raw instance keys in, 64-bit hashes inside, raw keys out.

A user (or an adapter) passes the raw keys of the training rows, e.g. an ``id``
column of strings, as ``instance_keys``. The estimator

* keeps them as given in ``instance_keys_`` (what ``issues_``, ``explain``,
  reports, ``issues.parquet`` and saved models show), and
* draws every row's masks from their 64-bit hashes, ``train_keys_``
  (:func:`tod_cleanse.masks.keys_to_int64`: integers map to themselves,
  anything else through a keyed BLAKE2b of its text, identical on every
  machine and process).

Adapters therefore pass raw keys and read raw keys back from the fitted
estimator (``estimator.instance_keys_``); nothing outside the estimator needs
the hashes, and nothing rebuilds keys from the argument it passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .masks import keys_to_int64

__all__ = ["check_instance_keys"]


def check_instance_keys(instance_keys: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate raw instance keys; return ``(raw_keys, hashed_keys)``.

    Parameters
    ----------
    instance_keys : array-like of shape (n_rows,) or None
        Unique, stable keys (integers or strings, e.g. an id column). ``None``:
        the row positions ``0..n_rows-1``.
    n_rows : int
        Rows of ``X``.

    Returns
    -------
    raw_keys : ndarray of shape (n_rows,)
        A copy of the keys as given (their dtype kept; a pandas column becomes
        its values).
    hashed_keys : ndarray of int64, shape (n_rows,)
        The keys the masks are drawn from.

    Raises
    ------
    ValueError
        Naming ``instance_keys``: wrong length or shape, duplicates (after
        hashing, so a key that collides with another is refused too), missing
        values.
    TypeError
        Booleans or non-integral floats.

    Examples
    --------
    >>> raw, hashed = check_instance_keys(["a", "b", "c"], 3)
    >>> raw.tolist(), hashed.dtype.name
    (['a', 'b', 'c'], 'int64')
    >>> check_instance_keys(None, 2)[0].tolist()
    [0, 1]
    >>> check_instance_keys(["a", "a"], 2)
    Traceback (most recent call last):
    ...
    ValueError: instance_keys must be unique: 1 duplicate(s), e.g. ['a', 'a'].
    """
    if instance_keys is None:
        positions = np.arange(n_rows, dtype=np.int64)
        return positions, positions.copy()
    values = getattr(instance_keys, "to_numpy", None)
    raw = np.array(values() if callable(values) else instance_keys, copy=True)
    if raw.ndim != 1 or raw.shape[0] != n_rows:
        raise ValueError(
            f"instance_keys must have one key per row of X ({n_rows}), got shape {raw.shape}."
        )
    hashed = keys_to_int64(raw)
    uniq, counts = np.unique(hashed, return_counts=True)
    if uniq.shape[0] != n_rows:
        dup = raw[np.isin(hashed, uniq[counts > 1])][:3].tolist()
        raise ValueError(
            f"instance_keys must be unique: {n_rows - uniq.shape[0]} duplicate(s), e.g. {dup}."
        )
    return raw, hashed
