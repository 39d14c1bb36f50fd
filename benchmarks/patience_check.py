"""How much of a setting's seed spread is its stopping rule? Each run of the chosen datasets is
trained under the setting's own rule (``runs/<setting>/<model>/seed<k>``, the training rule's
command; a finished run is left as it is), then a copy of it is continued with a longer
``train.stop_patience`` (``pln train --extend``: the same epochs, then more) into
``runs/<setting>-patience<P>/<model>/seed<k>``. Both are tested at their best val epoch.

Per model it prints the seed s.d. of test R1@0.5 under both rules with its 95% interval (chi-square,
:func:`pln.stats.seed_spread`, as on the resolving-power page), then the s.d. pooled per dataset
(:func:`pln.stats.pooled_seed_spread`), and writes one row per run to
``results/benchmarks/patience<P>-<setting>.csv``. A sensitivity check, not the setting's rule:
the setting's tables and claims keep reading ``runs/<setting>/``.

    python benchmarks/patience_check.py demo-plateau --patience 40 --datasets charades-vgg charades-i3d --jobs 2
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pln import stats
from pln.bench.side_runs import (METRIC, add_setting_arguments, copy_run, format_spread, load_setting, pln_call,
                                 run_result, save_rows, side_root, side_run_dir, train_jobs, train_run)
from pln.plan.jobs import run_config_text
from pln.plan.plan import Plan, Run
from pln.utils import atomic_write_text


@dataclass(frozen=True)
class Job:
    """One run under both rules: its model, dataset, seed, budget, config files and folders."""

    run: Run
    dataset: str
    max_epochs: int
    setting_patience: int
    patience: int
    base_config: Path
    base_dir: Path
    long_config: Path
    long_dir: Path

    @property
    def configs(self) -> tuple[Path, Path]:
        """The run configs, the setting's first (each names the dataset it trains on)."""
        return self.base_config, self.long_config


def plan_jobs(plan: Plan, patience: int, datasets: list[str] | None) -> list[Job]:
    """The trained runs of the setting's used models (of ``datasets``, default all), each with its
    run config as the workflow writes it and the same config with ``stop_patience`` = ``patience``
    (both written under ``runs/<setting>-patience<P>/configs/``). Raises ``SystemExit`` with one
    line when the setting has no patience rule or ``patience`` is not longer than its."""
    root = side_root(plan, f"patience{patience}")
    jobs = []
    for model in plan.trained_models():
        if datasets and plan.models[model]["dataset"] not in datasets:
            continue
        for run in plan.runs(model):
            name = plan.config_name(run)
            values = plan.run_configs[name]
            own = values.get("train", {}).get("stop_patience")
            if own is None or patience <= own:
                raise SystemExit(f"patience_check: {plan.setting_file}: {name} has train.stop_patience {own}; "
                                 f"--patience must be longer than the setting's rule")
            longer = {**values, "train": {**values["train"], "stop_patience": patience}}
            jobs.append(Job(run, plan.models[model]["dataset"], int(values["train"]["max_epochs"]), int(own),
                            patience, root / "configs" / f"{name}-setting.yaml", Path(plan.run_dir(run)),
                            root / "configs" / f"{name}.yaml", side_run_dir(plan, root, run)))
            for path, config in ((jobs[-1].base_config, values), (jobs[-1].long_config, longer)):
                atomic_write_text(path, run_config_text(config, path))
    return jobs


def run_job(job: Job, logs: Path) -> dict[str, float]:
    """Train ``job`` under the setting's rule (a no-op when finished), then continue a copy with the
    longer patience; the wall seconds of each step."""
    name = f"{job.run.model}/seed{job.run.seed}"
    t0 = time.perf_counter()
    train_run(job.base_config, job.base_dir, logs / f"{name}.setting.log")
    t1 = time.perf_counter()
    copy_run(job.base_dir, job.long_dir)
    pln_call("train", job.long_config, "--out", job.long_dir, "--extend", log=logs / f"{name}.log")
    return {"seconds_setting": t1 - t0, "seconds_extension": time.perf_counter() - t1}


