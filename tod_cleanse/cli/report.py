"""``tod-cleanse report``: a self-contained HTML report of what would be dropped and why.

Without ``INPUT`` it cleans the digits that ship with scikit-learn after flipping
``--noise`` (default 10%) of the training labels with a seeded generator, and
shows the rows as 8x8 thumbnails. With ``INPUT`` (Parquet, or ``.csv``), the
``--label`` column is the target and the ``--features`` (default: every other
column but ``--key``) feed a :class:`~tod_cleanse.ToDMLPClassifier`.

A share ``--test-fraction`` is held out; its misclassified rows are explained by
their most harmful and most helpful training rows. The work is
:func:`tod_cleanse.report.write_report`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from . import options
from .options import CLIError
from .tables import check_table, load_table

logger = logging.getLogger(__name__)

__all__ = ["add_arguments", "check", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse report``."""
    options.add_input_or_demo(parser)
    options.add_columns(parser)
    options.add_noise(parser, default=None,
                      help=f"fraction of training labels to flip, seeded (default "
                           f"{options.DEMO_NOISE} on the digits, 0 with INPUT)")
    parser.add_argument("--test-fraction", metavar="F", type=options.fraction, default=0.2,
                        help="held-out share whose misclassified rows are explained "
                             "(0: none; default 0.2)")
    options.add_cleansing(parser)
    options.add_model(parser, max_epochs=20)
    options.add_threads(parser)
    group = parser.add_argument_group("report")
    group.add_argument("--k", metavar="K", type=options.positive_int, default=5,
                       help="harmful and helpful training rows per explained example (5)")
    group.add_argument("--max-test", metavar="N", type=options.non_negative_int, default=20,
                       help="misclassified test examples explained (20)")
    group.add_argument("--max-rows", metavar="N", type=options.non_negative_int, default=1000,
                       help="dropped rows listed (1000)")
    group.add_argument("--influence-estimate", choices=("gradient", "exact"),
                       default="gradient",
                       help="influence estimate behind the explained examples: 'gradient' "
                            "(default; tracks retraining far better) or the paper's 'exact'")
    options.add_out(parser, default="tod_report.html",
                    help="the HTML file; the PNG plots go to <name>_figures/ beside it "
                         "(default tod_report.html)")


def check(args: argparse.Namespace) -> None:
    """Every argument of ``tod-cleanse report``, before any training."""
    if args.method == "eval_influence":
        raise CLIError("--method eval_influence needs a validation set, which `report` does "
                       "not take; choose another method.")
    options.check_columns_need_input(args)
    if args.input is None:
        if args.image_shape is not None and int(np.prod(args.image_shape)) != 64:
            raise CLIError(f"--image-shape {'x'.join(map(str, args.image_shape))} does not "
                           "fit the 64 pixels of the digits demo (8x8).")
    else:
        check_table(args.input, label=args.label, key=args.key, features=args.features)
    out = options.check_output_file(args.out, "--out")
    options.check_output_file(out.with_name(f"{out.stem}_figures") / "x.png", "--out")


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, Any, str, Any, float]:
    """X, y, keys, source name, image shape and noise of the run."""
    if args.input is None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        noise = options.DEMO_NOISE if args.noise is None else args.noise
        return (digits.data, digits.target, None, "digits", args.image_shape or (8, 8),
                noise)
    table = load_table(args.input, label=args.label, key=args.key, features=args.features)
    if args.image_shape is not None and int(np.prod(args.image_shape)) != table.X.shape[1]:
        raise CLIError(f"--image-shape {'x'.join(map(str, args.image_shape))} does not fit "
                       f"the {table.X.shape[1]} feature values per row of {table.source}.")
    return (table.X, table.y, table.keys, table.source, args.image_shape,
            args.noise or 0.0)


def _split(args: argparse.Namespace, X: np.ndarray, y: np.ndarray, keys: Any) -> tuple:
    from sklearn.model_selection import train_test_split

    keys = np.arange(len(y)) if keys is None else keys
    if not args.test_fraction:
        return X, None, y, None, keys
    _, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(args.test_fraction * len(y)))
    if counts.min() < 2 or n_test < len(counts) or len(y) - n_test < len(counts):
        raise CLIError(f"--test-fraction {args.test_fraction} cannot hold out a stratified "
                       f"share of {len(y)} rows in {len(counts)} classes (smallest class: "
                       f"{counts.min()} rows); give more rows or --test-fraction 0.")
    X_tr, X_te, y_tr, y_te, k_tr, _ = train_test_split(
        X, y, keys, test_size=args.test_fraction, random_state=args.seed, stratify=y)
    return X_tr, X_te, y_tr, y_te, k_tr


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse report``: fit, decide the drops, write the HTML and PNG files."""
    from tod_cleanse.cleanser import ToDCleanser
    from tod_cleanse.estimators.mlp import ToDMLPClassifier
    from tod_cleanse.noise import flip_labels
    from tod_cleanse.report import write_report

    options.set_threads(args.threads)
    X_all, y_all, keys_all, source, image_shape, noise = _data(args)
    X, X_test, y, y_test, keys = _split(args, X_all, np.asarray(y_all), keys_all)
    flipped = np.zeros(len(y), dtype=bool)
    y_given = y
    if noise > 0:
        y_given, flipped = flip_labels(y, noise, random_state=args.seed)
    params = {"hidden_layer_sizes": args.hidden, "batch_size": args.batch_size,
              "lr": args.lr}
    est = ToDMLPClassifier(max_epochs=args.max_epochs, random_state=args.seed,
                           device=args.device, verbose=0 if args.quiet else 1,
                           **{k: v for k, v in params.items() if v is not None})
    cleanser = ToDCleanser(est, method=args.method, drop_fraction=args.drop_fraction,
                           threshold=args.threshold)
    cleanser.fit(X, y_given, instance_keys=keys)
    rep = write_report(cleanser, X, y_given, args.out, X_test=X_test, y_test=y_test,
                       instance_keys=keys, image_shape=image_shape, k=args.k,
                       max_test=args.max_test, max_rows=args.max_rows,
                       influence_estimate=args.influence_estimate,
                       title=f"tod_cleanse report: {source}")
    dropped = cleanser.issues_["is_issue"].to_numpy()
    print(f"data: {source}, {len(y_given)} training rows"
          + (f", {noise:.0%} labels flipped (seed {args.seed})" if noise > 0 else ""))
    print(f"rows to drop: {int(dropped.sum())} (method={cleanser.method_})")
    if noise > 0:
        hit = int((dropped & flipped).sum())
        print(f"flipped labels among them: {hit} (precision {hit / max(1, dropped.sum()):.3f}, "
              f"recall {hit / max(1, flipped.sum()):.3f})")
    print(f"report: {rep.html}")
    for name, fig in rep.figures.items():
        print(f"figure {name}: {fig}")
    return 0
