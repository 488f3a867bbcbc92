"""Errors of the Parquet cleaner: bad input or output, and a failed partition proof."""

from __future__ import annotations

from typing import NoReturn

__all__ = ["CleanParquetError", "OutputChangedError", "PartitionCheckError", "fail"]


class CleanParquetError(ValueError):
    """Bad input or output for :func:`clean_parquet`; the message is one line.

    The command line turns it into ``tod-cleanse clean: error: <message>`` and
    exit status 2.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class PartitionCheckError(RuntimeError):
    """The written ``kept`` and ``dropped`` files do not partition the input."""


def fail(message: str) -> NoReturn:
    """Raise :class:`CleanParquetError` with ``message`` (whitespace folded to one line)."""
    raise CleanParquetError(message)


class OutputChangedError(CleanParquetError):
    """At commit, ``--out`` is no longer what the run found at its start.

    Nothing there is touched; the run's verified output stays in its staging folder,
    which the message names.
    """
