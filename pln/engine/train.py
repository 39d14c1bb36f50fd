"""`pln train`: one experiment (dataset, model variant, seed) into one run folder.

The loop is resumable at epoch granularity: every epoch ends with an atomic ``last.pt`` holding
the model, the optimiser, the plateau schedule (if any), the epoch history and the best-so-far
record. Each step clips the gradient norm (``train.grad_clip_norm``); each validation also
sums the validation loss, which drives the plateau schedule (``train.lr_plateau``). The order of training
queries in epoch e depends only on (seed, e) (``train.order_seed`` when set, else ``train.seed``,
which also sets the initial weights), so a run killed at any moment and restarted with
the same command reaches bit-identical metrics on the CPU.

The splits are opened once (:func:`pln.engine.splits.open_split`: train for training, val and
test for evaluation). The training step does not wait for the device: the split's unit table is
resident there (:class:`pln.engine.units.UnitFeed`), loss sums are accumulated on the device, and
the losses are checked for NaN/Inf only every ``train.log_every`` steps and at the end of the epoch.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from pln.config import ExperimentConfig, save_config
from pln.data.dataset import check_split_files
from pln.data.glove import load_word_vectors
from pln.devices import claim_device, machine_tag, tune_backends
from pln.engine.gpu_util import UtilisationSampler, nvml_reader
from pln.engine.checkpoint import load_checkpoint, save_checkpoint
from pln.engine.keys import select_key, strategy_keys
from pln.engine.network import forward, load_model
from pln.engine.outputs import write_predictions, write_predictions_jsonl, write_score_maps
from pln.engine.predict_split import predict_split, split_metrics
from pln.engine.recipe import (Optimizer, ValidationLoss, WeightAverage, backward_step, current_lr,
                               make_optimizer, make_plateau, scheduled_lr, set_lr)
from pln.engine.run_dir import RunDir, check_same_experiment, query_counts
from pln.engine.run_lock import hold_run_lock
from pln.engine.splits import EVALUATION, TRAINING, OpenSplit, open_split
from pln.engine.units import UnitFeed, to_device
from pln.errors import CheckpointError, ConfigError, TrainingError
from pln.eval.metrics import metric_name
from pln.loss import joint_loss
from pln.model import PLN
from pln.utils import atomic_write, atomic_write_json, seed_everything

log = logging.getLogger("pln.train")

# Fault injection for the resume tests: the process kills itself (SIGKILL, no clean-up) when it
# is about to run this global training step (1-based, counted across epochs).
KILL_AT_STEP_ENV = "PLN_KILL_AT_STEP"


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based): shuffling and any randomness inside the epoch."""
    return seed * 100_003 + epoch


def plateau_reached(patience: int | None, epochs_done: int, best_epoch: int) -> bool:
    """True when ``patience`` validations in a row (epochs ``best_epoch + 1 .. epochs_done``,
    1-based) have not improved on the best one; never with ``patience`` None."""
    return patience is not None and epochs_done - best_epoch >= patience


def _attach_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("pln").addHandler(handler)
    logging.getLogger("pln").setLevel(logging.INFO)
    return handler


