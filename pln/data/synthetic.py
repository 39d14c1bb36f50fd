"""The built-in synthetic benchmark: synthetic-tacos, synthetic-activitynet, synthetic-charades.

Each dataset has the shape of its real counterpart (the :data:`SHAPES` table, measured from the
2D-TAN annotation files): videos and queries per split, video durations, moment length relative
to video length, sentence lengths. The generator writes exactly the on-disk formats of the real
releases (annotation JSON / TXT + CSV, HDF5 features in the real layout), so synthetic runs go
through the real readers. Output is deterministic given :class:`~pln.config.SyntheticConfig`.

The learnable signal needs the whole sentence. A video is a sequence of events; an event is an
(action, object) pair, and its raw feature rows are ``action_proto + object_proto + noise``. A
query is a sentence naming one event's action and object with GloVe words ("a person cuts the
carrot then"); its moment is that event's span. Within a video every event has its own pair,
while actions and objects recur across events (a video with K events draws its pairs from a
grid of about sqrt(K) actions x sqrt(K) objects), so a reader of only the action or only the
object faces distractors. The training set's most common relative moment is no answer either:
moments are placed anywhere.

Sizes. Queries per split = ``round(real queries * scale * QUERY_FACTOR)`` and videos =
``round(queries / min(real queries per video, MAX_QUERIES_PER_VIDEO))``, at least 1 each. At
scale 1.0 (train / val / test queries, videos):

| dataset | queries | videos | raw rows per video |
|---|---|---|---|
| synthetic-tacos (factor 0.05) | 490 / 222 / 200 | 31 / 14 / 12 | 64-400 (1 per second) |
| synthetic-activitynet (0.01) | 374 / 175 / 170 | 100 / 49 / 49 | 32-200 (1 per second) |
| synthetic-charades (0.03) | 372 / - / 112 | 160 / - / 40 | 16-128 (2 per second) |

A third mode (``SyntheticConfig.mode == "real-annotations"``) keeps the real annotation files
and writes only features: every word gets a seeded random prototype, and the rows inside a
moment carry the mean prototype of its sentence's words plus noise (overlapping moments add).
"""

from __future__ import annotations

import csv
import json
import math
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from pln.config import SyntheticConfig, dataset_family
from pln.data.annotations import NATIVE_SPLITS, read_split
from pln.data.cache import cached_dir
from pln.data.tokenize import tokenize
from pln.errors import DataError

GENERATOR_VERSION = 1
QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)


@dataclass(frozen=True)
class DatasetShape:
    """Figures of one real dataset (``*_q``: values at :data:`QUANTILES`) and generator sizes."""

    videos: dict[str, int]
    queries: dict[str, int]
    duration_q: tuple[float, ...]  # seconds
    rel_length_q: tuple[float, ...]  # moment length / video length
    sentence_len_q: tuple[float, ...]  # words (white-space split)
    query_factor: float  # synthetic queries = real queries * scale * query_factor
    max_queries_per_video: float
    rows_per_second: float
    rows_range: tuple[int, int]


# Measured from the 2D-TAN annotation files (data/annotations: tacos/*.json,
# activitynet/*.json, charades/charades_sta_*.txt + Charades_v1_*.csv) after the readers'
# clipping and dropping; durations per video, relative lengths and sentence lengths per pair.
SHAPES: dict[str, DatasetShape] = {
    "tacos": DatasetShape(
        videos={"train": 75, "val": 27, "test": 25},
        queries={"train": 9790, "val": 4436, "test": 4001},
        duration_q=(48.3, 66.0, 82.0, 114.4, 199.1, 378.6, 630.2, 742.0, 1402.2),
        rel_length_q=(0.0008, 0.0096, 0.0146, 0.0274, 0.0552, 0.1161, 0.2261, 0.33, 0.9084),
        sentence_len_q=(1, 3, 4, 5, 7, 10, 15, 18, 64),
        query_factor=0.05, max_queries_per_video=16, rows_per_second=1.0, rows_range=(64, 400)),
    "activitynet": DatasetShape(
        videos={"train": 10009, "val": 4917, "test": 4885},
        queries={"train": 37417, "val": 17505, "test": 17031},
        duration_q=(1.6, 17.9, 29.4, 60.9, 115.1, 174.0, 211.5, 224.8, 755.1),
        rel_length_q=(0.0043, 0.025, 0.045, 0.105, 0.245, 0.46, 0.7451, 0.95, 1.0),
        sentence_len_q=(3, 6, 7, 9, 12, 16, 21, 24, 82),
        query_factor=0.01, max_queries_per_video=16, rows_per_second=1.0, rows_range=(32, 200)),
    "charades": DatasetShape(
        videos={"train": 5338, "test": 1334},
        queries={"train": 12404, "test": 3720},
        duration_q=(5.5, 17.6, 21.2, 27.8, 30.7, 32.6, 37.4, 42.2, 194.3),
        rel_length_q=(0.0336, 0.1299, 0.1516, 0.1902, 0.2523, 0.3425, 0.4222, 0.4589, 0.5082),
        sentence_len_q=(2, 3, 4, 5, 6, 8, 9, 10, 10),
        query_factor=0.03, max_queries_per_video=16, rows_per_second=2.0, rows_range=(16, 128)),
}

