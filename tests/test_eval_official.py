"""pln's batched evaluation against the official 2D-TAN evaluation, restated here as plain numpy
loops over the maps (microsoft/2D-TAN: ``get_proposal_results`` in moment_localization/train.py,
``nms``, ``iou`` and ``eval`` in lib/core/eval.py).

The official procedure, for one score map ``[N, N]`` of a video of ``d`` seconds:

1. rank the cells with ``np.argsort(map.ravel())[::-1]`` and keep the cells with ``i <= j``.
   numpy's default sort is not stable, so the official order of exactly equal scores is not
   defined by the code; we fix it to what the same expression gives with a stable sort (an
   ascending stable sort, reversed: of equal scores the cell later in row-major order comes
   first). Ranking only the valid cells gives the same order of the valid cells (a stable sort
   keeps the relative order of any subset); the official list also carries the upper-triangle
   cells outside a sparse mask, with score 0, behind every valid cell, which matters only when
   NMS exhausts the valid cells (never with these maps: every query keeps 5);
2. cell ``(i, j)`` spans ``[i / N * d, (j + 1) / N * d]``, in float64, in that order;
3. greedy NMS: take the first remaining candidate, drop every remaining one whose IoU with it,
   ``inter / (len_a + len_b - inter)``, is above the threshold, stop at 5 kept;
4. IoU with the ground truth ``inter / (max(end) - min(start))``; Rank@n, IoU=m is the share of
   queries with an IoU strictly above m among the first n kept; mIoU the mean top-1 IoU; both in
   percent, means in float64.

The generator draws 10,000 maps per N in {16, 32, 64, 128}, spread over NMS 0.4, 0.45 and 0.5
(every third map at each; metrics per threshold): continuous scores, scores rounded to bf16 (many ties), scores on 5 levels (mostly ties) and
constant maps; durations both integral and arbitrary; ground truths both on the clip grid (IoUs
exactly equal to the thresholds) and anywhere. pln must give the same top-5 spans, bit for bit,
and the same metrics, to the last bit.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pln.eval.metrics import compute_metrics
from pln.eval.ranking import predict_topk
from pln.geometry import valid_mask

MAPS_PER_N = 10_000
NMS_THRESHOLDS = (0.4, 0.45, 0.5)
RANKS = (1, 5)
IOUS = (0.1, 0.3, 0.5, 0.7)
KEEP = 5
CHUNK = 1000  # maps per batched call (bounds the memory of the N=128 maps)


# ----------------------------------------------------------------------------------------------
# The official procedure, one map at a time


def official_ranked_spans(scores: np.ndarray, mask: np.ndarray, duration: float) -> np.ndarray:
    """Spans ``[K, 2]`` of the valid cells of one map, best first; ``scores [K]`` are the map's
    valid cells in row-major order (``map[mask]``), ``mask [N, N]``."""
    n = mask.shape[0]
    cells = np.flatnonzero(mask)  # row-major
    order = cells[np.argsort(scores, kind="stable")[::-1]]
    i, j = order // n, order % n
    return np.stack([i / n * duration, (j + 1) / n * duration], axis=1)


def official_nms(spans: np.ndarray, threshold: float, keep: int) -> np.ndarray:
    """Greedy NMS over spans ``[K, 2]`` sorted best first -> the kept spans ``[<=keep, 2]``."""
    lengths = spans[:, 1] - spans[:, 0]
    rest = np.arange(len(spans))
    kept = []
    while rest.size:
        first, others = rest[0], rest[1:]
        kept.append(first)
        if len(kept) == keep:
            break
        inter = np.maximum(0.0, np.minimum(spans[first, 1], spans[others, 1])
                           - np.maximum(spans[first, 0], spans[others, 0]))
        overlap = inter / (lengths[first] + lengths[others] - inter)
        rest = others[overlap <= threshold]
    return spans[kept]


def official_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of spans ``[K, 2]`` with one ground truth ``[2]`` -> ``[K]``."""
    inter = np.maximum(0.0, np.minimum(pred[:, 1], gt[1]) - np.maximum(pred[:, 0], gt[0]))
    union = np.maximum(0.0, np.maximum(pred[:, 1], gt[1]) - np.minimum(pred[:, 0], gt[0]))
    return inter / union


def official_metrics(kept: list[np.ndarray], gts: np.ndarray) -> dict[str, float]:
    hits = {(n, m): [] for n in RANKS for m in IOUS}
    top1 = []
    for spans, gt in zip(kept, gts):
        overlap = official_iou(spans, gt)
        top1.append(overlap[0])
        for n, m in hits:
            hits[n, m].append(bool((overlap > m)[:n].any()))
    out = {f"R{n}@{m:g}": float(np.mean(np.array(v, dtype=np.float64)) * 100.0) for (n, m), v in hits.items()}
    out["mIoU"] = float(np.mean(np.array(top1, dtype=np.float64)) * 100.0)
    return out


