"""SHA-256 digests that let a reader refuse a truncated or edited result file.

A run's result files (``test_metrics.json``, ``predictions.csv``, ``score_maps.npz``) are
written with :func:`atomic_write_digested`: beside each ``FILE`` a sidecar ``FILE.sha256``
holds its digest in the format of ``sha256sum`` (``sha256sum -c FILE.sha256`` checks it by
hand). The sidecar is written before the file is renamed into place, so a kill between the two
leaves either no file (the run is not complete) or a file and its digest. Readers call
:func:`verify_file`.

Checkpoints carry the digest of their tensors inside (:mod:`pln.engine.checkpoint`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from pln.errors import DataError
from pln.utils import atomic_write, atomic_write_text, json_text

SUFFIX = ".sha256"
_CHUNK = 1 << 20


def sidecar(path: str | Path) -> Path:
    """The digest file of ``path``: ``path`` + ``.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def write_digest(path: str | Path, source: str | Path | None = None) -> None:
    """Write ``sidecar(path)`` for the content of ``source`` (default: ``path`` itself)."""
    path = Path(path)
    atomic_write_text(sidecar(path), f"{file_sha256(source or path)}  {path.name}\n")


def atomic_write_digested(path: str | Path, write: Callable[[str], None]) -> None:
    """Like :func:`pln.utils.atomic_write`, also writing the sidecar digest (before the rename)."""

    def _write(tmp: str) -> None:
        write(tmp)
        write_digest(path, tmp)

    atomic_write(path, _write)


def atomic_write_json_digested(path: str | Path, obj: object) -> None:
    """:func:`pln.utils.atomic_write_json` with a sidecar digest."""

    def _write(tmp: str) -> None:
        Path(tmp).write_text(json_text(obj))

    atomic_write_digested(path, _write)


def verify_file(path: str | Path, recover: str) -> None:
    """Raise :class:`DataError` unless ``path`` matches its sidecar digest.

    ``recover`` says how to remake the file (it ends the message).
    """
    path = Path(path)
    side = sidecar(path)
    try:
        recorded = side.read_text().split()[0]
    except (OSError, IndexError):
        raise DataError(f"{path}: no digest {side.name} beside it, so its content cannot be verified "
                        f"-- {recover}") from None
    try:
        actual = file_sha256(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}) -- {recover}") from None
    if actual != recorded:
        raise DataError(f"{path}: content does not match its digest {side.name} (truncated or edited) "
                        f"-- {recover}")
