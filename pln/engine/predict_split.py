"""Run a trained model over a split and score it: top-5 moments per query for every stage under
Strategy 1 and for Strategy 2, then the paper's metrics.

The split comes opened (:func:`pln.engine.splits.open_split`): its unit feed supplies the units
(normally the split's unit table, resident on the model's device). Everything after the forward
pass (:func:`pln.engine.network.forward`) stays on the device and is batched; the only Python
loop is over batches. Strategy keys are named by :mod:`pln.engine.keys`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from pln.config import ExperimentConfig
from pln.engine.keys import parse_key
from pln.engine.network import forward
from pln.engine.splits import OpenSplit
from pln.engine.units import to_device
from pln.eval.ranking import predict_topk
from pln.eval.metrics import compute_metrics
from pln.model.pln import PLNOutput
from pln.eval.score import padded_windows, summarise, window_hits


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


@torch.no_grad()
def predict_split(
    model: torch.nn.Module,
    split: OpenSplit,
    cfg: ExperimentConfig,
    keys: list[str],
    nms_threshold: float,
    bf16: bool = False,
    batches: Iterable[dict[str, Any]] | None = None,
    on_output: Callable[[PLNOutput, dict], None] | None = None,
) -> dict[str, SplitPredictions]:
    """Top-K moments of every query of ``split`` for each strategy key.

    ``batches`` are the split's batches (None: one pass of ``split.loader()``; pass a loader made
    once when the same split is predicted repeatedly, e.g. every epoch, or any iterable of its
    batches); ``split.feed`` supplies their units ``[B, M, D]``. ``on_output(output, batch)``
    sees every batch's model output in the same pass (e.g. to sum the validation loss).
    """
    model.eval()
    device, feed = split.device, split.feed
    parts: dict[str, list[tuple[torch.Tensor, ...]]] = {k: [] for k in keys}
    meta: list[tuple[torch.Tensor, ...]] = []
    for batch in split.loader() if batches is None else batches:
        batch = to_device(batch, device)
        output = forward(model, feed.units(batch), batch["words"], batch["lengths"], bf16)
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
                                    query_windows(split.dataset.samples, index))
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
