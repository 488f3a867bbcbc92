"""explain(): top-k helpful / harmful training rows; write_report(): the HTML report."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import torch

from tod_cleanse import ToDMLPClassifier, write_report
from tod_cleanse.cli import main
from tod_cleanse.explain import EXPLAIN_COLUMNS, explain

torch.set_num_threads(1)

VOID = {"meta", "img", "br", "hr", "link", "input"}


def _data(n=240, n_features=6, n_classes=3, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(n_classes, n_features))
    y = rng.integers(n_classes, size=n)
    X = (centers[y] + rng.normal(size=(n, n_features))).astype(np.float32)
    y_noisy = y.copy()
    flip = rng.choice(n, size=int(noise * n), replace=False)
    y_noisy[flip] = (y[flip] + 1) % n_classes
    return X, y, y_noisy


def _est(**kw):
    params = dict(hidden_layer_sizes=(16,), max_epochs=8, batch_size=32, random_state=0,
                  verbose=0)
    params.update(kw)
    return ToDMLPClassifier(**params)


@pytest.fixture(scope="module")
def fitted():
    X, y, y_noisy = _data()
    keys = np.array([f"row-{i}" for i in range(len(y))])
    # a small score_batch_size forces several influence blocks per call
    est = _est(score_batch_size=300).fit(X[:200], y_noisy[:200], instance_keys=keys[:200])
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


@pytest.mark.parametrize("with_y", [True, False])
def test_explain_ranks_agree_with_score_influence(fitted, with_y):
    est, X, y, _, keys = fitted
    X_t, y_t = X[200:212], y[200:212]
    k = 4
    table = est.explain(X_t, y_t if with_y else None, k=k)
    assert tuple(table.columns) == EXPLAIN_COLUMNS
    pred = est.predict(X_t)
    M = est.score_influence(X_t, y_t if with_y else pred)
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

    def spy(self, X_t, y_t):
        for rows, block in original(self, X_t, y_t):
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


def test_explain_bad_input(fitted):
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
        explain(_est(turn_over=False).fit(X[:60], y[:60]), X[:2])


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
def tabular(tmp_path_factory):
    """One report on a DataFrame (escaped feature names), reused by several tests."""
    X, y, y_noisy = _data(n=260)
    df = pd.DataFrame(X, columns=[f"f<{j}>" for j in range(X.shape[1])])
    out = tmp_path_factory.mktemp("tab") / "sub" / "report.html"
    rep = write_report(_est(), df.iloc[:200], y_noisy[:200], out, X_test=df.iloc[200:],
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


def test_report_image_thumbnails(tmp_path):
    rng = np.random.default_rng(1)
    n = 160
    y = rng.integers(2, size=n)
    images = rng.random((n, 6, 5)).astype(np.float32) * 0.3
    images[y == 1, :, :2] += 1.0  # class 1: bright left columns
    y_noisy = y.copy()
    y_noisy[:8] = 1 - y_noisy[:8]
    X = images.reshape(n, -1)
    out = tmp_path / "img.html"
    rep = write_report(_est(), X[:120], y_noisy[:120], out, X_test=X[120:], y_test=y[120:],
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
    with pytest.raises(ValueError, match="fitted ToDCleanser saw 200"):
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


def test_cli_report_from_csv(tmp_path, capsys):
    X, y, y_noisy = _data(n=200)
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    df["label"] = y_noisy
    df["id"] = [f"id{i}" for i in range(len(df))]
    csv = tmp_path / "data.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "cli.html"
    code = main(["-q", "report", "--input", str(csv), "--key-column", "id", "--max-epochs", "3",
                 "--drop-fraction", "0.05", "-o", str(out)])
    assert code == 0
    text = out.read_text(encoding="utf-8")
    _check_html(text)
    keys = _dropped_keys(text)
    assert len(keys) == 8 and all(k.startswith("id") for k in keys)  # 5% of 160 rows
    assert (tmp_path / "cli_figures" / "score_distribution.png").exists()
    assert f"report: {out}" in capsys.readouterr().out
