"""The ``tod-cleanse`` command.

The CLI is the composition root: each subcommand lives in the module that owns
its work and is imported only when that subcommand runs. A subcommand module
provides ``add_arguments(parser)`` and ``run(args) -> int``. The core library
(masks, layers, estimators, influence, cleanser) never imports the adapters; only
this entry point wires them in.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["main", "COMMANDS"]

#: subcommand -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "tod_cleanse.adapters.demo",
        "clean the digits data (10% injected label noise) and compare with cleanlab",
    ),
    "compare": (
        "tod_cleanse.adapters.cleanlab",
        "side-by-side comparison of ToD methods with cleanlab's label-issue finders",
    ),
    "clean": (
        "tod_cleanse.adapters.parquet",
        "batch-clean a Parquet dataset into kept/ and dropped/ folders",
    ),
    "report": (
        "tod_cleanse.report",
        "write a self-contained HTML report of what would be dropped and why",
    ),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported."""
    parser = argparse.ArgumentParser(
        prog="tod-cleanse",
        description="Turn-over dropout (Kobayashi et al., SustaiNLP 2020) data cleansing.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in (argv or []) if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        # argparse %-formats help strings: escape the "%" of "10% ..."
        p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tod-cleanse``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
