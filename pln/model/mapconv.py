"""The ConvNet over the 2D map (SPEC section 3), with 2D-TAN's MapConv padding and masking.

Each layer is ``x <- ReLU(conv(x)) * w``. The weights ``w`` come from the mask: the mask is
convolved with a ``K x K`` ones kernel (same padding and stride as the layer) to count the valid
input cells under the kernel; ``w = 1 / count`` where the count is positive and 0 elsewhere
(count normalisation), or ``w = [count > 0]`` without it. The mask handed to the next layer is
``count > 0``. With ``"first_layer"`` padding the first layer pads ``(K - 1) * L / 2`` and the
others 0, so the intermediate maps are larger than ``N`` and the output is ``N x N`` again.

Initialisation. PyTorch's default (``"pytorch"``, as 2D-TAN) draws weights of variance
``1 / (3 fan_in)``; followed by the division by the count (up to ``K^2``), a layer then shrinks
the scale of its input about ``K^2 / 0.4`` times (about 60 for ``K = 5``): at initialisation the
output map is nearly constant over cells and training first has to grow the weights out of that.
``"unit_gain"`` draws ``N(0, 2 K^2 / C)`` weights and zero biases: with ``C K^2`` inputs of
second moment ``q``, of which ``n`` are valid, ReLU keeps half of ``n C var(w) q``, and dividing by
``n^2`` leaves ``C var(w) q / (2 n)``, which is ``q`` for a full window (``n = K^2``); He et al.'s
rule for the layer as it is computed. Without count normalisation it is plain He-normal.

Banded evaluation (``banded=True``) gives the same output and gradients while computing each
layer only where the output can depend on it; it lives in :mod:`pln.model.mapconv_banded`, which
says what it computes and why it is exact (``tests/test_model_layers.py`` checks the two agree).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pln.model.mapconv_banded import Strip, banded_layer, plan_strips


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
                 padding: Literal["first_layer", "same"] = "first_layer", count_norm: bool = True,
                 init: Literal["pytorch", "unit_gain"] = "pytorch", banded: bool = False, block: int = 16,
                 channels_last: bool = False) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"MapConvNet needs an odd kernel, got {kernel}")
        if block < 1:
            raise ValueError(f"MapConvNet needs block >= 1, got {block}")
        self.banded = banded
        self.block = block
        self.channels_last = channels_last
        self.kernel = kernel
        self.count_norm = count_norm
        self.paddings = layer_paddings(kernel, layers, padding)
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel, padding=p) for p in self.paddings)
        if init == "unit_gain":
            fan_in = channels * kernel * kernel
            variance = 2.0 * kernel * kernel / channels if count_norm else 2.0 / fan_in
            for conv in self.convs:
                nn.init.normal_(conv.weight, std=variance ** 0.5)
                nn.init.zeros_(conv.bias)
        elif init != "pytorch":
            raise ValueError(f"unknown ConvNet init {init!r}")
        # Per mask tensor: (mask, layer weights, strips per layer). The masks of a model are
        # constant buffers, so this is computed once per stage and device instead of at every
        # step (the strip bounds would otherwise cost host syncs at every step).
        self._mask_plans: dict[int, tuple[torch.Tensor, list[torch.Tensor], list[list[Strip]]]] = {}

    def plan(self, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[list[Strip]]]:
        """(layer weights ``[1, 1, N_l, N_l]``, strips per layer (empty unless banded)) of ``mask``."""
        entry = self._mask_plans.get(id(mask))
        if entry is None or entry[0] is not mask:
            weights = mask_weights(mask, self.kernel, self.paddings, self.count_norm)
            strips: list[list[Strip]] = []
            if self.banded:
                strips = plan_strips(weights, mask, self.kernel, self.paddings, self.block)
            if len(self._mask_plans) >= 8:  # masks passed ad hoc (tests): keep the cache small
                self._mask_plans.clear()
            entry = (mask, weights, strips)
            self._mask_plans[id(mask)] = entry
        return entry[1], entry[2]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x [B, C, N, N]``, ``mask [N, N]`` bool ``-> [B, C, N, N]``."""
        weights, strips = self.plan(mask)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for layer, (conv, w, pad) in enumerate(zip(self.convs, weights, self.paddings)):
            if not self.banded:
                x = torch.relu(conv(x)) * w.to(x.dtype)
            else:  # the same values at every cell the output reads (pln.model.mapconv_banded)
                x = banded_layer(x, conv, pad, strips[layer], w.to(x.dtype))
        return x * mask.to(x.dtype)
