"""The shared pieces of the CLI: type parsers, the table loader and the one error handler."""

from __future__ import annotations

import argparse
import sys
import types

import numpy as np
import pandas as pd
import pytest

from tod_cleanse import cli
from tod_cleanse.cli import options
from tod_cleanse.cli.options import CLIError
from tod_cleanse.cli.tables import check_table, load_table
from tod_cleanse.scores import parse_drop_fraction


@pytest.mark.parametrize("text, shape", [("28x28", (28, 28)), ("3x32x32", (3, 32, 32)),
                                         ("8X8", (8, 8))])
def test_image_shape(text, shape):
    assert options.image_shape(text) == shape


@pytest.mark.parametrize("text", ["28", "28 28", "0x28", "axb", "1x2x3x4", "28x-1", ""])
def test_image_shape_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="HxW"):
        options.image_shape(text)


def test_hidden_sizes():
    assert options.hidden_sizes("256,256") == (256, 256)
    assert options.hidden_sizes("64") == (64,)
    for bad in ["256 256", "0", "8,", "a", "-1"]:
        with pytest.raises(argparse.ArgumentTypeError, match="comma list"):
            options.hidden_sizes(bad)


def test_drop_fraction_is_the_scores_parser():
    assert options.drop_fraction("auto") == "auto" == parse_drop_fraction("AUTO")
    assert options.drop_fraction("0.25") == 0.25 == parse_drop_fraction(0.25)
    for bad in ["1", "-0.1", "nan", "x", "inf"]:
        with pytest.raises(argparse.ArgumentTypeError, match=r"'auto' or a number in \[0, 1\)"):
            options.drop_fraction(bad)
    for bad in [True, None, 1.0, "1e9", [0.1]]:
        with pytest.raises(ValueError, match="^--drop-fraction must be"):
            parse_drop_fraction(bad, name="--drop-fraction")


def test_device_uses_the_estimators_resolver():
    assert options.device("cpu") == "cpu" and options.device("auto") == "auto"
    with pytest.raises(argparse.ArgumentTypeError, match="bogus"):
        options.device("bogus")


@pytest.mark.parametrize("parser, good, bad", [
    (options.positive_int, "3", ["0", "-1", "1.5", "x"]),
    (options.non_negative_int, "0", ["-1", "x"]),
    (options.positive_float, "0.01", ["0", "-1", "nan", "inf"]),
    (options.fraction, "0", ["1", "-0.01", "nan"]),
    (options.cv_folds, "2", ["1", "0"]),
])
def test_number_parsers(parser, good, bad):
    assert parser(good) == float(good)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parser(text)


def test_check_output_file(tmp_path):
    (tmp_path / "f").write_text("x")
    assert options.check_output_file(tmp_path / "new" / "deep" / "r.html").name == "r.html"
    with pytest.raises(CLIError, match="is a file, not a folder"):
        options.check_output_file(tmp_path / "f" / "r.html")
    with pytest.raises(CLIError, match="is a folder"):
        options.check_output_file(tmp_path)


