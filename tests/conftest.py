"""Shared test set-up: offline hubs, small data."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# Test models are tiny: one intra-op thread is faster than two fighting over
# small matrices (and CI machines have 2 cores).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_small():
    """400 digits rows (64 features, 10 classes) with 10% seeded label noise."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X, y = X[:400], y[:400]
    rng = np.random.default_rng(0)
    noisy = rng.random(y.shape[0]) < 0.1
    y_noisy = y.copy()
    y_noisy[noisy] = (y[noisy] + rng.integers(1, 10, noisy.sum())) % 10
    return X, y, y_noisy, noisy
