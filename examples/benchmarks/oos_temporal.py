"""Issue 11, round 5 (a loser): the members' out-of-fold predictions averaged over epochs.

A deep network memorises its noisy rows late in training (Arpit et al., ICML 2017), so
the out-of-fold members' predictions of early epochs should have seen less of a flipped
row through the shared trunk. In every training step the members already compute the
out-of-fold logits of the batch's rows; this study records their softmax (a forward
hook on the members, no extra pass) and replaces ``oos_proba_`` by each row's mean over
the epochs, temperature-calibrated like the package's view (a temporal ensemble, as in
Laine & Aila, ICLR 2017). It compares that with the package's ``oos_proba_`` (the
members at the end of training) on the MLP cells of ``oos_study.py`` and on VGG
(run.py's network, Fashion-MNIST 10k, members on the trunk's output as in round 4).

Measured, not adopted: see ``results/oos/README.md``, round 5. Prints one JSON line per
fit (cleanlab's ``find_label_issues`` flagged / precision / recall, quality-score AP,
clean-row accuracy, the ``"auto"`` count) and writes ``results/oos/temporal.md``.

Usage (repository root)::

    nice -n 5 .venv/bin/python examples/benchmarks/oos_temporal.py --family mlp \
        --cells all --seeds 0,1
    nice -n 5 .venv/bin/python examples/benchmarks/oos_temporal.py --family vgg \
        --cells uniform20,class20 --append
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as bl  # noqa: E402
import oos_study as study  # noqa: E402
import run  # noqa: E402

from tod_cleanse import ToDMLPClassifier, ToDVGGClassifier  # noqa: E402
from tod_cleanse.diagnostics import fit_temperature, softmax_temperature  # noqa: E402
from tod_cleanse.folds import key_fold, out_of_fold_logits  # noqa: E402
from tod_cleanse.layers import context_keys  # noqa: E402
from tod_cleanse.scores import estimate_issue_count  # noqa: E402

OUT = study.OUT


def temporal(cls: type) -> type:
    """``cls`` whose ``oos_proba_`` is each row's members' out-of-fold softmax averaged
    over every training step that saw the row (calibrated by one temperature)."""

    class Temporal(cls):
        def _fit_loop(self, inputs: Any, y_enc: np.ndarray, keys: np.ndarray,
                      rng: np.random.Generator) -> None:
            members = getattr(self.module_, "members", None)
            n, k = len(y_enc), len(self.classes_)
            total = torch.zeros(n, k, dtype=torch.float64)
            seen = torch.zeros(n, dtype=torch.float64)
            order = np.argsort(keys)
            sorted_keys, position = torch.as_tensor(keys[order]), torch.as_tensor(order)

            def record(module: Any, args: Any, out: torch.Tensor) -> None:
                batch_keys = context_keys()
                if not module.training or batch_keys is None:
                    return
                rows = position[torch.searchsorted(sorted_keys, batch_keys.cpu())]
                folds = key_fold(batch_keys, members.n_folds, int(self.mask_seed))
                proba = torch.softmax(out_of_fold_logits(out.detach().float(), folds), 1)
                total.index_add_(0, rows, proba.double().cpu())
                seen.index_add_(0, rows, torch.ones(len(rows), dtype=torch.float64))

            hook = members.register_forward_hook(record) if members is not None else None
            try:
                super()._fit_loop(inputs, y_enc, keys, rng)
            finally:
                if hook is not None:
                    hook.remove()
            self.epoch_mean_proba_ = (total / seen.clamp(min=1)[:, None]).numpy()

        def _score_training_rows(self, inputs: Any, y_enc: np.ndarray,
                                 keys: np.ndarray) -> None:
            super()._score_training_rows(inputs, y_enc, keys)
            logp = np.log(np.clip(self.epoch_mean_proba_, 1e-12, None))
            self.oos_temperature_ = fit_temperature(logp, y_enc)
            self.oos_proba_ = softmax_temperature(logp, self.oos_temperature_).astype(np.float32)

    Temporal.__name__ = Temporal.__qualname__ = cls.__name__
    return Temporal


def _fit(est: Any, X: Any, y: np.ndarray) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _row(cell: str, seed: int, design: str, est: Any, flipped: np.ndarray) -> dict:
    labels = np.asarray(est.y_train_)
    res = {"cell": cell, "seed": seed, "design": design,
           **study.cleanlab_metrics(labels, est.oos_proba_.astype(np.float64), flipped),
           "auto": int(estimate_issue_count(est.train_proba_, labels, est.oos_proba_)),
           "n_flipped": int(flipped.sum())}
    print(json.dumps(res), flush=True)
    return res


def mlp_rows(which: str, seeds: list[int]) -> list[dict]:
    rows = []
    for c in study.cells(which):
        split, y, flipped = study.load_cell(c)
        for seed in seeds:
            if seed and c["kind"] == "clean":
                continue
            if seed:
                y, flipped = bl.inject_noise(split.y_train, c["rate"], c["kind"], split.name,
                                             seed=seed)
            for design, cls in (("final", ToDMLPClassifier),
                                ("epoch-mean", temporal(ToDMLPClassifier))):
                est = _fit(cls(verbose=0, random_state=seed), split.X_train, y)
                rows.append(_row(study.cell_name(c), seed, design, est, flipped))
    return rows


def vgg_rows(cells: list[str]) -> list[dict]:
    rows = []
    for name in cells:
        kind = "class" if name.startswith("class") else "uniform"
        c = dict(dataset="fashion_mnist", model="vgg", kind=kind,
                 rate=int(name[len(kind):]) / 100, n_train=10_000)
        split = run.load_split(c)
        y, flipped = bl.inject_noise(split.y_train, c["rate"], kind, split.name, seed=0)
        params = {**run.vgg_factory().get_params(), "random_state": 0, "oos_stage": None}
        for design, cls in (("final", ToDVGGClassifier),
                            ("epoch-mean", temporal(ToDVGGClassifier))):
            est = _fit(cls(**params), split.X_train, y)
            rows.append(_row(run.cell_name(c), 0, design, est, flipped))
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["# The members' predictions averaged over epochs (issue 11, round 5; not adopted)",
           "", "Generated by `examples/benchmarks/oos_temporal.py`. `final`: the package's "
           "`oos_proba_` (MLP defaults; VGG: run.py's network with `oos_stage=None`); "
           "`epoch-mean`: each row's out-of-fold softmax averaged over the training steps, "
           "one temperature. cleanlab on each view; `auto`: the package's two-view count.",
           "", "| cell | seed | view | flagged | precision | recall | AP | clean-row acc | "
           "auto / flipped |", "|---|---|---|---|---|---|---|---|---|"]

    def fmt(v: float) -> str:
        return "-" if v != v else f"{v:.3f}"

    for r in sorted(rows, key=lambda r: (r["cell"], r["seed"], r["design"] != "final")):
        out.append(f"| {r['cell']} | {r['seed']} | `{r['design']}` | {r['n_flagged']} | "
                   f"{fmt(r['precision'])} | {fmt(r['recall'])} | {fmt(r['ap_quality'])} | "
                   f"{fmt(r['acc_clean'])} | {r['auto']} / {r['n_flipped']} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--family", choices=["mlp", "vgg"], default="mlp")
    ap.add_argument("--cells", default="all",
                    help="mlp: a cell set of oos_study.py (digits, fashion, all); "
                         "vgg: comma-separated uniform10/20/40, class20")
    ap.add_argument("--seeds", default="0", help="mlp: comma-separated training/noise seeds")
    ap.add_argument("--append", action="store_true", help="keep the rows already stored")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    path = OUT / "temporal.json"
    old = json.loads(path.read_text()) if args.append and path.exists() else []
    try:
        new = (mlp_rows(args.cells, [int(s) for s in args.seeds.split(",")])
               if args.family == "mlp" else vgg_rows(args.cells.split(",")))
    except bl.Skip as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return 1
    rows = bl.replace_rows(old, new)
    path.write_text(json.dumps(rows, indent=1))
    (OUT / "temporal.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
