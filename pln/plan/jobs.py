"""What the workflow's jobs call besides the report: the ``pln`` command of the shell rules, the
writing of a run config (rule ``run_config``) and the setting marker (rule ``setting_mark``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from pln.config import config_from_dict


def pln_command(configured: str | None) -> str:
    """The ``pln`` command as a shell fragment: the configured one (as written, it may hold
    arguments), else the one beside this Python (quoted: its path may hold spaces), else ``pln``."""
    if configured:
        return configured
    beside = Path(sys.executable).with_name("pln")
    return shlex.quote(str(beside)) if beside.exists() else "pln"


def write_run_config(values: dict[str, Any], path: str | Path, log: str | Path | None = None) -> None:
    """Validate one experiment config and write it as YAML (atomically); note it in ``log``."""
    import yaml

    from pln.utils import atomic_write_text

    config_from_dict(values, str(path))
    atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
    if log is not None:
        atomic_write_text(log, f"wrote {path}\n")


def setting_mark_path(tables_dir: str) -> str:
    """The marker of the setting that built the shared tables and figures (``results/.setting``)."""
    return os.path.join(os.path.dirname(tables_dir) or ".", ".setting")


def write_setting_mark(path: str | Path, setting: str, log: str | Path | None = None) -> None:
    """Write the marker (the job of rule ``setting_mark``; never while the workflow is parsed)."""
    from pln.utils import atomic_write_text

    atomic_write_text(path, f"{setting}\n")
    if log is not None:
        atomic_write_text(log, f"wrote {path}\n")
