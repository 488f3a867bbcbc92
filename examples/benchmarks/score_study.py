"""Issue 11, stretch target: which per-row score of one ToD run ranks flipped labels best?

The full suite (``run.py``) compares the package's cleansing scores against the best
*one-run peers*: the in-sample loss and the area under the margin (AUM; Pleiss et al.,
NeurIPS 2020) of one normally trained network. This study refits, per cell, the same
ToD run and the same normal run as ``run.py`` (same split, same label noise, same
estimator, ``random_state=seed``), keeps their per-row arrays in a cache, and scores
candidate cleansing rules on them offline: average precision (AP) at ranking the
flipped rows, against the peers of the same process.

Candidates (every score: the more negative, the more harmful), from ``p_full`` (the
full network, in-sample), ``p_oos`` (``oos_proba_``: out-of-fold members, or the
flipped sub-network), ``p_seen`` (the row's own sub-network), ``y`` the given label:

* ``full_likelihood`` (the MLP's default), ``oos_likelihood``, ``confident_learning``,
  ``self_influence``, ``two_view_margin`` (``log_margin(p_full) + log_margin(p_oos)``,
  ``log_margin(p) = log p(y) - log max_{j != y} p(j)``) and ``two_view_likelihood``
  (``log p_full(y) + log p_oos(y)``): the package's own scores
  (:func:`~tod_cleanse.scores.cleansing_scores`);
* ``seen_likelihood``: ``log p_seen(y)``;
* ``full_margin``: ``p_full(y) - max_{j != y} p_full(j)``;
* ``full_log_margin``: ``log p_full(y) - log max_{j != y} p_full(j)`` (the logit margin
  of the last epoch, AUM without the average over training);
* ``two_view_prob_margin``: ``full_margin + oos_margin`` (probability margins of both views);
* ``full_margin_oos_likelihood``: rank mean of ``full_margin`` and ``oos_likelihood``;
* ``aum_tod``: AUM of the ToD run's own training steps (``BenchMixin``).

Usage (repository root)::

    nice -n 5 .venv/bin/python examples/benchmarks/score_study.py --only digits
    nice -n 5 .venv/bin/python examples/benchmarks/score_study.py --only fashion_mnist-10000
    .venv/bin/python examples/benchmarks/score_study.py --report     # tables only

``--held-out`` runs cells outside the suite instead (ResNet-18 and a small ViT on
Fashion-MNIST 4k, VGG on digits); ``--seed 1`` refits both runs with another seed (a
held-out check of a rule picked on seed 0). Arrays go to ``results/scores/cache/`` (not
committed), APs are merged into ``results/scores/scores.json``, and ``--report``
rescores the cached arrays (a rule changed) and writes ``results/scores/scores.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lib as bl  # noqa: E402
import run as suite  # noqa: E402
import torch  # noqa: E402
from scipy.stats import rankdata  # noqa: E402
from sklearn.base import clone  # noqa: E402

from tod_cleanse.scores import (  # noqa: E402
    cleansing_scores,
    given_label_proba,
    log_margin,
    normalized_margin,
)

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "scores"
PEERS = ("loss_normal", "aum_normal")
_EPS = 1e-12


# ------------------------------------------------------------------ the rules
def _rank_mean(*scores: np.ndarray) -> np.ndarray:
    return np.mean([rankdata(s) for s in scores], axis=0)


def candidate_scores(a: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every candidate rule on the cached arrays of one ToD run (see the module doc)."""
    y, full, oos, seen = a["labels"], a["train_proba"], a["oos_proba"], a["seen_proba"]
    own = {m: cleansing_scores(m, y, full_proba=full, oos_proba=oos, seen_proba=seen,
                               self_influence=a["self_influence"])
           for m in ("full_likelihood", "oos_likelihood", "confident_learning",
                     "self_influence", "two_view_margin", "two_view_likelihood")}
    full_margin = normalized_margin(full, y)
    return {
        **own,
        "seen_likelihood": np.log(given_label_proba(seen, y).astype(np.float64) + _EPS),
        "full_margin": full_margin,
        "full_log_margin": log_margin(full, y),
        "two_view_prob_margin": full_margin + normalized_margin(oos, y),
        "full_margin_oos_likelihood": _rank_mean(full_margin, own["oos_likelihood"]),
        "aum_tod": a["aum_tod"],
    }


