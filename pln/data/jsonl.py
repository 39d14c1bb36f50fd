"""Annotations in the moment-DETR / QVHighlights JSONL format (``data.dataset: jsonl``).

One JSON object per line::

    {"qid": 7, "query": "a man opens the door", "vid": "v_01", "duration": 34.5,
     "relevant_windows": [[3.0, 9.5], [20.0, 24.0]]}

``qid`` (integer or string, unique in the file), ``query`` (the sentence), ``vid`` (the video's
key in the feature folder or file), ``duration`` (seconds, > 0) and ``relevant_windows``
(``[[start, end], ...]`` seconds, at least one). Other keys are ignored. A folder holds
``train.jsonl``, ``test.jsonl`` and optionally ``val.jsonl`` (without it, val is a seeded share
of the train videos, as for Charades-STA).

Like the 2D-TAN readers, windows are clipped to ``[0, duration]`` and counted; a window left
empty is dropped and counted, and a query without any window left, or with a non-positive
duration, is dropped and counted. Malformed lines (not JSON, a key missing or of the wrong
type, a repeated ``qid``) are errors naming the file and line.

Several relevant windows: a training cell's IoU is its best IoU over the windows (so its soft
label is the best over the windows); evaluation counts a candidate as a hit when it matches
any window (see :mod:`pln.eval.score`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pln.data.annotations import Sample, clip_window
from pln.errors import DataError

JSONL_SPLITS = ("train", "val", "test")
REQUIRED_KEYS = ("qid", "query", "vid", "duration", "relevant_windows")


@dataclass
class JsonlReport:
    """What the JSONL reader changed or dropped, with counts (for the run's data report)."""

    files: list[str] = field(default_factory=list)
    pairs_read: int = 0  # queries (lines) read
    pairs_kept: int = 0
    windows_read: int = 0
    multi_window_queries: int = 0  # kept queries with more than one window
    start_clipped: int = 0  # window start < 0 set to 0
    end_clipped: int = 0  # window end > duration set to duration
    windows_dropped_start_ge_end: int = 0
    dropped_no_window: int = 0  # queries without a window left
    dropped_bad_duration: int = 0  # queries with duration <= 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_file(annotation_dir: str | Path, split: str) -> Path:
    """``<annotation_dir>/<split>.jsonl``."""
    return Path(annotation_dir) / f"{split}.jsonl"


def has_split(annotation_dir: str | Path, split: str) -> bool:
    """Whether the folder holds ``<split>.jsonl``."""
    return split_file(annotation_dir, split).is_file()


def native_splits(annotation_dir: str | Path) -> tuple[str, ...]:
    """The splits the folder holds as files: train and test, and val when present."""
    return tuple(s for s in JSONL_SPLITS if s != "val" or has_split(annotation_dir, s))


def iter_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every non-blank line of a JSONL file; bad JSON is an error."""
    if not path.is_file():
        raise DataError(f"annotation file {path} not found; data.annotation_dir must hold train.jsonl and "
                        "test.jsonl (val.jsonl optional) in the moment-DETR JSONL format")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg}); one JSON object per line") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def check_qid(value: Any, where: str) -> int | str:
    """A qid is an integer or a non-empty string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise DataError(f"{where}: 'qid' must be an integer or a non-empty string, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def parse_windows(value: Any, where: str, key: str, width: int = 2) -> list[list[float]]:
    """``[[start, end(, score)], ...]`` -> list of float lists; ``start <= end`` is not checked here."""
    if not isinstance(value, list):
        raise DataError(f"{where}: {key!r} must be a list of [start, end{', score' if width == 3 else ''}]")
    out = []
    for k, w in enumerate(value):
        if not isinstance(w, (list, tuple)) or len(w) != width:
            raise DataError(f"{where}: {key}[{k}] must be [start, end{', score' if width == 3 else ''}], got {w!r}")
        out.append([_number(x, f"{where}: {key}[{k}]") for x in w])
    return out


def read_jsonl(path: str | Path) -> tuple[list[Sample], JsonlReport]:
    """Read one JSONL annotation file into clipped samples (see the module docstring)."""
    path = Path(path)
    report = JsonlReport(files=[str(path)])
    samples: list[Sample] = []
    seen: dict[int | str, int] = {}
    for lineno, obj in iter_lines(path):
        where = f"{path}:{lineno}"
        missing = [k for k in REQUIRED_KEYS if k not in obj]
        if missing:
            raise DataError(f"{where}: missing key(s) {', '.join(missing)}; every line needs "
                            f"{', '.join(REQUIRED_KEYS)}")
        qid = check_qid(obj["qid"], where)
        if qid in seen:
            raise DataError(f"{where}: qid {qid!r} repeats line {seen[qid]}; qids must be unique in a file")
        seen[qid] = lineno
        if not isinstance(obj["query"], str) or not isinstance(obj["vid"], str) or not obj["vid"]:
            raise DataError(f"{where}: 'query' and 'vid' must be strings (vid non-empty)")
        duration = _number(obj["duration"], f"{where}: duration")
        windows = parse_windows(obj["relevant_windows"], where, "relevant_windows")
        report.pairs_read += 1
        report.windows_read += len(windows)
        if duration <= 0:
            report.dropped_bad_duration += 1
            continue
        kept = []
        for start, end in windows:
            window = clip_window(start, end, duration, report)
            if window is None:
                report.windows_dropped_start_ge_end += 1
            else:
                kept.append(window)
        if not kept:
            report.dropped_no_window += 1
            continue
        report.multi_window_queries += len(kept) > 1
        samples.append(Sample(obj["vid"], duration, kept[0][0], kept[0][1], obj["query"].strip(), qid=qid,
                              windows=tuple(kept) if len(kept) > 1 else ()))
    report.pairs_kept = len(samples)
    if not samples:
        raise DataError(f"{path}: no usable (video, query, window) row in the file")
    return samples, report


def read_jsonl_split(annotation_dir: str | Path, split: str) -> tuple[list[Sample], JsonlReport]:
    """Read ``<annotation_dir>/<split>.jsonl``."""
    if split not in JSONL_SPLITS:
        raise DataError(f"jsonl has no split {split!r}; its splits are {', '.join(JSONL_SPLITS)}")
    return read_jsonl(split_file(annotation_dir, split))


def sample_record(sample: Sample) -> dict[str, Any]:
    """A sample as one JSONL annotation object (qid, query, vid, duration, relevant_windows)."""
    return {"qid": sample.qid, "query": sample.sentence, "vid": sample.video_id, "duration": sample.duration,
            "relevant_windows": [[s, e] for s, e in sample.all_windows]}


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Write objects one per line (atomically)."""
    from pln.utils import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
