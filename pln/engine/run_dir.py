"""The run folder: where one training run keeps its files (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from pln.config import RESULT_NEUTRAL_KEYS, ExperimentConfig, config_from_dict
from pln.engine.checkpoint import config_differences
from pln.engine.run_lock import LOCK_NAME
from pln.digest import atomic_write_json_digested, sidecar, verify_file
from pln.errors import ConfigError, DataError

log = logging.getLogger("pln.train")

@dataclass(frozen=True)
class RunDir:
    """Paths of one run folder; the one place that names its files (docs/ARCHITECTURE.md)."""

    root: Path

    CONFIG: ClassVar[str] = "config.yaml"
    EPOCHS: ClassVar[str] = "epochs.csv"
    CHECKPOINTS: ClassVar[str] = "checkpoints"
    LAST: ClassVar[str] = "last.pt"
    BEST: ClassVar[str] = "best.pt"
    TEST_METRICS: ClassVar[str] = "test_metrics.json"
    PREDICTIONS: ClassVar[str] = "predictions.csv"
    PREDICTIONS_JSONL: ClassVar[str] = "predictions.jsonl"
    SCORE_MAPS: ClassVar[str] = "score_maps.npz"
    DATA_REPORT: ClassVar[str] = "data_report.json"
    TIMINGS: ClassVar[str] = "timings.json"
    LOG: ClassVar[str] = "train.log"
    # The result files (digested, :mod:`pln.digest`) of a trained run and of a prior-only
    # baseline: the workflow's job outputs, what the tables and figures read.
    TRAIN_RESULTS: ClassVar[tuple[str, ...]] = (TEST_METRICS, PREDICTIONS, SCORE_MAPS)
    PRIOR_RESULTS: ClassVar[tuple[str, ...]] = (TEST_METRICS, PREDICTIONS)

    @property
    def config(self) -> Path:
        return self.root / self.CONFIG

    @property
    def epochs(self) -> Path:
        return self.root / self.EPOCHS

    @property
    def last(self) -> Path:
        return self.root / self.CHECKPOINTS / self.LAST

    @property
    def best(self) -> Path:
        return self.root / self.CHECKPOINTS / self.BEST

    @property
    def test_metrics(self) -> Path:
        return self.root / self.TEST_METRICS

    @property
    def predictions(self) -> Path:
        return self.root / self.PREDICTIONS

    @property
    def predictions_jsonl(self) -> Path:
        """The test predictions in the moment-DETR JSONL format (``pln score`` reads them)."""
        return self.root / self.PREDICTIONS_JSONL

    @property
    def score_maps(self) -> Path:
        return self.root / self.SCORE_MAPS

    @property
    def data_report(self) -> Path:
        return self.root / self.DATA_REPORT

    @property
    def timings(self) -> Path:
        return self.root / self.TIMINGS

    @property
    def log(self) -> Path:
        return self.root / self.LOG

    def is_complete(self) -> bool:
        return self.test_metrics.is_file()

    def has_results(self) -> bool:
        """Whether training or testing wrote anything here (a checkpoint or a result file)."""
        return any(p.is_file() for p in (self.last, self.best, self.test_metrics, self.predictions))

    def read_config(self) -> ExperimentConfig:
        """The resolved config this run was made with."""
        if not self.config.is_file():
            raise ConfigError(f"{self.root}: not a run folder (no config.yaml); train it with `pln train`")
        try:
            values = yaml.safe_load(self.config.read_text()) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{self.config}: damaged ({first[:120]}) -- restore it, or delete the run "
                              "folder and train again") from None
        return config_from_dict(values, str(self.config))

    def write_test_metrics(self, info: dict[str, Any], metrics: dict[str, dict[str, float]],
                           default: str) -> dict[str, Any]:
        """Write and return the run's ``test_metrics.json``: ``{"run": info, "metrics": {key:
        {metric: value}}, "default": key}`` (atomically, with its digest). Written last by
        `pln train` and `pln baseline-prior`: its presence marks the run complete."""
        result = {"run": info, "metrics": metrics, "default": default}
        atomic_write_json_digested(self.test_metrics, result)
        return result

    def read_test_metrics(self) -> dict[str, Any]:
        """The run's ``test_metrics.json``, verified against its digest."""
        return read_run_json(self.test_metrics)


def recovery_hint(path: str | Path) -> str:
    """How to remake a damaged result file of the run folder holding ``path``."""
    run = RunDir(Path(path).parent)
    return (f"delete {run.test_metrics} and rerun the run's `pln train` (or `pln baseline-prior`) "
            f"command: a trained run is re-tested from {RunDir.CHECKPOINTS}/{RunDir.BEST} without retraining")


def verify_run_file(path: str | Path) -> None:
    """Refuse a run's result file that does not match its digest (:mod:`pln.digest`)."""
    verify_file(path, recovery_hint(path))


