"""The run folder: where one training run keeps its files (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pln.config import ExperimentConfig, config_from_dict
from pln.engine.checkpoint import config_differences
from pln.errors import ConfigError

# Settings that change how a run executes but not what it computes: a resumed run may differ here.
RUNTIME_ONLY = {
    ("train", "device"), ("train", "log_every"), ("train", "threads"), ("train", "eval_batch_size"),
    ("data", "num_workers"), ("data", "cache_dir"), ("data", "data_dir"),
}


@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def epochs(self) -> Path:
        return self.root / "epochs.csv"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def test_metrics(self) -> Path:
        return self.root / "test_metrics.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def predictions_jsonl(self) -> Path:
        """The test predictions in the moment-DETR JSONL format (``pln score`` reads them)."""
        return self.root / "predictions.jsonl"

    @property
    def score_maps(self) -> Path:
        return self.root / "score_maps.npz"

    @property
    def data_report(self) -> Path:
        return self.root / "data_report.json"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    def is_complete(self) -> bool:
        return self.test_metrics.is_file()

    def read_config(self) -> ExperimentConfig:
        """The resolved config this run was made with."""
        if not self.config.is_file():
            raise ConfigError(f"{self.root}: not a run folder (no config.yaml); train it with `pln train`")
        return config_from_dict(yaml.safe_load(self.config.read_text()) or {}, str(self.config))

    def read_test_metrics(self) -> dict[str, Any]:
        return json.loads(self.test_metrics.read_text())


def _strip_runtime(values: dict[str, Any]) -> dict[str, Any]:
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for section, key in RUNTIME_ONLY:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def check_same_experiment(run: RunDir, cfg: ExperimentConfig) -> None:
    """Refuse to resume a run folder that holds another experiment, naming the differences."""
    if not run.config.is_file():
        return
    old = _strip_runtime(run.read_config().to_dict())
    new = _strip_runtime(cfg.to_dict())
    diffs = config_differences(old, new)
    if diffs:
        shown = "; ".join(d.replace("config has", "run has").replace("checkpoint has", "new config has")
                          for d in diffs[:3])
        raise ConfigError(
            f"{run.root} holds a run of another configuration ({shown}); "
            "give another --out folder or delete that one")
