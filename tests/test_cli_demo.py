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
