"""Banded evaluation of the map ConvNet: the same output as the dense layers of
:mod:`pln.model.mapconv`, computed only where it can matter.

What it computes. The dense layer is ``x <- ReLU(conv(x)) * w`` over the whole (padded) map and
the network's output is multiplied by the valid mask at the end. Here each layer's output is cut
into strips of ``block`` rows; for each strip the convolution, the ReLU and the weighting run
only on the rectangle that bounds the strip's *needed* cells, and every other cell is 0.

Needed cells (:func:`needed_cells`), from the last layer back to the first: the last layer needs
the valid cells of the mask where its weight is positive; layer ``l`` needs the cells with
``w_l > 0`` that some needed cell of layer ``l + 1`` reads through its ``K x K`` window. For the
upper-triangular masks of the 2D map they form a band along the diagonal.

Why it is exact. By induction from the first layer, every needed cell gets the dense value: its
``K x K`` window lies inside the strip's input window, and each input it reads is either a needed
cell of the previous layer (dense value by induction) or a cell with ``w = 0`` (0 in both paths),
or padding (0 in both). A cell that is not needed either has ``w = 0`` (0 in both paths) or is
read by no needed cell, so its value cannot reach the output. The output at the valid cells is
therefore the dense output as a function of the input and the parameters, and so are its
gradients; the results agree up to float summation order (``tests/test_model_layers.py`` checks
outputs and gradients against the dense layers, in fp32 and under bf16 autocast). Cells outside
the needed band are 0 here where the dense path may hold other values, but the final mask zeroes
them in both.

What it saves: for the 2D-TAN TACoS ConvNet (N = 128, 8 layers of 5 x 5) it computes 56% of the
dense multiply-adds with ``block = 16`` (skipping only the all-zero region below the diagonal band
would leave 70%). Two custom autograd functions keep the backward pass as lean as the forward:
:class:`_Windows` (one gradient buffer for all the strips' input windows) and :class:`_Place`
(one zero fill for all the strips' outputs).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def needed_cells(weights: list[torch.Tensor], mask: torch.Tensor, kernel: int, paddings: list[int]) -> list[torch.Tensor]:
    """Per layer, bool ``[N_l, N_l]``: cells whose output can reach a valid cell of the output.

    ``weights``: the layers' ``[1, 1, N_l, N_l]`` weights (:func:`pln.model.mapconv.mask_weights`);
    ``mask [N, N]`` bool. The last layer needs the valid cells where its weight is positive;
    layer ``l`` needs the cells with ``w_l > 0`` that a needed cell of layer ``l + 1`` reads
    through its ``K x K`` window.
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


def plan_strips(weights: list[torch.Tensor], mask: torch.Tensor, kernel: int, paddings: list[int],
                block: int) -> list[list[Strip]]:
    """The strips of every layer for ``mask [N, N]`` and the layers' ``weights`` (see :func:`needed_cells`)."""
    return [strip_rectangles(n, block) for n in needed_cells(weights, mask, kernel, paddings)]


def computed_share(strips: list[list[Strip]], sizes: list[int]) -> float:
    """Share of the dense computation's output cells that the banded path computes."""
    done = sum((s.b - s.a) * (s.d - s.c) for layer in strips for s in layer)
    return done / sum(n * n for n in sizes)


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
