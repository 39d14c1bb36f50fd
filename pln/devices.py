"""Which torch device a run trains on.

``train.device`` is one of ``auto | cpu | cuda | cuda:N`` (:func:`resolve_device`).

On a multi-GPU workstation Snakemake counts a ``gpu`` resource (``--resources gpu=4``) but
assigns no GPU ids, so concurrent training jobs would all land on ``cuda:0``. With
``train.device: auto`` each ``pln train`` process therefore claims a *GPU slot*
(:func:`acquire_gpu_slot`): an exclusive ``flock`` on ``<lock dir>/gpu<id>.lock`` for the first
free visible GPU, held while the run trains and released when it ends (the kernel drops the
lock when the process exits, even after a crash or ``kill -9``, so a stale lock never blocks a
GPU). Under SLURM the scheduler already gives each job its own GPUs through
``CUDA_VISIBLE_DEVICES``, so a job there simply uses ``cuda:0`` (:func:`claim_device`).

The lock directory is ``$PLN_GPU_LOCK_DIR`` or ``/tmp/pln-gpu-locks``; every process that
should share the GPUs must see the same directory (the same machine, the same setting).

What computed a run (:func:`machine_tag`): float rounding differs between CPUs with other vector
kernels, between thread counts and between GPUs, so the same run computed on two machines parts
after a few epochs; each epoch of a run records the machine that computed it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from pln.errors import ConfigError, TrainingError
from pln.locks import release, try_lock

log = logging.getLogger(__name__)

DEFAULT_LOCK_DIR = "/tmp/pln-gpu-locks"
LOCK_DIR_ENV = "PLN_GPU_LOCK_DIR"

_CUDA_INDEX = re.compile(r"cuda:(\d+)")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else the platform's) and the widest vector
    instruction set torch uses on it, e.g. ``AMD EPYC, AVX512``."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {torch.backends.cpu.get_cpu_capability()}"


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``CPU <model>, <vector set> x<N> threads`` (:func:`cpu_model`)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} x{torch.get_num_threads()} threads"


def machine_tag(device: torch.device) -> str:
    """What computes on ``device`` in this process, as far as it moves float rounding: the device
    (:func:`device_name`) and the torch build, e.g. ``CPU AMD EPYC, AVX2 x1 threads; torch
    2.13.0+cpu``."""
    return f"{device_name(device)}; torch {torch.__version__}"


def cuda_device_count() -> int:
    """Number of CUDA devices torch can use in this process (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _visible_note(env: Mapping[str, str]) -> str:
    value = env.get("CUDA_VISIBLE_DEVICES")
    return f" (CUDA_VISIBLE_DEVICES={value!r})" if value is not None else ""


def resolve_device(spec: str, cuda_count: int | None = None) -> torch.device:
    """The torch device for ``train.device`` = ``spec``.

    ``auto`` is ``cuda:0`` when a CUDA device is visible, else ``cpu``. ``cuda`` and
    ``cuda:N`` must name a visible device; otherwise a :class:`ConfigError` says so.
    ``cuda_count`` overrides the number of visible devices (default: ask torch).
    """
    count = cuda_device_count() if cuda_count is None else cuda_count
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", 0) if count > 0 else torch.device("cpu")
    if spec == "cuda":
        index = 0
    else:
        match = _CUDA_INDEX.fullmatch(spec)
        if match is None:
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {spec!r}")
        index = int(match.group(1))
    if count == 0:
        raise ConfigError(
            f"train.device={spec!r} but no CUDA device is available{_visible_note(os.environ)} "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); "
            "set train.device to auto or cpu")
    if index >= count:
        raise ConfigError(
            f"train.device={spec!r} but only {count} CUDA device(s) are visible"
            f"{_visible_note(os.environ)}; use cuda:0..cuda:{count - 1} or auto")
    return torch.device("cuda", index)


def gpu_lock_dir() -> Path:
    """The directory of the GPU slot locks: ``$PLN_GPU_LOCK_DIR`` or ``/tmp/pln-gpu-locks``."""
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def visible_gpu_ids(count: int, env: Mapping[str, str] | None = None) -> list[str]:
    """The machine-wide id of each of the ``count`` visible GPUs, in torch's order.

    With ``CUDA_VISIBLE_DEVICES=2,3`` torch's ``cuda:0`` is physical GPU ``2``: locks are named
    after the physical id so that processes with different visibility still exclude each other.
    Without the variable the ids are ``0..count-1``.
    """
    env = os.environ if env is None else env
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(i) for i in range(count)]
    ids = [item.strip() for item in listed.split(",") if item.strip()]
    # names such as GPU-<uuid> or MIG-<uuid> become safe file-name parts
    ids = [re.sub(r"[^A-Za-z0-9_.-]", "_", item) for item in ids]
    if len(ids) < count:
        ids += [f"visible{i}" for i in range(len(ids), count)]
    return ids[:count]


