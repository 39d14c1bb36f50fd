"""CPU time of one training step of the demo's models, with and without the 2D map's fast backward.

For each run config (default: every ``runs/demo/configs/*-seed0.yaml``; make them with
``snakemake --cores 2 runs/demo/configs/<model>-seed0.yaml``) it times training steps (forward,
joint loss, backward, clipping, Adam) on real batches of the config's training split, one thread,
with ``model.map_fast`` on and off, alternating the two in rounds so that a drift of the machine
hits both; it prints the median CPU ms per step of each and their ratio. It also times the
fusion's channel normalisation (``pln.model.stage.normalize_channels``) against ``F.normalize`` on
the config's finest map. ``--bf16`` adds the fast path under bf16 autocast (``train.bf16``) to the
same rounds (columns ``bf16_ms`` and ``bf16_speedup``, fp32 over bf16). Writes
``results/benchmarks/demo-steps.csv``.

    python benchmarks/demo_steps.py --steps 8 --rounds 3
    python benchmarks/demo_steps.py --bf16 --out results/benchmarks/demo-steps-bf16.csv
"""

from __future__ import annotations

import argparse
import glob
import statistics
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from pln.devices import device_name
from pln.config import load_config
from pln.engine.network import load_model
from pln.engine.recipe import make_optimizer
from pln.engine.splits import TRAINING, open_split
from pln.engine.train import train_step
from pln.engine.units import to_device
from pln.model.stage import normalize_channels
from pln.utils import atomic_write_text


def cpu_ms(fn, repeats: int) -> float:
    """Mean CPU milliseconds of ``fn()`` over ``repeats`` calls."""
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return 1000.0 * (time.process_time() - start) / repeats


def step_times(path: str, steps: int, rounds: int, bf16: bool = False) -> dict[str, float]:
    """Median CPU ms per training step of ``path``'s model with ``model.map_fast`` on and off, and
    with ``bf16``, of the fast path under bf16 autocast too."""
    cfg = load_config(path, ["train.threads=1", "train.device=cpu"])
    device = torch.device("cpu")
    split = open_split(cfg, "train", TRAINING, device)
    batches = []
    for batch in split.loader(seed=0):
        batch = to_device(batch, device)
        batches.append((split.feed.units(batch), batch))
        if len(batches) == steps:
            break
    lambdas = cfg.loss.resolved_lambdas(cfg.model.num_stages)
    variants = {"fast": (True, False), "reference": (False, False)}  # name -> (map_fast, bf16)
    if bf16:
        variants["bf16"] = (True, True)
    runs: dict[str, tuple] = {}
    for name, (fast, half) in variants.items():
        torch.manual_seed(0)
        model = load_model(replace(cfg.model, map_fast=fast), device, None, None)
        run_cfg = replace(cfg, train=replace(cfg.train, bf16=half))
        runs[name] = (model, make_optimizer(model, cfg.train), run_cfg)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(rounds + 1):  # round 0 warms up
        for name, (model, optimizer, run_cfg) in runs.items():
            model.train()
            start = time.process_time()
            for units, batch in batches:
                train_step(model, optimizer, units, batch, run_cfg, lambdas)
            if r:
                times[name].append(1000.0 * (time.process_time() - start) / len(batches))
    finest = max(cfg.model.clips)
    x = torch.randn(cfg.train.batch_size, cfg.model.conv_channels, finest, finest)
    row = {f"{name}_ms": statistics.median(t) for name, t in times.items()}
    return {**row, "normalize_ms": cpu_ms(lambda: normalize_channels(x), 20),
            "torch_normalize_ms": cpu_ms(lambda: F.normalize(x, dim=1), 20)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", help="run configs (default: runs/demo/configs/*-seed0.yaml)")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also time the fast path under bf16 autocast")
    parser.add_argument("--out", default="results/benchmarks/demo-steps.csv")
    args = parser.parse_args()
    paths = args.configs or sorted(glob.glob("runs/demo/configs/*-seed0.yaml"))
    if not paths:
        raise SystemExit("no run configs: make them with snakemake --cores 2 runs/demo/configs/<model>-seed0.yaml")
    torch.set_num_threads(1)
    rows = []
    for path in paths:
        row = {"config": Path(path).stem, **step_times(path, args.steps, args.rounds, args.bf16)}
        row["speedup"] = row["reference_ms"] / row["fast_ms"]
        half = ""
        if args.bf16:
            row["bf16_speedup"] = row["fast_ms"] / row["bf16_ms"]
            half = f"; bf16 {row['bf16_ms']:7.1f} ms (x{row['bf16_speedup']:.2f})"
        rows.append(row)
        print(f"{row['config']:28s} step {row['reference_ms']:7.1f} -> {row['fast_ms']:7.1f} ms "
              f"(x{row['speedup']:.2f}){half}; normalize {row['torch_normalize_ms']:.2f} -> "
              f"{row['normalize_ms']:.2f} ms", flush=True)
    table = pd.DataFrame(rows)
    table["cpu"] = device_name(torch.device("cpu"))
    table["torch"] = torch.__version__
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, table.to_csv(index=False, float_format="%.3f"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
