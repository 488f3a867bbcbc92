"""Exclusive claim of an output folder, so that two runs never write the same ``--out``.

The claim is a file ``.OUT.tod-cleanse-claim`` beside the output folder ``OUT``,
created with ``O_CREAT | O_EXCL`` at the start of a run and holding the run's pid,
host, start time, command line and a random token. A second run that finds it
fails at once, naming the holder. A claim whose process is gone (same host, pid
dead or reused) is *stale*: it is reported, not taken over, unless the caller asks
(``clear_stale=True``, ``--clear-stale-claim``); before reporting it, an
interrupted commit of that run is recovered (:func:`.commit.recover_commit`).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import secrets
import shlex
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import fail

logger = logging.getLogger(__name__)

__all__ = ["ClaimHolder", "OutputClaim", "sibling", "CLAIM_TAG", "TMP_TAG", "OLD_TAG",
           "JOURNAL_TAG"]

CLAIM_TAG = ".tod-cleanse-claim"
TMP_TAG = ".tod-cleanse-tmp-"
OLD_TAG = ".tod-cleanse-old-"
JOURNAL_TAG = ".tod-cleanse-commit"


def sibling(out: Path, tag: str, token: str = "") -> Path:
    """The hidden path ``.<out name><tag><token>`` beside ``out``."""
    return out.parent / f".{out.name}{tag}{token}"


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to detect pid reuse."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


@dataclass(frozen=True)
class ClaimHolder:
    """Who holds a claim: pid, host, start time (UTC, ISO 8601), command line, token."""

    pid: int
    host: str
    started: str
    argv: tuple[str, ...]
    token: str
    pid_start: str | None = None

    @classmethod
    def current(cls, argv: Sequence[str]) -> ClaimHolder:
        """The holder record of this process."""
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), now, tuple(str(a) for a in argv),
                   secrets.token_hex(6), _process_start(os.getpid()))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        d = asdict(self)
        d["argv"] = list(self.argv)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClaimHolder:
        """Inverse of :meth:`as_dict`."""
        return cls(int(d["pid"]), str(d["host"]), str(d["started"]),
                   tuple(str(a) for a in d.get("argv", ())), str(d["token"]),
                   d.get("pid_start"))

    def describe(self) -> str:
        """``pid P on host H since T (command line)``."""
        return (f"pid {self.pid} on host {self.host} since {self.started} "
                f"({shlex.join(self.argv) or 'no command line'})")

    def alive(self) -> bool | None:
        """Whether the holder still runs: ``None`` when it is on another host."""
        if self.host != socket.gethostname():
            return None
        if not _pid_alive(self.pid):
            return False
        start = _process_start(self.pid)
        return self.pid_start is None or start is None or start == self.pid_start


def _read_holder(path: Path) -> ClaimHolder | None:
    try:
        return ClaimHolder.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _create_exclusive(path: Path, payload: dict[str, Any]) -> bool:
    """Create ``path`` holding ``payload`` as JSON, only if it does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing ancestors; return the ones created, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            fail(f"output folder {d}: cannot create it ({exc})")
    return missing


