"""Persistence: state dicts plus plain metadata, loadable with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from tod_cleanse import ToDCleanser, ToDMLPClassifier
from tod_cleanse.estimators import persistence

X = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
Y = np.array(["cat", "dog", "eel"])[np.arange(60) % 3]
KEYS = np.array([f"row-{i:03d}" for i in range(60)])
TINY = dict(hidden_layer_sizes=(8,), max_epochs=1, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    return ToDMLPClassifier(**TINY).fit(X, Y, instance_keys=KEYS)


def _same(a, b):
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.score_influence(X[:3], Y[:3]), b.score_influence(X[:3], Y[:3]))
    np.testing.assert_array_equal(a.instance_keys_, b.instance_keys_)
    np.testing.assert_array_equal(a.train_keys_, b.train_keys_)
    assert b.classes_.tolist() == ["cat", "dog", "eel"]


def test_pickle_holds_state_dicts_not_modules(fitted):
    state = fitted.__getstate__()
    assert isinstance(state["module_"], bytes)
    # the bytes are a state dict that the safe loader reads
    weights = torch.load(io.BytesIO(state["module_"]), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in weights.values())
    _same(fitted, pickle.loads(pickle.dumps(fitted)))


def test_save_load_file_reads_with_weights_only(fitted, tmp_path):
    path = tmp_path / "model.pt"
    persistence.save(fitted, path)
    raw = torch.load(path, weights_only=True)  # no code runs while reading it
    assert raw["format"] == persistence.FORMAT
    assert not any(isinstance(v, torch.nn.Module) for v in raw.values())
    back = persistence.load(path)
    _same(fitted, back)
    assert back.instance_keys_.tolist() == KEYS.tolist()  # raw string keys kept
    assert back.get_params() == fitted.get_params()


def test_a_cuda_model_loads_on_the_cpu(fitted, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state = fitted.__getstate__()
    state["device_"] = "cuda:0"
    back = ToDMLPClassifier.__new__(ToDMLPClassifier)
    back.__setstate__(state)
    assert back.device_.type == "cpu"
    _same(fitted, back)
    path = tmp_path / "model.pt"
    persistence.save(fitted, path)
    payload = torch.load(path, weights_only=True)
    payload["device"] = "cuda:0"
    torch.save(payload, path)
    assert persistence.load(path).device_.type == "cpu"


def test_save_refuses_what_weights_only_cannot_read(tmp_path):
    est = ToDMLPClassifier(**{**TINY, "random_state": np.random.RandomState(0)}).fit(X, Y)
    with pytest.raises(TypeError, match="not plain data"):
        persistence.save(est, tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())  # no half-written file


def test_load_refuses_foreign_files(tmp_path):
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a file written by tod_cleanse"):
        persistence.load(tmp_path / "x.pt")


def test_cleanser_pickle_keeps_raw_keys(tmp_path):
    cl = ToDCleanser(ToDMLPClassifier(**TINY), drop_fraction=0.1).fit(X, Y, instance_keys=KEYS)
    back = pickle.loads(pickle.dumps(cl))
    assert back.issues_["key"].tolist() == KEYS.tolist()
    assert back.estimator_.instance_keys_.tolist() == KEYS.tolist()
