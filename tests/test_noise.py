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


def test_bernoulli_sampling_flips_each_row_independently():
    y = np.arange(2000) % 5
    y_noisy, flipped = flip_labels(y, 0.3, random_state=1, sampling="bernoulli")
    assert 500 < flipped.sum() < 700 and flipped.sum() != 600
    assert np.all(y_noisy[flipped] != y[flipped])
    np.testing.assert_array_equal(
        flip_labels(y, 0.3, random_state=1, sampling="bernoulli")[0], y_noisy)


def test_uniform_over_given_classes_and_generator_seed():
    y = np.zeros(300, dtype=int)  # one class present, ten in the dataset
    y_noisy, flipped = flip_labels(y, 0.5, np.random.default_rng(0), classes=np.arange(10))
    assert flipped.sum() == 150 and set(y_noisy[flipped]) <= set(range(1, 10))
    assert len(set(y_noisy[flipped])) == 9


def test_string_partners_are_not_truncated():
    y = np.array(["cat", "dog"] * 10)
    y_noisy, flipped = flip_labels(y, 0.5, pairs={"cat": "tiger", "dog": "wolf"})
    assert set(y_noisy[flipped]) == {"tiger", "wolf"}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate": "0.1"}, "rate must be a number"),
        ({"rate": True}, "rate must be a number"),
        ({"rate": 0.1, "sampling": "poisson"}, "sampling must be 'exact' or 'bernoulli'"),
        ({"rate": 0.1, "pairs": {}}, "pairs must be a non-empty mapping"),
        ({"rate": 0.1, "classes": [0, 1]}, r"classes misses labels of y: \[2\]"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        flip_labels(np.arange(30) % 3, **kwargs)
