"""The ConvNet over the 2D map (SPEC section 3), with 2D-TAN's MapConv padding and masking.

Each layer is ``x <- ReLU(conv(x)) * w``. The weights ``w`` come from the mask: the mask is
convolved with a ``K x K`` ones kernel (same padding and stride as the layer) to count the valid
input cells under the kernel; ``w = 1 / count`` where the count is positive and 0 elsewhere
(count normalisation), or ``w = [count > 0]`` without it. The mask handed to the next layer is
``count > 0``. With ``"first_layer"`` padding the first layer pads ``(K - 1) * L / 2`` and the
others 0, so the intermediate maps are larger than ``N`` and the output is ``N x N`` again.

Banded evaluation (``banded=True``). The network's output is read only at the valid cells of the
mask, so a layer's output matters only at its *needed* cells: where ``w > 0`` (elsewhere the
output is 0 whatever the convolution computes) and where some needed cell of the next layer
reads it (the last layer: the valid cells themselves). For the upper-triangular masks of the 2D
map the needed cells lie in a band along the diagonal. The banded path computes each strip of
``block`` output rows (convolution, ReLU, weighting) only over the rectangle that bounds the
strip's needed cells and leaves the rest 0. The output (zero outside the mask) and every gradient
equal the dense computation's up to float summation order; for the 2D-TAN TACoS ConvNet
(N = 128, 8 layers of 5 x 5) it computes 56% of the dense multiply-adds with ``block = 16``
(skipping only the all-zero region below the diagonal band would leave 70%).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

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


def needed_cells(weights: list[torch.Tensor], mask: torch.Tensor, kernel: int, paddings: list[int]) -> list[torch.Tensor]:
    """Per layer, bool ``[N_l, N_l]``: cells whose output can reach a valid cell of the output.

    The last layer needs the valid cells where its weight is positive; layer ``l`` needs the cells
    with ``w_l > 0`` that a needed cell of layer ``l + 1`` reads through its ``K x K`` window.
    """
    ones = torch.ones(1, 1, kernel, kernel, device=mask.device)
    need = [mask & (weights[-1][0, 0] > 0)]
    with torch.autocast(device_type=mask.device.type, enabled=False):
        for layer in range(len(weights) - 2, -1, -1):
            # conv_transpose2d with the next layer's padding maps its output cells back onto the
            # input cells each one reads (the K x K window).
            read = F.conv_transpose2d(need[0].to(torch.float32)[None, None], ones, padding=paddings[layer + 1])
            need.insert(0, (read[0, 0] > 0.5) & (weights[layer][0, 0] > 0))
    return need


class Strip(NamedTuple):
    """Rows ``[r0, r1)`` of a layer's output; its needed cells lie in rows ``[a, b)``, columns
    ``[c, d)`` (``a == b`` when the strip needs nothing)."""

    r0: int
    r1: int
    a: int
    b: int
    c: int
    d: int


def strip_rectangles(need: torch.Tensor, block: int) -> list[Strip]:
    """Cut ``need [S, S]`` into strips of ``block`` rows, each with the rectangle of its needed cells."""
    size = need.shape[-1]
    rows_any = need.any(dim=1).tolist()
    strips = []
    for r0 in range(0, size, block):
        r1 = min(r0 + block, size)
        rows = [r for r in range(r0, r1) if rows_any[r]]
        if not rows:
            strips.append(Strip(r0, r1, r0, r0, 0, 0))
            continue
        cols = need[r0:r1].any(dim=0).nonzero().flatten().tolist()
        strips.append(Strip(r0, r1, rows[0], rows[-1] + 1, cols[0], cols[-1] + 1))
    return strips


def _layout(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class _Windows(torch.autograd.Function):
    """``x [B, C, H, W]`` -> one copy per ``(r0, r1, c0, c1)`` box of ``x[:, :, r0:r1, c0:c1]``.

    Autograd would give every slice its own full-size zero gradient and then add them all up; this
    backward fills one gradient of ``x`` and adds each window's gradient into its box in place.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, boxes: tuple[tuple[int, int, int, int], ...]) -> tuple[torch.Tensor, ...]:
        ctx.boxes, ctx.shape, ctx.layout = boxes, x.shape, _layout(x)
        return tuple(x[:, :, r0:r1, c0:c1].contiguous(memory_format=ctx.layout) for r0, r1, c0, c1 in boxes)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> tuple[torch.Tensor, None]:
        ref = next(g for g in grads if g is not None)
        gx = torch.zeros(ctx.shape, dtype=ref.dtype, device=ref.device).contiguous(memory_format=ctx.layout)
        for (r0, r1, c0, c1), g in zip(ctx.boxes, grads):
            if g is not None:
                gx[:, :, r0:r1, c0:c1] += g
        return gx, None


