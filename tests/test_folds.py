"""Fold-structured turn-over dropout: out-of-fold members packed in the ToD network."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.estimators import persistence
from tod_cleanse.folds import OutOfFoldMembers, key_fold, member_loss, out_of_fold_logits


def test_key_fold_is_a_balanced_pure_function_of_key_and_seed():
    keys = torch.arange(20_000)
    f = key_fold(keys, 5)
    counts = torch.bincount(f, minlength=5)
    assert counts.min() > 3_800 and counts.max() < 4_200
    assert torch.equal(f, key_fold(keys.flip(0), 5).flip(0))  # no batch-position effect
    assert (f != key_fold(keys, 5, seed=1)).float().mean() > 0.7
    with pytest.raises(ValueError, match="n_folds"):
        key_fold(keys, 1)


def test_a_row_never_updates_the_member_of_its_own_fold():
    torch.manual_seed(0)
    m = OutOfFoldMembers(in_features=6, n_folds=4, width=5, n_classes=3, p=0.0)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    folds = torch.full((8,), 2)
    member_loss(m(x), y, folds).backward()
    own = slice(2 * 5, 3 * 5)
    assert torch.count_nonzero(m.weight1.grad[:, own]) == 0
    assert torch.count_nonzero(m.bias1.grad[own]) == 0
    assert torch.count_nonzero(m.weight2.grad[2]) == 0
    assert torch.count_nonzero(m.bias2.grad[2]) == 0
    for other in (0, 1, 3):
        assert torch.count_nonzero(m.weight2.grad[other]) > 0


def test_member_loss_is_the_mean_over_the_other_members():
    logits = torch.randn(5, 3, 4)
    y, folds = torch.randint(0, 4, (5,)), torch.tensor([0, 1, 2, 0, 1])
    expected = np.mean([np.mean([F.cross_entropy(logits[i, k][None], y[i][None]).item()
                                 for k in range(3) if k != int(folds[i])]) for i in range(5)])
    assert member_loss(logits, y, folds).item() == pytest.approx(expected, rel=1e-6)
    assert member_loss(logits, y, folds, "sum").item() == pytest.approx(5 * expected, rel=1e-6)
    assert torch.equal(out_of_fold_logits(logits, folds)[2], logits[2, 2])


def _fit(X, y, **kw):
    params = dict(hidden_layer_sizes=(16,), oos_folds=3, oos_width=8, max_epochs=4,
                  batch_size=32, random_state=0, verbose=0)
    params.update(kw)
    return ToDMLPClassifier(**params).fit(X, y)


def test_the_member_of_a_fold_is_the_same_whatever_that_fold_says(noisy_blobs):
    """Exact separation: relabelling every row of fold 0 leaves member 0 bit-identical
    (and changes the other members)."""
    X, _, y = noisy_blobs(n=150)
    folds = key_fold(torch.arange(150), 3).numpy()
    y2 = y.copy()
    y2[folds == 0] = (y[folds == 0] + 1) % 3
    a, b = _fit(X, y), _fit(X, y2)
    ma, mb = a.module_.members, b.module_.members
    own = slice(0, 8)
    assert torch.equal(ma.weight1[:, own], mb.weight1[:, own])
    assert torch.equal(ma.weight2[0], mb.weight2[0]) and torch.equal(ma.bias2[0], mb.bias2[0])
    assert not torch.equal(ma.weight2[1], mb.weight2[1])


def test_oos_proba_comes_from_the_member_of_the_rows_fold(noisy_blobs):
    X, _, y = noisy_blobs(n=120)
    est = _fit(X, y)
    with torch.no_grad():
        logits = est.module_.members(torch.as_tensor(est._validate_X(X, reset=False)))
    folds = key_fold(torch.as_tensor(est.train_keys_), 3)
    expected = torch.softmax(out_of_fold_logits(logits, folds) / est.oos_temperature_, 1)
    np.testing.assert_allclose(est.oos_proba_, expected.numpy(), atol=1e-5)
    # Influence, self-influence and predictions stay the per-instance ToD network's.
    assert est.score_influence(X[:3], y[:3]).shape == (3, 120)


def test_history_and_diagnostics_read_the_tod_networks_loss_alone(noisy_blobs):
    from tod_cleanse.layers import tod_context

    X, _, y = noisy_blobs(n=60)
    est = _fit(X, y, inner_p=0.0)
    xb = torch.as_tensor(est._validate_X(X[:16], reset=False))
    yb, kb = torch.as_tensor(est.y_train_[:16]), torch.as_tensor(est.train_keys_[:16])
    est.module_.train()
    with torch.no_grad(), tod_context(kb, "seen"):
        expected = F.cross_entropy(est.module_.head(est.module_.trunk(xb)), yb).item()
    assert est.train_step(xb, yb, kb) == pytest.approx(expected, rel=1e-6)


def test_members_are_off_without_turn_over_and_by_default(noisy_blobs):
    X, _, y = noisy_blobs(n=90)
    assert _fit(X, y, turn_over=False).module_.members is None
    assert _fit(X, y, oos_folds=None).module_.members is None
    with pytest.raises(ValueError, match="oos_folds"):
        _fit(X, y, oos_folds=1)


def test_members_survive_save_and_load(noisy_blobs, tmp_path):
    X, _, y = noisy_blobs(n=90)
    est = _fit(X, y)
    path = tmp_path / "m.pt"
    persistence.save(est, path)
    back = persistence.load(path)
    for name, value in est.module_.members.state_dict().items():
        assert torch.equal(value, back.module_.members.state_dict()[name])
    np.testing.assert_array_equal(back.oos_proba_, est.oos_proba_)


def test_wide_inputs_reach_the_members_through_a_saved_label_free_pca_map(tmp_path):
    from tod_cleanse.folds import MEMBER_INPUT_DIM

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, MEMBER_INPUT_DIM + 16)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    est = _fit(X, y)
    center, comp = est.oos_projection_
    assert comp.shape == (MEMBER_INPUT_DIM + 16, MEMBER_INPUT_DIM)
    assert est.module_.members.weight1.shape[0] == MEMBER_INPUT_DIM
    # The map reads the inputs only: other labels, the same map.
    again = _fit(X, 1 - y)
    np.testing.assert_array_equal(again.oos_projection_[1], comp)
    path = tmp_path / "wide.pt"
    persistence.save(est, path)
    back = persistence.load(path)
    assert torch.equal(back.module_.members.components, est.module_.members.components)
    np.testing.assert_array_equal(back.oos_proba_, est.oos_proba_)
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X), atol=1e-6)


def test_the_members_leave_the_tod_network_bit_identical(noisy_blobs, assert_same_tod_network):
    """Members draw from their own generator: with or without them, the per-instance ToD
    network trains the same (influence, self-influence, full predictions)."""
    X, _, y = noisy_blobs(n=120)
    assert_same_tod_network(_fit(X, y), _fit(X, y, oos_folds=None))


def test_member_dropout_is_reproducible_and_pickles():
    import copy
    import pickle

    m = OutOfFoldMembers(in_features=4, n_folds=3, width=16, n_classes=2, seed=7)
    x = torch.randn(5, 4)
    first = m(x)
    again = OutOfFoldMembers(in_features=4, n_folds=3, width=16, n_classes=2, seed=7)
    assert torch.equal(first, again(x))  # same init and the same dropout draws
    assert not torch.equal(m(x), first)  # dropout moves on
    m.eval()
    back = pickle.loads(pickle.dumps(m))
    assert torch.equal(back(x), m(x)) and torch.equal(copy.deepcopy(m)(x), m(x))


@pytest.mark.parametrize("p", [0.5, 0.25, 0.8, 0.3])
def test_dropout_scale_keeps_a_fraction_1_minus_p_and_is_reproducible_from_the_seed(p):
    from tod_cleanse.folds import dropout_scale

    s = dropout_scale((400, 640), p, torch.Generator().manual_seed(5))
    kept = (s > 0).float().mean().item()
    assert kept == pytest.approx(1 - p, abs=0.01)
    assert s.mean().item() == pytest.approx(1.0, abs=0.02)  # unbiased: E[s] = 1
    assert torch.equal(s, dropout_scale((400, 640), p, torch.Generator().manual_seed(5)))
    assert not torch.equal(s, dropout_scale((400, 640), p, torch.Generator().manual_seed(6)))
    # units are independent: neighbouring draws (packed in one byte) do not agree more
    # often than chance
    a, b = s.view(-1)[0::2] > 0, s.view(-1)[1::2] > 0
    assert (a == b).float().mean().item() == pytest.approx(p**2 + (1 - p) ** 2, abs=0.01)
    if p in (0.5, 0.25):  # dyadic rates are exact: the scale is 1 / (1 - p)
        assert s.max().item() == pytest.approx(1 / (1 - p), rel=1e-6)
    with pytest.raises(ValueError, match="p must be"):
        dropout_scale((2, 2), 1.0)


def test_member_dropout_draw_leaves_the_global_generator_alone():
    m = OutOfFoldMembers(in_features=4, n_folds=3, width=16, n_classes=2, seed=7)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    m(torch.randn(5, 4, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(torch.get_rng_state(), before)


def test_member_logits_match_a_plain_per_member_computation():
    """The transposed, in-place forward computes each member's ordinary MLP."""
    proj = (torch.randn(12), torch.randn(12, 6))
    m = OutOfFoldMembers(in_features=12, n_folds=3, width=5, n_classes=4, projection=proj).eval()
    x = torch.randn(7, 12)
    z = (x - proj[0]) @ proj[1]
    for k in range(3):
        h = F.relu(z @ m.weight1[:, 5 * k:5 * (k + 1)] + m.bias1[5 * k:5 * (k + 1)])
        expected = h @ m.weight2[k] + m.bias2[k]
        torch.testing.assert_close(m(x)[:, k], expected, rtol=1e-5, atol=1e-5)


