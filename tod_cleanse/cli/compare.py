"""``tod-cleanse compare``: ToD methods side by side with cleanlab's label-issue finders.

Without ``INPUT`` it runs on the digits that ship with scikit-learn, with
``--noise`` (default 10%) of the labels flipped by a seeded generator: the flipped
rows are the ground truth of the precision, recall, AUROC and AP columns. With
``INPUT``, a ``--noise-column`` (True = mislabeled) or ``--noise F`` (flip F of
the labels) gives the ground truth; without either the table shows only the
finders' counts, costs and overlaps.

The work is :func:`tod_cleanse.adapters.cleanlab.compare_finders`; this module
only reads the arguments and prints its tables.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from . import options
from .options import CLIError
from .tables import check_table, load_table

logger = logging.getLogger(__name__)

__all__ = ["add_arguments", "check", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse compare``."""
    options.add_input_or_demo(parser)
    options.add_columns(parser)
    parser.add_argument("--noise-column", metavar="COL",
                        help="boolean ground-truth column of INPUT (True = mislabeled)")
    options.add_noise(parser, default=None,
                      help=f"fraction of labels to flip, seeded: the ground truth (default "
                           f"{options.DEMO_NOISE} on the digits, 0 with INPUT)")
    options.add_cleansing(parser, threshold=False, several_methods=True)
    options.add_cv(parser)
    options.add_model(parser, max_epochs=20, hidden="256,256")
    options.add_threads(parser)
    parser.add_argument("--plot", metavar="PATH", default="tod_compare_pr.png",
                        help="PNG of the precision-recall curves (default tod_compare_pr.png)")
    parser.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    options.add_out(parser, default=None,
                    help="also write the table: .md as markdown, anything else as CSV")


def check(args: argparse.Namespace) -> None:
    """Every argument of ``tod-cleanse compare``, before any training."""
    if args.method and "eval_influence" in args.method:
        raise CLIError("--method eval_influence needs a validation set, which `compare` "
                       "does not take; choose other methods.")
    options.check_columns_need_input(args, "--noise-column")
    if args.input is not None:
        if args.noise_column and args.noise:
            raise CLIError("--noise and --noise-column are two sources of ground truth; "
                           "give one.")
        check_table(args.input, label=args.label, key=args.key, features=args.features,
                    extra={"--noise-column": args.noise_column})
    if args.out is not None:
        options.check_output_file(args.out, "--out")
    if not args.no_plot:
        options.check_output_file(args.plot, "--plot")


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    from tod_cleanse.noise import flip_labels

    if args.input is None:
        from tod_cleanse.adapters.cleanlab import noisy_digits

        noise = options.DEMO_NOISE if args.noise is None else args.noise
        X, y, mask = noisy_digits(noise, random_state=args.seed)
        return X, y, mask, f"digits, {noise:.0%} injected label noise (seed {args.seed})"
    table = load_table(args.input, label=args.label, key=args.key, features=args.features,
                       extra={"--noise-column": args.noise_column})
    y, mask = table.y, None
    if args.noise_column:
        mask = table.extra["--noise-column"]
        if mask.dtype.kind not in "biu" or not np.isin(mask, [0, 1]).all():
            raise CLIError(f"--noise-column {args.noise_column!r} of {table.source} must be "
                           "boolean (True = mislabeled).")
        mask = mask.astype(bool)
    elif args.noise:
        y, mask = flip_labels(y, args.noise, random_state=args.seed)
    return table.X, y, mask, str(args.input)


def _write_table(df, path: Path) -> None:
    from tod_cleanse.adapters.cleanlab import format_comparison

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".md":
        tmp.write_text(format_comparison(df) + "\n", encoding="utf-8")
    else:
        df.to_csv(tmp)
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse compare``: print the markdown tables, write the PNG and --out."""
    from tod_cleanse.adapters.cleanlab import compare_finders, format_comparison
    from tod_cleanse.estimators.mlp import ToDMLPClassifier

    options.set_threads(args.threads)
    X, y, mask, source = _data(args)
    params = {"batch_size": args.batch_size, "lr": args.lr}
    est = ToDMLPClassifier(hidden_layer_sizes=args.hidden, max_epochs=args.max_epochs,
                           random_state=args.seed, device=args.device,
                           verbose=0 if args.quiet else 1,
                           **{k: v for k, v in params.items() if v is not None})
    plot = None if args.no_plot or mask is None else args.plot
    df = compare_finders(X, y, est, noise_mask=mask, cv=args.cv, methods=args.method,
                         drop_fraction=args.drop_fraction, random_state=args.seed, plot=plot)
    print(f"Data: {source}; {len(y)} rows; model: ToDMLPClassifier(hidden_layer_sizes="
          f"{args.hidden}, max_epochs={args.max_epochs}); cleanlab baseline: "
          f"{args.cv}-fold CV.\n")
    print(format_comparison(df))
    if plot is not None:
        print(f"\nprecision-recall curves: {plot}")
    if args.out is not None:
        _write_table(df, Path(args.out))
        print(f"table: {args.out}")
    return 0