def read_run_json(path: str | Path) -> dict[str, Any]:
    """A run's ``test_metrics.json``: verified, parsed, and a mapping."""
    path = Path(path)
    verify_run_file(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: damaged ({str(exc)[:120]}) -- {recovery_hint(path)}") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise DataError(f"{path}: not a run's test metrics (no 'metrics' mapping) -- {recovery_hint(path)}")
    return data


def query_counts(test_ds) -> dict[str, int]:
    """``test_queries`` (queries evaluated) and ``test_split_queries`` (pairs the split's annotation
    files hold before any is dropped) of a test :class:`~pln.data.dataset.MomentDataset`; the
    tables flag a run where the two differ."""
    return {"test_queries": len(test_ds), "test_split_queries": int(test_ds.report["quirks"]["pairs_read"])}


def _without(values: dict[str, Any], keys: frozenset[tuple[str, str]] | tuple[tuple[str, str], ...]
             ) -> dict[str, Any]:
    """A copy of config dict ``values`` without the ``(section, key)`` entries ``keys``."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for section, key in keys:
        if isinstance(out.get(section), dict):
            out[section].pop(key, None)
    return out


def _strip_runtime(values: dict[str, Any]) -> dict[str, Any]:
    return _without(values, RESULT_NEUTRAL_KEYS)


def experiment_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """``cfg`` as a dict without the keys that leave results as they are
    (:data:`~pln.config.RESULT_NEUTRAL_KEYS`): what two runs of one experiment share."""
    return _strip_runtime(cfg.to_dict())


# The keys that say how long a run trains. A config that differs from a run's only in a budget at
# least as long continues that run (`pln train --extend`): the epochs already trained are the same.
BUDGET_KEYS: tuple[tuple[str, str], ...] = (("train", "max_epochs"), ("train", "stop_patience"))


def _budget(values: dict[str, Any]) -> tuple[float, float]:
    """``(max_epochs, stop_patience)`` of a config dict; no patience rule counts as infinite."""
    patience = values["train"].get("stop_patience")
    return float(values["train"]["max_epochs"]), float("inf") if patience is None else float(patience)


def is_budget_extension(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether config dict ``new`` equals ``old`` but for a budget (:data:`BUDGET_KEYS`) that is
    nowhere shorter: a run of ``old`` is then the first part of a run of ``new``."""
    if config_differences(_without(old, BUDGET_KEYS), _without(new, BUDGET_KEYS)):
        return False
    return all(n >= o for o, n in zip(_budget(old), _budget(new)))


def _reopen_for_more_epochs(run: RunDir) -> None:
    """Remove a run's test outputs (the completeness mark first, so that a kill in between leaves
    a run that resumes), keeping its checkpoints and epoch history: training then resumes from
    ``last.pt`` and the run is tested again at its (possibly new) best epoch."""
    for name in (*RunDir.TRAIN_RESULTS, RunDir.PREDICTIONS_JSONL):  # TRAIN_RESULTS: test_metrics.json first
        (run.root / name).unlink(missing_ok=True)
        sidecar(run.root / name).unlink(missing_ok=True)


# How a run folder's config and the config it is compared with are named in the differences.
RUN_VS_CONFIG: tuple[str, str] = ("run", "new config")


def run_config_differences(run: RunDir, cfg: ExperimentConfig,
                           names: tuple[str, str] = RUN_VS_CONFIG) -> list[str]:
    """How the config a run folder was made with differs from ``cfg`` (``"key: run has A, new
    config has B"`` per leaf, or the two ``names`` given; empty when equal), the keys that leave
    results as they are (:data:`~pln.config.RESULT_NEUTRAL_KEYS`) aside: the test of whether a
    run is ``cfg``'s."""
    return config_differences(*_result_dicts(run, cfg), names=names)


def _result_dicts(run: RunDir, cfg: ExperimentConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The config of a run folder and ``cfg``, as dicts without the result-neutral keys."""
    return experiment_dict(run.read_config()), experiment_dict(cfg)


def check_same_experiment(run: RunDir, cfg: ExperimentConfig, replace_stale: bool = False,
                          extend: bool = False) -> None:
    """Refuse to resume a run folder that holds another experiment, naming the differences; with
    ``replace_stale``, empty the folder instead (all but its lock), so the run starts afresh. With
    ``extend``, a run whose config differs only in a longer budget (:func:`is_budget_extension`)
    is reopened and continued from its last epoch instead.

    A folder without results (a run that failed before its first checkpoint, e.g. on a wrong
    feature path) holds nothing to protect: the corrected config simply replaces its config.
    The caller holds the folder's lock (:func:`pln.engine.run_lock.hold_run_lock`).
    """
    if not run.config.is_file() or not run.has_results():
        return
    old, new = _result_dicts(run, cfg)
    diffs = config_differences(old, new, names=RUN_VS_CONFIG)
    if not diffs:
        return
    if extend and is_budget_extension(old, new):
        if not run.last.is_file():
            raise ConfigError(f"{run.root}: no {RunDir.CHECKPOINTS}/{RunDir.LAST} to continue from; train it "
                              "afresh (--replace-stale) or give another --out folder")
        log.warning("%s: continuing with a longer budget (%s)", run.root, "; ".join(diffs))
        _reopen_for_more_epochs(run)
        return
    shown = "; ".join(diffs[:3])
    if not replace_stale:
        raise ConfigError(
            f"{run.root} holds a run of another configuration ({shown}); "
            "give another --out folder, delete that one, or pass --replace-stale (or --extend, for "
            "a longer train.max_epochs or train.stop_patience alone)")
    log.warning("%s held a run of another configuration (%s); emptied, training afresh", run.root, shown)
    empty_run_folder(run)


def move_into_run_folder(src: Path, run: RunDir) -> None:
    """Replace what run folder ``run`` holds (all but its lock) with the entries of folder ``src``
    (on the same file system), moved in with the completeness mark (``test_metrics.json``) last:
    an interruption leaves a run that ``pln train`` resumes, never one that looks finished. The
    caller holds the folder's lock."""
    empty_run_folder(run)
    for entry in sorted(src.iterdir(), key=lambda p: p.name == RunDir.TEST_METRICS):
        os.replace(entry, run.root / entry.name)


def empty_run_folder(run: RunDir) -> None:
    """Delete everything in a run folder but its lock (the caller holds it)."""
    for entry in run.root.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