class _Place(torch.autograd.Function):
    """Rectangles ``y_i [B, C, h_i, w_i]`` -> ``[B, C, S, S]`` holding each at its ``(row, col)``
    corner and 0 elsewhere: one zero fill and one copy per rectangle (instead of padding every
    strip to full width and concatenating); the backward is a slice per rectangle."""

    @staticmethod
    def forward(ctx, size: int, corners: tuple[tuple[int, int], ...], *ys: torch.Tensor) -> torch.Tensor:
        ctx.corners = corners
        ref = ys[0]
        out = torch.zeros(ref.shape[0], ref.shape[1], size, size, dtype=ref.dtype, device=ref.device)
        out = out.contiguous(memory_format=_layout(ref))
        for (r, c), y in zip(corners, ys):
            out[:, :, r:r + y.shape[2], c:c + y.shape[3]] = y
        ctx.sizes = [tuple(y.shape[2:]) for y in ys]
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple:
        return (None, None, *(g[:, :, r:r + h, c:c + w] for (r, c), (h, w) in zip(ctx.corners, ctx.sizes)))


def banded_layer(x: torch.Tensor, conv: nn.Conv2d, pad: int, strips: list[Strip], w: torch.Tensor) -> torch.Tensor:
    """One ConvNet layer ``ReLU(conv(x)) * w`` (zero padding ``pad``), computed only inside each
    strip's rectangle: the convolution, the ReLU and the weighting all run on the rectangles.

    ``x [B, C, S_in, S_in]``, ``w [1, 1, S_out, S_out]`` -> ``[B, C, S_out, S_out]`` with
    ``S_out = S_in + 2 * pad - K + 1``; entries outside the rectangles are 0 (the dense layer
    gives 0 there too where ``w`` is 0, and elsewhere no needed cell downstream reads them).
    """
    k = conv.kernel_size[0]
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    size = xp.shape[-1] - k + 1
    parts = [s for s in strips if s.a < s.b]
    if not parts:
        return x.new_zeros(x.shape[0], conv.out_channels, size, size)
    windows = _Windows.apply(xp, tuple((s.a, s.b + k - 1, s.c, s.d + k - 1) for s in parts))
    ys = [torch.relu(F.conv2d(win, conv.weight, conv.bias)) * w[:, :, s.a:s.b, s.c:s.d]
          for win, s in zip(windows, parts)]  # [B, C, b - a, d - c] each
    return _Place.apply(size, tuple((s.a, s.c) for s in parts), *ys)


def computed_share(strips: list[list[Strip]], sizes: list[int]) -> float:
    """Share of the dense computation's output cells that the banded path computes."""
    done = sum((s.b - s.a) * (s.d - s.c) for layer in strips for s in layer)
    return done / sum(n * n for n in sizes)


class MapConvNet(nn.Module):
    """``L`` layers of ``K x K`` conv ``C -> C`` + ReLU: ``(x [B, C, N, N], mask [N, N]) -> [B, C, N, N]``.

    The output is zero at the invalid cells of ``mask``.
    """

    def __init__(self, channels: int, layers: int, kernel: int,
                 padding: Literal["first_layer", "same"] = "first_layer", count_norm: bool = True,
                 banded: bool = False, block: int = 16, channels_last: bool = False) -> None:
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
                need = needed_cells(weights, mask, self.kernel, self.paddings)
                strips = [strip_rectangles(n, self.block) for n in need]
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
            if self.banded:
                x = banded_layer(x, conv, pad, strips[layer], w.to(x.dtype))
            else:
                x = torch.relu(conv(x)) * w.to(x.dtype)
        return x * mask.to(x.dtype)
