"""The training loop's fast paths (issue 11, cost): row positions instead of key look-ups.

Each fast path must give the values of the path it short-cuts, so that the ToD
network and the out-of-fold members train exactly as they would without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.folds import MEMBER_INPUT_DIM, OutOfFoldMembers, key_fold
from tod_cleanse.layers import TurnOverDropout, context_rows, tod_context
from tod_cleanse.masks import key_mask


@pytest.mark.parametrize("n_groups", [None, 8])
def test_mask_cache_reads_rows_by_position(n_groups):
    layer = TurnOverDropout(p=0.3, layer_seed=2, seed=5, n_groups=n_groups)
    keys = torch.tensor([5, 99, 3, 10**12, -7])
    layer.cache_masks(keys)
    rows = torch.tensor([1, 4, 0, 0])
    for flipped in (False, True):
        want = key_mask(keys[rows], 33, 0.3, 2, 5, n_groups)
        got = layer.mask(keys[rows], 33, flipped, rows)
        assert torch.equal(got, ~want if flipped else want)
        # looked up by key (no rows): the same masks
        assert torch.equal(layer.mask(keys[rows], 33, flipped), got)
    x = torch.randn(4, 33)
    with tod_context(keys[rows], "seen", rows=rows):
        assert torch.equal(context_rows(), rows)
        by_row = layer(x)
    with tod_context(keys[rows], "seen"):
        assert context_rows() is None
        assert torch.equal(layer(x), by_row)


def test_members_read_their_cached_projection_by_row():
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(40, 12)), dtype=torch.float32)
    keys = torch.as_tensor(rng.permutation(1000)[:40])  # not in sorted order
    proj = (torch.randn(12), torch.randn(12, 6))
    members = OutOfFoldMembers(12, 3, 5, 4, projection=proj, seed=3)
    members.cache_inputs(keys, X)
    idx = torch.tensor([7, 3, 30, 12])
    with tod_context(keys[idx], "seen", rows=idx):
        by_row = members._cached_projection(X[idx])
    with tod_context(keys[idx], "seen"):
        by_key = members._cached_projection(X[idx])
    assert by_row is not None and torch.equal(by_row, by_key)
    computed = torch.addmm(members._projection_offset()[:, None], members.components.t(),
                           X[idx].t())
    torch.testing.assert_close(by_row, computed, rtol=1e-5, atol=1e-5)


def _data(n=96, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(int)


def test_member_weights_by_row_are_those_of_the_hashed_folds():
    from tod_cleanse.folds import member_loss_weights

    X, y = _data()
    keys = np.random.default_rng(3).permutation(10_000)[:96]
    est = ToDMLPClassifier(hidden_layer_sizes=(8,), oos_width=4, max_epochs=1,
                           batch_size=40, random_state=0, verbose=0)
    seen = []
    orig = ToDMLPClassifier._member_weights

    def spy(self, rows, n_folds, reduction, scale):
        out = orig(self, rows, n_folds, reduction, scale)
        kb = torch.as_tensor(keys)[rows]
        folds = key_fold(kb, n_folds, int(self.mask_seed))
        assert torch.equal(out, member_loss_weights(folds, n_folds, len(kb), reduction, scale))
        assert torch.equal(self._member_folds(kb, n_folds, rows), folds)
        seen.append(len(kb))
        return out

    est._member_weights = spy.__get__(est)
    est.fit(X, y, instance_keys=keys)
    assert sorted(set(seen)) == [16, 40]  # every step read the tables by row, last one too
    assert est._fold_table is None and est._batch_rows is None  # cleared after training
    assert "_weight_tables" not in est.__dict__


@pytest.mark.parametrize("keys", [None, "strings"])
def test_training_by_row_matches_training_by_key(monkeypatch, keys):
    """The row fast paths off (every cache looked up by key): identical weights."""
    X, y = _data(d=MEMBER_INPUT_DIM + 8)
    if keys == "strings":
        keys = np.array([f"r{i}" for i in np.random.default_rng(1).permutation(96)])
    params = dict(hidden_layer_sizes=(16,), oos_width=8, max_epochs=2, random_state=0,
                  verbose=0)
    fast = ToDMLPClassifier(**params).fit(X, y, instance_keys=keys)
    monkeypatch.setattr(ToDMLPClassifier, "_step_rows", lambda self, kb: None)
    slow = ToDMLPClassifier(**params).fit(X, y, instance_keys=keys)
    for a, b in zip(fast.module_.parameters(), slow.module_.parameters(), strict=True):
        assert torch.equal(a, b)
    for attr in ("self_influence_", "seen_proba_", "train_proba_", "oos_proba_"):
        np.testing.assert_array_equal(getattr(fast, attr), getattr(slow, attr))


def test_step_rows_only_for_the_loops_own_batch():
    X, y = _data()
    est = ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=1, random_state=0,
                           verbose=0).fit(X, y)
    kb = torch.arange(4)
    assert est._step_rows(kb) is None
    est._batch_rows = (kb, torch.tensor([3, 2, 1, 0]))
    assert est._step_rows(kb.clone()) is None  # another tensor: keys are looked up
    assert torch.equal(est._step_rows(kb), torch.tensor([3, 2, 1, 0]))


@pytest.mark.parametrize("reduction, scale", [("mean", 1.0), ("sum", 2 / 64), ("sum", 3 / 100)])
@pytest.mark.parametrize("n_folds, n_rows", [(5, 64), (5, 56), (3, 37), (4, 10)])
def test_weighted_member_loss_has_member_losss_gradient_bit_for_bit(reduction, scale,
                                                                    n_folds, n_rows):
    from tod_cleanse.folds import member_loss, member_loss_weights, weighted_member_loss

    g = torch.Generator().manual_seed(n_rows)
    base = torch.randn(n_rows, n_folds, 7, generator=g)
    y = torch.randint(0, 7, (n_rows,), generator=g)
    folds = torch.randint(0, n_folds, (n_rows,), generator=g)
    grads = []
    for weighted in (False, True):
        logits = base.clone().requires_grad_(True)
        tod = (logits ** 2).mean()  # another loss term, as in a training step
        if weighted:
            w = member_loss_weights(folds, n_folds, n_rows, reduction, scale)
            loss = tod + weighted_member_loss(logits, y, w)
        else:
            loss = tod + member_loss(logits, y, folds, reduction) * scale
        loss.backward()
        grads.append(logits.grad)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("n_groups", [None, 6])
@pytest.mark.parametrize("n_keys, width", [(0, 8), (1, 1), (300, 512), (5000, 33), (7, 2**17 + 3)])
def test_key_mask_in_blocks_is_the_one_piece_hash(n_groups, n_keys, width):
    """key_mask hashes a cache-sized block of keys at a time, in place: same masks as
    hashing the whole (keys x units) matrix with hash32."""
    import tod_cleanse.masks as masks

    g = torch.Generator().manual_seed(n_keys)
    keys = torch.randint(-(2**62), 2**62, (n_keys,), generator=g)
    p, layer_seed, seed = 0.37, 3, 11
    got = key_mask(keys, width, p, layer_seed, seed, n_groups)
    # the formula in one piece (masks.key_mask before the blocks)
    m32 = masks._M32
    h = masks.hash32((keys & m32) ^ masks.hash32(((keys >> 32) & m32) ^ masks.hash32(
        torch.full_like(keys, (seed * masks._GOLDEN) & m32))))
    complement = None
    if n_groups is not None:
        grp = masks.hash32(h) % n_groups
        complement, h = (grp & 1).bool(), grp >> 1
    h = masks.hash32(h ^ ((layer_seed * masks._C1 + 0x5BD1E995) & m32))
    u = masks.hash32((torch.arange(width) * masks._GOLDEN + 0x632BE5AB) & m32)
    want = masks.hash32(h[:, None] ^ u[None, :]) >= int(round(p * 2**32))
    if complement is not None:
        want = want ^ complement[:, None]
    assert got.shape == (n_keys, width) and torch.equal(got, want)


def test_the_mlp_scores_its_training_rows_from_the_training_mask_tables(monkeypatch):
    import tod_cleanse.layers as layers

    calls = []
    orig = layers.key_mask
    monkeypatch.setattr(layers, "key_mask", lambda keys, *a: calls.append(len(keys))
                        or orig(keys, *a))
    X, y = _data(n=300)
    est = ToDMLPClassifier(hidden_layer_sizes=(16, 8), max_epochs=2, batch_size=32,
                           random_state=0, verbose=0).fit(X, y)
    assert calls == [300, 300]  # one table per ToD layer, hashed once: training and scoring
    assert all(m._cache is None for m in layers.tod_modules(est.module_))  # then cleared
    calls.clear()
    est.score_influence(X[:5], y[:5])  # later uses hash (or cache) as before
    assert calls == [300, 300]