# ------------------------------------------------------------------ tables
def _frame(n=6):
    return pd.DataFrame({
        "a": np.arange(n, dtype=float), "b": np.arange(n) * 2,
        "px": [[float(i), float(i) + 0.5] for i in range(n)],
        "label": ["u", "v"] * (n // 2), "id": [f"k{i}" for i in range(n)],
    })


def test_load_table_parquet_with_list_column(tmp_path):
    path = tmp_path / "t.parquet"
    _frame().to_parquet(path)
    t = load_table(path, label="label", key="id")
    assert t.feature_names == ["a", "b", "px[0]", "px[1]"]
    assert t.X.shape == (6, 4) and t.X.dtype == np.float64
    np.testing.assert_array_equal(t.X[3], [3.0, 6.0, 3.0, 3.5])
    assert t.keys.tolist() == [f"k{i}" for i in range(6)] and t.y[1] == "v"
    assert t.source == "t.parquet"
    # --features picks and orders the columns
    assert load_table(path, label="label", features=["b", "a"]).feature_names == ["b", "a"]


def test_load_table_folder_dataset(tmp_path):
    folder = tmp_path / "ds"
    folder.mkdir()
    frame = _frame(8).drop(columns="px")
    frame.iloc[:4].to_parquet(folder / "part-0.parquet")
    frame.iloc[4:].to_parquet(folder / "part-1.parquet")
    t = load_table(folder, label="label", key="id")
    assert t.X.shape == (8, 2) and sorted(t.keys.tolist()) == sorted(frame["id"])


@pytest.mark.parametrize("change, match", [
    (lambda f: f.assign(px=[[1.0]] + [[1.0, 2.0]] * 5), "px' of t.parquet holds lists"),
    (lambda f: f.assign(a=[np.nan] + [1.0] * 5), "'a' of t.parquet has missing"),
    (lambda f: f.assign(label=[None, "u", "v", "u", "v", "u"]), "--label column 'label'"),
    (lambda f: f.assign(id=["k0"] * 6), "--key column 'id'"),
    (lambda f: f.drop(columns="px").iloc[:0], "has no rows"),
])
def test_load_table_bad_values(tmp_path, change, match):
    path = tmp_path / "t.parquet"
    change(_frame()).to_parquet(path)
    with pytest.raises(CLIError, match=match):
        load_table(path, label="label", key="id")


def test_load_table_csv_text_past_the_sniffed_head(tmp_path):
    """The CSV schema is read from the first rows; a later text value still names its column."""
    path = tmp_path / "late.csv"
    frame = pd.DataFrame({"a": [str(i) for i in range(1200)], "label": [0, 1] * 600})
    frame.loc[1100, "a"] = "oops"
    frame.to_csv(path, index=False)
    with pytest.raises(CLIError, match="--features column 'a' of late.csv is not numeric"):
        load_table(path, label="label")


def test_check_table_names_the_column_and_file(tmp_path):
    path = tmp_path / "t.csv"
    _frame().drop(columns="px").to_csv(path, index=False)
    with pytest.raises(CLIError, match="--key 'nope' is not a column of t.csv"):
        check_table(path, label="label", key="nope")
    with pytest.raises(CLIError, match="not numeric: id"):
        check_table(path, label="label")
    with pytest.raises(CLIError, match=r"--features \['label'\] also serve"):
        check_table(path, label="label", features=["a", "label"])
    assert check_table(path, label="label", key="id") == ["a", "b"]


# ------------------------------------------------------------------ the error handler
def _fake_command(monkeypatch, run):
    module = types.ModuleType("tod_cleanse_fake_cmd")
    module.add_arguments = lambda parser: parser.add_argument("--x", default="1")
    module.run = run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "fake", (module.__name__, "a test command"))


@pytest.mark.parametrize("error", [CLIError("bad --x"), ValueError("bad --x\nsecond line"),
                                   TypeError("bad --x"), FileNotFoundError("bad --x"),
                                   PermissionError("bad --x"),
                                   ModuleNotFoundError("bad --x: pip install 'tod-cleanse[ray]'")])
def test_main_turns_errors_into_one_line(monkeypatch, capsys, error):
    def run(args):
        raise error

    _fake_command(monkeypatch, run)
    assert cli.main(["fake"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tod-cleanse fake: error: bad --x") and err.count("\n") == 1
    assert "Traceback" not in err


def test_main_debug_shows_the_traceback(monkeypatch, capsys):
    def run(args):
        raise ValueError("bad --x")

    _fake_command(monkeypatch, run)
    assert cli.main(["--debug", "fake"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.endswith("error: bad --x\n")


def test_main_does_not_swallow_bugs(monkeypatch):
    """Only the bad-input errors are turned into exit 2; a bug keeps its traceback."""
    def run(args):
        raise RuntimeError("a bug")

    _fake_command(monkeypatch, run)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fake"])


def test_main_runs_check_before_run(monkeypatch, capsys):
    calls = []
    module_run = lambda args: calls.append("run") or 0  # noqa: E731
    _fake_command(monkeypatch, module_run)
    module = sys.modules["tod_cleanse_fake_cmd"]
    module.check = lambda args: calls.append(f"check {args.x}")
    assert cli.main(["-q", "fake", "--x", "7"]) == 0
    assert calls == ["check 7", "run"]


def test_missing_ray_extra_is_one_line(monkeypatch, capsys, tmp_path):
    """``--engine ray`` without Ray installed: one line naming the extra, nothing written."""
    data, out = tmp_path / "d.parquet", tmp_path / "out"
    assert cli.main(["-q", "clean", "--export-demo", str(data)]) == 0
    monkeypatch.setitem(sys.modules, "ray", None)  # ``import ray`` now fails
    capsys.readouterr()
    rc = cli.main(["-q", "clean", str(data), "--label", "label", "--features", "pixels",
                   "--key", "id", "--out", str(out), "--max-epochs", "1", "--engine", "ray"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "pip install 'tod-cleanse[ray]'" in err and "Traceback" not in err
    assert not out.exists()


def test_clean_applies_threads_before_training(tmp_path, monkeypatch, capsys):
    """``clean --threads N`` sets torch's CPU threads (small models on a shared machine)."""
    import torch

    from tod_cleanse.adapters.parquet import export_demo

    data = export_demo(tmp_path / "d.parquet", n_rows=120)
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    code = cli.main(["-q", "clean", str(data), "--label", "label", "--features", "pixels",
                     "--max-epochs", "1", "--threads", "3", "--out", str(tmp_path / "out")])
    assert code == 0 and calls == [3]
    assert (tmp_path / "out" / "summary.json").exists()
