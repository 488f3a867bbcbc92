"""Data-parallel training (torch DDP, gloo on CPU) is the same training as one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from tod_cleanse import ToDMLPClassifier

# One epoch, Adam, 200 rows in global batches of 33 (the shards are 17 and 16 rows,
# and the last batch of 2 rows is split 1 + 1): the two-process parameters equal the
# one-process ones up to float32 summation order. ``inner_p=0``: the random dropout
# inside the seen sub-network draws from each rank's own generator, so with it DDP is
# the same training in distribution only, not parameter for parameter.
ATOL, RTOL = 1e-6, 1e-5
PARAMS = dict(hidden_layer_sizes=(16,), max_epochs=1, batch_size=33, random_state=3,
              inner_p=0.0, oos_folds=None, verbose=0)

WORKER = textwrap.dedent("""
    import sys
    import numpy as np, torch, torch.distributed as dist
    from tod_cleanse import ToDMLPClassifier
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rows = []  # rows this rank trained on: its shards of the global batches
    start = {}  # the parameters before the first step
    step = ToDMLPClassifier.train_step
    def counting_step(self, xb, yb, kb, *args):
        if not rows:
            net = getattr(self.module_, "module", self.module_)
            start.update({k: v.detach().clone() for k, v in net.state_dict().items()})
        rows.append(int(yb.shape[0]))
        return step(self, xb, yb, kb, *args)
    ToDMLPClassifier.train_step = counting_step
    data = np.load(sys.argv[1], allow_pickle=True)
    est = ToDMLPClassifier(**data["params"].item()).fit(
        data["X"], data["y"], instance_keys=data["keys"])
    torch.save({"state": est.module_.state_dict(), "start": start, "history": est.history_,
                "rows": rows, "self_influence": est.self_influence_},
               f"{sys.argv[2]}.{dist.get_rank()}")
    dist.destroy_process_group()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X[:200] / 16.0).astype(np.float32)
    keys = np.array([f"row-{i}" for i in range(200)], dtype=object)  # string keys travel
    return X, y[:200], keys


def _run_ddp(tmp_path, X, y, keys, params) -> list[dict]:
    """Fit on two gloo processes (torchrun); each rank's parameters, history, scores."""
    data, out, script = tmp_path / "data.npz", tmp_path / "rank", tmp_path / "worker.py"
    np.savez(data, X=X, y=y, keys=keys, params=np.array(params, dtype=object))
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2",
           f"--master-port={_free_port()}", str(script), str(data), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [torch.load(f"{out}.{r}", weights_only=False) for r in (0, 1)]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, digits) -> dict:
    """Rank 0 of a two-process fit with :data:`PARAMS`."""
    return _run_ddp(tmp_path_factory.mktemp("ddp"), *digits, PARAMS)[0]


pytestmark = pytest.mark.filterwarnings("ignore:.*the fit looks unreliable")


def test_ddp_epoch_matches_one_process(digits, ddp_run):
    X, y, keys = digits
    torch.set_num_threads(1)
    single = ToDMLPClassifier(**PARAMS).fit(X, y, instance_keys=keys)
    ddp = ddp_run
    # rank 0 trained on its shard of each global batch only: 6 x 17 rows + 1 of the last 2
    assert ddp["rows"] == [17] * 6 + [1]
    ref = single.module_.state_dict()
    assert ref.keys() == ddp["state"].keys()
    for name, value in ref.items():
        torch.testing.assert_close(ddp["state"][name], value, atol=ATOL, rtol=RTOL,
                                   msg=lambda m, name=name: f"{name}: {m}")
    # the epoch loss is the mean over all ranks, and scoring after DDP is the same
    assert ddp["history"][0]["train_loss"] == pytest.approx(single.history_[0]["train_loss"],
                                                            rel=1e-5)
    np.testing.assert_allclose(ddp["self_influence"], single.self_influence_, atol=1e-4)


def test_ddp_shards_differ_from_one_process_with_other_keys(digits, ddp_run):
    """The masks follow the keys: the same rows under other keys train another model,
    so the equality above is not a coincidence of the batch order."""
    X, y, keys = digits
    torch.set_num_threads(1)
    other = ToDMLPClassifier(**PARAMS).fit(X, y, instance_keys=keys[::-1].copy())
    diff = max(float((ddp_run["state"][k] - v).abs().max())
               for k, v in other.module_.state_dict().items())
    assert diff > 1e-3


def test_ddp_trains_the_out_of_fold_members_in_step_on_every_rank(digits, tmp_path):
    """The members (oos_folds) run inside the wrapped forward pass, so DDP averages their
    gradients: both ranks end with the same member weights, moved from their start."""
    X, y, keys = digits
    params = dict(PARAMS, oos_folds=3, oos_width=8)
    ranks = _run_ddp(tmp_path, X, y, keys, params)
    members = [{k: v for k, v in r["state"].items() if k.startswith("members.")} for r in ranks]
    assert set(members[0]) == {"members.weight1", "members.bias1", "members.weight2",
                               "members.bias2"}
    for name, value in members[0].items():
        torch.testing.assert_close(members[1][name], value, atol=1e-6, rtol=1e-5)
    for name, value in members[0].items():
        assert float((value - ranks[0]["start"][name]).abs().max()) > 1e-4, name
