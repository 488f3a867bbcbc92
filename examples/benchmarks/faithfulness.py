"""Influence faithfulness on digits with the MLP: does ToD influence predict retraining?

Two checks of the paper's claim [1], each next to a TracIn-style baseline (the dot
product of loss gradients at the final checkpoint, computed here with
``torch.func``; no extra dependency) and random:

1. **Removal**: for chosen test targets, drop the top-k training rows by influence
   on that target (k = 1% and 5% of the training set), retrain the same estimator
   (3 seeds), and report how much the target's loss rises against dropping k random
   rows.
2. **Leave-one-out**: on a small training set and a small model, retrain without each
   of 30 candidate rows (the 30 nearest neighbours of the target in input space, a
   choice that favours no method), paired by seed, and report the Spearman
   correlation of each method's influence with the actual change of the target's loss,
   averaged over targets.

Usage::

    .venv/bin/python examples/benchmarks/faithfulness.py [--quick]

Writes ``examples/benchmarks/results/faithfulness.json`` and ``faithfulness.md``.

[1] S. Kobayashi, S. Yokoi, J. Suzuki, K. Inui. Efficient Estimation of Influence of a
Training Instance. SustaiNLP 2020. arXiv:2012.04207.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lib as bl  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.base import clone  # noqa: E402
from torch.func import functional_call, grad, vmap  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from tod_cleanse import ToDMLPClassifier  # noqa: E402

HERE = Path(__file__).resolve().parent


def tracin_scores(est: ToDMLPClassifier, X_t: np.ndarray, y_t: np.ndarray,
                  X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """TracIn on the final checkpoint: ``lr * grad L(z_t) . grad L(z_i)`` of the full
    network (eval mode); shape (n_targets, n_train). Positive = helpful."""
    module = est.module_.eval()
    params = {k: v.detach() for k, v in module.named_parameters()}

    def loss(p, x, yy):
        out = functional_call(module, p, (x[None],))
        return F.cross_entropy(out, yy[None])

    def flat_grads(Xa, ya):
        xs = torch.as_tensor(est._validate_X(Xa, reset=False))
        ys = torch.as_tensor(est.encode_labels(ya))
        g = vmap(grad(loss), in_dims=(None, 0, 0))(params, xs, ys)
        return torch.cat([v.reshape(len(xs), -1) for v in g.values()], 1)

    gt = flat_grads(X_t, y_t)
    gi = torch.cat([flat_grads(X[s:s + 256], y[s:s + 256]) for s in range(0, len(y), 256)])
    return (float(est.lr) * gt @ gi.T).double().numpy()


def target_loss(est, X_t: np.ndarray, y_t: np.ndarray) -> np.ndarray:
    p = est.predict_proba(X_t)
    return -np.log(p[np.arange(len(y_t)), np.searchsorted(est.classes_, y_t)] + 1e-12)


def removal_test(split: bl.Split, est, n_targets: int, seeds: tuple[int, ...],
                 fracs: tuple[float, ...]) -> dict:
    X, y = split.X_train, split.y_train
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    model = clone(est).set_params(random_state=0).fit(X, y)
    t1 = time.perf_counter()
    # Most test rows have a loss of ~0 that no removal can move: draw the targets
    # at random among the 20% of test rows with the highest loss (method-neutral).
    loss_all = target_loss(model, split.X_test, split.y_test)
    hard = np.argsort(-loss_all)[: max(n_targets, len(loss_all) // 5)]
    targets = rng.choice(hard, n_targets, replace=False)
    Xt, yt = split.X_test[targets], split.y_test[targets]
    t1 = time.perf_counter()
    tod = model.score_influence(Xt, yt)
    t2 = time.perf_counter()
    # Mask-centred ToD influence: subtract each training row's mean influence on a
    # reference set (the validation rows), which removes the part of I(z_t, z_i) that
    # only says "the seen sub-network of z_i is a better network overall".
    tod_c = tod - model.score_influence(split.X_val, split.y_val, reduce="mean")[None, :]
    trac = tracin_scores(model, Xt, yt, X, y)
    t3 = time.perf_counter()
    base = np.mean([target_loss(clone(est).set_params(random_state=100 + s).fit(X, y), Xt, yt)
                    for s in seeds], axis=0)
    res = {"n_train": len(y), "n_targets": n_targets, "seeds": len(seeds),
           "time_fit": t1 - t0, "time_tod_scores": t2 - t1, "time_tracin": t3 - t2,
           "base_loss": float(base.mean()), "k": {}}
    for frac in fracs:
        k = max(1, int(round(frac * len(y))))
        rows = {"ToD influence": [], "ToD influence, mask-centred": [], "TracIn": [],
                "random": []}
        for a in range(n_targets):
            for name, s in (("ToD influence", tod[a]), ("ToD influence, mask-centred", tod_c[a]),
                            ("TracIn", trac[a]), ("random", rng.random(len(y)))):
                keep = np.ones(len(y), bool)
                keep[np.argsort(-s, kind="stable")[:k]] = False  # most helpful rows
                loss = np.mean([target_loss(clone(est).set_params(random_state=100 + sd)
                                            .fit(X[keep], y[keep]), Xt[a:a + 1], yt[a:a + 1])[0]
                                for sd in seeds])
                rows[name].append(float(loss - base[a]))
        res["k"][f"{frac:.0%}"] = {"k": k, **{n: {"mean_increase": float(np.mean(v)),
                                                  "median_increase": float(np.median(v)),
                                                  "per_target": v} for n, v in rows.items()}}
        print(f"  removal k={k}: " + ", ".join(
            f"{n} {np.mean(v):+.3f}" for n, v in rows.items()), flush=True)
    return res


def loo_test(split: bl.Split, est, n_train: int, n_targets: int, n_cand: int,
             seeds: tuple[int, ...]) -> dict:
    X, y = split.X_train[:n_train], split.y_train[:n_train]
    rng = np.random.default_rng(1)
    targets = rng.choice(len(split.y_test), n_targets, replace=False)
    out = {"n_train": n_train, "n_candidates": n_cand, "n_targets": n_targets,
           "seeds": len(seeds),
           "spearman": {"ToD influence": [], "ToD influence, mask-centred": [], "TracIn": []}}
    Xr, yr = split.X_val, split.y_val
    full = {s: clone(est).set_params(random_state=200 + s).fit(X, y) for s in seeds}
    for t in targets:
        xt, yt = split.X_test[t:t + 1], split.y_test[t:t + 1]
        cand = np.argsort(((X - xt) ** 2).sum(1))[:n_cand]
        actual = np.zeros(n_cand)
        for s in seeds:
            base = target_loss(full[s], xt, yt)[0]
            for j, i in enumerate(cand):
                keep = np.ones(n_train, bool)
                keep[i] = False
                m = clone(est).set_params(random_state=200 + s).fit(X[keep], y[keep])
                actual[j] += (target_loss(m, xt, yt)[0] - base) / len(seeds)
        tod = np.mean([full[s].score_influence(xt, yt)[0, cand] for s in seeds], axis=0)
        ref = np.mean([full[s].score_influence(Xr, yr, reduce="mean")[cand] for s in seeds],
                      axis=0)
        trac = np.mean([tracin_scores(full[s], xt, yt, X[cand], y[cand])[0] for s in seeds],
                       axis=0)
        for name, sc in (("ToD influence", tod), ("ToD influence, mask-centred", tod - ref),
                         ("TracIn", trac)):
            out["spearman"][name].append(float(spearmanr(sc, actual).statistic))
        print(f"  LOO target {t}: spearman " + ", ".join(
            f"{n} {v[-1]:+.3f}" for n, v in out["spearman"].items()), flush=True)
    out["mean"] = {n: float(np.nanmean(v)) for n, v in out["spearman"].items()}
    return out


def to_markdown(res: dict) -> str:
    r, lo = res["removal"], res["loo"]
    lines = [f"**Removal** (digits, MLP {res['removal_params']}, {r['n_train']} training rows, "
             f"{r['n_targets']} test targets drawn among the 20% hardest, retrained with "
             f"{r['seeds']} seeds; mean rise of "
             f"the target's loss over its loss with all rows, {r['base_loss']:.3f})\n",
             "| rows removed | k | ToD influence | ToD, mask-centred | TracIn | random |",
             "|---|---|---|---|---|---|"]
    for name, v in r["k"].items():
        lines.append(f"| top {name} most helpful | {v['k']} | "
                     + " | ".join(f"{v[n]['mean_increase']:+.3f}"
                                  for n in ("ToD influence", "ToD influence, mask-centred",
                                            "TracIn", "random")) + " |")
    lines += ["", f"Scoring cost: ToD influence {r['time_tod_scores']:.2f}s, TracIn "
              f"{r['time_tracin']:.2f}s (one training run: {r['time_fit']:.1f}s).", "",
              f"**Leave-one-out** ({lo['n_train']} training rows, MLP {res['loo_params']}; "
              f"{lo['n_candidates']} candidate rows per target = its nearest neighbours; "
              f"{lo['n_targets']} targets; actual LOO change averaged over {lo['seeds']} "
              "paired seeds)\n",
              "| method | mean Spearman with actual LOO | per target |", "|---|---|---|"]
    for n, v in lo["spearman"].items():
        lines.append(f"| {n} | {lo['mean'][n]:+.3f} | "
                     + ", ".join(f"{x:+.2f}" for x in v) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = bl.load_digits_split()
    seeds = (0, 1, 2)
    est = ToDMLPClassifier(verbose=0)
    small = ToDMLPClassifier(hidden_layer_sizes=(128,), max_epochs=30, batch_size=32,
                             verbose=0)
    t0 = time.time()
    print("removal test", flush=True)
    rem = removal_test(split, est, n_targets=5 if args.quick else 10, seeds=seeds,
                       fracs=(0.01, 0.05))
    print("leave-one-out test", flush=True)
    loo = loo_test(split, small, n_train=300, n_targets=2 if args.quick else 4, n_cand=30,
                   seeds=seeds)
    res = {"removal": rem, "loo": loo,
           "removal_params": "default ToDMLPClassifier()",
           "loo_params": "hidden_layer_sizes=(128,), max_epochs=30, batch_size=32",
           "quick": args.quick, "seconds": time.time() - t0}
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "faithfulness.json").write_text(json.dumps(res, indent=1))
    (out / "faithfulness.md").write_text(to_markdown(res))
    print(to_markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
