"""Linear datamodeling score (LDS) of ToD influence and of the field's baselines.

Protocol (Park et al., *TRAK*, ICML 2023): for ``S`` random halves of the training
rows, each retrained with 2 seeds (``lds_ground_truth.py``, cached), and each of
``n_targets`` random test rows, the LDS of a method is the Spearman correlation,
across the ``S`` halves, between the sum of the method's attributions over the half
and the target's actual (negated) loss under the models retrained on that half,
averaged over targets. Every method scores from the same fitted model (default
``ToDMLPClassifier``, ``random_state=0``, all training rows); methods that need more
models (TRAK-10, TracIn checkpoints, several ToD mask seeds) train them and are
charged their training time. CPU seconds are ``time.process_time`` with one torch
thread.

Usage::

    nice -n 10 .venv/bin/python examples/benchmarks/lds_ground_truth.py --cell digits
    nice -n 10 .venv/bin/python examples/benchmarks/lds.py --cell digits [--methods a,b]
    .venv/bin/python examples/benchmarks/lds.py --report

Scores are cached in ``results/influence/cache/<cell>/scores/`` (``--fresh`` recomputes)
so ``removal.py`` reuses them. ``--report`` writes ``results/influence/lds.md`` and
``lds_vs_cost.png`` from every ``lds_<cell>.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import influence_methods as im  # noqa: E402
import lds_ground_truth as gt  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

OUT = gt.HERE / "results" / "influence"
log = logging.getLogger("lds")
ANCHORS = "dattri (MNIST + MLP): TRAK-50 0.45, TRAK-10 0.33, TracIn 0.15, TRAK-1 0.11"
#: Methods labelled in the plot (the others are small unlabelled dots; lds.md has all).
PLOT_LABELS = {"tod", "tod_gradient", "subnet_dot", "graddot", "tracin4", "trak1", "trak10",
               "ekfac", "input_cos_same", "graddot_full_cos_first_exact", "tracin4_cos_first",
               "graddot_full_cos"}


def lds(scores: np.ndarray, masks: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Per-target Spearman between ``masks @ scores[a]`` and ``-losses[:, a]``."""
    pred = masks.astype(np.float64) @ scores.T  # (S, n_targets)
    out = np.full(scores.shape[0], np.nan)
    for a in range(scores.shape[0]):
        if np.ptp(losses[:, a]) > 0 and np.ptp(pred[:, a]) > 0:
            out[a] = spearmanr(pred[:, a], -losses[:, a]).statistic
    return out


def make_context(cell: gt.Cell, targets: np.ndarray,
                 fit_seed: int = 0) -> tuple[im.Context, float]:
    s = cell.split
    ctx = im.Context(cell.estimator, None, s.X_train, s.y_train, s.X_test[targets],
                     s.y_test[targets], s.X_val, s.y_val)
    model, fit_cpu = ctx.fit(fit_seed)
    ctx.model, ctx.used = model, []
    return ctx, fit_cpu


def score_method(ctx: im.Context, name: str, cache: Path, fresh: bool) -> dict:
    """Scores of one method (cached) with its scoring and extra-training CPU seconds."""
    path = cache / f"{name}.npz"
    if path.exists() and not fresh:
        d = np.load(path)
        return {"scores": d["scores"], "score_cpu": float(d["score_cpu"]),
                "train_cpu": float(d["train_cpu"]), "extra_runs": int(d["extra_runs"])}
    before = set(ctx.fits)
    ctx.used = []
    t0 = time.process_time()
    scores = np.asarray(im.METHODS[name](ctx), dtype=np.float64)
    total = time.process_time() - t0
    new_fit = sum(ctx.fits[k][1] for k in set(ctx.fits) - before)
    used = set(ctx.used)
    rec = {"scores": scores, "score_cpu": total - new_fit,
           "train_cpu": sum(ctx.fits[k][1] for k in used), "extra_runs": len(used)}
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **rec)
    return rec


