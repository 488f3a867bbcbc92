"""Issue 11: is one ToD run's out-of-sample view as good as 5-fold cross-validation?

For every design (estimator settings plus optional post-processing of the flipped
sub-network's probabilities) and every cell (dataset x label noise), it measures in
the same process, against cleanlab on 5-fold CV ``pred_probs`` of the same MLP
trained without ToD (the pre-issue defaults, ``p=0.5`` ordinary dropout):

* ``find_label_issues`` on the one-run ``pred_probs``: flagged / precision / recall;
* AP of ``get_label_quality_scores`` on them;
* accuracy of the out-of-sample argmax on the clean (unflipped) training rows;
* AP of self-influence (the paper's score) and of the default cleansing score;
* the ``"auto"`` drop count (:func:`tod_cleanse.scores.estimate_issue_count`) and
  candidate counts, against the true number of flipped rows;
* CPU time of the one ToD run (training + scoring) over that of 5-fold CV.

Usage (repository root)::

    nice -n 10 .venv/bin/python examples/benchmarks/oos_study.py --cells digits \
        --designs base,p7,p7i3
    .venv/bin/python examples/benchmarks/oos_study.py --report   # tables + plot only

Results are merged into ``results/oos/study.json`` (one entry per design x cell);
``--report`` writes ``results/oos/study.md`` and ``results/oos/pr_tod_vs_cv.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lib as bl  # noqa: E402
import oos_report  # noqa: E402
import torch  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from tod_cleanse import ToDMLPClassifier  # noqa: E402
from tod_cleanse.cleanser import fitted_scores  # noqa: E402
from tod_cleanse.diagnostics import FitReliabilityWarning  # noqa: E402
from tod_cleanse.scores import (  # noqa: E402
    DEFAULT_METHOD,
    auto_count_views,
    confident_joint_issues,
    estimate_issue_count,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "oos"

def _tod_side(sizes: tuple[int, ...], p: float, inner_p: float,
              what: str = "") -> tuple[str, dict, str]:
    """A round-3 design: the ToD network alone (``oos_folds=None``), temperature."""
    inner = f"inner_p={inner_p}" if inner_p else "no inner dropout"
    return (f"round 3, ToD side only: {what}{sizes}, p={p}, {inner}",
            dict(hidden_layer_sizes=sizes, p=p, inner_p=inner_p, oos_folds=None), "temp")


#: name -> (what it changes, estimator parameters, post-processing of oos_proba_).
#: ``post`` = "raw" (no calibration) or "temp" (the estimator fits one temperature on
#: the out-of-sample rows; ``BaseToDClassifier._calibrate_oos``).
DESIGNS: dict[str, tuple[str, dict, str]] = {
    "base": ("pre-issue defaults: p=0.5, no inner dropout", dict(p=0.5, inner_p=0.0), "raw"),
    "base+T": ("p=0.5, temperature on oos rows", dict(p=0.5, inner_p=0.0), "temp"),
    "p7": ("p=0.7", dict(p=0.7, inner_p=0.0), "raw"),
    "p7i3": ("p=0.7, inner_p=0.3", dict(p=0.7, inner_p=0.3), "raw"),
    "p7i3+T": ("p=0.7, inner_p=0.3, temperature", dict(p=0.7, inner_p=0.3), "temp"),
    "p8i3": ("p=0.8, inner_p=0.3", dict(p=0.8, inner_p=0.3), "raw"),
    "p8i3+T": ("p=0.8, inner_p=0.3, temperature", dict(p=0.8, inner_p=0.3), "temp"),
    "p9i3+T": ("p=0.9, inner_p=0.3, temperature", dict(p=0.9, inner_p=0.3), "temp"),
    "p8i5+T": ("p=0.8, inner_p=0.5, temperature", dict(p=0.8, inner_p=0.5), "temp"),
    "p8i3w512+T": ("p=0.8, inner_p=0.3, hidden (512, 512), temperature",
                   dict(p=0.8, inner_p=0.3, hidden_layer_sizes=(512, 512)), "temp"),
    "p8i3e40+T": ("p=0.8, inner_p=0.3, 40 epochs, temperature",
                  dict(p=0.8, inner_p=0.3, max_epochs=40), "temp"),
    "w1024p7i3+T": ("one hidden layer of 1024, p=0.7, inner_p=0.3, temperature",
                    dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(1024,)), "temp"),
    "w1024p5i3+T": ("one hidden layer of 1024, p=0.5, inner_p=0.3, temperature",
                    dict(p=0.5, inner_p=0.3, hidden_layer_sizes=(1024,)), "temp"),
    "w2048p7i3+T": ("one hidden layer of 2048, p=0.7, inner_p=0.3, temperature",
                    dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(2048,)), "temp"),
    "w1024p8i5+T": ("one hidden layer of 1024, p=0.8, inner_p=0.5, temperature",
                    dict(p=0.8, inner_p=0.5, hidden_layer_sizes=(1024,)), "temp"),
    "w1024p7i3e40+T": ("one hidden layer of 1024, p=0.7, inner_p=0.3, 40 epochs, temperature",
                       dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(1024,), max_epochs=40),
                       "temp"),
    "w1024p8i5e40+T": ("one hidden layer of 1024, p=0.8, inner_p=0.5, 40 epochs, temperature",
                       dict(p=0.8, inner_p=0.5, hidden_layer_sizes=(1024,), max_epochs=40),
                       "temp"),
    "w1024p8i3+T": ("one hidden layer of 1024, p=0.8, inner_p=0.3, temperature",
                    dict(p=0.8, inner_p=0.3, hidden_layer_sizes=(1024,)), "temp"),
    "w1024p8i5lr2+T": ("one hidden layer of 1024, p=0.8, inner_p=0.5, lr=2e-3, temperature",
                       dict(p=0.8, inner_p=0.5, hidden_layer_sizes=(1024,), lr=2e-3), "temp"),
    "w1024p7i5+T": ("one hidden layer of 1024, p=0.7, inner_p=0.5, temperature",
                    dict(p=0.7, inner_p=0.5, hidden_layer_sizes=(1024,)), "temp"),
    "w1024x2p7i3+T": ("two hidden layers of 1024, p=0.7, inner_p=0.3, temperature",
                      dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(1024, 1024)), "temp"),
    "w1024p7i3": ("one hidden layer of 1024, p=0.7, inner_p=0.3, no temperature",
                  dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(1024,)), "raw"),
    "w512p8i5+T": ("one hidden layer of 512, p=0.8, inner_p=0.5, temperature",
                   dict(p=0.8, inner_p=0.5, hidden_layer_sizes=(512,)), "temp"),
    "w1024p5+T": ("one hidden layer of 1024, p=0.5, temperature",
                  dict(p=0.5, inner_p=0.0, hidden_layer_sizes=(1024,)), "temp"),
    "w512p7i3+T": ("one hidden layer of 512, p=0.7, inner_p=0.3, temperature",
                   dict(p=0.7, inner_p=0.3, hidden_layer_sizes=(512,)), "temp"),
    "w512p8i3+T": ("one hidden layer of 512, p=0.8, inner_p=0.3, temperature",
                   dict(p=0.8, inner_p=0.3, hidden_layer_sizes=(512,)), "temp"),
    "w512p6i3+T": ("one hidden layer of 512, p=0.6, inner_p=0.3, temperature",
                   dict(p=0.6, inner_p=0.3, hidden_layer_sizes=(512,)), "temp"),
    "w512p8i3lr2+T": ("one hidden layer of 512, p=0.8, inner_p=0.3, lr=2e-3, temperature",
                      dict(p=0.8, inner_p=0.3, hidden_layer_sizes=(512,), lr=2e-3), "temp"),
    "w512p85i3+T": ("one hidden layer of 512, p=0.85, inner_p=0.3, temperature",
                    dict(p=0.85, inner_p=0.3, hidden_layer_sizes=(512,)), "temp"),
    "g2": ("complementary halves: mask_groups=2, p=0.5 (2-fold CV in one net)",
           dict(p=0.5, inner_p=0.0, mask_groups=2), "raw"),
    "g2i3+T": ("mask_groups=2, p=0.5, inner_p=0.3, temperature",
               dict(p=0.5, inner_p=0.3, mask_groups=2), "temp"),
    "p7i3e30+T": ("p=0.7, inner_p=0.3, 30 epochs, temperature",
                  dict(p=0.7, inner_p=0.3, max_epochs=30), "temp"),
    "f5w128+T": ("512, p=0.8, inner_p=0.3 plus fold-structured members: oos_folds=5, "
                 "oos_width=128 (oos_proba_ from the member of the row's fold; inputs wider "
                 "than 64 reach the members through a fixed PCA map), temperature",
                 dict(oos_folds=5, oos_width=128), "temp"),
    "f5w128": ("as f5w128+T, no temperature", dict(oos_folds=5, oos_width=128), "raw"),
    "f5w64+T": ("oos_folds=5, oos_width=64, temperature", dict(oos_folds=5, oos_width=64),
                "temp"),
    "f10w64+T": ("oos_folds=10, oos_width=64, temperature", dict(oos_folds=10, oos_width=64),
                 "temp"),
    "f5w32+T": ("oos_folds=5, oos_width=32, temperature", dict(oos_folds=5, oos_width=32),
                "temp"),
    "f5w16+T": ("oos_folds=5, oos_width=16, temperature", dict(oos_folds=5, oos_width=16),
                "temp"),
    "f10w32+T": ("oos_folds=10, oos_width=32, temperature", dict(oos_folds=10, oos_width=32),
                 "temp"),
    "f5w128-784+T": ("as f5w128+T before the members' PCA input map: the members read all "
                     "784 pixels (Fashion-MNIST rows only; code since replaced)",
                     dict(oos_folds=5, oos_width=128), "temp"),
    "f5w128-784": ("as f5w128-784+T, no temperature", dict(oos_folds=5, oos_width=128), "raw"),
    "f5w64-784+T": ("oos_folds=5, oos_width=64, members read all 784 pixels (code since "
                    "replaced)", dict(oos_folds=5, oos_width=64), "temp"),
    "f10w64-784+T": ("oos_folds=10, oos_width=64, members read all 784 pixels (code since "
                     "replaced)", dict(oos_folds=10, oos_width=64), "temp"),
    "f5w32-784+T": ("oos_folds=5, oos_width=32, members read all 784 pixels (code since "
                    "replaced)", dict(oos_folds=5, oos_width=32), "temp"),
    "f5s2": ("the default, members trained on every second batch only (a private "
             "training-loop switch, measured and removed)", {}, "temp"),
    "f5s3": ("the default, members trained on every third batch only (a private "
             "training-loop switch, measured and removed)", {}, "temp"),
    "f5w256+T": ("oos_folds=5, oos_width=256, temperature", dict(oos_folds=5, oos_width=256),
                 "temp"),
    "default-no-members": ("the defaults before the out-of-fold members (one hidden layer "
                           "of 512, p=0.8, inner_p=0.3, temperature, oos_folds=None)",
                           dict(oos_folds=None, hidden_layer_sizes=(512,), p=0.8, inner_p=0.3),
                           "temp"),
    # round 3: the ToD network under the members (members off: the ToD side is
    # bit-identical with or without them, so these rows measure the ToD-side scores --
    # the default score, self-influence, the "auto" count -- at a third of the cost)
    **{f"r3-{name}-nm": _tod_side(sizes, p, inner_p, what) for name, sizes, p, inner_p, what in [
        ("256x2p5", (256, 256), 0.5, 0.0, "the pre-issue ToD network "),
        ("512p8i0", (512,), 0.8, 0.0, ""),
        ("512p5i0", (512,), 0.5, 0.0, ""),
        ("512p65i3", (512,), 0.65, 0.3, ""),
        ("256x2p8i3", (256, 256), 0.8, 0.3, ""),
        ("256x2p65i0", (256, 256), 0.65, 0.0, ""),
        ("512p75i0", (512,), 0.75, 0.0, ""),
        ("512p85i0", (512,), 0.85, 0.0, ""),
        ("512p8i1", (512,), 0.8, 0.1, ""),
    ]},
    "default-r2": ("round 2's defaults: one hidden layer of 512, p=0.8, inner_p=0.3, "
                   "out-of-fold members oos_folds=5, oos_width=128, temperature",
                   dict(hidden_layer_sizes=(512,), p=0.8, inner_p=0.3), "temp"),
    "members-only": ("round 3's defaults: oos_proba_ from the members alone "
                     "(_oos_blend=0)", {"_oos_blend": 0.0}, "temp"),
    "blend10": ("the members' logits blended with the flipped sub-network's, weight 0.1 "
                "(_oos_blend=0.1), one temperature on the blend", {"_oos_blend": 0.1},
                "temp"),
    "blend20": ("as blend10, weight 0.2", {"_oos_blend": 0.2}, "temp"),
    "blend25": ("as blend10, weight 0.25", {"_oos_blend": 0.25}, "temp"),
    "default": ("the package defaults as they are now (round 3: one hidden layer of 512, "
                "p=0.8, no inner dropout, out-of-fold members oos_folds=5, oos_width=128, "
                "temperature)", {}, "temp"),
}
#: The CV reference: the same MLP without ToD, pre-issue settings (fixed, so that
#: changing the defaults does not move the yardstick).
CV_PARAMS = dict(p=0.5, inner_p=0.0, hidden_layer_sizes=(256, 256))
#: A second yardstick: CV of the wide one-layer network (ordinary dropout 0.5).
CV_WIDE = dict(p=0.5, inner_p=0.0, hidden_layer_sizes=(1024,))


def overlap_split(n: int = 600, seed: int = 0) -> bl.Split:
    """Three Gaussian classes that overlap, every label correct (make_classification,
    ``flip_y=0``): the "clean labels, ambiguous classes" cell."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=3 * n, n_features=20, n_informative=5,
                               n_redundant=2, n_classes=3, n_clusters_per_class=2,
                               class_sep=0.8, flip_y=0.0, random_state=seed)
    X = X.astype(np.float32)
    a, b = n, n + n // 4
    return bl.Split("overlap", X[:a], y[:a], X[a:b], y[a:b], X[b:], y[b:])


