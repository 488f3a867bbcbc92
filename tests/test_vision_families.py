"""ToDResNetClassifier and ToDViTClassifier: tiny networks, scoring, separation, weights, I/O."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from tod_cleanse.estimators.resnet import ToDResNetClassifier, _stages
from tod_cleanse.estimators.vit import ToDViTClassifier
from tod_cleanse.layers import TurnOverDropout, tod_modules

COMMON = dict(max_epochs=1, batch_size=32, optimizer="adam", lr=1e-2, weight_decay=0.0,
              device="cpu", random_state=0, verbose=0)
RESNET = dict(width_multiplier=1 / 32, classifier_width=8, **COMMON)
VIT = dict(patch_size=4, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16,
           classifier_width=8, warmup_fraction=0.0, grad_clip=None, **COMMON)

EXPECTED_FAILED = {
    "check_classifiers_train": "needs > 83% accuracy on blobs read as 1-pixel-high images; "
                               "a one-epoch ResNet on them padded to 32x32 does not reach it",
}


@parametrize_with_checks([ToDResNetClassifier(**RESNET), ToDViTClassifier(**VIT)],
                         expected_failed_checks=lambda est: EXPECTED_FAILED if isinstance(
                             est, ToDResNetClassifier) else {})
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _images(n=32, size=12, seed=0):
    """Two classes: a bright square top-left (0) or bottom-right (1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
    h = size // 2
    for i, c in enumerate(y):
        sl = (slice(0, h), slice(0, h)) if c == 0 else (slice(h, size), slice(h, size))
        X[(i,) + sl] = 230
    return X, y


@pytest.mark.parametrize(("cls", "params", "n_tod"), [
    (ToDResNetClassifier, RESNET, 2),
    (ToDResNetClassifier, {**RESNET, "tod_last_stage": True, "stem": "small"}, 4),
    (ToDViTClassifier, VIT, 2),
    (ToDViTClassifier, {**VIT, "tod_last_blocks": 1, "classifier_width": 0}, 4),
])
def test_fit_scores_and_trunk_reuse_match_naive_scoring(cls, params, n_tod, naive_influence):
    X, y = _images(n=16, size=14)
    clf = cls(**params).fit(X, np.where(y == 0, "a", "b"), instance_keys=[
        f"img-{i}" for i in range(16)])
    assert len(tod_modules(clf.module_)) == n_tod and not tod_modules(clf.module_.trunk)
    assert clf.oos_proba_.shape == (16, 2) and clf.self_influence_.shape == (16,)
    np.testing.assert_allclose(clf.predict_proba(X[:3]).sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(X[:4])) <= {"a", "b"}
    assert clf.instance_keys_[3] == "img-3"
    y_t = np.array(["a", "b", "a"])
    fast = clf.score_influence(X[:3], y_t)
    np.testing.assert_allclose(fast, naive_influence(clf, X[:3], y_t), atol=1e-5)
    y_enc = clf.classes_[clf.y_train_[:3]]
    diag = [naive_influence(clf, X[i:i + 1], y_enc[i:i + 1])[0, i] for i in range(3)]
    np.testing.assert_allclose(clf.self_influence_[:3], diag, atol=1e-5)


@pytest.mark.parametrize(("cls", "params"), [(ToDResNetClassifier, RESNET),
                                             (ToDViTClassifier, VIT)])
def test_head_separation_is_exact(cls, params):
    """Steps on one instance leave its flipped head sub-network bit-identical."""
    X, y = _images(n=16)
    clf = cls(**params).fit(X, y)
    h = clf._trunk(clf._batch(clf._validate_X(X, reset=False), np.arange(8)))
    key = torch.tensor([int(clf.train_keys_[5])])
    before_flip = clf._head_logits(h, key, "flipped")
    before_seen = clf._head_logits(h, key, "seen")
    clf.optimizer_ = torch.optim.Adam(clf.module_.head.parameters(), lr=1e-2)  # no momentum
    # The row twice: batch norm cannot train on one 1x1 feature map.
    xb = clf._batch(clf._validate_X(X[[5, 5]], reset=False), np.array([0, 1]))
    for _ in range(3):
        clf.train_step(xb, torch.tensor([1 - y[5]] * 2), key.repeat(2))  # even a wrong label
    clf.module_.eval()
    assert torch.equal(clf._head_logits(h, key, "flipped"), before_flip)
    assert not torch.allclose(clf._head_logits(h, key, "seen"), before_seen)


@pytest.mark.parametrize(("cls", "params"), [(ToDResNetClassifier, RESNET),
                                             (ToDViTClassifier, VIT)])
def test_layouts_pickle_and_cpu_load(cls, params):
    X, y = _images(n=16)
    rgb = np.repeat(X[..., None], 3, axis=-1)
    nhwc = cls(**params).fit(rgb, y)
    nchw = cls(**params).fit(rgb.transpose(0, 3, 1, 2).copy(), y)
    np.testing.assert_array_equal(nhwc.self_influence_, nchw.self_influence_)
    clone = pickle.loads(pickle.dumps(nhwc))
    assert clone.device_.type == "cpu"
    np.testing.assert_array_equal(clone.predict_proba(rgb), nhwc.predict_proba(rgb))
    np.testing.assert_array_equal(clone.score_influence(rgb[:2], y[:2]),
                                  nhwc.score_influence(rgb[:2], y[:2]))
    with pytest.raises(ValueError, match="fitted on"):
        nhwc.predict(X)


def test_resnet_weights_path_loads_a_local_checkpoint(tmp_path):
    trunk, _ = _stages("resnet18", 1 / 32, 3, "imagenet")
    state = {**trunk.state_dict(), "fc.weight": torch.zeros(1000, 16)}
    torch.save(state, tmp_path / "resnet.pth")
    X, y = _images(n=8)
    clf = ToDResNetClassifier(**{**RESNET, "weights_path": tmp_path / "resnet.pth",
                                 "lr": 1e-12}).fit(X, y)
    conv1 = clf.module_.trunk[0].weight.detach()
    torch.testing.assert_close(conv1, state["conv1.weight"].sum(dim=1, keepdim=True))
    (tmp_path / "resnet.pth").rename(tmp_path / "moved.pth")  # unpickling reads no file
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X),
                                  clf.predict_proba(X))
    (tmp_path / "moved.pth").rename(tmp_path / "resnet.pth")
    with pytest.raises(ValueError, match="resnet.pth.*does not fit arch='resnet18'"):
        ToDResNetClassifier(**{**RESNET, "weights_path": tmp_path / "resnet.pth",
                               "width_multiplier": 1 / 16}).fit(X, y)


