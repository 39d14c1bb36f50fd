"""Score any method's predictions (``pln score``) under two protocols.

Predictions are JSONL, one object per query: ``{"qid": ..., "pred_relevant_windows": [[start,
end, score], ...]}`` (seconds, best first; other keys ignored). The ground truth is a JSONL
annotation file (:mod:`pln.data.jsonl`), whose queries may have several relevant windows.

``2dtan`` (our evaluation, as for our own runs): the given windows, in the given order, go
through the greedy NMS of :func:`pln.eval.ranking.nms` at the dataset's threshold, keeping
``max(ranks)``; ``R{n}@{m}`` is a hit when one of the top ``n`` kept windows has IoU strictly
greater than ``m`` with *any* relevant window; ``IoU`` is the top-1 window's best IoU over the
relevant windows (mIoU is its mean). With one relevant window this is exactly
:func:`pln.eval.metrics.per_query_hits`, which it calls once per window.

``moment-detr`` (the QVHighlights standalone evaluation, "full" length range), no NMS:

- ``R1@m``, m = 0.5, 0.55, ..., 0.95: the first listed window is the top-1; it is compared with
  the relevant window it overlaps most (the first such on ties), a hit when IoU >= m;
- ``AP@m``: the first ``max_pred_windows`` (10) listed windows, sorted by score (stable, so ties
  keep the listed order), are matched greedily: each takes the relevant window of highest IoU
  not yet taken at that threshold, provided that IoU >= m (else it is a false positive);
  precision is interpolated VOC-style (the running maximum from the right) and integrated over
  the recall steps. ``mAP`` is the mean over the ten thresholds; the summary averages queries.

Differences from the standalone script, where it would fail: a query without predictions
scores 0 everywhere; a zero-length pair has IoU 0. It rounds its output to two decimals, this
does not. Every query of the ground truth needs a prediction and every prediction's qid must
be in the ground truth: otherwise an error names the qid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from pln.data.annotations import Sample
from pln.data.jsonl import check_qid, iter_lines, parse_windows, read_jsonl
from pln.errors import DataError
from pln.eval.metrics import metric_name, per_query_hits
from pln.eval.ranking import nms
from pln.geometry import cell_spans

PROTOCOLS = ("2dtan", "moment-detr")
MDETR_THRESHOLDS = tuple(float(f"{m:.2f}") for m in np.linspace(0.5, 0.95, 10))
MDETR_MAX_PRED_WINDOWS = 10


@dataclass
class Scored:
    """A scored prediction file: ``summary`` (metric -> percent) and ``per_query`` (one row per
    ground-truth query, in file order: ``qid`` then the per-query outcome columns)."""

    protocol: str
    summary: dict[str, float]
    per_query: pd.DataFrame
    info: dict[str, Any]


# ----------------------------------------------------------------------------------------------
# Files


def read_predictions(path: str | Path) -> dict[int | str, np.ndarray]:
    """``{qid: windows [K, 3]}`` (start, end, score; listed order) of a prediction JSONL file."""
    path = Path(path)
    out: dict[int | str, np.ndarray] = {}
    for lineno, obj in iter_lines(path):
        where = f"{path}:{lineno}"
        if "qid" not in obj or "pred_relevant_windows" not in obj:
            raise DataError(f"{where}: a prediction needs 'qid' and 'pred_relevant_windows' "
                            "([[start, end, score], ...], best first)")
        qid = check_qid(obj["qid"], where)
        if qid in out:
            raise DataError(f"{where}: qid {qid!r} is predicted twice; give one line per query")
        windows = np.array(parse_windows(obj["pred_relevant_windows"], where, "pred_relevant_windows", 3),
                           dtype=np.float64).reshape(-1, 3)
        bad = np.flatnonzero(windows[:, 0] > windows[:, 1])
        if bad.size:
            raise DataError(f"{where}: qid {qid!r}: pred_relevant_windows[{bad[0]}] has start > end")
        out[qid] = windows
    return out


def _all_qids(path: Path) -> set[int | str]:
    return {obj["qid"] for _, obj in iter_lines(path) if "qid" in obj and not isinstance(obj["qid"], (list, dict))}


def match_queries(predictions: dict[int | str, np.ndarray], samples: list[Sample], pred_path: Path,
                  ann_path: Path) -> tuple[list[np.ndarray], int]:
    """Predictions in ground-truth order; errors name a missing or an unknown qid.

    Predictions for queries the annotation reader dropped (counted in its report) are ignored
    and counted.
    """
    known = {s.qid for s in samples}
    missing = [s.qid for s in samples if s.qid not in predictions]
    if missing:
        raise DataError(f"{pred_path}: no prediction for qid {missing[0]!r} of {ann_path} "
                        f"({len(missing)} queries lack one); predict every query of the annotation file")
    extra = [q for q in predictions if q not in known]
    dropped = _all_qids(ann_path) if extra else set()
    unknown = [q for q in extra if q not in dropped]
    if unknown:
        raise DataError(f"{pred_path}: qid {unknown[0]!r} is not in {ann_path} ({len(unknown)} unknown qids); "
                        "score predictions against the annotation file they were made for")
    return [predictions[s.qid] for s in samples], len(extra)


# ----------------------------------------------------------------------------------------------
# The 2D-TAN protocol


def _padded(items: Sequence[np.ndarray], width: int, fill: np.ndarray | None) -> np.ndarray:
    """Stack ``[K_i, width]`` arrays into ``[Q, K_max, width]``, padding each with ``fill`` (a row)
    or, when ``fill`` is None, with its own first row."""
    k = max([len(x) for x in items] + [1])
    out = np.zeros((len(items), k, width), dtype=np.float64)
    for q, x in enumerate(items):
        out[q, : len(x)] = x
        if len(x) < k:
            out[q, len(x):] = fill if fill is not None else x[0]
    return out


def score_2dtan(predictions: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[float, float]]],
                nms_threshold: float, ranks: Sequence[int] = (1, 5),
                ious: Sequence[float] = (0.3, 0.5, 0.7)) -> pd.DataFrame:
    """Per-query outcomes under our evaluation: ``R{n}@{m}`` (bool) and ``IoU`` (float).

    ``predictions[q]`` ``[K_q, 3]`` listed best first; ``windows[q]`` the relevant windows.
    """
    dtype = cell_spans(1, torch.ones(1)).dtype  # the precision our own runs' spans have
    starts = [p[:, 0].min() for p in predictions if len(p)]
    sentinel = (min(starts) if starts else 0.0) - 1.0  # a point before every window: IoU 0 with all
    cand = _padded([p[:, :3] for p in predictions], 3, np.array([sentinel, sentinel, 0.0]))
    spans = torch.from_numpy(cand[..., :2]).to(dtype)
    scores = torch.from_numpy(cand[..., 2]).to(dtype)
    top, _, valid = nms(spans, scores, nms_threshold, keep=max(ranks))
    valid &= top[..., 0] != torch.tensor(sentinel, dtype=dtype)
    return window_hits(top, valid, torch.from_numpy(padded_windows(windows)).to(dtype), ranks, ious)


def padded_windows(windows: Sequence[Sequence[tuple[float, float]]]) -> np.ndarray:
    """Relevant windows of each query -> ``[Q, W_max, 2]``, padded by repeating a query's first one
    (a repeat changes no hit and no best IoU)."""
    return _padded([np.asarray(w, dtype=np.float64).reshape(-1, 2) for w in windows], 2, None)


def window_hits(top: torch.Tensor, valid: torch.Tensor, windows: torch.Tensor, ranks: Sequence[int],
                ious: Sequence[float]) -> pd.DataFrame:
    """:func:`pln.eval.metrics.per_query_hits` against several relevant windows ``[B, W, 2]``: a
    hit with any window, and the top-1's best IoU over them."""
    hits: pd.DataFrame | None = None
    for w in range(windows.shape[1]):  # one step per relevant-window slot
        one = per_query_hits(top, valid, windows[:, w], ranks, ious)
        hits = one if hits is None else _combine(hits, one)
    return hits