def cells(which: str) -> list[dict]:
    out = []
    if which in ("digits", "all"):
        out += [dict(dataset="digits", kind=k, rate=r) for k, r in
                [("uniform", 0.1), ("uniform", 0.2), ("uniform", 0.4), ("class", 0.2),
                 ("clean", 0.0)]]
    if which in ("overlap", "all", "clean"):
        out.append(dict(dataset="overlap", kind="clean", rate=0.0))
    if which in ("fashion", "all"):
        out += [dict(dataset="fashion_mnist", n_train=3000, kind=k, rate=r) for k, r in
                [("uniform", 0.1), ("uniform", 0.2), ("class", 0.2), ("clean", 0.0)]]
    if which == "fashion10k":  # the full suite's Fashion-MNIST MLP cells (same rows, same flips)
        out += [dict(dataset="fashion_mnist", n_train=10_000, kind=k, rate=r) for k, r in
                [("uniform", 0.1), ("uniform", 0.2), ("uniform", 0.4), ("class", 0.2)]]
    if which == "clean":
        out += [dict(dataset="digits", kind="clean", rate=0.0),
                dict(dataset="fashion_mnist", n_train=3000, kind="clean", rate=0.0)]
    return out


def cell_name(c: dict) -> str:
    n = f"-{c['n_train']}" if "n_train" in c else ""
    return f"{c['dataset']}{n}-{c['kind']}{int(round(100 * c['rate']))}"


