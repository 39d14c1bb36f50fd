"""build_dataset / collate on synthetic data, on a tiny hand-written real-format dataset with
every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pln.config import DATASETS, NATIVE_SPLITS, config_from_dict, dataset_family, is_synthetic_dataset
from pln.data.dataset import build_dataset, collate
from pln.errors import ConfigError
from pln.geometry import iou_map

MODEL = {"feature_dim": 8, "word_dim": 50, "num_units": 16, "clips": [4, 16]}


def _synthetic(tmp_path: Path, name: str = "synthetic-charades", **model: object):
    return config_from_dict({
        "data": {"dataset": name, "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache"),
                 "synthetic": {"scale": 0.3, "feature_dim": 8}},
        "model": {**MODEL, **model}})


def test_synthetic_batch(tmp_path: Path) -> None:
    cfg = _synthetic(tmp_path)
    ds = build_dataset(cfg, "test")
    batch = collate([ds[i] for i in range(3)])
    assert "units" not in ds[0] and "units" not in batch  # by default the units stay in ds.units
    assert batch["video"].dtype == torch.int64
    assert batch["video"].tolist() == [ds.video_index[ds.samples[i].video_id] for i in range(3)]
    assert batch["words"].shape[0] == 3 and batch["words"].shape[2] == 50
    assert batch["lengths"].dtype == torch.int64 and (batch["lengths"] >= 1).all()
    assert int(batch["lengths"].max()) == batch["words"].shape[1]
    short = int(batch["lengths"].argmin())
    assert (batch["words"][short, batch["lengths"][short]:] == 0).all()
    assert [tuple(m.shape) for m in batch["ious"]] == [(3, 4, 4), (3, 16, 16)]
    assert batch["index"].tolist() == [0, 1, 2]
    assert (batch["gt"][:, 0] < batch["gt"][:, 1]).all() and (batch["gt"][:, 1] <= batch["duration"] + 1e-4).all()
    s = ds.samples[1]
    np.testing.assert_allclose(batch["ious"][1][1].numpy(), iou_map(s.start, s.end, s.duration, 16))
    np.testing.assert_allclose(ds.video_units(s.video_id), ds.units[int(batch["video"][1])])
    assert ds.units_in_items is False and ds.ious_in_items is True
    with pytest.raises(AttributeError):  # fixed at construction: loader workers copy the dataset
        ds.units_in_items = True
    streamed_ds = build_dataset(cfg, "test", units_in_items=True)
    streamed = collate([streamed_ds[i] for i in range(3)])
    assert streamed["units"].shape == (3, 16, 8) and streamed["units"].dtype == torch.float32
    assert [tuple(m.shape) for m in streamed["ious"]] == [(3, 4, 4), (3, 16, 16)]
    unlabelled_ds = build_dataset(cfg, "test", ious_in_items=False)  # evaluation: no labels
    unlabelled = collate([unlabelled_ds[i] for i in range(3)])
    assert unlabelled["ious"] == [] and torch.equal(unlabelled["words"], batch["words"])
    np.testing.assert_array_equal(streamed["units"][1].numpy(), ds.units[int(batch["video"][1])])
    assert torch.equal(streamed["video"], batch["video"])
    assert ds.report["unknown_word_rate"] == 0.0 and ds.report["pairs"] == len(ds)


def test_charades_val_is_carved_from_train_videos(tmp_path: Path) -> None:
    cfg = _synthetic(tmp_path)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    tv, vv = {s.video_id for s in train.samples}, {s.video_id for s in val.samples}
    assert not tv & vv
    assert len(vv) == round(0.1 * len(tv | vv))
    assert len(train) + len(val) == train.report["quirks"]["pairs_kept"]
    again = build_dataset(cfg, "val")
    assert [s.video_id for s in again.samples] == [s.video_id for s in val.samples]


def test_dimension_mismatches(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model.word_dim"):
        build_dataset(_synthetic(tmp_path, word_dim=300), "test")
    with pytest.raises(ConfigError, match="model.feature_dim"):
        build_dataset(_synthetic(tmp_path, feature_dim=9), "test")


def test_skips_are_counted(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    anno = {
        "v_ok": {"duration": 10.0, "timestamps": [[1, 4], [5, 9]], "sentences": ["A person opens the door.", ""]},
        "v_gone": {"duration": 10.0, "timestamps": [[1, 4]], "sentences": ["a person sits"]},
        "v_nan": {"duration": 10.0, "timestamps": [[1, 4], [2, 3]], "sentences": ["xqzvw plghx", "a cat"]},
        "v_dead": {"duration": 10.0, "timestamps": [[1, 4]], "sentences": ["a dog"]},
    }
    (ann / "test.json").write_text(json.dumps(anno))
    feats = tmp_path / "feats.hdf5"
    with h5py.File(feats, "w") as f:
        for vid in ("v_ok", "v_nan", "v_dead"):
            x = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
            if vid == "v_nan":
                x[3] = np.nan
            if vid == "v_dead":
                x[:] = np.inf
            f.create_group(vid).create_dataset("c3d_features", data=x)
    cfg = config_from_dict({"data": {"dataset": "activitynet", "annotation_dir": str(ann),
                                     "feature_file": str(feats), "cache_dir": str(tmp_path / "cache"),
                                     "max_bad_row_fraction": 0.5},
                            "model": MODEL})
    ds = build_dataset(cfg, "test")
    assert [(s.video_id, s.sentence) for s in ds.samples] == [("v_ok", "A person opens the door."),
                                                             ("v_nan", "a cat")]
    counts = {k: v["count"] for k, v in ds.report["skips"].items()}
    assert counts == {"video absent from the feature file feats.hdf5": 1, "empty sentence": 1,
                      "every word unknown to the word vectors": 1,
                      "every feature row of the video is damaged (NaN/Inf or absurd)": 1}
    assert ds.report["bad_rows_zeroed"] == {"videos": 2, "rows": 21, "of_rows": 60, "fraction": 21 / 60}
    assert ds.report["pairs_read"] == 6 and ds.report["unknown_tokens"] == 2
    # the second build reads the same cache entries
    assert build_dataset(cfg, "test").report["cache"] == ds.report["cache"]
    assert np.isfinite(ds.units[collate([ds[0], ds[1]])["video"].numpy()]).all()


def test_the_synthetic_datasets_are_the_three_generated_stand_ins():
    synthetic = [name for name in DATASETS if is_synthetic_dataset(name)]
    assert synthetic == ["synthetic-tacos", "synthetic-activitynet", "synthetic-charades"]
    assert [dataset_family(name) for name in synthetic] == list(NATIVE_SPLITS)
    for name in DATASETS:
        assert (dataset_family(name) != name) == is_synthetic_dataset(name)
