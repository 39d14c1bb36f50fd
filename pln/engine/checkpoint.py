"""Checkpoints: atomic save, safe load (``weights_only=True``), configuration checks.

A checkpoint is a plain dict of tensors and builtins:
``{"format": 1, "config": ExperimentConfig as dict, "epoch": int, "model": state_dict,
"optimizer": state_dict | None, "scheduler": state_dict | None, "history": list[dict],
"best": dict | None}``. ``epoch`` counts finished epochs (1 after the first); ``scheduler`` is
the plateau schedule's state in ``last.pt`` when ``train.lr_plateau`` is set (older checkpoints
have no such entry, and no schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pln.config import complete_model_dict
from pln.errors import CheckpointError, ConfigError
from pln.utils import atomic_write

FORMAT = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file, then rename)."""
    atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse unreadable files clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint ({first[:200]}); delete it and retrain") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path}: not a PLN-Bench checkpoint (no 'format'/'model' entries)")
    return state


def config_differences(expected: Any, found: Any, prefix: str = "") -> list[str]:
    """List ``key: expected != found`` for every leaf where two nested dicts differ."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(found), key=str):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in found:
                out.append(f"{sub}: missing in checkpoint")
            elif key not in expected:
                out.append(f"{sub}: unknown key in checkpoint")
            else:
                out.extend(config_differences(expected[key], found[key], sub))
        return out
    if isinstance(expected, (list, tuple)) and isinstance(found, (list, tuple)):
        expected, found = list(expected), list(found)
    return [] if expected == found else [f"{prefix}: config has {expected!r}, checkpoint has {found!r}"]


def check_model_config(path: str | Path, state: dict[str, Any], model_cfg: dict[str, Any]) -> None:
    """Refuse a checkpoint made with another model configuration, naming the mismatch."""
    found = state.get("config", {}).get("model")
    if found is None:
        raise CheckpointError(f"{path}: checkpoint has no model configuration")
    try:  # a checkpoint written before later model keys existed holds their (earlier) defaults
        found = complete_model_dict(found)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: made with another model configuration ({exc})") from None
    # keys that change the speed of the computation, not its parameters or results
    speed_only = ("conv_banded", "conv_block", "conv_channels_last")
    diffs = config_differences({k: v for k, v in model_cfg.items() if k not in speed_only},
                               {k: v for k, v in found.items() if k not in speed_only}, "model")
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise CheckpointError(f"{path}: made with another model configuration ({shown})")