# ------------------------------------------------------------------ the runs
def _resnet_factory():
    import oos_families

    return oos_families.resnet_factory()


def _vit_factory():
    from tod_cleanse import ToDViTClassifier

    # a CPU-sized ViT trained from scratch (4x4 patches of 28x28 images: 49 tokens; 4
    # blocks of width 64), with the estimator's own training defaults (20 epochs AdamW)
    return ToDViTClassifier(patch_size=4, num_layers=4, num_heads=4, hidden_dim=64,
                            mlp_dim=128, verbose=0)


#: Families of the held-out cells that ``run.py`` has no factory for.
HELD_OUT_FACTORIES = {"resnet": _resnet_factory, "vit": _vit_factory}


def held_out_cells() -> list[dict]:
    """Cells not in the suite, to check a rule picked on it: ResNet-18 (x0.125) on 4,000
    Fashion-MNIST images (``oos_families.py --family resnet``), VGG on digits and a small
    ViT on the same 4,000 images."""
    cells = []
    for kind, rate in (("uniform", 0.2), ("class", 0.2)):
        cells.append(dict(dataset="fashion_mnist", model="resnet", kind=kind, rate=rate,
                          n_train=4_000))
        cells.append(dict(dataset="digits", model="vgg", kind=kind, rate=rate))
        cells.append(dict(dataset="fashion_mnist", model="vit", kind=kind, rate=rate,
                          n_train=4_000))
    return cells


def _cache_path(name: str, seed: int) -> Path:
    return OUT / "cache" / f"{name}@s{seed}.npz"