def test_vit_weights_path_interpolates_the_position_embedding(tmp_path):
    from torchvision.models.vision_transformer import VisionTransformer

    sizes = {k: VIT[k] for k in ("patch_size", "num_layers", "num_heads", "hidden_dim",
                                 "mlp_dim")}
    src = VisionTransformer(image_size=8, num_classes=5, **sizes)  # 2x2 patches
    torch.save(src.state_dict(), tmp_path / "vit.pth")
    X, y = _images(n=8, size=12)  # 3x3 patches
    clf = ToDViTClassifier(**{**VIT, "weights_path": str(tmp_path / "vit.pth"),
                              "lr": 1e-12}).fit(np.repeat(X[..., None], 3, axis=-1), y)
    embed = clf.module_.trunk[0]
    assert embed.pos_embedding.shape == (1, 10, 16)
    torch.testing.assert_close(embed.pos_embedding[0, 0], src.encoder.pos_embedding[0, 0])
    torch.testing.assert_close(embed.conv_proj.weight, src.conv_proj.weight)


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (ToDResNetClassifier, {"arch": "resnet9"}, "arch"),
        (ToDResNetClassifier, {"stem": "tiny"}, "stem"),
        (ToDResNetClassifier, {"weights_path": "missing.pth"}, "missing.pth"),
        (ToDViTClassifier, {"tod_last_blocks": 3}, "tod_last_blocks"),
        (ToDViTClassifier, {"num_heads": 3}, "divisible by num_heads"),
        (ToDViTClassifier, {"arch": "vit_s_16"}, "arch"),
    ],
)
def test_bad_parameters_are_named(cls, params, match):
    X, y = _images(n=4)
    base = RESNET if cls is ToDResNetClassifier else VIT
    with pytest.raises(ValueError, match=match):
        cls(**{**base, **params}).fit(X, y)


