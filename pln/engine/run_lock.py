"""The run-folder lock: one writer per run folder at a time.

``pln train`` and ``pln baseline-prior`` hold an exclusive ``flock`` on ``RUN/.lock`` (see
:mod:`pln.locks`) from before they look at the folder until they return, so two processes given
the same ``--out`` (a requeued cluster job whose first copy still runs, a workflow started
twice) never interleave their files. The lock file records the holder's process id for the
message. The kernel drops the lock when the holder dies, so a killed run never blocks its rerun.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from pln.errors import PLNError
from pln.locks import holder_pid, is_locked, record_holder, release, try_lock
from pln.utils import writable_dir

log = logging.getLogger("pln.train")

LOCK_NAME = ".lock"


class RunLockedError(PLNError):
    """Another process is writing the run folder."""


def lock_path(root: str | Path) -> Path:
    """The lock file of a run folder."""
    return Path(root) / LOCK_NAME


def _holder(path: Path) -> str:
    pid = holder_pid(path)
    return f"process {pid}" if pid is not None else "another process"


@contextlib.contextmanager
def hold_run_lock(root: str | Path, wait: bool = False) -> Iterator[None]:
    """Hold the exclusive lock of run folder ``root`` (created if missing) for the ``with`` block.

    When another process holds it: raise :class:`RunLockedError` naming the folder and the
    holder's pid, or with ``wait`` block until the holder is done.
    """
    root = Path(root)
    writable_dir(root, "the run folder")
    path = lock_path(root)
    fd = try_lock(path, shared=False)
    if fd is None:
        holder = _holder(path)
        if not wait:
            raise RunLockedError(
                f"{root}: {holder} is writing this run folder (lock {path}); "
                "wait for it to end, pass --wait to queue behind it, or give another --out")
        log.warning("%s: %s is writing this run folder; waiting for it to end", root, holder)
        fd = try_lock(path, shared=False, wait=True)
        assert fd is not None
    try:
        record_holder(fd)
        yield
    finally:
        release(fd)


def refuse_if_training(root: str | Path) -> None:
    """Raise :class:`RunLockedError` when a process is writing run folder ``root`` (read-only check)."""
    path = lock_path(root)
    if is_locked(path):
        raise RunLockedError(
            f"{root}: is being written by {_holder(path)} (`pln train` in progress); "
            "evaluate it when that process has ended")
