"""Runs of a setting trained outside the workflow, beside its own, for the sensitivity checks of
``benchmarks/`` (``patience_check.py``: a longer stopping rule; ``recipe_check.py``: a changed
recipe). Each check trains a setting's run with the training rule's command (a no-op when it is
finished), then a variant of it into ``runs/<setting>-<variant>/``, and tabulates both.

- :func:`pln_call` -- one ``pln`` subcommand in a subprocess, its output appended to a log;
- :func:`train_run` -- ``pln train`` as the workflow's train rule calls it;
- :func:`copy_run` -- a finished run folder copied (to be continued elsewhere);
- :func:`place_run` -- a finished run folder put in place of another (a trial's run, once its
  setting has adopted the trial's change);
- :func:`run_result` -- epochs run, selected epoch, test R1@0.5, test queries, seconds and machines
  of a run (:func:`run_machines`);
- :func:`side_root` / :func:`side_run_dir` -- where a check keeps its variant of a setting's run;
- :func:`first_loss_difference` -- the first epoch whose training loss differs between two runs
  (does a variant change the training, or only what is chosen from it?), the checks' column
  :data:`LOSS_COLUMN`;
- :func:`generate_datasets` -- each dataset generated once, before runs share it;
- :func:`costliest_first` -- an order that starts the longest runs first;
- :func:`train_jobs` -- the two together, then the jobs side by side;
- :func:`add_setting_arguments` / :func:`add_side_arguments` / :func:`load_setting` /
  :func:`unknown_models` / :func:`unknown_seeds` -- the checks' common command line;
- :func:`merge_rows` / :func:`save_rows` -- a check's CSV merged across invocations (dataset by
  dataset) and written;
- :func:`format_spread` -- a seed s.d. with its interval, as the checks print it;
- :func:`read_variance_ratio` -- the fixed reading of a diagnostic's variance ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from pln import stats
from pln.config import config_from_dict, load_config
from pln.engine.run_dir import RunDir, move_into_run_folder
from pln.engine.run_lock import LOCK_NAME, hold_run_lock
from pln.plan.jobs import epoch_cost
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan, Run
from pln.utils import atomic_write

METRIC = "R1@0.5"  # the metric the checks compare (the one the stability target is about)
LOSS_COLUMN = "first_other_loss_epoch"  # first_loss_difference of two runs in a check's CSV (0: none; blank: not compared)
# A diagnostic's reading, fixed before its runs: the bounds its variance ratio's interval is read against.
RATIO_UNDER = 1.0  # upper end under it: the ratio's numerator is the smaller variance
RATIO_OVER = 0.5  # lower end over it: the numerator is at least half the denominator


def pln_call(*args: str | Path, log: Path) -> None:
    """Run ``python -m pln.cli ARGS`` with this Python, stdout and stderr appended to ``log``;
    raises RuntimeError naming the log when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        done = subprocess.run([sys.executable, "-m", "pln.cli", *map(str, args)], stdout=fh, stderr=subprocess.STDOUT)
    if done.returncode:
        raise RuntimeError(f"pln {args[0]} {args[1]} failed (exit {done.returncode}); see {log}")


def train_run(config: Path, run_dir: Path, log: Path, *extra: str) -> None:
    """``pln train CONFIG --out RUN_DIR`` with the flags of the workflow's train rule (a folder of
    another config is replaced, a shorter budget continued, a finished run left as it is)."""
    pln_call("train", config, "--out", run_dir, "--replace-stale", "--extend", *extra, log=log)


def copy_run(src: Path, dst: Path) -> None:
    """Copy a finished run folder (all but its lock) to ``dst``, unless ``dst`` holds results already."""
    if RunDir(dst).has_results():
        return
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(LOCK_NAME), dirs_exist_ok=True)


def place_run(src: Path, dst: Path) -> None:
    """Replace what run folder ``dst`` holds with a copy of finished run folder ``src`` (all but
    its lock), both locked meanwhile (:class:`~pln.engine.run_lock.RunLockedError` when a process
    writes either). The copy is made beside ``dst`` first and moved in with its completeness mark
    (``test_metrics.json``) last, so an interrupted placement leaves a run that ``pln train``
    resumes, never one that looks finished."""
    if not RunDir(src).is_complete():
        raise ValueError(f"{src}: not a finished run (no {RunDir.TEST_METRICS})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with hold_run_lock(src), hold_run_lock(dst):
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
        try:
            shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(LOCK_NAME), dirs_exist_ok=True)
            move_into_run_folder(tmp, RunDir(dst))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def run_result(run_dir: Path) -> dict[str, Any]:
    """``epochs_run``, ``selected_epoch``, ``test`` (test :data:`METRIC` of the default
    prediction), ``test_queries``, ``run_seconds`` (:func:`run_seconds`) and ``machines``
    (:func:`run_machines`) of a finished run."""
    run = RunDir(run_dir)
    result = run.read_test_metrics()
    info = result.get("run", {})
    return {"epochs_run": info.get("epochs_run"), "selected_epoch": info.get("selected_epoch"),
            "test": float(result["metrics"][result["default"]][METRIC]), "test_queries": info.get("test_queries"),
            "run_seconds": run_seconds(run), "machines": run_machines(run)}