def load_cell(c: dict) -> tuple[bl.Split, np.ndarray, np.ndarray]:
    if c["dataset"] == "digits":
        split = bl.load_digits_split()
    elif c["dataset"] == "overlap":
        split = overlap_split()
    else:
        if not bl.fashion_mnist_available():
            raise bl.Skip(f"Fashion-MNIST is not installed; run: {bl.FMNIST_INSTALL}")
        split = bl.load_fashion_mnist_split(n_train=c["n_train"], n_test=2000)
    if c["kind"] == "clean":
        return split, split.y_train.copy(), np.zeros(len(split.y_train), bool)
    y, flipped = bl.inject_noise(split.y_train, c["rate"], c["kind"], split.name)
    return split, y, flipped


def base_estimator() -> ToDMLPClassifier:
    return ToDMLPClassifier(verbose=0)


def cleanlab_metrics(labels, pred, flipped) -> dict:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    fl = find_label_issues(labels, pred)
    q = get_label_quality_scores(labels, pred)
    clean = ~flipped
    out = {"n_flagged": int(fl.sum()),
           "precision": float(flipped[fl].mean()) if fl.any() else float("nan"),
           "recall": float(fl[flipped].mean()) if flipped.any() else float("nan"),
           "acc_clean": float(np.mean(pred[clean].argmax(1) == labels[clean]))}
    out["ap_quality"] = (float(average_precision_score(flipped, -q)) if flipped.any()
                         else float("nan"))
    return out


