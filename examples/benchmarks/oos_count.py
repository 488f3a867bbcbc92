"""Issue 11: the ``"auto"`` drop count, candidates against the true number of flips.

For each cell of ``oos_study.py`` (``--cells``) and each ``--seeds`` (the seed draws
both the label noise and the training), this fits the default ``ToDMLPClassifier``
once (one thread) and prints every candidate count against the true number of
flipped labels:

* ``package``: the package's count, :func:`tod_cleanse.scores.estimate_issue_count`
  on both views (``train_proba_`` and ``oos_proba_``): a row is off its label only
  where *both* views confidently put it elsewhere (the full network's class);
  calibration over the rows confident in either view;
* ``cj_full``: the count before issue 11's round 4 (the calibrated confident joint
  of ``train_proba_`` alone);
* ``cj_oos``: the same on ``oos_proba_``;
* ``cl_oos``: cleanlab's ``num_label_issues`` on ``oos_proba_`` (what a user of our
  one-run ``pred_probs`` gets from cleanlab);
* ``cj_mean``: the calibrated confident joint on the mean of the two views;
* ``both_same``: as ``package``, but both views must name the same other class;
* ``cal_both``, ``lead_full``, ``lead_oos``, ``raw_both``: screened variants of the
  two-view rule (calibration over rows confident in both views; one view off its label
  unless the other confidently agrees, led by either view; the uncalibrated count).

``--no-members`` fits with ``oos_folds=None`` (``oos_proba_`` is then the flipped
sub-networks' view, as for the BERT and vision families) and writes
``results/oos/count_no_members.md``; otherwise ``results/oos/count.md``.
``--save DIR`` also writes each fit's views (:func:`save_views`: one npz per cell and
seed) for ``oos_count_rules.py`` to score count rules without refitting.

Usage::

    nice -n 10 .venv/bin/python examples/benchmarks/oos_count.py --cells all --seeds 0,1
    nice -n 10 .venv/bin/python examples/benchmarks/oos_count.py --cells fashion10k \
        --seeds 0,1 --append
    nice -n 10 .venv/bin/python examples/benchmarks/oos_count.py --cells all --no-members
    nice -n 5 .venv/bin/python examples/benchmarks/oos_count.py --cells all --seeds 0,1 \
        --save /tmp/views
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
import oos_study as study  # noqa: E402

from tod_cleanse import ToDMLPClassifier  # noqa: E402
from tod_cleanse.issue_count import (  # noqa: E402
    _calibrated_off_diagonal,
    _confident_classes,
    estimate_issue_count,
)


def save_views(path: Path, est: object, y_true: np.ndarray, flipped: np.ndarray,
               **meta: object) -> None:
    """One fit's views of its training rows, for ``oos_count_rules.py``.

    ``train_proba``, ``oos_proba``, ``seen_proba``, ``self_influence``, the encoded
    given ``labels``, the encoded true labels ``y_true``, the ``flipped`` mask, the
    ``final_loss`` of ``history_`` and ``meta`` (cell, seed, family, ...) as a JSON
    string.
    """
    classes = np.asarray(est.classes_)
    path.parent.mkdir(parents=True, exist_ok=True)
    history = getattr(est, "history_", None) or [{}]
    np.savez_compressed(
        path, train_proba=est.train_proba_, oos_proba=est.oos_proba_,
        seen_proba=est.seen_proba_, self_influence=est.self_influence_,
        labels=est.y_train_, y_true=np.searchsorted(classes, np.asarray(y_true)),
        flipped=np.asarray(flipped, bool),
        final_loss=np.float64(history[-1].get("train_loss", np.nan)),
        meta=json.dumps(meta))


def two_views_same_class(full: np.ndarray, oos: np.ndarray, labels: np.ndarray) -> int:
    """As the package's two-view count, but both views must name the same other class."""
    has_f, cls_f = _confident_classes(full, labels)
    has_o, cls_o = _confident_classes(oos, labels)
    off = has_f & has_o & (cls_f != labels) & (cls_f == cls_o)
    return _calibrated_off_diagonal(labels, np.where(off, cls_f, labels), has_f | has_o,
                                   full.shape[1])


