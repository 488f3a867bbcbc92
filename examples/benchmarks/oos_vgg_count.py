"""Issue 11, round 5: candidate ``"auto"`` counts on the VGG cells, by members' stage.

With the members on stage 2 (``oos_stage=2``, the default since round 5) the package's
two-view count undershoots the VGG cells (``results/oos/README.md``, round 5). This fits
run.py's VGG on the full suite's Fashion-MNIST 10k cells with the members on stage 2, on
the trunk's output, and without members (``oos_stage`` printed as ``"none"``: the second
view is then the flipped head sub-network; the ToD network is the same in all three), and
prints the flipped count next to the candidate counts of
:func:`tod_cleanse.scores.estimate_issue_count`: ``two_view`` (the package's rule),
``full`` (``train_proba_`` alone), ``oos`` (``oos_proba_`` alone), ``mean`` (the joint on
the mean of both views) and cleanlab's ``num_label_issues`` on ``oos_proba_``. One JSON
line per fit; with ``--save DIR`` each fit's views are also written
(``oos_count.save_views``: ``DIR/vgg-<cell>-<stage>-s0.npz``) for ``oos_count_rules.py``.

Usage (repository root)::

    nice -n 5 .venv/bin/python examples/benchmarks/oos_vgg_count.py --cells uniform20,uniform40
    nice -n 5 .venv/bin/python examples/benchmarks/oos_vgg_count.py --stages 2 \
        --cells uniform10,uniform20,uniform40,class20 --save /tmp/views
    nice -n 5 .venv/bin/python examples/benchmarks/oos_vgg_count.py --stages 2 --dataset digits \
        --cells uniform20,class20,clean --save /tmp/views_check
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as bl  # noqa: E402
import run  # noqa: E402
from oos_count import save_views  # noqa: E402

from tod_cleanse.scores import estimate_issue_count  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from cleanlab.count import num_label_issues

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stages", default="2,trunk,none",
                    help="comma-separated: 2 (the default), trunk (oos_stage=None), none "
                         "(no members)")
    ap.add_argument("--cells", default="uniform20,uniform40",
                    help="comma-separated: uniform10, uniform20, uniform40, class20, clean")
    ap.add_argument("--dataset", choices=["fashion_mnist", "digits"], default="fashion_mnist",
                    help="digits: run.py's digits rows, 8x8 images padded to 32x32")
    ap.add_argument("--save", type=Path, default=None, metavar="DIR",
                    help="also write each fit's views to DIR/vgg-<cell>-<stage>-s0.npz")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for cell in args.cells.split(","):
        kind = next(k for k in ("class", "uniform", "clean") if cell.startswith(k))
        rate = int(cell[len(kind):] or 0) / 100
        c = dict(dataset=args.dataset, model="vgg", kind=kind, rate=rate, n_train=10_000)
        split = run.load_split(c)
        if args.dataset == "digits":
            c.pop("n_train")  # all of digits' training rows, as run.py's digits cells
        if kind == "clean":
            y, flipped = split.y_train.copy(), np.zeros(len(split.y_train), bool)
        else:
            y, flipped = bl.inject_noise(split.y_train, rate, kind, split.name, seed=0)
        stages = {"2": 2, "trunk": None, "none": "none"}
        for stage in (stages[s] for s in args.stages.split(",")):
            params = {"oos_folds": None} if stage == "none" else {"oos_stage": stage}
            est = run.vgg_factory().set_params(random_state=0, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.fit(split.X_train, y)
            labels, full, oos = est.y_train_, est.train_proba_, est.oos_proba_
            if args.save is not None:
                name = run.cell_name(c)
                save_views(args.save / f"vgg-{name}-stage{stage}-s0.npz", est, split.y_train,
                           flipped, family="vgg", cell=name, seed=0, oos_stage=stage)
            print(json.dumps({
                "cell": run.cell_name(c), "oos_stage": stage, "flipped": int(flipped.sum()),
                "two_view": estimate_issue_count(full, labels, oos),
                "full": estimate_issue_count(full, labels),
                "oos": estimate_issue_count(oos, labels),
                "mean": estimate_issue_count((full + oos) / 2, labels),
                "cleanlab_oos": int(num_label_issues(labels, oos))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
