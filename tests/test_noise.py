"""Seeded label noise used by the demo and the examples."""

import numpy as np
import pytest

from tod_cleanse.noise import flip_labels


def test_uniform_flips_are_wrong_exact_and_seeded():
    y = np.repeat(["a", "b", "c"], 100)
    y1, f1 = flip_labels(y, 0.2, random_state=3)
    y2, f2 = flip_labels(y, 0.2, random_state=3)
    assert f1.sum() == 60
    assert np.all(y1[f1] != y[f1]) and np.all(y1[~f1] == y[~f1])
    np.testing.assert_array_equal(y1, y2)
    assert set(y1) <= {"a", "b", "c"}


def test_class_conditional_flips_follow_the_pairs():
    y = np.repeat([0, 1, 2, 3], 50)
    pairs = {0: 1, 1: 0}
    y_noisy, flipped = flip_labels(y, 0.25, random_state=0, pairs=pairs)
    assert flipped.sum() == 50
    assert set(np.flatnonzero(flipped)) <= set(np.flatnonzero(y < 2))
    assert all(y_noisy[i] == pairs[y[i]] for i in np.flatnonzero(flipped))


def test_bad_rate_and_one_class():
    with pytest.raises(ValueError, match="rate must be in"):
        flip_labels([0, 1], 1.0)
    with pytest.raises(ValueError, match="at least two classes"):
        flip_labels([1, 1, 1], 0.5)
