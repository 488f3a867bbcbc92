"""`tod-cleanse compare` on a table: flags, ground truth from a column or injected noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tod_cleanse.cli import main

torch.set_num_threads(1)


@pytest.fixture()
def table(tmp_path):
    rng = np.random.default_rng(0)
    n = 90
    y = np.arange(n) % 3
    X = rng.normal(scale=0.5, size=(n, 4)) + np.eye(3, 4)[y] * 3
    df = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    noisy = np.zeros(n, dtype=bool)
    noisy[:9] = True
    df["label"] = np.where(noisy, (y + 1) % 3, y)
    df["is_noisy"] = noisy
    df["id"] = [f"r{i}" for i in range(n)]
    path = tmp_path / "data.parquet"
    df.to_parquet(path)
    return path


def test_compare_with_a_noise_column(table, tmp_path, capsys):
    out = tmp_path / "cmp.csv"
    plot = tmp_path / "pr.png"
    code = main(["-q", "compare", str(table), "--label", "label", "--key", "id",
                 "--noise-column", "is_noisy", "--method", "oos_likelihood", "self_influence",
                 "--cv", "2", "--max-epochs", "1", "--hidden", "8", "--seed", "1",
                 "--plot", str(plot), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "90 rows" in printed and "2-fold CV" in printed and "hidden_layer_sizes=(8,)" in printed
    df = pd.read_csv(out, index_col="finder")
    assert df.index.tolist() == ["tod:oos_likelihood", "tod:self_influence", "cleanlab:cv2",
                                 "cleanlab:tod"]
    assert {"precision", "recall", "ap"} <= set(df.columns)  # the noise column is the truth
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_compare_injected_noise_and_markdown(table, tmp_path, capsys):
    out = tmp_path / "cmp.md"
    code = main(["-q", "compare", str(table), "--label", "label", "--features", "x0", "x1",
                 "--noise", "0.1", "--method", "full_likelihood", "--cv", "2",
                 "--max-epochs", "1", "--hidden", "8", "--no-plot", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert text.startswith("| finder |") and "| Jaccard |" in text and "precision" in text
    assert not (tmp_path / "tod_compare_pr.png").exists()
