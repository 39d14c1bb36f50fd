"""Moment-localization metrics (SPEC section 5).

All functions take the NMS output of :func:`pln.eval.ranking.nms`: the kept candidates
``top [B, K, 2]`` (seconds, best first) with ``valid [B, K]`` flags (a video with few valid cells
may keep fewer than ``K``), and the ground truth ``gt [B, 2]`` in seconds.

- ``Rank@n, IoU=m``: share of queries with at least one of the top ``n`` kept candidates whose IoU
  with the ground truth is **strictly greater** than ``m`` (an IoU exactly equal to ``m`` is a miss).
- ``mIoU``: mean IoU of the top-1 candidate.

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

DEFAULT_LENGTH_EDGES = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)


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


def recall_at(top: Tensor, valid: Tensor, gt: Tensor, n: int, m: float) -> float:
    """``Rank@n, IoU=m`` in percent (IoU must be strictly greater than ``m``)."""
    return float(per_query_hits(top, valid, gt, ranks=[n], ious=[m])[metric_name(n, m)].mean() * 100.0)


def per_query_hits(top: Tensor, valid: Tensor, gt: Tensor, ranks: Sequence[int] = (1, 5),
                   ious: Sequence[float] = (0.3, 0.5, 0.7)) -> pd.DataFrame:
    """Per-query outcomes, one row per query (``B`` rows), for means and paired tests.

    Columns: ``R{n}@{m}`` (bool: a hit among the top ``n`` kept candidates) for every ``n`` in
    ``ranks`` and ``m`` in ``ious``, and ``IoU`` (float: the top-1 candidate's IoU, 0 if none).
    """
    cand = candidate_ious(top, valid, gt)  # [B, K]
    columns: dict[str, np.ndarray] = {}
    for n in ranks:
        if n < 1:
            raise PLNError(f"metrics: rank n must be >= 1, got {n}")
        head = cand[:, :n]
        for m in ious:
            columns[metric_name(n, m)] = (head > m).any(dim=1).cpu().numpy()
    columns["IoU"] = cand[:, 0].cpu().numpy() if cand.shape[1] else np.zeros(cand.shape[0])
    return pd.DataFrame(columns)


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


def length_groups(gt: Tensor, duration: Tensor, edges: Sequence[float] = DEFAULT_LENGTH_EDGES) -> np.ndarray:
    """Group index of every query by moment length / video length -> int array ``[B]``.

    Bin ``g`` holds ``edges[g] <= fraction < edges[g + 1]``; the last bin also holds its right
    edge. Queries outside ``[edges[0], edges[-1]]`` get ``-1``.
    """
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise PLNError(f"figures.fig8.edges must be at least two increasing edges, got {edges.tolist()}")
    frac = ((gt[:, 1] - gt[:, 0]).double() / duration.double()).cpu().numpy()
    group = np.searchsorted(edges, frac, side="right") - 1
    group[frac == edges[-1]] = len(edges) - 2
    group[(frac < edges[0]) | (frac > edges[-1])] = -1
    return group


def length_group_metrics(top: Tensor, valid: Tensor, gt: Tensor, duration: Tensor,
                         edges: Sequence[float] = DEFAULT_LENGTH_EDGES, ranks: Sequence[int] = (1, 5),
                         ious: Sequence[float] = (0.3, 0.5, 0.7)) -> pd.DataFrame:
    """Metrics per moment-length group (paper sec. 4.4, Fig. 8).

    Returns one row per bin of ``edges`` with columns ``group`` (label, e.g. ``"[0, 0.1)"``),
    ``count`` (queries in the bin) and every metric of :func:`compute_metrics` (percent; NaN for
    an empty bin). Queries outside the edges are left out.
    """
    hits = per_query_hits(top, valid, gt, ranks, ious)
    group = length_groups(gt, duration, edges)
    rows = []
    for g, label in enumerate(group_labels(list(edges))):  # one step per bin, not per query
        sel = hits[group == g]
        row: dict[str, object] = {"group": label, "count": len(sel)}
        if len(sel):
            row.update(_summarise(sel))
        else:
            row.update({name: float("nan") for name in _summarise(hits.iloc[:1]).keys()})
        rows.append(row)
    return pd.DataFrame(rows)


def relative_gain(df_pln: pd.DataFrame, df_base: pd.DataFrame) -> pd.DataFrame:
    """Relative improvement in percent, ``100 * (pln - base) / base``, of every metric column.

    Both frames come from :func:`length_group_metrics` with the same edges; rows are matched by
    ``group``. The result has ``group``, ``count`` (of ``df_pln``) and the metric columns; a gain
    over a baseline of 0 is NaN.
    """
    if list(df_pln["group"]) != list(df_base["group"]):
        raise PLNError("relative_gain: the two tables have different length groups; use the same edges")
    metrics = [c for c in df_pln.columns if c not in ("group", "count")]
    missing = [c for c in metrics if c not in df_base.columns]
    if missing:
        raise PLNError(f"relative_gain: the baseline table lacks the columns {missing}")
    base = df_base[metrics].astype(float).where(df_base[metrics] != 0)
    gain = 100.0 * (df_pln[metrics].astype(float) - base) / base
    return pd.concat([df_pln[["group", "count"]].reset_index(drop=True), gain.reset_index(drop=True)], axis=1)


def paired_bootstrap(hits_a: np.ndarray | Tensor | pd.Series, hits_b: np.ndarray | Tensor | pd.Series,
                     n_boot: int = 10000, seed: int = 0, chunk: int = 256) -> tuple[float, float]:
    """Paired bootstrap test of two systems on the same queries.

    ``hits_a [Q]`` and ``hits_b [Q]`` are per-query outcomes (bool hits or IoUs) of systems A and
    B in the same query order. Queries are resampled with replacement ``n_boot`` times; under
    the null hypothesis the bootstrap distribution of the mean difference is centred on 0, so the
    two-sided p-value is the share of resamples whose mean difference lies at least as far from
    the observed one as the observed one lies from 0, with the usual +1 correction:
    ``p = (1 + #{|mean_b - obs| >= |obs|}) / (1 + n_boot)``.

    Returns ``(observed mean of a - b, p-value)``; identical inputs give ``(0.0, 1.0)``.
    """
    a = np.asarray(hits_a, dtype=np.float64).reshape(-1)
    b = np.asarray(hits_b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise PLNError(f"paired_bootstrap: need two non-empty per-query arrays of equal length, got {a.size} and {b.size}")
    diff = a - b
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    q = diff.size
    extreme = 0
    for start in range(0, n_boot, chunk):  # chunks bound the [chunk, Q] index matrix
        size = min(chunk, n_boot - start)
        means = diff[rng.integers(0, q, size=(size, q))].mean(axis=1)
        extreme += int(np.count_nonzero(np.abs(means - observed) >= abs(observed) - 1e-12))
    return observed, (1 + extreme) / (1 + n_boot)
