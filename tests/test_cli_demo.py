"""The `tod-cleanse` entry point and the demo."""

import numpy as np
import pytest

from tod_cleanse.adapters.demo import run_demo
from tod_cleanse.cli import COMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    assert "10% injected label noise" in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: tod-cleanse" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_table():
    result = run_demo(noise_rate=0.1, random_state=0, n_seeds=1, cv=2, verbose=0)
    table = result.table
    assert list(table.columns) == ["dropped", "precision", "recall", "test_accuracy",
                                   "training_runs", "detect_seconds"]
    assert len(table) == 5 and result.n_train == 1347 and result.n_noisy == 135
    tod = table.iloc[1]
    assert table.index[1].startswith("ToD (")
    assert tod["training_runs"] == 1 and table.iloc[2]["training_runs"] == 2
    # ToD finds the injected noise far better than random removal of as many rows
    assert tod["precision"] > 0.8 and tod["recall"] > 0.8
    assert table.iloc[3]["precision"] < 0.3
    assert table.loc[table.index[-1], "precision"] == 1.0
    assert np.all((table["test_accuracy"] > 0.9) & (table["test_accuracy"] <= 1.0))


@pytest.mark.parametrize("suffix", [".md", ".csv"])
def test_demo_command_prints_and_writes_the_table(monkeypatch, tmp_path, capsys, suffix):
    """The CLI plumbing of `demo` (the work itself is test_demo_table): flags reach run_demo."""
    import pandas as pd

    from tod_cleanse.adapters import demo

    seen = {}

    def fake_run_demo(**kwargs):
        seen.update(kwargs)
        table = pd.DataFrame({"dropped": [3], "precision": [0.5]},
                             index=pd.Index(["ToD (x, auto)"], name="finder"))
        return demo.DemoResult(table, n_train=30, n_noisy=3, method="x")

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    out = tmp_path / "sub" / f"table{suffix}"
    assert main(["-q", "demo", "--noise", "0.2", "--seed", "4", "--seeds", "2", "--cv", "3",
                 "--max-epochs", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert seen == {"noise_rate": 0.2, "random_state": 4, "n_seeds": 2, "cv": 3,
                    "verbose": 0, "max_epochs": 2, "device": "cpu"}
    printed = capsys.readouterr().out
    assert "| ToD (x, auto) | 3 | 0.500 |" in printed and "20%, seed 4" in printed
    text = out.read_text()
    assert ("| ToD (x, auto) | 3 | 0.500 |" in text) == (suffix == ".md")
    assert ('"ToD (x, auto)",3,0.5' in text) == (suffix == ".csv")


def test_every_package_is_installed():
    """A wheel carries every package the command imports (cli/ and report/ included)."""
    import ast
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1]
    text = (root / "pyproject.toml").read_text()  # no tomllib on Python 3.10
    listed = set(ast.literal_eval(re.search(r"^packages = (\[.*?\])", text,
                                            re.M | re.S).group(1)))
    dirs = dict(re.findall(r'"([\w.]+)" = "(\w+)"',
                           re.search(r"^package-dir = \{(.*?)\}", text, re.M).group(1)))
    found = set()
    for name, folder in dirs.items():
        for init in (root / folder).rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(root / folder).parts)))
    assert {"tod_cleanse.cli", "tod_cleanse.report"} <= found
    assert found == listed
