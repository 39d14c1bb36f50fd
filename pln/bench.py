"""`pln bench`: training and inference throughput, peak memory, parameters and FLOPs of the
paper's configurations on synthetic input of the real shapes.

Each configuration is measured twice in the same process: as we run it (the banded ConvNet that
skips the all-zero region below the diagonal band; ``--bf16`` adds bf16 autocast, and channels-last
on the GPU) and as the plain eager fp32 reference of the same computation (dense convolutions over
the whole padded map), so the printed ratio compares like with like on one machine.

From the measured training throughput it also prints the GPU-hours (device-hours) of every
training run of ``config/paper.yaml`` (train queries x epochs x seeds), on the measured device.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import resource
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from pln.config import ModelConfig
from pln.loss import joint_loss
from pln.model import PLN
from pln.utils import atomic_write

# The paper's configurations at real widths (SPEC sections 3 and 6).
CONFIGS: dict[str, dict] = {
    "2dtan-tacos-128": dict(feature_dim=4096, clips=[128], conv_layers=8, conv_kernel=5),
    "pln-tacos-32-128": dict(feature_dim=4096, clips=[32, 128]),
    "pln-activitynet-16-64": dict(feature_dim=500, clips=[16, 64], positional_encoding=True),
    "pln-charades-16-64": dict(feature_dim=4096, clips=[16, 64]),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--width", type=int, default=512, help="hidden and ConvNet channels (512 = the paper)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    p.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference run")
    p.add_argument("--out", default=None, help="CSV path (default results/benchmarks/<device>.csv)")


def _device(spec: str) -> torch.device:
    from pln.devices import resolve_device

    return resolve_device(spec)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def synthetic_batch(cfg: ModelConfig, batch: int, device: torch.device, words: int = 12) -> dict:
    """Random inputs of the real shapes: units [B, M, D], words [B, L, E], IoU maps per stage."""
    g = torch.Generator().manual_seed(0)
    out = {
        "units": torch.randn(batch, cfg.num_units, cfg.feature_dim, generator=g),
        "words": torch.randn(batch, words, cfg.word_dim, generator=g),
        "lengths": torch.randint(4, words + 1, (batch,), generator=g),
        "ious": [torch.rand(batch, n, n, generator=g) for n in cfg.clips],
    }
    return {k: ([t.to(device) for t in v] if isinstance(v, list) else v.to(device)) for k, v in out.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(model: PLN, batch: dict) -> float:
    """FLOPs of one forward + backward pass (torch's FLOP counter; convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = model(batch["units"], batch["words"], batch["lengths"])
        sum(x.float().sum() for x in out.logits).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def measure(cfg: ModelConfig, device: torch.device, batch_size: int, steps: int, warmup: int,
            bf16: bool) -> dict[str, float]:
    """Train-step and inference throughput of one configuration."""
    from pln.config import LossConfig
    from pln.eval.inference import predict_topk

    torch.manual_seed(0)
    model = PLN(cfg).to(device)
    if bf16 and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = synthetic_batch(cfg, batch_size, device)
    lambdas = LossConfig().resolved_lambdas(len(cfg.clips))
    use_bf16 = bf16
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            out = model(batch["units"], batch["words"], batch["lengths"])
        out = out._replace(logits=[x.float() for x in out.logits])
        loss, _ = joint_loss(out, batch["ious"], LossConfig(), lambdas)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    step_s = (time.perf_counter() - t0) / steps

    duration = torch.full((batch_size,), 100.0, device=device)
    model.eval()
    with torch.no_grad():
        for i in range(warmup + steps):
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = model(batch["units"], batch["words"], batch["lengths"])
            out = out._replace(scores=[s.float() for s in out.scores])
            predict_topk(out, duration, strategy="1", stage=-1, nms_threshold=0.4, keep=5)
    _sync(device)
    infer_s = (time.perf_counter() - t0) / steps
    model.train()
    peak = (torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return {
        "step_s": step_s, "train_queries_per_s": batch_size / step_s,
        "infer_queries_per_s": batch_size / infer_s,
        "peak_mem_gib": peak, "params": sum(p.numel() for p in model.parameters()),
        "train_gflop_per_step": count_flops(model, batch) / 1e9,
    }


# Train queries per epoch of the real datasets (SPEC section 6).
TRAIN_QUERIES = {"tacos": 9790, "activitynet": 37417, "charades": 12404}


def bench_config_for(family: str, stages: int) -> str:
    """The measured configuration that stands for a run of the paper plan (same dataset shape)."""
    if family == "tacos":
        return "2dtan-tacos-128" if stages == 1 else "pln-tacos-32-128"
    return "pln-activitynet-16-64" if family == "activitynet" else "pln-charades-16-64"


def paper_gpu_hours(queries_per_s: dict[str, float], overlay: str = "config/paper.yaml") -> tuple[float, int]:
    """(device-hours, training runs) of every training run of ``overlay``, at the given rates.

    Each run is charged its dataset's train queries x ``train.max_epochs`` at the training rate of
    the configuration of the same dataset and stage count (validation and test passes excluded).
    """
    from pln.config import config_from_dict
    from pln.report.check import load_snakemake_config
    from pln.report.experiments import Plan

    plan = Plan(load_snakemake_config([overlay]))
    hours, runs = 0.0, 0
    for run in plan.all_runs():
        if run.kind != "train":
            continue
        cfg = config_from_dict(plan.run_configs[plan.config_name(run)])
        rate = queries_per_s[bench_config_for(cfg.data.family, cfg.model.num_stages)]
        hours += TRAIN_QUERIES[cfg.data.family] * cfg.train.max_epochs / rate / 3600
        runs += 1
    return hours, runs


def main(args: argparse.Namespace) -> int:
    device = _device(args.device)
    name = device_name(device)
    rows = []
    for cfg_name in args.configs:
        base = replace(ModelConfig(), hidden=args.width, conv_channels=args.width, **CONFIGS[cfg_name])
        variants = [("ours", replace(base, conv_banded=True), args.bf16)]
        if not args.no_reference:
            variants.append(("eager-fp32", replace(base, conv_banded=False), False))
        for variant, cfg, bf16 in variants:
            r = measure(cfg, device, args.batch, args.steps, args.warmup, bf16)
            rows.append({"config": cfg_name, "variant": variant, "bf16": bf16, "banded": cfg.conv_banded,
                         "batch": args.batch, "width": args.width, **r})
            print(f"{cfg_name:22s} {variant:10s} step {r['step_s']:8.4f} s  train {r['train_queries_per_s']:8.1f} q/s"
                  f"  infer {r['infer_queries_per_s']:9.1f} q/s  peak {r['peak_mem_gib']:6.2f} GiB"
                  f"  params {r['params'] / 1e6:5.1f} M  {r['train_gflop_per_step']:9.1f} GFLOP/step", flush=True)
    frame = pd.DataFrame(rows)
    frame.insert(0, "device", name)
    frame.insert(1, "torch", torch.__version__)
    frame.insert(2, "date", dt.date.today().isoformat())
    if not args.no_reference:
        ref = frame[frame.variant == "eager-fp32"].set_index("config")["step_s"]
        frame["speedup_vs_eager_fp32"] = [ref[c] / s for c, s in zip(frame["config"], frame["step_s"])]
        for cfg_name in args.configs:
            ours = frame[(frame.config == cfg_name) & (frame.variant == "ours")]["speedup_vs_eager_fp32"].iloc[0]
            print(f"{cfg_name}: ours vs eager fp32 training step: x{ours:.2f}")
    out = Path(args.out or f"results/benchmarks/{device.type}.csv")
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}, width {args.width}; wrote {out}")
    ours = frame[frame.variant == "ours"].set_index("config")["train_queries_per_s"].to_dict()
    if set(ours) == set(CONFIGS) and args.width == 512 and args.batch == 32:
        hours, runs = paper_gpu_hours(ours)
        print(f"config/paper.yaml: {runs} training runs need about {hours:.1f} device-hours of training on {name}")
    else:
        print("(the paper's device-hours are printed for a run of all configurations at width 512, batch 32)")
    return 0
