"""A split opened for one purpose: its dataset, its unit feed and how its batches are loaded.

:func:`open_split` is the one place where the engine builds a split. What a purpose needs is
decided there, before the dataset exists, and passed to its construction:

- ``training``: items carry the IoU maps (the labels); shuffled batches of ``train.batch_size``,
  reseeded per epoch; ``data.num_workers`` worker processes;
- ``evaluation``: no IoU maps (the validation loss and the metrics read the ground truth);
  batches of ``train.eval_batch_size`` in order; ``data.num_workers`` worker processes;
- ``benchmarking``: the evaluation split as `pln bench` times it, loaded in the process itself
  (no worker processes).

In every purpose the unit feed's decision (:func:`pln.engine.units.units_resident`) is taken from
the split's unit table before the dataset is built: a streamed split's items carry their units.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from pln.config import ExperimentConfig
from pln.data.dataset import MomentDataset, make_loader, read_split_tables
from pln.data.glove import WordVectors
from pln.engine.units import UnitFeed, units_resident

TRAINING, EVALUATION, BENCHMARKING = "training", "evaluation", "benchmarking"
PURPOSES = (TRAINING, EVALUATION, BENCHMARKING)


@dataclass
class OpenSplit:
    """One split opened by :func:`open_split`: ``dataset`` (items as the purpose needs them),
    ``feed`` (its units ``[B, M, D]`` on the device) and the settings of its loaders."""

    name: str
    purpose: str
    dataset: MomentDataset
    feed: UnitFeed
    batch_size: int
    shuffle: bool
    num_workers: int

    @property
    def device(self) -> torch.device:
        """The device the split's units (and so its batches) go to."""
        return self.feed.device

    def loader(self, seed: int = 0) -> DataLoader:
        """A loader over the split (``seed``: the shuffling of a training epoch)."""
        return make_loader(self.dataset, self.batch_size, shuffle=self.shuffle,
                           num_workers=self.num_workers, seed=seed)


def open_split(cfg: ExperimentConfig, split: str, purpose: str, device: torch.device,
               wv: WordVectors | None = None) -> OpenSplit:
    """Open ``split`` (train / val / test) of ``cfg.data.dataset`` for ``purpose`` (one of
    :data:`PURPOSES`) with its units fed to ``device``; ``wv``: the word vectors, if loaded
    already (else read from ``data.glove``)."""
    if purpose not in PURPOSES:
        raise ValueError(f"open_split: purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}")
    tables = read_split_tables(cfg, split, wv)
    resident = units_resident(tables.units, device, cfg.data)
    training = purpose == TRAINING
    dataset = MomentDataset(tables, units_in_items=not resident, ious_in_items=training)
    feed = UnitFeed(dataset.units, device, resident, cfg.data, split)
    return OpenSplit(
        name=split, purpose=purpose, dataset=dataset, feed=feed,
        batch_size=cfg.train.batch_size if training else cfg.train.eval_batch_size,
        shuffle=training, num_workers=0 if purpose == BENCHMARKING else cfg.data.num_workers,
    )
