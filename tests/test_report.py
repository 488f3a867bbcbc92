"""write_report(): the HTML report (collected data, figures, HTML) and its safety checks."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import torch

from tod_cleanse import ToDCleanser, write_report
from tod_cleanse.cli import main

torch.set_num_threads(1)

VOID = {"meta", "img", "br", "hr", "link", "input"}


# ------------------------------------------------------------------ report
class _Balance(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls = [], [], []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for a, v in attrs if a in ("src", "href") and v is not None]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.urls += [v for a, v in attrs if a in ("src", "href") and v is not None]

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _check_html(text: str) -> _Balance:
    parser = _Balance()
    parser.feed(text)
    parser.close()
    assert parser.errors == [] and parser.stack == []
    # also well-formed XML once the doctype is removed
    ET.fromstring(text.replace("<!DOCTYPE html>", "", 1))
    assert "http://" not in text and "https://" not in text and "//" not in "".join(
        u for u in parser.urls if not u.startswith("data:"))
    assert all(u.startswith("data:image/png;base64,") or u.startswith("#")
               for u in parser.urls)
    return parser


def _dropped_keys(text: str) -> list[str]:
    section = text.split('<section id="dropped">', 1)[1]
    return re.findall(r'<tr class="dropped" data-key="([^"]*)"', section)


@pytest.fixture(scope="module")
def tabular(noisy_blobs, small_mlp, tmp_path_factory):
    """One report on a DataFrame (escaped feature names), reused by several tests."""
    X, y, y_noisy = noisy_blobs(n=260)
    df = pd.DataFrame(X, columns=[f"f<{j}>" for j in range(X.shape[1])])
    out = tmp_path_factory.mktemp("tab") / "sub" / "report.html"
    rep = write_report(small_mlp(), df.iloc[:200], y_noisy[:200], out, X_test=df.iloc[200:],
                       y_test=y[200:], drop_fraction=0.1, max_test=5, k=3)
    return rep, df, y, y_noisy


def test_report_tabular(tabular):
    rep, df, y, _ = tabular
    text = rep.html.read_text(encoding="utf-8")
    parser = _check_html(text)
    cl = rep.cleanser
    issues = cl.issues_
    expected = issues[issues.is_issue].sort_values("rank")["key"].astype(str).tolist()
    assert len(expected) == 20
    assert _dropped_keys(text) == expected  # every dropped row, ranked
    # feature names are escaped, feature values shown
    assert "f&lt;0&gt;=" in text and "f<0>=" not in text
    # figures: embedded and written as PNG files
    assert {"score_distribution", "dropped_by_class", "class_confusion"} <= set(rep.figures)
    for path in rep.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sum(u.startswith("data:image/png") for u in parser.urls) >= len(rep.figures)
    # misclassified test examples with their training rows
    wrong = int((cl.estimator_.predict(df.iloc[200:]) != y[200:]).sum())
    n_cases = text.count('<div class="case"')
    assert n_cases == min(5, wrong) and n_cases > 0
    ex = rep.explanations
    assert set(ex.target) == {int(t) for t in re.findall(r'data-target="(\d+)"', text)}
    harm = ex[ex.kind == "harmful"]
    assert (harm.train_label.to_numpy() == harm.predicted_label.to_numpy()).all()
    assert (harm.influence < 0).all()
    # class-pair confusion of the dropped rows
    assert '<section id="confusion">' in text and 'class="cm"' in text


@pytest.mark.parametrize("estimate", ["gradient", "exact"])
def test_report_explains_with_the_chosen_influence_estimate(tabular, tmp_path, estimate):
    """By default the rows behind a test example come from the gradient estimate (the
    report holds the training rows it needs); "exact" is the paper's two-pass one."""
    rep, df, y, y_noisy = tabular
    kw = {} if estimate == "gradient" else {"influence_estimate": "exact"}
    again = write_report(rep.cleanser, df.iloc[:200], y_noisy[:200], tmp_path / "r.html",
                         X_test=df.iloc[200:], y_test=y[200:], max_test=5, k=3, **kw)
    est = rep.cleanser.estimator_
    targets = sorted(set(again.explanations.target))
    X_w = df.iloc[200:].iloc[targets]
    M = est.score_influence(X_w, y[200:][targets], estimate=estimate,
                            train_set=(df.iloc[:200], y_noisy[:200]))
    for pos, t in enumerate(targets):
        rows = again.explanations[again.explanations.target == t]
        np.testing.assert_allclose(rows.influence, M[pos, rows.train_index], atol=1e-9)
    if estimate == "gradient":
        pd.testing.assert_frame_equal(again.explanations, rep.explanations)
    with pytest.raises(ValueError, match="influence_estimate"):
        write_report(rep.cleanser, df.iloc[:200], y_noisy[:200], tmp_path / "x.html",
                     influence_estimate="bogus")


