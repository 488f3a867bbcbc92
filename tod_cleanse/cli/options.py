"""Options, type parsers and argument checks shared by every ``tod-cleanse`` subcommand.

One spelling per flag across subcommands: a subcommand module adds the groups it
needs with the ``add_*`` helpers below, so ``--label``, ``--hidden 256,256``,
``--image-shape 28x28``, ``--drop-fraction auto|F`` ... read the same everywhere.

Type parsers (``image_shape``, ``hidden_sizes``, ``drop_fraction``, ``device``, ...)
raise :class:`argparse.ArgumentTypeError`, so argparse reports the flag by name and
exits with status 2. Checks that need more than one flag (``check_*``) raise
:class:`CLIError`, which :func:`tod_cleanse.cli.main` prints as one line, exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CLIError",
    "image_shape",
    "hidden_sizes",
    "drop_fraction",
    "device",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "fraction",
    "add_input",
    "add_input_or_demo",
    "check_columns_need_input",
    "DEMO_NOISE",
    "add_columns",
    "add_model",
    "add_cleansing",
    "add_noise",
    "add_out",
    "add_threads",
    "add_cv",
    "set_threads",
    "cv_folds",
    "check_input_path",
    "check_output_file",
]


class CLIError(Exception):
    """A bad flag, column or file: ``tod-cleanse`` prints the message and exits 2."""


# ------------------------------------------------------------------ type parsers
def _type(name: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Give a type parser the name argparse shows in its own messages."""

    def wrap(func: Callable[[str], Any]) -> Callable[[str], Any]:
        func.__name__ = name
        return func

    return wrap


@_type("image shape")
def image_shape(text: str) -> tuple[int, ...]:
    """``"28x28"`` (HxW) or ``"3x32x32"`` (CxHxW) -> a tuple of positive ints.

    Examples
    --------
    >>> image_shape("28x28"), image_shape("3x32x32")
    ((28, 28), (3, 32, 32))
    """
    parts = str(text).lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected HxW or CxHxW with positive integers, e.g. 28x28, got {text!r}"
        )
    return shape


@_type("hidden layer sizes")
def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"256,256"`` -> ``(256, 256)``: a comma list of positive layer widths.

    Examples
    --------
    >>> hidden_sizes("256,256"), hidden_sizes("64")
    ((256, 256), (64,))
    """
    try:
        sizes = tuple(int(p) for p in str(text).split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of positive integers, e.g. 256,256, got {text!r}"
        )
    return sizes


@_type("drop fraction")
def drop_fraction(text: str) -> float | str:
    """``"auto"`` or a number in [0, 1), read by :func:`tod_cleanse.scores.parse_drop_fraction`.

    Examples
    --------
    >>> drop_fraction("auto"), drop_fraction("0.05")
    ('auto', 0.05)
    """
    from tod_cleanse.scores import parse_drop_fraction

    try:
        return parse_drop_fraction(text, name="the value")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).rstrip(".")) from None


@_type("device")
def device(text: str) -> str:
    """A torch device this machine has (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ...).

    Checked with :func:`tod_cleanse.estimators.base.resolve_device`, the function the
    estimators use, so a bad device is refused before any training.

    Examples
    --------
    >>> device("cpu")
    'cpu'
    """
    from tod_cleanse.estimators.base import resolve_device

    try:
        resolve_device(text)
    except (ValueError, RuntimeError, TypeError) as exc:
        detail = " ".join(str(exc).split()) if isinstance(exc, ValueError) else ""
        raise argparse.ArgumentTypeError(
            detail or f"{text!r} is not a usable torch device here (auto, cpu, cuda, cuda:N)"
        ) from None
    return text


def _number(text: str, kind: type, what: str, ok: Callable[[float], bool]) -> Any:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


@_type("positive integer")
def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, batch size, folds ...)."""
    return _number(text, int, "an integer >= 1", lambda v: v >= 1)


@_type("non-negative integer")
def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    return _number(text, int, "an integer >= 0", lambda v: v >= 0)


@_type("number of folds")
def cv_folds(text: str) -> int:
    """An integer >= 2 (cross-validation folds)."""
    return _number(text, int, "an integer >= 2", lambda v: v >= 2)


@_type("positive number")
def positive_float(text: str) -> float:
    """A finite number > 0 (learning rate)."""
    return _number(text, float, "a number > 0", lambda v: v > 0)


@_type("fraction")
def fraction(text: str) -> float:
    """A number in [0, 1) (label noise, test share)."""
    return _number(text, float, "a number in [0, 1)", lambda v: 0 <= v < 1)


# ------------------------------------------------------------------ option groups
def add_input(parser: argparse.ArgumentParser, *, required: bool, help: str) -> None:
    """The positional ``INPUT`` table (Parquet; ``.csv`` read as CSV)."""
    parser.add_argument("input", metavar="INPUT", nargs=None if required else "?",
                        default=None, help=help)


#: label noise injected into the built-in digits demo when INPUT is omitted
DEMO_NOISE = 0.1


def add_input_or_demo(parser: argparse.ArgumentParser) -> None:
    """The optional positional ``INPUT``; without it the digits demo is used."""
    add_input(parser, required=False,
              help="Parquet file or folder (.csv: CSV); default: the digits that ship with "
                   f"scikit-learn, with --noise (default {DEMO_NOISE}) injected label noise")


def check_columns_need_input(args: argparse.Namespace, *flags: str) -> None:
    """Column flags (``--label``, ``--key``, ``--features`` and ``flags``) need ``INPUT``."""
    names = ("--label", "--key", "--features", *flags)
    given = [f for f in names if getattr(args, f[2:].replace("-", "_"), None)]
    if args.input is None and given:
        raise CLIError(f"{', '.join(given)}: only with INPUT (the built-in digits demo has no "
                       "columns to choose).")