# GloVe words of the synthetic language: 12 actions x 12 objects, and filler words.
ACTIONS = ("opens", "cuts", "washes", "takes", "puts", "peels",
           "stirs", "pours", "rinses", "slices", "grabs", "closes")
OBJECTS = ("drawer", "knife", "carrot", "cup", "plate", "bowl",
           "door", "towel", "bottle", "pan", "onion", "bread")
PREFIX_WORDS = ("a", "the", "then", "now")
SUFFIX_WORDS = ("then", "slowly", "in", "the", "kitchen", "carefully", "again",
                "and", "at", "counter", "quickly", "while", "standing")

# Feature file written per family (the real release's name and layout).
FEATURE_FILES = {"tacos": "tall_c3d_features.hdf5", "activitynet": "sub_activitynet_v1-3.c3d.hdf5",
                 "charades": "vgg_rgb_features.hdf5"}


def split_sizes(name: str, scale: float) -> dict[str, tuple[int, int]]:
    """``{split: (videos, queries)}`` of a synthetic dataset at ``scale``."""
    shape = SHAPES[dataset_family(name)]
    out = {}
    for split, real_q in shape.queries.items():
        queries = max(1, round(real_q * scale * shape.query_factor))
        per_video = min(real_q / shape.videos[split], shape.max_queries_per_video)
        out[split] = (max(1, round(queries / per_video)), queries)
    return out


def folder_name(cfg: SyntheticConfig) -> str:
    """``scale1_seed0_d64_noise0.5`` (``realann_seed0_d64_noise0.5`` in real-annotations mode)."""
    head = "realann" if cfg.mode == "real-annotations" else f"scale{cfg.scale:g}"
    return f"{head}_seed{cfg.seed}_d{cfg.feature_dim}_noise{cfg.noise:g}"


def ensure_generated(name: str, data_dir: str | Path, cfg: SyntheticConfig,
                     annotation_dir: str | Path | None = None) -> Path:
    """The folder of a synthetic dataset under ``data_dir/<name>/``, generated atomically if missing."""
    return cached_dir(Path(data_dir) / name, folder_name(cfg),
                      lambda tmp: generate(name, tmp, cfg, annotation_dir))


