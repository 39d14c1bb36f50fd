"""The unit features of a split, as the model sees them: resident on its device or streamed.

A video is shared by many queries (TACoS: ~130 per training video), and its unit features are
large (``[M, D]`` = 256 x 4096 float32 = 4 MB). Copying them per query through the data loader
and then host -> device per batch makes the loader, not the model, the bottleneck. A
:class:`UnitFeed` instead copies the split's unit table ``[V, M, D]`` to the device once and
gathers ``table[video]`` per batch there; batches then carry only the ``video [B]`` row indices.
When the table does not fit (``data.units_on_device``, ``data.units_device_max_gib``), the feed
falls back to streaming: the dataset's items carry their units and the feed moves each batch's
``units [B, M, D]`` to the device. Both paths give the same float32 numbers.

The decision (:func:`units_resident`) is taken from the split's unit table before its dataset is
built, since the dataset's items carry units only when streaming; :func:`to_device` moves the
rest of a batch.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch

from pln.config import UNITS_ON_DEVICE, DataConfig
from pln.errors import ConfigError

log = logging.getLogger("pln.units")

GIB = 2 ** 30
# Videos copied host -> device at a time while the table is built (bounds the host copy).
COPY_CHUNK_BYTES = 256 * 2 ** 20


def table_bytes(units: np.ndarray) -> int:
    """Size in bytes of a unit table ``[V, M, D]`` held as float32."""
    return int(np.prod(units.shape, dtype=np.int64)) * 4


def free_device_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes: the CUDA device's, or the host's available physical
    memory for the CPU; None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):  # not a POSIX system that reports it
            return None
    return None


def place_on_device(nbytes: int, policy: str, max_gib: float, free_bytes: int | None) -> bool:
    """Whether a table of ``nbytes`` goes on the device under ``policy`` (auto | always | never).

    ``auto``: when it is at most ``max_gib`` GiB and, where ``free_bytes`` is known, at most half
    of the device's free memory.
    """
    if policy == "always":
        return True
    if policy == "never":
        return False
    if policy != "auto":
        raise ConfigError(f"data.units_on_device must be one of {', '.join(UNITS_ON_DEVICE)}, got {policy!r}")
    fits_budget = nbytes <= max_gib * GIB
    fits_free = free_bytes is None or nbytes <= free_bytes // 2
    return fits_budget and fits_free


def load_table(units: np.ndarray, device: torch.device) -> torch.Tensor:
    """The unit table ``[V, M, D]`` (e.g. a memory-mapped array) as float32 on ``device``.

    Copied in chunks of videos, so the host never holds a second full copy for a GPU table.
    """
    v = units.shape[0]
    table = torch.empty(tuple(units.shape), dtype=torch.float32, device=device)
    per_video = max(1, table_bytes(units) // max(v, 1))
    chunk = max(1, COPY_CHUNK_BYTES // per_video)
    for a in range(0, v, chunk):
        table[a: a + chunk] = torch.from_numpy(np.array(units[a: a + chunk], dtype=np.float32))
    return table


def units_resident(units: np.ndarray, device: torch.device, cfg: DataConfig) -> bool:
    """The feed decision for a unit table ``[V, M, D]``: resident on ``device`` (True) or
    streamed through the loader (False), by :func:`place_on_device` under ``data.units_on_device``
    and ``data.units_device_max_gib``. Taken before the split's dataset is built: a streamed
    split's items carry their units."""
    return place_on_device(table_bytes(units), cfg.units_on_device, cfg.units_device_max_gib,
                           free_device_bytes(torch.device(device)))


class UnitFeed:
    """Unit features ``[B, M, D]`` on ``device`` for the batches of one split.

    ``units`` is the split's table ``[V, M, D]``; ``resident`` is :func:`units_resident`'s
    decision, taken before the split's dataset was built (a streamed split's items carry their
    units). ``on_device`` tells which mode it is; ``table`` is the ``[V, M, D]`` table on the
    device, or None when streaming. ``cfg`` and ``name`` only label the log line.
    """

    def __init__(self, units: np.ndarray, device: torch.device, resident: bool, cfg: DataConfig,
                 name: str = "") -> None:
        self.device = torch.device(device)
        nbytes = table_bytes(units)
        self.on_device = bool(resident)
        self.table = load_table(units, self.device) if self.on_device else None
        where = f"resident on {self.device}" if self.on_device else "streamed through the loader"
        log.info("units%s: %d videos x %d x %d (%.3f GiB float32), %s (data.units_on_device=%s)",
                 f" of {name}" if name else "", *units.shape, nbytes / GIB, where, cfg.units_on_device)

    def units(self, batch: dict[str, Any]) -> torch.Tensor:
        """``[B, M, D]`` float32 on the device: ``table[batch["video"]]`` or the batch's own units."""
        if self.table is not None:
            video = batch["video"].to(self.device, non_blocking=True)
            return self.table.index_select(0, video)
        if "units" not in batch:
            raise RuntimeError("a streamed unit feed got a batch without 'units': build its dataset with "
                               "units_in_items=True (pln.engine.splits.open_split does)")
        return batch["units"].to(self.device, non_blocking=True)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move every tensor of a batch (and of its ``ious`` list) to ``device``."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            out[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            out[key] = value
    return out