def run_machines(run: RunDir) -> str:
    """The machines that computed a run's epochs (``epochs.csv``'s ``machine``,
    :func:`pln.devices.machine_tag`), in the order they first appear, joined by `` + ``; empty
    for a run trained before epochs recorded their machine."""
    epochs = pd.read_csv(run.epochs)
    if "machine" not in epochs:
        return ""
    return " + ".join(epochs["machine"].dropna().drop_duplicates().astype(str))


def side_root(plan: Plan, variant: str) -> Path:
    """``runs/<setting>-<variant>``: the folder of a check's variant of a setting's runs."""
    return Path(f"{plan.runs_root}-{variant}")


def side_run_dir(plan: Plan, root: Path, run: Run) -> Path:
    """The folder of ``run``'s variant under ``root`` (:func:`side_root`), named below it as the
    setting names its own run (``<model>/seed<k>``)."""
    return root / Path(plan.run_dir(run)).relative_to(plan.runs_root)


def first_loss_difference(base_dir: Path, trial_dir: Path) -> int:
    """The first epoch, counted as in ``epochs.csv``, at which the training loss of the run in
    ``trial_dir`` differs from that of the run in ``base_dir``, compared exactly over the epochs
    both ran; 0 when it is equal at every one of them (the same weights were trained, and a
    variant changed only which epoch is chosen or when the run stops), so that a check's CSV
    tells that apart from a pair it did not compare (blank). Two runs of one config on one
    machine write the same losses, so an equal loss is exact, not approximate."""
    losses = [pd.read_csv(RunDir(d).epochs, usecols=["epoch", "train_loss"]).set_index("epoch")["train_loss"]
              for d in (base_dir, trial_dir)]
    common = losses[0].index.intersection(losses[1].index).sort_values()
    differs = [int(e) for e in common if losses[0][e] != losses[1][e]]
    return differs[0] if differs else 0


def run_seconds(run: RunDir) -> float:
    """The seconds a finished run spent training, validating and testing, from its own records
    (``epochs.csv``: ``train_seconds`` + ``val_seconds`` of every epoch; ``timings.json``:
    ``test_seconds``): its cost however many processes it took (a run cut off and resumed, a
    copy continued) and whichever call trained it; start-up (data, word vectors) not counted.
    NaN when a record is missing."""
    try:
        epochs = pd.read_csv(run.epochs, usecols=["train_seconds", "val_seconds"])
        test = float(json.loads(run.timings.read_text())["test_seconds"])
    except (OSError, ValueError, KeyError):
        return float("nan")
    return float(epochs.sum().sum()) + test  # an epoch without validation has no val_seconds


def generate_datasets(configs: Iterable[tuple[str, Path]], log_dir: Path) -> None:
    """``pln generate`` once per distinct data section of the run configs (``(dataset, config)``
    pairs; a variant that changes ``data.*`` has its own dataset), one at a time, so that no two
    runs started side by side generate the same one."""
    done: set[str] = set()
    for dataset, config in configs:
        key = json.dumps(asdict(load_config(config).data), sort_keys=True)
        if key not in done:
            pln_call("generate", config, log=log_dir / f"generate-{dataset}.log")
            done.add(key)


def costliest_first(items: list[Any], run_config: Any) -> list[Any]:
    """``items`` sorted by the per-epoch cost of their model (:func:`pln.plan.jobs.epoch_cost`),
    longest first; ``run_config(item)`` gives an item's run config dict."""
    return sorted(items, key=lambda item: -epoch_cost(config_from_dict(run_config(item)).model))


