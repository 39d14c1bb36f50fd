"""Load an official microsoft/2D-TAN checkpoint into a one-stage :class:`PLN`.

2D-TAN's parameter names map onto PLN's as follows (``K`` a layer index)::

    frame_layer.vis_conv.{weight,bias}      video.fc            (Conv1d k=1 [H, D, 1] -> [H, D])
    fusion_layer.textual_encoder.*          query.lstm.*
    fusion_layer.tex_linear.*               fusions.0.tex_linear.*
    fusion_layer.vis_conv.*                 fusions.0.vis_conv.*
    map_layer.convs.K.*                     convnets.0.convs.K.*
    pred_layer.*                            predictors.0.conv.*

The frame layer's average pooling (kernel = stride) and the max-pool proposal layer have no
parameters: they are PLN's ``pool_clips`` and ``build_map``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pln.errors import CheckpointError
from pln.model.pln import PLN

_PREFIXES = (
    ("frame_layer.vis_conv.", "video.fc."),
    ("fusion_layer.textual_encoder.", "query.lstm."),
    ("fusion_layer.tex_linear.", "fusions.0.tex_linear."),
    ("fusion_layer.vis_conv.", "fusions.0.vis_conv."),
    ("map_layer.convs.", "convnets.0.convs."),
    ("pred_layer.", "predictors.0.conv."),
)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """The raw state dict inside a checkpoint object, without ``module.`` prefixes."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a 2D-TAN state dict (expected a mapping of tensors)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def convert_2dtan_state_dict(tan: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """2D-TAN names -> PLN names. Returns (converted dict, 2D-TAN keys with no PLN counterpart)."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in tan.items():
        for old, new in _PREFIXES:
            if key.startswith(old):
                name = new + key.removeprefix(old)
                if name == "video.fc.weight" and value.dim() == 3 and value.shape[-1] == 1:
                    value = value[..., 0]
                out[name] = value
                break
        else:
            unknown.append(key)
    return out, unknown


def _tan_name(name: str) -> str:
    """PLN parameter name -> the 2D-TAN name it is loaded from."""
    for old, new in _PREFIXES:
        if name.startswith(new):
            return old + name.removeprefix(new)
    return name


def load_2dtan_state_dict(model: PLN, path: str | Path) -> None:
    """Copy the weights of the 2D-TAN checkpoint at ``path`` into the one-stage ``model``.

    Raises :class:`CheckpointError` naming the file and the missing, unexpected or
    shape-mismatched keys; ``model`` is left unchanged then.
    """
    path = Path(path)
    if len(model.clips) != 1:
        raise CheckpointError(f"{path}: a 2D-TAN checkpoint loads into a one-stage model only "
                              f"(model.clips={model.clips})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint file not found") from None
    except Exception as exc:  # unreadable or not a plain tensor checkpoint
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    converted, unexpected = convert_2dtan_state_dict(_unwrap(obj, path))
    own = model.state_dict()
    missing = sorted(_tan_name(k) for k in set(own) - set(converted))
    unexpected += sorted(_tan_name(k) for k in set(converted) - set(own))
    mismatched = [f"{_tan_name(k)} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
                  for k, v in converted.items() if k in own and v.shape != own[k].shape]
    problems = []
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    if mismatched:
        problems.append("shape mismatch: " + ", ".join(mismatched))
    if problems:
        raise CheckpointError(f"{path}: does not fit the model config ({'; '.join(problems)}); "
                              "set model.* (hidden, feature_dim, word_dim, conv_layers, conv_kernel, "
                              "clips) to the checkpoint's 2D-TAN settings")
    model.load_state_dict(converted, strict=True)
