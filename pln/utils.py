"""Small shared helpers: atomic file writes, output folders and seeding."""

from __future__ import annotations

import errno
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from pln.errors import OutputError, os_error_reason


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def output_error(path: str | Path, exc: OSError) -> OutputError:
    """A one-line :class:`OutputError` for a failed write of ``path``."""
    what, todo = os_error_reason(exc)
    return OutputError(f"{path}: {what} -- {todo}")


def writable_dir(path: str | Path, what: str = "the output folder") -> Path:
    """Create folder ``path`` (and parents) if missing and check that files can be made in it."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: {what} is not writable -- fix its permissions or choose another folder")
    return path


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` for a temp file beside ``path``, then rename it onto ``path``.

    A reader never sees a half-written file: either the old content or the new one. The file
    gets the user's umask (0666 less the umask), like any file the user creates. A failure of
    the disk (full, read-only, no permission) is an :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
            raise output_error(path, exc) from None
        if isinstance(exc, RuntimeError) and _disk_full(path.parent):  # torch.save's own error type
            raise output_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
        raise


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS}


def _disk_full(folder: Path) -> bool:
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""

    def _write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)

    atomic_write(path, _write)


def json_text(obj: Any) -> str:
    """The JSON text of every JSON output: indented, keys sorted, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json_text(obj))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
