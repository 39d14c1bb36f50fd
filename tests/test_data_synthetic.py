"""The synthetic benchmark: determinism, shape statistics, and a signal that needs the sentence."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pln.config import DataConfig, SyntheticConfig
from pln.errors import ConfigError
from pln.data.annotations import read_split
from pln.data.features import FeatureStore
from pln.data.synthetic import (ACTIONS, FEATURE_FILES, GENERATOR_VERSION, MAX_EVENTS, OBJECTS, SHAPES,
                                 _features, _ladder_pairs, _Video, folder_name, generate, prototypes,
                                 split_sizes)

NAMES = ("synthetic-tacos", "synthetic-activitynet", "synthetic-charades")


def test_deterministic_by_seed(tmp_path: Path) -> None:
    cfg = SyntheticConfig(scale=0.3, seed=3, feature_dim=8)
    generate("synthetic-activitynet", tmp_path / "a", cfg)
    generate("synthetic-activitynet", tmp_path / "b", cfg)
    generate("synthetic-activitynet", tmp_path / "c", SyntheticConfig(scale=0.3, seed=4, feature_dim=8))
    for split in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{split}.json").read_text() == (tmp_path / "b" / f"{split}.json").read_text()
    assert (tmp_path / "a" / "test.json").read_text() != (tmp_path / "c" / "test.json").read_text()
    name = FEATURE_FILES["activitynet"]
    with h5py.File(tmp_path / "a" / name) as fa, h5py.File(tmp_path / "b" / name) as fb:
        assert sorted(fa) == sorted(fb)
        for vid in fa:
            np.testing.assert_array_equal(fa[vid]["c3d_features"][()], fb[vid]["c3d_features"][()])


@pytest.mark.parametrize("name", NAMES)
def test_statistics_match_targets(name: str, tmp_path: Path) -> None:
    family = name.removeprefix("synthetic-")
    generate(name, tmp_path, SyntheticConfig(scale=2.0, feature_dim=4))
    shape = SHAPES[family]
    rel, dur, words = [], [], []
    for split, (n_videos, n_queries) in split_sizes(name, 2.0).items():
        samples, _ = read_split(family, tmp_path, split)
        assert len(samples) == n_queries and len({s.video_id for s in samples}) <= n_videos
        rel += [(s.end - s.start) / s.duration for s in samples]
        dur += list({s.video_id: s.duration for s in samples}.values())
        words += [len(s.sentence.split()) for s in samples]
    # medians within 35% of the measured ones (index 4 of the quantile tables is the median)
    assert np.median(rel) == pytest.approx(shape.rel_length_q[4], rel=0.35)
    assert np.median(dur) == pytest.approx(shape.duration_q[4], rel=0.35)
    assert abs(np.median(words) - max(shape.sentence_len_q[4], 4)) <= 1.5
    assert np.quantile(rel, 0.9) == pytest.approx(shape.rel_length_q[6], rel=0.5)


def test_sizes_at_scale_one() -> None:
    assert split_sizes("synthetic-tacos", 1.0) == {"train": (31, 490), "val": (14, 222), "test": (12, 200)}
    assert split_sizes("synthetic-charades", 1.0) == {"train": (160, 372), "test": (40, 112)}


def _one_split_grown(tmp_path: Path, family: str, base: SyntheticConfig, big: SyntheticConfig,
                     grown: str) -> tuple[list, list]:
    """Generate ``base`` and ``big`` (which differ in the scale of split ``grown``); assert that
    every other split's annotation file and every one of its videos' features are the same, and
    return the samples of ``grown`` under each."""
    generate(f"synthetic-{family}", tmp_path / "a", base)
    generate(f"synthetic-{family}", tmp_path / "b", big)
    others = [split for split in ("train", "val", "test") if split != grown]
    a, b = (FeatureStore(tmp_path / side / FEATURE_FILES[family], family) for side in ("a", "b"))
    for split in others:
        assert (tmp_path / "a" / f"{split}.json").read_text() == (tmp_path / "b" / f"{split}.json").read_text()
        for vid in {s.video_id for s in read_split(family, tmp_path / "a", split)[0]}:
            assert np.array_equal(a.get(vid), b.get(vid))
    return read_split(family, tmp_path / "a", grown)[0], read_split(family, tmp_path / "b", grown)[0]


def test_test_scale_changes_only_the_test_split(tmp_path: Path) -> None:
    assert split_sizes("synthetic-tacos", 1.0, test_scale=5.0) == {"train": (31, 490), "val": (14, 222),
                                                                   "test": (62, 1000)}
    base = SyntheticConfig(scale=0.3, feature_dim=4)
    big = SyntheticConfig(scale=0.3, feature_dim=4, test_scale=3.0)
    assert folder_name(base) != folder_name(big) and "_test3" in folder_name(big)
    small, large = _one_split_grown(tmp_path, "activitynet", base, big, "test")
    assert len(large) == split_sizes("synthetic-activitynet", 0.3, 3.0)["test"][1] > 5 * len(small)
    # the same generator: the first test videos are the same videos (same durations)
    first = {s.video_id: s.duration for s in small}
    assert all(first[v] == d for v, d in {s.video_id: s.duration for s in large}.items() if v in first)


def test_val_scale_changes_only_the_val_split(tmp_path: Path) -> None:
    # TACoS's real val split holds 4,436 queries, 16 a video at most: at val scale 5 the
    # synthetic one holds round(4436 * 5 * 0.05) = 1,109 queries in round(1109 / 16) = 69 videos;
    # train and test as at scale 1.
    assert split_sizes("synthetic-tacos", 1.0, val_scale=5.0) == {"train": (31, 490), "val": (69, 1109),
                                                                  "test": (12, 200)}
    assert split_sizes("synthetic-tacos", 1.0, test_scale=2.0, val_scale=5.0)["test"] == (25, 400)
    base = SyntheticConfig(scale=0.3, feature_dim=4, test_scale=0.6)
    big = SyntheticConfig(scale=0.3, feature_dim=4, test_scale=0.6, val_scale=3.0)
    assert folder_name(big) == folder_name(base).replace("_test0.6_", "_test0.6_val3_")
    small, large = _one_split_grown(tmp_path, "tacos", base, big, "val")
    assert len(large) == split_sizes("synthetic-tacos", 0.3, val_scale=3.0)["val"][1] > 5 * len(small)


def test_val_scale_is_refused_where_there_is_no_val_split() -> None:
    cfg = DataConfig(dataset="synthetic-charades", synthetic=SyntheticConfig(val_scale=2.0))
    with pytest.raises(ConfigError, match="val_scale.*charades_val_fraction"):
        cfg.validate()
    DataConfig(dataset="synthetic-tacos", synthetic=SyntheticConfig(val_scale=2.0)).validate()
    with pytest.raises(ConfigError, match="data.synthetic.val_scale must be > 0"):
        DataConfig(dataset="synthetic-tacos", synthetic=SyntheticConfig(val_scale=0.0)).validate()


def _oracle_recall(tmp_path: Path, cfg: SyntheticConfig, use: str) -> float:
    """R1@0.5 of a nearest-prototype reader of the sentence's action and/or object word."""
    acts, objs = prototypes(cfg)
    store = FeatureStore(tmp_path / FEATURE_FILES["tacos"], "tacos", cfg.feature_dim)
    samples, _ = read_split("tacos", tmp_path, "test")
    hits = []
    for s in samples:
        words = s.sentence.rstrip(".").split()
        a = next(ACTIONS.index(w) for w in words if w in ACTIONS)
        o = next(OBJECTS.index(w) for w in words if w in OBJECTS)
        proto = {"both": acts[a] + objs[o], "action": acts[a], "object": objs[o]}[use]
        x = store.get(s.video_id)
        score = x @ proto
        best = int(np.argmax(score))
        on = score > 0.75 * score[best]
        lo, hi = best, best
        while lo > 0 and on[lo - 1]:
            lo -= 1
        while hi < len(on) - 1 and on[hi + 1]:
            hi += 1
        step = s.duration / len(x)
        start, end = lo * step, (hi + 1) * step
        inter = max(0.0, min(end, s.end) - max(start, s.start))
        hits.append(inter / (max(end, s.end) - min(start, s.start)) > 0.5)
    return float(np.mean(hits))