def _first_free(paths: list[Path]) -> tuple[int, int] | None:
    """(index, locked fd) of the first lock in ``paths`` nobody holds, or None."""
    for index, path in enumerate(paths):
        fd = try_lock(path)
        if fd is not None:
            return index, fd
    return None


def _make_lock_dir(lock_dir: Path) -> None:
    """Create the lock directory (world-writable, sticky) unless it exists."""
    if lock_dir.is_dir():
        return
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the GPU lock directory {lock_dir} ({exc.strerror}); "
            f"set {LOCK_DIR_ENV} to a writable directory") from None
    with contextlib.suppress(OSError):
        lock_dir.chmod(0o1777)  # shared by all users of the workstation, like /tmp


@contextlib.contextmanager
def acquire_gpu_slot(
    lock_dir: str | Path | None = None,
    num_gpus: int | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> Iterator[int]:
    """Claim the first free visible GPU; yield its torch index (the ``N`` of ``cuda:N``).

    The claim is an exclusive ``flock`` on ``lock_dir/gpu<id>.lock`` held until the ``with``
    block ends or the process exits. When every GPU is taken the call waits, polling every
    ``poll_s`` seconds, and raises :class:`TrainingError` after ``timeout_s`` (None: wait
    for ever). ``num_gpus`` overrides the number of visible GPUs (default: ask torch).
    """
    lock_dir = gpu_lock_dir() if lock_dir is None else Path(lock_dir)
    count = cuda_device_count() if num_gpus is None else num_gpus
    if count < 1:
        raise ConfigError("no CUDA device is visible, so there is no GPU slot to claim; "
                          "set train.device to cpu or make a GPU visible")
    _make_lock_dir(lock_dir)
    paths = [lock_dir / f"gpu{gpu_id}.lock" for gpu_id in visible_gpu_ids(count)]
    start = time.monotonic()
    waiting_logged = False
    while (claim := _first_free(paths)) is None:
        waited = time.monotonic() - start
        if timeout_s is not None and waited >= timeout_s:
            raise TrainingError(
                f"all {count} GPU(s) are in use by other runs (locks in {lock_dir}) after "
                f"waiting {waited:.0f} s; run fewer jobs at once (snakemake --resources gpu={count})")
        if not waiting_logged:
            log.info("all %d GPU slots in %s are taken; waiting for one", count, lock_dir)
            waiting_logged = True
        time.sleep(poll_s)
    index, fd = claim
    log.info("claimed GPU slot %s (cuda:%d)", paths[index].name, index)
    try:
        yield index
    finally:
        release(fd)


def running_under_slurm(env: Mapping[str, str] | None = None) -> bool:
    """True inside a SLURM job, where the scheduler picks the GPUs."""
    env = os.environ if env is None else env
    return "SLURM_JOB_ID" in env


@contextlib.contextmanager
def claim_device(
    spec: str,
    lock_dir: str | Path | None = None,
    num_gpus: int | None = None,
) -> Iterator[torch.device]:
    """The device a training run uses, holding a GPU slot for the run when one is needed.

    * ``cpu``, ``cuda``, ``cuda:N``: exactly that device (checked), no slot.
    * ``auto`` without CUDA: ``cpu``.
    * ``auto`` in a SLURM job or with one visible GPU: ``cuda:0``, no slot.
    * ``auto`` with several visible GPUs: ``cuda:<i>`` for the first free slot ``i``
      (:func:`acquire_gpu_slot`), released when the ``with`` block ends.
    """
    count = cuda_device_count() if num_gpus is None else num_gpus
    if spec != "auto" or count <= 1 or running_under_slurm():
        yield resolve_device(spec, cuda_count=count)
        return
    with acquire_gpu_slot(lock_dir, num_gpus=count) as index:
        yield torch.device("cuda", index)


def tune_backends(device: torch.device) -> None:
    """Process-wide backend settings for speed on ``device``, set by the entry points (training,
    benchmark): on CUDA, cuDNN times its convolution algorithms once per input shape and keeps
    the fastest (the banded ConvNet has a fixed set of strip shapes per stage, so this is paid
    in the first steps only). Numerics are unchanged: TF32 and precision settings stay as torch
    sets them."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
