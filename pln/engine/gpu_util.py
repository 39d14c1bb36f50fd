"""GPU utilisation during a stretch of work, sampled in the background.

NVML (through ``torch.cuda.utilization``) reports the share of the last sample period in which
a kernel ran on the GPU. A :class:`UtilisationSampler` reads it every ``interval`` seconds from a
daemon thread while its ``with`` block runs, so the training loop itself never waits for it and
the mean covers the whole epoch (data loading stalls included), not a few hand-picked steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch


def nvml_reader(device: torch.device) -> Callable[[], float] | None:
    """A function returning the utilisation (percent) of ``device``, or None where NVML cannot
    tell (not CUDA, NVML missing or not permitted)."""
    if device.type != "cuda":
        return None
    try:
        float(torch.cuda.utilization(device))
    except Exception:  # the driver's NVML library or nvidia-ml-py missing, or no permission
        return None
    return lambda: float(torch.cuda.utilization(device))


class UtilisationSampler:
    """``with UtilisationSampler(read) as s: ...`` then ``s.mean()`` (percent, None if no sample).

    ``read`` returns one utilisation sample; None (nothing to sample) makes the sampler inert.
    """

    def __init__(self, read: Callable[[], float] | None, interval: float = 0.2) -> None:
        self.read = read
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.read())
            except Exception:  # a failing read ends the sampling, never the training
                return

    def __enter__(self) -> UtilisationSampler:
        if self.read is not None:
            self._thread = threading.Thread(target=self._run, name="gpu-util", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None
