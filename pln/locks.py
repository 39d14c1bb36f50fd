"""Exclusive file locks that die with their process (``flock``).

Used for the GPU slots of :mod:`pln.devices` and for the run-folder lock of
:mod:`pln.engine.run_lock`. The kernel drops a ``flock`` when the process holding it exits, even
after ``kill -9``, so a stale lock file never blocks anyone: only a live holder does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def open_lock(path: str | Path, shared: bool = True) -> int:
    """A read-write file descriptor of the lock file ``path``, created when missing.

    ``shared``: readable and writable by every user of the machine (mode 0666 whatever the
    umask, as the GPU slots need); otherwise created with the user's umask.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    if shared:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # only the owner may; others' files are already 0666
    return fd


def try_lock(path: str | Path, shared: bool = True, wait: bool = False) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None when another process holds it.

    ``shared`` as in :func:`open_lock`; ``wait``: block until the lock is free instead of
    returning None.
    """
    fd = open_lock(path, shared)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def release(fd: int) -> None:
    """Unlock and close a descriptor returned by :func:`try_lock`."""
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def record_holder(fd: int) -> None:
    """Write this process's id into the locked file (read by :func:`holder_pid`)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def holder_pid(path: str | Path) -> int | None:
    """The process id recorded in a lock file, or None (no file, or not written yet)."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_locked(path: str | Path) -> bool:
    """Whether a live process holds the lock on ``path`` (False when the file does not exist).

    Opens the file read-only and never creates it, so it works on a read-only folder.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
