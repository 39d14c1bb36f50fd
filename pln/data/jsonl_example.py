"""A small dataset in the JSONL layout, generated (``pln example-jsonl OUT``): the worked example
of the README (``config/examples/jsonl.yaml``) and the workflow's CI example (``config/jsonl-example.yaml``).

It is the synthetic Charades-STA-shaped benchmark (:mod:`pln.data.synthetic`) at a small scale,
converted: ``OUT/annotations/{train,test}.jsonl`` (no ``val.jsonl``, so val is a seeded share of
the train videos) and ``OUT/features/<vid>.npz`` (array ``features`` ``[T, D]``). Every
``multi_every``-th query also gets, as a second relevant window, the window of the next query on
the same video: it exercises the several-windows path (training labels, evaluation); it is not a
meaningful labelling.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from pln.config import SYNTHETIC_PREFIX, SyntheticConfig
from pln.data import jsonl
from pln.data.annotations import read_split
from pln.data.features import FeatureStore
from pln.data.synthetic import FEATURE_FILES, generate

FAMILY = "charades"


def write_example(out_dir: str | Path, scale: float = 0.1, seed: int = 0, feature_dim: int = 64,
                  multi_every: int = 5) -> dict[str, int]:
    """Write the example into ``out_dir``; returns ``{split: queries}``."""
    out = Path(out_dir)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        generate(SYNTHETIC_PREFIX + FAMILY, tmp, SyntheticConfig(scale=scale, seed=seed, feature_dim=feature_dim))
        store = FeatureStore(Path(tmp) / FEATURE_FILES[FAMILY], FAMILY)
        videos: set[str] = set()
        for split in ("train", "test"):
            samples, _ = read_split(FAMILY, tmp, split)
            records = [jsonl.sample_record(s) for s in samples]
            for i, record in enumerate(records[:-1]):
                nxt = records[i + 1]
                if multi_every and i % multi_every == 0 and nxt["vid"] == record["vid"]:
                    record["relevant_windows"].append(list(nxt["relevant_windows"][0]))
            jsonl.write_jsonl(out / "annotations" / f"{split}.jsonl", records)
            videos |= {s.video_id for s in samples}
            counts[split] = len(records)
        (out / "features").mkdir(parents=True, exist_ok=True)
        for vid in sorted(videos):
            np.savez(out / "features" / f"{vid}.npz", features=store.get(vid))
        store.close()
    return counts
