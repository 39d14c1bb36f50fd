"""Training-step and forward-pass timing on random input of the real shapes (no data files)."""

from __future__ import annotations

import resource
import time

import torch

from pln.bench.flops import count_flops
from pln.config import ExperimentConfig, ModelConfig, TrainConfig
from pln.engine.network import forward
from pln.engine.recipe import make_optimizer
from pln.engine.train import train_step
from pln.model import PLN


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op off CUDA), so that a clock read times it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gib(device: torch.device) -> float:
    """Peak device memory allocated (CUDA) or the process's peak resident set (CPU), in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_batch(cfg: ModelConfig, batch: int, device: torch.device, words: int = 12) -> dict:
    """Random inputs of the real shapes: ``units [B, M, D]``, ``words [B, L, E]``, ``lengths [B]``
    and ``ious``, one ``[B, N_t, N_t]`` map per stage."""
    g = torch.Generator().manual_seed(0)
    out = {
        "units": torch.randn(batch, cfg.num_units, cfg.feature_dim, generator=g),
        "words": torch.randn(batch, words, cfg.word_dim, generator=g),
        "lengths": torch.randint(4, words + 1, (batch,), generator=g),
        "ious": [torch.rand(batch, n, n, generator=g) for n in cfg.clips],
    }
    return {k: ([t.to(device) for t in v] if isinstance(v, list) else v.to(device)) for k, v in out.items()}


def measure_train(model: PLN, device: torch.device, batch_size: int, steps: int, warmup: int,
                  bf16: bool) -> dict[str, float]:
    """Time of :func:`pln.engine.train.train_step` (the default loss, learning rate and gradient clipping, Adam) on
    random input of the real shapes; the model's parameters and FLOPs per step."""
    cfg = ExperimentConfig(model=model.cfg, train=TrainConfig(bf16=bf16))
    optimizer = make_optimizer(model, cfg.train)
    batch = synthetic_batch(model.cfg, batch_size, device)
    lambdas = cfg.loss.resolved_lambdas(model.cfg.num_stages)

    model.train()
    for _ in range(warmup):
        train_step(model, optimizer, batch["units"], batch, cfg, lambdas)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, batch["units"], batch, cfg, lambdas)
    sync(device)
    step_s = (time.perf_counter() - t0) / steps
    return {"step_s": step_s, "train_queries_per_s": batch_size / step_s,
            "params": sum(p.numel() for p in model.parameters()),
            "train_gflop_per_step": count_flops(model, batch) / 1e9}


@torch.no_grad()
def measure_infer(model: PLN, device: torch.device, batch_size: int, steps: int, warmup: int,
                  bf16: bool) -> float:
    """Forward passes per second x batch: queries/s of the model alone."""
    batch = synthetic_batch(model.cfg, batch_size, device)
    model.eval()
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        forward(model, batch["units"], batch["words"], batch["lengths"], bf16)
    sync(device)
    model.train()
    return batch_size * steps / (time.perf_counter() - t0)
