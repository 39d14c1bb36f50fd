"""`pln bench`: throughput, memory, parameters and FLOPs of the paper's configurations.

For each configuration (2D-TAN TACoS N=128 with 8 layers of 5x5; PLN 32-128 on TACoS; PLN 16-64
on ActivityNet Captions and Charades-STA) at the given width and batch, it measures

* training: one step (forward, joint loss, backward, Adam) on random input of the real shapes ->
  step time, queries/s, peak memory, parameters, FLOPs (torch's counter);
* inference: the forward pass alone at the evaluation batch size;
* evaluation: the product's evaluation path over a synthetic test split of the real feature
  shapes: loader, unit feed, forward, top-5 with NMS for every stage and Strategy 2, metrics
  (``pln.engine.inference.predict_split`` and ``split_metrics``);
* the data path: the training loader (``data.num_workers`` = ``--workers``) and the unit feed,
  without the model: the queries/s it can supply.

Each configuration runs twice in the same process: as we run it (``ours``: the banded ConvNet
that convolves only the cells the output needs; ``--bf16`` adds bf16 autocast) and as the plain
eager fp32 reference of the same computation (dense convolutions over the whole padded map), so
the printed ratio compares like with like on one machine. ``--sweep`` adds variants of the
ConvNet's speed-only settings (``model.conv_block``, ``model.conv_channels_last``).

On CUDA at width 512 and batch 32 it prints the targets of the project against the measured
figures, and the device-hours of every training run of ``config/paper.yaml`` at the measured
training throughput.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import platform
import resource
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pln.config import ExperimentConfig, LossConfig, ModelConfig, TrainConfig, config_from_dict
from pln.engine.recipe import backward_step, make_optimizer
from pln.loss import joint_loss
from pln.model import PLN
from pln.utils import atomic_write

# The paper's configurations at real widths (SPEC sections 3 and 6).
CONFIGS: dict[str, dict[str, Any]] = {
    "2dtan-tacos-128": dict(feature_dim=4096, clips=[128], conv_layers=8, conv_kernel=5),
    "pln-tacos-32-128": dict(feature_dim=4096, clips=[32, 128]),
    "pln-activitynet-16-64": dict(feature_dim=500, clips=[16, 64], positional_encoding=True),
    "pln-charades-16-64": dict(feature_dim=4096, clips=[16, 64]),
}
FAMILY = {"2dtan-tacos-128": "tacos", "pln-tacos-32-128": "tacos",
          "pln-activitynet-16-64": "activitynet", "pln-charades-16-64": "charades"}
# Speed-only ConvNet settings tried by --sweep (the first is "ours").
SWEEP = {"ours": {}, "ours-block32": {"conv_block": 32}, "ours-cl": {"conv_channels_last": True},
         "ours-block32-cl": {"conv_block": 32, "conv_channels_last": True}}
SWEEP_CONFIGS = ("2dtan-tacos-128", "pln-tacos-32-128")
# The official 2D-TAN code on one NVIDIA H200, TACoS N=128, batch 32 (SPEC section 8): queries/s
# as shipped and with anomaly detection off.
OFFICIAL_TACOS_H200 = {"as shipped": 41.0, "anomaly detection off": 47.5}
TARGET_TRAIN_VS_OFFICIAL = 3.0
TARGET_PLN_TACOS_TRAIN = 300.0
TARGET_EVAL = 5000.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=32, help="training batch")
    p.add_argument("--eval-batch", type=int, default=64, help="inference and evaluation batch")
    p.add_argument("--width", type=int, default=512, help="hidden and ConvNet channels (512 = the paper)")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for ours")
    p.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference run")
    p.add_argument("--sweep", action="store_true",
                   help=f"also time ours with other speed-only ConvNet settings ({', '.join(SWEEP_CONFIGS)})")
    p.add_argument("--eval-queries", type=int, default=2048,
                   help="queries timed through the evaluation path (0: skip it and the data path)")
    p.add_argument("--data-scale", type=float, default=0.5, help="size of the synthetic splits the "
                   "evaluation and data path read (data.synthetic.scale)")
    p.add_argument("--workers", type=int, default=4, help="data loader workers of the data path")
    p.add_argument("--glove", default=None, help="word vectors (data.glove) of the synthetic splits; "
                   "default the built-in GloVe 6B 50-d")
    p.add_argument("--work", default=None, help="folder for the synthetic splits (default: a temporary one)")
    p.add_argument("--out", default=None, help="CSV path (default results/benchmarks/<device>.csv)")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def count_flops(model: PLN, batch: dict) -> float:
    """FLOPs of one forward + backward pass (torch's FLOP counter; convs and matmuls)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = model(batch["units"], batch["words"], batch["lengths"])
        sum(x.float().sum() for x in out.logits).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS


def measure_train(model: PLN, device: torch.device, batch_size: int, steps: int, warmup: int,
                  bf16: bool) -> dict[str, float]:
    """Training step time (forward, joint loss, backward, gradient clipping, Adam: the default
    recipe of pln.engine.recipe) on random input of the real shapes."""
    cfg = model.cfg
    recipe = TrainConfig()
    opt = make_optimizer(model, recipe)
    batch = synthetic_batch(cfg, batch_size, device)
    lambdas = LossConfig().resolved_lambdas(cfg.num_stages)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(batch["units"], batch["words"], batch["lengths"])
        out = out._replace(logits=[x.float() for x in out.logits])
        loss, _ = joint_loss(out, batch["ious"], LossConfig(), lambdas)
        backward_step(model, opt, loss, recipe.grad_clip_norm)

    model.train()
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
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
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(batch["units"], batch["words"], batch["lengths"])
    _sync(device)
    model.train()
    return batch_size * steps / (time.perf_counter() - t0)


def experiment_config(model_cfg: ModelConfig, family: str, args: argparse.Namespace, work: Path,
                      bf16: bool) -> ExperimentConfig:
    """A synthetic dataset of ``family`` with the model's feature shapes, read with 50-d words."""
    model = replace(model_cfg, word_dim=50)
    return config_from_dict({
        "name": "bench",
        "data": {"dataset": f"synthetic-{family}", "data_dir": str(work / "data"), "cache_dir": str(work / "cache"),
                 "glove": args.glove, "num_workers": args.workers,
                 "synthetic": {"scale": args.data_scale, "feature_dim": model.feature_dim}},
        "model": asdict(model),
        "train": {"batch_size": args.batch, "eval_batch_size": args.eval_batch, "bf16": bf16},
    })


def cycled(loader: Any, batches: int) -> Iterator[dict[str, Any]]:
    """The first ``batches`` batches of ``loader`` iterated again and again (a new epoch each pass)."""
    return itertools.islice(itertools.chain.from_iterable(itertools.repeat(loader)), batches)


def measure_eval(cfg: ExperimentConfig, device: torch.device, max_queries: int) -> float:
    """Queries/s of the evaluation path: test loader, unit feed, forward, top-5 + NMS for every
    strategy key, metrics. Cycles over the synthetic test split until ``max_queries`` are done."""
    from pln.data.dataset import build_dataset, make_loader
    from pln.engine.inference import predict_split, split_metrics, strategy_keys
    from pln.engine.units import UnitFeed

    torch.manual_seed(0)
    model = PLN(cfg.model).to(device)
    test = build_dataset(cfg, "test")
    test.ious_in_items = False  # as in pln train and pln evaluate
    feed = UnitFeed(test, device, cfg.data, "test")
    loader = make_loader(test, cfg.train.eval_batch_size, shuffle=False, num_workers=0)
    keys = strategy_keys(cfg.model.num_stages)
    nms = cfg.eval.resolved_nms(cfg.data.family)

    def run(queries: int) -> int:
        batches = -(-queries // cfg.train.eval_batch_size)
        pred = predict_split(model, cycled(loader, batches), cfg, device, keys, nms, bf16=cfg.train.bf16, feed=feed)
        for key in keys:
            split_metrics(pred[key], cfg)
        return len(pred[keys[0]].index)

    run(cfg.train.eval_batch_size)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    done = run(max_queries)
    _sync(device)
    return done / (time.perf_counter() - t0)


def measure_data_path(cfg: ExperimentConfig, device: torch.device, max_queries: int) -> float:
    """Queries/s the training loader and the unit feed supply (units, words and IoU maps on the
    device), without the model."""
    from pln.data.dataset import build_dataset, make_loader
    from pln.engine.inference import to_device
    from pln.engine.units import UnitFeed

    train = build_dataset(cfg, "train")
    feed = UnitFeed(train, device, cfg.data, "train")
    loader = make_loader(train, cfg.train.batch_size, shuffle=True, num_workers=cfg.data.num_workers)
    batches = max(2, -(-max_queries // cfg.train.batch_size))
    seen, t0 = 0, 0.0
    for i, batch in enumerate(cycled(loader, batches + 1)):
        batch = to_device(batch, device)
        feed.units(batch)
        if i == 0:  # the first batch pays for the workers' start
            _sync(device)
            t0 = time.perf_counter()
            continue
        seen += batch["lengths"].shape[0]
    _sync(device)
    return seen / (time.perf_counter() - t0)


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


def target_lines(frame: pd.DataFrame) -> list[str]:
    """The project's speed targets against the measured ``ours`` rows (one line each)."""
    ours = frame[frame.variant == "ours"].set_index("config")
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    if "2dtan-tacos-128" in ours.index:
        q = ours.loc["2dtan-tacos-128", "train_queries_per_s"]
        ref = OFFICIAL_TACOS_H200["as shipped"]
        lines.append(f"2D-TAN TACoS training {q:.1f} q/s = x{q / ref:.2f} the official code as shipped "
                     f"({ref} q/s on an H200), x{q / OFFICIAL_TACOS_H200['anomaly detection off']:.2f} with its "
                     f"anomaly detection off; target >= x{TARGET_TRAIN_VS_OFFICIAL:g} "
                     f"({TARGET_TRAIN_VS_OFFICIAL * ref:.0f} q/s): {verdict(q >= TARGET_TRAIN_VS_OFFICIAL * ref)}")
    if "pln-tacos-32-128" in ours.index:
        q = ours.loc["pln-tacos-32-128", "train_queries_per_s"]
        lines.append(f"PLN 32-128 TACoS training {q:.1f} q/s; target >= {TARGET_PLN_TACOS_TRAIN:.0f}: "
                     f"{verdict(q >= TARGET_PLN_TACOS_TRAIN)}")
    if "eval_queries_per_s" in ours.columns:
        for name, row in ours.iterrows():
            q = row["eval_queries_per_s"]
            lines.append(f"{name} evaluation (NMS and metrics included) {q:.0f} q/s; target >= "
                         f"{TARGET_EVAL:.0f}: {verdict(q >= TARGET_EVAL)}")
    if "data_queries_per_s" in ours.columns:
        for name, row in ours.iterrows():
            lines.append(f"{name} data path {row['data_queries_per_s']:.0f} q/s against training "
                         f"{row['train_queries_per_s']:.0f} q/s: the loader "
                         f"{'keeps up' if row['data_queries_per_s'] >= row['train_queries_per_s'] else 'is the bottleneck'}")
    return lines


def measure_variant(cfg_name: str, cfg: ModelConfig, bf16: bool, evaluate: bool, device: torch.device,
                    args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every figure of one variant of one configuration (see the module docstring)."""
    torch.manual_seed(0)
    model = PLN(cfg).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    r: dict[str, Any] = measure_train(model, device, args.batch, args.steps, args.warmup, bf16)
    r["infer_queries_per_s"] = measure_infer(model, device, args.eval_batch, args.steps, args.warmup, bf16)
    r["peak_mem_gib"] = _peak_memory_gib(device)
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
            variants.append(("eager-fp32", replace(base, conv_banded=False), False))
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
