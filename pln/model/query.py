"""Sentence encoder (SPEC section 2): a unidirectional multi-layer LSTM over word vectors."""

from __future__ import annotations

import torch
from torch import nn

from pln.config import ModelConfig
from pln.errors import DataError


class QueryEncoder(nn.Module):
    """``(words [B, L, E], lengths [B]) -> f_s [B, H]``: top-layer output at the last real word.

    The LSTM runs over the padded batch; because it is unidirectional, the output at position
    ``lengths - 1`` does not depend on the padding after it. It always runs in fp32, outside any
    autocast region: CPUs without bf16 instructions have no bf16 LSTM kernel (oneDNN fails to
    create one), and the sentence vector ``f_s`` stays fp32 for every stage.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.word_dim, cfg.hidden, num_layers=cfg.lstm_layers, batch_first=True)

    def forward(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``words [B, L, E]``, ``lengths [B]`` (1..L) ``-> [B, H]`` fp32."""
        b, l, _ = words.shape
        if lengths.shape != (b,):
            raise DataError(f"lengths has shape {tuple(lengths.shape)}, expected ({b},)")
        if bool(((lengths < 1) | (lengths > l)).any()):  # one host sync per batch
            raise DataError(f"sentence lengths must be in 1..{l}, got {lengths.tolist()}")
        with torch.autocast(words.device.type, enabled=False):
            out, _ = self.lstm(words.float())  # [B, L, H] fp32
        last = (lengths.to(device=out.device, dtype=torch.long) - 1).view(b, 1, 1)
        return out.gather(1, last.expand(b, 1, out.shape[-1])).squeeze(1)
