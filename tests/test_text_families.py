"""ToDTextClassifier on tiny random encoders of every supported family, saved to tmp_path.

Families: BERT, RoBERTa, DistilBERT, DeBERTa-v3 and DeBERTa-v2 (with its embedding
convolution) layouts, ELECTRA (with an embedding projection) and ModernBERT. Each gets a 95-token
WordPiece vocabulary and a 2-layer, 32-unit random model written to a folder,
as a user's checkpoint would be.
"""

import os
import pickle

import numpy as np
import pytest
import torch

from tod_cleanse import ToDBertClassifier, ToDTextClassifier
from tod_cleanse.estimators.registry import make_estimator
from tod_cleanse.estimators.text_layout import TextToDNetwork
from tod_cleanse.layers import tod_modules

transformers = pytest.importorskip("transformers")

WORDS = [f"w{i}" for i in range(90)]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
V = len(SPECIAL) + len(WORDS)
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, max_position_embeddings=64, pad_token_id=0)


def _configs():
    tf = transformers
    return {
        "bert": lambda: tf.BertConfig(**SMALL),
        "roberta": lambda: tf.RobertaConfig(**SMALL, type_vocab_size=1),
        "distilbert": lambda: tf.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=2,
                                                  hidden_dim=64, max_position_embeddings=64,
                                                  pad_token_id=0),
        "deberta-v3": lambda: tf.DebertaV2Config(
            **SMALL, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"],
            position_biased_input=False, norm_rel_ebd="layer_norm", share_att_key=True),
        # DeBERTa-v2 (xlarge/xxlarge layout): a convolution mixes the embeddings into layer 0
        "deberta-v2": lambda: tf.DebertaV2Config(
            **{**SMALL, "num_hidden_layers": 3}, relative_attention=True, position_buckets=16,
            pos_att_type=["p2c", "c2p"], conv_kernel_size=3),
        "electra": lambda: tf.ElectraConfig(**SMALL, embedding_size=16),
        "modernbert": lambda: tf.ModernBertConfig(
            vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
            eos_token_id=3, cls_token_id=2, sep_token_id=3, global_attn_every_n_layers=1),
    }


FAMILIES = list(_configs())
# Families whose whole classification head is exactly separated (every weight
# matrix of the head has its input or output masked). ModernBERT's head is
# dense -> GELU -> LayerNorm -> ToD -> classifier: the LayerNorm mixes all units,
# so only the classifier's flipped columns are separated there.
EXACT_HEAD = {"bert", "roberta", "distilbert", "deberta-v3", "deberta-v2", "electra"}


def _save_model(folder, config):
    os.makedirs(folder, exist_ok=True)
    tok = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(SPECIAL + WORDS)})
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return request.param, _save_model(folder, _configs()[request.param]())


def _texts(n=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, "neg", "pos")
    X = [" ".join(rng.choice(WORDS[:45] if c == "neg" else WORDS[45:], size=rng.integers(3, 9)))
         for c in y]
    return X, y


def _clf(path, **kw):
    params = dict(model_name_or_path=path, max_epochs=1, batch_size=8, lr=1e-3, max_length=16,
                  device="cpu", random_state=0, verbose=0)
    return ToDTextClassifier(**{**params, **kw})


@pytest.mark.parametrize("placement", ["head", "top-1"])
def test_fit_scores_and_split_match_the_plain_forward(family, placement, naive_influence):
    name, path = family
    X, y = _texts()
    X[0] = "w1"  # a short row: batches are padded, attention masks must hold
    clf = _clf(path, tod_layers=placement, score_batch_size=5).fit(
        X, y, instance_keys=[f"doc-{i}" for i in range(16)])
    assert clf.module_.split == ("encoder" if placement == "head" else "layers")
    assert not tod_modules(clf.module_.trunk)
    in_layers = [m for m in tod_modules(clf.module_) if 0 < m.layer_seed < 10_000]
    assert bool(in_layers) == (placement == "top-1")  # the top layer's hidden dropouts
    assert clf.oos_proba_.shape == (16, 2) and np.isfinite(clf.self_influence_).all()
    np.testing.assert_allclose(clf.predict_proba(X[:3]).sum(axis=1), 1.0, rtol=1e-6)
    fast = clf.score_influence(X[:2], y[:2])
    np.testing.assert_allclose(fast, naive_influence(clf, X[:2], y[:2]), atol=2e-5)
    np.testing.assert_allclose(clf.self_influence_[:2], np.diag(fast[:, :2]), atol=2e-5)