def anchor_count(proba: np.ndarray, labels: np.ndarray, q: float = 0.97) -> int:
    """Noise count from anchor points (Patrini et al. 2017): for each class ``i`` the
    rows at its ``q``-quantile of ``p(i|x)`` estimate ``T_ii = P(given i | true i)``;
    the count is ``n * sum_i prior_i * (1 - T_ii)``."""
    n, k = proba.shape
    prior = np.bincount(labels, minlength=k) / n
    total = 0.0
    for i in range(k):
        top = proba[:, i] >= np.quantile(proba[:, i], q)
        total += prior[i] * (1.0 - proba[top, i].mean())
    return int(round(n * total))


def counts(est, proba: np.ndarray, labels: np.ndarray) -> dict:
    """Candidate drop counts (see the report for which one the package uses)."""
    from cleanlab.count import num_label_issues

    return {"auto": int(estimate_issue_count(proba, labels)),
            # the package's drop_fraction="auto" since round 4 (both views)
            "two_view": int(estimate_issue_count(**auto_count_views(est), labels=labels)),
            "cj_full": int(estimate_issue_count(est.train_proba_, labels)),
            "cl_offdiag": int(num_label_issues(labels, proba)),
            "argmax_disagree": int(np.sum(proba.argmax(1) != labels)),
            "offdiag": int(confident_joint_issues(proba, labels).sum()),
            "offdiag_full": int(confident_joint_issues(est.train_proba_, labels).sum()),
            "anchor": anchor_count(proba, labels),
            "offdiag_both": int((confident_joint_issues(proba, labels)
                                 & confident_joint_issues(est.train_proba_, labels)).sum())}


