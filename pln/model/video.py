"""Video side of the input (SPEC section 2, steps 3-4): the unit encoder and clip pooling."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pln.config import ModelConfig
from pln.errors import DataError


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """``[length, dim]`` sinusoidal position encoding (Vaswani et al.).

    ``pe[p, 2k] = sin(p / 10000^(2k/dim))`` and ``pe[p, 2k+1] = cos(p / 10000^(2k/dim))``.
    """
    position = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * freq)
    pe[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return pe.float()


class VideoEncoder(nn.Module):
    """Per-unit FC + ReLU, with an optional sinusoidal position encoding.

    ``units [B, M, D] -> [B, M, H]``. The encoding is added after the FC (default) or to the raw
    features before it (``cfg.positional_encoding_place``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.feature_dim, cfg.hidden)
        self.use_pe = cfg.positional_encoding
        self.pe_before_fc = cfg.positional_encoding_place == "before_fc"
        pe_dim = cfg.feature_dim if self.pe_before_fc else cfg.hidden
        self.register_buffer("pe", sinusoidal_encoding(cfg.num_units, pe_dim), persistent=False)

    def _position(self, x: torch.Tensor) -> torch.Tensor:
        pe = self.pe if x.shape[1] == self.pe.shape[0] else sinusoidal_encoding(x.shape[1], x.shape[2])
        return x + pe.to(device=x.device, dtype=x.dtype)

    def forward(self, units: torch.Tensor) -> torch.Tensor:
        """``units [B, M, D] -> [B, M, H]``."""
        if units.shape[-1] != self.fc.in_features:
            raise DataError(f"video features have {units.shape[-1]} dims but model.feature_dim is "
                            f"{self.fc.in_features}; set model.feature_dim to match the feature file")
        x = units
        if self.use_pe and self.pe_before_fc:
            x = self._position(x)
        x = torch.relu(self.fc(x))
        if self.use_pe and not self.pe_before_fc:
            x = self._position(x)
        return x


def pool_clips(x: torch.Tensor, n: int) -> torch.Tensor:
    """Mean-pool units into ``n`` clips, kernel = stride = ``M / n``: ``[B, M, H] -> [B, H, N]``."""
    m = x.shape[1]
    if m % n:
        raise DataError(f"{m} video units cannot be pooled into {n} clips; "
                        "model.num_units must be a multiple of every clip count")
    k = m // n
    return F.avg_pool1d(x.transpose(1, 2), kernel_size=k, stride=k)
