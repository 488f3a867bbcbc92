"""Label-noise benchmark suite: ToD (one training run) against 5-fold cleanlab and others.

Usage (from the repository root)::

    .venv/bin/python examples/benchmarks/run.py --quick   # digits + a Fashion-MNIST cell
    .venv/bin/python examples/benchmarks/run.py           # every cell of the suite
    .venv/bin/python examples/benchmarks/make_readme.py   # README "Benchmarks" section

Cells: dataset x model x noise (10/20/40% uniform flips, 20% flips to a confusable
class). Fashion-MNIST needs ``apt-get install -y dataset-fashion-mnist``; the VGG and
BERT cells need ``ToDVGGClassifier`` / ``ToDBertClassifier`` (and, for BERT, the
WordNet glosses and the MiniLM package); a missing piece skips its cells with the
command that installs it. Results (JSON, markdown tables, PNG plots) go to
``examples/benchmarks/results/<mode>/``; finished cells are merged into its
``results.json`` under a file lock, so one process per model family can share it::

    .venv/bin/python examples/benchmarks/run.py --only fashion_mnist-10000-vgg &
    .venv/bin/python examples/benchmarks/run.py --only wordnet &

Cost on 2 CPU cores (one thread per process): a digits cell 1-3 min, a Fashion-MNIST
MLP cell 5-10 min, a VGG cell ~15 min, a WordNet/MiniLM cell ~1 hour. ``--cleanse
auto`` (the default) retrains only the default and 5-fold cleanlab (next to no
cleansing, random and the oracle) on the VGG and BERT cells.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lib as bl  # noqa: E402
import torch  # noqa: E402

from tod_cleanse.scores import DEFAULT_METHOD, METHODS  # noqa: E402

HERE = Path(__file__).resolve().parent
NOISES = [("uniform", 0.1), ("uniform", 0.2), ("uniform", 0.4), ("class", 0.2)]
#: Methods whose flagged rows are dropped and the model retrained (cleansing effect);
#: ``"default"``: the cell's family default (``bl.default_method_key``).
CLEANSE = ["default", "tod:full_likelihood", "tod:oos_likelihood",
           "tod:self_influence", "tod:eval_influence", "cleanlab_cv5", "cleanlab_tod",
           "loss_normal", "aum_normal"]
#: The retraining set of ``--cleanse core``: the two methods the quality targets
#: compare (next to no cleansing, random and the oracle, which are always run).
CLEANSE_CORE = ["default", "cleanlab_cv5"]
#: Model families whose fits cost minutes on a CPU: ``--cleanse auto`` retrains only
#: the core set there, and their cells draw no accuracy-vs-fraction-dropped curve.
EXPENSIVE = ("vgg", "bert")
LABELS = {
    "tod:eval_influence": "ToD: influence on validation set (paper)",
    "tod:self_influence": "ToD: self-influence",
    "tod:memorisation": "ToD: memorisation",
    "tod:oos_likelihood": "ToD: out-of-sample likelihood (oos_proba_)",
    "tod:confident_learning": "ToD: confident-learning margin",
    "tod:full_likelihood": "ToD: full-network in-sample likelihood",
    "tod:two_view_margin": "ToD: log-margin in both views (full + out-of-sample)",
    "tod:two_view_likelihood": "ToD: log-likelihood in both views (full + out-of-sample)",
    "tod:aum_seen": "ToD: AUM of the seen sub-networks",
    "cleanlab_tod": "cleanlab on ToD one-run pred_probs",
    "cleanlab_cv5": "cleanlab on 5-fold CV pred_probs",
    "loss_normal": "in-sample loss, normal training",
    "aum_normal": "AUM, normal training",
    "random": "random",
}


# ------------------------------------------------------------------- cells
def mlp_factory():
    from tod_cleanse import ToDMLPClassifier

    return ToDMLPClassifier(verbose=0)


def vgg_factory():
    try:
        from tod_cleanse import ToDVGGClassifier
    except (ImportError, AttributeError) as exc:
        raise bl.Skip(f"ToDVGGClassifier is not available ({exc})") from None
    # CPU-sized VGG11-BN (an eighth of the channels, 10 epochs: ~30 s per fit on 10,000
    # images with 2 cores), the setting of examples/fashion_mnist_vgg.py.
    return ToDVGGClassifier(width_multiplier=0.125, max_epochs=10, batch_size=128, lr=0.05,
                            optimizer="sgd", weight_decay=5e-4, verbose=0)


def bert_factory():
    try:
        from tod_cleanse import ToDBertClassifier
    except (ImportError, AttributeError) as exc:
        raise bl.Skip(f"ToDBertClassifier is not available ({exc})") from None
    # the fine-tuning setting of examples/wordnet_bert.py ("lemma: definition" texts are
    # at most ~32 tokens), with the estimator's default 3 epochs
    return ToDBertClassifier(model_name_or_path=bl.minilm_path(), max_length=32, batch_size=16,
                             lr=1e-4, max_epochs=3, verbose=0)


def build_cells(quick: bool) -> list[dict]:
    cells = []
    for kind, rate in NOISES:
        cells.append(dict(dataset="digits", model="mlp", kind=kind, rate=rate))
    if quick:
        cells.append(dict(dataset="fashion_mnist", model="mlp", kind="uniform", rate=0.2,
                          n_train=3000))
        return cells
    for model in ("mlp", "vgg"):
        for kind, rate in NOISES:
            cells.append(dict(dataset="fashion_mnist", model=model, kind=kind, rate=rate,
                              n_train=10_000))
    for kind, rate in NOISES:
        # 2,000 glosses: a MiniLM fit takes ~5 min on 2 CPU cores, and a cell ~20 fits
        cells.append(dict(dataset="wordnet", model="bert", kind=kind, rate=rate, n_train=2_000))
    return cells


def cell_name(c: dict) -> str:
    n = f"-{c['n_train']}" if "n_train" in c else ""
    return f"{c['dataset']}{n}-{c['model']}-{c['kind']}{int(round(100 * c['rate']))}"


def load_split(c: dict) -> bl.Split:
    if c["dataset"] == "digits":
        return bl.load_digits_split()
    if c["dataset"] == "fashion_mnist":
        if not bl.fashion_mnist_available():
            raise bl.Skip(f"Fashion-MNIST is not installed; run: {bl.FMNIST_INSTALL}")
        return bl.load_fashion_mnist_split(n_train=c["n_train"], flat=c["model"] == "mlp")
    if c["dataset"] == "wordnet":
        return bl.load_wordnet_split(n_train=c["n_train"])
    raise ValueError(c["dataset"])


FACTORIES = {"mlp": mlp_factory, "vgg": vgg_factory, "bert": bert_factory}


def noisy_labels(c: dict, split: bl.Split) -> tuple[np.ndarray, np.ndarray]:
    """Cell ``c``'s seeded label noise on ``split``: ``(y_noisy, is_flipped)``; its
    class-conditional noise flips to the nearest class by text where the dataset has no
    confusable pairs of its own (``bl.CONFUSABLE``)."""
    pairs = None
    if c["kind"] == "class" and c["dataset"] not in bl.CONFUSABLE:
        pairs = bl.confusable_by_text(split.X_train, split.y_train)
    return bl.inject_noise(split.y_train, c["rate"], c["kind"], split.name, pairs=pairs)


# --------------------------------------------------------------------- run
def run_cell(c: dict, out_dir: Path, seeds: tuple[int, ...], curve: bool,
             cleanse: list[str] = CLEANSE) -> dict:
    est = FACTORIES[c["model"]]()
    default = bl.default_method_key(est)
    cleanse = [default if m == "default" else m for m in cleanse]
    split = load_split(c)
    y_noisy, flipped = noisy_labels(c, split)
    k = int(flipped.sum())
    print(f"[{cell_name(c)}] n_train={len(y_noisy)} flipped={k}", flush=True)
    bl.warmup(est, split)
    det, info = bl.run_detectors(est, split, y_noisy)
    res: dict = {"cell": c, "name": cell_name(c), "n_train": int(len(y_noisy)),
                 "estimator": type(est).__name__, "default_method": default[4:],
                 "estimator_params": {k: repr(v) for k, v in est.get_params().items()
                                      if k != "model_name_or_path"},
                 "n_flipped": k, "tod_test_acc": info["tod_test_acc"],
                 "plain_test_acc": info["plain_test_acc"], "seeds": len(seeds), "methods": {}}
    for name, d in det.items():
        m = bl.detection_metrics(d.scores, flipped)
        m.update(train_wall=float(d.train_time[0]), train_cpu=float(d.train_time[1]),
                 score_wall=float(d.score_time[0]), score_cpu=float(d.score_time[1]),
                 n_train_runs=d.n_train_runs)
        if d.flagged is not None:
            m.update(n_flagged=int(d.flagged.sum()),
                     flagged_precision=float(flipped[d.flagged].mean()) if d.flagged.any() else 0.0,
                     flagged_recall=float(d.flagged[flipped].mean()))
        res["methods"][name] = m
    for name, m in res["methods"].items():
        print(f"    {name:24s} AUROC {m['auroc']:.3f}  AP {m['ap']:.3f}  P@k {m['p_at_k']:.3f}  "
              f"cost {m['train_cpu'] + m['score_cpu']:.1f}s cpu ({m['n_train_runs']} runs)",
              flush=True)
    bl.plot_pr(det, flipped, out_dir / f"pr_{res['name']}.png", res["name"], LABELS, default)

    # cleansing effect: drop the k lowest-scored rows, retrain, test accuracy
    clean = {}
    keeps = {"no cleansing": np.ones(len(y_noisy), bool), "oracle": ~flipped,
             "random": bl.drop_lowest(det["random"].scores, k)}
    for name in dict.fromkeys(cleanse):
        if name in det:
            keeps[name] = bl.drop_lowest(det[name].scores, k)
    for name, keep in keeps.items():
        mean, std = bl.retrain_accuracy(est, split, y_noisy, keep, seeds)
        clean[name] = {"acc": mean, "std": std, "n_dropped": int((~keep).sum()),
                       "precision_dropped": float(flipped[~keep].mean()) if (~keep).any() else None}
        print(f"    cleanse {name:22s} test acc {mean:.4f} +- {std:.4f}", flush=True)
    res["cleansing"] = clean

    if curve:
        fracs = [0.05, 0.1, 0.2, 0.3, 0.4]
        cur: dict = {}
        for name in (default, "cleanlab_cv5", "random"):
            cur[name] = [bl.retrain_accuracy(est, split, y_noisy,
                                             bl.drop_lowest(det[name].scores,
                                                            int(round(f * len(y_noisy)))),
                                             seeds)[0] for f in fracs]
        cur["no cleansing"] = [clean["no cleansing"]["acc"]] * len(fracs)
        res["acc_vs_drop"] = {"fractions": fracs, "acc": cur}
        bl.plot_acc_curve(fracs, cur, c["rate"], out_dir / f"acc_vs_drop_{res['name']}.png",
                          res["name"], LABELS)
    return res


def update_results(path: Path, mode: str, threads: int, cell: dict | None = None,
                   skipped: tuple[str, str] | None = None) -> None:
    """Merge one finished (or skipped) cell into ``results.json``.

    The file is re-read under an exclusive lock and replaced atomically, so several
    ``run.py`` processes (say, one per model family) can share one results folder.
    """
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() else {}
        cells = {r["name"]: r for r in old.get("cells", [])}
        skips = dict(old.get("skipped", []))
        if cell is not None:
            cells[cell["name"]] = cell
            skips.pop(cell["name"], None)
        if skipped is not None:
            skips[skipped[0]] = skipped[1]
        order = {cell_name(c): i for i, c in enumerate(build_cells(mode == "quick"))}
        ordered = sorted(cells.values(), key=lambda r: order.get(r["name"], len(order)))
        payload = {"mode": mode, "default_method": DEFAULT_METHOD, "methods": list(METHODS),
                   "estimator_params": {k: repr(v) for k, v in
                                        mlp_factory().get_params().items()},
                   "threads": threads, "cells": ordered,
                   "skipped": sorted(skips.items())}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="quick subset (< 20 min on 2 cores)")
    ap.add_argument("--only", action="append", default=None,
                    help="run only cells whose name contains this (repeatable)")
    ap.add_argument("--out", default=None, help="results folder (default results/<mode>)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--seeds", type=int, default=None,
                    help="retraining seeds for cleansing (default 3; 1 on the BERT cells)")
    ap.add_argument("--cleanse", choices=["auto", "all", "core"], default="auto",
                    help="methods retrained for the cleansing effect: 'all' (every method),\n"
                         "'core' (default vs 5-fold cleanlab, plus no cleansing, random and\n"
                         "oracle), 'auto' (core for the VGG and BERT cells, all otherwise)")
    ap.add_argument("--also-cleanse", action="append", default=[], metavar="METHOD",
                    help="a method to retrain for the cleansing effect on top of --cleanse's\n"
                         "set (repeatable), e.g. tod:oos_likelihood on the BERT cells")
    args = ap.parse_args(argv)
    known = set(LABELS) | {"tod:" + m for m in METHODS}
    unknown = sorted(set(args.also_cleanse) - known)
    if unknown:
        ap.error(f"--also-cleanse: unknown method(s) {unknown}; known: {sorted(known)}")
    torch.set_num_threads(args.threads)
    mode = "quick" if args.quick else "full"
    out_dir = Path(args.out) if args.out else HERE / "results" / mode
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    t0 = time.time()
    for c in build_cells(args.quick):
        name = cell_name(c)
        if args.only and not any(part in name for part in args.only):
            continue
        expensive = c["model"] in EXPENSIVE
        core = args.cleanse == "core" or (args.cleanse == "auto" and expensive)
        try:
            seeds = args.seeds or (1 if c["model"] == "bert" else 3)
            res = run_cell(c, out_dir, tuple(range(seeds)),
                           curve=c["kind"] == "uniform" and c["rate"] == 0.2 and not expensive
                           and (c["dataset"] == "digits" or not args.quick),
                           cleanse=(CLEANSE_CORE if core else CLEANSE) + args.also_cleanse)
        except bl.Skip as exc:
            print(f"[{name}] SKIPPED: {exc}", flush=True)
            update_results(path, mode, args.threads, skipped=(name, str(exc)))
            continue
        update_results(path, mode, args.threads, cell=res)
    print(f"done in {time.time() - t0:.0f}s -> {out_dir}", flush=True)
    if path.exists():
        payload = json.loads(path.read_text())
        (out_dir / "tables.md").write_text(bl.markdown_tables(payload, LABELS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
