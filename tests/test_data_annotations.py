"""Annotation readers: the real 2D-TAN files (counts and quirks) and hand-written bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pln.data.annotations import read_split
from pln.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ANN = SHARED / "data" / "annotations"
needs_shared = pytest.mark.skipif(not ANN.is_dir(), reason=f"real annotation files not found at {ANN}")


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("family,split,count", [
    ("tacos", "train", 9790), ("tacos", "val", 4436), ("tacos", "test", 4001),
    ("activitynet", "train", 37417), ("activitynet", "val", 17505), ("activitynet", "test", 17031),
    ("charades", "train", 12404), ("charades", "test", 3720),
])
def test_real_pair_counts(family: str, split: str, count: int) -> None:
    samples, report = read_split(family, ANN / family, split)
    assert len(samples) == count == report.pairs_kept
    assert all(0.0 <= s.start < s.end <= s.duration for s in samples)


@needs_shared
@pytest.mark.shared
def test_real_quirks() -> None:
    _, anet = read_split("activitynet", ANN / "activitynet", "train")
    assert (anet.pairs_read, anet.dropped_start_ge_end, anet.end_clipped) == (37421, 4, 261)
    tacos, rep = read_split("tacos", ANN / "tacos", "train")
    assert rep.frames_to_seconds == 9790 and rep.end_clipped == 43
    first = next(s for s in tacos if s.video_id == "s17-d69.avi")
    assert first.start == pytest.approx(224 / 29.4) and first.end == pytest.approx(358 / 29.4)
    charades, rep = read_split("charades", ANN / "charades", "train")
    assert (rep.pairs_read, rep.dropped_start_ge_end, rep.end_clipped) == (12408, 4, 1805)
    ao8rw = next(s for s in charades if s.video_id == "AO8RW")
    assert (ao8rw.start, ao8rw.end, ao8rw.sentence) == (0.0, 6.9, "a person is putting a book on a shelf")


def test_tacos_frames_clipping_and_dropping(tmp_path: Path) -> None:
    anno = {"v1.avi": {"fps": 10.0, "num_frames": 100,
                       "timestamps": [[10, 50], [-5, 20], [90, 120], [60, 60]],
                       "sentences": ["a", "b", "c", "d"]}}
    (tmp_path / "train.json").write_text(json.dumps(anno))
    samples, rep = read_split("tacos", tmp_path, "train")
    assert [(s.start, s.end) for s in samples] == [(1.0, 5.0), (0.0, 2.0), (9.0, 10.0)]
    assert samples[0].duration == 10.0
    assert (rep.start_clipped, rep.end_clipped, rep.dropped_start_ge_end, rep.pairs_kept) == (1, 1, 1, 3)


def test_wrong_schema_names_file_and_video(tmp_path: Path) -> None:
    (tmp_path / "train.json").write_text(json.dumps({"v_x": {"timestamps": [[0, 1]], "sentences": ["s"]}}))
    with pytest.raises(DataError, match=r"train.json: video 'v_x'.*duration"):
        read_split("activitynet", tmp_path, "train")
    (tmp_path / "val.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="expected a mapping"):
        read_split("activitynet", tmp_path, "val")
    (tmp_path / "test.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_split("activitynet", tmp_path, "test")


def test_missing_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"test.json not found"):
        read_split("tacos", tmp_path, "test")


def test_charades_durations_and_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "Charades_v1_train.csv").write_text("id,length\nAAAAA,10.00\nBBBBB,5.5\n")
    (tmp_path / "charades_sta_train.txt").write_text(
        "AAAAA 1.0 12.0##a person opens a door.\nBBBBB 6.0 8.0##person sits.\nCCCCC 0 1##gone.\n")
    samples, rep = read_split("charades", tmp_path, "train")
    assert [(s.video_id, s.start, s.end, s.sentence) for s in samples] == [("AAAAA", 1.0, 10.0, "a person opens a door")]
    assert (rep.end_clipped, rep.dropped_start_ge_end, rep.dropped_no_duration) == (2, 1, 1)
    (tmp_path / "charades_sta_train.txt").write_text("AAAAA 1.0##no end\n")
    with pytest.raises(DataError, match=r"charades_sta_train.txt:1"):
        read_split("charades", tmp_path, "train")
    with pytest.raises(DataError, match="no annotation split 'val'"):
        read_split("charades", tmp_path, "val")