def test_report_text_is_escaped(tabular, tmp_path):
    rep, df, _, y_noisy = tabular
    cl = rep.cleanser
    worst = int(np.argmin(cl.scores_))
    texts = [f"plain text {i} & more" for i in range(200)]
    texts[worst] = "<script>alert('x')</script> evil"
    out = tmp_path / "text.html"
    write_report(cl, df.iloc[:200], y_noisy[:200], out, display=texts)
    text = out.read_text(encoding="utf-8")
    _check_html(text)
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; evil" in text
    assert "plain text" in text and "&amp; more" in text
    assert len(_dropped_keys(text)) == cl.n_dropped_


def test_report_image_thumbnails(small_mlp, tmp_path):
    rng = np.random.default_rng(1)
    n = 160
    y = rng.integers(2, size=n)
    images = rng.random((n, 6, 5)).astype(np.float32) * 0.3
    images[y == 1, :, :2] += 1.0  # class 1: bright left columns
    y_noisy = y.copy()
    y_noisy[:8] = 1 - y_noisy[:8]
    X = images.reshape(n, -1)
    out = tmp_path / "img.html"
    rep = write_report(small_mlp(), X[:120], y_noisy[:120], out, X_test=X[120:], y_test=y[120:],
                       image_shape=(6, 5), drop_fraction=0.05)
    text = out.read_text(encoding="utf-8")
    _check_html(text)
    rows = text.split('<section id="dropped">', 1)[1].split("<tr ")[1:]
    assert len(rows) == rep.cleanser.n_dropped_ == 6
    for row in rows:
        src = re.search(r'<img class="thumb"[^>]*src="data:image/png;base64,([^"]+)"', row)
        png = base64.b64decode(src.group(1))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(png[16:20], "big") == 5 and int.from_bytes(png[20:24], "big") == 6
    # 3-D image input is shown as images without image_shape (content from the data shape)
    out2 = tmp_path / "img3d.html"
    write_report(rep.cleanser, X[:120], y_noisy[:120], out2, display=images[:120])
    assert out2.read_text(encoding="utf-8").count('<img class="thumb"') == 6
    with pytest.raises(ValueError, match="image_shape"):
        write_report(rep.cleanser, X[:120], y_noisy[:120], out2, content="image")
    with pytest.raises(ValueError, match="image_shape"):
        write_report(rep.cleanser, X[:120], y_noisy[:120], out2, image_shape=(7, 7))


def test_report_bad_input(tabular, tmp_path):
    rep, df, y, y_noisy = tabular
    cl, X, y = rep.cleanser, df.iloc[:200], y_noisy[:200]
    with pytest.raises(ValueError, match="y must be the 200 training labels"):
        write_report(cl, X.iloc[:50], y[:50], tmp_path / "r.html")
    with pytest.raises(TypeError, match="estimator must be"):
        write_report("mlp", X, y, tmp_path / "r.html")
    with pytest.raises(ValueError, match="X_test and y_test"):
        write_report(cl, X, y, tmp_path / "r.html", X_test=X)
    with pytest.raises(ValueError, match="display must have one entry"):
        write_report(cl, X, y, tmp_path / "r.html", display=["a"])
    with pytest.raises(ValueError, match="content must be one of"):
        write_report(cl, X, y, tmp_path / "r.html", content="video")
    assert not (tmp_path / "r.html").exists()


def test_cli_report_from_csv(noisy_blobs, tmp_path, capsys):
    X, y, y_noisy = noisy_blobs(n=200)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["label"] = y_noisy
    df["id"] = [f"id{i}" for i in range(len(df))]
    csv = tmp_path / "data.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "cli.html"
    code = main(["-q", "report", str(csv), "--label", "label", "--key", "id",
                 "--max-epochs", "3", "--drop-fraction", "0.05", "--out", str(out)])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    _check_html(text)
    keys = _dropped_keys(text)
    assert len(keys) == 8 and all(k.startswith("id") for k in keys)  # 5% of 160 rows
    assert (tmp_path / "cli_figures" / "score_distribution.png").exists()
    assert f"report: {out}" in capsys.readouterr().out


