"""Checkpoints: atomic save, safe load (``weights_only=True``), configuration checks.

A checkpoint is a plain dict of tensors and builtins:
``{"format": 1, "config": ExperimentConfig as dict, "epoch": int, "model": state_dict,
"optimizer": state_dict | None, "scheduler": state_dict | None, "history": list[dict],
"best": dict | None, "average": dict | None}``. ``epoch`` counts finished epochs (1 after the
first); ``scheduler`` is the plateau schedule's state in ``last.pt`` when ``train.lr_plateau`` is
set; ``average`` the weight average's (``train.ema_epochs``) in ``last.pt``, whose ``best.pt``
then holds the averaged weights as ``model``. The saved dict
also holds ``"sha256"``, the digest of everything else (:func:`state_digest`), checked on every
load: a damaged file is refused instead of being evaluated.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from pln.config import complete_model_dict, result_neutral_keys
from pln.errors import CheckpointError, ConfigError
from pln.utils import atomic_write

FORMAT = 1
DIGEST_KEY = "sha256"


def _feed(h: "hashlib._Hash", value: Any) -> None:
    """Add ``value`` (nested dicts / lists of tensors and JSON-like builtins) to the hash ``h``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"tensor {t.dtype} {tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(value, dict):
        h.update(f"dict {len(value)};".encode())
        for key in sorted(value, key=repr):
            h.update(f"{key!r}:".encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(h, item)
    else:  # None, bool, int, float, str: repr is exact (floats round-trip)
        h.update(f"{type(value).__name__} {value!r};".encode())


def state_digest(state: dict[str, Any]) -> str:
    """Hex SHA-256 of a checkpoint dict (tensor bytes, dtypes, shapes, keys and builtins), without
    its own ``sha256`` entry."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in state.items() if k != DIGEST_KEY})
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (with its format and digest) to ``path`` atomically (temp file, then rename)."""
    full = {"format": FORMAT, **state}
    full[DIGEST_KEY] = state_digest(full)
    atomic_write(path, lambda tmp: torch.save(full, tmp))


def _recovery(path: Path) -> str:
    """How to recover from a damaged checkpoint of a run folder (or elsewhere)."""
    from pln.engine.run_dir import RunDir  # imported here: run_dir imports this module

    if path.name == RunDir.BEST:
        return (f"evaluate {path.with_name(RunDir.LAST)} instead (--checkpoint last), or delete both "
                "checkpoints and retrain")
    if path.name == RunDir.LAST:
        return "delete it and rerun the same `pln train` command (training restarts from epoch 1)"
    return "use another checkpoint, or retrain"


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and verify its digest; refuse unreadable,
    foreign or damaged files clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found -- check the path, or train the run first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        # torch's message suggests weights_only=False, which would run code from the file: never say it
        reason = "not a readable checkpoint file" if "weights_only" in str(exc) or "Unpickl" in str(exc) \
            else ((str(exc).strip().splitlines() or [type(exc).__name__])[0][:160])
        raise CheckpointError(f"{path}: unreadable checkpoint ({reason}) -- {_recovery(path)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "model" not in state:
        raise CheckpointError(f"{path}: not a PLN-Bench checkpoint (no 'format'/'model' entries) -- "
                              "pass a checkpoint written by `pln train`")
    recorded = state.pop(DIGEST_KEY, None)
    if recorded is None:
        raise CheckpointError(f"{path}: checkpoint has no digest, so its tensors cannot be verified -- "
                              f"{_recovery(path)}")
    if state_digest(state) != recorded:
        raise CheckpointError(f"{path}: checkpoint content does not match its digest (the file is damaged) "
                              f"-- {_recovery(path)}")
    return state


def config_differences(expected: Any, found: Any, prefix: str = "",
                       names: tuple[str, str] = ("config", "checkpoint")) -> list[str]:
    """List ``key: <names[0]> has A, <names[1]> has B`` for every leaf where two nested dicts
    differ (``key: missing in`` / ``unknown key in <names[1]>`` for a key on one side only)."""
    if isinstance(expected, dict) and isinstance(found, dict):
        out: list[str] = []
        for key in sorted(set(expected) | set(found), key=str):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in found:
                out.append(f"{sub}: missing in {names[1]}")
            elif key not in expected:
                out.append(f"{sub}: unknown key in {names[1]}")
            else:
                out.extend(config_differences(expected[key], found[key], sub, names))
        return out
    if isinstance(expected, (list, tuple)) and isinstance(found, (list, tuple)):
        expected, found = list(expected), list(found)
    return [] if expected == found else [f"{prefix}: {names[0]} has {expected!r}, {names[1]} has {found!r}"]


def check_model_config(path: str | Path, state: dict[str, Any], model_cfg: dict[str, Any]) -> None:
    """Refuse a checkpoint made with another model configuration, naming the mismatch."""
    found = state.get("config", {}).get("model")
    if found is None:
        raise CheckpointError(f"{path}: checkpoint has no model configuration")
    try:  # a checkpoint written before later model keys existed holds their (earlier) defaults
        found = complete_model_dict(found)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: made with another model configuration ({exc})") from None
    neutral = result_neutral_keys("model")  # how the ConvNet computes, not its parameters or results
    diffs = config_differences({k: v for k, v in model_cfg.items() if k not in neutral},
                               {k: v for k, v in found.items() if k not in neutral}, "model")
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise CheckpointError(f"{path}: made with another model configuration ({shown})")
