"""The measurement loop of `pln bench`: every configuration and variant, the CSV, the printed lines."""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pln.bench.configs import CONFIGS, FAMILY, SWEEP, SWEEP_CONFIGS
from pln.bench.datapath import experiment_config, measure_data_path, measure_eval
from pln.bench.hours import paper_gpu_hours
from pln.bench.steps import measure_infer, measure_train, peak_memory_gib
from pln.bench.targets import target_lines
from pln.config import ModelConfig
from pln.devices import device_name
from pln.engine.network import load_model
from pln.utils import atomic_write


def measure_variant(cfg_name: str, cfg: ModelConfig, bf16: bool, evaluate: bool, device: torch.device,
                    args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every figure of one variant of one configuration (see :mod:`pln.bench`)."""
    torch.manual_seed(0)
    model = load_model(cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    r: dict[str, Any] = measure_train(model, device, args.batch, args.steps, args.warmup, bf16)
    r["infer_queries_per_s"] = measure_infer(model, device, args.eval_batch, args.steps, args.warmup, bf16)
    r["peak_mem_gib"] = peak_memory_gib(device)
    del model
    if evaluate:
        exp = experiment_config(cfg, FAMILY[cfg_name], args, work, bf16)
        r["eval_queries_per_s"] = measure_eval(exp, device, args.eval_queries)
        r["data_queries_per_s"] = measure_data_path(exp, device, args.eval_queries)
    return r


def results_frame(rows: list[dict[str, Any]], name: str) -> pd.DataFrame:
    """The CSV's rows: device, torch, date, then the measured rows, and each row's training-step
    speed-up against the eager fp32 reference of its configuration (where that was measured)."""
    frame = pd.DataFrame(rows)
    frame.insert(0, "device", name)
    frame.insert(1, "torch", torch.__version__)
    frame.insert(2, "date", dt.date.today().isoformat())
    ref = frame[frame.variant == "eager-fp32"].set_index("config")["step_s"].to_dict()
    frame["speedup_vs_eager_fp32"] = [ref.get(c, float("nan")) / s for c, s in zip(frame["config"], frame["step_s"])]
    return frame


def main(args: argparse.Namespace) -> int:
    if args.work is not None:
        return run(args, Path(args.work))
    with tempfile.TemporaryDirectory(prefix="pln-bench-") as work:  # the synthetic splits go with it
        return run(args, Path(work))


def run(args: argparse.Namespace, work: Path) -> int:
    """Measure every requested configuration and variant, with the synthetic splits under ``work``."""
    from pln.devices import resolve_device, tune_backends

    device = resolve_device(args.device)
    tune_backends(device)
    name = device_name(device)
    out = Path(args.out or f"results/benchmarks/{device.type}.csv")
    rows: list[dict[str, Any]] = []
    frame = pd.DataFrame()
    for cfg_name in args.configs:
        base = replace(ModelConfig(), hidden=args.width, conv_channels=args.width, **CONFIGS[cfg_name])
        variants = [("ours", replace(base, conv_banded=True), args.bf16)]
        if args.sweep and cfg_name in SWEEP_CONFIGS:
            variants += [(v, replace(base, conv_banded=True, **kw), args.bf16) for v, kw in SWEEP.items() if kw]
        if not args.no_reference:
            variants.append(("eager-fp32", replace(base, conv_banded=False, map_fast=False), False))
        for variant, cfg, bf16 in variants:
            evaluate = variant == "ours" and args.eval_queries > 0
            try:
                r = measure_variant(cfg_name, cfg, bf16, evaluate, device, args, work)
            except torch.cuda.OutOfMemoryError:  # recorded as such; the other variants still run
                r = {"step_s": float("nan"), "train_queries_per_s": float("nan"), "note": "out of memory"}
                print(f"{cfg_name:22s} {variant:15s} out of memory at batch {args.batch}", flush=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            rows.append({"config": cfg_name, "variant": variant, "bf16": bf16, "banded": cfg.conv_banded,
                         "block": cfg.conv_block, "channels_last": cfg.conv_channels_last,
                         "batch": args.batch, "width": args.width, **r})
            if "note" not in r:
                extra = "".join(f"  {k.split('_')[0]} {r[k]:9.1f} q/s"
                                for k in ("eval_queries_per_s", "data_queries_per_s") if k in r)
                print(f"{cfg_name:22s} {variant:15s} step {r['step_s']:8.4f} s  train {r['train_queries_per_s']:8.1f} q/s"
                      f"  infer {r['infer_queries_per_s']:9.1f} q/s{extra}  peak {r['peak_mem_gib']:6.2f} GiB"
                      f"  params {r['params'] / 1e6:5.1f} M  {r['train_gflop_per_step']:9.1f} GFLOP/step", flush=True)
            frame = results_frame(rows, name)  # written after every variant: a later failure keeps these
            atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.6g"))
    if not args.no_reference:
        for cfg_name in args.configs:
            part = frame[(frame.config == cfg_name) & (frame.variant != "eager-fp32")]
            print(f"{cfg_name}: training step vs eager fp32: " + ", ".join(
                f"{v} x{x:.2f}" for v, x in zip(part["variant"], part["speedup_vs_eager_fp32"])))
    print(f"device: {name}; torch {torch.__version__}; batch {args.batch}, width {args.width}; wrote {out}")
    paper_scale = args.width == 512 and args.batch == 32
    if device.type == "cuda" and paper_scale:
        for line in target_lines(frame):
            print(f"target: {line} ({name})")
    ours = frame[frame.variant == "ours"].set_index("config")["train_queries_per_s"].dropna().to_dict()
    if set(ours) == set(CONFIGS) and paper_scale:
        hours, runs = paper_gpu_hours(ours)
        print(f"config/paper.yaml: {runs} training runs need about {hours:.1f} device-hours of training on {name} "
              f"at this run's {'bf16' if args.bf16 else 'fp32'} step rates (the paper setting trains as its "
              "train.bf16 says)")
    else:
        print("(the paper's device-hours are printed for a run of all configurations at width 512, batch 32)")
    return 0