def test_signal_needs_both_words(tmp_path: Path) -> None:
    cfg = SyntheticConfig(scale=1.0, feature_dim=32)
    generate("synthetic-tacos", tmp_path, cfg)
    both = _oracle_recall(tmp_path, cfg, "both")
    action = _oracle_recall(tmp_path, cfg, "action")
    obj = _oracle_recall(tmp_path, cfg, "object")
    assert both > 0.8
    assert action < both - 0.3 and obj < both - 0.3


def test_prior_only_baseline_scores_low(tmp_path: Path) -> None:
    generate("synthetic-charades", tmp_path, SyntheticConfig(scale=2.0, feature_dim=4))
    train, _ = read_split("charades", tmp_path, "train")
    test, _ = read_split("charades", tmp_path, "test")
    rel = lambda ss: np.array([[s.start / s.duration, s.end / s.duration] for s in ss])  # noqa: E731

    def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
        return inter / (np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0]))

    # the training set's most common relative moment, on a 16-cell grid (an optimistic prior)
    cells = np.round(rel(train) * 16).astype(int)
    pairs, counts = np.unique(cells, axis=0, return_counts=True)
    prior = pairs[np.argmax(counts)] / 16
    recall = np.mean(iou(np.tile(prior, (len(test), 1)), rel(test)) > 0.5)
    assert recall < 0.3


