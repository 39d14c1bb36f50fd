"""The geometry of the 2D temporal map (SPEC sections 3 and 5), in one place.

Cell ``(i, j)`` of an ``N x N`` map is the moment that starts at clip ``i`` and ends at clip ``j``
of a video of ``d`` seconds. This module owns what follows from that:

- which cells are candidates: :func:`valid_mask` (2D-TAN's sparse mask), :func:`num_valid`;
- which cell of a finer stage has the span of a coarse cell: :func:`aligned_cells`;
- the span of a cell in seconds, ``[i / N * d, (j + 1) / N * d]`` in float64 as the official
  evaluation computes it: :func:`cell_span`, :func:`cell_spans`; and back: :func:`span_to_cell`;
- the IoU of two spans, in the two forms the official code writes: :func:`interval_iou`
  (``inter / (len_a + len_b - inter)``, its NMS) and :func:`hull_iou` (``inter / (max(end) -
  min(start))``, its metric). They agree in exact arithmetic but not always in floating point;
- the IoU of every cell with a ground-truth moment: :func:`iou_map` (the training labels a
  dataset item carries) and :func:`cell_ious` (batched on tensors: the validation loss and the
  prior baseline).

It imports torch, numpy and :mod:`pln.errors` only, so the model, the loss, the data pipeline,
the evaluation and the report may all import it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pln.errors import PLNError

DENSE_LENGTH = 16  # every moment of up to this many clips is a candidate
_Q_MIN, _Q_MAX = 9, 16  # long moments have length 2^k * q with q in this range


# ----------------------------------------------------------------------------------------------
# Candidate cells


def valid_mask(n: int) -> Tensor:
    """BoolTensor ``[N, N]``: True at the valid (candidate) cells of an ``N``-clip map.

    With ``l = j - i + 1``, cell ``(i, j)`` is valid iff ``l <= 16``, or ``l = 2^k * q`` with
    ``k >= 1``, ``q in 9..16`` and ``i % 2^k == 0``: short moments are sampled densely, long ones
    with a start stride that doubles with every doubling of the length.
    """
    if n < 1:
        raise ValueError(f"valid_mask needs n >= 1, got {n}")
    i = torch.arange(n).view(n, 1)
    j = torch.arange(n).view(1, n)
    length = j - i + 1
    valid = (length >= 1) & (length <= DENSE_LENGTH)
    k = 1
    while _Q_MIN * 2**k <= n:  # one term per scale: O(log N) tensor ops
        stride = 2**k
        q_ok = (length % stride == 0) & (length // stride >= _Q_MIN) & (length // stride <= _Q_MAX)
        valid |= q_ok & (i % stride == 0)
        k += 1
    return valid


def num_valid(n: int) -> int:
    """Number of valid cells of an ``N``-clip map (16: 136, 32: 428, 64: 1104, 128: 2548)."""
    return int(valid_mask(n).sum())


def aligned_cells(mask: Tensor, n_fine: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The cells of a coarse map and the cells of a finer map with the same spans.

    ``mask [N, N]`` (the coarse map's valid cells), ``n_fine = r * N`` -> ``(rows [V], cols [V],
    fine_rows [V], fine_cols [V])`` for the ``V`` True cells of ``mask`` in row-major order: coarse
    cell ``(i, j)`` spans what fine cell ``(r * i, r * (j + 1) - 1)`` spans. On 2D-TAN's sparse
    masks that fine cell is always valid.
    """
    n = mask.shape[-1]
    if n_fine % n:
        raise PLNError(f"cell alignment: a stage with {n} clips does not divide the final {n_fine} clips")
    r = n_fine // n
    rows, cols = mask.bool().nonzero(as_tuple=True)
    return rows, cols, r * rows, r * (cols + 1) - 1


# ----------------------------------------------------------------------------------------------
# Spans in seconds


def cell_span(i: Tensor, j: Tensor, n: int, duration: Tensor) -> Tensor:
    """Span in seconds of cell ``(i, j)`` of an ``n``-clip map -> float64 ``[..., 2]``.

    ``i``, ``j`` (integer cell indices) and ``duration`` (seconds) broadcast together to ``[...]``.
    The span is ``[i / N * d, (j + 1) / N * d]`` in float64, divided first, then multiplied, as the
    official evaluation computes it. Cells below the diagonal get the same formula (their start
    is after their end) and are never valid.
    """
    d = duration.double()
    start, end = torch.broadcast_tensors(i.double() / n * d, (j + 1).double() / n * d)
    return torch.stack([start, end], dim=-1)


