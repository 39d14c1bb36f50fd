"""The Progressive Localization Network (SPEC sections 2-3).

One video encoder and one sentence encoder serve every stage. Stage ``t`` pools the units into
``N_t`` clips, modulates them with the CFM (``t > 1``), builds the sparse 2D map, fuses it with
the sentence, merges the upsampled ``H^{t-1}`` by an element-wise max (``t > 1``), runs the
(shared) ConvNet and predicts one logit per cell. A one-stage model is one localization branch,
2D-TAN's architecture: with 2D-TAN's ConvNet and labels it is the official 2D-TAN baseline
(Tables 2-3); with the paper's 2 conv layers and eq. 7 labels, PLN's own one-stage model (Table 5).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from pln.config import ModelConfig
from pln.geometry import valid_mask
from pln.model.map2d import build_map, build_map_fast
from pln.model.mapconv import MapConvNet
from pln.model.query import QueryEncoder
from pln.model.stage import CFM, Fusion, Predictor, UpsamplingConnection, merge_max
from pln.model.video import VideoEncoder, pool_clips


class PLNOutput(NamedTuple):
    """Per-stage outputs, coarse to fine.

    ``logits[t]`` and ``scores[t]`` are fp32 ``[B, N_t, N_t]`` (zero at invalid cells), under
    autocast too, ``scores = sigmoid(logits) * mask``; ``masks[t]`` is the bool ``[N_t, N_t]`` valid mask.
    """

    logits: list[torch.Tensor]
    scores: list[torch.Tensor]
    masks: list[torch.Tensor]


class PLN(nn.Module):
    """``forward(units [B, M, D], words [B, L, E], lengths [B]) -> PLNOutput``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.clips = list(cfg.clips)
        h, c = cfg.hidden, cfg.conv_channels
        stages = len(self.clips)
        self.video = VideoEncoder(cfg)
        self.query = QueryEncoder(cfg)
        self.fusions = nn.ModuleList(Fusion(h, c) for _ in range(1 if cfg.share_fusion else stages))
        self.cfms = nn.ModuleList(
            CFM(h, c, cfg.cfm_projection) for _ in range(stages - 1)) if cfg.use_cfm else None
        self.ucs = nn.ModuleList(
            UpsamplingConnection(c, self.clips[t - 1], self.clips[t], cfg.upsample_mode,
                                 cfg.uc_layout(t)[0], cfg.uc_relu)
            for t in range(1, stages)) if cfg.use_uc else None
        self.convnets = nn.ModuleList(
            MapConvNet(c, cfg.conv_layers, cfg.conv_kernel, cfg.conv_padding, cfg.conv_count_norm,
                       init=cfg.conv_init, banded=cfg.conv_banded, block=cfg.conv_block,
                       channels_last=cfg.conv_channels_last)
            for _ in range(1 if cfg.share_convnet else stages))
        self.predictors = nn.ModuleList(Predictor(c) for _ in range(1 if cfg.share_predictor else stages))
        for t, n in enumerate(self.clips):
            self.register_buffer(f"mask_{t}", valid_mask(n), persistent=False)

    @property
    def masks(self) -> list[torch.Tensor]:
        """The bool ``[N_t, N_t]`` valid mask of every stage, on the model's device."""
        return [getattr(self, f"mask_{t}") for t in range(len(self.clips))]

    def convnet(self, t: int) -> MapConvNet:
        """The ConvNet of stage ``t`` (the same module for every stage when shared)."""
        return self.convnets[0 if len(self.convnets) == 1 else t]

    def forward(self, units: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor) -> PLNOutput:
        """``units [B, M, D]``, ``words [B, L, E]``, ``lengths [B]`` ``-> PLNOutput``."""
        x = self.video(units)  # [B, M, H]
        f_s = self.query(words, lengths)  # [B, H]
        masks = self.masks
        map2d = build_map_fast if self.cfg.map_fast else build_map
        logits, scores = [], []
        prev, prev_mask = None, None
        for t, n in enumerate(self.clips):
            mask = masks[t]
            clips = pool_clips(x, n)  # [B, H, N]
            if t > 0 and self.cfms is not None:
                clips = self.cfms[t - 1](clips, prev, prev_mask)
            g = self.fusions[t % len(self.fusions)](map2d(clips, mask), f_s, mask)  # [B, C, N, N]
            if t > 0 and self.ucs is not None:
                g = merge_max(g, self.ucs[t - 1](prev), mask)
            hmap = self.convnet(t)(g, mask)  # [B, C, N, N], zero at invalid cells
            logit = self.predictors[t % len(self.predictors)](hmap, mask)  # fp32
            logits.append(logit)
            with torch.autocast(logit.device.type, enabled=False):  # the ranking never sees bf16
                scores.append(torch.sigmoid(logit) * mask.float())
            prev, prev_mask = hmap, mask
        return PLNOutput(logits, scores, masks)
