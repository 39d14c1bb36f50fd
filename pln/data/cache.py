"""On-disk cache helpers: content keys and atomic directory writes.

A cache entry is a folder ``<cache_dir>/<kind>-<key>`` whose key is a hash of everything the
content depends on (source file paths with their sizes and modification times, the number of
units, the tokenisation flag, ...). An entry is written into a temporary folder and renamed into
place, so a reader never sees half an entry; when two processes race, the first rename wins and
the loser uses the winner's entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from pln.utils import current_umask


def file_signature(path: str | Path) -> dict[str, Any]:
    """``{"path", "size", "mtime_ns"}`` of a file: changes whenever the file is replaced."""
    path = Path(path).resolve()
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable mapping."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cached_dir(root: str | Path, name: str, build: Callable[[Path], None]) -> Path:
    """Return ``root/name``, first calling ``build(tmp_dir)`` to fill it if it does not exist.

    ``build`` writes into an empty temporary folder beside the target, which is then renamed
    onto the target. If another process created the target meanwhile, its entry is kept.
    """
    root = Path(root)
    target = root / name
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=root))
    try:
        tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; a cache follows the user's umask
        build(tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
