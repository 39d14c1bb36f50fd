"""`pln train`: one experiment (dataset, model variant, seed) into one run folder.

The loop is resumable at epoch granularity: every epoch ends with an atomic ``last.pt`` holding
the model, the optimiser, the epoch history and the best-so-far record. The order of training
queries in epoch e depends only on (seed, e), so a run killed at any moment and restarted with
the same command reaches bit-identical metrics on the CPU.

The training step does not wait for the device: the split's unit table is resident there
(:class:`pln.engine.units.UnitFeed`), loss sums are accumulated on the device, and the losses are
checked for NaN/Inf only every ``train.log_every`` steps and at the end of the epoch.
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
from pln.data.dataset import build_dataset, make_loader
from pln.devices import claim_device, tune_backends
from pln.engine.gpu_util import UtilisationSampler, nvml_reader
from pln.engine.checkpoint import check_model_config, load_checkpoint, save_checkpoint
from pln.engine.inference import predict_split, split_metrics, strategy_keys, to_device
from pln.engine.outputs import write_predictions, write_predictions_jsonl, write_score_maps
from pln.engine.run_dir import RunDir, check_same_experiment
from pln.engine.units import UnitFeed
from pln.errors import ConfigError, TrainingError
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


def _attach_log_file(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("pln").addHandler(handler)
    logging.getLogger("pln").setLevel(logging.INFO)
    return handler


def train_one_epoch(
    model: PLN, loader: DataLoader, optimizer: torch.optim.Optimizer, cfg: ExperimentConfig,
    device: torch.device, epoch: int, lambdas: list[float], feed: UnitFeed | None = None,
) -> dict[str, float]:
    """One pass over the training split. Returns mean losses and queries/s.

    ``feed`` supplies the units ``[B, M, D]`` (None: one is built for ``loader.dataset``). The
    step itself never synchronises with the device; see :func:`check_finite`.
    """
    from tqdm import tqdm

    model.train()
    if feed is None:
        feed = UnitFeed(loader.dataset, device, cfg.data, "train")
    use_bf16 = cfg.train.bf16
    log_every = max(1, cfg.train.log_every)
    # [1 + S] batch-size-weighted sums of (total, stage losses), on the device (float64 as before).
    sums = torch.zeros(1 + len(lambdas), dtype=torch.float64, device=device)
    pending: list[tuple[int, torch.Tensor]] = []  # (step, total loss) since the last check
    seen = 0
    t0 = time.perf_counter()
    kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0"))
    steps_per_epoch = len(loader) if cfg.train.max_train_batches is None else min(len(loader), cfg.train.max_train_batches)
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.train.max_epochs}", unit="batch", disable=None, leave=False)
    # GPU utilisation sampled in the background over the whole epoch (None off CUDA)
    with UtilisationSampler(nvml_reader(device)) as util:
        for step, batch in enumerate(bar):
            if cfg.train.max_train_batches is not None and step >= cfg.train.max_train_batches:
                break
            if kill_at and epoch * steps_per_epoch + step + 1 == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            batch = to_device(batch, device)
            units = feed.units(batch)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                output = model(units, batch["words"], batch["lengths"])
            output = output._replace(logits=[x.float() for x in output.logits])
            total, per_stage = joint_loss(output, batch["ious"], cfg.loss, lambdas)
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
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
    row = {"train_loss": float(means[0])}
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


def _write_epochs(run: RunDir, history: list[dict[str, Any]]) -> None:
    frame = pd.DataFrame(history)
    atomic_write(run.epochs, lambda tmp: frame.to_csv(tmp, index=False))


def train(cfg: ExperimentConfig, out_dir: str | Path) -> dict[str, Any]:
    """Train (or resume, or do nothing for a finished run) and return the test metrics."""
    run = RunDir(Path(out_dir))
    check_same_experiment(run, cfg)
    if run.is_complete():
        log.info("%s is complete; nothing to do", run.root)
        return run.read_test_metrics()
    run.root.mkdir(parents=True, exist_ok=True)
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

    datasets = {split: build_dataset(cfg, split) for split in ("train", "val", "test")}
    atomic_write_json(run.data_report, {split: ds.report for split, ds in datasets.items()})
    log.info("data: %s", ", ".join(f"{s}={len(d)}" for s, d in datasets.items()))
    # Before any loader is iterated: a streamed feed makes its dataset's items carry units, and
    # the evaluated splits need no IoU maps.
    feeds = {split: UnitFeed(ds, device, cfg.data, split) for split, ds in datasets.items()}
    datasets["val"].ious_in_items = datasets["test"].ious_in_items = False

    model = PLN(cfg.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start_epoch = 0
    if run.last.is_file():
        state = load_checkpoint(run.last)
        check_model_config(run.last, state, cfg.to_dict()["model"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history, best, start_epoch = list(state["history"]), state["best"], int(state["epoch"])
        log.info("resuming %s after epoch %d", run.root, start_epoch)

    default_key = f"stage{cfg.model.num_stages}"
    val_loader = make_loader(datasets["val"], cfg.train.eval_batch_size, shuffle=False,
                             num_workers=cfg.data.num_workers)
    for epoch in range(start_epoch, cfg.train.max_epochs):
        torch.manual_seed(epoch_seed(cfg.train.seed, epoch))
        loader = make_loader(datasets["train"], cfg.train.batch_size, shuffle=True,
                             num_workers=cfg.data.num_workers, seed=epoch_seed(cfg.train.seed, epoch))
        row: dict[str, Any] = {"epoch": epoch + 1}
        row.update(train_one_epoch(model, loader, optimizer, cfg, device, epoch, lambdas, feeds["train"]))
        t0 = time.perf_counter()
        val = predict_split(model, val_loader, cfg, device, [default_key], nms, cfg.train.bf16,
                            feeds["val"])[default_key]
        val_metrics = split_metrics(val, cfg)
        if cfg.train.select_metric not in val_metrics:
            raise ConfigError(
                f"train.select_metric {cfg.train.select_metric!r} is not a metric here; "
                f"choose one of {', '.join(val_metrics)}")
        row.update({f"val_{k}": v for k, v in val_metrics.items()})
        row["val_seconds"] = time.perf_counter() - t0
        history.append(row)
        value = val_metrics[cfg.train.select_metric]
        improved = best is None or value > best["value"]
        if improved:
            best = {"epoch": epoch + 1, "value": value}
        state = {"config": cfg.to_dict(), "epoch": epoch + 1, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "history": history, "best": best}
        # best.pt before last.pt: a kill between the two only repeats this (deterministic) epoch.
        if improved:
            save_checkpoint(run.best, {**state, "optimizer": None})
        save_checkpoint(run.last, state)
        _write_epochs(run, history)
        log.info("epoch %d: loss %.4f, val %s %.2f%s, %.1f queries/s", epoch + 1, row["train_loss"],
                 cfg.train.select_metric, value, " (best)" if improved else "", row["train_queries_per_s"])
    if best is None:
        raise TrainingError(f"{run.root}: no epoch was trained (train.max_epochs={cfg.train.max_epochs})")
    del feeds["train"], feeds["val"]  # free their device memory before testing
    return finish_run(cfg, run, device, datasets["test"], best, len(history), feeds["test"])


def finish_run(cfg: ExperimentConfig, run: RunDir, device: torch.device, test_ds, best: dict[str, Any],
               epochs_run: int, feed: UnitFeed | None = None) -> dict[str, Any]:
    """Test the selected checkpoint under every strategy; write the run's result files.

    ``feed`` supplies the test units (None: one is built for ``test_ds``)."""
    state = load_checkpoint(run.best)
    model = PLN(cfg.model).to(device)
    model.load_state_dict(state["model"])
    keys = strategy_keys(cfg.model.num_stages)
    nms = cfg.eval.resolved_nms(cfg.data.family)
    if feed is None:
        feed = UnitFeed(test_ds, device, cfg.data, "test")
    loader = make_loader(test_ds, cfg.train.eval_batch_size, shuffle=False, num_workers=cfg.data.num_workers)
    t0 = time.perf_counter()
    preds = predict_split(model, loader, cfg, device, keys, nms, cfg.train.bf16, feed)
    seconds = time.perf_counter() - t0
    default_key = keys[cfg.eval.stage % cfg.model.num_stages] if cfg.eval.strategy == "1" else "strategy2"
    write_predictions(run.predictions, preds[default_key], test_ds)
    write_predictions_jsonl(run.predictions_jsonl, preds[default_key], test_ds)
    write_score_maps(run.score_maps, model, test_ds, preds[default_key], cfg, device, feed)
    result = {
        "run": {
            "dataset": cfg.data.dataset, "name": cfg.name, "seed": cfg.train.seed,
            "clips": list(cfg.model.clips), "selected_epoch": best["epoch"],
            "selection_metric": cfg.train.select_metric, "selection_value": best["value"],
            "selection_split": "val", "epochs_run": epochs_run, "device": str(device),
            "nms_threshold": nms, "test_queries": len(test_ds),
            "test_queries_per_s": len(test_ds) / seconds if seconds > 0 else None,
        },
        "metrics": {key: split_metrics(pred, cfg) for key, pred in preds.items()},
        "default": default_key,
    }
    atomic_write_json(run.test_metrics, result)  # last: its presence marks the run complete
    log.info("test (%s): %s", default_key, result["metrics"][default_key])
    return result


