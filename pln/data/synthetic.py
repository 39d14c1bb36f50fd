"""The built-in synthetic benchmark: synthetic-tacos, synthetic-activitynet, synthetic-charades.

Each dataset has the shape of its real counterpart (the :data:`SHAPES` table, measured from the
2D-TAN annotation files): videos and queries per split, video durations, moment length relative
to video length, sentence lengths. The generator writes exactly the on-disk formats of the real
releases (annotation JSON / TXT + CSV, HDF5 features in the real layout), so synthetic runs go
through the real readers. Output is deterministic given :class:`~pln.config.SyntheticConfig`.

The learnable signal needs the whole sentence. A video is a sequence of at most
:data:`MAX_EVENTS` events on a background; an event is an (action, object) pair, and its raw
feature rows are ``action_proto + object_proto + noise`` (background rows: noise only). A query
is a sentence naming one event's action and object with GloVe words ("the kitchen then person
cuts the carrot slowly"); its moment is that event's span. Within a video every event has its own
pair, while each action and each object recurs across two events (the pairs form a ladder
``(a1, o1), (a1, o2), (a2, o2), (a2, o3), ...``), so a reader of only the action or only the
object faces a distractor for almost every query. The training set's most common relative moment
is no answer either: events are placed anywhere.

Learnability (measured with the CPU demo model): a video tiled edge to edge with events (TACoS:
about 10 per video) and a 12 x 12 vocabulary left a small PLN at the prior after 10 epochs;
capping the events per video, a 6 x 6 vocabulary with orthogonal prototypes and the content
words near the end of the sentence (the filler words mostly before them, at most two after)
let it learn within that budget at a learning rate of 1e-2 (at 1e-3 it still needs more epochs). Moment lengths, durations and sentence lengths keep the real
datasets' distributions.

Sizes. Queries per split = ``round(real queries * scale * QUERY_FACTOR)`` and videos =
``round(queries / min(real queries per video, MAX_QUERIES_PER_VIDEO))``, at least 1 each; the
test split uses ``test_scale`` and the val split ``val_scale`` instead of ``scale`` when set
(more queries from the same per-split generator: its videos and queries follow the same
distributions, and the other splits are the same files). At
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

from pln.config import NATIVE_SPLITS, SyntheticConfig, dataset_family
from pln.data.annotations import read_split
from pln.data.cache import cached_dir
from pln.data.tokenize import tokenize
from pln.errors import DataError

GENERATOR_VERSION = 2
MAX_EVENTS = 4  # events per video; the rest of the video is background
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

# GloVe words of the synthetic language: 6 actions x 6 objects, and filler words.
ACTIONS = ("opens", "cuts", "washes", "takes", "pours", "closes")
OBJECTS = ("drawer", "knife", "carrot", "cup", "bottle", "bread")
PREFIX_WORDS = ("a", "the", "then", "now")
SUBJECT = "person"
SUFFIX_WORDS = ("then", "slowly", "in", "the", "kitchen", "carefully", "again",
                "and", "at", "counter", "quickly", "while", "standing")

# Feature file written per family (the real release's name and layout).
FEATURE_FILES = {"tacos": "tall_c3d_features.hdf5", "activitynet": "sub_activitynet_v1-3.c3d.hdf5",
                 "charades": "vgg_rgb_features.hdf5"}


def split_sizes(name: str, scale: float, test_scale: float | None = None,
                val_scale: float | None = None) -> dict[str, tuple[int, int]]:
    """``{split: (videos, queries)}`` of a synthetic dataset at ``scale`` (the test split at
    ``test_scale``, the val split at ``val_scale``, when given)."""
    shape = SHAPES[dataset_family(name)]
    own = {"test": test_scale, "val": val_scale}
    out = {}
    for split, real_q in shape.queries.items():
        factor = scale if own.get(split) is None else own[split]
        queries = max(1, round(real_q * factor * shape.query_factor))
        per_video = min(real_q / shape.videos[split], shape.max_queries_per_video)
        out[split] = (max(1, round(queries / per_video)), queries)
    return out


def folder_name(cfg: SyntheticConfig) -> str:
    """``v2_scale1_seed0_d64_noise0.5`` (``v2_realann_...`` in real-annotations mode;
    ``_test<x>`` and ``_val<x>`` follow the scale when those splits have their own).

    The generator version leads the name, so a changed generator never reuses stale data.
    """
    head = "realann" if cfg.mode == "real-annotations" else f"scale{cfg.scale:g}"
    if cfg.mode != "real-annotations":
        for split, own_scale in (("test", cfg.test_scale), ("val", cfg.val_scale)):
            if own_scale is not None:
                head += f"_{split}{own_scale:g}"
    return f"v{GENERATOR_VERSION}_{head}_seed{cfg.seed}_d{cfg.feature_dim}_noise{cfg.noise:g}"


def ensure_generated(name: str, data_dir: str | Path, cfg: SyntheticConfig,
                     annotation_dir: str | Path | None = None) -> Path:
    """The folder of a synthetic dataset under ``data_dir/<name>/``, generated atomically if missing."""
    return cached_dir(Path(data_dir) / name, folder_name(cfg),
                      lambda tmp: generate(name, tmp, cfg, annotation_dir))


def prototypes(cfg: SyntheticConfig) -> tuple[np.ndarray, np.ndarray]:
    """Feature prototypes ``(actions [6, D], objects [6, D])`` float32 of a seed.

    Rows of a random orthogonal matrix scaled to norm ``sqrt(D)`` (the norm of a standard normal
    row) when ``D >= 12``; standard normal rows otherwise.
    """
    rng = np.random.default_rng([cfg.seed, 7919])
    n_a, n_o, d = len(ACTIONS), len(OBJECTS), cfg.feature_dim
    protos = rng.standard_normal((n_a + n_o, d))
    if d >= n_a + n_o:
        q, _ = np.linalg.qr(protos.T)  # [D, 12] orthonormal columns
        protos = q.T * math.sqrt(d)
    protos = protos.astype(np.float32)
    return protos[:n_a], protos[n_a:]


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
    spans: np.ndarray  # [K, 2] event (start, end), seconds (quantised as in the annotation file)
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


def _ladder_pairs(rng: np.random.Generator, k: int) -> np.ndarray:
    """``[k, 2]`` distinct (action, object) pairs in which actions and objects recur.

    With ``s = max(2, ceil(k / 2))`` actions a_i and objects o_i the ladder is
    ``(a_i, o_i), (a_i, o_{i+1 mod s})``: every action and every object is in two of its
    ``2s`` pairs; ``k`` of them are kept in random order.
    """
    s = max(2, math.ceil(k / 2))
    acts = rng.choice(len(ACTIONS), s, replace=False)
    objs = rng.choice(len(OBJECTS), s, replace=False)
    step = np.arange(2 * s)
    pairs = np.stack([acts[step // 2], objs[(step // 2 + step % 2) % s]], -1)
    return pairs[rng.permutation(2 * s)[:k]]


def _make_video(rng: np.random.Generator, family: str, vid: str) -> _Video:
    """Up to :data:`MAX_EVENTS` events with lengths from the dataset's relative-length table,
    in random order with random background gaps between them."""
    shape = SHAPES[family]
    duration = float(_sample(rng, shape.duration_q))
    if family == "tacos":  # whole frames at 29.4 fps
        duration = round(duration * 29.4) / 29.4
    else:
        duration = round(duration, 2)
    rows = int(np.clip(round(duration * shape.rows_per_second), *shape.rows_range))
    rels: list[float] = []
    remaining = 1.0
    while len(rels) < MAX_EVENTS:
        r = max(float(_sample(rng, shape.rel_length_q)), 1.0 / rows)
        if r > remaining:
            if rels:
                break
            r = remaining  # a moment spanning the whole video
        rels.append(r)
        remaining -= r
    lengths = np.array(rels)
    gaps = rng.dirichlet(np.ones(len(rels) + 1)) * remaining  # background before each event, after the last
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    spans = _quantise(np.stack([starts, starts + lengths], 1) * duration, family)
    spans = np.clip(spans, 0.0, duration)
    pairs = _ladder_pairs(rng, len(rels))
    return _Video(vid, duration, spans, pairs[:, 0], pairs[:, 1], spans[:, 1] > spans[:, 0], rows)


def _features(rng: np.random.Generator, video: _Video, acts: np.ndarray, objs: np.ndarray,
              noise: float) -> np.ndarray:
    """``[T_raw, D]`` float32: event rows are action + object prototype, background rows zero;
    plus noise everywhere. A row belongs to the event whose span holds the row's centre."""
    centres = (np.arange(video.rows) + 0.5) * video.duration / video.rows
    inside = (centres[None] >= video.spans[:, :1]) & (centres[None] < video.spans[:, 1:])  # [K, T]
    x = inside.T.astype(np.float32) @ (acts[video.actions] + objs[video.objects])  # [T, D]
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32)


def _sentence(rng: np.random.Generator, family: str, action: str, obj: str) -> str:
    """``[fillers] person <action> the <object> [at most two fillers].`` with the dataset's length."""
    length = max(4, int(round(float(_sample(rng, SHAPES[family].sentence_len_q)))))
    extra = length - 4
    n_post = int(rng.integers(0, min(extra, 2) + 1))
    n_pre = extra - n_post
    pre = list(rng.choice(PREFIX_WORDS + SUFFIX_WORDS, n_pre)) if n_pre else []
    post = list(rng.choice(SUFFIX_WORDS, n_post)) if n_post else []
    return " ".join([*pre, SUBJECT, action, "the", obj, *post]) + "."


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
    sizes = split_sizes(name, cfg.scale, cfg.test_scale, cfg.val_scale)
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
                fh.write(f"{video.vid} {video.spans[e, 0]:.1f} {video.spans[e, 1]:.1f}##{sentence}\n")
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
        start, end = video.spans[e]
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
