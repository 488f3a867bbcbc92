"""Bad input for ``tod-cleanse clean`` and ``clean_parquet``: one table, every message
names the culprit (flag, column or file), exit status 2, one line, nothing written."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.adapters.parquet import CleanParquetError, clean_parquet
from tod_cleanse.cli import main

N = 120


@pytest.fixture
def paths(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, N)
    table = pa.table({"id": np.arange(N), "x0": rng.normal(size=N), "x1": rng.normal(size=N),
                      "name": [f"n{i}" for i in range(N)], "label": pa.array(y, pa.int64())})
    data = tmp_path / "data.parquet"
    pq.write_table(table, data)
    val = tmp_path / "val.parquet"
    pq.write_table(table.slice(0, 20), val)
    boolval = tmp_path / "boolval.parquet"
    pq.write_table(table.slice(0, 20).set_column(4, "label", pa.array(y[:20].astype(bool))),
                   boolval)
    return SimpleNamespace(data=data, val=val, boolval=boolval, out=tmp_path / "out",
                           tmp=tmp_path, missing=tmp_path / "nothing.parquet")


def nothing_written(p) -> bool:
    return not p.out.exists() and not [f for f in os.listdir(p.tmp) if ".tod-cleanse-" in f]


# (case id, argv after "clean" built from the paths, text the message must contain)
CLI = [
    ("max-epochs 0", lambda p: [*base(p), "--max-epochs", "0"], "--max-epochs"),
    ("max-epochs bool", lambda p: [*base(p), "--max-epochs", "True"], "--max-epochs"),
    ("batch-size negative", lambda p: [*base(p), "--batch-size", "-1"], "--batch-size"),
    ("lr zero", lambda p: [*base(p), "--lr", "0"], "--lr"),
    ("hidden not a list", lambda p: [*base(p), "--hidden", "8,x"], "--hidden"),
    ("hidden old spelling", lambda p: [*base(p), "--hidden", "8", "8"], "unrecognized"),
    ("image-shape one number", lambda p: [*base(p), "--image-shape", "28"], "--image-shape"),
    ("drop-fraction 1.5", lambda p: [*base(p), "--drop-fraction", "1.5"], "--drop-fraction"),
    ("drop-fraction and threshold", lambda p: [*base(p), "--drop-fraction", "0.1",
                                               "--threshold", "0"], "--threshold"),
    ("threshold nan", lambda p: [*base(p), "--threshold", "nan"], "threshold"),
    ("unknown method", lambda p: [*base(p), "--method", "bogus"], "--method"),
    ("bogus device", lambda p: [*base(p), "--device", "bogus"], "--device"),
    ("seed negative", lambda p: [*base(p), "--seed", "-1"], "--seed"),
    ("max-train-rows 1", lambda p: [*base(p), "--max-train-rows", "1"], "--max-train-rows"),
    ("batch-rows 0", lambda p: [*base(p), "--batch-rows", "0"], "--batch-rows"),
    ("old --epochs flag", lambda p: [*base(p), "--epochs", "3"], "--epochs"),
    ("missing INPUT", lambda p: ["--label", "label", "--features", "x0", "--out", str(p.out)],
     "INPUT"),
    ("missing --label", lambda p: [str(p.data), "--features", "x0", "--out", str(p.out)],
     "--label"),
    ("missing --out", lambda p: [str(p.data), "--label", "label", "--features", "x0"], "--out"),
    ("input does not exist", lambda p: [str(p.missing), *base(p)[1:]], "nothing.parquet"),
    ("no input kind", lambda p: [str(p.data), "--label", "label", "--out", str(p.out)],
     "--features, --text and --image"),
    ("two input kinds", lambda p: [*base(p), "--text", "name"], "--features, --text and"),
    ("label not found", lambda p: [*base(p), "--label", "nope"], "--label: column 'nope'"),
    ("feature not found", lambda p: [*base(p), "--features", "x9"], "column 'x9' not found"),
    ("text feature", lambda p: [*base(p), "--features", "name"], "--features: column 'name'"),
    ("label as feature", lambda p: [*base(p), "--features", "x0", "label"],
     "label column 'label' cannot also be a feature"),
    ("key not found", lambda p: [*base(p), "--key", "nope"], "--key: column 'nope'"),
    ("key is the label", lambda p: [*base(p), "--key", "label"], "--key: column 'label'"),
    ("text needs strings", lambda p: [str(p.data), "--label", "label", "--text", "x0", "--out",
                                      str(p.out)], "--text: column 'x0'"),
    ("model vgg on feature columns", lambda p: [*base(p), "--model", "vgg", "--hidden", "8"],
     "--model vgg reads image columns"),
    ("eval without eval_influence", lambda p: [*base(p), "--eval", str(p.val)],
     "--eval is only used by --method eval_influence"),
    ("eval_influence without eval", lambda p: [*base(p), "--method", "eval_influence"],
     "needs --eval"),
    ("eval missing file", lambda p: [*base(p), "--method", "eval_influence", "--eval",
                                     str(p.missing)], "--eval"),
    ("eval bool labels", lambda p: [*base(p), "--method", "eval_influence", "--eval",
                                    str(p.boolval)], "boolval.parquet: label column 'label'"),
    ("sampling with self_influence", lambda p: [*base(p), "--method", "self_influence",
                                                "--max-train-rows", "50"], "--max-train-rows"),
    ("out is the input", lambda p: [*base(p), "--out", str(p.data)], "holds the input"),
    ("export-demo with INPUT", lambda p: [str(p.data), "--export-demo", str(p.tmp / "d.pq")],
     "--export-demo"),
    ("export-demo noise 2", lambda p: ["--export-demo", str(p.tmp / "d.pq"), "--noise", "2"],
     "--noise"),
]


def base(p) -> list[str]:
    return [str(p.data), "--label", "label", "--features", "x0", "x1", "--key", "id", "--out",
            str(p.out), "--max-epochs", "1", "--hidden", "8"]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in CLI], ids=[c[0] for c in CLI])
def test_cli_bad_input(paths, capsys, argv, expected):
    try:
        rc = main(["-q", "clean", *argv(paths)])
    except SystemExit as exc:          # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    # argparse reports unknown flags from the top-level parser ("tod-cleanse: error: ")
    assert err.startswith(("tod-cleanse clean: error: ", "tod-cleanse: error: ")), err
    assert err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err
    assert nothing_written(paths) and not (paths.tmp / "d.pq").exists()


def tiny():
    return ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=1, verbose=0)


# (case id, keyword arguments of clean_parquet, regex the message must match)
API = [
    ("label None", {"label": None}, "--label"),
    ("no features", {"features": []}, "exactly one of --features, --text and --image"),
    ("feature not a string", {"features": ["x0", 3]}, "--features: column names"),
    ("image_shape zero", {"features": None, "image": "x0", "image_shape": (0, 5)},
     "--image-shape"),
    ("image_shape string", {"features": None, "image": "x0", "image_shape": "28x28"},
     "--image-shape"),
    ("max_train_rows bool", {"max_train_rows": True}, "--max-train-rows"),
    ("batch_rows zero", {"batch_rows": 0}, "--batch-rows"),
    ("seed negative", {"seed": -1}, "--seed"),
    ("method unknown", {"method": "nope"}, "method"),
    ("drop_fraction 1", {"drop_fraction": 1.0}, "drop.fraction"),
    ("drop_fraction bool", {"drop_fraction": True}, "drop.fraction"),
    ("threshold nan", {"threshold": float("nan")}, "threshold"),
    ("estimator not ToD", {"estimator": object()}, "estimator must be a ToD estimator"),
    ("model unknown", {"estimator": None, "model": "xgb"}, "--model"),
    ("model param unknown", {"estimator": None, "model_params": {"bogus": 1}}, "bogus"),
    ("key missing", {"key": "nope"}, "--key: column 'nope' not found"),
    ("label missing", {"label": "nope"}, "--label: column 'nope' not found"),
    ("eval missing", {"method": "eval_influence", "eval_path": "nothing.parquet"}, "--eval"),
    ("key equals label", {"key": "label"}, "--key: column 'label'"),
]


@pytest.mark.parametrize("kwargs, expected", [c[1:] for c in API], ids=[c[0] for c in API])
def test_api_bad_input(paths, kwargs, expected):
    params = dict(label="label", features=["x0", "x1"], key="id", estimator=tiny(),
                  progress=False)
    params.update(kwargs)
    if params.get("eval_path") == "nothing.parquet":
        params["eval_path"] = paths.missing
    with pytest.raises(CleanParquetError, match=expected) as info:
        clean_parquet(paths.data, paths.out, **params)
    assert "\n" not in str(info.value)
    assert nothing_written(paths)
