"""Issue 11: the out-of-sample view of the VGG, ResNet and BERT families, against 5-fold CV.

The MLP's out-of-fold members (:mod:`tod_cleanse.folds`) read the raw input. Before
this study the VGG and BERT families had none: their ``oos_proba_`` was the flipped
sub-network of the ToD head, on a trunk (convolutions; the whole encoder) that every
row trained. This fits run.py's settings of each family (``vgg_factory``: a CPU-sized
VGG11-BN on the full suite's Fashion-MNIST 10k cells; ``bert_factory``: MiniLM
fine-tuned on the WordNet 2k cells) and compares the out-of-sample views one run can
give:

* ``flipped``: ``oos_proba_`` without members (``oos_folds=None``: the flipped head
  sub-network; the families' only view before this study);
* ``members-trunk``: ``oos_folds=5, oos_width=128`` (VGG: ``oos_stage=None``, the default
  before round 5; BERT: ``oos_layer=None`` at the encoder's lr, opt-in before round 6):
  five out-of-fold members (one hidden layer of 128) on the *detached* trunk features
  (VGG: the input of the first ToD layer; BERT: the encoder's pooled output): the
  members' loss never reaches the trunk, but the trunk saw every row;
* ``members-stage1`` .. ``members-stage4`` (VGG, ResNet): the members read the detached
  output of convolutional stage 1-4 (``oos_stage``; pooled to at most 8x8), which
  memorises the rows less than the trunk's top; ``members-stage2`` is the VGG default
  since round 5; ``members-stage2-grid4`` (VGG): the same pooled to 4x4. ResNet
  (``--family resnet``: the setting of ``examples/fashion_mnist_resnet.py``, 4,000 rows)
  keeps ``members-trunk`` by default;
* ``members-pixels`` (VGG only): the MLP's members on a fixed 64-dimensional PCA of
  the standardised pixels (:func:`tod_cleanse.folds.input_projection`): a whole network
  that never saw the row, but a weaker model than the VGG;
* ``members-mean`` (VGG only): the mean of the two members' views (both fits' CPU;
  needs ``members-trunk`` and ``members-pixels`` before it in ``--designs``);
* ``members-lr10`` (BERT): ``members-trunk`` with the members' learning rate at 10x the
  encoder's (``_member_lr_scale``, the text family's since round 6);
* ``members-layer3-lr10`` .. ``members-layer5-lr10`` (BERT): members at 10x lr on encoder
  layer 3-5's hidden states (of MiniLM's 6; mean over the tokens, detached; ``oos_layer``),
  the text counterpart of ``members-stage*``; ``members-layer4-lr10`` is the text family's
  default since round 6 (``oos_layer="auto"`` is layer 4 of 6; round 5 measured a
  prototype that ran the encoder a second time when scoring);
* ``tod-conv2``, ``tod-conv4`` (VGG only): the default with ToD also after the last 2
  / 4 convolutions (``tod_conv_layers``): where ToD sits, for self-influence;
  ``tod-top1``, ``tod-top2`` (BERT): the default with ToD also in the top 1 / 2 encoder
  layers (``tod_layers="top-N"``; the members stay on layer 4);
* ``cv5``: cleanlab's yardstick, 5-fold CV ``pred_probs`` of the same network without
  ToD (run.py's baseline).

For each: ``find_label_issues`` flagged / precision / recall, the AP of
``get_label_quality_scores``, the accuracy on the clean training rows, and the CPU
seconds of the run (one torch thread). Writes ``results/oos/families.md`` (rows kept
in ``families.json``) and ``pr_families.png`` (``find_label_issues`` precision / recall
of each family's default view and flipped head against 5-fold CV, per cell).

Usage (repository root; data from ``make data``)::

    nice -n 5 .venv/bin/python examples/benchmarks/oos_families.py --family vgg \
        --cells uniform20,class20 --designs flipped,members-trunk,members-pixels,members-mean,cv5
    nice -n 5 .venv/bin/python examples/benchmarks/oos_families.py --family bert \
        --cells uniform20 --designs flipped,members-trunk,cv5 --append
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as bl  # noqa: E402
import oos_study as study  # noqa: E402
import run  # noqa: E402

from tod_cleanse import ToDVGGClassifier  # noqa: E402
from tod_cleanse.estimators._network import ToDNetwork  # noqa: E402
from tod_cleanse.folds import OutOfFoldMembers, input_projection  # noqa: E402
from tod_cleanse.scores import auto_count_views, estimate_issue_count  # noqa: E402

OUT = study.OUT
N_FOLDS, WIDTH = 5, 128


class _VGGStageGrid4(ToDVGGClassifier):
    """``oos_stage`` features average-pooled to 4x4 instead of 8x8."""

    _tap_grid = 4


class _VGGPixelMembers(ToDVGGClassifier):
    """run.py's VGG with the MLP's members: on a fixed PCA map of the standardised pixels."""

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        arr = super()._validate_X(X, reset=reset)
        if reset:
            self.oos_projection_ = input_projection(arr.reshape(len(arr), -1))
        return arr

    def _build_module(self, n_classes: int) -> ToDNetwork:
        net = super()._build_module(n_classes)
        members = OutOfFoldMembers(int(np.prod(self._padded_shape())), N_FOLDS, WIDTH,
                                   n_classes, projection=self.oos_projection_,
                                   seed=torch.initial_seed() % 2**31)
        return ToDNetwork(net.trunk, net.head, members, members_input="input")


def resnet_factory() -> Any:
    """The setting of ``examples/fashion_mnist_resnet.py`` (ResNet-18, channels x0.125,
    10 epochs of SGD at lr 0.05 with linear decay; 4,000 Fashion-MNIST images)."""
    from tod_cleanse import ToDResNetClassifier

    return ToDResNetClassifier(arch="resnet18", width_multiplier=0.125, max_epochs=10,
                               batch_size=128, lr=0.05, optimizer="sgd", weight_decay=5e-4,
                               verbose=0)


FACTORIES = {"resnet": resnet_factory}


def _text_members_lr1() -> type:
    """The text family with its members at the encoder's learning rate (before round 6)."""
    from tod_cleanse import ToDTextClassifier

    class _TextMembersLr1(ToDTextClassifier):
        _member_lr_scale = 1.0

    return _TextMembersLr1