def test_tod_layers_sit_where_documented():
    X, y = _images(n=8)
    resnet = ToDResNetClassifier(**{**RESNET, "tod_last_stage": True}).fit(X, y)
    assert [m.dim for m in tod_modules(resnet.module_)] == [1, 1, -1, -1]
    assert resnet.module_.head[-1].bias is None
    vit = ToDViTClassifier(**{**VIT, "tod_last_blocks": 1}).fit(X, y)
    assert isinstance(vit.module_.head[-1], torch.nn.Linear) and vit.module_.head[-1].bias is None
    assert len(tod_modules(vit.module_.head[0])) == 3  # attention output and the two MLP ones
    assert isinstance(vit.module_.head[-2], TurnOverDropout) or vit.classifier_width == 0


def test_registry_and_cleanlab_adapter_take_the_image_families():
    from tod_cleanse.adapters.cleanlab import tod_pred_probs
    from tod_cleanse.estimators.registry import MODEL_NAMES, input_kind, make_estimator

    assert {"resnet", "vit", "vgg", "text"} <= set(MODEL_NAMES) and input_kind("vit") == "image"
    est = make_estimator("vit", **{**VIT, "turn_over": None})  # None: the default applies
    assert isinstance(est, ToDViTClassifier) and est.turn_over is True
    with pytest.raises(ValueError, match="'resnet' .*ToDResNetClassifier.* patch_size"):
        make_estimator("resnet", patch_size=4)
    with pytest.raises(ValueError, match="one of mlp, text, bert, vgg, resnet, vit, got 'vgg9'"):
        make_estimator("vgg9")
    X, y = _images(n=16)
    proba = tod_pred_probs(est.fit(X, y))
    assert proba.shape == (16, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize(("cls", "params"), [(ToDResNetClassifier, RESNET),
                                             (ToDViTClassifier, VIT)])
def test_persistence_save_and_load(cls, params, tmp_path):
    from tod_cleanse.estimators import persistence

    X, y = _images(n=16)
    est = cls(**params).fit(X, y, instance_keys=[f"img-{i}" for i in range(16)])
    persistence.save(est, tmp_path / "model.pt")
    back = persistence.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    np.testing.assert_array_equal(back.score_influence(X[:2], y[:2]),
                                  est.score_influence(X[:2], y[:2]))
    assert back.instance_keys_.tolist() == [f"img-{i}" for i in range(16)]


def test_parquet_cleaner_builds_the_image_families_by_name(tmp_path):
    """``clean --model resnet|vit`` goes through the registry (and --model-path to weights_path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tod_cleanse.adapters.parquet import CleanParquetError, clean_parquet

    X, y = _images(n=16, size=8)
    table = pa.table({"id": [f"img-{i}" for i in range(16)],
                      "pixels": pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 64),
                      "label": pa.array(y, pa.int64())})
    pq.write_table(table, tmp_path / "images.parquet")
    common = dict(label="label", image="pixels", image_shape=(8, 8), key="id",
                  drop_fraction=0.25, progress=False)
    for model, params in (("resnet", {"width_multiplier": 1 / 32, "max_epochs": 1}),
                          ("vit", {k: VIT[k] for k in ("patch_size", "num_layers", "num_heads",
                                                       "hidden_dim", "mlp_dim")})):
        summary = clean_parquet(tmp_path / "images.parquet", tmp_path / model, model=model,
                                model_params={**params, "max_epochs": 1}, **common)
        assert summary["parameters"]["estimator"] == cls_name(model)
        assert summary["counts"]["dropped"] == 4 and summary["partition_check"]["ok"]
    with pytest.raises(CleanParquetError, match="missing.pth"):
        clean_parquet(tmp_path / "images.parquet", tmp_path / "bad", model="resnet",
                      model_params={"model_name_or_path": str(tmp_path / "missing.pth")},
                      **common)
    with pytest.raises(CleanParquetError, match="--model text reads text columns"):
        clean_parquet(tmp_path / "images.parquet", tmp_path / "bad2", model="text", **common)


def cls_name(model):
    return {"resnet": "ToDResNetClassifier", "vit": "ToDViTClassifier"}[model]