class OutputClaim:
    """This run's claim on an output folder; see the module docstring.

    Use :meth:`acquire`; :attr:`staging` is the run's private folder beside ``out``.
    """

    def __init__(self, out: Path, holder: ClaimHolder, created_dirs: list[Path]) -> None:
        self.out = out
        self.holder = holder
        self.created_dirs = created_dirs
        self.path = sibling(out, CLAIM_TAG)
        self.staging = sibling(out, TMP_TAG, holder.token)

    @classmethod
    def acquire(cls, out: Path, argv: Sequence[str], clear_stale: bool = False) -> OutputClaim:
        """Claim ``out`` or fail at once naming the run that holds it."""
        from .commit import recover_commit

        created = _make_parents(out.parent)
        me = ClaimHolder.current(argv)
        path = sibling(out, CLAIM_TAG)
        try:
            for attempt in range(20):
                if _create_exclusive(path, me.as_dict()):
                    break
                try:
                    other = _read_holder(path)
                except FileNotFoundError:
                    continue                      # released meanwhile: try again
                if other is None:                 # being written, or damaged
                    if attempt < 5:
                        time.sleep(0.1)
                        continue
                    fail(f"output {out} is claimed: {path} exists but cannot be read; if no "
                         f"tod-cleanse clean is writing to {out}, delete {path}")
                cls._refuse_or_clear(out, path, other, clear_stale)
            else:  # pragma: no cover - endless contention
                fail(f"output {out}: could not claim it ({path} keeps changing)")
        except BaseException:
            _remove_dirs(created)
            raise
        claim = cls(out, me, created)
        try:  # a half-done commit of an earlier run is undone before anything else
            recovered = recover_commit(out)
        except BaseException:
            claim.release()
            _remove_dirs(created)
            raise
        if recovered:
            logger.warning("output %s: %s", out, recovered)
        claim._warn_orphans()
        return claim

    @staticmethod
    def _refuse_or_clear(out: Path, path: Path, other: ClaimHolder, clear_stale: bool) -> None:
        """Fail for a live or foreign holder; for a dead one, undo its half-done commit,
        then fail (``clear_stale=False``) or remove its claim and staging folder."""
        from .commit import recover_commit

        alive = other.alive()
        if alive:
            fail(f"output {out} is in use: claimed by {other.describe()}; wait for that run "
                 "to finish or choose another --out")
        if alive is None:
            fail(f"output {out} is claimed by a run on another host: {other.describe()}; if "
                 f"that run is gone, delete {path}")
        note = recover_commit(out)
        if not clear_stale:
            fail(f"output {out}: stale claim by {other.describe()}, which is no longer "
                 f"running (it was interrupted){'; ' + note if note else ''}. If no other run "
                 f"writes to {out}, rerun with --clear-stale-claim (clear_stale_claim=True) "
                 f"or delete {path}")
        moved = path.with_name(f"{path.name}.stale-{secrets.token_hex(4)}")
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            return
        if _read_holder(moved) != other:          # another run took it over first
            try:
                os.link(moved, path)
            except FileExistsError:
                pass
            moved.unlink()
            return
        moved.unlink()
        staging = sibling(out, TMP_TAG, other.token)
        removed = staging.exists()
        if removed:  # created by the interrupted run, named by its claim
            shutil.rmtree(staging, ignore_errors=True)
        logger.warning("output %s: cleared the stale claim of %s%s", out, other.describe(),
                       f" and removed its staging folder {staging}" if removed else "")

    def _warn_orphans(self) -> None:
        for leftover in sorted(self.out.parent.glob(f".{self.out.name}{TMP_TAG}*")):
            if leftover != self.staging:
                logger.warning("%s was left by an interrupted run that no claim names; "
                               "delete it if you do not need it", leftover)

    def check_held(self) -> None:
        """Fail unless the claim file is still this run's."""
        try:
            current = _read_holder(self.path)
        except FileNotFoundError:
            current = None
        if current != self.holder:
            who = current.describe() if current else "nobody (the claim file is gone)"
            fail(f"output {self.out}: this run lost its claim ({self.path} now names {who}); "
                 f"nothing was published, the verified output is in {self.staging}")

    def release(self) -> None:
        """Delete the claim file if it is still this run's."""
        try:
            if _read_holder(self.path) == self.holder:
                self.path.unlink()
        except FileNotFoundError:
            pass

    def abandon(self, keep_staging: bool = False) -> None:
        """After a failure: undo a half-done commit, remove what this run created
        (staging, parent folders) and release the claim."""
        from .commit import recover_commit

        note = recover_commit(self.out)
        if note:
            logger.warning("output %s: %s", self.out, note)
        if not keep_staging and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
        self.release()
        _remove_dirs(self.created_dirs)


def _remove_dirs(created: list[Path]) -> None:
    """Remove folders this run created, deepest first, if they are (still) empty."""
    for d in created:
        try:
            d.rmdir()
        except OSError:
            break