def train_jobs(plan: Plan, jobs: list[Any], variant: str, run_job: Callable[[Any, Path], dict[str, float]],
               n_jobs: int) -> tuple[list[Any], pd.DataFrame, float]:
    """Generate the jobs' datasets, then run ``run_job(job, logs)`` for every job, ``n_jobs`` side
    by side, the costliest first; logs under ``logs/<setting>-<variant>/``. Each job has
    ``dataset``, ``base_config``, ``configs`` (its run configs, the setting's first) and ``run`` (a
    :class:`~pln.plan.plan.Run`). Returns the jobs in the order run, one row of seconds per job
    (what ``run_job`` returned) and the wall seconds. A job that fails does not stop the others:
    when all have ended, ``SystemExit`` lists the failed ones, one line each (their runs resume
    when the call is repeated)."""
    generate_datasets(((job.dataset, config) for job in jobs for config in job.configs),
                      Path(f"logs/{plan.setting}-{variant}"))
    jobs = costliest_first(jobs, lambda job: plan.run_configs[plan.config_name(job.run)])
    logs = Path(f"logs/{plan.setting}-{variant}/train")
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:
        futures = [pool.submit(run_job, job, logs) for job in jobs]
    failed = [f"{job.run.model} seed {job.run.seed}: {future.exception()}"
              for job, future in zip(jobs, futures) if future.exception() is not None]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(jobs)} runs failed (the others ended):\n" + "\n".join(failed))
    return jobs, pd.DataFrame([f.result() for f in futures]).round(1), time.perf_counter() - start


def add_setting_arguments(parser: argparse.ArgumentParser, csv_default: str | None = None, *,
                          jobs: bool = True) -> None:
    """``--jobs`` (unless ``jobs`` is false), ``--configfile``, and ``--out`` (default
    ``csv_default``) when ``csv_default`` is given."""
    if jobs:
        parser.add_argument("--jobs", type=int, default=1, help="runs side by side (default 1)")
    parser.add_argument("--configfile", help="the setting's overlay (default config/<setting>.yaml)")
    if csv_default is not None:
        parser.add_argument("--out", help=f"CSV (default {csv_default})")


def add_side_arguments(parser: argparse.ArgumentParser, name_help: str) -> None:
    """``--name`` (the side folder ``runs/<setting>-<name>/``, described by ``name_help``) and
    ``--models`` (trained models of the setting; check them with :func:`unknown_models`)."""
    parser.add_argument("--name", required=True, help=name_help)
    parser.add_argument("--models", nargs="+", required=True, help="trained models of the setting")


def unknown_models(plan: Plan, models: Iterable[str]) -> str | None:
    """One line naming the models of ``models`` that ``plan``'s setting does not train, or None."""
    trained = plan.trained_models()
    unknown = [m for m in models if m not in trained]
    return f"{plan.setting_file} trains no model {', '.join(unknown)}" if unknown else None


def unknown_seeds(plan: Plan, model: str, seeds: Iterable[int]) -> str | None:
    """One line naming the seeds of ``seeds`` that ``plan``'s setting does not train for
    ``model``, or None."""
    other = sorted(set(seeds) - {run.seed for run in plan.runs(model)})
    return f"{plan.setting_file} trains no seed {', '.join(map(str, other))} of {model}" if other else None


def load_setting(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """The plan of ``args.setting`` from ``args.configfile`` (default ``config/<setting>.yaml``)
    over ``config.yaml``; a parser error names a missing overlay."""
    configfile = Path(args.configfile or f"config/{args.setting}.yaml")
    if not configfile.is_file():
        parser.error(f"{configfile} not found; give the setting's overlay with --configfile")
    return Plan(load_snakemake_config([configfile]))


def merge_rows(csv: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the rows of an earlier ``csv`` of the same check (other datasets, other
    models) that it does not replace, so that a check run dataset by dataset ends in one table."""
    if not csv.is_file():
        return frame
    old = pd.read_csv(csv)
    keep = ~old.set_index(["model", "seed"]).index.isin(frame.set_index(["model", "seed"]).index)
    return pd.concat([old[keep], frame], ignore_index=True)


def save_rows(csv: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Write ``frame`` merged with an earlier ``csv`` (:func:`merge_rows`) to ``csv``, atomically;
    the merged frame."""
    frame = merge_rows(csv, frame)
    atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False))
    return frame


def format_spread(spread: stats.Spread) -> str:
    """``s.d. [low, high]``, or a dash for one seed."""
    return f"{spread.sd:5.2f} [{spread.low:.2f}, {spread.high:.2f}]" if spread.df else "  –  (1 seed)"


def read_variance_ratio(ratio: stats.Ratio, under: str, over: str) -> str:
    """The fixed reading of a variance ratio with its interval: ``under`` when its upper end is
    under :data:`RATIO_UNDER`, ``over`` when its lower end is over :data:`RATIO_OVER` (both can
    hold), otherwise inconclusive (a NaN interval is inconclusive)."""
    findings = []
    if ratio.high < RATIO_UNDER:
        findings.append(f"upper end under {RATIO_UNDER:g}: {under}")
    if ratio.low > RATIO_OVER:
        findings.append(f"lower end over {RATIO_OVER:g}: {over}")
    return "; ".join(findings) or f"inconclusive (the interval reaches {RATIO_UNDER:g} and {RATIO_OVER:g})"
