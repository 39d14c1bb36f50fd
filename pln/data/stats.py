"""Dataset statistics: Table 1 (videos and sentences per split) and Fig. 5 (moment lengths).

Both read the native annotation splits through the readers (after their clipping and
dropping), for a real dataset or a synthetic one (generated first if missing).
"""

from __future__ import annotations

import pandas as pd

from pln.config import ExperimentConfig
from pln.data.annotations import Sample


def split_samples(cfg: ExperimentConfig) -> dict[str, list[Sample]]:
    """``{split: samples}`` of every native split of ``cfg.data.dataset``."""
    from pln.data.dataset import native_splits_of, read_native, resolve_source

    source = resolve_source(cfg, need_features=False)
    return {split: read_native(source, split)[0] for split in native_splits_of(source)}


def table1(cfg: ExperimentConfig) -> pd.DataFrame:
    """One row per split: ``dataset, split, videos, sentences`` (Table 1 of the paper)."""
    rows = [{"dataset": cfg.data.dataset, "split": split, "videos": len({s.video_id for s in samples}),
             "sentences": len(samples)} for split, samples in split_samples(cfg).items()]
    return pd.DataFrame(rows, columns=["dataset", "split", "videos", "sentences"])


def moment_lengths(cfg: ExperimentConfig) -> pd.DataFrame:
    """One row per pair: ``dataset, split, length_s, rel_length`` (the data of Fig. 5)."""
    frames = []
    for split, samples in split_samples(cfg).items():
        length = [s.end - s.start for s in samples]
        rel = [(s.end - s.start) / s.duration for s in samples]
        frames.append(pd.DataFrame({"dataset": cfg.data.dataset, "split": split,
                                    "length_s": length, "rel_length": rel}))
    return pd.concat(frames, ignore_index=True)
