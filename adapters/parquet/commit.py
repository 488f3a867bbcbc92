"""The output side: where a run may write, and how it publishes atomically.

A run writes everything into its staging folder beside ``--out`` (see
:mod:`.claim`) and publishes with a rename after the partition check:

* ``--out`` absent at the start: ``rename(staging, out)`` without replacing anything
  (``renameat2(RENAME_NOREPLACE)`` where the platform has it); a folder that appeared
  at ``--out`` meanwhile is left alone and the run fails.
* ``--out`` an empty folder: ``rename`` over it, which the kernel refuses if it is no
  longer empty.
* ``--out`` a previous output with ``overwrite``: a commit journal
  (``.OUT.tod-cleanse-commit``) is written and synced first, then ``out -> old`` and
  ``staging -> out`` are renamed and ``old`` is removed. A run killed in between
  leaves the journal, and the next run on ``--out`` puts the previous output back
  (:func:`recover_commit`): there is always either the previous or the new output.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .claim import JOURNAL_TAG, OLD_TAG, OutputClaim, sibling
from .errors import OutputChangedError, fail
from .faults import checkpoint

logger = logging.getLogger(__name__)

__all__ = ["OutputState", "check_output", "observe", "commit", "recover_commit",
           "is_our_output", "open_writer", "write_batch"]

TOOL = "tod-cleanse clean"


@dataclass(frozen=True)
class OutputState:
    """What ``--out`` was: ``"absent"``, ``"empty"`` folder or ``"previous"`` output.

    ``identity`` (device, inode of the folder, mtime of its summary.json) tells a
    previous output from one that replaced it.
    """

    kind: str
    identity: tuple[int, int, int] | None = None


def is_our_output(folder: Path) -> bool:
    """Whether ``folder`` holds a ``summary.json`` written by ``tod-cleanse clean``."""
    try:
        with open(folder / "summary.json", encoding="utf-8") as fh:
            return json.load(fh).get("tool") == TOOL
    except (OSError, ValueError, AttributeError):
        return False


def observe(out: Path) -> OutputState:
    """The current :class:`OutputState` of ``out`` (``"other"`` for anything else)."""
    try:
        st = out.stat()
    except (FileNotFoundError, NotADirectoryError):
        return OutputState("absent")
    if not out.is_dir():
        return OutputState("other")
    if not any(out.iterdir()):
        return OutputState("empty")
    if is_our_output(out):
        mtime = (out / "summary.json").stat().st_mtime_ns
        return OutputState("previous", (st.st_dev, st.st_ino, mtime))
    return OutputState("other")


def check_output(out: Path, input_path: Path, overwrite: bool) -> tuple[Path, OutputState]:
    """Refuse an output that holds the input, lies inside it, or is not ours to replace."""
    out_real = Path(os.path.realpath(out))
    inp_real = Path(os.path.realpath(input_path))
    if out_real == inp_real or inp_real.is_relative_to(out_real):
        fail(f"--out {out} holds the input {input_path}; choose another --out")
    if inp_real.is_dir() and out_real.is_relative_to(inp_real):
        fail(f"--out {out} lies inside the input folder {input_path}; choose another --out")
    state = observe(out_real)
    if out_real.exists() and not out_real.is_dir():
        fail(f"--out {out} exists and is not a folder")
    if state.kind in ("previous", "other") and not overwrite:
        fail(f"--out: output folder {out} is not empty; pass --overwrite to replace a previous "
             "tod-cleanse output, or choose another --out")
    if state.kind == "other":
        fail(f"--out: refusing to overwrite {out}: it is not a tod-cleanse output folder "
             "(no summary.json written by tod-cleanse)")
    ancestor = out_real.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        fail(f"--out {out}: cannot write in {ancestor} (permission denied)")
    return out_real, state


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _renameat2_noreplace(src: Path, dst: Path) -> bool | None:
    """``renameat2(RENAME_NOREPLACE)``: True done, None unsupported; raises FileExistsError."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    at_fdcwd, noreplace = -100, 1
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), noreplace) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        raise FileExistsError(errno.EEXIST, os.strerror(err), str(dst))
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return None
    raise OSError(err, os.strerror(err), str(src))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; ``FileExistsError`` if ``dst`` exists (never replaced)."""
    if _renameat2_noreplace(src, dst) is None:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "exists", str(dst))
        os.rename(src, dst)


def _changed(claim: OutputClaim, what: str) -> OutputChangedError:
    return OutputChangedError(
        f"--out {claim.out} {what} during the run; it was left untouched and nothing was "
        f"published. This run's verified output is in {claim.staging}: move it yourself or "
        "rerun")


def commit(claim: OutputClaim, state: OutputState) -> None:
    """Publish ``claim.staging`` as ``claim.out`` if ``out`` is still as it was found.

    Raises
    ------
    OutputChangedError
        ``out`` changed during the run (it is left untouched).
    CleanParquetError
        The claim is no longer this run's.
    """
    claim.check_held()
    staging, out = claim.staging, claim.out
    now = observe(out)
    try:
        if state.kind == "previous":
            if now != state:
                raise _changed(claim, "changed (it is no longer the output found at the start)")
            _swap(claim)
        elif now.kind == "absent":
            rename_noreplace(staging, out)
        elif now.kind == "empty" and state.kind == "empty":
            os.rename(staging, out)            # the kernel refuses a non-empty target
        else:
            raise _changed(claim, "appeared" if state.kind == "absent" else "was filled")
    except (FileExistsError, IsADirectoryError, NotADirectoryError) as exc:
        raise _changed(claim, "appeared") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise _changed(claim, "was filled") from exc
        raise
    _fsync_dir(out.parent)


def _swap(claim: OutputClaim) -> None:
    """Replace a previous output under a commit journal (see the module docstring)."""
    out, staging = claim.out, claim.staging
    old = sibling(out, OLD_TAG, claim.holder.token)
    journal = sibling(out, JOURNAL_TAG)
    record = {"out": out.name, "staging": staging.name, "previous": old.name,
              "holder": claim.holder.as_dict()}
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(out.parent)
    os.rename(out, old)
    checkpoint("commit:swap")
    rename_noreplace(staging, out)
    _fsync_dir(out.parent)
    shutil.rmtree(old, ignore_errors=True)
    journal.unlink()


def recover_commit(out: Path) -> str | None:
    """Finish or undo a commit that a killed run left half done; say what was done.

    Returns ``None`` when there is no commit journal beside ``out``.
    """
    journal = sibling(out, JOURNAL_TAG)
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
        staging, old = out.parent / record["staging"], out.parent / record["previous"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"--out {out}: cannot read the commit journal {journal} ({exc}); inspect it and "
             "the hidden .tod-cleanse- folders beside it, then delete it")
    if os.path.lexists(out) and not staging.exists():
        note = "completed the interrupted overwrite (the new output is in place)"
    elif not os.path.lexists(out) and old.exists():
        os.rename(old, out)
        note = "restored the previous output, which an interrupted overwrite had moved aside"
    elif os.path.lexists(out):
        note = "undid an overwrite interrupted before it moved anything"
    else:
        note = (f"found an interrupted overwrite with no previous output; its new output "
                f"is left in {staging}")
        journal.unlink(missing_ok=True)
        return note
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
    _fsync_dir(out.parent)
    journal.unlink(missing_ok=True)
    return note


def open_writer(path: Path, schema: pa.Schema, codec: str) -> pq.ParquetWriter:
    """A Parquet writer at ``path`` (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(str(path), schema, compression=codec)


def write_batch(writer: pq.ParquetWriter, batch: pa.RecordBatch) -> None:
    """Write one record batch (the one place rows reach the disk; tests wrap it)."""
    writer.write_batch(batch)
