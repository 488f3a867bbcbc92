"""Repeat one digits cell of the suite over several noise draws.

``run.py`` flips one seeded set of labels per cell, so its cleansing table mixes two
sources of variance: the retraining seed (the ± it shows) and the draw of flipped
rows (which it cannot show). This script re-runs a digits cell for ``--draws``
independent noise draws and reports, per draw, the default ToD score against
5-fold cleanlab: AP, precision@k and test accuracy after dropping k rows and
retraining (mean over ``--seeds`` retraining seeds), next to no cleansing and the
oracle. Digits only: a draw costs about 30 s of one CPU core.

Usage (from the repository root)::

    .venv/bin/python examples/benchmarks/noise_draws.py --rate 0.4 --kind uniform

Writes ``results/noise_draws_digits-<kind><rate>.md`` and prints the same table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_lib as bl  # noqa: E402
import torch  # noqa: E402

from tod_cleanse import ToDMLPClassifier  # noqa: E402

HERE = Path(__file__).resolve().parent
COMPARED = (bl.default_method_key(), "cleanlab_cv5")


def run_draw(split: bl.Split, rate: float, kind: str, draw: int,
             seeds: tuple[int, ...]) -> dict:
    """Detection and cleansing of the default and 5-fold cleanlab on one noise draw."""
    y_noisy, flipped = bl.inject_noise(split.y_train, rate, kind, "digits", seed=draw)
    k = int(flipped.sum())
    est = ToDMLPClassifier(verbose=0)
    det, _ = bl.run_detectors(est, split, y_noisy, seed=draw, log=lambda *a: None)
    row: dict = {"draw": draw, "k": k}
    for name in COMPARED:
        m = bl.detection_metrics(det[name].scores, flipped)
        acc, _ = bl.retrain_accuracy(est, split, y_noisy, bl.drop_lowest(det[name].scores, k),
                                     seeds)
        row[name] = {"ap": m["ap"], "p_at_k": m["p_at_k"], "acc": acc}
    row["no cleansing"] = bl.retrain_accuracy(est, split, y_noisy,
                                              np.ones(len(y_noisy), bool), seeds)[0]
    row["oracle"] = bl.retrain_accuracy(est, split, y_noisy, ~flipped, seeds)[0]
    return row


def table(rows: list[dict], title: str) -> str:
    d, c = COMPARED
    out = [f"**{title}**", "",
           "| noise draw | AP default | AP 5-fold cleanlab | P@k default | P@k 5-fold cleanlab "
           "| acc default | acc 5-fold cleanlab | acc difference | acc no cleansing "
           "| acc oracle |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['draw']} | {r[d]['ap']:.3f} | {r[c]['ap']:.3f} | {r[d]['p_at_k']:.3f} "
                   f"| {r[c]['p_at_k']:.3f} | {r[d]['acc']:.4f} | {r[c]['acc']:.4f} "
                   f"| {r[d]['acc'] - r[c]['acc']:+.4f} | {r['no cleansing']:.4f} "
                   f"| {r['oracle']:.4f} |")
    diff = np.array([r[d]["acc"] - r[c]["acc"] for r in rows])

    def mean(key: str, sub: str | None = None) -> float:
        return float(np.mean([r[key][sub] if sub else r[key] for r in rows]))

    out.append(f"| mean | {mean(d, 'ap'):.3f} | {mean(c, 'ap'):.3f} | {mean(d, 'p_at_k'):.3f} "
               f"| {mean(c, 'p_at_k'):.3f} | {mean(d, 'acc'):.4f} | {mean(c, 'acc'):.4f} "
               f"| {diff.mean():+.4f} | {mean('no cleansing'):.4f} | {mean('oracle'):.4f} |")
    out += ["", f"Default at least as accurate as 5-fold cleanlab on {int((diff >= 0).sum())} of "
            f"{len(rows)} draws; accuracy difference {diff.mean():+.4f} ± "
            f"{diff.std(ddof=1) if len(rows) > 1 else 0.0:.4f} (mean ± std over draws)."]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--kind", choices=["uniform", "class"], default="uniform")
    ap.add_argument("--draws", type=int, default=5, help="noise draws (seeds 0..draws-1)")
    ap.add_argument("--seeds", type=int, default=3, help="retraining seeds per draw")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = bl.load_digits_split()
    rows = []
    for draw in range(args.draws):
        rows.append(run_draw(split, args.rate, args.kind, draw, tuple(range(args.seeds))))
        print(f"draw {draw}: default {rows[-1][COMPARED[0]]['acc']:.4f}, "
              f"5-fold cleanlab {rows[-1][COMPARED[1]]['acc']:.4f}", flush=True)
    name = f"digits-{args.kind}{int(round(100 * args.rate))}"
    text = table(rows, f"{name}: {args.draws} noise draws, {args.seeds} retraining seeds each "
                       "(draw 0 is the draw of run.py)")
    out = HERE / "results" / f"noise_draws_{name}.md"
    out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
