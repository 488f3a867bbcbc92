"""One key contract: raw keys in, hashes inside, raw keys in everything a user reads."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from tod_cleanse import ToDCleanser, ToDMLPClassifier
from tod_cleanse.estimators import persistence
from tod_cleanse.keys import check_instance_keys
from tod_cleanse.masks import keys_to_int64

X = np.random.default_rng(1).normal(size=(80, 5)).astype(np.float32)
Y = np.arange(80) % 2
KEYS = np.array([f"user-{i:03d}" for i in range(80)])
TINY = dict(hidden_layer_sizes=(8,), max_epochs=1, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def cleanser():
    return ToDCleanser(ToDMLPClassifier(**TINY), drop_fraction=0.1).fit(
        X, Y, instance_keys=KEYS)


def test_estimator_keeps_raw_keys_and_uses_hashes(cleanser):
    est = cleanser.estimator_
    assert est.instance_keys_.tolist() == KEYS.tolist()
    np.testing.assert_array_equal(est.train_keys_, keys_to_int64(KEYS))


def test_issues_show_the_raw_keys(cleanser):
    assert cleanser.issues_["key"].tolist() == KEYS.tolist()
    dropped = cleanser.issues_.loc[cleanser.issues_["is_issue"], "key"]
    assert dropped.str.startswith("user-").all() and len(dropped) == 8


def test_issue_keys_come_from_the_estimator_not_the_argument():
    keys = list(KEYS)  # a list the caller changes after fit
    cl = ToDCleanser(ToDMLPClassifier(**TINY), drop_fraction=0.1).fit(X, Y, instance_keys=keys)
    keys[0] = "changed"
    assert cl.issues_["key"].iloc[0] == "user-000"
    assert cl.estimator_.instance_keys_[0] == "user-000"


def test_explain_shows_the_raw_keys(cleanser):
    table = cleanser.estimator_.explain(X[:2], Y[:2], k=2)
    pos = table["train_index"].to_numpy()
    assert table["train_key"].tolist() == KEYS[pos].tolist()


def test_pickle_and_save_load_keep_the_raw_keys(cleanser, tmp_path):
    est = cleanser.estimator_
    assert pickle.loads(pickle.dumps(est)).instance_keys_.tolist() == KEYS.tolist()
    persistence.save(est, tmp_path / "m.pt")
    back = persistence.load(tmp_path / "m.pt")
    assert back.instance_keys_.tolist() == KEYS.tolist()
    np.testing.assert_array_equal(back.train_keys_, est.train_keys_)


def test_pandas_and_integer_keys_keep_their_dtype():
    raw, hashed = check_instance_keys(pd.Series(np.arange(100, 110)), 10)
    assert raw.dtype.kind == "i" and raw.tolist() == list(range(100, 110))
    np.testing.assert_array_equal(hashed, np.arange(100, 110))
    est = ToDMLPClassifier(**TINY).fit(X[:10], Y[:10], instance_keys=pd.Series(KEYS[:10]))
    assert est.instance_keys_.tolist() == KEYS[:10].tolist()


@pytest.mark.parametrize(
    ("keys", "exc", "match"),
    [
        (["a", "a", "b"], ValueError, "instance_keys must be unique"),
        (["a", "b"], ValueError, r"instance_keys must have one key per row of X \(3\)"),
        ([True, False, True], TypeError, "instance_keys must be integers or strings"),
        (["a", None, "b"], ValueError, "instance_keys contains a missing value at position 1"),
    ],
)
def test_bad_keys_are_named(keys, exc, match):
    with pytest.raises(exc, match=match):
        check_instance_keys(np.array(keys, dtype=object) if None in keys else keys, 3)
