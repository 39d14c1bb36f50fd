"""Run a trained model over a split and score it: top-5 moments per query for every stage under
Strategy 1 and for Strategy 2, then the paper's metrics.

Unit features come from a :class:`pln.engine.units.UnitFeed` (normally the split's unit table,
resident on the model's device). Everything after the forward pass stays on the device and is
batched; the only Python loop is over batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from pln.config import ExperimentConfig
from pln.engine.units import UnitFeed
from pln.errors import ConfigError
from pln.eval.ranking import predict_topk
from pln.eval.metrics import compute_metrics
from pln.model.pln import PLNOutput
from pln.eval.score import padded_windows, summarise, window_hits


def strategy_keys(num_stages: int) -> list[str]:
    """``["stage1", ..., "stageS", "strategy2"]`` (Strategy 2 only with more than one stage)."""
    keys = [f"stage{t + 1}" for t in range(num_stages)]
    return keys + (["strategy2"] if num_stages > 1 else [])


def select_key(cfg: ExperimentConfig, strategy: str | None = None, stage: int | None = None) -> str:
    """The one strategy key to report: the rule shared by `pln train` (``test_metrics.json``'s
    ``"default"``), `pln evaluate` and `pln predict`.

    ``strategy`` and ``stage`` (1-based) are a command's options; what they leave unset comes from
    the run's ``eval.strategy`` and ``eval.stage`` (0-based, negative counts from the last):

    - Strategy 2 -> ``"strategy2"``; a one-stage model has nothing to fuse (Strategy 2 of one stage
      is that stage's map), so it gets ``"stage1"``;
    - Strategy 1 -> ``"stage{t}"``, ``t = stage`` or else the stage ``eval.stage`` names.
    """
    num_stages = cfg.model.num_stages
    if stage is not None and strategy == "2":
        raise ConfigError("--stage goes with Strategy 1; Strategy 2 fuses every stage")
    chosen = strategy or ("1" if stage is not None else cfg.eval.strategy)
    if chosen == "2":
        return "strategy2" if num_stages > 1 else "stage1"
    if chosen != "1":
        raise ConfigError(f"eval.strategy must be '1' or '2', got {chosen!r}")
    if stage is None:
        if not -num_stages <= cfg.eval.stage < num_stages:
            raise ConfigError(f"eval.stage={cfg.eval.stage} is not a stage of a {num_stages}-stage model")
        return f"stage{cfg.eval.stage % num_stages + 1}"
    if not 1 <= stage <= num_stages:
        raise ConfigError(f"--stage {stage}: the model has stages 1..{num_stages}")
    return f"stage{stage}"


def parse_key(key: str) -> tuple[str, int]:
    """``"stage2"`` -> ``("1", 1)`` (strategy, 0-based stage); ``"strategy2"`` -> ``("2", -1)``."""
    if key == "strategy2":
        return "2", -1
    return "1", int(key.removeprefix("stage")) - 1


@dataclass
class SplitPredictions:
    """Top-K moments of every query of a split for one strategy key.

    spans [Q, K, 2] seconds, scores [Q, K], valid [Q, K] bool, gt [Q, 2], duration [Q],
    index [Q] (query index in the split); all on the CPU. ``windows [Q, W, 2]``: every relevant
    window of each query (padded with its first) when some query has several (JSONL data),
    else None (``gt`` is the one window).
    """

    spans: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    gt: torch.Tensor
    duration: torch.Tensor
    index: torch.Tensor
    windows: torch.Tensor | None = None


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a batch (and of its ``ious`` list) to ``device``."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
            out[key] = [v.to(device, non_blocking=True) for v in value]
        else:
            out[key] = value
    return out


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    loader: DataLoader,
    cfg: ExperimentConfig,
    device: torch.device,
    keys: list[str],
    nms_threshold: float,
    bf16: bool = False,
    feed: UnitFeed | None = None,
    on_output: Callable[[PLNOutput, dict], None] | None = None,
) -> dict[str, SplitPredictions]:
    """Top-K moments of every query in ``loader`` for each strategy key.

    ``feed`` supplies the units ``[B, M, D]`` and the split's samples; None builds one for
    ``loader.dataset`` from ``cfg.data`` (pass one when the same split is predicted repeatedly,
    e.g. every epoch; with a feed, ``loader`` may be any iterable of the split's batches).
    ``on_output(output, batch)`` sees every batch's model output in the same pass (e.g. to sum
    the validation loss).
    """
    model.eval()
    if feed is None:
        feed = UnitFeed(loader.dataset, device, cfg.data)
    parts: dict[str, list[tuple[torch.Tensor, ...]]] = {k: [] for k in keys}
    meta: list[tuple[torch.Tensor, ...]] = []
    for batch in loader:
        batch = to_device(batch, device)
        units = feed.units(batch)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            output = model(units, batch["words"], batch["lengths"])
        output = output._replace(scores=[s.float() for s in output.scores])
        if on_output is not None:
            on_output(output, batch)
        for key in keys:
            strategy, stage = parse_key(key)
            spans, scores, valid = predict_topk(
                output, batch["duration"], strategy=strategy, stage=stage,
                nms_threshold=nms_threshold, keep=cfg.eval.max_candidates,
            )
            parts[key].append((spans, scores.float(), valid))
        meta.append((batch["gt"], batch["duration"], batch["index"]))
    # One copy to the host at the end, not a synchronisation per batch.
    gt, duration, index = (torch.cat(t).cpu() for t in zip(*meta))
    out = {}
    for key in keys:
        spans, scores, valid = (torch.cat(t).cpu() for t in zip(*parts[key]))
        out[key] = SplitPredictions(spans, scores, valid, gt, duration, index,
                                    query_windows(feed.dataset.samples, index))
    return out


def query_windows(samples: list, index: torch.Tensor) -> torch.Tensor | None:
    """``[Q, W, 2]`` relevant windows of ``samples[index]`` when one has several, else None."""
    chosen = [samples[i] for i in index.tolist()]
    if all(len(s.all_windows) == 1 for s in chosen):
        return None
    return torch.from_numpy(padded_windows([s.all_windows for s in chosen]))  # float64, as the ground truth


def split_metrics(pred: SplitPredictions, cfg: ExperimentConfig) -> dict[str, float]:
    """Rank@n, IoU>m (percent) and mIoU of one strategy's predictions (with several relevant
    windows: a hit with any of them, :func:`pln.eval.score.window_hits`)."""
    if pred.windows is not None:
        hits = window_hits(pred.spans, pred.valid, pred.windows, cfg.eval.ranks,
                           cfg.eval.resolved_ious(cfg.data.family))
        return summarise("2dtan", hits)
    return compute_metrics(
        pred.spans, pred.valid, pred.gt,
        ranks=cfg.eval.ranks, ious=cfg.eval.resolved_ious(cfg.data.family),
    )
