"""Readers for the annotation files of the public releases (2D-TAN's copies).

| family | files | times |
|---|---|---|
| tacos | ``train.json``, ``val.json``, ``test.json``: ``{vid: {"timestamps": [[s, e]], "sentences", "fps", "num_frames"}}`` | frame numbers |
| activitynet | ``train.json``, ``val.json``, ``test.json``: ``{vid: {"duration", "timestamps", "sentences"}}`` | seconds |
| charades | ``charades_sta_{train,test}.txt`` lines ``VID start end##sentence``; durations from ``Charades_v1_{train,test}.csv`` column ``length`` | seconds |

Quirks, handled as 2D-TAN's dataset code does and counted in a :class:`QuirkReport`: TACoS
frame numbers are divided by ``fps`` (duration = ``num_frames / fps``); a start below 0 is set
to 0 and an end past the duration is clipped to it; a pair with start >= end (after clipping)
is dropped. On the 2D-TAN files this yields 9790 / 4436 / 4001 (TACoS), 37417 / 17505 / 17031
(ActivityNet) and 12404 / 3720 (Charades-STA) pairs.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pln.config import NATIVE_SPLITS
from pln.errors import DataError

FAMILIES = tuple(NATIVE_SPLITS)  # tacos, activitynet, charades


@dataclass(frozen=True, slots=True)
class Sample:
    """One (video, sentence, moment) pair; times in seconds, already clipped to [0, duration].

    ``qid`` names the query (JSONL files give it; the 2D-TAN readers number the pairs of a
    native split 0, 1, ... in file order). ``windows`` lists every relevant window of a query
    with several (JSONL); ``(start, end)`` is then its first one. Empty: the one moment.
    """

    video_id: str
    duration: float
    start: float
    end: float
    sentence: str
    qid: int | str | None = None
    windows: tuple[tuple[float, float], ...] = ()

    @property
    def all_windows(self) -> tuple[tuple[float, float], ...]:
        """Every relevant window ``((start, end), ...)``: ``windows``, or the one moment."""
        return self.windows or ((self.start, self.end),)


@dataclass
class QuirkReport:
    """What a reader changed or dropped, with counts (for the run's data report)."""

    files: list[str] = field(default_factory=list)
    pairs_read: int = 0
    pairs_kept: int = 0
    frames_to_seconds: int = 0  # TACoS: pairs whose frame numbers were divided by fps
    start_clipped: int = 0  # start < 0 set to 0
    end_clipped: int = 0  # end > duration set to duration
    dropped_start_ge_end: int = 0
    dropped_no_duration: int = 0  # Charades-STA: video absent from Charades_v1_*.csv

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def annotation_files(family: str, annotation_dir: str | Path, split: str) -> list[Path]:
    """The files :func:`read_split` reads for a native split of a dataset family."""
    root = Path(annotation_dir)
    _check_split(family, split)
    if family == "charades":
        return [root / f"charades_sta_{split}.txt", root / f"Charades_v1_{split}.csv"]
    return [root / f"{split}.json"]


def missing_annotation_message(path: Path, family: str) -> str:
    """The message for a missing annotation file of ``family``."""
    if family == "jsonl":
        return (f"annotation file {path} not found; data.annotation_dir must hold train.jsonl and test.jsonl "
                "(val.jsonl optional) in the moment-DETR layout")
    return (f"annotation file {path} not found; data.annotation_dir must hold 2D-TAN's {family} annotation "
            "files (https://github.com/microsoft/2D-TAN, folder data/)")


def read_split(family: str, annotation_dir: str | Path, split: str) -> tuple[list[Sample], QuirkReport]:
    """Read one native split (Charades-STA has train and test only) into clipped samples."""
    files = annotation_files(family, annotation_dir, split)
    for path in files:
        if not path.is_file():
            raise DataError(missing_annotation_message(path, family))
    report = QuirkReport(files=[str(p) for p in files])
    if family == "charades":
        rows = _charades_rows(files[0], _charades_durations(files[1]), report)
    else:
        rows = _json_rows(family, files[0], report)
    samples = [_clip(row, report) for row in rows]
    samples = [replace(s, qid=i) for i, s in enumerate(samples) if s is not None]
    report.pairs_kept = len(samples)
    if not samples:
        raise DataError(f"{files[0]}: no usable (video, sentence, moment) pair in the file")
    return samples, report


def _check_split(family: str, split: str) -> None:
    if family not in FAMILIES:
        raise DataError(f"unknown dataset family {family!r}; expected one of {', '.join(FAMILIES)}")
    if split not in NATIVE_SPLITS[family]:
        raise DataError(f"{family} has no annotation split {split!r}; its splits are "
                        f"{', '.join(NATIVE_SPLITS[family])}")


def clip_window(start: float, end: float, duration: float, report: Any) -> tuple[float, float] | None:
    """``[start, end]`` clipped to ``[0, duration]``, counting each clip in ``report.start_clipped``
    / ``report.end_clipped``; None when nothing is left (``start >= end``; the caller counts it)."""
    if start < 0:
        start = 0.0
        report.start_clipped += 1
    if end > duration:
        end = duration
        report.end_clipped += 1
    return (start, end) if start < end else None


def _clip(row: tuple[str, float, float, float, str], report: QuirkReport) -> Sample | None:
    vid, duration, start, end, sentence = row
    window = clip_window(start, end, duration, report)
    if window is None:
        report.dropped_start_ge_end += 1
        return None
    return Sample(vid, duration, window[0], window[1], sentence)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _json_rows(family: str, path: Path, report: QuirkReport) -> list[tuple[str, float, float, float, str]]:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); re-download the annotation file") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping video id -> annotation, got {type(data).__name__}")
    needed = ("timestamps", "sentences", "fps", "num_frames") if family == "tacos" else \
        ("timestamps", "sentences", "duration")
    rows = []
    for vid, anno in data.items():
        where = f"{path}: video {vid!r}"
        if not isinstance(anno, dict) or any(k not in anno for k in needed):
            raise DataError(f"{where}: expected the {family} keys {', '.join(needed)}; is this the right "
                            "dataset's annotation file?")
        stamps, sentences = anno["timestamps"], anno["sentences"]
        if not isinstance(stamps, list) or not isinstance(sentences, list) or len(stamps) != len(sentences):
            raise DataError(f"{where}: 'timestamps' and 'sentences' must be lists of the same length")
        if family == "tacos":
            fps = _number(anno["fps"], f"{where} fps")
            if fps <= 0:
                raise DataError(f"{where}: fps must be > 0, got {fps}")
            duration = _number(anno["num_frames"], f"{where} num_frames") / fps
        else:
            fps = 1.0
            duration = _number(anno["duration"], f"{where} duration")
        for k, (stamp, sentence) in enumerate(zip(stamps, sentences)):
            if not isinstance(stamp, (list, tuple)) or len(stamp) != 2:
                raise DataError(f"{where}: timestamp {k} must be [start, end], got {stamp!r}")
            if not isinstance(sentence, str):
                raise DataError(f"{where}: sentence {k} must be a string, got {sentence!r}")
            start = _number(stamp[0], f"{where} timestamp {k}") / fps
            end = _number(stamp[1], f"{where} timestamp {k}") / fps
            rows.append((str(vid), duration, start, end, sentence.strip()))
    report.pairs_read = len(rows)
    if family == "tacos":
        report.frames_to_seconds = len(rows)
    return rows


