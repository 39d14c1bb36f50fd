"""The evaluation path and the data path of the product, timed over synthetic splits of the real
feature shapes."""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from pln.bench.steps import sync
from pln.config import SYNTHETIC_PREFIX, ExperimentConfig, ModelConfig, config_from_dict


def experiment_config(model_cfg: ModelConfig, family: str, args: argparse.Namespace, work: Path,
                      bf16: bool) -> ExperimentConfig:
    """A synthetic dataset of ``family`` with the model's feature shapes, read with 50-d words."""
    model = replace(model_cfg, word_dim=50)
    return config_from_dict({
        "name": "bench",
        "data": {"dataset": SYNTHETIC_PREFIX + family, "data_dir": str(work / "data"), "cache_dir": str(work / "cache"),
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
    strategy key, metrics. Cycles over the synthetic test split (opened for benchmarking: as for
    evaluation, loaded in this process) until ``max_queries`` are done."""
    from pln.engine.keys import strategy_keys
    from pln.engine.network import load_model
    from pln.engine.predict_split import predict_split, split_metrics
    from pln.engine.splits import BENCHMARKING, open_split

    torch.manual_seed(0)
    model = load_model(cfg.model, device)
    test = open_split(cfg, "test", BENCHMARKING, device)
    loader = test.loader()
    keys = strategy_keys(cfg.model.num_stages)
    nms = cfg.eval.resolved_nms(cfg.data.family)

    def run(queries: int) -> int:
        batches = -(-queries // cfg.train.eval_batch_size)
        pred = predict_split(model, test, cfg, keys, nms, bf16=cfg.train.bf16, batches=cycled(loader, batches))
        for key in keys:
            split_metrics(pred[key], cfg)
        return len(pred[keys[0]].index)

    run(cfg.train.eval_batch_size)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    done = run(max_queries)
    sync(device)
    return done / (time.perf_counter() - t0)


def measure_data_path(cfg: ExperimentConfig, device: torch.device, max_queries: int) -> float:
    """Queries/s the training loader and the unit feed supply (units, words and IoU maps on the
    device), without the model: the train split opened for training."""
    from pln.engine.splits import TRAINING, open_split
    from pln.engine.units import to_device

    train = open_split(cfg, "train", TRAINING, device)
    feed, loader = train.feed, train.loader()
    batches = max(2, -(-max_queries // cfg.train.batch_size))
    seen, t0 = 0, 0.0
    for i, batch in enumerate(cycled(loader, batches + 1)):
        batch = to_device(batch, device)
        feed.units(batch)
        if i == 0:  # the first batch pays for the workers' start
            sync(device)
            t0 = time.perf_counter()
            continue
        seen += batch["lengths"].shape[0]
    sync(device)
    return seen / (time.perf_counter() - t0)
