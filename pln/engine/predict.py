"""`pln predict`: the top-5 moments of one video of a feature file for any sentence."""

from __future__ import annotations

from pathlib import Path

import torch

from pln.config import ExperimentConfig, config_from_dict
from pln.data.features import FeatureStore, resample_units
from pln.data.glove import load_word_vectors
from pln.data.video_features import FolderFeatureStore
from pln.data.stats import split_samples
from pln.devices import resolve_device
from pln.engine.checkpoint import check_model_config, load_checkpoint
from pln.engine.inference import parse_key
from pln.errors import DataError
from pln.eval.inference import predict_topk
from pln.model import PLN


def lookup_duration(cfg: ExperimentConfig, video_id: str) -> float:
    """The duration of ``video_id`` from the run's dataset annotations (any split)."""
    for samples in split_samples(cfg).values():
        for sample in samples:
            if sample.video_id == video_id:
                return float(sample.duration)
    raise DataError(
        f"video {video_id!r} is not in the annotations of {cfg.data.dataset}; pass --duration SECONDS")


@torch.no_grad()
def predict(checkpoint: str | Path, features: str | Path, video_id: str, query: str,
            duration: float | None = None, device: str = "cpu",
            strategy_key: str | None = None) -> list[tuple[float, float, float]]:
    """Top-K ``(start_s, end_s, score)`` for ``query`` in video ``video_id`` of ``features``."""
    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"], f"{checkpoint} (stored config)")
    check_model_config(checkpoint, state, cfg.to_dict()["model"])
    dev = resolve_device(device)
    model = PLN(cfg.model).to(dev)
    model.load_state_dict(state["model"])
    model.eval()

    store = FolderFeatureStore(features, cfg.model.feature_dim) if Path(features).is_dir() else \
        FeatureStore(features, cfg.data.family, cfg.model.feature_dim)
    units = torch.from_numpy(resample_units(store.get(video_id), cfg.model.num_units)).float()
    words = torch.from_numpy(load_word_vectors(cfg.data.glove, cfg.data.strip_punctuation).encode(query)).float()
    if duration is None:
        duration = lookup_duration(cfg, video_id)
    if not duration > 0:
        raise DataError(f"--duration must be > 0 seconds, got {duration}")
    output = model(units[None].to(dev), words[None].to(dev), torch.tensor([len(words)], device=dev))
    key = strategy_key or f"stage{cfg.model.num_stages}"
    strategy, stage = parse_key(key)
    spans, scores, valid = predict_topk(
        output, torch.tensor([duration], device=dev), strategy=strategy, stage=stage,
        nms_threshold=cfg.eval.resolved_nms(cfg.data.family), keep=cfg.eval.max_candidates)
    keep = valid[0].cpu()
    return [(float(s), float(e), float(p))
            for (s, e), p in zip(spans[0].cpu()[keep].tolist(), scores[0].cpu()[keep].tolist())]