def prototypes(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Feature prototypes ``(actions [12, D], objects [12, D])`` float32 of a seed."""
    rng = np.random.default_rng([cfg.seed, 7919])
    acts = rng.standard_normal((len(ACTIONS), cfg.feature_dim)).astype(np.float32)
    objs = rng.standard_normal((len(OBJECTS), cfg.feature_dim)).astype(np.float32)
    return acts, objs


def generate(dataset_name: str, out_dir: str | Path, cfg: SyntheticConfig,
             annotation_dir: str | Path | None = None) -> None:
    """Write a synthetic dataset into ``out_dir`` in the real release's formats.

    ``cfg.mode == "full"``: annotation files and HDF5 features of every split. ``"real-annotations"``:
    only the HDF5 features, for the videos of the real annotation files in ``annotation_dir``.
    """
    family = dataset_family(dataset_name)
    if family not in SHAPES:
        raise DataError(f"unknown synthetic dataset {dataset_name!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.mode == "real-annotations":
        if annotation_dir is None:
            raise DataError("real-annotations mode needs data.annotation_dir (the real annotation files)")
        _generate_real_annotation_features(family, Path(annotation_dir), out, cfg)
    else:
        _generate_full(dataset_name, family, out, cfg)
    manifest = {"dataset": dataset_name, "generator_version": GENERATOR_VERSION, "config": asdict(cfg)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


# ----------------------------------------------------------------------------------------------
# Full mode


@dataclass
class _Video:
    vid: str
    duration: float
    bounds: np.ndarray  # [K + 1] event boundaries, seconds (quantised as in the annotation file)
    actions: np.ndarray  # [K] action index of each event
    objects: np.ndarray  # [K]
    eligible: np.ndarray  # [K] bool: may be the moment of a query
    rows: int  # T_raw


def _sample(rng: np.random.Generator, quantiles: tuple[float, ...], size: int | None = None) -> np.ndarray:
    """Draw from the piecewise-linear distribution through (QUANTILES, quantiles)."""
    return np.interp(rng.random(size), QUANTILES, quantiles)


def _quantise(seconds: np.ndarray, family: str) -> np.ndarray:
    step = {"tacos": 1.0 / 29.4, "activitynet": 0.01, "charades": 0.1}[family]
    return np.round(seconds / step) * step


def _make_video(rng: np.random.Generator, family: str, vid: str) -> _Video:
    shape = SHAPES[family]
    duration = float(_sample(rng, shape.duration_q))
    if family == "tacos":  # whole frames at 29.4 fps
        duration = round(duration * 29.4) / 29.4
    else:
        duration = round(duration, 2)
    rows = int(np.clip(round(duration * shape.rows_per_second), *shape.rows_range))
    min_rel = 1.0 / rows
    rels, eligible, remaining = [], [], 1.0
    while remaining > 1e-9:
        r = max(float(_sample(rng, shape.rel_length_q)), min_rel)
        if r > remaining - min_rel:
            if not rels:  # a moment spanning the whole video
                rels.append(remaining), eligible.append(True)
                break
            rels.append(remaining), eligible.append(False)  # the rest: an event no query names
            break
        rels.append(r), eligible.append(True)
        remaining -= r
    order = rng.permutation(len(rels))
    rels_arr, elig = np.array(rels)[order], np.array(eligible)[order]
    bounds = _quantise(np.concatenate([[0.0], np.cumsum(rels_arr)]) * duration, family)
    bounds[-1] = duration
    k = len(rels_arr)
    side = min(len(ACTIONS), max(2, math.ceil(math.sqrt(k))))
    acts = rng.choice(len(ACTIONS), side, replace=False)
    objs = rng.choice(len(OBJECTS), side, replace=False)
    grid = np.stack(np.meshgrid(acts, objs, indexing="ij"), -1).reshape(-1, 2)
    picks = rng.permutation(len(grid))
    if k > len(grid):
        picks = np.concatenate([picks, rng.integers(0, len(grid), k - len(grid))])
    pairs = grid[picks[:k]]
    _, inverse, counts = np.unique(pairs, axis=0, return_inverse=True, return_counts=True)
    elig &= (counts[inverse.ravel()] == 1) & (bounds[1:] > bounds[:-1])
    return _Video(vid, duration, bounds, pairs[:, 0], pairs[:, 1], elig, rows)


def _features(rng: np.random.Generator, video: _Video, acts: np.ndarray, objs: np.ndarray,
              noise: float) -> np.ndarray:
    """``[T_raw, D]`` float32: each row is its event's action + object prototype plus noise."""
    centres = (np.arange(video.rows) + 0.5) * video.duration / video.rows
    event = np.clip(np.searchsorted(video.bounds, centres, side="right") - 1, 0, len(video.actions) - 1)
    x = acts[video.actions[event]] + objs[video.objects[event]]
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32)


def _sentence(rng: np.random.Generator, family: str, action: str, obj: str) -> str:
    length = max(4, int(round(float(_sample(rng, SHAPES[family].sentence_len_q)))))
    extra = length - 4
    n_pre = int(rng.integers(0, min(extra, 2) + 1))
    pre = list(rng.choice(PREFIX_WORDS, n_pre)) if n_pre else []
    post = list(rng.choice(SUFFIX_WORDS, extra - n_pre)) if extra - n_pre else []
    return " ".join([*pre, "person", action, "the", obj, *post]) + "."


def _video_id(family: str, split: str, i: int) -> str:
    if family == "tacos":
        return f"syn-{split}-{i:04d}.avi"
    if family == "activitynet":
        return f"v_syn_{split}_{i:05d}"
    return f"{split[:2].upper()}{i:04d}"


def _write_features(f: h5py.File, family: str, vid: str, x: np.ndarray) -> None:
    if family == "activitynet":
        f.create_group(vid).create_dataset("c3d_features", data=x)
    else:
        f.create_dataset(vid, data=x)