def run(cell_name: str, n_subsets: int, n_targets: int, names: list[str], fresh: bool) -> dict:
    cell = gt.load_cell(cell_name)
    masks, losses = gt.load_ground_truth(cell_name, n_subsets)
    if len(masks) < n_subsets:
        log.warning("only %d of %d subsets cached for %s", len(masks), n_subsets, cell_name)
    targets = np.sort(np.random.default_rng(7).choice(len(cell.split.y_test), n_targets,
                                                      replace=False))
    path = OUT / f"lds_{cell_name}.json"
    res = json.loads(path.read_text()) if path.exists() else {"methods": {}}
    res.update({"cell": cell_name, "n_train": int(len(cell.split.y_train)),
                "n_subsets": int(len(masks)), "n_targets": n_targets,
                "seeds_per_subset": 2, "estimator": repr(cell.estimator)})
    cache = gt.CACHE / cell_name / "scores"
    ctx = None
    if fresh or "fit_cpu" not in res or any(not (cache / f"{n}.npz").exists() for n in names):
        ctx, fit_cpu = make_context(cell, targets)  # every method scores this one fit
        res.update({"fit_cpu": fit_cpu, "test_accuracy": float(
            ctx.model.score(cell.split.X_test, cell.split.y_test))})
    for name in names:
        log.info("%s: %s", cell_name, name)
        rec = score_method(ctx, name, cache, fresh)
        per = lds(rec["scores"], masks, losses[:, targets])
        res["methods"][name] = {
            "lds": float(np.nanmean(per)),
            "lds_se": float(np.nanstd(per) / np.sqrt(np.isfinite(per).sum())),
            "score_cpu": rec["score_cpu"], "train_cpu": rec["train_cpu"],
            "extra_runs": rec["extra_runs"],
            "score_cpu_per_pair_us": 1e6 * rec["score_cpu"] / rec["scores"].size}
        log.info("  LDS %.3f, scoring %.2f CPU s, extra training %.1f CPU s",
                 res["methods"][name]["lds"], rec["score_cpu"], rec["train_cpu"])
    OUT.mkdir(parents=True, exist_ok=True)
    if path.exists():  # another run may have added methods meanwhile
        res["methods"] = {**json.loads(path.read_text())["methods"], **res["methods"]}
    path.write_text(json.dumps(res, indent=1))
    return res


def paired(cells: list[str], a: str, b: str, fit_seeds: list[int], n_targets: int,
           fresh: bool) -> None:
    """LDS of method ``b`` minus method ``a``, paired by target, for several fits.

    Fit seed 0 is the shared model of every table (its scores are cached with them);
    other seeds refit the cell's estimator with ``random_state=seed`` and cache their
    scores in ``scores_seed<seed>/``. Writes ``lds_paired.json`` and ``lds_paired.md``.
    """
    path = OUT / "lds_paired.json"
    res = json.loads(path.read_text()) if path.exists() else {}
    for cell_name in cells:
        cell = gt.load_cell(cell_name)
        masks, losses = gt.load_ground_truth(cell_name, 60)
        targets = np.sort(np.random.default_rng(7).choice(len(cell.split.y_test), n_targets,
                                                          replace=False))
        for seed in fit_seeds:
            cache = gt.CACHE / cell_name / ("scores" if seed == 0 else f"scores_seed{seed}")
            ctx = None
            if fresh or any(not (cache / f"{n}.npz").exists() for n in (a, b)):
                ctx, _ = make_context(cell, targets, seed)
            per = {}
            for name in (a, b):
                rec = score_method(ctx, name, cache, fresh)
                per[name] = (lds(rec["scores"], masks, losses[:, targets]), rec["score_cpu"])
            d = per[b][0] - per[a][0]
            ok = np.isfinite(d)
            row = {"n_subsets": int(len(masks)), "fit_seed": seed,
                   a: float(np.nanmean(per[a][0])), b: float(np.nanmean(per[b][0])),
                   "diff": float(d[ok].mean()), "diff_se": float(d[ok].std() / np.sqrt(ok.sum())),
                   "b_wins_targets": float((d[ok] > 0).mean()),
                   f"{a}_cpu": per[a][1], f"{b}_cpu": per[b][1]}
            res[f"{cell_name}|{a}|{b}|{seed}"] = row
            log.info("%s seed %d: %s %.4f, %s %.4f, diff %+.4f ± %.4f", cell_name, seed, a,
                     row[a], b, row[b], row["diff"], row["diff_se"])
            path.write_text(json.dumps(res, indent=1))
    lines = ["# LDS, paired by target: one method against another, several fits", "",
             "Generated by `examples/benchmarks/lds.py --paired A,B`: per cell and fit "
             "seed, the LDS of both methods on the cached ground truth and their "
             "difference B - A, mean ± s.e. over the targets (paired), and the share of "
             "targets where B is higher. Scoring CPU s with one torch thread, same run.", "",
             "| cell | fit seed | A | LDS A | B | LDS B | B - A (± s.e.) | targets B > A "
             "| CPU s A / B |", "|---|---|---|---|---|---|---|---|---|"]
    for key, r in res.items():
        cell_name, ma, mb, _ = key.split("|")
        lines.append(f"| {cell_name} | {r['fit_seed']} | {im.LABELS.get(ma, ma)} | {r[ma]:.3f} "
                     f"| {im.LABELS.get(mb, mb)} | {r[mb]:.3f} | {r['diff']:+.4f} ± "
                     f"{r['diff_se']:.4f} | {r['b_wins_targets']:.0%} "
                     f"| {r[f'{ma}_cpu']:.2f} / {r[f'{mb}_cpu']:.2f} |")
    (OUT / "lds_paired.md").write_text("\n".join(lines) + "\n")


