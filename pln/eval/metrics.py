"""Moment-localization metrics (SPEC section 5).

The functions on tensors take the NMS output of :func:`pln.eval.ranking.nms`: the kept candidates
``top [B, K, 2]`` (seconds, best first) with ``valid [B, K]`` flags (a video with few valid cells
may keep fewer than ``K``), and the ground truth ``gt [B, 2]`` in seconds.

- ``Rank@n, IoU=m``: share of queries with at least one of the top ``n`` kept candidates whose IoU
  with the ground truth is **strictly greater** than ``m`` (an IoU exactly equal to ``m`` is a miss).
- ``mIoU``: mean IoU of the top-1 candidate.

:func:`query_outcomes` is the one definition of these per-query outcomes, on an array of the kept
candidates' IoUs: the run's metrics (:func:`per_query_hits`, :func:`compute_metrics`) and the
tables and figures (``pln.report.tables.per_query_values`` on ``predictions.csv``) all use it.

The IoU with the ground truth is the official 2D-TAN metric's (``lib/core/eval.py``):
``inter / (max(end) - min(start))`` in float64 (:func:`pln.geometry.hull_iou`); NMS uses
``inter / (len_a + len_b - inter)`` (:func:`pln.geometry.interval_iou`), as the official NMS
does.

Both are reported in percent under the keys ``R{n}@{m}`` (``m`` in its shortest form, e.g.
``R1@0.5``) and ``mIoU``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from pln.errors import PLNError
from pln.geometry import hull_iou


def metric_name(n: int, m: float) -> str:
    """The column name of ``Rank@n, IoU=m``: ``metric_name(1, 0.5) == "R1@0.5"``."""
    return f"R{n}@{m:g}"


def _check_shapes(top: Tensor, valid: Tensor, gt: Tensor) -> None:
    if top.dim() != 3 or top.shape[-1] != 2 or valid.shape != top.shape[:2] or gt.shape != (top.shape[0], 2):
        raise PLNError(
            f"metrics: expected top [B, K, 2], valid [B, K], gt [B, 2]; got {tuple(top.shape)}, "
            f"{tuple(valid.shape)}, {tuple(gt.shape)}")


def candidate_ious(top: Tensor, valid: Tensor, gt: Tensor) -> Tensor:
    """IoU (:func:`hull_iou`) of every kept candidate with its query's ground truth -> float64
    ``[B, K]`` (0 where invalid)."""
    _check_shapes(top, valid, gt)
    ious = hull_iou(top, gt[:, None, :])
    return torch.where(valid.bool(), ious, torch.zeros_like(ious))


def query_outcomes(ious: np.ndarray, ranks: Sequence[int], thresholds: Sequence[float],
                   percent: bool = False) -> dict[str, np.ndarray]:
    """Per-query outcomes from the IoUs of each query's kept candidates: the one definition of a
    hit, for the run's metrics and for the tables and figures built from ``predictions.csv``.

    ``ious [Q, K]`` float64: column ``k`` holds the IoU (:func:`pln.geometry.hull_iou`) of the
    rank ``k + 1`` candidate with the ground truth, 0 where fewer than ``k + 1`` were kept.
    Returns ``{"R{n}@{m}": [Q], ..., "IoU": [Q]}`` for every ``n`` in ``ranks`` and ``m`` in
    ``thresholds`` (in that order): ``R{n}@{m}`` is a hit when one of the ranks ``1..n`` has IoU
    strictly greater than ``m``; ``IoU`` is the rank-1 candidate's IoU (0 without one). As bool
    hits and IoU fractions, or with ``percent`` as float64 0 / 100 and 100 x IoU (the per-query
    values that :mod:`pln.stats` averages).
    """
    if ious.ndim != 2:
        raise PLNError(f"metrics: expected IoUs [Q, K], got shape {tuple(ious.shape)}")
    outcomes: dict[str, np.ndarray] = {}
    for n in ranks:
        if n < 1:
            raise PLNError(f"metrics: rank n must be >= 1, got {n}")
        head = ious[:, :n]
        for m in thresholds:
            outcomes[metric_name(n, m)] = (head > m).any(axis=1)
    outcomes["IoU"] = ious[:, 0] if ious.shape[1] else np.zeros(ious.shape[0])
    if percent:
        return {name: value * 100.0 for name, value in outcomes.items()}
    return outcomes


def per_query_hits(top: Tensor, valid: Tensor, gt: Tensor, ranks: Sequence[int] = (1, 5),
                   ious: Sequence[float] = (0.3, 0.5, 0.7)) -> pd.DataFrame:
    """Per-query outcomes (:func:`query_outcomes`) of the kept candidates, one row per query
    (``B`` rows), for means and paired tests.

    Columns: ``R{n}@{m}`` (bool: a hit among the top ``n`` kept candidates) for every ``n`` in
    ``ranks`` and ``m`` in ``ious``, and ``IoU`` (float: the top-1 candidate's IoU, 0 if none).
    """
    cand = candidate_ious(top, valid, gt).cpu().numpy()  # [B, K] float64
    return pd.DataFrame(query_outcomes(cand, ranks, ious))


def _summarise(hits: pd.DataFrame) -> dict[str, float]:
    """Per-query hits -> metric dict in percent (``mIoU`` from the ``IoU`` column); numpy means
    in float64, as the official evaluation takes them."""
    out = {name: float(np.mean(hits[name].to_numpy(dtype=np.float64)) * 100.0)
           for name in hits.columns if name != "IoU"}
    out["mIoU"] = float(np.mean(hits["IoU"].to_numpy(dtype=np.float64)) * 100.0)
    return out


def compute_metrics(top: Tensor, valid: Tensor, gt: Tensor, ranks: Sequence[int] = (1, 5),
                    ious: Sequence[float] = (0.3, 0.5, 0.7)) -> dict[str, float]:
    """All ``R{n}@{m}`` and ``mIoU`` in percent, e.g. ``{"R1@0.5": 41.2, ..., "mIoU": 38.0}``."""
    if top.shape[0] == 0:
        raise PLNError("metrics: no queries to evaluate (empty batch)")
    return _summarise(per_query_hits(top, valid, gt, ranks, ious))


def group_labels(edges: Sequence[float]) -> list[str]:
    """``[0, 0.1, 1]`` -> ``["[0, 0.1)", "[0.1, 1]"]`` (the last bin is closed on the right)."""
    labels = [f"[{lo:g}, {hi:g})" for lo, hi in zip(edges[:-1], edges[1:])]
    labels[-1] = labels[-1][:-1] + "]"
    return labels
