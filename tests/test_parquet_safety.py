"""Issue 15 for ``tod-cleanse clean``: the output claim, folders that appear during a run,
stale claims, interrupted overwrite commits, typed eval labels, and what summary.json
records (version, arguments, claim holder, timings, fit warnings)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import warnings

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.adapters.parquet import CleanParquetError, OutputChangedError, clean_parquet
from tod_cleanse.adapters.parquet import clean as pq_clean
from tod_cleanse.adapters.parquet import commit as pq_commit
from tod_cleanse.cli import main

N = 160
# tiny fits are unreliable by design here: the plumbing is under test, not the model
pytestmark = pytest.mark.filterwarnings("ignore:.*the fit looks unreliable:")


def tiny(**kw):
    return ToDMLPClassifier(**{"hidden_layer_sizes": (8,), "max_epochs": 4, "lr": 1e-2,
                               "verbose": 0, "random_state": 0, **kw})


def blobs(n: int = N, seed: int = 0, ids: str = "int") -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = np.eye(2)[y] * 3 + rng.normal(size=(n, 2))
    key = (np.arange(n) if ids == "int" else np.array([f"row-{i}" for i in range(n)]))
    return pa.table({"id": key, "x0": X[:, 0], "x1": X[:, 1],
                     "label": pa.array(y, pa.int64())})


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(blobs(), path)
    return path


def clean(src, out, **kw):
    params = dict(label="label", features=["x0", "x1"], key="id", estimator=tiny(),
                  drop_fraction=0.1, progress=False, argv=["tod-cleanse", "clean", "test"])
    params.update(kw)
    return clean_parquet(src, out, **params)


def siblings(out) -> list[str]:
    return sorted(p for p in os.listdir(out.parent) if p.startswith(f".{out.name}."))


def pause_at(monkeypatch, stage: str, action) -> None:
    """Run ``action()`` when the clean reaches ``stage`` (the test hook's checkpoint)."""
    real = pq_clean.checkpoint

    def hook(point):
        if point == stage:
            action()
        real(point)

    monkeypatch.setattr(pq_clean, "checkpoint", hook)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_claim(out, **fields) -> os.PathLike:
    holder = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2026-01-01T00:00:00",
              "argv": ["tod-cleanse", "clean", "old run"], "token": "deadbeef0001",
              "pid_start": None, **fields}
    path = out.parent / f".{out.name}.tod-cleanse-claim"
    path.write_text(json.dumps(holder))
    return path


# --------------------------------------------------------------- the claim
def test_second_run_into_the_same_out_fails_at_once(tmp_path, src, monkeypatch, capsys):
    out = tmp_path / "out"
    release, reached = threading.Event(), threading.Event()
    first: dict = {}

    def hold():
        reached.set()
        release.wait(60)

    pause_at(monkeypatch, "train", hold)
    worker = threading.Thread(target=lambda: first.update(summary=clean(src, out)))
    worker.start()
    try:
        assert reached.wait(60)
        monkeypatch.setattr(pq_clean, "checkpoint", lambda point: None)
        with pytest.raises(CleanParquetError, match=f"output {out} is in use: claimed by pid "
                                                    f"{os.getpid()} on host"):
            clean(src, out)
        rc = main(["-q", "clean", str(src), "--label", "label", "--features", "x0", "x1",
                   "--out", str(out), "--max-epochs", "1"])
        err = capsys.readouterr().err
        assert rc == 2 and "is in use: claimed by pid" in err and str(out) in err
        assert "tod-cleanse clean test" in err          # the holder's command line
        assert err.count("\n") == 1
    finally:
        release.set()
        worker.join(60)
    assert first["summary"]["partition_check"]["ok"]    # the first run was not disturbed
    assert first["summary"]["claim"]["pid"] == os.getpid()
    assert siblings(out) == []


def test_folder_appearing_during_the_run_is_never_removed(tmp_path, src, monkeypatch):
    out = tmp_path / "out"

    def someone_else():
        out.mkdir()
        (out / "precious.txt").write_text("keep")

    pause_at(monkeypatch, "commit", someone_else)
    with pytest.raises(OutputChangedError, match=f"--out {out} appeared during the run") as info:
        clean(src, out)
    assert sorted(os.listdir(out)) == ["precious.txt"]
    assert (out / "precious.txt").read_text() == "keep"
    # the verified output is kept (named in the message) and the claim is released
    staging = [p for p in siblings(out) if ".tod-cleanse-tmp-" in p]
    assert len(staging) == 1 and staging[0] in str(info.value)
    assert json.loads((tmp_path / staging[0] / "summary.json").read_text())["partition_check"][
        "ok"]
    assert not (tmp_path / ".out.tod-cleanse-claim").exists()


