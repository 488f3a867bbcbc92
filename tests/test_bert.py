"""ToDBertClassifier on a tiny BERT saved to tmp_path: placement, scoring, separation, I/O."""

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_estimator_cloneable,
    check_estimator_repr,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from tod_cleanse import ToDBertClassifier
from tod_cleanse.layers import tod_modules

transformers = pytest.importorskip("transformers")

WORDS = [f"w{i}" for i in range(90)]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _write_tokenizer(folder):
    os.makedirs(folder, exist_ok=True)
    vocab = os.path.join(folder, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as fh:
        fh.write("\n".join(SPECIAL + WORDS) + "\n")
    if int(transformers.__version__.split(".")[0]) >= 5:  # v5 takes the vocabulary itself
        with open(vocab, encoding="utf-8") as fh:
            tok = transformers.BertTokenizer(vocab={w.strip(): i for i, w in enumerate(fh)})
    else:  # pragma: no cover - transformers 4.x
        tok = transformers.BertTokenizerFast(vocab_file=vocab)
    assert len(tok) == len(SPECIAL) + len(WORDS)
    tok.save_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 2-layer, 32-unit BERT with a 95-token vocabulary, saved as a local folder."""
    folder = str(tmp_path_factory.mktemp("tiny-bert"))
    _write_tokenizer(folder)
    config = transformers.BertConfig(
        vocab_size=len(SPECIAL) + len(WORDS), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def _texts(n=48, seed=0):
    """Two classes written with disjoint halves of the vocabulary."""
    rng = np.random.default_rng(seed)
    y = np.where(np.arange(n) % 2 == 0, "neg", "pos")
    X = [" ".join(rng.choice(WORDS[:45] if c == "neg" else WORDS[45:], size=rng.integers(3, 9)))
         for c in y]
    return X, y


def _clf(path, **kw):
    params = dict(max_epochs=2, batch_size=16, lr=1e-3, max_length=16, device="cpu",
                  random_state=0, verbose=0)
    return ToDBertClassifier(model_name_or_path=path, **{**params, **kw})


@pytest.mark.parametrize(
    "check",
    [check_parameters_default_constructible, check_no_attributes_set_in_init,
     check_get_params_invariance, check_set_params, check_estimator_cloneable,
     check_estimator_repr],
)
def test_sklearn_api_checks(check):
    # The data-driven sklearn checks feed numeric 2-D arrays, which are not texts
    # (tags: two_d_array=False, string=True); they are replaced by the tests below.
    check("ToDBertClassifier", ToDBertClassifier())


def test_fit_scores_and_string_labels(tiny_bert):
    X, y = _texts()
    clf = _clf(tiny_bert, max_epochs=8, lr=3e-3).fit(X, y)
    assert clf.classes_.tolist() == ["neg", "pos"]
    assert clf.self_influence_.shape == (48,) and np.isfinite(clf.self_influence_).all()
    np.testing.assert_allclose(clf.oos_proba_.sum(axis=1), 1.0, rtol=1e-5)
    assert set(clf.predict(X[:5])) <= {"neg", "pos"}
    assert clf.predict_proba(np.array(X[:3], dtype=object)).shape == (3, 2)
    assert clf.score_influence(X[:4], y[:4]).shape == (4, 48)
    assert clf.score(X, y) > 0.9  # the two vocabularies are learned
    with pytest.raises(NotFittedError):
        _clf(tiny_bert).predict(X[:2])


@pytest.mark.parametrize(("placement", "n_tod", "trunk_layers"),
                         [("head", 1, 0), ("top-1", 3, 1), (2, 5, 0), ("all", 5, 0)])
def test_placement(tiny_bert, placement, n_tod, trunk_layers):
    X, y = _texts(16)
    clf = _clf(tiny_bert, tod_layers=placement, max_epochs=1).fit(X, y)
    assert len(tod_modules(clf.module_)) == n_tod
    assert clf.module_.cut == trunk_layers
    assert clf.module_.hf_model.classifier.bias is None


def test_trunk_reuse_matches_naive_scoring_with_padding(tiny_bert, naive_influence):
    X, y = _texts(12)
    X[0] = "w1"  # a short row: the batch is padded, the attention mask must hold
    clf = _clf(tiny_bert, tod_layers="top-1", score_batch_size=7).fit(X, y)
    fast = clf.score_influence(X[:3], y[:3])
    np.testing.assert_allclose(fast, naive_influence(clf, X[:3], y[:3]), atol=1e-5)
    np.testing.assert_allclose(clf.self_influence_[:3], np.diag(fast[:, :3]), atol=1e-5)


def test_text_pairs(tiny_bert):
    X, y = _texts(16)
    pairs = list(zip(X, X[::-1], strict=True))
    clf = _clf(tiny_bert, max_epochs=1).fit(pairs, y)
    assert clf.is_pair_
    assert clf.predict_proba(np.array(pairs[:3], dtype=object)).shape == (3, 2)
    with pytest.raises(ValueError, match="text pairs"):
        clf.predict(X[:2])


def test_classifier_head_separation_is_exact(tiny_bert):
    """Steps on one instance leave its flipped classifier sub-network bit-identical."""
    X, y = _texts(16)
    clf = _clf(tiny_bert, tod_layers="head", optimizer="adam", weight_decay=0.0).fit(X, y)
    clf.module_.eval()
    h = clf._trunk(clf._batch(clf._validate_X(X, reset=False), np.arange(16)))  # pooled
    key = torch.tensor([int(clf.train_keys_[3])])
    before_flip = clf._head_logits(h, key, "flipped")
    before_seen = clf._head_logits(h, key, "seen")
    clf.optimizer_ = torch.optim.Adam(clf.module_.parameters(), lr=1e-2)  # no momentum yet
    xb = clf._batch(clf._validate_X(X[3:4], reset=False), np.array([0]))
    yb = torch.tensor([1 - int(np.searchsorted(clf.classes_, y[3]))])  # a wrong label
    for _ in range(3):
        clf.train_step(xb, yb, key)
    clf.module_.eval()
    assert torch.equal(clf._head_logits(h, key, "flipped"), before_flip)
    assert not torch.allclose(clf._head_logits(h, key, "seen"), before_seen)


def test_pickle_and_save_pretrained_round_trip(tiny_bert, tmp_path):
    X, y = _texts(16)
    clf = _clf(tiny_bert, tod_layers="top-1").fit(X, y)
    proba = clf.predict_proba(X)
    infl = clf.score_influence(X[:2], y[:2])
    clone = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone.predict_proba(X), proba)
    np.testing.assert_array_equal(clone.score_influence(X[:2], y[:2]), infl)
    clf.save_pretrained(tmp_path / "saved")
    loaded = ToDBertClassifier.from_pretrained(tmp_path / "saved", device="cpu", verbose=0)
    assert loaded.tod_layers == "top-1" and loaded.classes_.tolist() == ["neg", "pos"]
    np.testing.assert_allclose(loaded.predict_proba(X), proba, atol=1e-6)
    np.testing.assert_allclose(loaded.score_influence(X[:2], y[:2]), infl, atol=1e-5)
    np.testing.assert_array_equal(loaded.self_influence_, clf.self_influence_)
    # The folder is a standard transformers checkpoint of the fine-tuned encoder.
    enc = transformers.AutoModel.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(enc.embeddings.word_embeddings.weight,
                               clf.module_.hf_model.bert.embeddings.word_embeddings.weight)


def test_missing_tokenizer_and_model_errors_name_the_path(tiny_bert, tmp_path):
    X, y = _texts(8)
    no_tok = tmp_path / "no-tokenizer"
    transformers.BertForSequenceClassification(
        transformers.BertConfig.from_pretrained(tiny_bert)).save_pretrained(no_tok)
    with pytest.raises(ValueError, match="no-tokenizer.*tokenizer"):
        _clf(str(no_tok)).fit(X, y)
    with pytest.raises(ValueError, match="missing-folder"):
        _clf(str(tmp_path / "missing-folder")).fit(X, y)


@pytest.mark.parametrize(
    ("X", "kwargs", "exc", "match"),
    [
        ("w1 w2", {}, TypeError, "single string"),
        (np.zeros((4, 3)), {}, ValueError, "2 columns"),
        ([1.0, 2.0, 3.0, 4.0], {}, TypeError, "strings"),
        ([], {}, ValueError, "empty"),
        (["w1"] * 4, {"tod_layers": "top-9"}, ValueError, "tod_layers"),
        (["w1"] * 4, {"tod_layers": "middle"}, ValueError, "tod_layers"),
        (["w1"] * 4, {"max_length": 1}, ValueError, "max_length"),
    ],
)
def test_bad_input_is_named(tiny_bert, X, kwargs, exc, match):
    y = [0, 1] * (len(X) // 2) if not isinstance(X, str) else [0]
    with pytest.raises(exc, match=match):
        _clf(tiny_bert, **kwargs).fit(X, y)


@pytest.mark.parametrize("placement, oos_layer, layer", [
    ("head", None, None), ("top-1", None, None),  # the encoder's pooled output
    ("head", "auto", 2), ("top-1", "auto", 1),  # 2/3 up, lowered below the ToD layers
    ("head", 0, 0), ("all", "auto", 0)])  # the embeddings
def test_members_leave_the_tod_network_bit_identical_and_read_their_layer(
        tiny_bert, placement, oos_layer, layer, assert_same_tod_network):
    """Out-of-fold members read a layer of the encoder (or its pooled output), detached:
    the fine-tuned model (and its gradient clipping) trains exactly as without them, and
    ``oos_proba_`` is each row's fold member on that layer's token mean."""
    from tod_cleanse.folds import key_fold, out_of_fold_logits

    X, y = _texts()
    a = _clf(tiny_bert, tod_layers=placement, oos_folds=3, oos_width=8,
             oos_layer=oos_layer).fit(X, y)
    b = _clf(tiny_bert, tod_layers=placement, oos_folds=None).fit(X, y)
    assert a.oos_layer_ == layer and a.module_.members_input == "trunk"
    assert_same_tod_network(a, b)
    net = a.module_.eval()
    batch = net._inputs(a._batch(a._validate_X(X, reset=False), np.arange(len(X))))
    with torch.no_grad():
        out = net.model.base_model(**batch, output_hidden_states=True)
        if layer is None:
            feats = out.pooler_output
        else:
            mask = batch["attention_mask"].float()[..., None]
            feats = (out.hidden_states[layer] * mask).sum(1) / mask.sum(1)
        logits = net.members(feats)
    folds = key_fold(torch.as_tensor(a.train_keys_), 3)
    expected = torch.softmax(out_of_fold_logits(logits, folds) / a.oos_temperature_, 1)
    np.testing.assert_allclose(a.oos_proba_, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("placement, oos_layer, match", [
    ("head", 3, r"0\.\.2"), ("top-1", 2, r"0\.\.1.*1 of them with ToD")])
def test_a_member_layer_above_the_tod_layers_is_refused(tiny_bert, placement, oos_layer,
                                                        match):
    X, y = _texts()
    with pytest.raises(ValueError, match=match):
        _clf(tiny_bert, tod_layers=placement, oos_layer=oos_layer).fit(X, y)


def test_the_default_has_members_on_two_thirds_of_the_encoder(tiny_bert):
    clf = _clf(tiny_bert).fit(*_texts())
    assert (clf.oos_folds, clf.oos_layer, clf.oos_layer_) == (5, "auto", 2)
    assert clf.module_.members.n_folds == 5
    # the members start from scratch on pretrained features: 10x the fine-tuning lr
    lrs = {id(q): g["lr"] for g in clf._make_optimizer().param_groups for q in g["params"]}
    members = list(clf.module_.members.parameters())
    assert members and all(lrs[id(q)] == pytest.approx(10 * clf.lr) for q in members)
    assert all(lrs[id(q)] == pytest.approx(clf.lr) for q in clf.module_.model.parameters())


def test_member_layer_and_token_mean_name_what_is_wrong():
    from tod_cleanse.estimators.text_members import member_layer, token_mean

    with pytest.raises(ValueError, match=r"oos_layer=3 needs a list of encoder layers"):
        member_layer(3, None, 0)
    assert member_layer("auto", None, 0) is None  # no layer list: the pooled output
    with pytest.raises(ValueError, match=r"has shape \(5, 4\), not \(batch=2, tokens"):
        token_mean(torch.zeros(5, 4), torch.ones(2, 3))


def test_cleanser_defaults_to_the_text_familys_two_view_likelihood(tiny_bert):
    from tod_cleanse import ToDCleanser

    X, y = _texts(64, seed=1)
    flipped = np.zeros(64, bool)
    flipped[[3, 10, 17, 30, 41, 58]] = True
    y_noisy = np.where(flipped, np.where(y == "neg", "pos", "neg"), y)
    cl = ToDCleanser(_clf(tiny_bert, max_epochs=8, lr=3e-3), drop_fraction=6 / 64)
    cl.fit(X, y_noisy)
    est = cl.estimator_
    assert cl.method_ == ToDBertClassifier.default_method == "two_view_likelihood"
    rows = np.arange(64)
    np.testing.assert_allclose(
        cl.scores_, np.log(est.train_proba_[rows, est.y_train_] + 1e-12)
        + np.log(est.oos_proba_[rows, est.y_train_] + 1e-12), rtol=1e-6)
    # the two vocabularies are disjoint: the flipped rows score lowest
    assert flipped[np.argsort(cl.scores_)[:6]].sum() >= 5