def result_rows(jobs: list[Job]) -> pd.DataFrame:
    """One row per run: model, dataset, seed, and per rule its epochs run, selected epoch and
    test R1@0.5 (``setting_*`` under the setting's patience, ``long_*`` under the longer one)."""
    rows = []
    for job in jobs:
        base, long = run_result(job.base_dir), run_result(job.long_dir)
        rows.append({"model": job.run.model, "dataset": job.dataset, "seed": job.run.seed,
                     "test_queries": long["test_queries"], "max_epochs": job.max_epochs,
                     "setting_patience": job.setting_patience,
                     **{f"setting_{k}": v for k, v in base.items() if k != "test_queries"},
                     "long_patience": job.patience,
                     **{f"long_{k}": v for k, v in long.items() if k != "test_queries"}})
    frame = pd.DataFrame(rows)
    return frame.rename(columns={"setting_test": f"setting_test_{METRIC}", "long_test": f"long_test_{METRIC}"})


def summary_lines(frame: pd.DataFrame, target: float | None = None) -> list[str]:
    """Per model and per dataset, the seed s.d. of test R1@0.5 under both rules (and, with
    ``target``, each judged against it: met / not met / undetermined)."""
    cols = {"setting": f"setting_test_{METRIC}", "long": f"long_test_{METRIC}"}
    patience = {k: int(frame[f"{k}_patience"].iloc[0]) for k in cols}

    def judged(spread: stats.Spread) -> str:
        return f" {stats.sd_target_verdict(spread, target):12s}" if target is not None and spread.df else ""

    lines = [f"Seed s.d. of test {METRIC} [95% CI], patience {patience['setting']} (the setting's) -> "
             f"{patience['long']}; per seed: test {METRIC} (selected epoch / epochs run)"]
    for model, group in frame.groupby("model", sort=False):
        cells = {k: ", ".join(f"{v:.1f} ({e}/{n})" for v, e, n in
                              zip(group[c], group[f"{k}_selected_epoch"], group[f"{k}_epochs_run"]))
                 for k, c in cols.items()}
        spreads = {k: stats.seed_spread(group[c].to_numpy(dtype=np.float64)) for k, c in cols.items()}
        lines.append(f"  {model:24s} {format_spread(spreads['setting'])}{judged(spreads['setting'])} -> "
                     f"{format_spread(spreads['long'])}{judged(spreads['long'])}")
        lines.append(f"  {'':24s}   {cells['setting']}  ->  {cells['long']}")
    lines.append("Pooled per dataset (one seed variance per dataset assumed):")
    for dataset, group in frame.groupby("dataset", sort=False):
        spreads = {k: stats.pooled_seed_spread([g[c].to_numpy(dtype=np.float64) for _, g in group.groupby("model")])
                   for k, c in cols.items()}
        lines.append(f"  {dataset:24s} {format_spread(spreads['setting'])}{judged(spreads['setting'])} -> "
                     f"{format_spread(spreads['long'])}{judged(spreads['long'])} ({spreads['long'].df} df, "
                     f"{group['model'].nunique()} models)")
    at_cap = int((frame["long_epochs_run"] >= frame["max_epochs"]).sum())
    lines.append(f"{len(frame)} runs; with patience {patience['long']}, {at_cap} ran to the cap of epochs; "
                 f"the selected epoch moved in {int((frame['long_selected_epoch'] != frame['setting_selected_epoch']).sum())}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting with a patience rule, e.g. demo-plateau")
    parser.add_argument("--patience", type=int, required=True, help="the longer train.stop_patience")
    parser.add_argument("--datasets", nargs="*", help="datasets of the setting (default: all)")
    add_setting_arguments(parser, "results/benchmarks/patience<P>-<setting>.csv")
    args = parser.parse_args(argv)
    plan = load_setting(parser, args)
    unknown = sorted(set(args.datasets or []) - set(plan.datasets))
    if unknown:
        parser.error(f"unknown datasets {', '.join(unknown)} (the setting has: {', '.join(plan.datasets)})")
    jobs = plan_jobs(plan, args.patience, args.datasets)
    if not jobs:
        print(f"patience_check: no trained model of {', '.join(args.datasets or [])} is used by {plan.setting_file}",
              file=sys.stderr)
        return 2
    jobs, seconds, wall = train_jobs(plan, jobs, f"patience{args.patience}", run_job, args.jobs)
    out = Path(args.out or f"results/benchmarks/patience{args.patience}-{plan.setting}.csv")
    frame = save_rows(out, pd.concat([result_rows(jobs), seconds], axis=1))
    target = plan.config.get("report", {}).get("seed_sd_target")
    print("\n".join(summary_lines(frame, None if target is None else float(target))))
    print(f"{len(jobs)} runs in {wall:.0f} s with {args.jobs} side by side; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