def train_step(model: PLN, optimizer: Optimizer, units: torch.Tensor, batch: dict[str, Any],
               cfg: ExperimentConfig, lambdas: list[float]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One optimisation step: forward (bf16 autocast with ``train.bf16``), the joint loss in fp32,
    backward, gradient clipping at ``train.grad_clip_norm``, optimiser step. Does not synchronise with the device.

    ``units [B, M, D]`` and ``batch`` (``words [B, L, E]``, ``lengths [B]``, ``ious``: one
    ``[B, N_t, N_t]`` map per stage) are on the model's device. Returns (total loss, loss per stage).
    """
    output = forward(model, units, batch["words"], batch["lengths"], cfg.train.bf16)
    total, per_stage = joint_loss(output, batch["ious"], cfg.loss, lambdas)
    backward_step(model, optimizer, total, cfg.train.grad_clip_norm)
    return total, per_stage


def epoch_steps(loader: DataLoader, cfg: ExperimentConfig) -> int:
    """Optimiser steps in one epoch over ``loader`` (``train.max_train_batches`` caps them)."""
    return len(loader) if cfg.train.max_train_batches is None else min(len(loader), cfg.train.max_train_batches)


def train_one_epoch(
    model: PLN, loader: DataLoader, optimizer: Optimizer, cfg: ExperimentConfig,
    device: torch.device, epoch: int, lambdas: list[float], feed: UnitFeed,
    average: WeightAverage | None = None,
) -> dict[str, float]:
    """One pass over the training split. Returns mean losses and queries/s.

    ``feed`` (the split's, :func:`pln.engine.splits.open_split`) supplies the units ``[B, M, D]``;
    ``average`` (``train.ema_epochs``), if given, is updated after every step.
    The step itself never synchronises with the device; see :func:`check_finite`.
    """
    from tqdm import tqdm

    model.train()
    steps_per_epoch = epoch_steps(loader, cfg)
    # the rate of this epoch (the plateau schedule acts between epochs), or of its first step
    # (train.lr_cosine: the loop below sets it before every step)
    first = scheduled_lr(cfg.train, epoch * steps_per_epoch, steps_per_epoch)
    lr = first if first is not None else current_lr(optimizer)
    log_every = max(1, cfg.train.log_every)
    # [1 + S] batch-size-weighted sums of (total, stage losses), on the device (float64 as before).
    sums = torch.zeros(1 + len(lambdas), dtype=torch.float64, device=device)
    pending: list[tuple[int, torch.Tensor]] = []  # (step, total loss) since the last check
    seen = 0
    t0 = time.perf_counter()
    kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0"))
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.max_epochs}", unit="batch", disable=None, leave=False)
    # GPU utilisation sampled in the background over the whole epoch (None off CUDA)
    with UtilisationSampler(nvml_reader(device)) as util:
        for step, batch in enumerate(bar):
            if cfg.train.max_train_batches is not None and step >= cfg.train.max_train_batches:
                break
            if kill_at and epoch * steps_per_epoch + step + 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            rate = scheduled_lr(cfg.train, epoch * steps_per_epoch + step, steps_per_epoch)
            if rate is not None:
                set_lr(optimizer, rate)
            batch = to_device(batch, device)
            units = feed.units(batch)
            total, per_stage = train_step(model, optimizer, units, batch, cfg, lambdas)
            if average is not None:
                average.update(model)
            b = batch["lengths"].shape[0]
            seen += b
            losses = torch.stack([total, *per_stage]).detach()
            sums += b * losses.double()
            pending.append((step, losses[0]))
            if step % log_every == 0:
                check_finite(pending, epoch)
                pending.clear()
                bar.set_postfix(loss=f"{total.item():.4f}", qps=f"{seen / (time.perf_counter() - t0):.1f}")
        check_finite(pending, epoch)
        means = (sums / max(seen, 1)).tolist()  # waits for the device: the epoch's work is done after it
    seconds = time.perf_counter() - t0
    row = {"lr": lr, "train_loss": float(means[0])}
    row.update({f"loss_stage{t + 1}": float(v) for t, v in enumerate(means[1:])})
    row["train_queries_per_s"] = seen / seconds if seconds > 0 else float("nan")
    row["train_seconds"] = seconds
    if util.mean() is not None:
        row["gpu_util_percent"] = util.mean()
    return row


def check_finite(pending: list[tuple[int, torch.Tensor]], epoch: int) -> None:
    """Raise TrainingError naming the first non-finite loss of ``pending`` ((0-based step, scalar
    loss) pairs, on the device). One synchronisation for the whole list."""
    if not pending:
        return
    losses = torch.stack([loss for _, loss in pending])  # [P]
    bad = ~torch.isfinite(losses)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        step = pending[first][0]
        raise TrainingError(
            f"loss is {losses[first].item()} at epoch {epoch + 1}, step {step + 1}; "
            "check the features for NaN/Inf or lower train.lr")


def check_before_training(cfg: ExperimentConfig) -> None:
    """What can be checked before any dataset is built: every split's annotation files exist and
    ``train.select_metric`` is one of the metrics validation will report."""
    check_split_files(cfg)
    names = [metric_name(n, m) for n in cfg.eval.ranks for m in cfg.eval.resolved_ious(cfg.data.family)]
    names.append("mIoU")
    if cfg.train.select_metric not in names:
        raise ConfigError(f"train.select_metric {cfg.train.select_metric!r} is not a metric here; "
                          f"choose one of {', '.join(names)}")


def _write_epochs(run: RunDir, history: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(history)
    atomic_write(run.epochs, lambda tmp: frame.to_csv(tmp, index=False))


def train(cfg: ExperimentConfig, out_dir: str | Path, wait: bool = False,
          replace_stale: bool = False, extend: bool = False) -> dict[str, Any]:
    """Train (or resume, or do nothing for a finished run) and return the test metrics.

    The run folder is locked for the whole call (:mod:`pln.engine.run_lock`): another process
    on it is refused, or with ``wait`` queued behind this one. A folder holding a run of another
    configuration is refused, or with ``replace_stale`` emptied and trained afresh; with
    ``extend``, a run of the same configuration but a shorter budget (``train.max_epochs``,
    ``train.stop_patience``) is continued from its last epoch and tested again.
    """
    run = RunDir(Path(out_dir))
    with hold_run_lock(run.root, wait=wait):
        check_same_experiment(run, cfg, replace_stale, extend)
        if run.is_complete():
            log.info("%s is complete; nothing to do", run.root)
            return run.read_test_metrics()
        save_config(cfg, run.config)
        handler = _attach_log_file(run.log)
        try:
            # On a multi-GPU workstation each concurrent run holds its own GPU (pln.devices).
            with claim_device(cfg.train.device) as device:
                return _train(cfg, run, device)
        finally:
            logging.getLogger("pln").removeHandler(handler)
            handler.close()


def _train(cfg: ExperimentConfig, run: RunDir, device: torch.device) -> dict[str, Any]:
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    tune_backends(device)
    seed_everything(cfg.train.seed)
    lambdas = cfg.loss.resolved_lambdas(cfg.model.num_stages)
    family = cfg.data.family
    nms = cfg.eval.resolved_nms(family)

    check_before_training(cfg)
    # Each split's purpose fixes, before its dataset is built, what its items carry (the IoU maps
    # only for training; the units only where the feed streams them).
    wv = load_word_vectors(cfg.data.glove, cfg.data.strip_punctuation)  # once for the three splits
    splits = {split: open_split(cfg, split, TRAINING if split == "train" else EVALUATION, device, wv)
              for split in ("train", "val", "test")}
    atomic_write_json(run.data_report, {name: s.dataset.report for name, s in splits.items()})
    log.info("data: %s", ", ".join(f"{name}={len(s.dataset)}" for name, s in splits.items()))
    machine = machine_tag(device)  # each epoch's row names it: another machine rounds otherwise
    log.info("computing on %s", machine)

    resume = run.last.is_file()
    state = load_checkpoint(run.last) if resume else None
    model = load_model(cfg.model, device, run.last if resume else None, state)
    optimizer = make_optimizer(model, cfg.train)
    plateau = make_plateau(optimizer, cfg.train.lr_plateau)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch = 0
    if state is not None:  # resuming
        optimizer.load_state_dict(state["optimizer"])
        if plateau is not None:
            if state.get("scheduler") is None:
                raise CheckpointError(f"{run.last}: holds no plateau schedule state; delete the run folder and retrain")
            plateau.load_state_dict(state["scheduler"])
        history, best, start_epoch = list(state["history"]), state["best"], int(state["epoch"])
        log.info("resuming %s after epoch %d", run.root, start_epoch)
    average = make_average(cfg, model, splits["train"], state, run.last)
    judged = average.model if average is not None else model  # what validation and testing see

    default_key = select_key(cfg)
    val_loader = splits["val"].loader()
    for epoch in range(start_epoch, cfg.train.max_epochs):
        if best is not None and plateau_reached(cfg.train.stop_patience, epoch, best["epoch"]):
            log.info("stopping after epoch %d: %d validations without a better val %s than epoch %d",
                     epoch, epoch - best["epoch"], cfg.train.select_metric, best["epoch"])
            break
        torch.manual_seed(epoch_seed(cfg.train.resolved_order_seed, epoch))
        loader = splits["train"].loader(seed=epoch_seed(cfg.train.resolved_order_seed, epoch))
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(train_one_epoch(model, loader, optimizer, cfg, device, epoch, lambdas, splits["train"].feed,
                                   average))
        t0 = time.perf_counter()
        val_loss = ValidationLoss(cfg.loss, lambdas)
        val = predict_split(judged, splits["val"], cfg, [default_key], nms, cfg.train.bf16,
                            batches=val_loader, on_output=val_loss)[default_key]
        val_metrics = split_metrics(val, cfg)  # holds train.select_metric (check_before_training)
        row["val_loss"] = val_loss.mean()
        row.update({f"val_{k}": v for k, v in val_metrics.items()})
        if plateau is not None:
            plateau.step(row["val_loss"])
        row["val_seconds"] = time.perf_counter() - t0
        row["machine"] = machine
        history.append(row)
        value = val_metrics[cfg.train.select_metric]
        improved = best is None or value > best["value"]
        if improved:
            best = {"epoch": epoch + 1, "value": value}
        state = {"config": cfg.to_dict(), "epoch": epoch + 1, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "history": history, "best": best,
                 "scheduler": plateau.state_dict() if plateau is not None else None,
                 "average": average.state_dict() if average is not None else None}
        # best.pt before last.pt: a kill between the two only repeats this (deterministic) epoch.
        if improved:  # best.pt holds the judged weights: the average when there is one
            save_checkpoint(run.best, {**state, "model": judged.state_dict(), "optimizer": None,
                                       "scheduler": None, "average": None})
        save_checkpoint(run.last, state)
        _write_epochs(run, history)
        log.info("epoch %d: loss %.4f, val %s %.2f%s, %.1f queries/s", epoch + 1, row["train_loss"],
                 cfg.train.select_metric, value, " (best)" if improved else "", row["train_queries_per_s"])
    if best is None:
        raise TrainingError(f"{run.root}: no epoch was trained (train.max_epochs={cfg.train.max_epochs})")
    test = splits["test"]
    del splits  # free the train and val unit tables on the device before testing
    return finish_run(cfg, run, test, best, len(history), default_key, machine)


def make_average(cfg: ExperimentConfig, model: PLN, train_split: OpenSplit, state: dict[str, Any] | None,
                 last: Path) -> WeightAverage | None:
    """The weight average of ``train.ema_epochs`` (None without it), its horizon in steps of the
    training split's epochs; resumed from the checkpoint ``state`` when there is one."""
    if cfg.train.ema_epochs is None:
        return None
    steps = epoch_steps(train_split.loader(seed=epoch_seed(cfg.train.resolved_order_seed, 0)), cfg)
    average = WeightAverage(model, max(1.0, cfg.train.ema_epochs * steps))
    if state is not None:
        if state.get("average") is None:
            raise CheckpointError(f"{last}: holds no weight average (train.ema_epochs); delete the run folder and retrain")
        average.load_state_dict(state["average"])
    return average


def finish_run(cfg: ExperimentConfig, run: RunDir, test: OpenSplit, best: dict[str, Any],
               epochs_run: int, default_key: str, machine: str) -> dict[str, Any]:
    """Test the selected checkpoint under every strategy; write the run's result files.

    ``test`` is the test split opened for evaluation; ``default_key`` the run's
    :func:`~pln.engine.keys.select_key`, the strategy of ``predictions.*`` and ``score_maps.npz``;
    ``machine`` what computes it (:func:`~pln.devices.machine_tag`), for ``timings.json``."""
    device = test.device
    model = load_model(cfg.model, device, run.best)
    keys = strategy_keys(cfg.model.num_stages)
    nms = cfg.eval.resolved_nms(cfg.data.family)
    t0 = time.perf_counter()
    preds = predict_split(model, test, cfg, keys, nms, cfg.train.bf16)
    seconds = time.perf_counter() - t0
    test_ds = test.dataset
    write_predictions(run.predictions, preds[default_key], test_ds)
    write_predictions_jsonl(run.predictions_jsonl, preds[default_key], test_ds)
    write_score_maps(run.score_maps, model, test, preds[default_key], cfg)
    info = {
        "dataset": cfg.data.dataset, "name": cfg.name, "seed": cfg.train.seed,
        "clips": list(cfg.model.clips), "selected_epoch": best["epoch"],
        "selection_metric": cfg.train.select_metric, "selection_value": best["value"],
        "selection_split": "val", "epochs_run": epochs_run, "device": str(device),
        "nms_threshold": nms, **query_counts(test_ds),
    }
    metrics = {key: split_metrics(pred, cfg) for key, pred in preds.items()}
    # Timings vary from run to run: they live apart, so an identical rerun's results are byte-identical.
    atomic_write_json(run.timings, {"test_seconds": seconds,
                                    "test_queries_per_s": len(test_ds) / seconds if seconds > 0 else None,
                                    "test_machine": machine})
    result = run.write_test_metrics(info, metrics, default_key)  # last: it marks the run complete
    log.info("test (%s): %s", default_key, result["metrics"][default_key])
    return result
