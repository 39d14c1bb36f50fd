"""The ConvNet over the 2D map (SPEC section 3), with 2D-TAN's MapConv padding and masking.

Each layer is ``x <- ReLU(conv(x)) * w``. The weights ``w`` come from the mask: the mask is
convolved with a ``K x K`` ones kernel (same padding and stride as the layer) to count the valid
input cells under the kernel; ``w = 1 / count`` where the count is positive and 0 elsewhere
(count normalisation), or ``w = [count > 0]`` without it. The mask handed to the next layer is
``count > 0``. With ``"first_layer"`` padding the first layer pads ``(K - 1) * L / 2`` and the
others 0, so the intermediate maps are larger than ``N`` and the output is ``N x N`` again.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


def layer_paddings(kernel: int, layers: int, rule: Literal["first_layer", "same"]) -> list[int]:
    """Padding of each layer: ``[(K-1)*L/2, 0, ...]`` (``first_layer``) or ``[(K-1)/2] * L``."""
    if rule == "first_layer":
        return [(kernel - 1) * layers // 2] + [0] * (layers - 1)
    if rule == "same":
        return [(kernel - 1) // 2] * layers
    raise ValueError(f"unknown padding rule {rule!r}")


def mask_weights(mask: torch.Tensor, kernel: int, paddings: list[int], count_norm: bool) -> list[torch.Tensor]:
    """Per-layer weights ``[1, 1, N_l, N_l]`` (float32) for a bool ``mask [N, N]``."""
    weights = []
    current = mask.to(torch.float32)[None, None]
    ones = torch.ones(1, 1, kernel, kernel, device=mask.device)
    with torch.autocast(device_type=mask.device.type, enabled=False):
        for pad in paddings:
            count = torch.round(F.conv2d(current, ones, padding=pad))
            covered = count > 0
            if count_norm:
                weights.append(torch.where(covered, 1.0 / count.clamp(min=1.0), torch.zeros_like(count)))
            else:
                weights.append(covered.to(torch.float32))
            current = covered.to(torch.float32)
    return weights


class MapConvNet(nn.Module):
    """``L`` layers of ``K x K`` conv ``C -> C`` + ReLU: ``(x [B, C, N, N], mask [N, N]) -> [B, C, N, N]``.

    The output is zero at the invalid cells of ``mask``.
    """

    def __init__(self, channels: int, layers: int, kernel: int,
                 padding: Literal["first_layer", "same"] = "first_layer", count_norm: bool = True) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"MapConvNet needs an odd kernel, got {kernel}")
        self.kernel = kernel
        self.count_norm = count_norm
        self.paddings = layer_paddings(kernel, layers, padding)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel, padding=p) for p in self.paddings)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, C, N, N]``, ``mask [N, N]`` bool ``-> [B, C, N, N]``."""
        weights = mask_weights(mask, self.kernel, self.paddings, self.count_norm)
        for conv, w in zip(self.convs, weights):
            x = torch.relu(conv(x)) * w.to(x.dtype)
        return x * mask.to(x.dtype)
