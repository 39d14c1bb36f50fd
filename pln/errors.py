"""User-facing errors.

Every error a user can cause (a bad config, a missing file, a corrupt checkpoint) is raised as a
subclass of :class:`PLNError` with a one-line message that names the file, key or row and says
what to do. The CLI prints ``error: <message>`` and exits with status 2; it never prints a
traceback for these.
An error that is not a :class:`PLNError` (a bug, or a fault no check foresaw) is still printed
as one line by :func:`error_line`; ``pln --debug`` (or ``PLN_DEBUG=1``) shows its traceback.
"""

from __future__ import annotations

import errno


class PLNError(Exception):
    """Base class of every user-facing error."""


class ConfigError(PLNError):
    """A config file or value is invalid."""


class DataError(PLNError):
    """An annotation, feature or word-vector file is missing, malformed or inconsistent."""


class CheckpointError(PLNError):
    """A checkpoint is unreadable or was made with another model configuration."""


class TrainingError(PLNError):
    """Training cannot go on (for example a NaN or Inf loss)."""


class OutputError(PLNError):
    """An output file or folder cannot be written (read-only, no permission, disk full)."""


def os_error_reason(exc: OSError) -> tuple[str, str]:
    """(what went wrong, what to do) for a failed file operation; says whether the disk is full
    or the folder is not writable."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "cannot write: the disk is full (or the quota is spent)", "free space there or choose another folder"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "cannot write: the folder is not writable", "fix its permissions or choose another folder"
    return exc.strerror or type(exc).__name__, "check the path and the disk"


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints after ``error: `` for any exception."""
    if isinstance(exc, PLNError):
        return str(exc)
    if isinstance(exc, OSError):
        what, todo = os_error_reason(exc)
        return f"{exc.filename or 'a file'}: {what} -- {todo}"
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return (f"unexpected {type(exc).__name__}: {first} -- rerun with --debug for the traceback "
            "and report it")
