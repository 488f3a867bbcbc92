"""``tod-cleanse clean``: batch-clean a Parquet dataset into ``kept/`` and ``dropped/``.

The work is :func:`tod_cleanse.adapters.parquet.clean_parquet`; this module reads the
command line with the shared options of :mod:`tod_cleanse.cli.options`, checks every
argument (and the input's footers and columns, and the output folder) before any
training, and prints a one-line result.

Examples
--------
    tod-cleanse clean --export-demo digits.parquet
    tod-cleanse clean digits.parquet --label label --features pixels --key id --out digits_clean
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from . import options
from .options import CLIError

logger = logging.getLogger(__name__)

__all__ = ["add_arguments", "check", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``tod-cleanse clean``."""
    from tod_cleanse.adapters.parquet import MODELS, ROW_COLUMN

    options.add_input(parser, required=False,
                      help="Parquet file, folder or hive-partitioned dataset")
    options.add_columns(parser, text=True, image=True,
                        features_default="none; give --features, --text or --image")
    parser.set_defaults(features=None)
    options.add_model(parser)
    options.add_cleansing(parser, threshold=True,
                          method_default="auto, the model family's own default; on a sampled "
                                         "run, one that scores untrained rows")
    parser.set_defaults(method=None)  # a sampled run picks a method that scores untrained rows
    options.add_out(parser, default=None, help="output folder (new or empty)")
    group = parser.add_argument_group("clean")
    group.add_argument("--model", choices=MODELS,
                       help="estimator (default: mlp for --features, text for --text, vgg for "
                            "--image; text/bert: any transformers encoder; resnet, vit: images)")
    group.add_argument("--model-path", metavar="PATH",
                       help="pretrained weights: a transformers folder for text/bert "
                            "(model_name_or_path), a torchvision .pth for resnet/vit "
                            "(weights_path)")
    group.add_argument("--eval", metavar="PATH", dest="eval_path",
                       help="validation Parquet data for --method eval_influence")
    group.add_argument("--max-train-rows", type=options.positive_int, default=100_000,
                       metavar="N", help="train on a seeded sample of N rows above this size "
                                         "(default 100000)")
    group.add_argument("--batch-rows", type=options.positive_int, default=65_536, metavar="N",
                       help="rows per streamed record batch (default 65536)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace --out if it is a previous tod-cleanse output")
    group.add_argument("--clear-stale-claim", action="store_true",
                       help="take over the claim on --out of a run that was killed (same host, "
                            "process gone)")
    group.add_argument("--report", action="store_true",
                       help="also write OUT/report.html on the trained rows")
    group.add_argument("--export-demo", metavar="PATH",
                       help="write the demo data (digits with --noise seeded label noise, "
                            "default 10%%) to PATH as Parquet and exit")
    options.add_noise(parser, default=0.1, help="label noise of --export-demo (default 0.1)")
    options.add_threads(parser)
    scale = parser.add_argument_group("scale-out (docs/scale-out.md)")
    scale.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this process (default); ray: score and write on a Ray "
                            "cluster (pip install 'tod-cleanse[ray]')")
    scale.add_argument("--ray-address", metavar="HOST:PORT",
                       help="running Ray cluster (default: start a local Ray instance)")
    scale.add_argument("--workers", type=options.positive_int, metavar="N",
                       help="Ray actors scoring and writing (default 2)")
    scale.add_argument("--train-workers", type=options.positive_int, metavar="N",
                       help="train data-parallel (torch DDP) on N Ray Train workers "
                            "(default: train on the driver)")
    parser.epilog = (f"Without --key, keys are scan-order row positions, written as column "
                     f"{ROW_COLUMN}. Errors exit with status 2.")


def _params(args: argparse.Namespace) -> dict[str, Any]:
    model_params = {
        "max_epochs": args.max_epochs, "batch_size": args.batch_size, "lr": args.lr,
        "device": None if args.device == "auto" else args.device,
        "hidden_layer_sizes": args.hidden, "model_name_or_path": args.model_path,
    }
    return dict(
        label=args.label, features=args.features, text=args.text, image=args.image,
        image_shape=args.image_shape, key=args.key, model=args.model,
        model_params=model_params, method=args.method, drop_fraction=args.drop_fraction,
        threshold=args.threshold, eval_path=args.eval_path, max_train_rows=args.max_train_rows,
        batch_rows=args.batch_rows, seed=args.seed, overwrite=args.overwrite,
        clear_stale_claim=args.clear_stale_claim, report=args.report,
        progress=not getattr(args, "quiet", False),
    )


def _engine_params(args: argparse.Namespace) -> dict[str, Any]:
    return dict(engine=args.engine, ray_address=args.ray_address, workers=args.workers,
                train_workers=args.train_workers)


def check(args: argparse.Namespace) -> None:
    """Check every argument, the input's columns and the output folder; write nothing."""
    from tod_cleanse.adapters.parquet import prepare

    if args.export_demo:
        if args.input:
            raise CLIError(f"--export-demo writes the demo data and exits; it takes no INPUT "
                           f"(got {args.input!r})")
        return
    missing = [opt for opt, v in (("INPUT", args.input), ("--label", args.label),
                                  ("--out", args.out)) if not v]
    if missing:
        raise CLIError(f"missing {', '.join(missing)} (see tod-cleanse clean --help)")
    from tod_cleanse.adapters.parquet.clean import make_engine

    make_engine(**_engine_params(args))
    options.check_input_path(args.input)
    if args.eval_path is not None:
        options.check_input_path(args.eval_path, "--eval")
    prepare(args.input, args.out, **_params(args))


def run(args: argparse.Namespace) -> int:
    """Run ``tod-cleanse clean``; returns 0 (errors are raised for the CLI's handler)."""
    from tod_cleanse.adapters.parquet import PartitionCheckError, clean_parquet, export_demo

    if args.export_demo:
        path = export_demo(args.export_demo, noise=args.noise, seed=args.seed)
        print(f"wrote {path} (1797 digits, {args.noise:.0%} of labels flipped; columns id, "
              "pixels, label, true_label)")
        return 0
    options.set_threads(args.threads)
    try:
        summary = clean_parquet(args.input, args.out, argv=sys.argv, **_params(args),
                                **_engine_params(args))
    except (PartitionCheckError, OSError) as exc:
        if isinstance(exc, FileNotFoundError | PermissionError):
            raise
        raise CLIError(str(exc)) from exc
    c = summary["counts"]
    print(f"kept {c['kept']} rows, dropped {c['dropped']} of {c['input']} "
          f"({100 * c['dropped_fraction']:.2f}%); trained on {c['trained']}; "
          f"partition check {'ok' if summary['partition_check']['ok'] else 'FAILED'}; "
          f"{summary['timings_s']['total']:.1f} s -> {summary['output']}")
    return 0
