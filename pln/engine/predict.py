"""`pln predict`: the top-5 moments of one video of a feature file for any sentence."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pln.config import ExperimentConfig, config_from_dict
from pln.data.features import FeatureStore, resample_units
from pln.data.glove import load_word_vectors
from pln.data.video_features import FolderFeatureStore
from pln.data.stats import split_samples
from pln.devices import resolve_device
from pln.engine.checkpoint import load_checkpoint
from pln.engine.keys import parse_key, select_key
from pln.engine.network import forward, load_model
from pln.errors import DataError
from pln.eval.ranking import predict_topk


def lookup_duration(cfg: ExperimentConfig, video_id: str) -> float:
    """The duration of ``video_id`` from the run's dataset annotations (any split)."""
    for samples in split_samples(cfg).values():
        for sample in samples:
            if sample.video_id == video_id:
                return float(sample.duration)
    raise DataError(
        f"video {video_id!r} is in the feature file but not in the annotations of {cfg.data.dataset}, "
        "so its length is unknown -- pass --duration SECONDS")


def check_duration(seconds: float) -> float:
    """``seconds`` if it is a usable video length (finite, > 0), else a DataError."""
    if not (math.isfinite(seconds) and seconds > 0):
        raise DataError(f"--duration: give the video length as a finite number of seconds > 0, got {seconds}")
    return seconds


@torch.no_grad()
def predict(checkpoint: str | Path, features: str | Path, video_id: str, query: str,
            duration: float | None = None, device: str = "cpu", strategy: str | None = None,
            stage: int | None = None) -> tuple[str, list[tuple[float, float, float]]]:
    """``(key, moments)``: the strategy key used (:func:`select_key` of ``strategy``, ``stage``
    (1-based) and the run's config) and the top-K ``(start_s, end_s, score)`` for ``query`` in
    video ``video_id`` of ``features``."""
    if duration is not None:
        check_duration(duration)
    state = load_checkpoint(checkpoint)
    cfg = config_from_dict(state["config"], f"{checkpoint} (stored config)")
    dev = resolve_device(device)
    model = load_model(cfg.model, dev, checkpoint, state)
    model.eval()

    store = FolderFeatureStore(features, cfg.model.feature_dim) if Path(features).is_dir() else \
        FeatureStore(features, cfg.data.family, cfg.model.feature_dim)
    if not store.has(video_id):
        where = "feature folder" if Path(features).is_dir() else "feature file"
        raise DataError(f"{store.path}: video {video_id!r} is not in this {where} -- check --video "
                        "(a key of the file, or a file name of the folder) or --features")
    units = torch.from_numpy(resample_units(store.get(video_id), cfg.model.num_units)).float()
    words = torch.from_numpy(load_word_vectors(cfg.data.glove, cfg.data.strip_punctuation).encode(query)).float()
    if duration is None:
        duration = check_duration(lookup_duration(cfg, video_id))
    # one query, in fp32 whatever train.bf16 says
    output = forward(model, units[None].to(dev), words[None].to(dev), torch.tensor([len(words)], device=dev))
    key = select_key(cfg, strategy, stage)
    chosen, index = parse_key(key)
    spans, scores, valid = predict_topk(
        output, torch.tensor([duration], dtype=torch.float64, device=dev), strategy=chosen, stage=index,
        nms_threshold=cfg.eval.resolved_nms(cfg.data.family), keep=cfg.eval.max_candidates)
    keep = valid[0].cpu()
    return key, [(float(s), float(e), float(p))
                 for (s, e), p in zip(spans[0].cpu()[keep].tolist(), scores[0].cpu()[keep].tolist())]
