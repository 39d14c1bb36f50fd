"""The 2D temporal feature map (SPEC section 3): ``M[i, j] = max(c_i .. c_j)`` at valid cells."""

from __future__ import annotations

import torch


def _span_index(n: int, device: torch.device) -> torch.Tensor:
    """``[N, N]`` position of span ``(i, j)`` (``j >= i``) in the concatenated running maxima.

    Maxima of ``d + 1`` clips occupy positions ``d*N - d*(d-1)/2 + i`` for ``i < N - d``; cells
    below the diagonal point at position 0 (they are masked afterwards).
    """
    i = torch.arange(n, device=device).view(n, 1)
    j = torch.arange(n, device=device).view(1, n)
    d = (j - i).clamp(min=0)
    return torch.where(j >= i, d * n - d * (d - 1) // 2 + i, torch.zeros_like(d))


def build_map(clips: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``clips [B, H, N]``, ``mask [N, N]`` bool ``-> [B, H, N, N]``, zero at invalid cells.

    Running maxima ``max(c_i .. c_{i+d})`` are built offset by offset (O(N) tensor ops, each the
    max of the previous offset's result and the clips shifted by ``d``), concatenated, and every
    cell ``(i, j)`` then reads its span's maximum with one gather.
    """
    b, h, n = clips.shape
    run = clips
    runs = [clips]
    for d in range(1, n):
        run = torch.maximum(run[..., :-1], clips[..., d:])  # [B, H, N - d]: spans of d + 1 clips
        runs.append(run)
    flat = torch.cat(runs, dim=2)  # [B, H, N (N + 1) / 2]
    cells = flat[:, :, _span_index(n, clips.device)]  # [B, H, N, N]
    return cells * mask.to(dtype=clips.dtype)
