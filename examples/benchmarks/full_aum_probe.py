"""Probe: does the ToD *full* network's margin averaged over training rank flips like AUM?

Issue 11's stretch target compares the default score with the best one-run peer. On
the MLP cells that peer is the area under the margin (AUM, Pleiss et al. 2020) of a
normally trained network, which averages each row's logit margin over every step that
saw it, before the flips are memorised. A ToD run's own AUM (``tod:aum_seen``) reads the
row's *seen* sub-network, which memorises its row fast, and ranks flips poorly. This
probe measures the obvious alternative: the margin (and the log-likelihood) of the
*full* ToD network on each batch, right after the step, averaged over training.

It costs one extra full-network forward pass a step, so it is a probe, not a package
score. It refits run.py's MLP cells (same split, noise, estimator and seed; training is
bit-identical, the extra pass is ``no_grad`` in eval mode) and prints a markdown table
of AP at ranking the flipped rows, next to the suite's ``aum_normal`` and ``loss_normal``
(``results/full/results.json``, the same normal run)::

    .venv/bin/python examples/benchmarks/full_aum_probe.py            # all 8 MLP cells
    .venv/bin/python examples/benchmarks/full_aum_probe.py --only digits
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lib as bl  # noqa: E402
import run  # noqa: E402

from tod_cleanse.layers import tod_context  # noqa: E402
from tod_cleanse.scores import cleansing_scores  # noqa: E402

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("full_aum_probe")


class FullMarginProbe(bl.BenchMLP):
    """``BenchMLP`` that also averages the full network's margin and log-likelihood of
    each training row over the steps that saw it (``full_aum_``, ``full_mean_ll_``)."""

    def fit(self, X, y, instance_keys=None):
        n = len(X)
        self._sums = torch.zeros(3, n, dtype=torch.float64)  # margin, log-lik, count
        super().fit(X, y, instance_keys)
        margin, loglik, count = self._sums
        self.full_aum_ = (margin / count.clamp(min=1)).numpy()
        self.full_mean_ll_ = (loglik / count.clamp(min=1)).numpy()
        self._sums = None
        return self

    def train_step(self, xb, yb, kb):
        loss = super().train_step(xb, yb, kb)
        self.module_.eval()
        with torch.no_grad(), tod_context(None, "full"):
            out = self.module_(xb)
        self.module_.train()
        logits = (out[0] if isinstance(out, tuple) else out).float()
        loglik = torch.log_softmax(logits, 1).gather(1, yb[:, None]).squeeze(1)
        k = kb.cpu().long()
        self._sums[0].index_add_(0, k, bl.logit_margin(logits, yb).double())
        self._sums[1].index_add_(0, k, loglik.double())
        self._sums[2].index_add_(0, k, torch.ones(len(k), dtype=torch.float64))
        return loss


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=None,
                    help="cells whose name contains this (repeatable; default: every MLP cell)")
    ap.add_argument("--out", default=str(HERE / "results" / "scores" / "full_aum.md"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)  # this probe's table lines, not every epoch of every fit
    torch.set_num_threads(1)
    suite = {c["name"]: c for c in
             json.loads((HERE / "results" / "full" / "results.json").read_text())["cells"]}
    cols = ["full_aum", "full_mean_ll", "full_likelihood", "aum_normal", "loss_normal"]
    lines = ["| cell | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for c in run.build_cells(False):
        name = run.cell_name(c)
        if c["model"] != "mlp" or (args.only and not any(o in name for o in args.only)):
            continue
        split = run.load_split(c)
        y_noisy, flipped = run.noisy_labels(c, split)
        est = run.mlp_factory()
        bl.warmup(est, split)
        probe = FullMarginProbe(**est.get_params()).set_params(random_state=0, verbose=0)
        probe.fit(split.X_train, y_noisy)
        scores = {"full_aum": probe.full_aum_, "full_mean_ll": probe.full_mean_ll_,
                  "full_likelihood": cleansing_scores("full_likelihood", probe.y_train_,
                                                      full_proba=probe.train_proba_)}
        ap_ = {k: bl.detection_metrics(v, flipped)["ap"] for k, v in scores.items()}
        normal = suite.get(name, {}).get("methods", {})
        for k in ("aum_normal", "loss_normal"):
            ap_[k] = normal.get(k, {}).get("ap", float("nan"))
        lines.append(f"| {name} | " + " | ".join(f"{ap_[k]:.3f}" for k in cols) + " |")
        logger.info(lines[-1])
    text = ("# The ToD full network's margin averaged over training (probe)\n\n"
            "Generated by `examples/benchmarks/full_aum_probe.py`; AP at ranking the flipped "
            "rows. `aum_normal` / `loss_normal`: the suite's normal run "
            "(`results/full/results.json`).\n\n" + "\n".join(lines) + "\n")
    Path(args.out).write_text(text)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