def add_columns(parser: argparse.ArgumentParser, *, text: bool = False,
                image: bool = False, features_default: str = "every other column") -> None:
    """``--label``, ``--key``, ``--features`` (and ``--text``, ``--image``, ``--image-shape``)."""
    group = parser.add_argument_group("columns of INPUT")
    group.add_argument("--label", metavar="COL", help="label column")
    group.add_argument("--key", metavar="COL",
                       help="stable unique id column (default: the row number)")
    group.add_argument("--features", metavar="COL", nargs="+",
                       help="numeric feature columns, scalars or fixed-length lists "
                            f"(default: {features_default}); it takes several names, so "
                            "give INPUT before it")
    if text:
        group.add_argument("--text", metavar="COL", help="text column (BERT)")
    if image:
        group.add_argument("--image", metavar="COL", help="image column")
    group.add_argument("--image-shape", metavar="HxW", type=image_shape,
                       help="shape of one image, HxW or CxHxW, e.g. 28x28")


def add_model(parser: argparse.ArgumentParser, *, max_epochs: int | None = None,
              hidden: str | None = None) -> None:
    """``--hidden``, ``--max-epochs``, ``--batch-size``, ``--lr``, ``--seed``, ``--device``."""
    group = parser.add_argument_group("model and training")
    group.add_argument("--hidden", metavar="W,W", type=hidden_sizes,
                       default=hidden_sizes(hidden) if hidden else None,
                       help="MLP hidden layer widths, comma list "
                            f"(default {hidden or 'the model default'})")
    group.add_argument("--max-epochs", metavar="E", type=positive_int, default=max_epochs,
                       help=f"training epochs (default {max_epochs or 'the model default'})")
    group.add_argument("--batch-size", metavar="B", type=positive_int,
                       help="training batch size (default: the model default)")
    group.add_argument("--lr", metavar="LR", type=positive_float,
                       help="learning rate (default: the model default)")
    group.add_argument("--seed", metavar="S", type=non_negative_int, default=0,
                       help="random seed of the split, the noise and the model (default 0)")
    group.add_argument("--device", metavar="D", type=device, default="auto",
                       help="torch device: auto, cpu, cuda, cuda:N (default auto)")


def add_cleansing(parser: argparse.ArgumentParser, *, threshold: bool = True,
                  several_methods: bool = False, method_default: str | None = None) -> None:
    """``--method``, ``--drop-fraction`` and (exclusive with it) ``--threshold``.

    With ``several_methods``, ``--method M [M ...]`` takes a list (default: None).
    ``method_default`` replaces the default named in the help of ``--method`` (for a
    subcommand that picks its default at run time).
    """
    from tod_cleanse.scores import AUTO_METHOD, METHODS

    group = parser.add_argument_group("cleansing")
    if several_methods:
        group.add_argument("--method", metavar="M", nargs="+", choices=METHODS, default=None,
                           help=f"cleansing scores, among {', '.join(METHODS)} "
                                "(default: all but eval_influence)")
    else:
        group.add_argument("--method", metavar="M", choices=(*METHODS, AUTO_METHOD),
                           default=AUTO_METHOD,
                           help=f"cleansing score, one of {', '.join(METHODS)}, or auto "
                                f"(default {method_default or AUTO_METHOD}: the model "
                                "family's own default)")
    rule = group.add_mutually_exclusive_group()
    rule.add_argument("--drop-fraction", metavar="auto|F", type=drop_fraction, default="auto",
                      help="share of rows to drop, or auto (default auto)")
    if threshold:
        rule.add_argument("--threshold", metavar="T", type=float,
                          help="drop every row whose score is below T")


def add_noise(parser: argparse.ArgumentParser, *, default: float | None, help: str) -> None:
    """``--noise F``: the fraction of labels flipped (seeded) before cleansing."""
    parser.add_argument("--noise", metavar="F", type=fraction, default=default, help=help)


def add_out(parser: argparse.ArgumentParser, *, default: str | None, help: str) -> None:
    """``--out PATH``."""
    parser.add_argument("--out", metavar="PATH", default=default, help=help)


def add_threads(parser: argparse.ArgumentParser, *, default: int | None = None) -> None:
    """``--threads N``: torch intra-op CPU threads (see :func:`set_threads`)."""
    parser.add_argument("--threads", metavar="N", type=positive_int, default=default,
                        help=f"torch CPU threads (default {default or 'torch decides'})")


def add_cv(parser: argparse.ArgumentParser, *, default: int = 5) -> None:
    """``--cv K``: folds of the cleanlab cross-validation baseline."""
    parser.add_argument("--cv", metavar="K", type=cv_folds, default=default,
                        help=f"folds of the cleanlab cross-validation baseline (default {default})")


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (nothing when it is None)."""
    if threads:
        import torch

        torch.set_num_threads(int(threads))


# ------------------------------------------------------------------ checks
def check_input_path(path: str | os.PathLike, option: str = "INPUT") -> Path:
    """``path`` exists and can be read; returns it as a :class:`~pathlib.Path`."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"{option} {str(p)!r} does not exist.")
    if not os.access(p, os.R_OK):
        raise CLIError(f"{option} {str(p)!r} is not readable.")
    return p


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` can be written as a file: not a folder, no file among its parents.

    Missing parent folders are fine (they are created); an existing parent must
    be writable.
    """
    p = Path(path)
    if p.is_dir():
        raise CLIError(f"{option} {str(p)!r} is a folder; give a file name.")
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CLIError(f"{option} {str(p)!r}: {str(parent)!r} is a file, not a folder.")
            if not os.access(parent, os.W_OK):
                raise CLIError(f"{option} {str(p)!r}: folder {str(parent)!r} is not writable.")
            break
    return p
