"""``clean --engine ray`` against a real two-node local Ray cluster.

The cluster is ``ray start --head`` plus ``ray start --address`` (one CPU and a
small object store each, own temp dirs): the one ``.ci/run`` starts
(``TOD_CLEANSE_RAY_ADDRESS``), or else one this module starts and stops.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("ray", reason="ray is not installed: pip install 'tod-cleanse[ray]'")

from tod_cleanse import ToDMLPClassifier  # noqa: E402
from tod_cleanse.adapters.parquet import (  # noqa: E402
    CleanParquetError,
    clean_parquet,
    export_demo,
)
from tod_cleanse.adapters.ray import LocalCluster, engine_error  # noqa: E402
from tod_cleanse.cli import main  # noqa: E402

pytestmark = [pytest.mark.filterwarnings("ignore:.*the fit looks unreliable"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]

#: Scores of the two engines agree to this (the issue asks for <= 1e-6).
SCORE_ATOL = 1e-6


@pytest.fixture(scope="module")
def cluster() -> str:
    """Address of a two-node Ray cluster (``.ci/run``'s, or one started here)."""
    address = os.environ.get("TOD_CLEANSE_RAY_ADDRESS")
    if address:
        yield address
        return
    with pytest.MonkeyPatch.context() as mp, LocalCluster(nodes=2, num_cpus=1) as c:
        for name, value in c.client_env.items():
            mp.setenv(name, value)
        yield c.address


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """600 demo digits in 3 files of 2 row groups; ``id`` equals the scan position."""
    root = tmp_path_factory.mktemp("ray-data")
    table = pq.read_table(export_demo(root / "all.parquet", n_rows=600))
    folder = root / "input"
    folder.mkdir()
    for i in range(3):
        pq.write_table(table.slice(200 * i, 200), folder / f"part-{i}.parquet",
                       row_group_size=100)
    return folder


def _clean(data: Path, out: Path, **kw):
    # inner_p=0 and no out-of-fold members: no random dropout inside the seen sub-network
    # or the members (each rank draws its own), so that DDP training
    # (test_ray_train_workers_ddp) is the same training as on the driver
    est = ToDMLPClassifier(hidden_layer_sizes=(16,), max_epochs=2, random_state=0, inner_p=0.0,
                           oos_folds=None, verbose=0)
    args = dict(label="label", features=["pixels"], estimator=est, drop_fraction=0.1,
                max_train_rows=300, progress=False)
    return clean_parquet(data, out, **{**args, **kw})


def _issues(out: Path, key: str) -> pa.Table:
    return pq.read_table(out / "issues.parquet").sort_by(key)


def _keys(out: Path, part: str, key: str) -> list:
    return sorted(pq.read_table(out / part, columns=[key])[key].to_pylist())


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, dataset) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    _clean(dataset, out, key="id")
    return out


def test_ray_engine_matches_local_on_two_nodes(tmp_path, dataset, cluster, local_run):
    out = tmp_path / "out"
    summary = _clean(dataset, out, key="id", engine="ray", ray_address=cluster, workers=2)
    assert summary["engine"]["name"] == "ray" and summary["engine"]["nodes"] == 2
    assert summary["partition_check"]["ok"] and summary["counts"]["untrained"] == 300
    for part in ("kept", "dropped"):  # same files, same rows
        assert sorted(os.listdir(out / part)) == sorted(os.listdir(local_run / part))
        assert _keys(out, part, "id") == _keys(local_run, part, "id")
    ray_issues, local_issues = _issues(out, "id"), _issues(local_run, "id")
    assert ray_issues["id"].to_pylist() == list(range(600))
    np.testing.assert_allclose(ray_issues["score"].to_numpy(), local_issues["score"].to_numpy(),
                               rtol=0, atol=SCORE_ATOL)
    for col in ("rank", "is_issue", "oos_label", "trained"):
        assert ray_issues[col].equals(local_issues[col]), col
    saved = json.loads((out / "summary.json").read_text())
    assert saved["engine"]["workers"] == 2


