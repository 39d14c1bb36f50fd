"""JSONL datasets: the reader's checks and counts, per-video feature folders, several relevant
windows, `pln convert` (2D-TAN files <-> JSONL), and a tiny run whose exported predictions
`pln score` scores exactly as the run did."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pln.cli import main
from pln.config import NATIVE_SPLITS, config_from_dict
from pln.data.annotations import read_split
from pln.data.convert import pair_key, to_2dtan, to_jsonl
from pln.data.dataset import build_dataset, window_iou_map
from pln.data.jsonl import read_jsonl
from pln.data.stats import table1
from pln.data.video_features import FolderFeatureStore
from pln.errors import ConfigError, DataError
from pln.geometry import iou_map

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "annotations"


def write(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def row(qid, windows, duration=20.0, vid="v1", query="a person opens the door"):
    return {"qid": qid, "query": query, "vid": vid, "duration": duration, "relevant_windows": windows}


def test_reader_clips_drops_and_counts(tmp_path):
    path = write(tmp_path / "train.jsonl", [
        row(1, [[-1, 5]]), row(2, [[3, 25], [8, 8]]), row(3, [[9, 9]]), row("q4", [[1, 2]], duration=0),
        row(5, [[1, 2], [4, 6]]), "",
    ])
    samples, report = read_jsonl(path)
    assert [s.qid for s in samples] == [1, 2, 5]
    assert (samples[0].start, samples[1].end) == (0.0, 20.0)
    assert samples[2].all_windows == ((1.0, 2.0), (4.0, 6.0)) and samples[0].all_windows == ((0.0, 5.0),)
    r = report.to_dict()
    assert (r["pairs_read"], r["pairs_kept"], r["start_clipped"], r["end_clipped"]) == (5, 3, 1, 1)
    assert (r["windows_dropped_start_ge_end"], r["dropped_no_window"], r["dropped_bad_duration"]) == (2, 1, 1)
    assert r["multi_window_queries"] == 1


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"qid": 1, "query": "a", "vid": "v"}), "missing key"),
    (json.dumps(row(1, [[1, "x"]])), "expected a finite number"),
    (json.dumps(row(True, [[1, 2]])), "'qid' must be"),
    (json.dumps(row(1, [1, 2])), r"relevant_windows\[0\] must be"),
])
def test_reader_errors_name_file_and_line(tmp_path, bad, message):
    path = write(tmp_path / "train.jsonl", [row(7, [[1, 2]]), bad])
    with pytest.raises(DataError, match=message) as err:
        read_jsonl(path)
    assert f"{path}:2" in str(err.value)


def test_repeated_qid_is_an_error(tmp_path):
    with pytest.raises(DataError, match="qid 7 repeats line 1"):
        read_jsonl(write(tmp_path / "t.jsonl", [row(7, [[1, 2]]), row(7, [[1, 3]])]))


def test_several_windows_train_on_the_best_iou_per_cell():
    from pln.data.annotations import Sample

    s = Sample("v", 16.0, 0.0, 4.0, "x", qid=1, windows=((0.0, 4.0), (8.0, 16.0)))
    got = window_iou_map(s, 4)
    want = np.maximum(iou_map(0.0, 4.0, 16.0, 4), iou_map(8.0, 16.0, 16.0, 4))
    assert np.array_equal(got, want) and got[0, 0] == 1.0 and got[2, 3] == 1.0


def test_folder_store_reads_npz_and_npy(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "v1.npz", features=a)
    np.save(tmp_path / "v2.npy", a * 2)
    store = FolderFeatureStore(tmp_path, 3)
    assert store.has("v1") and store.has("v2") and not store.has("v3")
    assert np.array_equal(store.get("v2"), a * 2)
    with pytest.raises(ConfigError, match="model.feature_dim=5"):
        FolderFeatureStore(tmp_path, 5)
    np.savez(tmp_path / "v3.npz", other=a)
    with pytest.raises(DataError, match="no 'features' array"):
        store.get("v3") if store.has("v3") else FolderFeatureStore(tmp_path).get("v3")


def jsonl_config(example: Path, **train):
    return config_from_dict({
        "name": "jsonl-test",
        "data": {"dataset": "jsonl", "annotation_dir": str(example / "annotations"),
                 "feature_dir": str(example / "features"), "cache_dir": str(example / "cache")},
        "model": {"feature_dim": 16, "word_dim": 50, "num_units": 16, "clips": [4, 8], "hidden": 8,
                  "conv_channels": 4, "lstm_layers": 1},
        "train": {"max_epochs": 1, "batch_size": 16, "max_train_batches": 2, "device": "cpu", "threads": 1,
                  "log_every": 1, **train},
    })


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    from pln.data.jsonl_example import write_example

    out = tmp_path_factory.mktemp("jsonl-example")
    write_example(out, scale=0.05, feature_dim=16)
    return out


def test_dataset_stats_and_val_carved_from_train(example):
    cfg = jsonl_config(example)
    train, val = build_dataset(cfg, "train"), build_dataset(cfg, "val")
    assert not {s.video_id for s in train.samples} & {s.video_id for s in val.samples}
    assert train.report["quirks"]["multi_window_queries"] > 0
    assert val.report["quirks"]["charades_val_from_train"]["val_videos"] >= 1
    t1 = table1(cfg)
    assert t1["split"].tolist() == ["train", "test"]
    with pytest.raises(ConfigError, match="feature_dir and data.feature_file are both set"):
        config_from_dict({"data": {"dataset": "jsonl", "annotation_dir": "a", "feature_dir": "b",
                                   "feature_file": "c"}})


def test_a_video_absent_from_the_folder_is_a_counted_skip(example, tmp_path):
    import shutil

    features = tmp_path / "features"
    shutil.copytree(example / "features", features)
    gone = sorted(features.iterdir())[0]
    gone.unlink()
    cfg = jsonl_config(example)
    cfg.data.feature_dir, cfg.data.cache_dir = str(features), str(tmp_path / "cache")
    reports = [build_dataset(cfg, split).report for split in ("train", "test")]
    skipped = [r["skips"] for r in reports if r["skips"]]
    assert skipped and "video absent from the feature folder features" in skipped[0]


def test_run_exports_predictions_that_score_as_the_run(example, tmp_path):
    run = tmp_path / "run"
    cfg_path = tmp_path / "cfg.yaml"
    import yaml

    cfg_path.write_text(yaml.safe_dump(jsonl_config(example).to_dict()))
    assert main(["train", str(cfg_path), "--out", str(run)]) == 0
    result = json.loads((run / "test_metrics.json").read_text())
    metrics = result["metrics"][result["default"]]
    out = tmp_path / "scored"
    assert main(["score", str(run / "predictions.jsonl"), "--annotations",
                 str(example / "annotations" / "test.jsonl"), "--out", str(out)]) == 0
    scored = json.loads((out / "score.json").read_text())["metrics"]
    assert scored.keys() == metrics.keys()
    for key, value in metrics.items():
        assert scored[key] == pytest.approx(value, abs=1e-9), key
    assert main(["score", str(run / "predictions.jsonl"), "--protocol", "moment-detr", "--annotations",
                 str(example / "annotations" / "test.jsonl")]) == 0


def roundtrip(family: str, source: Path, tmp_path: Path) -> None:
    to_jsonl(family, source, tmp_path / "jsonl")
    to_2dtan(family, tmp_path / "jsonl", tmp_path / "back")
    for split in NATIVE_SPLITS[family]:
        original, _ = read_split(family, source, split)
        as_jsonl, _ = read_jsonl(tmp_path / "jsonl" / f"{split}.jsonl")
        back, _ = read_split(family, tmp_path / "back", split)
        assert len(original) == len(as_jsonl) == len(back)
        assert [pair_key(s) for s in original] == [pair_key(s) for s in as_jsonl] == [pair_key(s) for s in back]
        assert [s.qid for s in as_jsonl] == [s.qid for s in original]


@pytest.mark.parametrize("family", ["tacos", "activitynet", "charades"])
def test_convert_synthetic_files_roundtrip(family, tmp_path):
    from pln.config import SyntheticConfig
    from pln.data.synthetic import generate

    generate(f"synthetic-{family}", tmp_path / "src", SyntheticConfig(scale=0.05, feature_dim=4))
    roundtrip(family, tmp_path / "src", tmp_path)


@pytest.mark.parametrize("family", ["tacos", "activitynet", "charades"])
def test_convert_real_files_roundtrip(family, tmp_path):
    if not (REAL / family).is_dir():
        pytest.skip(f"the real annotation files are not here ({REAL / family} is absent)")
    roundtrip(family, REAL / family, tmp_path)


def test_convert_cli(tmp_path):
    from pln.config import SyntheticConfig
    from pln.data.synthetic import generate

    generate("synthetic-charades", tmp_path / "src", SyntheticConfig(scale=0.05, feature_dim=4))
    assert main(["convert", str(tmp_path / "src"), str(tmp_path / "j"), "--family", "charades"]) == 0
    assert sorted(p.name for p in (tmp_path / "j").iterdir()) == ["test.jsonl", "train.jsonl"]
    assert main(["convert", str(tmp_path / "j"), str(tmp_path / "b"), "--family", "tacos", "--to", "2dtan"]) == 2