def test_empty_out_filled_during_the_run_is_left_alone(tmp_path, src, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    pause_at(monkeypatch, "commit", lambda: (out / "mine.txt").write_text("x"))
    with pytest.raises(OutputChangedError, match="was filled during the run"):
        clean(src, out)
    assert os.listdir(out) == ["mine.txt"]


def test_previous_output_replaced_during_the_run_is_left_alone(tmp_path, src, monkeypatch):
    out = tmp_path / "out"
    clean(src, out)

    def replace():
        summary = json.loads((out / "summary.json").read_text())
        summary["note"] = "another run wrote this"
        (out / "summary.json").write_text(json.dumps(summary))

    pause_at(monkeypatch, "commit", replace)
    with pytest.raises(OutputChangedError, match="changed"):
        clean(src, out, overwrite=True)
    assert json.loads((out / "summary.json").read_text())["note"] == "another run wrote this"


def test_stale_claim_is_reported_not_taken_over(tmp_path, src):
    out = tmp_path / "out"
    claim = write_claim(out)
    dead_staging = tmp_path / ".out.tod-cleanse-tmp-deadbeef0001"
    (dead_staging / "kept").mkdir(parents=True)
    with pytest.raises(CleanParquetError, match=r"stale claim by pid \d+ .*no longer running.*"
                                                r"--clear-stale-claim.*\.out\.tod-cleanse-claim"):
        clean(src, out)
    assert claim.exists() and dead_staging.exists() and not out.exists()
    summary = clean(src, out, clear_stale_claim=True)
    assert summary["partition_check"]["ok"]
    assert siblings(out) == []                           # the dead run's staging is gone too


def test_claim_of_a_live_run_is_not_cleared(tmp_path, src):
    out = tmp_path / "out"
    from tod_cleanse.adapters.parquet.claim import ClaimHolder

    (tmp_path / ".out.tod-cleanse-claim").write_text(json.dumps(   # this very process
        ClaimHolder.current(["tod-cleanse", "clean", "live"]).as_dict()))
    with pytest.raises(CleanParquetError, match="is in use"):
        clean(src, out, clear_stale_claim=True)


def test_claim_from_another_host_is_reported(tmp_path, src):
    out = tmp_path / "out"
    write_claim(out, host="elsewhere.example")
    with pytest.raises(CleanParquetError, match="claimed by a run on another host: pid .* "
                                                "elsewhere.example .*if that run is gone, delete"):
        clean(src, out, clear_stale_claim=True)


def test_exception_inside_the_overwrite_commit_restores_the_previous_output(
        tmp_path, src, monkeypatch):
    out = tmp_path / "out"
    before = clean(src, out, drop_fraction=0.1)
    real = pq_commit.checkpoint

    def boom(point):
        if point == "commit:swap":
            raise KeyboardInterrupt
        real(point)

    monkeypatch.setattr(pq_commit, "checkpoint", boom)
    with pytest.raises(KeyboardInterrupt):
        clean(src, out, drop_fraction=0.2, overwrite=True)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(before))
    assert siblings(out) == []


def test_interrupted_overwrite_commit_is_recovered_by_the_next_run(tmp_path, src):
    """The state a run killed between the two renames leaves: previous output moved aside,
    new output staged, the journal and a stale claim. The next run brings the previous
    output back before it reports the stale claim."""
    out = tmp_path / "out"
    before = clean(src, out, drop_fraction=0.1)
    write_claim(out, token="deadbeef0002")
    staged = tmp_path / ".out.tod-cleanse-tmp-deadbeef0002"
    clean(src, staged, drop_fraction=0.2)                 # a complete new output, staged
    old = tmp_path / ".out.tod-cleanse-old-deadbeef0002"
    os.rename(out, old)
    (tmp_path / ".out.tod-cleanse-commit").write_text(json.dumps(
        {"out": "out", "staging": staged.name, "previous": old.name}))
    with pytest.raises(CleanParquetError, match="stale claim.*restored the previous output"):
        clean(src, out, drop_fraction=0.3, overwrite=True)
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(before))
    assert not old.exists() and not staged.exists()
    after = clean(src, out, drop_fraction=0.3, overwrite=True, clear_stale_claim=True)
    assert after["counts"]["dropped"] == 48 and siblings(out) == []