def fit_cell(c: dict, seed: int) -> dict[str, np.ndarray]:
    """The ToD run and the normal run of ``run.py``'s cell ``c``; their per-row arrays."""
    path = _cache_path(suite.cell_name(c), seed)
    if path.exists():
        with np.load(path) as z:
            return dict(z)
    est = (HELD_OUT_FACTORIES.get(c["model"]) or suite.FACTORIES[c["model"]])()
    split = suite.load_split(c)
    y_noisy, flipped = suite.noisy_labels(c, split)
    tod = bl.bench_class(clone(est).set_params(random_state=seed, verbose=0))
    tod.fit(split.X_train, y_noisy)
    plain = bl.bench_class(clone(est).set_params(turn_over=False, random_state=seed, verbose=0))
    plain.fit(split.X_train, y_noisy)
    y = tod.y_train_
    arrays = {
        "labels": y, "flipped": flipped, "train_proba": tod.train_proba_,
        "oos_proba": tod.oos_proba_, "seen_proba": tod.seen_proba_,
        "self_influence": tod.self_influence_, "aum_tod": tod.aum_,
        "loss_normal": np.log(given_label_proba(plain.train_proba_, y).astype(np.float64) + _EPS),
        "aum_normal": plain.aum_,
        "cpu": np.array([tod.train_time_[1] + tod.score_time_[1],
                         plain.train_time_[1] + plain.score_time_[1]]),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays


def score_cell(arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """AP of every candidate and of the two peers at ranking the flipped rows."""
    flipped = arrays["flipped"].astype(bool)
    scores = {**candidate_scores(arrays), **{p: arrays[p] for p in PEERS}}
    return {name: bl.detection_metrics(s, flipped)["ap"] for name, s in scores.items()}


# ------------------------------------------------------------------ report
def family_of(run_key: str) -> str:
    """``"fashion_mnist-10000-vgg-uniform20@s0"`` -> ``"vgg"``."""
    return run_key.split("@")[0].split("-")[-2]


#: Model names of the cells -> the estimator class whose ``default_method`` they measure.
FAMILY_CLASSES = {"mlp": "ToDMLPClassifier", "vgg": "ToDVGGClassifier",
                  "resnet": "ToDResNetClassifier", "bert": "ToDBertClassifier",
                  "vit": "ToDViTClassifier"}


def family_class(family: str) -> type | None:
    """The :mod:`tod_cleanse` estimator class of a cell's model name (None if unknown)."""
    import tod_cleanse

    return getattr(tod_cleanse, FAMILY_CLASSES.get(family, ""), None)


def _default_of(family: str) -> str | None:
    """Today's ``default_method`` of ``family``."""
    cls = family_class(family)
    return None if cls is None else cls.default_method


def best_peer(ap: dict[str, float]) -> float:
    """The better peer's AP in one run's APs (:data:`PEERS`)."""
    return max(ap[p] for p in PEERS)


def tally(aps: list[dict[str, float]], rule: str) -> tuple[int, int, float]:
    """Over runs' APs: on how many ``rule`` is >= the best peer, on how many >=
    ``full_likelihood``, and its mean AP."""
    return (sum(a[rule] >= best_peer(a) for a in aps),
            sum(a[rule] >= a["full_likelihood"] - 1e-12 for a in aps),
            float(np.mean([a[rule] for a in aps])))


def report(payload: dict) -> str:
    """Per-cell AP table and, per rule and family, :func:`tally`."""
    rows = payload["runs"]
    if not rows:
        return "no runs yet\n"
    keys = sorted(rows, key=lambda k: (k.split("@")[1], k))
    rules = [r for r in next(iter(rows.values())) if r not in PEERS]
    lines = ["# Issue 11: one-run cleansing scores against the best one-run peer",
             "", "Generated by `examples/benchmarks/score_study.py --report`; AP at ranking "
             "the flipped rows (higher is better). `peer`: the better of `loss_normal` and "
             "`aum_normal` (one normal training run, same seed). **Bold**: >= peer.", ""]
    lines.append("| cell | peer | " + " | ".join(rules) + " |")
    lines.append("|---" * (len(rules) + 2) + "|")
    for k in keys:
        peer = best_peer(rows[k])
        cells = [f"**{rows[k][r]:.3f}**" if rows[k][r] >= peer else f"{rows[k][r]:.3f}"
                 for r in rules]
        lines.append(f"| {k} | {peer:.3f} | " + " | ".join(cells) + " |")
    families = list(dict.fromkeys(family_of(k) for k in keys))
    lines += ["", "Per family: on how many cells a rule is >= the best peer / >= "
              "`full_likelihood`, and its mean AP. `default`: the family's `method=\"auto\"` "
              "today.", "",
              "| rule | " + " | ".join(families) + " | all |",
              "|---" * (len(families) + 2) + "|"]
    everything = [rows[k] for k in keys]
    for r in sorted(rules, key=lambda r: -tally(everything, r)[0]):
        row = []
        for fam in families + [None]:
            aps = [rows[k] for k in keys if fam is None or family_of(k) == fam]
            peer, full, mean = tally(aps, r)
            mark = " (default)" if fam is not None and r == _default_of(fam) else ""
            row.append(f"{peer}/{len(aps)} · {full}/{len(aps)} · {mean:.3f}{mark}")
        lines.append(f"| {r} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=None,
                    help="cells whose name contains this (repeatable; default: every cell)")
    ap.add_argument("--quick-cells", action="store_true",
                    help="run.py's quick suite cells (adds Fashion-MNIST 3k)")
    ap.add_argument("--held-out", action="store_true",
                    help="the held-out cells instead (ResNet and ViT on Fashion-MNIST 4k, "
                         "VGG on digits)")
    ap.add_argument("--seed", type=int, default=0, help="random_state of both runs")
    ap.add_argument("--report", action="store_true",
                    help="rescore the cached runs and write scores.md; fit nothing")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    path = OUT / "scores.json"
    payload = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    if args.report:  # rescore every cached run (the rules may have changed since)
        for f in sorted((OUT / "cache").glob("*.npz")):
            with np.load(f) as z:
                payload["runs"][f.stem] = score_cell(dict(z))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1, sort_keys=True))
    else:
        cells = held_out_cells() if args.held_out else suite.build_cells(args.quick_cells)
        for c in cells:
            name = suite.cell_name(c)
            if args.only and not any(part in name for part in args.only):
                continue
            try:
                arrays = fit_cell(c, args.seed)
            except bl.Skip as exc:
                print(f"[{name}] SKIPPED: {exc}", flush=True)
                continue
            ap_ = score_cell(arrays)
            payload["runs"][f"{name}@s{args.seed}"] = ap_
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(payload, indent=1, sort_keys=True))
            best = max(ap_[p] for p in PEERS)
            print(f"[{name}@s{args.seed}] peer {best:.3f} | " + " ".join(
                f"{r}={v:.3f}" for r, v in ap_.items() if r not in PEERS), flush=True)
    md = report(payload)
    (OUT / "scores.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
