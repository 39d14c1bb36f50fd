"""From score maps to ranked, de-duplicated moments (SPEC section 5).

The model returns, per stage ``t``, a score map ``scores[t] [B, N_t, N_t]`` and its sparse valid
mask ``masks[t] [N_t, N_t]`` (any object with ``scores`` and ``masks`` list attributes works, e.g.
``pln.model.pln.PLNOutput``). Inference is:

1. pick one map (Strategy 1: stage ``t``) or fuse all stages (Strategy 2: average of the stages
   that have a cell with the same span) -> ``[B, N, N]`` with mask ``[N, N]``;
2. rank the valid cells by score -> candidate spans ``[B, K, 2]`` (seconds);
3. greedy NMS keeps at most ``keep`` (5) candidates per query.

This is the official 2D-TAN evaluation (``moment_localization/train.py`` and ``lib/core/eval.py``
of microsoft/2D-TAN), computed batched on the device:

- cell ``(i, j)`` of an ``N``-clip map spans ``[i / N * d, (j + 1) / N * d]`` seconds, in float64
  and in that order of operations (:func:`pln.geometry.cell_span`);
- candidates are ranked as ``np.argsort(scores)[::-1]`` ranks them: an ascending sort reversed.
  The official sort is numpy's default, which is not stable, so the order of exactly equal scores
  is not defined there; here it is the one a stable sort gives: of two equal scores the cell
  later in row-major order (larger ``i``, then larger ``j``) ranks first;
- NMS keeps a candidate when its IoU with every kept one is ``<= threshold``, the IoU written
  ``inter / (len_a + len_b - inter)`` in float64, and stops at ``keep`` kept;
- the metrics (:mod:`pln.eval.metrics`) use the IoU with the ground truth written
  ``inter / (max(end) - min(start))``, in float64 (:func:`pln.geometry.hull_iou`).

``tests/test_eval_official.py`` restates this procedure as plain per-map numpy loops and checks
that the batched path gives identical top-5 spans and metrics.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from pln.errors import ConfigError, PLNError
from pln.geometry import aligned_cells, cell_span


class StageMaps(Protocol):
    """What inference needs from a model output: per-stage score maps and their masks."""

    scores: list[Tensor]  # [B, N_t, N_t], sigmoid(logits) * mask
    masks: list[Tensor]  # [N_t, N_t] bool


def _resolve_stage(num_stages: int, stage: int) -> int:
    if not -num_stages <= stage < num_stages:
        raise ConfigError(f"eval.stage={stage} is not a stage of a {num_stages}-stage model")
    return stage % num_stages


def strategy1(output: StageMaps, stage: int = -1) -> tuple[Tensor, Tensor]:
    """Strategy 1: stage ``stage``'s map as it is (negative indices count from the last stage).

    Returns ``(scores [B, N_t, N_t], mask [N_t, N_t])``.
    """
    t = _resolve_stage(len(output.scores), stage)
    return output.scores[t], output.masks[t].bool()


def strategy2(output: StageMaps) -> tuple[Tensor, Tensor]:
    """Strategy 2: average over stages of the scores of cells with exactly the same span.

    A valid cell ``(i, j)`` of a stage with ``N`` clips has the span of the final-stage cell
    ``(r * i, r * (j + 1) - 1)`` with ``r = N_S / N`` (:func:`pln.geometry.aligned_cells`). Every stage's valid cells are scattered onto
    the final map (sum of scores and count of contributing stages); the final stage counts at each
    of its own valid cells, so every valid final cell averages over at least one score.

    Returns ``(scores [B, N_S, N_S], mask [N_S, N_S])``; 0 off the final mask.
    """
    final_scores, final_mask = output.scores[-1], output.masks[-1].bool()
    n_final = final_mask.shape[-1]
    total = torch.zeros_like(final_scores, dtype=torch.float32)
    count = torch.zeros(final_mask.shape, dtype=torch.float32, device=final_scores.device)
    for scores, mask in zip(output.scores, output.masks):  # one step per stage
        rows, cols, fine_rows, fine_cols = aligned_cells(mask, n_final)
        keep = final_mask[fine_rows, fine_cols]  # only spans the final stage can represent
        rows, cols, fine_rows, fine_cols = rows[keep], cols[keep], fine_rows[keep], fine_cols[keep]
        total[:, fine_rows, fine_cols] += scores[:, rows, cols].float()
        count[fine_rows, fine_cols] += 1.0
    fused = torch.where(final_mask, total / count.clamp(min=1.0), torch.zeros_like(total))
    return fused.to(final_scores.dtype), final_mask


def rank_candidates(scores: Tensor, mask: Tensor, duration: Tensor) -> tuple[Tensor, Tensor]:
    """All valid cells sorted by score, best first.

    ``scores [B, N, N]``, ``mask [N, N]``, ``duration [B]`` -> ``(spans [B, K, 2] float64 seconds,
    scores [B, K])`` with ``K`` the number of valid cells. The order is a stable ascending sort
    reversed: of equal scores, the cell later in row-major order ranks first.
    """
    mask = mask.bool()
    if scores.dim() != 3 or scores.shape[-2:] != mask.shape:
        raise PLNError(f"rank_candidates: scores {tuple(scores.shape)} do not match mask {tuple(mask.shape)}")
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order
    cand_scores = scores[:, rows, cols]  # [B, K]
    order = torch.sort(cand_scores, dim=1, stable=True).indices.flip(1)  # [B, K], best first
    spans = cell_span(rows[order], cols[order], mask.shape[-1], duration.to(scores.device)[:, None])
    return spans, cand_scores.gather(1, order)


def nms(spans: Tensor, scores: Tensor, threshold: float, keep: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy non-maximum suppression, batched.

    ``spans [B, K, 2]`` and ``scores [B, K]`` sorted best first (as from :func:`rank_candidates`).
    Walking down the list, a candidate is kept iff its IoU with every already kept one is
    ``<= threshold``; the walk stops once ``keep`` are kept. The IoU is the official NMS's,
    ``inter / (len_a + len_b - inter)`` in float64 with the lengths ``end - start`` computed once
    (:func:`pln.geometry.interval_iou`'s formula, written out here because, as in the official
    NMS, an empty union gives 0 / 0 = NaN, which suppresses, where ``interval_iou`` gives 0).
    Equivalently, ``keep`` rounds of: keep the first candidate still alive, then kill it and every
    candidate whose IoU with it exceeds ``threshold``. Each round is a few tensor operations over
    all ``K`` candidates of all queries at once, with no host synchronisation (the loop runs
    ``keep`` times, whatever the data).

    Returns ``(spans [B, keep, 2] float64, scores [B, keep], valid [B, keep])``; when fewer than
    ``keep`` survive, the tail slots are zero with ``valid`` False.
    """
    spans = spans.double()
    b, k = scores.shape
    device = spans.device
    if k == 0:
        return (spans.new_zeros(b, keep, 2), scores.new_zeros(b, keep),
                torch.zeros(b, keep, dtype=torch.bool, device=device))
    batch = torch.arange(b, device=device)
    start, end = spans[..., 0], spans[..., 1]  # [B, K]
    length = end - start
    alive = torch.ones(b, k, dtype=torch.bool, device=device)
    kept_spans, kept_scores, kept_valid = [], [], []
    for _ in range(keep):
        pick = alive.to(torch.uint8).argmax(dim=1)  # [B]: the first alive candidate (0 if none)
        valid = alive[batch, pick]
        span, score = spans[batch, pick], scores[batch, pick]  # [B, 2], [B]
        kept_spans.append(torch.where(valid[:, None], span, torch.zeros_like(span)))
        kept_scores.append(torch.where(valid, score, torch.zeros_like(score)))
        kept_valid.append(valid)
        inter = (torch.minimum(end, span[:, 1:]) - torch.maximum(start, span[:, :1])).clamp_(min=0)
        alive &= inter / (length[batch, pick][:, None] + length - inter) <= threshold  # [B, K]
        alive[batch, pick] = False
    return torch.stack(kept_spans, 1), torch.stack(kept_scores, 1), torch.stack(kept_valid, 1)


def predict_topk(output: StageMaps, duration: Tensor, strategy: Literal["1", "2"] | int = "1",
                 stage: int = -1, nms_threshold: float = 0.5, keep: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """Model output -> the top ``keep`` moments after NMS.

    ``duration [B]`` seconds; ``strategy`` "1" (stage ``stage``) or "2" (fused stages).
    Returns ``(spans [B, keep, 2] float64 seconds, scores [B, keep], valid [B, keep])``.
    """
    if str(strategy) == "1":
        scores, mask = strategy1(output, stage)
    elif str(strategy) == "2":
        scores, mask = strategy2(output)
    else:
        raise ConfigError(f"eval.strategy must be '1' or '2', got {strategy!r}")
    spans, ranked = rank_candidates(scores.detach(), mask, duration)
    return nms(spans, ranked, nms_threshold, keep)