def test_cli_report_from_parquet_list_column(noisy_blobs, tmp_path, capsys):
    """A list column (like clean --export-demo's pixels) feeds the MLP and the thumbnails."""
    X, y, _ = noisy_blobs(n=120, n_features=4)
    df = pd.DataFrame({"pixels": list(X), "label": y, "id": np.arange(len(y)) * 7})
    src = tmp_path / "data.parquet"
    df.to_parquet(src)
    out = tmp_path / "pq.html"
    code = main(["-q", "report", str(src), "--label", "label", "--key", "id",
                 "--features", "pixels", "--image-shape", "2x2", "--max-epochs", "1",
                 "--hidden", "8", "--test-fraction", "0", "--drop-fraction", "0.1",
                 "--out", str(out)])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    keys = _dropped_keys(text)
    assert len(keys) == 12 and all(int(k) % 7 == 0 for k in keys)
    assert text.count('<img class="thumb"') == 12


@pytest.mark.parametrize("order", ["reversed", "rolled"])
def test_report_refuses_rows_of_another_order(small_mlp, tabular, tmp_path, order):
    """A fitted cleanser shown with its data in another order: never pair rows wrongly."""
    rep, df, _, y_noisy = tabular
    cl, X, y = rep.cleanser, df.iloc[:200], y_noisy[:200]
    step = (lambda a: a[::-1]) if order == "reversed" else (lambda a: np.roll(a, 1, axis=0))
    X2 = pd.DataFrame(step(X.to_numpy()), columns=X.columns)
    with pytest.raises(ValueError, match="^y does not match"):
        write_report(cl, X2, step(y), tmp_path / "r.html")
    # the labels alone agree (same class for rows swapped): X is checked by prediction
    same = np.sort(y)
    fit = ToDCleanser(small_mlp(max_epochs=3), drop_fraction=0.1).fit(X.iloc[np.argsort(y,
                                                                               kind="stable")],
                                                                same)
    with pytest.raises(ValueError, match="^X does not match"):
        write_report(fit, X, same, tmp_path / "r.html")
    with pytest.raises(ValueError, match="^instance_keys do not match"):
        write_report(cl, X, y, tmp_path / "r.html", instance_keys=np.arange(200)[::-1])
    assert not (tmp_path / "r.html").exists()
    # the data it saw, in its order, is accepted
    write_report(cl, X, y, tmp_path / "ok.html", instance_keys=np.arange(200))
    assert (tmp_path / "ok.html").exists()


def test_report_mathtext_labels_are_literal(noisy_blobs, small_mlp, tmp_path):
    """Labels are text: ``$\\frac{$`` is drawn literally and escaped in the HTML."""
    X, y, y_noisy = noisy_blobs(n=150)
    names = np.array(["$\\frac{$", "a_b^c", "<b>"], dtype=object)
    out = tmp_path / "math.html"
    rep = write_report(small_mlp(max_epochs=2), X, names[y_noisy], out, drop_fraction=0.1)
    text = out.read_text(encoding="utf-8")
    _check_html(text)
    assert "$\\frac{$" in text and "&lt;b&gt;" in text and "<b>" not in text
    for path in rep.figures.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_fitted_text_model_checks_rows(tmp_path):
    """Texts of different lengths: the prediction fingerprint ignores padding, sees order."""
    transformers = pytest.importorskip("transformers")
    words = [f"w{i}" for i in range(40)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    folder = tmp_path / "tiny-bert"
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(
        folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32,
                                     num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    rng = np.random.default_rng(0)
    y = np.where(np.arange(48) % 2 == 0, "neg", "pos")
    X = [" ".join(rng.choice(words[:20] if c == "neg" else words[20:],
                             size=rng.integers(2, 12))) for c in y]
    from tod_cleanse import ToDBertClassifier

    est = ToDBertClassifier(model_name_or_path=str(folder), max_epochs=4, batch_size=8,
                            lr=5e-3, max_length=16, device="cpu", random_state=0, verbose=0)
    cl = ToDCleanser(est, drop_fraction=0.1).fit(X, y)
    rep = write_report(cl, X, y, tmp_path / "text.html")
    assert '<pre class="txt">' in rep.html.read_text(encoding="utf-8")
    # shifted by two rows: the labels still line up (they alternate), the texts do not
    with pytest.raises(ValueError, match="^X does not match"):
        write_report(cl, X[2:] + X[:2], y, tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()
