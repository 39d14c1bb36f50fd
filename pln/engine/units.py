"""The unit features of a split, as the model sees them: resident on its device or streamed.

A video is shared by many queries (TACoS: ~130 per training video), and its unit features are
large (``[M, D]`` = 256 x 4096 float32 = 4 MB). Copying them per query through the data loader
and then host -> device per batch makes the loader, not the model, the bottleneck. A
:class:`UnitFeed` instead copies the split's unit table ``[V, M, D]`` to the device once and
gathers ``table[video]`` per batch there; batches then carry only the ``video [B]`` row indices.
When the table does not fit (``data.units_on_device``, ``data.units_device_max_gib``), the feed
falls back to streaming: the dataset's items carry their units and the feed moves each batch's
``units [B, M, D]`` to the device. Both paths give the same float32 numbers.
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


class UnitFeed:
    """Unit features ``[B, M, D]`` on ``device`` for the batches of one dataset.

    Built before any loader over ``dataset`` is first iterated: in streaming mode it sets
    ``dataset.units_in_items = True`` so that items carry their units (worker processes copy the
    dataset when they start). ``on_device`` tells which mode was chosen; ``table`` is the
    ``[V, M, D]`` table on the device, or None when streaming.
    """

    def __init__(self, dataset: Any, device: torch.device, cfg: DataConfig, name: str = "") -> None:
        self.device = torch.device(device)
        self.dataset = dataset  # the split whose units this feed supplies
        units = dataset.units  # [V, M, D]
        nbytes = table_bytes(units)
        self.on_device = place_on_device(nbytes, cfg.units_on_device, cfg.units_device_max_gib,
                                         free_device_bytes(self.device))
        dataset.units_in_items = not self.on_device
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
            raise RuntimeError("a streamed unit feed got a batch without 'units': build the UnitFeed "
                               "before the loader over its dataset is first iterated")
        return batch["units"].to(self.device, non_blocking=True)

