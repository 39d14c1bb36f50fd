"""From score maps to ranked, de-duplicated moments (SPEC section 5).

The model returns, per stage ``t``, a score map ``scores[t] [B, N_t, N_t]`` and its sparse valid
mask ``masks[t] [N_t, N_t]`` (any object with ``scores`` and ``masks`` list attributes works, e.g.
``pln.model.pln.PLNOutput``). Inference is:

1. pick one map (Strategy 1: stage ``t``) or fuse all stages (Strategy 2: average of the stages
   that have a cell with the same span) -> ``[B, N, N]`` with mask ``[N, N]``;
2. rank the valid cells by score -> candidate spans ``[B, K, 2]`` (seconds);
3. greedy NMS keeps at most ``keep`` (5) candidates per query.

Ties in score are broken by cell order: the valid cells are listed row-major (``i`` then
``j``) and the sort is stable, so of two equal scores the cell with the smaller ``(i, j)`` ranks
first.
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch
from torch import Tensor

from pln.errors import ConfigError, PLNError
from pln.eval.metrics import interval_iou


class StageMaps(Protocol):
    """What inference needs from a model output: per-stage score maps and their masks."""

    scores: list[Tensor]  # [B, N_t, N_t], sigmoid(logits) * mask
    masks: list[Tensor]  # [N_t, N_t] bool


def cell_spans(n: int, duration: Tensor) -> Tensor:
    """Span in seconds of every cell of an ``n``-clip map -> ``[B, N, N, 2]``.

    Cell ``(i, j)`` covers ``[i * d / N, (j + 1) * d / N]`` with ``d = duration [B]``. Cells below
    the diagonal get the same formula (their start is after their end) and are never valid.
    """
    idx = torch.arange(n, device=duration.device, dtype=torch.float64)
    start = idx[:, None].expand(n, n)
    end = (idx + 1)[None, :].expand(n, n)
    unit = torch.stack([start, end], dim=-1) / n  # [N, N, 2] in fractions of the video
    return (unit[None] * duration.double()[:, None, None, None]).to(torch.float32)


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
    ``(r * i, r * (j + 1) - 1)`` with ``r = N_S / N``. Every stage's valid cells are scattered onto
    the final map (sum of scores and count of contributing stages); the final stage counts at each
    of its own valid cells, so every valid final cell averages over at least one score.

    Returns ``(scores [B, N_S, N_S], mask [N_S, N_S])``; 0 off the final mask.
    """
    final_scores, final_mask = output.scores[-1], output.masks[-1].bool()
    n_final = final_mask.shape[-1]
    total = torch.zeros_like(final_scores, dtype=torch.float32)
    count = torch.zeros(final_mask.shape, dtype=torch.float32, device=final_scores.device)
    for scores, mask in zip(output.scores, output.masks):  # one step per stage
        n = mask.shape[-1]
        if n_final % n:
            raise PLNError(f"strategy 2: stage with {n} clips does not divide the final {n_final} clips")
        r = n_final // n
        rows, cols = mask.bool().nonzero(as_tuple=True)
        fine_rows, fine_cols = r * rows, r * (cols + 1) - 1
        keep = final_mask[fine_rows, fine_cols]  # only spans the final stage can represent
        rows, cols, fine_rows, fine_cols = rows[keep], cols[keep], fine_rows[keep], fine_cols[keep]
        total[:, fine_rows, fine_cols] += scores[:, rows, cols].float()
        count[fine_rows, fine_cols] += 1.0
    fused = torch.where(final_mask, total / count.clamp(min=1.0), torch.zeros_like(total))
    return fused.to(final_scores.dtype), final_mask


def rank_candidates(scores: Tensor, mask: Tensor, duration: Tensor) -> tuple[Tensor, Tensor]:
    """All valid cells sorted by score, best first.

    ``scores [B, N, N]``, ``mask [N, N]``, ``duration [B]`` -> ``(spans [B, K, 2], scores [B, K])``
    with ``K`` the number of valid cells. Equal scores keep row-major cell order (stable sort).
    """
    mask = mask.bool()
    if scores.dim() != 3 or scores.shape[-2:] != mask.shape:
        raise PLNError(f"rank_candidates: scores {tuple(scores.shape)} do not match mask {tuple(mask.shape)}")
    rows, cols = mask.nonzero(as_tuple=True)  # row-major order
    cand_scores = scores[:, rows, cols]  # [B, K]
    spans = cell_spans(mask.shape[-1], duration.to(scores.device))[:, rows, cols]  # [B, K, 2]
    order = torch.sort(cand_scores, dim=1, descending=True, stable=True).indices
    return spans.gather(1, order[..., None].expand(-1, -1, 2)), cand_scores.gather(1, order)


def nms(spans: Tensor, scores: Tensor, threshold: float, keep: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """Greedy non-maximum suppression, batched.

    ``spans [B, K, 2]`` and ``scores [B, K]`` sorted best first (as from :func:`rank_candidates`).
    Walking down the list, a candidate is kept iff its IoU with every already kept one is
    ``<= threshold``; the walk stops once ``keep`` are kept. Equivalently, ``keep`` rounds of:
    keep the first candidate still alive, then kill it and every candidate whose IoU with it
    exceeds ``threshold``. Each round is a few tensor operations over all ``K`` candidates of all
    queries at once, with no host synchronisation (the loop runs ``keep`` times, whatever the data).

    Returns ``(spans [B, keep, 2], scores [B, keep], valid [B, keep])``; when fewer than ``keep``
    survive, the tail slots are zero with ``valid`` False.
    """
    b, k = scores.shape
    device = spans.device
    batch = torch.arange(b, device=device)
    position = torch.arange(k, device=device).expand(b, k)
    alive = torch.ones(b, k, dtype=torch.bool, device=device)
    kept_spans, kept_scores, kept_valid = [], [], []
    for _ in range(keep):
        first = torch.where(alive, position, k).min(dim=1).values  # [B]; k where none is alive
        valid = first < k
        pick = first.clamp(max=max(k - 1, 0))
        span = spans[batch, pick] if k else spans.new_zeros(b, 2)  # [B, 2]
        score = scores[batch, pick] if k else scores.new_zeros(b)
        kept_spans.append(torch.where(valid[:, None], span, torch.zeros_like(span)))
        kept_scores.append(torch.where(valid, score, torch.zeros_like(score)))
        kept_valid.append(valid)
        alive &= interval_iou(spans, span[:, None, :]) <= threshold  # [B, K]
        alive &= position != pick[:, None]
    return torch.stack(kept_spans, 1), torch.stack(kept_scores, 1), torch.stack(kept_valid, 1)


def predict_topk(output: StageMaps, duration: Tensor, strategy: Literal["1", "2"] | int = "1",
                 stage: int = -1, nms_threshold: float = 0.5, keep: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """Model output -> the top ``keep`` moments after NMS.

    ``duration [B]`` seconds; ``strategy`` "1" (stage ``stage``) or "2" (fused stages).
    Returns ``(spans [B, keep, 2] seconds, scores [B, keep], valid [B, keep])``.
    """
    if str(strategy) == "1":
        scores, mask = strategy1(output, stage)
    elif str(strategy) == "2":
        scores, mask = strategy2(output)
    else:
        raise ConfigError(f"eval.strategy must be '1' or '2', got {strategy!r}")
    spans, ranked = rank_candidates(scores.detach(), mask, duration)
    return nms(spans, ranked, nms_threshold, keep)
