"""Typed, validated experiment configuration.

One experiment (dataset, model variant, seed) is one :class:`ExperimentConfig`, loaded from
YAML by :func:`load_config`. Unknown keys and values of the wrong type are refused with a
message that names the key. Defaults are the paper's settings and, where the paper is silent,
the choices of SPEC.md (each marked ``[choice]`` below and in the README's model section).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from pln.errors import ConfigError

DATASETS = (
    "tacos",
    "activitynet",
    "charades",
    "synthetic-tacos",
    "synthetic-activitynet",
    "synthetic-charades",
)

# NMS thresholds per dataset family (SPEC section 5).
NMS_THRESHOLDS = {"tacos": 0.4, "activitynet": 0.5, "charades": 0.45}
# IoU thresholds m reported per dataset family (SPEC section 5).
IOU_THRESHOLDS = {"tacos": (0.1, 0.3, 0.5, 0.7), "activitynet": (0.3, 0.5, 0.7), "charades": (0.3, 0.5, 0.7)}
# Placement policies of a split's unit table (DataConfig.units_on_device).
UNITS_ON_DEVICE = ("auto", "always", "never")
# Joint-loss weights lambda_t per number of stages (SPEC section 4, paper eq. 8).
DEFAULT_LAMBDAS = {1: (1.0,), 2: (1.0, 1.5), 3: (1.0, 1.3, 1.5), 4: (1.0, 1.2, 1.5, 2.0)}


def dataset_family(name: str) -> str:
    """``synthetic-tacos`` -> ``tacos``; ``tacos`` -> ``tacos``."""
    return name.removeprefix("synthetic-")


@dataclass
class ModelConfig:
    """The PLN model (SPEC sections 2-3). A one-stage model is the 2D-TAN baseline."""

    feature_dim: int = 4096  # d_in of the raw video features
    num_units: int = 256  # M: units the raw features are resampled to
    hidden: int = 512  # unit FC width, LSTM hidden size, fusion width
    word_dim: int = 300  # word-vector size (GloVe 6B 300-d in the paper)
    lstm_layers: int = 3
    positional_encoding: bool = False  # ActivityNet only in the paper
    positional_encoding_place: Literal["after_fc", "before_fc"] = "after_fc"  # [choice]
    clips: list[int] = field(default_factory=lambda: [32, 128])  # N^t per stage, non-decreasing
    use_cfm: bool = True
    use_uc: bool = True
    upsample_mode: Literal["nearest", "bilinear"] = "nearest"  # [choice] UC upsampling
    conv_layers: int = 2  # ConvNet depth (paper: 2; 2D-TAN baselines: 8 or 4)
    conv_kernel: int = 5  # ConvNet kernel (paper: 5; 2D-TAN ActivityNet: 9)
    conv_channels: int = 512
    conv_padding: Literal["first_layer", "same"] = "first_layer"  # [choice] 2D-TAN MapConv rule
    conv_count_norm: bool = True  # [choice] 2D-TAN mask-count normalisation after each layer
    conv_banded: bool = True  # convolve only the band of cells the output needs (exact; faster)
    conv_block: int = 16  # rows per strip of the banded ConvNet (speed only)
    conv_channels_last: bool = False  # ConvNet activations in channels-last layout (speed only)
    share_convnet: bool = True  # paper 4.1.3: the ConvNet is shared across stages
    share_heads: bool = False  # [choice] fusion and predictor belong to their stage (True: shared)

    def validate(self) -> None:
        _positive(self, "feature_dim", "num_units", "hidden", "word_dim", "lstm_layers",
                  "conv_layers", "conv_kernel", "conv_channels", "conv_block")
        if not 1 <= len(self.clips) <= 4:
            raise ConfigError(f"model.clips: give 1 to 4 clip counts, got {self.clips}")
        for a, b in zip(self.clips, self.clips[1:]):
            if b < a:
                raise ConfigError(f"model.clips must be non-decreasing, got {self.clips}")
            r = b // a
            if b % a or r & (r - 1):
                raise ConfigError(
                    f"model.clips: each count must be the previous one times a power of 2, got {self.clips}")
        for n in self.clips:
            if n < 1 or self.num_units % n:
                raise ConfigError(
                    f"model.clips: every clip count must divide model.num_units={self.num_units}, got {n}")
        if self.conv_kernel % 2 == 0:
            raise ConfigError(f"model.conv_kernel must be odd, got {self.conv_kernel}")

    @property
    def num_stages(self) -> int:
        return len(self.clips)


@dataclass
class LossConfig:
    """Training objective (SPEC section 4)."""

    tau: float = 0.5  # eq. 7 soft-label threshold
    lambdas: list[float] | None = None  # eq. 8; None: the paper's values for the stage count
    # "pln": y = 0 if o <= tau else (o - tau)/(1 - tau)   (paper eq. 7)
    # "tan": y = clamp((o - min_iou)/(max_iou - min_iou), 0, 1)  (2D-TAN's rescaling)
    label: Literal["pln", "tan"] = "pln"
    min_iou: float = 0.5
    max_iou: float = 1.0
    # "tan" only: 2D-TAN's BIAS (0.0 in all its configs): positive targets are lifted by it
    bias: float = 0.0

    def resolved_lambdas(self, num_stages: int) -> list[float]:
        lam = list(self.lambdas) if self.lambdas is not None else list(DEFAULT_LAMBDAS[num_stages])
        if len(lam) != num_stages:
            raise ConfigError(f"loss.lambdas has {len(lam)} values for a {num_stages}-stage model")
        return lam

    def validate(self) -> None:
        if not 0.0 <= self.tau < 1.0:
            raise ConfigError(f"loss.tau must be in [0, 1), got {self.tau}")
        if not 0.0 <= self.min_iou < self.max_iou <= 1.0:
            raise ConfigError("loss.min_iou and loss.max_iou need 0 <= min_iou < max_iou <= 1")
        if not 0.0 <= self.bias < 1.0:
            raise ConfigError(f"loss.bias must be in [0, 1), got {self.bias}")


@dataclass
class SyntheticConfig:
    """The built-in synthetic benchmark (no download)."""

    scale: float = 1.0  # multiplies the videos per split of the real dataset's shape
    # The test split's scale (None: ``scale``). Only how many test videos and queries are
    # drawn changes, from the same distributions: evaluation is cheap, training is not.
    test_scale: float | None = None
    seed: int = 0
    feature_dim: int = 64  # raw feature size of generated videos
    noise: float = 0.5
    # "full": generated annotations and features; "real-annotations": the real annotation files
    # with generated features (needs data.annotation_dir).
    mode: Literal["full", "real-annotations"] = "full"


@dataclass
class DataConfig:
    """Where the data comes from and how it is read (SPEC sections 2 and 6)."""

    dataset: str = "synthetic-tacos"
    annotation_dir: str | None = None  # real data: folder with the 2D-TAN annotation files
    feature_file: str | None = None  # real data: the HDF5 feature file
    feature_kind: Literal["c3d", "vgg", "i3d"] = "c3d"
    glove: str | None = None  # glove.6B.300d.txt; None: built-in GloVe 6B 50-d
    strip_punctuation: bool = True  # [choice] 2D-TAN does not strip
    data_dir: str = "data"  # synthetic datasets are generated under here
    cache_dir: str = "cache"  # unit features, word ids and labels are cached here
    num_workers: int = 0
    charades_val_fraction: float = 0.1  # [choice] Charades-STA has no val split
    charades_val_seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # Where a split's unit table [V, M, D] lives while a model runs over it (pln.engine.units):
    # "always" on the model's device (each batch gathers its rows there), "never" streamed
    # through the loader per query, "auto" on the device when it fits units_device_max_gib
    # and half of the device's free memory (host RAM for the CPU). Strings, not yes/no: YAML
    # reads those as booleans.
    units_on_device: str = "auto"
    units_device_max_gib: float = 24.0

    def validate(self) -> None:
        if self.dataset not in DATASETS:
            raise ConfigError(f"data.dataset: unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if not self.dataset.startswith("synthetic-"):
            # data.feature_file is checked where features are read (pln stats needs none).
            if not self.annotation_dir:
                raise ConfigError(f"data.annotation_dir is required for the real dataset {self.dataset!r}")
        elif self.synthetic.mode == "real-annotations" and not self.annotation_dir:
            raise ConfigError("data.annotation_dir is required when data.synthetic.mode is 'real-annotations'")
        if self.synthetic.test_scale is not None and not self.synthetic.test_scale > 0:
            raise ConfigError("data.synthetic.test_scale must be > 0 (or null: the same as data.synthetic.scale)")
        if not 0.0 < self.charades_val_fraction < 1.0:
            raise ConfigError("data.charades_val_fraction must be in (0, 1)")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        if self.units_on_device not in UNITS_ON_DEVICE:
            raise ConfigError(f"data.units_on_device must be one of {', '.join(UNITS_ON_DEVICE)}, "
                              f"got {self.units_on_device!r}")
        if not self.units_device_max_gib >= 0:
            raise ConfigError(f"data.units_device_max_gib must be >= 0, got {self.units_device_max_gib}")

    @property
    def family(self) -> str:
        return dataset_family(self.dataset)


@dataclass
class TrainConfig:
    """Optimisation (SPEC section 4)."""

    lr: float = 1e-4
    batch_size: int = 32
    max_epochs: int = 50
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast (GPU; on the CPU where it has bf16 units)
    select_metric: str = "R1@0.5"  # validation metric that picks the epoch
    eval_batch_size: int = 64
    max_train_batches: int | None = None  # cap per epoch (smoke tests); None: the whole split
    log_every: int = 50
    threads: int | None = None  # torch CPU threads; None: torch's default

    def validate(self) -> None:
        _positive(self, "lr", "batch_size", "max_epochs", "eval_batch_size", "log_every")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass
class EvalConfig:
    """Inference and metrics (SPEC section 5)."""

    nms_threshold: float | None = None  # None: the dataset's value
    ranks: list[int] = field(default_factory=lambda: [1, 5])
    iou_thresholds: list[float] | None = None  # None: the dataset's values
    max_candidates: int = 5
    strategy: Literal["1", "2"] = "1"
    stage: int = -1  # strategy 1: which stage's map is ranked; -1 is the last
    length_groups: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.5, 1.0])
    num_score_maps: int = 4  # test queries whose stage score maps are saved (Fig. 7)

    def resolved_nms(self, family: str) -> float:
        return self.nms_threshold if self.nms_threshold is not None else NMS_THRESHOLDS[family]

    def resolved_ious(self, family: str) -> list[float]:
        return list(self.iou_thresholds) if self.iou_thresholds is not None else list(IOU_THRESHOLDS[family])

    def validate(self) -> None:
        if self.nms_threshold is not None and not 0.0 < self.nms_threshold <= 1.0:
            raise ConfigError("eval.nms_threshold must be in (0, 1]")
        if max(self.ranks) > self.max_candidates:
            raise ConfigError("eval.ranks may not exceed eval.max_candidates")


@dataclass
class ExperimentConfig:
    """One training run."""

    name: str = "pln"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def validate(self) -> None:
        self.data.validate()
        self.model.validate()
        self.loss.validate()
        self.loss.resolved_lambdas(self.model.num_stages)
        self.train.validate()
        self.eval.validate()
        if not -self.model.num_stages <= self.eval.stage < self.model.num_stages:
            raise ConfigError(f"eval.stage={self.eval.stage} is not a stage of a {self.model.num_stages}-stage model")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# Loading


def _positive(obj: Any, *names: str) -> None:
    section = type(obj).__name__.removesuffix("Config").lower()
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            raise ConfigError(f"{section}.{name} must be > 0, got {value}")


def _check_value(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to the annotated type ``tp``, or raise naming ``key``."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)
        return [_check_value(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {full!r}; known keys here: {', '.join(sorted(names))}")
        kwargs[key] = _check_value(value, hints[key], full)
    return cls(**kwargs)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``override`` wins; mappings merge key by key."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def config_from_dict(values: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build and validate a config from a plain mapping (e.g. parsed YAML)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    try:
        cfg = _build(ExperimentConfig, values, "")
        cfg.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def parse_override(text: str) -> dict[str, Any]:
    """``"train.seed=3"`` -> ``{"train": {"seed": 3}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.seed=1")
    key, raw = text.split("=", 1)
    value = yaml.safe_load(raw)
    out: dict[str, Any] = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config, apply ``KEY=VALUE`` overrides, validate."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    for item in overrides or []:
        values = merge(values, parse_override(item))
    return config_from_dict(values, str(path))


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from pln.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