def _generate_full(name: str, family: str, out: Path, cfg: SyntheticConfig) -> None:
    acts, objs = prototypes(cfg)
    sizes = split_sizes(name, cfg.scale)
    with h5py.File(out / FEATURE_FILES[family], "w") as h5:
        for split_no, (split, (n_videos, n_queries)) in enumerate(sizes.items()):
            rng = np.random.default_rng([cfg.seed, split_no, zlib.crc32(family.encode())])
            videos = [_make_video(rng, family, _video_id(family, split, i)) for i in range(n_videos)]
            per_video = np.full(n_videos, n_queries // n_videos) + (np.arange(n_videos) < n_queries % n_videos)
            queries: list[tuple[_Video, int, str]] = []
            for video, count in zip(videos, per_video):
                _write_features(h5, family, video.vid, _features(rng, video, acts, objs, cfg.noise))
                choices = np.flatnonzero(video.eligible)
                for e in rng.choice(choices, int(count)):
                    sentence = _sentence(rng, family, ACTIONS[video.actions[e]], OBJECTS[video.objects[e]])
                    queries.append((video, int(e), sentence))
            _write_annotations(family, out, split, videos, queries)


def _write_annotations(family: str, out: Path, split: str, videos: list[_Video],
                       queries: list[tuple[_Video, int, str]]) -> None:
    if family == "charades":
        with open(out / f"charades_sta_{split}.txt", "w") as fh:
            for video, e, sentence in queries:
                fh.write(f"{video.vid} {video.bounds[e]:.1f} {video.bounds[e + 1]:.1f}##{sentence}\n")
        with open(out / f"Charades_v1_{split}.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "subject", "scene", "quality", "relevance", "verified", "script",
                             "objects", "descriptions", "actions", "length"])
            for video in videos:
                writer.writerow([video.vid, "", "", "", "", "", "", "", "", "", f"{video.duration:.2f}"])
        return
    data: dict[str, dict] = {}
    for video in videos:
        if family == "tacos":
            data[video.vid] = {"timestamps": [], "sentences": [], "fps": 29.4,
                               "num_frames": int(round(video.duration * 29.4))}
        else:
            data[video.vid] = {"duration": video.duration, "timestamps": [], "sentences": []}
    for video, e, sentence in queries:
        start, end = video.bounds[e], video.bounds[e + 1]
        if family == "tacos":
            stamp = [int(round(start * 29.4)), int(round(end * 29.4))]
        else:
            stamp = [round(float(start), 2), round(float(end), 2)]
        data[video.vid]["timestamps"].append(stamp)
        data[video.vid]["sentences"].append(sentence)
    (out / f"{split}.json").write_text(json.dumps(data))


# ----------------------------------------------------------------------------------------------
# Real-annotations mode


def _word_prototype(word: str, cfg: SyntheticConfig) -> np.ndarray:
    rng = np.random.default_rng([cfg.seed, zlib.crc32(word.encode("utf-8"))])
    return rng.standard_normal(cfg.feature_dim).astype(np.float32)


def _generate_real_annotation_features(family: str, annotation_dir: Path, out: Path,
                                       cfg: SyntheticConfig) -> None:
    shape = SHAPES[family]
    moments: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    durations: dict[str, float] = {}
    for split in NATIVE_SPLITS[family]:
        samples, _ = read_split(family, annotation_dir, split)
        for s in samples:
            moments[s.video_id].append((s.start, s.end, s.sentence))
            durations[s.video_id] = s.duration
    words: dict[str, np.ndarray] = {}
    rng = np.random.default_rng([cfg.seed, 104729])
    with h5py.File(out / FEATURE_FILES[family], "w") as h5:
        for vid in sorted(moments):
            duration = durations[vid]
            rows = int(np.clip(round(duration * shape.rows_per_second), *shape.rows_range))
            centres = (np.arange(rows) + 0.5) * duration / rows
            x = np.zeros((rows, cfg.feature_dim), dtype=np.float32)
            for start, end, sentence in sorted(set(moments[vid])):
                tokens = tokenize(sentence) or ["<empty>"]
                for t in tokens:
                    if t not in words:
                        words[t] = _word_prototype(t, cfg)
                vec = np.mean([words[t] for t in tokens], axis=0)
                x[(centres >= start) & (centres < end)] += vec
            x += cfg.noise * rng.standard_normal(x.shape).astype(np.float32)
            _write_features(h5, family, vid, x)
