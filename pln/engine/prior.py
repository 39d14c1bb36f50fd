"""The prior-only baseline: ignore video and sentence, predict the training set's most common
relative moments (a lower bound every trained model must clear by far)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pln.config import ExperimentConfig, save_config
from pln.data.dataset import build_dataset
from pln.engine.keys import stage_key
from pln.engine.outputs import write_predictions, write_predictions_jsonl
from pln.engine.predict_split import SplitPredictions, query_windows, split_metrics
from pln.engine.run_dir import RunDir, check_same_experiment, query_counts
from pln.engine.run_lock import hold_run_lock
from pln.eval.ranking import nms, rank_candidates
from pln.geometry import cell_ious, valid_mask


def prior_cell_scores(gt: torch.Tensor, duration: torch.Tensor, n: int) -> torch.Tensor:
    """Frequency of each cell of an N x N map as the best-matching cell of a training moment.

    gt [Q, 2] seconds, duration [Q] -> [N, N] (share of training queries; 0 at invalid cells).
    """
    mask = valid_mask(n)
    ious = cell_ious(gt, duration, n).masked_fill(~mask, -1.0)  # [Q, N, N]
    best = ious.flatten(1).argmax(dim=1)
    counts = torch.bincount(best, minlength=n * n).float().reshape(n, n)
    return counts / max(len(gt), 1) * mask


def run_prior(cfg: ExperimentConfig, out_dir: str | Path, wait: bool = False,
              replace_stale: bool = False) -> dict[str, Any]:
    """Score the prior baseline on the test split; write test_metrics.json and predictions.csv
    (the run folder locked, and a stale one refused or replaced, as by ``pln train``)."""
    run = RunDir(Path(out_dir))
    with hold_run_lock(run.root, wait=wait):
        check_same_experiment(run, cfg, replace_stale)
        if run.is_complete():
            return run.read_test_metrics()
        save_config(cfg, run.config)
        return _run_prior(cfg, run)


def _run_prior(cfg: ExperimentConfig, run: RunDir) -> dict[str, Any]:
    n = cfg.model.clips[-1]
    train_ds, test_ds = build_dataset(cfg, "train"), build_dataset(cfg, "test")
    train_gt = torch.tensor([[s.start, s.end] for s in train_ds.samples], dtype=torch.float32)
    train_dur = torch.tensor([s.duration for s in train_ds.samples], dtype=torch.float32)
    prior = prior_cell_scores(train_gt, train_dur, n)

    gt = torch.tensor([[s.start, s.end] for s in test_ds.samples], dtype=torch.float64)
    duration = torch.tensor([s.duration for s in test_ds.samples], dtype=torch.float64)
    q = len(test_ds)
    scores = prior.expand(q, n, n)
    spans, cand_scores = rank_candidates(scores, valid_mask(n), duration)
    nms_threshold = cfg.eval.resolved_nms(cfg.data.family)
    top, top_scores, valid = nms(spans, cand_scores, nms_threshold, keep=cfg.eval.max_candidates)
    pred = SplitPredictions(top, top_scores, valid, gt, duration, torch.arange(q),
                            query_windows(test_ds.samples, torch.arange(q)))
    write_predictions(run.predictions, pred, test_ds)
    write_predictions_jsonl(run.predictions_jsonl, pred, test_ds)
    info = {"dataset": cfg.data.dataset, "name": cfg.name, "seed": cfg.train.seed, "clips": [n],
            "method": "prior", "selection_split": None, "nms_threshold": nms_threshold,
            **query_counts(test_ds)}
    key = stage_key(0)  # the prior scores one map: Strategy 1 of its only stage
    return run.write_test_metrics(info, {key: split_metrics(pred, cfg)}, key)  # last: marks the run complete
