"""Seeded label noise for experiments: the flipped-row mask is the ground truth.

:func:`flip_labels` is the one label-flip function of the project (demo, CLI
``report``, cleanlab comparison, Parquet demo, examples and benchmarks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["flip_labels"]


def _check_rate(rate: Any) -> float:
    if isinstance(rate, bool | np.bool_) or not isinstance(rate, int | float | np.number):
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}.")
    if not 0 <= float(rate) < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}.")
    return float(rate)


def _draw_rows(rng: np.random.Generator, eligible: np.ndarray, rate: float, n: int,
               sampling: str) -> np.ndarray:
    if sampling == "exact":
        size = min(int(round(rate * n)), eligible.shape[0])
        return rng.choice(eligible, size=size, replace=False)
    if sampling == "bernoulli":
        return eligible[rng.random(eligible.shape[0]) < rate]
    raise ValueError(f"sampling must be 'exact' or 'bernoulli', got {sampling!r}.")


def _uniform_classes(y: np.ndarray, classes: Any) -> np.ndarray:
    labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
    if labels.shape[0] < 2:
        raise ValueError("classes: uniform noise needs at least two classes to flip labels.")
    missing = np.setdiff1d(np.unique(y), labels)
    if missing.size:
        raise ValueError(f"classes misses labels of y: {missing[:5].tolist()}.")
    return labels


def _with_room_for(y: np.ndarray, new_values: np.ndarray) -> np.ndarray:
    """A copy of ``y`` whose dtype also holds ``new_values`` (no truncated strings)."""
    if new_values.size and y.dtype.kind in "US" and new_values.dtype.kind in "US":
        return y.astype(np.result_type(y.dtype, new_values.dtype))
    return y.copy()


def flip_labels(
    y: Any,
    rate: float,
    random_state: int | np.random.Generator | None = 0,
    pairs: Mapping[Any, Any] | None = None,
    *,
    classes: Any = None,
    sampling: str = "exact",
) -> tuple[np.ndarray, np.ndarray]:
    """Flip a fraction of labels, reproducibly; return the noisy labels and the flipped rows.

    Parameters
    ----------
    y : array-like of shape (n,)
        Clean labels (any type).
    rate : float in [0, 1)
        Fraction of rows to flip.
    random_state : int, numpy Generator or None, default=0
        Seed (or generator) of :func:`numpy.random.default_rng`.
    pairs : mapping label -> label, optional
        Class-conditional noise: a flipped row of class ``a`` becomes ``pairs[a]``
        (e.g. shirt <-> T-shirt); rows are drawn only from classes in ``pairs``.
        Default: uniform noise, a flipped row takes one of the *other* classes
        uniformly, so every flipped label is wrong.
    classes : array-like, optional
        Uniform noise: the label set to draw from (default: the classes of
        ``y``), e.g. every class of a dataset when a sample misses some.
    sampling : {"exact", "bernoulli"}, default="exact"
        ``"exact"`` flips ``round(rate * n)`` rows drawn without replacement
        (at most the rows eligible under ``pairs``); ``"bernoulli"`` flips each
        eligible row independently with probability ``rate``.

    Returns
    -------
    y_noisy : ndarray of shape (n,)
    flipped : ndarray of bool, shape (n,)
        Rows whose label changed (a pair ``a -> a`` changes nothing).

    Raises
    ------
    ValueError
        Naming ``rate``, ``pairs``, ``classes`` or ``sampling``.

    Examples
    --------
    >>> y = np.arange(10) % 2
    >>> y_noisy, flipped = flip_labels(y, 0.2, random_state=0)
    >>> int(flipped.sum()), bool((y_noisy[flipped] != y[flipped]).all())
    (2, True)
    >>> shirts = np.array(["shirt", "tee", "coat", "shirt"])
    >>> flip_labels(shirts, 0.5, pairs={"shirt": "tee", "tee": "shirt"})[0].tolist()
    ['shirt', 'shirt', 'coat', 'tee']
    """
    rate = _check_rate(rate)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}.")
    n = y.shape[0]
    rng = np.random.default_rng(random_state)
    if pairs is None:
        labels = _uniform_classes(y, classes)
        idx = _draw_rows(rng, np.arange(n), rate, n, sampling)
        pos = np.searchsorted(labels, y[idx])
        shift = rng.integers(1, labels.shape[0], size=idx.shape[0])
        new = labels[(pos + shift) % labels.shape[0]]
    else:
        if not isinstance(pairs, Mapping) or not pairs:
            raise ValueError(f"pairs must be a non-empty mapping label -> label, got {pairs!r}.")
        idx = _draw_rows(rng, np.flatnonzero(np.isin(y, list(pairs))), rate, n, sampling)
        new = np.asarray([pairs[v] for v in y[idx].tolist()])
    y_noisy = _with_room_for(y, new)
    if idx.size:
        y_noisy[idx] = new
    flipped = np.zeros(n, dtype=bool)
    flipped[idx] = y_noisy[idx] != y[idx]
    return y_noisy, flipped