def cell_spans(n: int, duration: Tensor) -> Tensor:
    """Span in seconds of every cell of an ``n``-clip map -> float64 ``[B, N, N, 2]``
    (:func:`cell_span` for ``duration [B]``)."""
    idx = torch.arange(n, device=duration.device)
    return cell_span(idx[:, None], idx[None, :], n, duration[:, None, None])


def span_to_cell(span: np.ndarray, duration: float, n: int) -> tuple[int, int]:
    """The cell ``(i, j)`` of an ``n``-clip map nearest to ``span`` = (start, end) seconds.

    Inverts :func:`cell_span`: ``i = round(start n / d)`` and ``j = round(end n / d) - 1``,
    clipped to ``0 <= i <= j < n``.
    """
    i = int(np.clip(np.rint(span[0] * n / duration), 0, n - 1))
    j = int(np.clip(np.rint(span[1] * n / duration) - 1, i, n - 1))
    return i, j


# ----------------------------------------------------------------------------------------------
# IoU of spans


def interval_iou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU of intervals ``a [..., 2]`` and ``b [..., 2]`` (broadcast) -> ``[...]``.

    Written ``inter / ((len_a + len_b) - inter)`` in the inputs' dtype (the official NMS's form).
    Intervals are ``(start, end)`` with ``start <= end``. A pair whose union has zero length
    (two identical points) has IoU 0.
    """
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]) + (b[..., 1] - b[..., 0]) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def hull_iou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU of ``a [..., 2]`` and ``b [..., 2]`` (broadcast) -> float64 ``[...]``.

    Written as the official metric writes it: ``max(0, min(end) - max(start))`` over
    ``max(end) - min(start)`` (the hull, which equals the union whenever the intervals overlap),
    in float64. A zero-length hull gives IoU 0.
    """
    a, b = a.double(), b.double()
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    hull = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return torch.where(hull > 0, inter / hull.clamp(min=torch.finfo(hull.dtype).tiny), torch.zeros_like(hull))


# ----------------------------------------------------------------------------------------------
# IoU maps: every cell against a ground-truth moment


def iou_map(start: float, end: float, duration: float, n: int) -> np.ndarray:
    """IoU of every cell with the moment ``[start, end]`` seconds -> float32 ``[N, N]``, 0 below
    the diagonal: the training labels of one dataset item.

    The IoU is :func:`hull_iou`'s formula in float64 (the hull clamped at 1e-12 s rather than at
    the smallest float), rounded to float32 once; the moment is not clipped. It is written in
    numpy on the grid's edges because the data loader calls it per item and map, where numpy is
    several times faster than torch. Cell ``(i, j)`` spans ``[i * (d / N), (j + 1) * (d / N)]``
    here, the step ``d / N`` times the edge index, as these labels have always been computed: for
    ``N`` a power of two this is :func:`cell_span` exactly (``d / N`` is exact); for other ``N``
    an edge may differ from it in the last bit of float64.
    """
    edges = np.arange(n + 1, dtype=np.float64) * (duration / n)
    s, e = edges[:-1, None], edges[None, 1:]  # [N, 1] starts, [1, N] ends
    inter = np.clip(np.minimum(e, end) - np.maximum(s, start), 0.0, None)
    hull = np.maximum(e, end) - np.minimum(s, start)
    iou = np.where(hull > 0, inter / np.maximum(hull, 1e-12), 0.0)
    return np.triu(iou).astype(np.float32)


def cell_ious(gt: Tensor, duration: Tensor, n: int) -> Tensor:
    """IoU of every cell span with the ground truth -> float32 ``[B, N, N]``, batched.

    ``gt [B, 2]`` (start, end) and ``duration [B]`` in seconds; the ground truth is clipped to
    ``[0, duration]`` first. The spans are :func:`cell_spans` of the float32 duration, rounded to
    float32, and the IoU is :func:`interval_iou` in float32 (so a value may differ in the last
    bits from :func:`iou_map`'s). Cells below the diagonal (``i > j``) are 0.
    """
    duration = duration.float()
    gt = torch.minimum(gt.float().clamp(min=0), duration[:, None])
    spans = cell_spans(n, duration).float()  # [B, N, N, 2]; the labels stay float32
    ious = interval_iou(spans, gt[:, None, None, :])
    upper = torch.ones(n, n, dtype=torch.bool, device=ious.device).triu()
    return torch.where(upper, ious, torch.zeros_like(ious))
