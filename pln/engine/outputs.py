"""Per-query result files of a run: ``predictions.csv`` and ``score_maps.npz``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pln.config import ExperimentConfig
from pln.data.dataset import collate
from pln.engine.keys import stage_key
from pln.engine.network import forward
from pln.engine.predict_split import SplitPredictions
from pln.engine.splits import OpenSplit
from pln.engine.units import to_device
from pln.eval.metrics import candidate_ious
from pln.digest import atomic_write_digested


def predictions_frame(pred: SplitPredictions, video_ids: list[str]) -> pd.DataFrame:
    """One row per (query, rank) of the kept candidates.

    Columns: query, video_id, duration, gt_start, gt_end, rel_length, rank, start, end, score, iou.
    """
    q, k = pred.valid.shape
    iou = candidate_ious(pred.spans, pred.valid, pred.gt)  # [Q, K], the metrics' IoU
    rank = torch.arange(1, k + 1).expand(q, k)
    query = pred.index[:, None].expand(q, k)
    keep = pred.valid.reshape(-1)
    gt_len = (pred.gt[:, 1] - pred.gt[:, 0]).clamp(min=0)
    rel = gt_len / pred.duration.clamp(min=1e-9)
    frame = pd.DataFrame({
        "query": query.reshape(-1)[keep].numpy(),
        "duration": pred.duration[:, None].expand(q, k).reshape(-1)[keep].numpy(),
        "gt_start": pred.gt[:, None, 0].expand(q, k).reshape(-1)[keep].numpy(),
        "gt_end": pred.gt[:, None, 1].expand(q, k).reshape(-1)[keep].numpy(),
        "rel_length": rel[:, None].expand(q, k).reshape(-1)[keep].numpy(),
        "rank": rank.reshape(-1)[keep].numpy(),
        "start": pred.spans[..., 0].reshape(-1)[keep].numpy(),
        "end": pred.spans[..., 1].reshape(-1)[keep].numpy(),
        "score": pred.scores.reshape(-1)[keep].numpy(),
        "iou": iou.reshape(-1)[keep].numpy(),
    })
    frame.insert(1, "video_id", [video_ids[i] for i in frame["query"]])
    return frame


def write_predictions(path: str | Path, pred: SplitPredictions, dataset) -> None:
    """Write the per-query top-K of one strategy as CSV (atomically). Floats are written in full
    (shortest round-trip form), so that hits recomputed from the file (IoU strictly above m) are
    the ones the run's metrics counted, also for an IoU a hair above a threshold."""
    frame = predictions_frame(pred, [s.video_id for s in dataset.samples])
    atomic_write_digested(path, lambda tmp: frame.to_csv(tmp, index=False))


def write_predictions_jsonl(path: str | Path, pred: SplitPredictions, dataset) -> None:
    """Write the per-query top-K as moment-DETR prediction JSONL (atomically): one line per
    query, ``{"qid", "query", "vid", "pred_relevant_windows": [[start, end, score], ...]}``, best
    first (the kept candidates after NMS)."""
    from pln.data.jsonl import write_jsonl

    records = []
    for row, q in enumerate(pred.index.tolist()):
        sample = dataset.samples[q]
        keep = pred.valid[row]
        windows = [[float(s), float(e), float(p)] for (s, e), p in
                   zip(pred.spans[row][keep].tolist(), pred.scores[row][keep].tolist())]
        records.append({"qid": sample.qid, "query": sample.sentence, "vid": sample.video_id,
                        "pred_relevant_windows": windows})
    write_jsonl(path, records)


def score_map_queries(num_queries: int, count: int) -> list[int]:
    """Fixed, evenly spaced query indices (the same for every run on a split)."""
    if num_queries == 0 or count <= 0:
        return []
    return sorted(set(np.linspace(0, num_queries - 1, min(count, num_queries)).round().astype(int).tolist()))


@torch.no_grad()
def write_score_maps(path: str | Path, model: torch.nn.Module, split: OpenSplit, pred: SplitPredictions,
                     cfg: ExperimentConfig) -> None:
    """Save the stage score maps of a few fixed test queries (Fig. 7).

    Arrays: ``stage{t}`` [Q, N_t, N_t], ``query`` [Q], ``gt`` [Q, 2], ``duration`` [Q],
    ``top1`` [Q, 2] (the default strategy's top-1 moment, seconds). The queries' items come from
    ``split`` (the test split) and their units from its feed; the forward pass runs as in
    :func:`~pln.engine.predict_split.predict_split` (``train.bf16``).
    """
    dataset = split.dataset
    queries = score_map_queries(len(dataset), cfg.eval.num_score_maps)
    arrays: dict[str, np.ndarray] = {"query": np.array(queries, dtype=np.int64)}
    if queries:
        model.eval()
        batch = to_device(collate([dataset[i] for i in queries]), split.device)
        output = forward(model, split.feed.units(batch), batch["words"], batch["lengths"], cfg.train.bf16)
        for t, scores in enumerate(output.scores):
            arrays[stage_key(t)] = scores.cpu().numpy()
        row_of = {int(q): r for r, q in enumerate(pred.index.tolist())}
        rows = [row_of[q] for q in queries]
        arrays["gt"] = pred.gt[rows].numpy()
        arrays["duration"] = pred.duration[rows].numpy()
        arrays["top1"] = pred.spans[rows, 0].numpy()
    atomic_write_digested(path, lambda tmp: _savez(tmp, arrays))


def _savez(path: str, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