def run_design(name: str, c: dict, split, y, flipped, seed: int,
               save: str | None = None) -> dict:
    _, params, post = DESIGNS[name]
    params = dict(params)
    blend = params.pop("_oos_blend", None)  # a class attribute, not a parameter
    est = bl.bench_class(base_estimator().set_params(random_state=seed, **params))
    est._calibrate_oos = post == "temp"  # the estimator fits the temperature itself
    if blend is not None:
        est._oos_blend = blend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitReliabilityWarning)
        est.fit(split.X_train, y)
    labels = est.y_train_
    proba = est.oos_proba_.astype(np.float64)
    if save:  # the view, for oos_recall_at_count.py
        np.savez(Path(save) / f"{cell_name(c)}@s{seed}-{name}.npz", pred=proba, y=labels,
                 flipped=flipped)
    temp = float(getattr(est, "oos_temperature_", 1.0))
    res = {"design": name + (f"@s{seed}" if seed else ""), "cell": cell_name(c),
           "n": int(len(y)), "n_flipped": int(flipped.sum()), "temperature": temp,
           "cpu": float(est.train_time_[1] + est.score_time_[1]),
           "test_acc": float(est.score(split.X_test, split.y_test))}
    res.update(cleanlab_metrics(labels, proba, flipped))
    res.update(counts(est, proba, labels))
    if flipped.any():
        res["ap_self_influence"] = float(average_precision_score(flipped, est.self_influence_))
        res["ap_default"] = float(average_precision_score(
            flipped, -fitted_scores(est, DEFAULT_METHOD, None)))
    return res