def test_real_annotations_mode(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    for split in ("train", "val", "test"):
        (ann / f"{split}.json").write_text(json.dumps(
            {f"v_{split}": {"duration": 20.0, "timestamps": [[2.0, 6.0], [10.0, 18.0]],
                            "sentences": ["a man opens a door.", "a dog runs."]}}))
    cfg = SyntheticConfig(feature_dim=16, mode="real-annotations", noise=0.1)
    generate("synthetic-activitynet", tmp_path / "out", cfg, annotation_dir=ann)
    store = FeatureStore(tmp_path / "out" / FEATURE_FILES["activitynet"], "activitynet", 16)
    x = store.get("v_train")  # 32 rows over 20 s
    centres = (np.arange(len(x)) + 0.5) * 20.0 / len(x)
    inside = (centres >= 2.0) & (centres < 6.0)
    other = (centres >= 10.0) & (centres < 18.0)
    background = ~(inside | other)
    norms = np.linalg.norm(x, axis=1)
    assert norms[inside].min() > 2 * norms[background].max()
    assert abs(np.corrcoef(x[inside].mean(0), x[other].mean(0))[0, 1]) < 0.9


@pytest.mark.parametrize("k", [4, 6])
def test_ladder_pairs_give_every_event_both_distractors(k: int) -> None:
    pairs = _ladder_pairs(np.random.default_rng(0), k)
    assert len({tuple(p) for p in pairs}) == k  # distinct events
    for a, o in pairs:  # another event with the same action, another with the same object
        assert (pairs[:, 0] == a).sum() == 2 and (pairs[:, 1] == o).sum() == 2


def test_events_on_background(tmp_path: Path) -> None:
    video = _Video("v", 10.0, np.array([[2.0, 4.0], [6.0, 7.0]]), np.array([0, 1]), np.array([2, 3]),
                   np.array([True, True]), rows=10)
    acts, objs = np.eye(6, 16, dtype=np.float32), np.eye(6, 16, k=6, dtype=np.float32)
    x = _features(np.random.default_rng(0), video, acts, objs, noise=0.0)  # row t centred at t + 0.5 s
    np.testing.assert_array_equal(x[2], acts[0] + objs[2])
    np.testing.assert_array_equal(x[3], acts[0] + objs[2])
    np.testing.assert_array_equal(x[6], acts[1] + objs[3])
    assert not x[[0, 1, 4, 5, 7, 8, 9]].any()
    generate("synthetic-tacos", tmp_path, SyntheticConfig(scale=0.5, feature_dim=8))
    samples, _ = read_split("tacos", tmp_path, "train")
    per_video: dict[str, set] = {}
    for s in samples:
        per_video.setdefault(s.video_id, set()).add((round(s.start, 3), round(s.end, 3)))
    assert max(len(v) for v in per_video.values()) <= MAX_EVENTS


def test_folder_name_carries_generator_version() -> None:
    assert folder_name(SyntheticConfig(scale=2.0)) == f"v{GENERATOR_VERSION}_scale2_seed0_d64_noise0.5"