# ----------------------------------------------------------------------------------------------
# Random maps, vectorised


def random_maps(n: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(scores [count, K] float32 of the K valid cells in row-major order, mask [N, N],
    duration [count], gt [count, 2])``."""
    rng = np.random.default_rng(seed)
    mask = valid_mask(n).numpy()
    scores = rng.random((count, int(mask.sum())), dtype=np.float32)
    kind = np.arange(count) % 4
    bf16 = torch.from_numpy(scores[kind == 1]).to(torch.bfloat16).float().numpy()  # ~256 levels per octave
    scores[kind == 1] = bf16
    scores[kind == 2] = np.floor(scores[kind == 2] * 5) / 5  # 5 levels
    scores[kind == 3] = rng.random((int((kind == 3).sum()), 1), dtype=np.float32)  # constant maps
    duration = np.where(rng.random(count) < 0.5, rng.integers(5, 200, count).astype(np.float64),
                        rng.uniform(5.0, 200.0, count))
    # ground truth on the clip grid (computed like the cell spans) or anywhere in the video
    a = rng.integers(0, n, count)
    b = np.minimum(a + rng.integers(0, n, count), n - 1)
    on_grid = np.stack([a / n * duration, (b + 1) / n * duration], axis=1)
    u = np.sort(rng.random((count, 2)), axis=1) * duration[:, None]
    gt = np.where((rng.random(count) < 0.5)[:, None], on_grid, u)
    return scores, mask, duration, gt


def full_maps(scores: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """Valid-cell scores ``[B, K]`` -> score maps ``[B, N, N]``, zero off the mask (as the model's)."""
    maps = torch.zeros(len(scores), *mask.shape)
    maps[:, torch.from_numpy(mask)] = torch.from_numpy(scores)
    return maps


@pytest.fixture
def one_thread():
    """One intra-op thread: on a busy 2-core machine two threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("n", [16, 32, 64, 128])
def test_batched_evaluation_is_the_official_one(n, one_thread):
    scores, mask, duration, gt = random_maps(n, MAPS_PER_N, seed=n)
    for t, threshold in enumerate(NMS_THRESHOLDS):
        maps = np.arange(t, MAPS_PER_N, len(NMS_THRESHOLDS))
        ref = [official_nms(official_ranked_spans(scores[q], mask, duration[q]), threshold, KEEP) for q in maps]
        assert all(len(r) == KEEP for r in ref)  # the case the subset ranking covers (see above)
        tops, valids = [], []
        for lo in range(0, len(maps), CHUNK):
            sel = maps[lo: lo + CHUNK]
            output = SimpleNamespace(scores=[full_maps(scores[sel], mask)], masks=[torch.from_numpy(mask)])
            top, _, valid = predict_topk(output, torch.from_numpy(duration[sel]), strategy="1",
                                         nms_threshold=threshold, keep=KEEP)
            tops.append(top)
            valids.append(valid)
        top, valid = torch.cat(tops), torch.cat(valids)
        assert top.dtype == torch.float64 and bool(valid.all())
        same = (top.numpy() == np.stack(ref)).all(axis=(1, 2))  # bit for bit
        assert same.all(), f"N={n}, NMS {threshold}: {(~same).sum()} maps differ, e.g. map {maps[~same][0]}"
        ours = compute_metrics(top, valid, torch.from_numpy(gt[maps]), ranks=RANKS, ious=IOUS)
        assert ours == official_metrics(ref, gt[maps]), f"N={n}, NMS {threshold}"


def test_generator_makes_ties_and_threshold_edges():
    """The maps exercise what the test is about: tied scores and IoUs exactly at a threshold."""
    scores, mask, duration, gt = random_maps(64, 400, seed=1)
    distinct = np.array([len(np.unique(v)) for v in scores])
    assert (distinct < scores.shape[1] // 2).mean() > 0.5  # most maps: many ties
    at_edge = 0
    for q in range(len(scores)):
        spans = official_ranked_spans(scores[q], mask, duration[q])[:50]
        lengths = spans[:, 1] - spans[:, 0]
        inter = np.maximum(0.0, np.minimum(spans[:, None, 1], spans[None, :, 1])
                           - np.maximum(spans[:, None, 0], spans[None, :, 0]))
        overlap = inter / (lengths[:, None] + lengths[None, :] - inter)
        at_edge += int(np.isin(overlap, NMS_THRESHOLDS).sum())
        at_edge += int(np.isin(official_iou(spans, gt[q]), IOUS).sum())
    assert at_edge > 100
