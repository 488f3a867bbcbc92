"""One error contract: bad inputs across the CLI and the API, each naming its culprit.

CLI: exit status 2, one line ``tod-cleanse <cmd>: error: ...`` on stderr naming the
flag, column or file, no traceback (unless --debug), and nothing trained or
written. API: the exception type and a message naming the argument.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tod_cleanse import ToDCleanser, ToDMLPClassifier, write_report
from tod_cleanse.cli import main

torch.set_num_threads(1)


def _est(**kw):
    params = dict(hidden_layer_sizes=(8,), max_epochs=1, batch_size=32, random_state=0,
                  verbose=0)
    params.update(kw)
    return ToDMLPClassifier(**params)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small tables, good and broken, and a fitted cleanser for the API cases."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    n = 60
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.arange(n) % 3
    good = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    good["label"] = y
    good["id"] = [f"id{i}" for i in range(n)]
    good["note"] = "text"
    good["noisy3"] = np.arange(n) % 3  # not boolean
    good.to_parquet(d / "good.parquet")
    good.to_csv(d / "good.csv", index=False)
    (d / "fake.parquet").write_text((d / "good.csv").read_text())
    (d / "binary.csv").write_bytes((d / "good.parquet").read_bytes())
    dup = good.copy()
    dup.loc[5, "id"] = "id0"
    dup.to_parquet(d / "dup.parquet")
    rare = good.copy()
    rare.loc[0, "label"] = 7  # a class of one row: no stratified test split
    rare.to_parquet(d / "rare.parquet")
    (d / "afile").write_text("not a folder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = ToDCleanser(_est(), drop_fraction=0.1).fit(X, y)
    return SimpleNamespace(dir=d, X=X, y=y, cl=cl, good=d / "good.parquet",
                           csv=d / "good.csv", fake=d / "fake.parquet",
                           dup=d / "dup.parquet", rare=d / "rare.parquet",
                           afile=d / "afile", out=d / "r.html")


# (id, argv with {placeholders} of the fixture, text the one-line message must hold)
CLI_CASES = [
    ("report-noise", ["report", "--noise", "2"], "--noise"),
    ("report-test-fraction", ["report", "--test-fraction", "1.5"], "--test-fraction"),
    ("report-missing-input", ["report", "{dir}/missing.parquet", "--label", "label"],
     "missing.parquet"),
    ("report-csv-as-parquet", ["report", "{fake}", "--label", "label"], "fake.parquet"),
    ("report-parquet-as-csv", ["report", "{dir}/binary.csv", "--label", "label"],
     "binary.csv"),
    ("report-missing-label", ["report", "{good}", "--label", "nope"], "--label 'nope'"),
    ("report-no-label", ["report", "{good}"], "--label"),
    ("report-non-numeric", ["report", "{good}", "--label", "label", "--key", "id"], "note"),
    ("report-non-numeric-csv", ["report", "{csv}", "--label", "label"], "note"),
    ("report-max-epochs-0", ["report", "--max-epochs", "0"], "--max-epochs"),
    ("report-out-under-file", ["report", "--out", "{afile}/r.html"], "afile"),
    ("report-out-is-folder", ["report", "--out", "{dir}"], "--out"),
    ("report-k-0", ["report", "--k", "0"], "--k"),
    ("report-device", ["report", "--device", "bogus"], "--device"),
    ("report-hidden", ["report", "--hidden", "8,x"], "--hidden"),
    ("report-image-shape", ["report", "--image-shape", "28"], "--image-shape"),
    ("report-image-shape-demo", ["report", "--image-shape", "3x3"], "--image-shape"),
    ("report-drop-fraction", ["report", "--drop-fraction", "2"], "--drop-fraction"),
    ("report-drop-and-threshold", ["report", "--drop-fraction", "0.1", "--threshold", "0"],
     "--threshold"),
    ("report-method", ["report", "--method", "nope"], "--method"),
    ("report-eval-influence", ["report", "--method", "eval_influence"], "eval_influence"),
    ("report-label-without-input", ["report", "--label", "label"], "--label"),
    ("report-lr", ["report", "--lr", "-1"], "--lr"),
    ("report-duplicate-keys", ["report", "{dup}", "--label", "label", "--key", "id",
                               "--features", "x0", "x1"], "--key column 'id'"),
    ("report-missing-feature", ["report", "{good}", "--label", "label", "--features", "x9"],
     "--features 'x9'"),
    ("report-image-shape-table", ["report", "{good}", "--label", "label", "--features", "x0",
                                  "x1", "--image-shape", "3x3"], "--image-shape"),
    ("report-no-stratified-split", ["report", "{rare}", "--label", "label",
                                    "--features", "x0"], "--test-fraction"),
    ("compare-cv", ["compare", "--cv", "1"], "--cv"),
    ("compare-eval-influence", ["compare", "--method", "eval_influence"], "eval_influence"),
    ("compare-noise", ["compare", "--noise", "-0.1"], "--noise"),
    ("compare-noise-column-missing", ["compare", "{good}", "--label", "label",
                                      "--noise-column", "nope"], "--noise-column"),
    ("compare-noise-column-not-bool", ["compare", "{good}", "--label", "label", "--features",
                                       "x0", "--noise-column", "noisy3"], "--noise-column"),
    ("compare-two-truths", ["compare", "{good}", "--label", "label", "--noise", "0.1",
                            "--noise-column", "noisy3"], "--noise-column"),
    ("compare-plot-under-file", ["compare", "--plot", "{afile}/pr.png"], "--plot"),
    ("compare-out-under-file", ["compare", "--out", "{afile}/t.csv"], "--out"),
    ("compare-device", ["compare", "--device", "bogus"], "--device"),
    ("compare-hidden", ["compare", "--hidden", "0"], "--hidden"),
    ("demo-seeds", ["demo", "--seeds", "0"], "--seeds"),
    ("demo-noise", ["demo", "--noise", "1"], "--noise"),
    ("demo-cv", ["demo", "--cv", "1"], "--cv"),
    ("demo-threads", ["demo", "--threads", "0"], "--threads"),
    ("clean-threads", ["clean", "x.parquet", "--threads", "-1"], "--threads"),
    ("demo-out-under-file", ["demo", "--out", "{afile}/t.md"], "afile"),
    ("demo-device", ["demo", "--device", "cuda:99" if torch.cuda.is_available() else "cuda"],
     "--device"),
    ("global-unknown-command", ["nope"], "invalid choice"),
    ("global-unknown-flag", ["--bogus", "report"], "--bogus"),
    ("global-no-command", [], "COMMAND"),
]


def _argv(argv: list[str], files: SimpleNamespace) -> list[str]:
    return [a.format(**vars(files)) for a in argv]


@pytest.mark.parametrize("argv, culprit", [c[1:] for c in CLI_CASES],
                         ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(argv, culprit, files, capsys, monkeypatch):
    # nothing may be trained: a fit would raise here instead of being silently slow
    monkeypatch.setattr(ToDMLPClassifier, "fit", _no_training)
    monkeypatch.chdir(files.dir)
    try:
        code = main(_argv(argv, files))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tod-cleanse"), err
    assert ": error: " in lines[0] and "Traceback" not in err
    assert culprit in lines[0], lines[0]
    assert not (files.dir / "tod_report.html").exists()


def _no_training(*args, **kwargs):
    raise AssertionError("training started before the arguments were checked")


def _fitted(files):
    return files.cl, files.X, files.y


# (id, call on the fixture, exception type, text the message must hold)
API_CASES = [
    ("write_report-reversed", lambda f: write_report(f.cl, f.X[::-1], f.y[::-1], f.out),
     ValueError, "y does not match"),
    ("write_report-X-other-rows", lambda f: write_report(f.cl, f.X[::-1], f.y, f.out),
     ValueError, "X does not match"),
    ("write_report-short-y", lambda f: write_report(f.cl, f.X[:9], f.y[:9], f.out),
     ValueError, "y must be"),
    ("write_report-keys", lambda f: write_report(f.cl, f.X, f.y, f.out,
                                                 instance_keys=np.arange(60) + 1),
     ValueError, "instance_keys"),
    ("write_report-k", lambda f: write_report(f.cl, f.X, f.y, f.out, k=0), ValueError, "k "),
    ("write_report-max-rows", lambda f: write_report(f.cl, f.X, f.y, f.out, max_rows=-1),
     ValueError, "max_rows"),
    ("write_report-max-test", lambda f: write_report(f.cl, f.X, f.y, f.out, max_test=True),
     ValueError, "max_test"),
    ("write_report-content", lambda f: write_report(f.cl, f.X, f.y, f.out, content="video"),
     ValueError, "content"),
    ("write_report-method", lambda f: write_report(None, f.X, f.y, f.out, method="nope"),
     ValueError, "method"),
    ("write_report-X_test-alone", lambda f: write_report(f.cl, f.X, f.y, f.out, X_test=f.X),
     ValueError, "X_test"),
    ("write_report-estimator", lambda f: write_report("mlp", f.X, f.y, f.out),
     TypeError, "estimator"),
    ("write_report-display", lambda f: write_report(f.cl, f.X, f.y, f.out, display=["a"]),
     ValueError, "display"),
    ("write_report-image-shape", lambda f: write_report(f.cl, f.X, f.y, f.out,
                                                        image_shape=(3, 3)),
     ValueError, "image_shape"),
    ("estimator-max-epochs-0", lambda f: _est(max_epochs=0).fit(f.X, f.y), ValueError,
     "max_epochs"),
    ("estimator-max-epochs-bool", lambda f: _est(max_epochs=True).fit(f.X, f.y), ValueError,
     "max_epochs"),
    ("estimator-device", lambda f: _est(device="bogus").fit(f.X, f.y), ValueError, "device"),
    ("estimator-p", lambda f: _est(p="abc").fit(f.X, f.y), ValueError, "'p'"),
    ("estimator-lr", lambda f: _est(lr=-1.0).fit(f.X, f.y), ValueError, "lr"),
    ("estimator-hidden", lambda f: _est(hidden_layer_sizes=(0,)).fit(f.X, f.y), ValueError,
     "hidden_layer_sizes"),
    ("estimator-y-length", lambda f: _est().fit(f.X, f.y[:10]), ValueError, "y"),
    ("estimator-nan", lambda f: _est().fit(np.where(np.eye(60, 4, dtype=bool), np.nan, f.X),
                                           f.y), ValueError, "X"),
    ("estimator-duplicate-keys", lambda f: _est().fit(f.X, f.y, instance_keys=np.zeros(60)),
     ValueError, "instance_keys"),
    ("cleanser-drop-fraction", lambda f: ToDCleanser(_est(), drop_fraction=1.5).fit(f.X, f.y),
     ValueError, "drop_fraction"),
    ("cleanser-method", lambda f: ToDCleanser(_est(), method="nope").fit(f.X, f.y),
     ValueError, "method"),
    ("cleanser-eval-set", lambda f: ToDCleanser(_est(), method="eval_influence").fit(f.X, f.y),
     ValueError, "eval_set"),
    ("cleanser-estimator", lambda f: ToDCleanser("x").fit(f.X, f.y), ValueError, "estimator"),
    ("cleanser-threshold", lambda f: ToDCleanser(_est(), threshold="a").fit(f.X, f.y),
     ValueError, "threshold"),
]


@pytest.mark.parametrize("call, error, culprit", [c[1:] for c in API_CASES],
                         ids=[c[0] for c in API_CASES])
def test_api_bad_input(call, error, culprit, files):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error) as exc:
            call(files)
    assert culprit in str(exc.value), str(exc.value)
    assert not files.out.exists()


def test_error_table_is_large_enough():
    assert len(CLI_CASES) + len(API_CASES) >= 50
    assert len({c[0] for c in CLI_CASES + API_CASES}) == len(CLI_CASES) + len(API_CASES)


def _cli(*argv: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tod_cleanse.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1",
                               "TRANSFORMERS_OFFLINE": "1"})


def test_no_traceback_without_debug(files):
    """An error raised inside a subcommand: one line; the traceback only with --debug."""
    plain = _cli("report", str(files.fake), "--label", "label", cwd=files.dir)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("tod-cleanse report: error: INPUT 'fake.parquet'")
    debug = _cli("--debug", "report", str(files.fake), "--label", "label", cwd=files.dir)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()
