"""`pln evaluate`: recompute the metrics of a trained run from its checkpoint, for any stage,
either strategy and any NMS threshold, without retraining (Table 4 is built this way)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pln.config import ExperimentConfig, check_nms_threshold
from pln.devices import resolve_device
from pln.engine.checkpoint import load_checkpoint
from pln.engine.keys import select_key, strategy_keys
from pln.engine.network import load_model
from pln.engine.predict_split import predict_split, split_metrics
from pln.engine.run_dir import RunDir
from pln.engine.run_lock import refuse_if_training
from pln.engine.splits import EVALUATION, open_split


def resolve_keys(cfg: ExperimentConfig, strategy: str | None, stage: int | None) -> list[str]:
    """Which strategy keys to score: all by default, or the one :func:`select_key` picks for the
    options (Strategy 1 at ``stage``, 1-based, or Strategy 2)."""
    if strategy is None and stage is None:
        return strategy_keys(cfg.model.num_stages)
    return [select_key(cfg, strategy, stage)]


def evaluate_run(run_dir: str | Path, checkpoint: str = "best", split: str = "test",
                 strategy: str | None = None, stage: int | None = None,
                 nms_threshold: float | None = None, device: str | None = None) -> dict[str, Any]:
    """Metrics of a run's checkpoint: ``{"metrics": {key: {...}}, "default": key, "nms_threshold": ..}``.

    ``"default"`` is the key :func:`select_key` picks for the options and the run's config (the
    key of ``test_metrics.json``'s ``"default"`` when no option is given)."""
    if nms_threshold is not None:
        check_nms_threshold(nms_threshold, "--nms")
    run = RunDir(Path(run_dir))
    refuse_if_training(run.root)
    cfg = run.read_config()
    path = {"best": run.best, "last": run.last}.get(checkpoint, Path(checkpoint))
    state = load_checkpoint(path)
    dev = resolve_device(device or cfg.train.device)
    model = load_model(cfg.model, dev, path, state)
    nms = nms_threshold if nms_threshold is not None else cfg.eval.resolved_nms(cfg.data.family)
    keys = resolve_keys(cfg, strategy, stage)
    preds = predict_split(model, open_split(cfg, split, EVALUATION, dev), cfg, keys, nms, cfg.train.bf16)
    return {
        "run": str(run.root), "checkpoint": str(path), "epoch": state.get("epoch"), "split": split,
        "nms_threshold": nms, "default": select_key(cfg, strategy, stage),
        "metrics": {k: split_metrics(p, cfg) for k, p in preds.items()},
    }