def _combine(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Hit in either (any window) and the better top-1 IoU."""
    out = a.copy()
    for col in a.columns:
        out[col] = np.maximum(a[col].to_numpy(), b[col].to_numpy()) if col == "IoU" else a[col] | b[col]
    return out


# ----------------------------------------------------------------------------------------------
# The moment-DETR protocol


def _cross_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every window of ``a [A, 2]`` with every window of ``b [B, 2]`` -> ``[A, B]`` (0 on a zero union)."""
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def average_precision(pred: np.ndarray, gt: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """AP of one query at each IoU threshold: ``pred [K, 3]`` (listed order), ``gt [W, 2]`` -> ``[T]``."""
    ap = np.zeros(len(thresholds))
    if len(pred) == 0 or len(gt) == 0:
        return ap
    pred = pred[np.argsort(-pred[:, 2], kind="stable")]
    iou = _cross_iou(pred[:, :2], gt)  # [K, W]
    for t, thr in enumerate(thresholds):
        taken = np.zeros(len(gt), dtype=bool)
        tp = np.zeros(len(pred))
        for k in range(len(pred)):
            for w in iou[k].argsort()[::-1]:  # relevant windows by IoU, best first (numpy's tie order)
                if iou[k, w] < thr:
                    break
                if not taken[w]:
                    taken[w] = True
                    tp[k] = 1.0
                    break
        tp_cum = np.cumsum(tp)
        precision = tp_cum / np.arange(1, len(pred) + 1)
        recall = tp_cum / len(gt)
        mprec = np.concatenate([[0.0], precision, [0.0]])
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mprec = np.maximum.accumulate(mprec[::-1])[::-1]
        steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
        ap[t] = float(np.sum((mrec[steps] - mrec[steps - 1]) * mprec[steps]))
    return ap


def score_moment_detr(predictions: Sequence[np.ndarray], windows: Sequence[Sequence[tuple[float, float]]],
                      thresholds: Sequence[float] = MDETR_THRESHOLDS,
                      max_pred_windows: int = MDETR_MAX_PRED_WINDOWS) -> pd.DataFrame:
    """Per-query outcomes under the QVHighlights protocol: ``R1@m`` (bool), ``IoU`` (top-1 with
    its best-matching relevant window), ``AP@m`` and ``AP`` (mean over thresholds), fractions."""
    rows = []
    for pred, win in zip(predictions, windows):
        gt = np.asarray(win, dtype=np.float64).reshape(-1, 2)
        row: dict[str, Any] = {}
        if len(pred):
            top1 = pred[:1, :2]
            best = int(np.argmax(_cross_iou(top1, gt)[0]))
            g = gt[best]
            inter = max(0.0, min(top1[0, 1], g[1]) - max(top1[0, 0], g[0]))
            hull = max(top1[0, 1], g[1]) - min(top1[0, 0], g[0])
            iou = inter / hull if hull != 0 else 0.0
        else:
            iou = 0.0
        for m in thresholds:
            row[metric_name(1, m)] = bool(len(pred)) and iou >= m
        row["IoU"] = iou
        ap = average_precision(pred[:max_pred_windows], gt, thresholds)
        for m, value in zip(thresholds, ap):
            row[f"AP@{m:g}"] = float(value)
        row["AP"] = float(ap.mean())
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# Summaries and files


def summarise(protocol: str, per_query: pd.DataFrame) -> dict[str, float]:
    """Per-query outcomes -> metrics in percent (``mIoU``; moment-detr also ``mAP``, ``mAP@m``)."""
    out: dict[str, float] = {}
    for col in per_query.columns:
        if col == "qid":
            continue
        value = float(per_query[col].astype(float).mean() * 100.0)
        if col == "IoU":
            out["mIoU"] = value
        elif col.startswith("AP"):
            out["m" + col] = value
        else:
            out[col] = value
    return out


def score_files(predictions: str | Path, annotations: str | Path, protocol: str = "2dtan",
                nms_threshold: float = 0.5, ranks: Sequence[int] = (1, 5),
                ious: Sequence[float] = (0.3, 0.5, 0.7)) -> Scored:
    """Score a prediction file against a JSONL annotation file under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise DataError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    pred_path, ann_path = Path(predictions), Path(annotations)
    samples, report = read_jsonl(ann_path)
    preds, ignored = match_queries(read_predictions(pred_path), samples, pred_path, ann_path)
    windows = [s.all_windows for s in samples]
    if protocol == "2dtan":
        per_query = score_2dtan(preds, windows, nms_threshold, ranks, ious)
        settings: dict[str, Any] = {"nms_threshold": nms_threshold, "ranks": list(ranks), "ious": list(ious)}
    else:
        per_query = score_moment_detr(preds, windows)
        settings = {"iou_thresholds": list(MDETR_THRESHOLDS), "max_pred_windows": MDETR_MAX_PRED_WINDOWS}
    per_query.insert(0, "qid", [s.qid for s in samples])
    info = {"predictions": str(pred_path), "annotations": str(ann_path), "queries": len(samples),
            "predictions_ignored_for_dropped_queries": ignored, "annotation_report": report.to_dict(), **settings}
    return Scored(protocol, summarise(protocol, per_query), per_query, info)