def _charades_durations(path: Path) -> dict[str, float]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or "id" not in reader.fieldnames or "length" not in reader.fieldnames:
            raise DataError(f"{path}: expected a Charades CSV with the columns 'id' and 'length'")
        out = {}
        for lineno, row in enumerate(reader, 2):
            try:
                out[row["id"]] = float(row["length"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{lineno}: 'length' is not a number: {row['length']!r}") from None
    return out


def _charades_rows(path: Path, durations: dict[str, float],
                   report: QuirkReport) -> list[tuple[str, float, float, float, str]]:
    rows = []
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            head, sep, sentence = line.partition("##")
            fields = head.split()
            if not sep or len(fields) != 3:
                raise DataError(f"{path}:{lineno}: expected 'VIDEO_ID START END##sentence', got {line.strip()[:80]!r}")
            vid = fields[0]
            try:
                start, end = float(fields[1]), float(fields[2])
            except ValueError:
                raise DataError(f"{path}:{lineno}: start and end must be numbers, got {head!r}") from None
            report.pairs_read += 1
            if vid not in durations:
                report.dropped_no_duration += 1
                continue
            # 2D-TAN drops the trailing full stop of every Charades-STA sentence
            sentence = sentence.strip()
            sentence = sentence[:-1] if sentence.endswith(".") else sentence
            rows.append((vid, durations[vid], start, end, sentence))
    return rows
