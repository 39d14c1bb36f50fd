"""The workflow config as Snakemake reads it: ``config.yaml`` and its overlays (``snakemake
--configfile FILE``), merged key by key (mappings merge, lists are replaced), each overlay checked
so that a misspelt name is an error instead of a silently ignored block.

An overlay may change any value of the base config, but under ``datasets``, ``models``,
``tables`` and ``figures`` it may only name entries the base config defines: renaming
``charades-vgg:`` to ``charades-vg:`` in a copy of ``config/smoke.yaml`` would otherwise add an
unused entry and drop the intended overrides without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pln.config import merge
from pln.errors import ConfigError

NAMED_SECTIONS = ("datasets", "models", "tables", "figures")


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (empty file: ``{}``); one-line errors otherwise."""
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror}) -- check the path") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}) -- fix the file") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: the top level must be a mapping -- see config/smoke.yaml for the layout")
    return values


def check_overlay(base: dict[str, Any], overlay: dict[str, Any], source: str | Path,
                  base_name: str = "config.yaml") -> None:
    """Refuse an overlay entry under a named section that the base config does not define."""
    for section in NAMED_SECTIONS:
        entries = overlay.get(section)
        if not isinstance(entries, dict):
            continue
        known = base.get(section) or {}
        for key in entries:
            if key not in known:
                raise ConfigError(
                    f"{source}: {section}.{key}: no such entry in {base_name} (known: "
                    f"{', '.join(map(str, known)) or 'none'}) -- fix the spelling")


def load_snakemake_config(overlays: list[str | Path], base: str | Path = "config.yaml") -> dict[str, Any]:
    """``base`` (``config.yaml``) with each overlay checked (:func:`check_overlay`) and merged in
    order, the way Snakemake merges them."""
    config = read_yaml_mapping(base)
    for path in overlays:
        overlay = read_yaml_mapping(path)
        check_overlay(config, overlay, path, Path(base).name)
        config = merge(config, overlay)
    return config
