"""explain(): top-k helpful / harmful training rows (the report is tested in test_report.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tod_cleanse.explain import EXPLAIN_COLUMNS, explain

torch.set_num_threads(1)

@pytest.fixture(scope="module")
def fitted(noisy_blobs, small_mlp):
    X, y, y_noisy = noisy_blobs()
    keys = np.array([f"row-{i}" for i in range(len(y))])
    # a small score_batch_size forces several influence blocks per call
    est = small_mlp(score_batch_size=300).fit(X[:200], y_noisy[:200], instance_keys=keys[:200])
    return est, X, y, y_noisy, keys


# ----------------------------------------------------------------- explain
def _expected(row: np.ndarray, k: int, allowed: np.ndarray | None = None):
    cols = np.arange(row.shape[0]) if allowed is None else np.flatnonzero(allowed)
    vals = row[cols]
    help_order = cols[np.lexsort((cols, -vals))]
    harm_order = cols[np.lexsort((cols, vals))]
    helpful = [i for i in help_order if row[i] > 0][:k]
    harmful = [i for i in harm_order if row[i] < 0][:k]
    return helpful, harmful


@pytest.mark.parametrize("estimate", ["exact", "gradient"])
@pytest.mark.parametrize("with_y", [True, False])
def test_explain_ranks_agree_with_score_influence(fitted, with_y, estimate):
    est, X, y, y_noisy, keys = fitted
    X_t, y_t = X[200:212], y[200:212]
    k = 4
    how = dict(estimate=estimate,
               train_set=(X[:200], y_noisy[:200]) if estimate == "gradient" else None)
    table = est.explain(X_t, y_t if with_y else None, k=k, **how)
    assert tuple(table.columns) == EXPLAIN_COLUMNS
    pred = est.predict(X_t)
    M = est.score_influence(X_t, y_t if with_y else pred, **how)
    for t in range(len(X_t)):
        helpful, harmful = _expected(M[t], k)
        got_help = table[(table.target == t) & (table.kind == "helpful")]
        got_harm = table[(table.target == t) & (table.kind == "harmful")]
        assert got_help.train_index.tolist() == helpful
        assert got_harm.train_index.tolist() == harmful
        assert got_help["rank"].tolist() == list(range(1, len(helpful) + 1))
        np.testing.assert_allclose(got_help.influence, M[t, helpful], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got_harm.influence, M[t, harmful], rtol=0, atol=1e-9)
    assert len(table) > 0
    sub = table.iloc[:3]
    assert sub.train_key.tolist() == keys[sub.train_index].tolist()
    assert (table.train_label.to_numpy() == est.classes_[est.y_train_[table.train_index]]).all()
    assert (table.predicted_label.to_numpy() == pred[table.target]).all()
    if with_y:
        assert (table.true_label.to_numpy() == y_t[table.target]).all()
    else:
        assert table.true_label.isna().all()


def test_explain_reads_blocks_in_chunks(fitted, monkeypatch):
    est, X, y, _, _ = fitted
    seen = []
    original = type(est).iter_influence

    def spy(self, X_t, y_t, **kw):
        for rows, block in original(self, X_t, y_t, **kw):
            seen.append(block.shape)
            yield rows, block

    monkeypatch.setattr(type(est), "iter_influence", spy)
    table = explain(est, X[200:210], y[200:210], k=2)
    # score_batch_size=300 pairs over 200 training rows: one target per block
    assert seen == [(1, 200)] * 10
    assert set(table.target) <= set(range(10))


def test_explain_label_filter(fitted):
    est, X, y, _, _ = fitted
    X_t, y_t = X[200:215], y[200:215]
    k = 3
    table = est.explain(X_t, y_t, k=k, label_filter="predicted")
    assert (table.train_label.to_numpy() == table.predicted_label.to_numpy()).all()
    M = est.score_influence(X_t, y_t)
    pred = est.predict(X_t)
    labels = est.classes_[est.y_train_]
    for t in range(len(X_t)):
        helpful, harmful = _expected(M[t], k, labels == pred[t])
        rows = table[table.target == t]
        assert rows[rows.kind == "harmful"].train_index.tolist() == harmful
        assert rows[rows.kind == "helpful"].train_index.tolist() == helpful
    true_view = est.explain(X_t, y_t, k=k, label_filter="true")
    assert (true_view.train_label.to_numpy() == true_view.true_label.to_numpy()).all()
    fixed = est.explain(X_t, None, k=k, label_filter=[0, 2])
    assert set(fixed.train_label) <= {0, 2} and len(fixed) > 0


def test_explain_bad_input(small_mlp, fitted):
    est, X, y, _, _ = fitted
    with pytest.raises(ValueError, match="label_filter='true' needs y_t"):
        est.explain(X[:2], None, label_filter="true")
    with pytest.raises(ValueError, match="label_filter"):
        est.explain(X[:2], y[:2], label_filter=7)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        est.explain(X[:2], y[:2], k=0)
    with pytest.raises(ValueError, match="y_t"):
        est.explain(X[:2], [0, 9])
    with pytest.raises(ValueError, match="turn_over=False"):
        explain(small_mlp(turn_over=False).fit(X[:60], y[:60]), X[:2])
