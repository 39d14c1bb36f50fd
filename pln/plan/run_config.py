"""One run's experiment config, from the workflow config: the merge of ``base``, the dataset's and
the model's fragments and the run's own keys; the data files it reads; its one-line description."""

from __future__ import annotations

import copy
from typing import Any

from pln.config import ExperimentConfig, ModelConfig, is_synthetic_dataset, merge


def resolve_run_config(config: dict[str, Any], dataset: str, fragment: dict[str, Any], name: str,
                       seed: int | None, threads: int) -> dict[str, Any]:
    """The experiment config (plain values, not yet validated) of one job of the workflow config
    ``config``: ``base`` <- ``datasets.<dataset>.config`` <- ``fragment`` (the model's), then the
    run's data and cache folders (unless given), ``train.threads`` (unless given), ``train.seed``
    (unless ``seed`` is None), ``name``; a ``clip_divisor`` > 1 divides every clip count and
    the unit count."""
    setting = config["setting"]
    values = merge(copy.deepcopy(config.get("base", {})), config["datasets"][dataset].get("config", {}))
    values = merge(values, fragment)
    data = values.setdefault("data", {})
    data.setdefault("data_dir", f"{config.get('data_root', 'data')}/{setting}/{dataset}")
    data.setdefault("cache_dir", f"{config.get('cache_root', 'cache')}/{setting}/{dataset}")
    divisor = int(config.get("clip_divisor", 1))
    if divisor > 1:
        # A CPU-sized setting: every clip count and the unit count divided by the same factor.
        model = values.setdefault("model", {})
        defaults = ModelConfig()
        model["clips"] = [c // divisor for c in model.get("clips", defaults.clips)]
        model["num_units"] = model.get("num_units", defaults.num_units) // divisor
    train = values.setdefault("train", {})
    train.setdefault("threads", threads)
    if seed is not None:
        train["seed"] = seed
    values["name"] = name
    return values


def real_data_inputs(values: dict[str, Any], annotations_only: bool = False) -> list[str]:
    """The user-provided data files an experiment config reads (annotations, features, GloVe).

    Synthetic datasets are generated, so only their annotation folder (``real-annotations``
    mode) and GloVe file count. They are job inputs: a missing file stops the dry run.
    """
    data = values.get("data", {})
    synthetic = is_synthetic_dataset(str(data.get("dataset", "")))
    annotations = data.get("annotation_dir")
    if synthetic and data.get("synthetic", {}).get("mode", "full") != "real-annotations":
        annotations = None
    if annotations_only:
        return [annotations] if annotations else []
    features = None if synthetic else data.get("feature_file") or data.get("feature_dir")
    files = [annotations, features, data.get("glove")]
    return [f for f in files if f]


def config_note(cfg: ExperimentConfig) -> list[str]:
    """A trained run's size, training budget and recipe, as the parts of one line."""
    m, t = cfg.model, cfg.train
    parts = [
        f"clips {'-'.join(map(str, m.clips))}",
        f"hidden {m.hidden}",
        f"ConvNet {m.conv_layers}x {m.conv_kernel}x{m.conv_kernel} conv, {m.conv_channels} ch"
        + (", unit-gain init" if m.conv_init == "unit_gain" else ""),
        f"{m.lstm_layers}-layer LSTM",
    ]
    if m.num_stages > 1:
        parts.append(f"CFM {'on' if m.use_cfm else 'off'}, UC {'on' if m.use_uc else 'off'}")
    label = cfg.loss.label if cfg.loss.label == "pln" else f"tan {cfg.loss.min_iou:g}/{cfg.loss.max_iou:g}"
    parts += [f"labels {label}", f"{t.max_epochs} epochs max"]
    if t.max_train_batches is not None:
        parts.append(f"{t.max_train_batches} batches/epoch")
    parts.append(f"Adam lr {t.lr:g}, batch {t.batch_size}")
    parts.append(f"grad clip {t.grad_clip_norm:g}" if t.grad_clip_norm is not None else "no grad clip")
    if t.lr_plateau is not None:
        parts.append(f"lr plateau on val loss (x{t.lr_plateau.factor:g}, patience {t.lr_plateau.patience})")
    if t.lr_cosine is not None:
        parts.append(f"warm-up {t.lr_cosine.warmup_epochs:g} epochs + cosine decay to x{t.lr_cosine.final_fraction:g}")
    if t.ema_epochs is not None:
        parts.append(f"weight average over {t.ema_epochs:g} epochs")
    if t.stop_patience is not None:
        parts.append(f"stop after {t.stop_patience} epochs without a better val {t.select_metric}")
    parts.append("bf16" if t.bf16 else "fp32")
    return parts
