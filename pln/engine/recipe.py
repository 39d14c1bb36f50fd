"""The optimisation recipe (SPEC section 4): Adam, gradient-norm clipping after every backward
pass and an optional plateau schedule on the validation loss, as in 2D-TAN's training code.

- :func:`make_optimizer` -- Adam at ``train.lr`` with ``train.weight_decay`` (on the CPU without a
  plateau schedule :class:`pln.engine.adam.CpuAdam`, the same arithmetic without torch's compiler
  stack; else ``torch.optim.Adam``);
- :func:`backward_step` -- zero the gradients, backward, clip the norm of all of them at
  ``train.grad_clip_norm``, step;
- :func:`make_plateau` -- ``ReduceLROnPlateau`` (mode ``min``) from ``train.lr_plateau``, or None;
- :func:`scheduled_lr` / :func:`set_lr` -- the warm-up + cosine rate of a step (``train.lr_cosine``);
- :class:`ValidationLoss` -- the joint loss of a split, summed in the pass that predicts it;
- :class:`WeightAverage` -- an exponential moving average of the weights (``train.ema_epochs``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from pln.config import LossConfig, PlateauConfig, TrainConfig
from pln.engine.adam import CpuAdam
from pln.geometry import cell_ious
from pln.loss import joint_loss
from pln.model.pln import PLNOutput


Optimizer = torch.optim.Optimizer | CpuAdam  # what make_optimizer returns


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> Optimizer:
    """Adam over every parameter of ``model``: :class:`~pln.engine.adam.CpuAdam` when every
    parameter is on the CPU and ``train.lr_plateau`` is null (bit-identical to torch's Adam there,
    and a run skips the 2-3 s import of ``torch._dynamo`` that any ``torch.optim.Optimizer``
    triggers), else ``torch.optim.Adam`` (its fused or foreach kernels on a GPU; the plateau
    schedule needs a ``torch.optim.Optimizer``). Both write the same ``state_dict`` layout."""
    params = list(model.parameters())
    if cfg.lr_plateau is None and all(p.device.type == "cpu" for p in params):
        return CpuAdam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def backward_step(model: nn.Module, optimizer: Optimizer, loss: torch.Tensor,
                  grad_clip_norm: float | None) -> None:
    """One update from the scalar ``loss``: the gradients of all parameters are rescaled so that
    their joint L2 norm is at most ``grad_clip_norm`` (None: not clipped) before the step. Does
    not synchronise with the device."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    optimizer.step()


def make_plateau(optimizer: torch.optim.Optimizer, cfg: PlateauConfig | None) -> ReduceLROnPlateau | None:
    """The plateau schedule, stepped with the validation loss after every validation; None when
    ``train.lr_plateau`` is null."""
    if cfg is None:
        return None
    return ReduceLROnPlateau(optimizer, mode="min", factor=cfg.factor, patience=cfg.patience)


def scheduled_lr(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float | None:
    """The rate of global step ``step`` (0-based, counted across epochs) under ``train.lr_cosine``
    (formula in :class:`pln.config.CosineConfig`); None when no such schedule is set."""
    sched = cfg.lr_cosine
    if sched is None:
        return None
    total = cfg.max_epochs * steps_per_epoch
    warmup = round(sched.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(total - warmup, 1)
    progress = min(step - warmup, span) / span
    return cfg.lr * (sched.final_fraction + (1.0 - sched.final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: Optimizer, lr: float) -> None:
    """Give every parameter group the rate ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def current_lr(optimizer: Optimizer) -> float:
    """The learning rate of the (single) parameter group."""
    return float(optimizer.param_groups[0]["lr"])


class ValidationLoss:
    """Accumulates the joint loss (eq. 8) of every batch a predictor sees; :meth:`mean` is the
    query-weighted mean. Labels come from the batch's ground truth (``gt [B, 2]``, ``duration
    [B]``) through :func:`pln.geometry.cell_ious`, so the split's items need not carry IoU maps.
    Sums stay on the device until :meth:`mean`."""

    def __init__(self, cfg: LossConfig, lambdas: list[float]) -> None:
        self.cfg, self.lambdas = cfg, lambdas
        self.total: torch.Tensor | None = None
        self.count = 0

    def __call__(self, output: PLNOutput, batch: dict) -> None:
        ious = [cell_ious(batch["gt"], batch["duration"], mask.shape[-1]) for mask in output.masks]
        logits = [x.float() for x in output.logits]
        total, _ = joint_loss(output._replace(logits=logits), ious, self.cfg, self.lambdas)
        b = int(batch["gt"].shape[0])
        weighted = b * total.detach().double()
        self.total = weighted if self.total is None else self.total + weighted
        self.count += b

    def mean(self) -> float:
        """Mean loss over the queries seen (NaN when none)."""
        return float(self.total.item()) / self.count if self.count else float("nan")


class WeightAverage:
    """An exponential moving average of a model's parameters, updated after every optimiser step.

    With a horizon of ``horizon_steps`` steps (``train.ema_epochs`` x steps per epoch) the decay
    is d = 1 - 1 / horizon_steps; the k-th update (1-based) uses min(d, (1 + k) / (10 + k)), so
    the first updates follow the weights closely instead of averaging in their initial values.
    After update k: avg <- d_k * avg + (1 - d_k) * weights. Buffers are copied, not averaged.
    :attr:`model` is the averaged copy (no gradients); validation and testing use it.
    """

    def __init__(self, model: nn.Module, horizon_steps: float) -> None:
        if not horizon_steps >= 1.0:
            raise ValueError(f"WeightAverage: the horizon must be at least one step, got {horizon_steps}")
        self.decay = 1.0 - 1.0 / horizon_steps
        self.updates = 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    def step_decay(self) -> float:
        """The decay the next update uses."""
        k = self.updates + 1
        return min(self.decay, (1.0 + k) / (10.0 + k))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current parameters (same architecture)."""
        weight = 1.0 - self.step_decay()
        for avg, value in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(value.detach(), weight)
        for avg, value in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to resume the average: its weights and update count."""
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