def table(res: dict) -> list[str]:
    tod = res["methods"].get("tod", {}).get("score_cpu")
    lines = [f"**{res['cell']}**, `{res['estimator']}` ({res['n_train']} training rows; "
             f"{res['n_subsets']} random "
             f"halves x {res['seeds_per_subset']} seeds retrained; {res['n_targets']} random "
             f"test targets; one fit {res['fit_cpu']:.1f} CPU s; test accuracy "
             f"{res['test_accuracy']:.3f})", "",
             "| method | LDS (± s.e.) | scoring CPU s | x ToD | extra models | their "
             "training CPU s |", "|---|---|---|---|---|---|"]
    for name, m in sorted(res["methods"].items(), key=lambda kv: -kv[1]["lds"]):
        ratio = f"{m['score_cpu'] / tod:.1f}" if tod else "-"
        lines.append(f"| {im.LABELS.get(name, name)} | {m['lds']:.3f} ± {m['lds_se']:.3f} "
                     f"| {m['score_cpu']:.2f} | {ratio} | {m['extra_runs']} "
                     f"| {m['train_cpu']:.1f} |")
    return lines + [""]


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [json.loads(p.read_text()) for p in sorted(OUT.glob("lds_*.json"))
               if p.stem != "lds_paired"]
    lines = ["# LDS: ToD influence against the field's baselines", "",
             "Generated by `examples/benchmarks/lds.py --report`. LDS = mean over targets "
             "of the Spearman correlation between a method's summed attributions over a "
             "random half of the training rows and the target's negated loss after "
             "retraining on that half. Cost = CPU seconds with one torch thread: scoring, "
             "plus training of any model beyond the one shared run.", "",
             f"Published anchors: {ANCHORS}.", ""]
    ncol = 2
    nrow = -(-len(results) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(7 * ncol, 5 * nrow), squeeze=False)
    for res, ax in zip(results, axes.ravel(), strict=False):
        lines += table(res)
        for name, m in res["methods"].items():
            cost = m["score_cpu"] + m["train_cpu"]
            tod_based = name.startswith(("tod", "subnet", "lastlayer_", "mix_", "flipped",
                                          "zsum"))
            key = name in PLOT_LABELS
            ax.scatter(cost, m["lds"], color="C3" if tod_based else "C0",
                       s=36 if key else 12, alpha=1.0 if key else 0.5)
            if key:
                ax.annotate(im.LABELS.get(name, name), (cost, m["lds"]), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("CPU seconds (scoring + extra training), log scale")
        ax.set_ylabel("LDS")
        ax.set_title(f"{res['cell']}: LDS against cost (red: uses ToD masks; "
                     "small: other variants, see lds.md)", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(OUT / "lds_vs_cost.png", dpi=120)
    (OUT / "lds.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cell", default="digits")
    ap.add_argument("--subsets", type=int, default=50)
    ap.add_argument("--targets", type=int, default=200)
    ap.add_argument("--methods", default="all", help="comma-separated names or 'all'")
    ap.add_argument("--fresh", action="store_true", help="recompute cached scores")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--paired", metavar="A,B", help="LDS of B minus A, paired by target, on "
                    "every --cells cell and --fit-seeds fit (lds_paired.md)")
    ap.add_argument("--cells", default="", help="cells of --paired, comma-separated")
    ap.add_argument("--fit-seeds", default="0", help="fit seeds of --paired")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("tod_cleanse").setLevel(logging.WARNING)
    torch.set_num_threads(1)
    if args.report:
        report()
        return 0
    if args.paired:
        a, b = args.paired.split(",")
        paired(args.cells.split(","), a, b, [int(v) for v in args.fit_seeds.split(",")],
               args.targets, args.fresh)
        return 0
    names = list(im.METHODS) if args.methods == "all" else args.methods.split(",")
    unknown = [n for n in names if n not in im.METHODS]
    if unknown:
        ap.error(f"--methods: unknown {unknown}; known: {list(im.METHODS)}")
    try:
        run(args.cell, args.subsets, args.targets, names, args.fresh)
    except gt.bl.Skip as exc:
        log.warning("skipping %s: %s", args.cell, exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
