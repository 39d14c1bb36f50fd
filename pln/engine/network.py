"""The network as the engine uses it: built on a device (with a checkpoint's weights) and run
forward under the run's precision.

- :func:`load_model` -- ``PLN(cfg)`` on the device; with a checkpoint, its model configuration
  checked and its weights loaded (`pln train` resuming and testing, `pln evaluate`,
  `pln predict`, `pln bench`);
- :func:`forward` -- the one forward pass: bf16 autocast when asked, logits and scores in fp32
  (the training step, the pass over a split, the score maps, `pln predict`, `pln bench`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pln.config import ModelConfig
from pln.engine.checkpoint import check_model_config, load_checkpoint
from pln.model import PLN, PLNOutput


def load_model(cfg: ModelConfig, device: torch.device, checkpoint: str | Path | None = None,
               state: dict[str, Any] | None = None) -> PLN:
    """``PLN(cfg)`` on ``device``; with ``checkpoint``, the weights of that checkpoint after
    :func:`~pln.engine.checkpoint.check_model_config` refused another model configuration.

    ``state`` is the checkpoint's content when the caller has read it already
    (:func:`~pln.engine.checkpoint.load_checkpoint`, e.g. for its epoch or optimiser); else it is
    read from ``checkpoint``. The model is built (its initialisation draws from torch's generator)
    whether or not weights are loaded.
    """
    if checkpoint is not None:
        if state is None:
            state = load_checkpoint(checkpoint)
        check_model_config(checkpoint, state, dataclasses.asdict(cfg))
    elif state is not None:
        raise ValueError("load_model: a checkpoint state needs the checkpoint's path")
    model = PLN(cfg).to(device)
    if state is not None:
        model.load_state_dict(state["model"])
    return model


def forward(model: PLN, units: torch.Tensor, words: torch.Tensor, lengths: torch.Tensor,
            bf16: bool = False) -> PLNOutput:
    """``model(units [B, M, D], words [B, L, E], lengths [B])`` under bf16 autocast when ``bf16``
    (on the device of ``units``); the output's ``logits`` and ``scores`` (one ``[B, N_t, N_t]``
    per stage) in fp32. With ``bf16`` off the numbers are those of a plain fp32 call."""
    with torch.autocast(units.device.type, dtype=torch.bfloat16, enabled=bf16):
        output = model(units, words, lengths)
    return output._replace(logits=[x.float() for x in output.logits],
                           scores=[s.float() for s in output.scores])
