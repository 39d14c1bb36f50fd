"""What the workflow's jobs call besides the report: the ``pln`` command of the shell rules, the
text of a run config (rule ``run_config``) and the path of the setting marker (rule ``setting_mark``)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from pln.config import ModelConfig, config_from_dict


def pln_command(configured: str | None) -> str:
    """The ``pln`` command as a shell fragment: the configured one (as written, it may hold
    arguments), else the one beside this Python (quoted: its path may hold spaces), else ``pln``."""
    if configured:
        return configured
    beside = Path(sys.executable).with_name("pln")
    return shlex.quote(str(beside)) if beside.exists() else "pln"


def run_config_text(values: dict[str, Any], path: str | Path) -> str:
    """One experiment config, validated (errors name ``path``), as the YAML text its file holds.

    The rule ``run_config`` writes it with a shell command: a ``run:`` job would start a second
    Snakemake process that parses the whole workflow again, for each of the plan's run configs."""
    import yaml

    config_from_dict(values, str(path))
    return yaml.safe_dump(values, sort_keys=False)


def setting_mark_path(tables_dir: str) -> str:
    """The marker of the setting that built the shared tables and figures (``results/.setting``)."""
    return os.path.join(os.path.dirname(tables_dir) or ".", ".setting")


def epoch_cost(model: ModelConfig) -> int:
    """A rough cost of one training epoch of a run's model, to start the longest runs first: the
    map cells of its stages times its ConvNet's layers and kernel area."""
    return sum(n * n for n in model.clips) * model.conv_layers * model.conv_kernel ** 2