def two_views_variants(full: np.ndarray, oos: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """Screened variants of the two-view rule (not adopted; see the study README)."""
    has_f, cls_f = _confident_classes(full, labels)
    has_o, cls_o = _confident_classes(oos, labels)
    k = full.shape[1]
    both_off = has_f & has_o & (cls_f != labels) & (cls_o != labels)
    lead_full = has_f & (cls_f != labels) & ~(has_o & (cls_o == labels))
    lead_oos = has_o & (cls_o != labels) & ~(has_f & (cls_f == labels))
    return {
        # calibration over the rows confident in both views only
        "cal_both": _calibrated_off_diagonal(labels, np.where(both_off, cls_f, labels),
                                             (has_f & has_o) | both_off, k),
        # one view disagrees and the other does not confidently agree
        "lead_full": _calibrated_off_diagonal(labels, np.where(lead_full, cls_f, labels),
                                              has_f | has_o, k),
        "lead_oos": _calibrated_off_diagonal(labels, np.where(lead_oos, cls_o, labels),
                                             has_f | has_o, k),
        "raw_both": int(both_off.sum()),  # no calibration
    }


def candidates(full: np.ndarray, oos: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    from cleanlab.count import num_label_issues

    return {"package": estimate_issue_count(full, labels, oos),
            "cj_full": estimate_issue_count(full, labels),
            "cj_oos": estimate_issue_count(oos, labels),
            "cl_oos": int(num_label_issues(labels, oos)),
            "cj_mean": estimate_issue_count((full + oos) / 2, labels),
            "both_same": two_views_same_class(full, oos, labels),
            **two_views_variants(full, oos, labels)}


def load_seeded_cell(c: dict, seed: int) -> tuple:
    """``oos_study.load_cell`` with the label noise drawn from ``seed`` (0: the study's)."""
    split, y, flipped = study.load_cell(c)
    if seed and c["kind"] != "clean":
        y, flipped = bl.inject_noise(split.y_train, c["rate"], c["kind"], split.name,
                                     seed=seed)
    return split, y, flipped


def markdown(rows: list[dict], members: bool = True) -> str:
    names = list(rows[0]["counts"])
    seeds = sorted({r.get("seed", 0) for r in rows})
    what = ("with the out-of-fold members" if members else
            "without members (`oos_folds=None`: `oos_proba_` is the flipped sub-networks')")
    out = [f"# Candidate `\"auto\"` counts, {what} (issue 11)", "",
           "Generated by `examples/benchmarks/oos_count.py` (default `ToDMLPClassifier`"
           + ("" if members else ", `oos_folds=None`") + f", seeds {seeds}: the seed draws "
           "the label noise and the training). Each count, then its error against the "
           "flipped labels (noisy cells) or its share of the rows (clean cells). "
           "Targets: within +-20%; at most 2% of the rows when no label is wrong. "
           "`package` is the package's count (both views), `cj_full` the count before.", "",
           "| cell | flipped / rows | " + " | ".join(f"`{n}`" for n in names) + " |",
           "|---|---|" + "---|" * len(names)]
    met = {n: [0, 0, 0, 0] for n in names}
    for r in rows:
        nf, n = r["n_flipped"], r["n"]
        cells = []
        for name in names:
            v = r["counts"][name]
            if nf:
                rel = (v - nf) / nf
                cells.append(f"{v} ({rel:+.0%})")
                met[name][0] += abs(rel) <= 0.2
                met[name][1] += 1
            else:
                cells.append(f"{v} ({v / n:.1%} of rows)")
                met[name][2] += v / n <= 0.02
                met[name][3] += 1
        cell = r["cell"] + (f" @s{r['seed']}" if r.get("seed", 0) else "")
        out.append(f"| {cell} | {nf} / {n} | " + " | ".join(cells) + " |")
    out.append("| **targets met** | | " + " | ".join(
        f"{a}/{b} noisy, {c}/{d} clean" for a, b, c, d in met.values()) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cells", default="all", help="as oos_study.py: digits, fashion, "
                    "fashion10k, overlap, clean or all")
    ap.add_argument("--append", action="store_true", help="keep the rows already stored")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (noise and training)")
    ap.add_argument("--no-members", action="store_true",
                    help="fit with oos_folds=None (the flipped sub-networks' view)")
    ap.add_argument("--save", type=Path, default=None, metavar="DIR",
                    help="also write each fit's views to DIR/<family>-<cell>-s<seed>.npz "
                         "(family: mlp, or mlp-no-members)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    stem = "count_no_members" if args.no_members else "count"
    path = study.OUT / f"{stem}.json"
    rows = json.loads(path.read_text()) if args.append and path.exists() else []
    extra = {"oos_folds": None} if args.no_members else {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for c in study.cells(args.cells):
            split, y, flipped = load_seeded_cell(c, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = ToDMLPClassifier(random_state=seed, verbose=0, **extra).fit(
                    split.X_train, y)
            counts = candidates(est.train_proba_.astype(np.float64),
                                est.oos_proba_.astype(np.float64), est.y_train_)
            name = study.cell_name(c)
            if args.save is not None:
                family = "mlp-no-members" if args.no_members else "mlp"
                save_views(args.save / f"{family}-{name}-s{seed}.npz", est, split.y_train,
                           flipped, family=family, cell=name, seed=seed)
            rows = [r for r in rows if (r["cell"], r.get("seed", 0)) != (name, seed)]
            rows.append({"cell": name, "seed": seed, "n": int(len(y)),
                         "n_flipped": int(flipped.sum()), "counts": counts})
            print(name, seed, int(flipped.sum()), counts, flush=True)
    rows.sort(key=lambda r: (r["cell"], r.get("seed", 0)))
    path.write_text(json.dumps(rows, indent=1))
    (study.OUT / f"{stem}.md").write_text(markdown(rows, members=not args.no_members))
    print(markdown(rows, members=not args.no_members))
    return 0


if __name__ == "__main__":
    sys.exit(main())