def test_cached_projected_inputs_give_the_members_the_same_training_step():
    from tod_cleanse.layers import tod_context

    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.normal(size=(40, 12)), dtype=torch.float32)
    keys = torch.arange(100, 140)
    proj = (torch.randn(12), torch.randn(12, 6))
    plain = OutOfFoldMembers(12, 3, 5, 4, projection=proj, seed=3)
    cached = OutOfFoldMembers(12, 3, 5, 4, projection=proj, seed=3)
    cached.cache_inputs(keys, X)
    idx = torch.tensor([7, 3, 30, 12])
    with tod_context(keys[idx], "seen"):
        torch.testing.assert_close(cached(X[idx]), plain(X[idx]), rtol=1e-5, atol=1e-5)
    with tod_context(torch.tensor([7, 999]), "seen"):  # a key it does not hold: computed
        assert cached._cached_projection(X[:2]) is None
    assert cached._cached_projection(X[idx]) is None  # outside a tod_context
    assert "_input_cache" not in cached.__getstate__()
    cached.cache_inputs(None)
    assert cached._input_cache is None


def test_the_mlp_caches_the_members_projected_inputs_for_training_only(monkeypatch):
    from tod_cleanse.folds import MEMBER_INPUT_DIM

    seen = []
    orig = OutOfFoldMembers._cached_projection

    def spy(self, x):
        out = orig(self, x)
        if self.training:
            seen.append(out is not None)
        return out

    monkeypatch.setattr(OutOfFoldMembers, "_cached_projection", spy)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(96, MEMBER_INPUT_DIM + 8)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    est = _fit(X, y)
    assert seen and all(seen)  # every training step read the cache
    assert est.module_.members._input_cache is None  # cleared after training
