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
    est = ToDVGGClassifier(**VGG, oos_stage=None).fit(X, y)
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
    assert loaded.module_.members_input == "tap"
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
    expected = "tap" if cls is ToDResNetClassifier else "trunk"  # ResNet: oos_stage=2
    assert est.module_.members_input == expected and est.module_.members.n_folds == 3
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

    with pytest.raises(ValueError,
                       match="members_input must be 'input', 'trunk' or 'tap', got 'head'"):
        ToDNetwork(nn.Identity(), nn.Identity(), members_input="head")
    with pytest.raises(ValueError, match="needs a FeatureTap inside the trunk"):
        ToDNetwork(nn.Identity(), nn.Identity(), members_input="tap")


def _stage_features(est, X, stage_end):
    """What the members should read: stage output, pooled to at most 8x8, flattened."""
    inputs = torch.as_tensor(est._validate_X(X, reset=False))
    trunk = est.module_.trunk
    with torch.no_grad():
        out = trunk[:stage_end + 1](inputs)
    if max(out.shape[-2:]) > 8:
        out = torch.nn.functional.adaptive_avg_pool2d(out, 8)
    return out.flatten(1)


def test_vgg_members_read_stage_two_by_default():
    """oos_stage=2: the members read the second max-pooled block (16x16 -> 4x4 here)."""
    X, y = _images(side=32)
    est = ToDVGGClassifier(**VGG).fit(X, y)
    net = est.module_
    assert net.members_input == "tap"
    pools = [i for i, m in enumerate(net.trunk) if isinstance(m, torch.nn.MaxPool2d)]
    assert type(net.trunk[pools[1] + 1]).__name__ == "FeatureTap"
    net.eval()
    feats = _stage_features(est, X, pools[1])
    assert feats.shape[1] == net.members.weight1.shape[0]
    with torch.no_grad():
        logits = net.members(feats)
    folds = key_fold(torch.as_tensor(est.train_keys_), 3)
    expected = torch.softmax(out_of_fold_logits(logits, folds) / est.oos_temperature_, 1)
    np.testing.assert_allclose(est.oos_proba_, expected.numpy(), atol=1e-5)


def test_stage_one_is_pooled_to_eight_by_eight():
    X, y = _images(side=32)
    est = ToDVGGClassifier(**VGG, oos_stage=1).fit(X, y)  # 32 -> 16x16 after stage 1
    net = est.module_
    pools = [i for i, m in enumerate(net.trunk) if isinstance(m, torch.nn.MaxPool2d)]
    feats = _stage_features(est, X, pools[0])
    channels = net.trunk[pools[0] - 3].out_channels
    assert feats.shape[1] == channels * 64
    net.eval()
    with torch.no_grad():
        h = net.trunk(torch.as_tensor(est._validate_X(X[:7], reset=False)))
        got = net.member_logits(None, h)  # the tap kept this batch's features
        np.testing.assert_allclose(got.numpy(), net.members(feats[:7]).numpy(), atol=1e-5)


@pytest.mark.parametrize("stage", [1, 2, 3])
def test_stage_members_leave_the_tod_network_bit_identical(stage, assert_same_tod_network):
    X, y = _images()
    assert_same_tod_network(ToDVGGClassifier(**VGG, oos_stage=stage).fit(X, y),
                            ToDVGGClassifier(**{**VGG, "oos_folds": None}).fit(X, y))


def test_member_logits_rerun_the_trunk_when_the_tap_is_stale():
    """A stale or spent tap (another batch size, already read) is never used."""
    X, y = _images()
    est = ToDVGGClassifier(**VGG).fit(X, y)
    net = est.module_.eval()
    x = torch.as_tensor(est._validate_X(X[:5], reset=False))
    with torch.no_grad():
        h = net.trunk(x)
        first = net.member_logits(x, h)
        net.trunk(torch.as_tensor(est._validate_X(X[:9], reset=False)))  # another batch
        again = net.member_logits(x, h)
    np.testing.assert_allclose(first.numpy(), again.numpy(), atol=1e-6)


def test_tap_features_are_not_pickled():
    import pickle

    X, y = _images()
    est = ToDVGGClassifier(**VGG).fit(X, y)
    est.predict_proba(X[:4])  # leaves a batch in the tap
    back = pickle.loads(pickle.dumps(est))
    tap = next(m for m in back.module_.trunk if type(m).__name__ == "FeatureTap")
    assert tap.features is None
    np.testing.assert_allclose(back.predict_proba(X[:4]), est.predict_proba(X[:4]))


@pytest.mark.parametrize("cls, params, error", [
    (ToDVGGClassifier, dict(VGG, oos_stage=6), r"oos_stage must be None or an integer in \[1, 5\]"),
    (ToDVGGClassifier, dict(VGG, oos_stage=5, tod_conv_layers=2), "above the lowest ToD layer"),
    (ToDResNetClassifier, dict(COMMON, width_multiplier=1 / 32, classifier_width=8,
                               oos_stage=4, tod_last_stage=True), "above the lowest ToD layer"),
    (ToDResNetClassifier, dict(COMMON, width_multiplier=1 / 32, classifier_width=8,
                               oos_stage=5), r"integer in \[1, 4\]"),
])
def test_oos_stage_out_of_range_names_the_parameter(cls, params, error):
    X, y = _images(n=48, side=32)
    with pytest.raises(ValueError, match=error):
        cls(**params).fit(X, y)


def test_resnet_stage_members():
    X, y = _images(n=48, side=32)
    est = ToDResNetClassifier(**COMMON, width_multiplier=1 / 32, classifier_width=8,
                              oos_stage=2).fit(X, y)
    assert est.module_.members_input == "tap"
    assert est.oos_proba_.shape == (48, 3)


def test_oos_stage_is_ignored_without_members():
    X, y = _images()
    est = ToDVGGClassifier(**{**VGG, "oos_folds": None}).fit(X, y)
    assert not any(type(m).__name__ == "FeatureTap" for m in est.module_.trunk)


def test_models_saved_before_oos_stage_load_with_trunk_members(tmp_path):
    """A file written before ``oos_stage`` existed (no such parameter) rebuilds its
    members on the trunk's output, as they were trained."""
    X, y = _images()
    est = ToDVGGClassifier(**VGG, oos_stage=None).fit(X, y)
    path = tmp_path / "old.pt"
    persistence.save(est, path)
    payload = torch.load(path, weights_only=True)
    del payload["params"]["oos_stage"]
    torch.save(payload, path)
    loaded = persistence.load(path)
    assert loaded.oos_stage is None and loaded.module_.members_input == "trunk"
    np.testing.assert_allclose(loaded.predict_proba(X[:5]), est.predict_proba(X[:5]))
    state = est.__getstate__()
    del state["oos_stage"]
    back = ToDVGGClassifier.__new__(ToDVGGClassifier)
    back.__setstate__(state)
    assert back.oos_stage is None
    np.testing.assert_allclose(back.predict_proba(X[:5]), est.predict_proba(X[:5]))
