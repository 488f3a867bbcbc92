"""Out-of-fold members on the image families' trunk features (issue 11)."""

import numpy as np
import pytest
import torch

from tod_cleanse import ToDResNetClassifier, ToDVGGClassifier, ToDViTClassifier
from tod_cleanse.estimators import persistence
from tod_cleanse.folds import key_fold, out_of_fold_logits

VGG = dict(width_multiplier=1 / 32, classifier_width=16, max_epochs=2, batch_size=32,
           optimizer="adam", lr=1e-2, weight_decay=0.0, device="cpu", random_state=0,
           verbose=0, oos_folds=3, oos_width=8)


def _images(n=96, side=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(0, 0.3, size=(n, side, side)).astype(np.float32)
    for c in range(3):  # a bright square whose place says the class
        X[y == c, 2 + 4 * c:6 + 4 * c, 4:10] += 2.0
    return X, y


def test_vgg_members_read_the_trunk_and_give_oos_proba():
    X, y = _images()
    est = ToDVGGClassifier(**VGG).fit(X, y)
    net = est.module_
    assert net.members_input == "trunk" and net.members.n_folds == 3
    inputs = est._validate_X(X, reset=False)
    with torch.no_grad():
        net.eval()
        h = net.trunk(torch.as_tensor(inputs))
        logits = net.members(h)
    folds = key_fold(torch.as_tensor(est.train_keys_), 3)
    expected = torch.softmax(out_of_fold_logits(logits, folds) / est.oos_temperature_, 1)
    np.testing.assert_allclose(est.oos_proba_, expected.numpy(), atol=1e-5)


def test_vgg_members_leave_the_tod_network_bit_identical(assert_same_tod_network):
    """Detached features and the members' own generator: the ToD network (trunk
    included, batch-norm statistics too) trains exactly as without members."""
    X, y = _images()
    assert_same_tod_network(ToDVGGClassifier(**VGG).fit(X, y),
                            ToDVGGClassifier(**{**VGG, "oos_folds": None}).fit(X, y))


def test_members_learn_the_task():
    X, y = _images(n=240)
    est = ToDVGGClassifier(**{**VGG, "max_epochs": 8}).fit(X, y)
    # out-of-fold accuracy well above the 1/3 of chance
    assert np.mean(est.oos_proba_.argmax(1) == y) > 0.6


def test_vgg_members_survive_save_and_load(tmp_path):
    X, y = _images()
    est = ToDVGGClassifier(**VGG).fit(X, y)
    path = tmp_path / "vgg.pt"
    persistence.save(est, path)
    loaded = persistence.load(path)
    assert loaded.module_.members_input == "trunk"
    for name, value in est.module_.members.state_dict().items():
        assert torch.equal(value, loaded.module_.members.state_dict()[name]), name
    np.testing.assert_allclose(loaded.predict_proba(X[:5]), est.predict_proba(X[:5]))


COMMON = dict(max_epochs=1, batch_size=16, optimizer="adam", lr=1e-2, weight_decay=0.0,
              device="cpu", random_state=0, verbose=0, oos_folds=3, oos_width=8)


@pytest.mark.parametrize("cls, params", [
    (ToDResNetClassifier, dict(width_multiplier=1 / 32, classifier_width=8)),
    (ToDViTClassifier, dict(patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16)),
    (ToDViTClassifier, dict(patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16,
                            tod_last_blocks=1)),
])
def test_other_image_families_carry_trunk_members(cls, params):
    X, y = _images(n=48)
    est = cls(**COMMON, **params).fit(X, y)
    assert est.module_.members_input == "trunk" and est.module_.members.n_folds == 3
    assert est.oos_proba_.shape == (48, 3)
    off = cls(**{**COMMON, "oos_folds": None}, **params).fit(X, y)
    np.testing.assert_array_equal(est.train_proba_, off.train_proba_)
    np.testing.assert_array_equal(est.self_influence_, off.self_influence_)


def test_member_lr_scale_gives_the_members_their_own_learning_rate():
    class Faster(ToDVGGClassifier):
        _member_lr_scale = 10.0

    X, y = _images(n=48)
    est = Faster(**{**VGG, "max_epochs": 1}).fit(X, y)
    groups = est.optimizer_.param_groups
    member_ids = {id(q) for q in est.module_.members.parameters()}
    in_groups = [{id(q) for q in g["params"]} for g in groups]
    assert len(groups) == 4 and set().union(*in_groups[2:]) == member_ids
    assert not member_ids & set().union(*in_groups[:2])
    assert groups[2]["initial_lr"] == pytest.approx(10 * VGG["lr"])
    assert groups[0]["initial_lr"] == pytest.approx(VGG["lr"])
    # the default keeps one learning rate (two groups: with and without weight decay)
    assert len(ToDVGGClassifier(**{**VGG, "max_epochs": 1}).fit(X, y).optimizer_.param_groups) == 2


def test_members_input_must_be_named():
    from torch import nn

    from tod_cleanse.estimators._network import ToDNetwork

    with pytest.raises(ValueError, match="members_input must be 'input' or 'trunk', got 'head'"):
        ToDNetwork(nn.Identity(), nn.Identity(), members_input="head")
