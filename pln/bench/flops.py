"""FLOPs of one training pass, from torch's FLOP counter."""

from __future__ import annotations

import torch

from pln.model import PLN


def count_flops(model: PLN, batch: dict[str, torch.Tensor]) -> float:
    """FLOPs of one forward + backward pass (convolutions and matrix products) on ``batch``
    (``units [B, M, D]``, ``words [B, L, E]``, ``lengths [B]``); leaves no gradients behind."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = model(batch["units"], batch["words"], batch["lengths"])
        sum(x.float().sum() for x in out.logits).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
