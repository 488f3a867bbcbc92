"""Kill -9 a ``tod-cleanse clean`` at each stage; the input, ``--out`` and a rerun survive.

Each run is a separate process killed with SIGKILL at a known point: the documented
test hook ``TOD_CLEANSE_TEST_PAUSE_AT`` (:mod:`tod_cleanse.adapters.parquet.faults`)
makes it write a marker file and wait there. The processes come from a forkserver
that imported the package once, so the whole table stays well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tod_cleanse import ToDMLPClassifier
from tod_cleanse.adapters.parquet import CleanParquetError, clean_parquet
from tod_cleanse.adapters.parquet.faults import PAUSE_ENV
from tod_cleanse.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:.*the fit looks unreliable:")

N = 150
POINTS = ["read", "train", "score", "write", "write:file", "verify", "commit", "commit:swap"]

_CHILD = """
import os, sys
os.environ[{env!r}] = {spec!r}
from tod_cleanse.cli import main
sys.exit(main({argv!r}))
"""


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tod_cleanse.cli", "tod_cleanse.cli.clean",
                                    "tod_cleanse.adapters.parquet"])
    return context


def make_input(folder):
    folder.mkdir()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, N)
    X = np.eye(2)[y] * 3 + rng.normal(size=(N, 2))
    table = pa.table({"id": np.arange(N), "x0": X[:, 0], "x1": X[:, 1],
                      "label": pa.array(y, pa.int64())})
    pq.write_table(table.slice(0, 100), folder / "a.parquet")
    pq.write_table(table.slice(100), folder / "b.parquet")
    return folder


def tree_hash(folder) -> str:
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(folder)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            h.update(os.path.relpath(path, folder).encode())
            with open(path, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def argv(src, out, *extra):
    return ["-q", "clean", str(src), "--label", "label", "--features", "x0", "x1", "--key",
            "id", "--out", str(out), "--max-epochs", "2", "--hidden", "8", "--drop-fraction",
            "0.1", *extra]


def kill_at(ctx, point, args, marker, timeout=120.0) -> None:
    """Start a clean, wait until it reaches ``point``, SIGKILL it."""
    code = _CHILD.format(env=PAUSE_ENV, spec=f"{point}={marker}", argv=args)
    proc = ctx.Process(target=exec, args=(code,))
    proc.start()
    deadline = time.monotonic() + timeout
    while not os.path.exists(marker):
        assert proc.is_alive(), f"the clean ended before it reached {point!r}"
        assert time.monotonic() < deadline, f"the clean did not reach {point!r}"
        time.sleep(0.05)
    proc.kill()                                   # SIGKILL: no cleanup of any kind runs
    proc.join(30)
    assert proc.exitcode == -9


def check_out(out, n_rows) -> None:
    """Nothing at ``out``, or a complete output whose partition check holds."""
    if not out.exists():
        return
    summary = json.loads((out / "summary.json").read_text())
    assert summary["partition_check"]["ok"]
    ids = [pq.read_table(out / part, columns=["id"])["id"].to_pylist()
           for part in ("kept", "dropped")]
    assert sorted(ids[0] + ids[1]) == list(range(n_rows))


def rerun(src, out, **kw):
    return clean_parquet(src, out, label="label", features=["x0", "x1"], key="id",
                         estimator=ToDMLPClassifier(hidden_layer_sizes=(8,), max_epochs=2,
                                                    verbose=0),
                         drop_fraction=0.1, progress=False, **kw)


@pytest.mark.parametrize("point", POINTS)
def test_kill_at_each_stage(tmp_path, ctx, capsys, point):
    src = make_input(tmp_path / "input")
    before = tree_hash(src)
    out = tmp_path / "out"
    overwrite = point == "commit:swap"               # the kill between the two renames
    previous = rerun(src, out) if overwrite else None
    extra = ("--overwrite", "--drop-fraction", "0.2") if overwrite else ()
    kill_at(ctx, point, argv(src, out, *extra), str(tmp_path / "marker"))

    assert tree_hash(src) == before                  # the input is never touched
    check_out(out, N)
    # the next run reports the stale claim (and undoes a half-done commit) ...
    if point == "commit":                            # the same through the command line
        assert main(argv(src, out)) == 2
        err = capsys.readouterr().err
        assert "stale claim by pid" in err and "--clear-stale-claim" in err
    else:
        with pytest.raises(CleanParquetError, match="stale claim by pid .*--clear-stale-claim"):
            rerun(src, out, overwrite=overwrite)
    if overwrite:                                    # the previous output is back
        assert json.loads((out / "summary.json").read_text()) == json.loads(
            json.dumps(previous))
    check_out(out, N)
    # ... and, told to clear it, succeeds and leaves nothing beside --out
    if point == "commit":
        assert main([*argv(src, out), "--clear-stale-claim"]) == 0
    else:
        assert rerun(src, out, overwrite=overwrite, clear_stale_claim=True)[
            "partition_check"]["ok"]
    check_out(out, N)
    assert [p for p in os.listdir(tmp_path) if ".tod-cleanse-" in p] == []
    assert tree_hash(src) == before