def _tod_fit(factory: Any, cls: type, split: bl.Split, y: np.ndarray, seed: int,
             **params: Any) -> tuple[np.ndarray, float, np.ndarray, int]:
    est = cls(**factory().get_params()).set_params(random_state=seed, **params)
    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(split.X_train, y)
    cpu = time.process_time() - t0
    auto = int(estimate_issue_count(**auto_count_views(est), labels=np.asarray(est.y_train_)))
    return est.oos_proba_.astype(np.float64), cpu, est.self_influence_, auto


def run_cell(family: str, kind: str, rate: float, seed: int, designs: list[str],
             save: str | None = None, dataset: str | None = None,
             n_train: int | None = None) -> list[dict]:
    images = family in ("vgg", "resnet")
    c = dict(dataset=dataset or ("fashion_mnist" if images else "wordnet"),
             model=family, kind=kind, rate=rate,
             n_train=n_train or {"vgg": 10_000, "resnet": 4_000, "bert": 2_000}[family])
    split = run.load_split(c)
    pairs = (bl.confusable_by_text(split.X_train, split.y_train)
             if family == "bert" and kind == "class" else None)  # as run.py
    y, flipped = bl.inject_noise(split.y_train, rate, kind, split.name, seed=seed, pairs=pairs)
    y = np.unique(y, return_inverse=True)[1]  # 0..k-1 (WordNet's class ids have gaps)
    if c["dataset"] == "digits":
        c.pop("n_train")  # all of digits' training rows (run.py's digits cells)
    cell = run.cell_name(c)
    factory = FACTORIES.get(family) or run.FACTORIES[family]
    cls = type(factory())
    trunk = {"oos_stage": None} if images else {"oos_layer": None}
    views = {"flipped": (cls, {"oos_folds": None}),
             "members-trunk": (_text_members_lr1() if family == "bert" else cls,
                               {"oos_folds": N_FOLDS, "oos_width": WIDTH, **trunk}),
             **{f"members-stage{k}": (cls, {"oos_folds": N_FOLDS, "oos_width": WIDTH,
                                           "oos_stage": k}) for k in (1, 2, 3, 4)},
             "members-stage2-grid4": (_VGGStageGrid4, {"oos_folds": N_FOLDS,
                                                       "oos_width": WIDTH, "oos_stage": 2}),
             "members-pixels": (_VGGPixelMembers, {"oos_folds": None}),
             "members-lr10": (cls, {"oos_folds": N_FOLDS, "oos_width": WIDTH, **trunk}),
             **{f"members-layer{k}-lr10": (cls, {"oos_folds": N_FOLDS, "oos_width": WIDTH,
                                                 "oos_layer": k})
                for k in (3, 4, 5) if family == "bert"},
             # where ToD sits (self-influence): also after the last k convolutions
             "tod-conv2": (cls, {"tod_conv_layers": 2, **trunk}),
             "tod-conv4": (cls, {"tod_conv_layers": 4, **trunk}),
             # ... or in the top k encoder layers (the members stay on layer 4 of 6)
             **{f"tod-top{k}": (cls, {"tod_layers": f"top-{k}"}) for k in (1, 2)
                if family == "bert"}}
    rows, preds, cpus = [], {}, {}
    for name in designs:
        extra: dict = {}
        if name == "members-mean":  # the two members' views of this run, averaged
            pred = (preds["members-trunk"] + preds["members-pixels"]) / 2
            cpu = cpus["members-trunk"] + cpus["members-pixels"]
        elif name == "cv5":
            t0 = time.process_time()
            pred, _, _ = bl.cv_pred_probs(factory(), split.X_train, y, seed)
            cpu = time.process_time() - t0
        else:
            view_cls, params = views[name]
            pred, cpu, selfinf, auto = _tod_fit(factory, view_cls, split, y, seed, **params)
            extra["ap_self_influence"] = float(average_precision_score(flipped, selfinf))
            extra["auto"] = auto  # the package's drop count ("auto"), against n_flipped
        preds[name], cpus[name] = pred, cpu
        if save:
            np.savez(Path(save) / f"{cell}@s{seed}-{name}.npz", pred=pred, y=y, flipped=flipped)
        res = {"cell": cell, "seed": seed, "design": name, "cpu_s": cpu,
               "n_flipped": int(flipped.sum()),
               **study.cleanlab_metrics(y, pred, flipped), **extra}
        print(json.dumps(res), flush=True)
        rows.append(res)
    return rows