def run_cv(c: dict, split, y, flipped, seed: int, name: str = "cv5",
           params: dict = CV_PARAMS) -> dict:
    est = base_estimator().set_params(**params)
    pred, t_train, t_score = bl.cv_pred_probs(est, split.X_train, y, seed)
    res = {"design": name + (f"@s{seed}" if seed else ""), "cell": cell_name(c),
           "n": int(len(y)), "n_flipped": int(flipped.sum()),
           "cpu": float(t_train[1] + t_score[1])}
    res.update(cleanlab_metrics(y, pred, flipped))
    from cleanlab.count import num_label_issues

    res["cl_offdiag"] = int(num_label_issues(y, pred))
    res["auto"] = int(estimate_issue_count(pred, y))
    return res


def merge(rows: list[dict]) -> None:
    """Merge rows into ``study.json`` under a file lock (several studies may run)."""
    import fcntl
    import os

    path = OUT / "study.json"
    with open(Path(tempfile.gettempdir()) / "oos_study.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() else []
        keyed = {(r["design"], r["cell"]): r for r in old}
        for r in rows:
            keyed[(r["design"], r["cell"])] = r
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(list(keyed.values()), indent=1))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cells", default="digits",
                    help="digits, fashion, fashion10k, overlap, clean or all (default digits)")
    ap.add_argument("--only", default=None, help="only cells whose name contains this")
    ap.add_argument("--designs", default=",".join(DESIGNS),
                    help=f"comma-separated subset of {', '.join(DESIGNS)}")
    ap.add_argument("--no-cv", action="store_true", help="reuse the stored CV rows")
    ap.add_argument("--wide-cv", action="store_true",
                    help="also 5-fold CV of the one-layer 1024-wide network")
    ap.add_argument("--default-cv", action="store_true",
                    help="also 5-fold CV of the default network without ToD (what run.py "
                         "compares against)")
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed (rows of a seed other than 0 are named design@sN)")
    ap.add_argument("--report", action="store_true", help="only write the tables and plot")
    ap.add_argument("--save-probs", metavar="DIR", help="also write each design's oos_proba_ "
                    "(with the labels and the flip mask) to DIR/<cell>@s<seed>-<design>.npz")
    ap.add_argument("--targets", metavar="DESIGNS",
                    help="only print issue 11's per-cell targets of these designs (comma-"
                         "separated) against cv5 of --seed")
    args = ap.parse_args(argv)
    if args.targets:
        data = json.loads((OUT / "study.json").read_text())
        print(oos_report.target_table(data, args.targets.split(","), args.seed))
        return 0
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.report:
        for c in cells(args.cells):
            if args.only and args.only not in cell_name(c):
                continue
            try:
                split, y, flipped = load_cell(c)
            except bl.Skip as exc:
                print(f"[{cell_name(c)}] SKIPPED: {exc}", flush=True)
                continue
            bl.warmup(base_estimator(), split)
            rows = [] if args.no_cv else [run_cv(c, split, y, flipped, args.seed)]
            if args.default_cv:  # what run.py's 5-fold baseline is since the new defaults
                rows.append(run_cv(c, split, y, flipped, args.seed, "cv5-default", {}))
            if args.wide_cv:
                rows.append(run_cv(c, split, y, flipped, args.seed, "cv5-w1024", CV_WIDE))
            merge(rows)
            for name in filter(None, args.designs.split(",")):
                rows.append(run_design(name, c, split, y, flipped, args.seed,
                                       args.save_probs))
                merge(rows)
                print(oos_report.row_line(rows[-1]), flush=True)
            for r in rows:
                if r["design"].startswith("cv5"):
                    print(oos_report.row_line(r), flush=True)
    data = json.loads((OUT / "study.json").read_text())
    (OUT / "study.md").write_text(oos_report.markdown(data, DESIGNS))
    oos_report.plot_pr(data, OUT / "pr_tod_vs_cv.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
