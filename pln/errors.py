"""User-facing errors.

Every error a user can cause (a bad config, a missing file, a corrupt checkpoint) is raised as a
subclass of :class:`PLNError` with a one-line message that names the file, key or row and says
what to do. The CLI prints ``error: <message>`` and exits with status 2; it never prints a
traceback for these.
"""

from __future__ import annotations


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
