"""The run settings of one workflow setting, as one YAML file (an item of the Snakemake report).

``results/settings.yaml`` (beside the summary page) holds the setting's name, file and
description, one line per model (size, budget, seeds: :meth:`Plan.model_note`) and every
resolved experiment config the workflow writes, by config name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pln.plan.plan import Plan


def settings_path(plan: Plan) -> str:
    """``<folder of the summary page>/settings.yaml``."""
    return (Path(plan.summary).parent / "settings.yaml").as_posix()


def settings_spec(plan: Plan) -> dict[str, Any]:
    """Everything the settings file shows, as plain data (the rule's params)."""
    return {**plan.meta(), "models": [plan.model_note(m) for m in plan.models],
            "run_configs": plan.run_configs}


def write_settings(spec: dict[str, Any], path: str | Path, log: str | Path | None = None) -> None:
    """Write the settings file (atomically); note it in ``log``."""
    import yaml

    from pln.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(spec, sort_keys=False, width=110))
    if log is not None:
        atomic_write_text(log, f"wrote {path}\n")