def test_head_separation(family):
    """One instance's steps never touch the flipped columns of the output layer.

    Where every head matrix is masked (all but ModernBERT) the flipped head's
    logits stay bit-identical; ModernBERT's head LayerNorm mixes the units, so
    there the flipped logits move although the flipped columns do not.
    """
    name, path = family
    X, y = _texts()
    clf = _clf(path, optimizer="adam", weight_decay=0.0).fit(X, y)
    clf.module_.eval()
    h = clf._trunk(clf._batch(clf._validate_X(X, reset=False), np.arange(16)))
    key = torch.tensor([int(clf.train_keys_[3])])
    before_flip = clf._head_logits(h, key, "flipped")
    out_layer = [m for m in clf.module_.hf_model.modules()
                 if isinstance(m, torch.nn.Linear) and m.out_features == 2][-1]
    w_before = out_layer.weight.detach().clone()
    clf.optimizer_ = torch.optim.Adam(clf.module_.parameters(), lr=1e-2)  # no momentum yet
    xb = clf._batch(clf._validate_X(X[3:4], reset=False), np.array([0]))
    for _ in range(3):
        clf.train_step(xb, torch.tensor([1 - int(clf.y_train_[3])]), key)
    clf.module_.eval()
    last_tod = [m for m in tod_modules(clf.module_.hf_model) if m.layer_seed in (0, 10_001)][-1]
    flipped = last_tod.mask(key, out_layer.in_features, flipped=True)[0]
    changed = (out_layer.weight.detach() != w_before).any(dim=0)
    assert changed.any() and not (changed & flipped).any()
    same = torch.equal(clf._head_logits(h, key, "flipped"), before_flip)
    assert same == (name in EXACT_HEAD)


def test_save_pretrained_pickle_and_registry(family, tmp_path):
    name, path = family
    X, y = _texts()
    keys = np.array([f"doc-{i}" for i in range(16)])
    clf = _clf(path, tod_layers="top-1").fit(X, y, instance_keys=keys)
    proba, infl = clf.predict_proba(X), clf.score_influence(X[:2], y[:2])
    clf.save_pretrained(tmp_path / "saved")
    loaded = ToDBertClassifier.from_pretrained(tmp_path / "saved", device="cpu", verbose=0)
    assert type(loaded) is ToDTextClassifier and loaded.tod_layers == "top-1"
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-5)
    np.testing.assert_allclose(loaded.score_influence(X[:2], y[:2]), infl, atol=1e-5)
    assert loaded.instance_keys_.tolist() == keys.tolist()  # the raw keys, not their hashes
    clone = pickle.loads(pickle.dumps(clf))  # rebuilt from model_config_, no files read
    np.testing.assert_array_equal(clone.predict_proba(X), proba)
    est = make_estimator("text", model_name_or_path=path, max_epochs=1, verbose=0)
    assert isinstance(est, ToDTextClassifier) and make_estimator("bert").__class__ is type(est)


def test_a_head_without_dropout_is_named(tmp_path):
    path = _save_model(tmp_path / "gpt2", transformers.GPT2Config(
        vocab_size=V, n_embd=32, n_layer=1, n_head=2, n_positions=64, pad_token_id=0,
        bos_token_id=2, eos_token_id=3))
    X, y = _texts(4)
    with pytest.raises(ValueError, match="model type 'gpt2'.*calls no dropout.*Supported"):
        _clf(path).fit(X, y)


def test_top_layers_need_one_module_per_layer(tmp_path):
    """ALBERT shares one layer group across depth: 'head' works, 'top-N' is refused."""
    path = _save_model(tmp_path / "albert", transformers.AlbertConfig(
        vocab_size=V, embedding_size=16, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
        pad_token_id=0))
    X, y = _texts(4)
    assert len(tod_modules(_clf(path).fit(X, y).module_)) == 1
    with pytest.raises(ValueError, match="model type 'albert'.*tod_layers must be 'head'"):
        _clf(path, tod_layers="top-1").fit(X, y)


def test_a_split_that_does_not_reproduce_the_model_is_refused(tmp_path, monkeypatch):
    path = _save_model(tmp_path / "bert", transformers.BertConfig(**SMALL))
    monkeypatch.setattr(TextToDNetwork, "check_split", lambda self: 0.5)
    X, y = _texts(4)
    with pytest.raises(ValueError, match="model type 'bert': tod_layers='top-1' cannot be "
                                         "split"):
        _clf(path, tod_layers="top-1").fit(X, y)
