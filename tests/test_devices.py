"""Device selection and GPU slots (pln.devices), with fake GPU counts: no GPU is needed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from pln.devices import (
    acquire_gpu_slot,
    claim_device,
    gpu_lock_dir,
    resolve_device,
    visible_gpu_ids,
)
from pln.errors import ConfigError, TrainingError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start outside SLURM and with every GPU visible, whatever the host sets."""
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "PLN_GPU_LOCK_DIR"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------------------
# resolve_device


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("cpu", 0, "cpu"),
        ("cpu", 2, "cpu"),
        ("auto", 0, "cpu"),
        ("auto", 3, "cuda:0"),
        ("cuda", 1, "cuda:0"),
        ("cuda:1", 2, "cuda:1"),
    ],
)
def test_resolve_device(spec: str, count: int, expected: str) -> None:
    assert resolve_device(spec, cuda_count=count) == torch.device(expected)


def test_resolve_device_without_cuda_refuses_cuda() -> None:
    with pytest.raises(ConfigError, match=r"train.device='cuda' but no CUDA device.*auto or cpu"):
        resolve_device("cuda", cuda_count=0)


def test_resolve_device_index_out_of_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")
    with pytest.raises(ConfigError, match=r"'cuda:2' but only 2 CUDA device.*CUDA_VISIBLE_DEVICES='5,6'"):
        resolve_device("cuda:2", cuda_count=2)


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", ""])
def test_resolve_device_rejects_unknown_spec(spec: str) -> None:
    with pytest.raises(ConfigError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(spec, cuda_count=4)


def test_resolve_device_on_this_machine_auto_is_usable() -> None:
    # Without an explicit count torch is asked; auto always gives a device tensors can live on.
    device = resolve_device("auto")
    assert torch.zeros(1, device=device).device.type == device.type


# ---------------------------------------------------------------------------------------------
# GPU slots


def test_visible_gpu_ids_follow_cuda_visible_devices() -> None:
    assert visible_gpu_ids(3, env={}) == ["0", "1", "2"]
    assert visible_gpu_ids(2, env={"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert visible_gpu_ids(1, env={"CUDA_VISIBLE_DEVICES": "GPU-ab:cd"}) == ["GPU-ab_cd"]


def test_lock_dir_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert gpu_lock_dir() == Path("/tmp/pln-gpu-locks")
    monkeypatch.setenv("PLN_GPU_LOCK_DIR", str(tmp_path))
    assert gpu_lock_dir() == tmp_path


def test_concurrent_holders_get_distinct_gpus(tmp_path: Path) -> None:
    with acquire_gpu_slot(tmp_path, num_gpus=3) as first:
        with acquire_gpu_slot(tmp_path, num_gpus=3) as second:
            with acquire_gpu_slot(tmp_path, num_gpus=3) as third:
                assert (first, second, third) == (0, 1, 2)
                with pytest.raises(TrainingError, match="all 3 GPU"):
                    with acquire_gpu_slot(tmp_path, num_gpus=3, timeout_s=0):
                        pass
        # the second slot is free again; the first free one is taken
        with acquire_gpu_slot(tmp_path, num_gpus=3) as again:
            assert again == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu0.lock", "gpu1.lock", "gpu2.lock"]


def test_slot_waits_until_a_gpu_is_freed(tmp_path: Path) -> None:
    holder = acquire_gpu_slot(tmp_path, num_gpus=1)
    holder.__enter__()
    with pytest.raises(TrainingError):
        with acquire_gpu_slot(tmp_path, num_gpus=1, poll_s=0.01, timeout_s=0.05):
            pass
    holder.__exit__(None, None, None)
    with acquire_gpu_slot(tmp_path, num_gpus=1, poll_s=0.01, timeout_s=0.05) as index:
        assert index == 0


def test_slot_locks_use_physical_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with acquire_gpu_slot(tmp_path, num_gpus=2) as a, acquire_gpu_slot(tmp_path, num_gpus=2) as b:
        assert (a, b) == (0, 1)  # torch indices ...
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu2.lock", "gpu3.lock"]  # ... physical locks


def test_slot_without_gpus_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CUDA device"):
        with acquire_gpu_slot(tmp_path, num_gpus=0):
            pass


_HOLDER = textwrap.dedent(
    """
    import sys
    from pln.devices import acquire_gpu_slot
    with acquire_gpu_slot(sys.argv[1], num_gpus=2) as index:
        print(index, flush=True)
        sys.stdin.readline()  # hold the slot until the parent says so (or dies)
    """
)


def test_slot_is_exclusive_across_processes_and_freed_at_exit(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "0"
        with acquire_gpu_slot(tmp_path, num_gpus=2) as index:
            assert index == 1  # GPU 0 belongs to the other process
        child.kill()  # no clean-up code runs: the kernel must drop the lock
        child.wait(timeout=30)
        with acquire_gpu_slot(tmp_path, num_gpus=2) as index:
            assert index == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# claim_device


def test_claim_device_multi_gpu_auto_takes_slots(tmp_path: Path) -> None:
    with claim_device("auto", tmp_path, num_gpus=4) as a, claim_device("auto", tmp_path, num_gpus=4) as b:
        assert (a, b) == (torch.device("cuda", 0), torch.device("cuda", 1))


def test_claim_device_explicit_spec_takes_no_slot(tmp_path: Path) -> None:
    with claim_device("cuda:3", tmp_path, num_gpus=4) as device:
        assert device == torch.device("cuda", 3)
    with claim_device("cpu", tmp_path, num_gpus=4) as device:
        assert device == torch.device("cpu")
    assert not any(tmp_path.iterdir())


def test_claim_device_under_slurm_uses_cuda0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with claim_device("auto", tmp_path, num_gpus=2) as a, claim_device("auto", tmp_path, num_gpus=2) as b:
        assert a == b == torch.device("cuda", 0)
    assert not any(tmp_path.iterdir())


def test_claim_device_without_gpu_is_cpu(tmp_path: Path) -> None:
    with claim_device("auto", tmp_path, num_gpus=0) as device:
        assert device == torch.device("cpu")
    with pytest.raises(ConfigError):
        with claim_device("cuda", tmp_path, num_gpus=0):
            pass