def test_worker_killed_mid_write_loses_and_duplicates_nothing(tmp_path, dataset, cluster,
                                                              monkeypatch):
    """``tod-cleanse clean --engine ray``, and kill -9 of a Ray worker between writing a
    file and renaming it into place: Ray restarts the actor and retries the task; the
    committed output is complete, and dropped/ holds exactly the rows flagged."""
    marker = tmp_path / "paused-worker.pid"
    monkeypatch.setenv("TOD_CLEANSE_TEST_PAUSE_AT", f"ray:write={marker}")
    out, result = tmp_path / "out", {}

    def run() -> None:  # the command line, keyless (keys: scan-order row positions)
        try:
            result["code"] = main([
                "--quiet", "clean", str(dataset), "--label", "label", "--features", "pixels",
                "--out", str(out), "--hidden", "16", "--max-epochs", "2", "--seed", "0",
                "--max-train-rows", "300", "--drop-fraction", "0.1", "--engine", "ray",
                "--ray-address", cluster, "--workers", "2"])
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 300
    while not (marker.exists() and marker.read_text()) and thread.is_alive():
        assert time.monotonic() < deadline, "no worker reached the write pause"
        time.sleep(0.2)
    assert marker.exists(), result.get("error")
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=400)
    assert not thread.is_alive()
    assert "error" not in result and result["code"] == 0, result
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partition_check"]["ok"] and summary["engine"]["nodes"] == 2
    kept, dropped = _keys(out, "kept", "_tod_row"), _keys(out, "dropped", "_tod_row")
    assert sorted(kept + dropped) == list(range(600))  # nothing lost, nothing twice
    issues = _issues(out, "_tod_row")
    assert issues["_tod_row"].to_pylist() == list(range(600))
    flagged = issues.filter(issues["is_issue"])["_tod_row"].to_pylist()
    assert dropped == flagged and len(dropped) == 60  # dropped = the decision
    assert not (out / ".attempts").exists()


def test_worker_that_always_dies_fails_in_one_line_and_commits_nothing(
        tmp_path, dataset, cluster, monkeypatch, capsys):
    """Every scoring worker is killed (SIGKILL): Ray's retries run out, the run fails
    with one line naming the engine and the cause, and nothing appears at --out."""
    monkeypatch.setenv("TOD_CLEANSE_TEST_PAUSE_AT", "ray:score=kill")
    out = tmp_path / "out"
    code = main(["--quiet", "clean", str(dataset), "--label", "label", "--features", "pixels",
                 "--out", str(out), "--hidden", "16", "--max-epochs", "1",
                 "--max-train-rows", "300", "--engine", "ray", "--ray-address", cluster,
                 "--workers", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("tod-cleanse clean: error: engine ray: ")
    assert "a worker died while scoring" in err[0] and "nothing was committed" in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ray_train_workers_ddp(tmp_path, dataset, cluster, local_run):
    """--train-workers 2: Ray Train's TorchTrainer fits with DDP, same training loop."""
    out = tmp_path / "out"
    summary = _clean(dataset, out, key="id", engine="ray", ray_address=cluster, workers=2,
                     train_workers=2)
    assert summary["engine"]["train_workers"] == 2 and summary["partition_check"]["ok"]
    ray_scores = _issues(out, "id")["score"].to_numpy()
    local_scores = _issues(local_run, "id")["score"].to_numpy()
    np.testing.assert_allclose(ray_scores, local_scores, rtol=0, atol=1e-3)
    assert not list(tmp_path.glob(".out.tod-cleanse-train-*"))  # checkpoint folder removed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_cluster_is_one_line_exit_2(tmp_path, dataset, capsys):
    out = tmp_path / "out"
    address = f"127.0.0.1:{_free_port()}"
    code = main(["clean", str(dataset), "--label", "label", "--features", "pixels", "--out",
                 str(out), "--engine", "ray", "--ray-address", address])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "engine ray" in err and address in err, err
    assert "cannot reach" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_ray_options_need_engine_ray(tmp_path, dataset, capsys):
    code = main(["clean", str(dataset), "--label", "label", "--features", "pixels", "--out",
                 str(tmp_path / "out"), "--workers", "2"])
    assert code == 2
    assert "--workers" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_engine_errors_name_the_cause():
    missing = engine_error(ModuleNotFoundError("No module named 'tod_cleanse'"), "scoring")
    assert str(missing).startswith("engine ray: a worker cannot import 'tod_cleanse'")
    assert "on every node" in str(missing)

    class ActorDiedError(RuntimeError):
        pass

    died = engine_error(ActorDiedError("The actor died unexpectedly"), "writing")
    assert "a worker died while writing" in str(died) and "nothing was committed" in str(died)
    other = engine_error(RuntimeError("line 1\nValueError: bad pixels"), "scoring")
    assert str(other) == "engine ray: scoring failed on a worker: ValueError: bad pixels"

    class RayTaskError(RuntimeError):  # what Ray raises: a traceback, and the cause
        cause = CleanParquetError("part-1.parquet: feature column 'x' contains NaN")

    bad_row = engine_error(RayTaskError("Traceback (most recent call last):\n  ..."), "scoring")
    assert str(bad_row) == ("engine ray: scoring failed: part-1.parquet: feature column 'x' "
                            "contains NaN")
