"""Seeded label noise for experiments: the flipped-row mask is the ground truth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flip_labels"]


def flip_labels(
    y: Any,
    rate: float,
    random_state: int | None = 0,
    pairs: Mapping[Any, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Flip a fraction of labels, reproducibly.

    Parameters
    ----------
    y : array-like of shape (n,)
        Clean labels.
    rate : float in [0, 1)
        Fraction of rows to flip, drawn without replacement.
    random_state : int or None, default=0
    pairs : mapping label -> label, optional
        Class-conditional noise: a flipped row of class ``a`` becomes ``pairs[a]``
        (e.g. shirt <-> T-shirt); rows are drawn only from classes in ``pairs``.
        Default: uniform noise, a flipped row takes one of the *other* classes
        uniformly, so every flipped label is wrong.

    Returns
    -------
    y_noisy : ndarray of shape (n,)
    flipped : ndarray of bool, shape (n,)

    Examples
    --------
    >>> y_noisy, flipped = flip_labels(np.arange(10) % 2, 0.2, random_state=0)
    >>> int(flipped.sum()), bool((y_noisy[flipped] != (np.arange(10) % 2)[flipped]).all())
    (2, True)
    """
    if not 0 <= float(rate) < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}.")
    y = np.asarray(y)
    n = y.shape[0]
    rng = np.random.default_rng(random_state)
    y_noisy = y.copy()
    flipped = np.zeros(n, dtype=bool)
    if pairs is None:
        classes = np.unique(y)
        if classes.shape[0] < 2:
            raise ValueError("y needs at least two classes to flip labels.")
        idx = rng.choice(n, size=int(round(rate * n)), replace=False)
        pos = np.searchsorted(classes, y[idx])
        shift = rng.integers(1, classes.shape[0], size=idx.shape[0])
        y_noisy[idx] = classes[(pos + shift) % classes.shape[0]]
    else:
        eligible = np.flatnonzero(np.isin(y, list(pairs)))
        size = min(int(round(rate * n)), eligible.shape[0])
        idx = rng.choice(eligible, size=size, replace=False)
        y_noisy[idx] = [pairs[v] for v in y[idx].tolist()]
    flipped[idx] = y_noisy[idx] != y[idx]
    return y_noisy, flipped
