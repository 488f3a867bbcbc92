"""``tod-cleanse demo``: clean the digits data and compare with cleanlab, offline.

The work is :func:`tod_cleanse.adapters.demo.run_demo`: 10% (``--noise``) of the
digits' training labels flipped with a seeded generator, then ToD (one training
run), cleanlab on K-fold cross-validated ``pred_probs`` (``--cv`` runs), random
removal and the oracle, each scored by precision and recall against the flipped
rows and by the test accuracy of the MLP retrained on the kept rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from . import options

__all__ = ["add_arguments", "check", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse demo``."""
    options.add_noise(parser, default=0.1, help="fraction of training labels flipped (0.1)")
    parser.add_argument("--seed", metavar="S", type=options.non_negative_int, default=0,
                        help="seed of the split, the noise and the models (0)")
    parser.add_argument("--seeds", metavar="N", type=options.positive_int, default=3,
                        help="retraining seeds averaged for the test accuracy (3)")
    options.add_cv(parser)
    parser.add_argument("--max-epochs", metavar="E", type=options.positive_int, default=None,
                        help="training epochs of every model (default: the MLP's default)")
    parser.add_argument("--device", metavar="D", type=options.device, default="auto",
                        help="torch device: auto, cpu, cuda, cuda:N (default auto)")
    options.add_threads(parser, default=1)
    options.add_out(parser, default=None,
                    help="also write the table: .md as markdown, anything else as CSV")


def check(args: argparse.Namespace) -> None:
    """Every argument of ``tod-cleanse demo``, before any training."""
    if args.out is not None:
        options.check_output_file(args.out, "--out")


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse demo`` and print its table."""
    from tod_cleanse.adapters.cleanlab import markdown_table
    from tod_cleanse.adapters.demo import run_demo

    options.set_threads(args.threads)
    t0 = time.perf_counter()
    result = run_demo(noise_rate=args.noise, random_state=args.seed, n_seeds=args.seeds,
                      cv=args.cv, verbose=0 if args.quiet else 1,
                      max_epochs=args.max_epochs, device=args.device)
    table = markdown_table(result.table)
    print(
        f"digits: {result.n_train} training rows, {result.n_noisy} labels flipped "
        f"({args.noise:.0%}, seed {args.seed}); test accuracy is the mean of "
        f"{args.seeds} retrainings of the same MLP on the kept rows.\n"
    )
    print(table)
    if args.out is not None:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        if out.suffix.lower() == ".md":
            tmp.write_text(table + "\n", encoding="utf-8")
        else:
            result.table.to_csv(tmp)
        tmp.replace(out)
        print(f"\ntable: {out}")
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return 0
