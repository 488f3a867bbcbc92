"""The ``tod-cleanse`` command.

The CLI is the composition root: one module per subcommand under
``tod_cleanse.cli``, imported only when that subcommand runs. A subcommand module
provides

* ``add_arguments(parser)``: its options, built from the shared helpers of
  :mod:`tod_cleanse.cli.options` (one spelling per flag across subcommands);
* ``check(args)``: every argument checked before any training or heavy I/O;
* ``run(args) -> int``: the work.

:func:`main` is the one error handler: a :class:`~tod_cleanse.cli.options.CLIError`,
``ValueError`` (the Parquet cleaner's ``CleanParquetError`` is one), ``TypeError``,
``FileNotFoundError``, ``PermissionError`` or ``ModuleNotFoundError`` (a missing optional
extra, e.g. ``ray`` for ``--engine ray``) raised by a subcommand becomes one line
``tod-cleanse <cmd>: error: <message>`` on stderr and exit status 2, with no
traceback unless ``--debug`` is given. argparse's own errors exit 2 as well.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

from .options import CLIError

__all__ = ["main", "build_parser", "COMMANDS", "CLIError", "HANDLED_ERRORS"]

#: subcommand -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "tod_cleanse.cli.demo",
        "clean the digits data (10% injected label noise) and compare with cleanlab",
    ),
    "compare": (
        "tod_cleanse.cli.compare",
        "side-by-side comparison of ToD methods with cleanlab's label-issue finders",
    ),
    "clean": (
        "tod_cleanse.cli.clean",
        "batch-clean a Parquet dataset into kept/ and dropped/ folders",
    ),
    "report": (
        "tod_cleanse.cli.report",
        "write a self-contained HTML report of what would be dropped and why",
    ),
}

#: what :func:`main` turns into one line on stderr and exit status 2
HANDLED_ERRORS: tuple[type[BaseException], ...] = (
    CLIError,
    ValueError,
    TypeError,
    FileNotFoundError,
    PermissionError,
    NotADirectoryError,
    IsADirectoryError,
    FileExistsError,
    ModuleNotFoundError,  # a missing optional extra: the message names what to install
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the chosen subcommand's module is imported."""
    parser = _Parser(
        prog="tod-cleanse",
        description="Turn-over dropout (Kobayashi et al., SustaiNLP 2020) data cleansing.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (default: one line)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in (argv or []) if a in COMMANDS), None)
    for name, (module_name, help_text) in COMMANDS.items():
        # argparse %-formats help strings: escape the "%" of "10% ..."
        p = sub.add_parser(name, help=help_text.replace("%", "%%"), description=help_text)
        if name == chosen:
            importlib.import_module(module_name).add_arguments(p)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tod-cleanse``; returns the exit status.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for a bad argument, column or file (one line on stderr).

    Examples
    --------
    A bad argument is one line on stderr (here ``tod-cleanse report: error: --label:
    only with INPUT ...``) and exit status 2; argparse's own usage errors exit 2 too
    (by ``SystemExit``).

    >>> main(["report", "--label", "y"])
    2
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        check = getattr(module, "check", None)
        if check is not None:
            check(args)
        return int(module.run(args) or 0)
    except HANDLED_ERRORS as exc:
        if args.debug:
            traceback.print_exc()
        print(f"tod-cleanse {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
