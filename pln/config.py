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
    "jsonl",  # any dataset in the moment-DETR / QVHighlights JSONL format (pln.data.jsonl)
)

# NMS thresholds per dataset family (SPEC section 5).
NMS_THRESHOLDS = {"tacos": 0.4, "activitynet": 0.5, "charades": 0.45, "jsonl": 0.5}  # jsonl: [choice]
# IoU thresholds m reported per dataset family (SPEC section 5).
IOU_THRESHOLDS = {"tacos": (0.1, 0.3, 0.5, 0.7), "activitynet": (0.3, 0.5, 0.7), "charades": (0.3, 0.5, 0.7),
                  "jsonl": (0.3, 0.5, 0.7)}
# The annotation splits each 2D-TAN dataset family ships; Charades-STA has no val split of its
# own (DataConfig.charades_val_fraction carves one from train).
NATIVE_SPLITS = {"tacos": ("train", "val", "test"), "activitynet": ("train", "val", "test"),
                 "charades": ("train", "test")}
# Placement policies of a split's unit table (DataConfig.units_on_device).
UNITS_ON_DEVICE = ("auto", "always", "never")
# Joint-loss weights lambda_t per number of stages (SPEC section 4, paper eq. 8).
DEFAULT_LAMBDAS = {1: (1.0,), 2: (1.0, 1.5), 3: (1.0, 1.3, 1.5), 4: (1.0, 1.2, 1.5, 2.0)}