def markdown(rows: list[dict]) -> str:
    out = ["# The out-of-sample view of the VGG and BERT families (issue 11)", "",
           "Generated by `examples/benchmarks/oos_families.py`: run.py's settings of each "
           "family (`vgg_factory`: CPU-sized VGG11-BN on the full suite's Fashion-MNIST 10k "
           "cells; `bert_factory`: MiniLM on the WordNet 2k cells); cleanlab's "
           "`find_label_issues` and `get_label_quality_scores` on each out-of-sample view, "
           "accuracy on the clean training rows, CPU seconds of the whole run (one thread). "
           "`members-stage2` is the package's default for VGG since round 5 (before: "
           "`members-trunk`); `members-layer4-lr10` the default for BERT since round 6 "
           "(before: `flipped`).",
           "`AP self-inf.`: AP of the fit's `self_influence_` at ranking the flipped rows. "
           "Cells without a `cv5` row: the full suite's `cleanlab_cv5` on the same rows, "
           "flips and network (`results/full/`; on the two cells measured both ways the "
           "figures agree exactly).",
           "`auto / flipped`: the package's drop count (`drop_fraction=\"auto\"`) against "
           "the number of flipped rows (rows measured before it was recorded: -).",
           "", "| cell | view | flagged | precision | recall | AP | clean-row acc | "
           "AP self-inf. | auto / flipped | CPU s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    order = ["cv5", "flipped", "members-trunk", "members-stage4", "members-stage3",
             "members-stage2", "members-stage2-grid4", "members-stage1", "members-lr10",
             "members-layer5-lr10", "members-layer4-lr10", "members-layer3-lr10",
             "members-pixels", "members-mean", "tod-conv2", "tod-conv4", "tod-top1",
             "tod-top2"]
    for r in sorted(rows, key=lambda r: (r["cell"], r["seed"], order.index(r["design"]))):
        cell = r["cell"] + (f" @s{r['seed']}" if r["seed"] else "")
        out.append(f"| {cell} | `{r['design']}` | {r['n_flagged']} | {r['precision']:.3f} | "
                   f"{r['recall']:.3f} | {r['ap_quality']:.3f} | {r['acc_clean']:.3f} | "
                   + (f"{r['ap_self_influence']:.3f}" if "ap_self_influence" in r else "-")
                   + (f" | {r['auto']} / {r['n_flipped']}" if "auto" in r else " | -")
                   + f" | {r['cpu_s']:.0f} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--family", choices=["vgg", "resnet", "bert"], default="vgg")
    ap.add_argument("--cells", default="uniform20,class20",
                    help="comma-separated: uniform10, uniform20, uniform40, class20")
    ap.add_argument("--designs", default="flipped,members-trunk,members-pixels,cv5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", choices=["fashion_mnist", "digits"],
                    help="VGG, ResNet: another image set than the full suite's Fashion-MNIST "
                         "(digits: 8x8 images padded to 32x32), for the default's robustness")
    ap.add_argument("--n-train", type=int, help="training rows (Fashion-MNIST; default: the "
                    "full suite's 10,000 for VGG, 2,000 for BERT)")
    ap.add_argument("--append", action="store_true", help="keep the rows already stored")
    ap.add_argument("--save-probs", metavar="DIR", help="also write each view's pred_probs "
                    "(with the labels and the flip mask) to DIR/<cell>@s<seed>-<view>.npz")
    ap.add_argument("--report", action="store_true",
                    help="only rewrite families.md and pr_families.png from families.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    path = OUT / "families.json"
    if args.report:
        rows = json.loads(path.read_text())
        (OUT / "families.md").write_text(markdown(rows))
        plot(rows, OUT / "pr_families.png")
        return 0
    rows = json.loads(path.read_text()) if args.append and path.exists() else []
    designs = args.designs.split(",")
    for cell in args.cells.split(","):
        kind = "class" if cell.startswith("class") else "uniform"
        rate = int(cell[len(kind):]) / 100
        try:
            new = run_cell(args.family, kind, rate, args.seed, designs, args.save_probs,
                           args.dataset, args.n_train)
        except bl.Skip as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            return 1
        if args.append and path.exists():  # rows another run wrote meanwhile are kept
            rows = json.loads(path.read_text())
        rows = bl.replace_rows(rows, new)
        path.write_text(json.dumps(rows, indent=1))
        (OUT / "families.md").write_text(markdown(rows))
    plot(rows, OUT / "pr_families.png")
    print(markdown(rows))
    return 0


#: The views drawn by :func:`plot`: each family's default and its flipped head.
PLOTTED = ("flipped", "members-stage2", "members-layer4-lr10", "cv5")


def plot(rows: list[dict], path: Path) -> None:
    """``find_label_issues`` precision / recall per cell: the package's default view and
    the flipped head against 5-fold CV (the full suite's where the cell has no ``cv5``)."""
    import oos_report

    full = oos_report.full_suite_cv5(OUT.parent / "full" / "results.json")
    drawn = [{"n_flipped": 1, **r} for r in rows if r["design"] in PLOTTED and not r["seed"]]
    have_cv = {r["cell"] for r in drawn if r["design"] == "cv5"}
    drawn += [{"cell": cell, "design": "cv5", "n_flipped": 1, **full[cell]}
              for cell in dict.fromkeys(r["cell"] for r in drawn)
              if cell not in have_cv and cell in full]
    oos_report.plot_pr(drawn, path)


if __name__ == "__main__":
    sys.exit(main())
