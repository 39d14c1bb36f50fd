"""``pln convert``: 2D-TAN annotation files <-> moment-DETR JSONL, with the same pairs.

To JSONL: every native split of a family (TACoS, ActivityNet Captions: train/val/test;
Charades-STA: train/test) is read by :func:`pln.data.annotations.read_split` (with its clipping,
dropping and unit conversion) and written as ``<split>.jsonl``; ``qid`` is the pair's number in
its file (the number :func:`read_split` gives it), times are seconds.

Back to 2D-TAN: each ``<split>.jsonl`` is written in the family's layout, one pair per relevant
window, videos in order of first appearance. TACoS files get ``fps`` 1 (timestamps and
``num_frames`` in seconds), so reading them back gives the same seconds; Charades-STA gets its
``charades_sta_<split>.txt`` (each sentence ending in the full stop the reader removes) and a
``Charades_v1_<split>.csv`` with the durations.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from pln.config import NATIVE_SPLITS
from pln.data import jsonl
from pln.data.annotations import FAMILIES, Sample, read_split
from pln.errors import DataError
from pln.utils import atomic_write_text

DIRECTIONS = ("jsonl", "2dtan")


def to_jsonl(family: str, annotation_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write ``<out_dir>/<split>.jsonl`` for every native split; returns ``{split: pairs}``."""
    counts = {}
    for split in NATIVE_SPLITS[_family(family)]:
        samples, _ = read_split(family, annotation_dir, split)
        jsonl.write_jsonl(Path(out_dir) / f"{split}.jsonl", [jsonl.sample_record(s) for s in samples])
        counts[split] = len(samples)
    return counts


def to_2dtan(family: str, jsonl_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write the family's 2D-TAN files from ``<jsonl_dir>/<split>.jsonl``; returns ``{split: pairs}``."""
    counts = {}
    for split in NATIVE_SPLITS[_family(family)]:
        samples, _ = jsonl.read_jsonl_split(jsonl_dir, split)
        pairs = [(s.video_id, s.duration, a, b, s.sentence) for s in samples for a, b in s.all_windows]
        durations: dict[str, float] = {}
        for vid, duration, *_ in pairs:
            if durations.setdefault(vid, duration) != duration:
                raise DataError(f"{jsonl.split_file(jsonl_dir, split)}: video {vid!r} has two durations "
                                f"({durations[vid]} and {duration}); 2D-TAN files hold one per video")
        out = Path(out_dir)
        if family == "charades":
            lines = "".join(f"{vid} {a!r} {b!r}##{sentence}.\n" for vid, _, a, b, sentence in pairs)
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["id", "length"])
            writer.writerows([vid, repr(d)] for vid, d in durations.items())
            atomic_write_text(out / f"charades_sta_{split}.txt", lines)
            atomic_write_text(out / f"Charades_v1_{split}.csv", buffer.getvalue())
        else:
            videos: dict[str, dict] = {}
            for vid, duration, a, b, sentence in pairs:
                head = {"fps": 1.0, "num_frames": duration} if family == "tacos" else {"duration": duration}
                entry = videos.setdefault(vid, {**head, "timestamps": [], "sentences": []})
                entry["timestamps"].append([a, b])
                entry["sentences"].append(sentence)
            atomic_write_text(out / f"{split}.json", json.dumps(videos))
        counts[split] = len(pairs)
    return counts


def convert(direction: str, family: str, source: str | Path, out_dir: str | Path) -> dict[str, int]:
    """``direction`` "jsonl" (2D-TAN files -> JSONL) or "2dtan" (JSONL -> 2D-TAN files)."""
    if direction not in DIRECTIONS:
        raise DataError(f"--to {direction!r}: choose one of {', '.join(DIRECTIONS)}")
    return (to_jsonl if direction == "jsonl" else to_2dtan)(family, source, out_dir)


def pair_key(sample: Sample) -> tuple[str, float, float, float, str]:
    """What a conversion keeps of a pair: video, duration, start, end, sentence."""
    return sample.video_id, sample.duration, sample.start, sample.end, sample.sentence


def _family(family: str) -> str:
    if family not in FAMILIES:
        raise DataError(f"--family {family!r}: choose one of {', '.join(FAMILIES)}")
    return family
