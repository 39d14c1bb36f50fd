"""Training objective (SPEC section 4, paper eqs. 6-8).

Every valid cell of every stage's map is a binary classification target whose soft label comes
from the IoU of the cell's span with the ground-truth moment:

- the IoU maps ``[B, N, N]`` come from :mod:`pln.geometry` (``iou_map`` per dataset item,
  ``cell_ious`` batched);
- ``soft_labels``: IoU -> target in [0, 1] (paper eq. 7, or 2D-TAN's rescaling);
- ``stage_loss``: binary cross-entropy averaged over the valid cells of the batch (eq. 6);
- ``joint_loss``: ``sum_t lambda_t L_t`` over the stages (eq. 8).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from pln.config import LossConfig
from pln.errors import PLNError


class StageLogits(Protocol):
    """What the loss needs from a model output: per-stage logits and masks."""

    logits: list[Tensor]  # [B, N_t, N_t] pre-sigmoid scores
    masks: list[Tensor]  # [N_t, N_t] bool


def soft_labels(iou: Tensor, cfg: LossConfig) -> Tensor:
    """Soft targets from IoUs, same shape as ``iou`` (e.g. ``[B, N, N]``).

    ``cfg.label == "pln"`` (paper eq. 7): ``0`` if ``o <= tau`` else ``(o - tau) / (1 - tau)``.
    ``cfg.label == "tan"`` (2D-TAN's ``bce_rescale_loss``): ``p = (o - min_iou) (1 - bias) /
    (max_iou - min_iou)``, then ``p + bias`` where ``p > 0``, clamped to ``[0, 1]``; with
    ``bias = 0`` (2D-TAN's configs) this is ``clamp((o - min_iou) / (max_iou - min_iou), 0, 1)``.
    """
    if cfg.label == "pln":
        return torch.where(iou > cfg.tau, (iou - cfg.tau) / (1.0 - cfg.tau), torch.zeros_like(iou))
    if cfg.label == "tan":
        p = (iou - cfg.min_iou) * (1.0 - cfg.bias) / (cfg.max_iou - cfg.min_iou)
        p = torch.where(p > 0, p + cfg.bias, p)
        return p.clamp(0.0, 1.0)
    raise PLNError(f"loss.label must be 'pln' or 'tan', got {cfg.label!r}")


def stage_loss(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy averaged over the valid cells of the batch -> scalar.

    ``logits [B, N, N]`` (pre-sigmoid), ``labels [B, N, N]`` in [0, 1], ``mask [N, N]`` (or
    ``[B, N, N]``). Computed from logits (``BCE(sigmoid(x), y)`` in a numerically stable form).
    """
    mask = mask.bool().expand_as(logits)
    if not bool(mask.any()):
        raise PLNError("stage_loss: the mask has no valid cell")
    return F.binary_cross_entropy_with_logits(logits[mask].float(), labels[mask].float())


def joint_loss(output: StageLogits, ious: Sequence[Tensor], cfg: LossConfig,
               lambdas: Sequence[float] | None = None) -> tuple[Tensor, list[Tensor]]:
    """``sum_t lambda_t L_t`` over the stages (paper eq. 8).

    ``output.logits[t] [B, N_t, N_t]`` and ``output.masks[t] [N_t, N_t]``; ``ious[t] [B, N_t, N_t]``
    (:func:`pln.geometry.iou_map` / :func:`pln.geometry.cell_ious`). ``lambdas`` defaults to ``cfg.resolved_lambdas(num_stages)``.
    Returns ``(total scalar, [L_1, ..., L_S])``.
    """
    num_stages = len(output.logits)
    if len(ious) != num_stages:
        raise PLNError(f"joint_loss: {len(ious)} IoU maps for a {num_stages}-stage model")
    weights = list(lambdas) if lambdas is not None else cfg.resolved_lambdas(num_stages)
    if len(weights) != num_stages:
        raise PLNError(f"joint_loss: {len(weights)} lambdas for a {num_stages}-stage model")
    per_stage = [stage_loss(logits, soft_labels(iou.to(logits.device), cfg), mask)
                 for logits, iou, mask in zip(output.logits, ious, output.masks)]
    total = sum(w * loss for w, loss in zip(weights, per_stage))
    return total, per_stage
