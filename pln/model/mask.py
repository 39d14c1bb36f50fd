"""The sparse candidate mask of 2D-TAN (SPEC section 3) and the cell alignment between stages.

Cell ``(i, j)`` of an ``N x N`` map is the moment that starts at clip ``i`` and ends at clip
``j``. With ``l = j - i + 1`` it is a candidate (valid) iff ``l <= 16``, or ``l = 2^k * q`` with
``k >= 1``, ``q in 9..16`` and ``i % 2^k == 0``: short moments are sampled densely, long ones
with a start stride that doubles with every doubling of the length.
"""

from __future__ import annotations

import torch

DENSE_LENGTH = 16  # every moment of up to this many clips is a candidate
_Q_MIN, _Q_MAX = 9, 16  # long moments have length 2^k * q with q in this range


def valid_mask(n: int) -> torch.Tensor:
    """BoolTensor ``[N, N]``: True at the valid (candidate) cells of an ``N``-clip map."""
    if n < 1:
        raise ValueError(f"valid_mask needs n >= 1, got {n}")
    i = torch.arange(n).view(n, 1)
    j = torch.arange(n).view(1, n)
    length = j - i + 1
    valid = (length >= 1) & (length <= DENSE_LENGTH)
    k = 1
    while _Q_MIN * 2**k <= n:  # one term per scale: O(log N) tensor ops
        stride = 2**k
        q_ok = (length % stride == 0) & (length // stride >= _Q_MIN) & (length // stride <= _Q_MAX)
        valid |= q_ok & (i % stride == 0)
        k += 1
    return valid


def num_valid(n: int) -> int:
    """Number of valid cells of an ``N``-clip map (16: 136, 32: 428, 64: 1104, 128: 2548)."""
    return int(valid_mask(n).sum())


def valid_cells(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows ``[V]``, cols ``[V]``) of the valid cells of an ``N``-clip map, row-major order."""
    rows, cols = valid_mask(n).nonzero(as_tuple=True)
    return rows, cols


def aligned_cells(n_coarse: int, n_fine: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fine-map (rows ``[V]``, cols ``[V]``) of the valid coarse cells, in :func:`valid_cells` order.

    Coarse cell ``(i, j)`` of an ``n_coarse`` map spans the same time as fine cell
    ``(r*i, r*(j+1) - 1)`` of an ``n_fine = r * n_coarse`` map; that fine cell is always valid.
    """
    if n_fine % n_coarse:
        raise ValueError(f"aligned_cells: {n_fine} is not a multiple of {n_coarse}")
    r = n_fine // n_coarse
    rows, cols = valid_cells(n_coarse)
    return r * rows, r * (cols + 1) - 1
