"""A documented test hook: pause the cleaner at a named point so that a test can kill it.

Tests of crash safety set ``TOD_CLEANSE_TEST_PAUSE_AT=<point>=<marker file>``; when the
run reaches ``<point>`` it writes its pid to the marker file and sleeps, and the test
sends it ``SIGKILL`` (a real ``kill -9`` at a known place). Points: the stage names
``read``, ``train``, ``score``, ``write``, ``verify``, ``commit``, plus ``write:file``
(after the first output file is closed) and ``commit:swap`` (between the two renames
of an ``--overwrite`` commit). Nothing else reads the variable; unset, the hook does
nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["PAUSE_ENV", "checkpoint"]

PAUSE_ENV = "TOD_CLEANSE_TEST_PAUSE_AT"
_PAUSE_S = 60.0


def checkpoint(point: str) -> None:
    """Pause here if the test hook asks for ``point`` (see the module docstring)."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    at, _, marker = spec.partition("=")
    if at != point or not marker:
        return
    Path(marker).write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(_PAUSE_S)
    raise RuntimeError(f"{PAUSE_ENV}: paused at {point!r} for {_PAUSE_S:.0f} s and was not killed")