def ratio_log2(n_prev: int, n: int) -> int:
    """``log2(n / n_prev)`` for clip counts whose ratio is a power of 2 (checked by ModelConfig)."""
    return max(n // n_prev, 1).bit_length() - 1


# The name prefix of the generated stand-ins of the real datasets (``synthetic-tacos``).
SYNTHETIC_PREFIX = "synthetic-"


def is_synthetic_dataset(name: str) -> bool:
    """Whether ``name`` is a generated dataset (``synthetic-tacos``) rather than real data."""
    return name.startswith(SYNTHETIC_PREFIX)


def dataset_family(name: str) -> str:
    """``synthetic-tacos`` -> ``tacos``; ``tacos`` -> ``tacos``."""
    return name.removeprefix(SYNTHETIC_PREFIX)


@dataclass
class ModelConfig:
    """The PLN model (SPEC sections 2-3).

    A one-stage model is one localization branch. With 2D-TAN's ConvNet (8 or 4 layers) and its
    label rescaling (``loss.label: tan``) it is the official 2D-TAN baseline of Tables 2-3; with
    the paper's 2 conv layers and eq. 7 labels it is PLN's own one-stage model (Table 5).
    """

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
    # ConvNet weight initialisation: "pytorch" (its default, as 2D-TAN) or "unit_gain" (He-normal
    # scaled so that a count-normalised layer keeps the scale of its input; see pln.model.mapconv)
    conv_init: Literal["pytorch", "unit_gain"] = "pytorch"
    conv_banded: bool = True  # convolve only the band of cells the output needs (exact; faster)
    conv_block: int = 16  # rows per strip of the banded ConvNet (speed only)
    conv_channels_last: bool = False  # ConvNet activations in channels-last layout (speed only)
    map_fast: bool = True  # the 2D map's hand-written backward (pln.model.map2d; exact; speed only)
    share_convnet: bool = True  # paper 4.1.3: the ConvNet is shared across stages
    share_fusion: bool = False  # [choice] each stage has its own fusion layers (True: one for all)
    share_predictor: bool = False  # [choice] each stage has its own predictor (True: one for all)
    # [choice] the ReLU after each 3x3 conv of the upsampling connection (the paper names the
    # convolutions only; the ReLU makes UC(H^{t-1}) >= 0, which decides how the max merge mixes)
    uc_relu: bool = True
    # [choice] UC blocks between stages whose clip counts differ: None is log2(N^t / N^{t-1})
    # (the only count that reaches N^t with x2 upsampling blocks); n: n blocks, the first
    # log2(N^t / N^{t-1}) upsample x2 and the rest keep the size
    uc_blocks: int | None = None
    # [choice] the UC between stages with equal clip counts (Table 6's 32-32): "identity" merges
    # H^{t-1} as it is (no block); "convs" keeps one block's two 3x3 convs without upsampling
    uc_same_size: Literal["identity", "convs"] = "identity"
    # [choice] CFM when conv_channels != hidden: "linear" maps the pooled H^{t-1} [C] to [H];
    # "none" adds no layer and needs conv_channels == hidden (the paper's widths)
    cfm_projection: Literal["linear", "none"] = "linear"

    def validate(self) -> None:
        _positive(self, "feature_dim", "num_units", "hidden", "word_dim", "lstm_layers",
                  "conv_layers", "conv_kernel", "conv_channels", "conv_block")
        if not 1 <= len(self.clips) <= 4:
            raise ConfigError(f"model.clips: give 1 to 4 clip counts, got {self.clips}")
        if min(self.clips) < 1:
            raise ConfigError(f"model.clips: every clip count must be >= 1, got {self.clips}")
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
        self._validate_connections()

    def _validate_connections(self) -> None:
        """The stated choices of the UC and the CFM (uc_blocks, cfm_projection)."""
        if self.uc_blocks is not None:
            needed = max((ratio_log2(a, b) for a, b in zip(self.clips, self.clips[1:])), default=0)
            if not needed <= self.uc_blocks <= 8:
                raise ConfigError(
                    f"model.uc_blocks must be in [{needed}, 8] for clips {self.clips} (at least "
                    f"log2 of the largest clip-count ratio), got {self.uc_blocks}; null: log2 of each ratio")
        if self.cfm_projection == "none" and self.use_cfm and self.num_stages > 1 \
                and self.conv_channels != self.hidden:
            raise ConfigError(
                f"model.cfm_projection 'none' needs model.conv_channels == model.hidden, got "
                f"{self.conv_channels} and {self.hidden}; use 'linear' or equal widths")

    def uc_layout(self, t: int) -> tuple[int, int]:
        """``(blocks, upsampling blocks)`` of the UC into stage ``t`` (0-based, ``t >= 1``)."""
        up = ratio_log2(self.clips[t - 1], self.clips[t])
        if up == 0:
            return (1 if self.uc_same_size == "convs" else 0), 0
        return (up if self.uc_blocks is None else self.uc_blocks), up

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
    # The val split's scale (None: ``scale``), likewise: a larger val split makes the epoch
    # selection and the stopping rule less noisy without changing what a model trains on.
    # Charades-STA has no val split of its own (see ``DataConfig.charades_val_fraction``).
    val_scale: float | None = None
    seed: int = 0
    feature_dim: int = 64  # raw feature size of generated videos
    noise: float = 0.5
    # "full": generated annotations and features; "real-annotations": the real annotation files
    # with generated features (needs data.annotation_dir).
    mode: Literal["full", "real-annotations"] = "full"

    def validate(self) -> None:
        if not self.scale > 0:
            raise ConfigError(f"data.synthetic.scale must be > 0, got {self.scale}")
        for key in ("test_scale", "val_scale"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"data.synthetic.{key} must be > 0 (or null: the same as data.synthetic.scale), "
                                  f"got {value}")
        _positive(self, "feature_dim")
        if not self.noise >= 0:
            raise ConfigError(f"data.synthetic.noise must be >= 0, got {self.noise}")


@dataclass
class DataConfig:
    """Where the data comes from and how it is read (SPEC sections 2 and 6)."""

    dataset: str = "synthetic-tacos"
    annotation_dir: str | None = None  # real data: folder with the 2D-TAN annotation files
    feature_file: str | None = None  # real data: the HDF5 feature file
    feature_dir: str | None = None  # jsonl only, instead of feature_file: <vid>.npz / <vid>.npy per video
    feature_kind: Literal["c3d", "vgg", "i3d"] = "c3d"
    glove: str | None = None  # glove.6B.300d.txt; None: built-in GloVe 6B 50-d
    strip_punctuation: bool = True  # [choice] 2D-TAN does not strip
    data_dir: str = "data"  # synthetic datasets are generated under here
    cache_dir: str = "cache"  # unit features, word ids and labels are cached here
    num_workers: int = 0
    charades_val_fraction: float = 0.1  # [choice] Charades-STA (and a JSONL folder without val.jsonl) has no val split
    charades_val_seed: int = 0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # Where a split's unit table [V, M, D] lives while a model runs over it (pln.engine.units):
    # "always" on the model's device (each batch gathers its rows there), "never" streamed
    # through the loader per query, "auto" on the device when it fits units_device_max_gib
    # and half of the device's free memory (host RAM for the CPU). Strings, not yes/no: YAML
    # reads those as booleans.
    units_on_device: str = "auto"
    units_device_max_gib: float = 24.0
    # A split stops with an error when more than this share of its feature rows is damaged
    # (NaN/Inf, or finite but absurd: see pln.data.features.bad_rows); data_report.json has the share.
    max_bad_row_fraction: float = 0.01

    def validate(self) -> None:
        self.synthetic.validate()
        if not 0.0 <= self.max_bad_row_fraction <= 1.0:
            raise ConfigError(f"data.max_bad_row_fraction must be in [0, 1], got {self.max_bad_row_fraction}")
        if self.dataset not in DATASETS:
            raise ConfigError(f"data.dataset: unknown dataset {self.dataset!r}; choose one of {', '.join(DATASETS)}")
        if not is_synthetic_dataset(self.dataset):
            # data.feature_file is checked where features are read (pln stats needs none).
            if not self.annotation_dir:
                raise ConfigError(f"data.annotation_dir is required for the real dataset {self.dataset!r}")
        elif self.synthetic.mode == "real-annotations" and not self.annotation_dir:
            raise ConfigError("data.annotation_dir is required when data.synthetic.mode is 'real-annotations'")
        if self.feature_dir is not None and self.dataset != "jsonl":
            raise ConfigError(f"data.feature_dir is for data.dataset 'jsonl' only; {self.dataset!r} reads "
                              "data.feature_file")
        if self.feature_dir is not None and self.feature_file is not None:
            raise ConfigError("data.feature_dir and data.feature_file are both set; give one of them")
        if (self.synthetic.val_scale is not None and is_synthetic_dataset(self.dataset)
                and "val" not in NATIVE_SPLITS[self.family]):
            raise ConfigError(f"data.synthetic.val_scale: {self.dataset} has no val split of its own (it is "
                              "carved from train); set data.charades_val_fraction instead, or null")
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
class PlateauConfig:
    """``ReduceLROnPlateau`` on the validation loss, stepped after every validation (2D-TAN's
    code: factor 0.8, patience 20; torch's defaults otherwise: relative threshold 1e-4, no
    cooldown, no floor)."""

    factor: float = 0.8  # lr <- lr * factor after `patience` + 1 validations without improvement
    patience: int = 20  # validations without improvement that are tolerated

    def validate(self) -> None:
        if not 0.0 < self.factor < 1.0:
            raise ConfigError(f"train.lr_plateau.factor must be in (0, 1), got {self.factor}")
        if not 0 <= self.patience <= 10_000:
            raise ConfigError(f"train.lr_plateau.patience must be in [0, 10000], got {self.patience}")


@dataclass
class CosineConfig:
    """Linear warm-up, then cosine decay, set before every optimisation step from the global step
    ``g`` (0-based) of ``T = max_epochs x steps per epoch``: ``lr x (g + 1) / W`` for ``g < W =
    warmup_epochs x steps per epoch``, then ``lr x (f + (1 - f) (1 + cos(pi (g - W) / (T - W))) / 2)``
    with ``f = final_fraction``. A function of the step alone: a resumed run follows it exactly."""

    warmup_epochs: float = 1.0
    final_fraction: float = 0.0  # the rate of the last step, as a fraction of train.lr

    def validate(self) -> None:
        if not 0.0 <= self.warmup_epochs <= 1000:
            raise ConfigError(f"train.lr_cosine.warmup_epochs must be in [0, 1000], got {self.warmup_epochs}")
        if not 0.0 <= self.final_fraction <= 1.0:
            raise ConfigError(f"train.lr_cosine.final_fraction must be in [0, 1], got {self.final_fraction}")


@dataclass
class TrainConfig:
    """Optimisation (SPEC section 4)."""

    lr: float = 1e-4
    weight_decay: float = 0.0  # Adam's L2 weight decay (2D-TAN's configs: 0)
    # [choice] clip the gradient norm of all parameters at this value after every backward pass
    # (2D-TAN's code: 10); None: no clipping
    grad_clip_norm: float | None = 10.0
    # [choice] plateau schedule on the validation loss ({} for 2D-TAN's values); None: constant lr
    lr_plateau: PlateauConfig | None = None
    # [choice] warm-up and cosine decay over max_epochs, per step; None: no such schedule
    lr_cosine: CosineConfig | None = None
    batch_size: int = 32
    max_epochs: int = 50
    seed: int = 0  # the initial weights and, unless order_seed is set, each epoch's randomness
    # [choice] the seed of each epoch's shuffling and in-epoch randomness, apart from the initial
    # weights (train.seed); None: train.seed. Setting it separates a seed's two sources of spread.
    order_seed: int | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    bf16: bool = False  # bf16 autocast (GPU; on the CPU where it has bf16 units)
    select_metric: str = "R1@0.5"  # validation metric that picks the epoch
    # [choice] stop once this many validations in a row have not improved select_metric (the
    # selected epoch stays the best one); None: train all max_epochs
    stop_patience: int | None = None
    # [choice] validate, select and test an exponential moving average of the weights whose
    # horizon is this many epochs (pln.engine.recipe.WeightAverage); None: the weights themselves
    ema_epochs: float | None = None
    eval_batch_size: int = 64
    max_train_batches: int | None = None  # cap per epoch (smoke tests); None: the whole split
    log_every: int = 50
    threads: int | None = None  # torch CPU threads; None: torch's default

    def validate(self) -> None:
        _positive(self, "lr", "batch_size", "max_epochs", "eval_batch_size", "log_every")
        if self.max_train_batches is not None and self.max_train_batches < 1:
            raise ConfigError(f"train.max_train_batches must be >= 1 (or null: the whole split), "
                              f"got {self.max_train_batches}")
        if self.stop_patience is not None and self.stop_patience < 1:
            raise ConfigError(f"train.stop_patience must be >= 1 (or null: train all max_epochs), "
                              f"got {self.stop_patience}")
        if self.ema_epochs is not None and not 0.0 < self.ema_epochs <= 1000.0:
            raise ConfigError(f"train.ema_epochs must be in (0, 1000] (or null: no weight average), "
                              f"got {self.ema_epochs}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"train.threads must be >= 1 (or null: torch's default), got {self.threads}")
        if self.order_seed is not None and self.order_seed < 0:
            raise ConfigError(f"train.order_seed must be >= 0 (or null: train.seed), got {self.order_seed}")
        if not 0.0 <= self.weight_decay < 1.0:
            raise ConfigError(f"train.weight_decay must be in [0, 1), got {self.weight_decay}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ConfigError(f"train.grad_clip_norm must be > 0 (or null: no clipping), got {self.grad_clip_norm}")
        if self.lr_plateau is not None:
            self.lr_plateau.validate()
        if self.lr_cosine is not None:
            self.lr_cosine.validate()
            if self.lr_plateau is not None:
                raise ConfigError("train.lr_cosine and train.lr_plateau are both set; choose one schedule")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    @property
    def resolved_order_seed(self) -> int:
        """The seed of the epochs' shuffling and in-epoch randomness: ``order_seed``, else ``seed``."""
        return self.seed if self.order_seed is None else self.order_seed


@dataclass
class EvalConfig:
    """Inference and metrics (SPEC section 5)."""

    nms_threshold: float | None = None  # None: the dataset's value
    ranks: list[int] = field(default_factory=lambda: [1, 5])
    iou_thresholds: list[float] | None = None  # None: the dataset's values
    max_candidates: int = 5
    strategy: Literal["1", "2"] = "1"
    stage: int = -1  # strategy 1: which stage's map is ranked; -1 is the last
    num_score_maps: int = 4  # test queries whose stage score maps are saved (Fig. 7)

    def resolved_nms(self, family: str) -> float:
        return self.nms_threshold if self.nms_threshold is not None else NMS_THRESHOLDS[family]

    def resolved_ious(self, family: str) -> list[float]:
        return list(self.iou_thresholds) if self.iou_thresholds is not None else list(IOU_THRESHOLDS[family])

    def validate(self) -> None:
        if self.nms_threshold is not None:
            check_nms_threshold(self.nms_threshold, "eval.nms_threshold")
        _positive(self, "max_candidates")
        if not self.ranks or min(self.ranks) < 1:
            raise ConfigError(f"eval.ranks: give one or more ranks >= 1, got {self.ranks}")
        if max(self.ranks) > self.max_candidates:
            raise ConfigError(f"eval.ranks may not exceed eval.max_candidates={self.max_candidates}, got {self.ranks}")
        if self.iou_thresholds is not None:
            if not self.iou_thresholds or not all(0.0 <= m < 1.0 for m in self.iou_thresholds):
                raise ConfigError(f"eval.iou_thresholds: give one or more IoU thresholds in [0, 1), "
                                  f"got {self.iou_thresholds}")
        if self.num_score_maps < 0:
            raise ConfigError(f"eval.num_score_maps must be >= 0, got {self.num_score_maps}")


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


# The settings that change how a run executes, not what it computes, as (section, key): where it
# runs, its worker and thread counts, its data and cache folders, and the model's speed-only
# paths (the banded convolution, its strip height, the channels-last layout, the 2D map's
# backward). A resumed run may differ from its run folder here (pln.engine.run_dir), and a
# checkpoint is evaluated under other speed settings (pln.engine.checkpoint).
RESULT_NEUTRAL_KEYS: frozenset[tuple[str, str]] = frozenset({
    ("train", "device"), ("train", "log_every"), ("train", "threads"), ("train", "eval_batch_size"),
    ("data", "num_workers"), ("data", "cache_dir"), ("data", "data_dir"),
    ("model", "conv_banded"), ("model", "conv_block"), ("model", "conv_channels_last"),
    ("model", "map_fast"),
})


def result_neutral_keys(section: str) -> frozenset[str]:
    """The keys of ``section`` (e.g. ``"model"``) listed in :data:`RESULT_NEUTRAL_KEYS`."""
    return frozenset(key for where, key in RESULT_NEUTRAL_KEYS if where == section)


# ----------------------------------------------------------------------------------------------
# Loading


def check_nms_threshold(value: float, key: str) -> float:
    """``value`` if it is a valid NMS threshold (in (0, 1]), else a ConfigError naming ``key``."""
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ConfigError(f"{key} must be in (0, 1] (an IoU), got {value}")
    return value


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
        if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in choices:
            value = str(value)  # `--set eval.strategy=2`: YAML reads the 2 as a number
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
        if isinstance(value, str):
            value = _number(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _number(text: str) -> Any:
    """``text`` as a float when it spells one (``1e-3``, ``2.5E2``), else ``text`` unchanged."""
    try:
        return float(text)
    except ValueError:
        return text


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


# model.share_heads (before share_fusion and share_predictor existed) set both at once.
_LEGACY_SHARE_HEADS = "share_heads"


def upgrade_model_keys(model: dict[str, Any]) -> dict[str, Any]:
    """A model mapping with retired keys rewritten (``share_heads: x`` -> ``share_fusion: x``,
    ``share_predictor: x``, unless those are given), so that older configs and checkpoints load."""
    if _LEGACY_SHARE_HEADS not in model:
        return model
    out = {k: v for k, v in model.items() if k != _LEGACY_SHARE_HEADS}
    out.setdefault("share_fusion", model[_LEGACY_SHARE_HEADS])
    out.setdefault("share_predictor", model[_LEGACY_SHARE_HEADS])
    return out


def complete_model_dict(model: dict[str, Any]) -> dict[str, Any]:
    """A stored model mapping (e.g. a checkpoint's) upgraded and completed with the defaults of
    keys added since it was written (their defaults are the earlier behaviour)."""
    return dataclasses.asdict(_build(ModelConfig, upgrade_model_keys(model), "model"))


def config_from_dict(values: dict[str, Any], source: str = "<dict>") -> ExperimentConfig:
    """Build and validate a config from a plain mapping (e.g. parsed YAML)."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    if isinstance(values.get("model"), dict):
        values = {**values, "model": upgrade_model_keys(values["model"])}
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
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        reason = (str(exc).strip().splitlines() or ["not valid YAML"])[0]
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({reason}) -- "
                          "quote it whole, e.g. --set 'model.clips=[8,32]'") from None
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