# ------------------------------------------------------------ eval label types
def test_eval_labels_of_another_type_are_an_error(tmp_path, src):
    val = tmp_path / "val.parquet"
    table = blobs(40, seed=1)
    pq.write_table(table.set_column(3, "label", table["label"].cast(pa.bool_())), val)
    with pytest.raises(CleanParquetError, match=f"--eval {val}: label column 'label' has type "
                                                "bool but the training labels .* are int64"):
        clean(src, tmp_path / "out", method="eval_influence", eval_path=val)
    assert not (tmp_path / "out").exists()
    rc = main(["-q", "clean", str(src), "--label", "label", "--features", "x0", "x1",
               "--out", str(tmp_path / "out"), "--method", "eval_influence", "--eval", str(val)])
    assert rc == 2


def test_eval_labels_of_another_integer_width_are_fine(tmp_path, src):
    val = tmp_path / "val.parquet"
    table = blobs(40, seed=1)
    pq.write_table(table.set_column(3, "label", table["label"].cast(pa.int32())), val)
    summary = clean(src, tmp_path / "out", method="eval_influence", eval_path=val)
    assert summary["parameters"]["method"] == "eval_influence"


# ----------------------------------------------------------------- summary.json
class WarningMLP(ToDMLPClassifier):
    def fit(self, X, y, instance_keys=None):
        warnings.warn("the fit looks unreliable: test", UserWarning, stacklevel=2)
        return super().fit(X, y, instance_keys=instance_keys)


def test_summary_records_version_arguments_claim_timings_and_warnings(tmp_path, src):
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="looks unreliable"):    # still shown to the user
        summary = clean(src, out, estimator=WarningMLP(hidden_layer_sizes=(8,), max_epochs=1,
                                                       verbose=0))
    import tod_cleanse

    assert summary["tool_version"] == tod_cleanse.__version__
    assert summary["arguments"] == ["tod-cleanse", "clean", "test"]
    assert summary["claim"]["pid"] == os.getpid()
    assert summary["claim"]["host"] == socket.gethostname()
    assert summary["claim"]["argv"] == ["tod-cleanse", "clean", "test"]
    assert {"read", "train", "score", "write", "verify", "total"} <= set(summary["timings_s"])
    assert "the fit looks unreliable: test" in summary["warnings"]
    assert json.loads((out / "summary.json").read_text())["warnings"] == summary["warnings"]


# ------------------------------------------------------------------- raw keys
def test_string_keys_stay_raw_in_issues_report_and_estimator(tmp_path, monkeypatch):
    path = tmp_path / "s.parquet"
    pq.write_table(blobs(ids="str"), path)
    seen = {}
    real_fit = ToDMLPClassifier.fit

    def spy(self, X, y, instance_keys=None):
        seen["keys"] = np.asarray(instance_keys)
        return real_fit(self, X, y, instance_keys=instance_keys)

    monkeypatch.setattr(ToDMLPClassifier, "fit", spy)
    clean(path, tmp_path / "out", report=True)
    assert seen["keys"].tolist() == [f"row-{i}" for i in range(N)]
    issues = pq.read_table(tmp_path / "out" / "issues.parquet")
    assert issues["id"].to_pylist() == [f"row-{i}" for i in range(N)]
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    flagged = issues.filter(issues["is_issue"])["id"].to_pylist()
    assert flagged and all(f">{k}<" in html for k in flagged)


def test_out_is_checked_again_once_claimed(tmp_path, src, monkeypatch):
    """A run prepared before another one committed to --out finds out at its claim,
    before any training, and leaves that output alone."""
    from tod_cleanse.adapters.parquet import execute, prepare

    out = tmp_path / "out"
    late = prepare(src, out, label="label", features=["x0", "x1"], key="id", estimator=tiny(),
                   drop_fraction=0.1, progress=False, max_train_rows=100_000, batch_rows=64,
                   seed=0, overwrite=False, clear_stale_claim=False, report=False,
                   method=None, threshold=None, eval_path=None)
    first = clean(src, out)
    stages = []
    monkeypatch.setattr(pq_clean, "checkpoint", stages.append)
    with pytest.raises(CleanParquetError, match=f"output folder {out} is not empty") as info:
        execute(late)
    assert not isinstance(info.value, OutputChangedError) and stages == []
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(first))
    assert siblings(out) == []
