"""Does a recipe change steady a setting's models, and what does it cost them? Each run of the
chosen models is trained under the setting's recipe (``runs/<setting>/<model>/seed<k>``, the
training rule's command; a finished run is left as it is), then again from scratch with the
``--set KEY=VALUE`` overrides (as ``pln train --set``) into ``runs/<setting>-<name>/<model>/seed<k>``.
Both are tested at their best val epoch, under the setting's stopping rule. A change of ``data.*``
keys (e.g. a larger training split) gives the trial its own dataset, generated once beside the
setting's (its folder is named by the data section).

It prints per model the seed s.d. of test R1@0.5 under both recipes and the change of its mean
over seeds; over the models, the pooled seed s.d. under both (chi-square intervals,
:func:`pln.stats.pooled_seed_spread`), their variance ratio (F interval,
:func:`pln.stats.variance_ratio`) and the mean change over the models (t interval over the
models' differences of seed means, :func:`pln.stats.t_mean`), and the run seconds under both
(the runs' own records, so a run cut off and resumed counts whole); then the adoption rule, which is
fixed on the command line before any run: adopt when the pooled seed s.d. falls and the mean
R1@0.5 falls by less than ``--max-mean-drop`` points. With ``--diagnostic`` the change is one
that removes a source of seed variation (e.g. ``train.order_seed=0``: every seed trained on the
batches of seed 0) and is never adopted; the reading printed instead is fixed as well: the
variance ratio's upper end under 1 means the removed source carries part of the spread, its lower
end over 0.5 means what remains carries at least half of it, and otherwise it is inconclusive.
Each run's training losses are compared with its setting run's, epoch by epoch: a change of the
stopping or selection alone must leave them equal, one of the training must change them. One row
per run goes to ``results/benchmarks/recipe-<name>-<setting>.csv`` (merged across invocations);
``--summary`` prints that file's summary again without training anything.

    python benchmarks/recipe_check.py demo-plateau --name warmup2 --models charades-vgg-tan tacos-one128 \\
        --set train.lr_cosine.warmup_epochs=2 --set train.lr_cosine.final_fraction=1.0 --jobs 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pln import stats
from pln.bench.side_runs import (LOSS_COLUMN, METRIC, add_setting_arguments, add_side_arguments, first_loss_difference,
                                 format_spread, load_setting, read_variance_ratio, run_result, save_rows, side_root,
                                 side_run_dir, train_jobs, train_run, unknown_models,
                                 unknown_seeds)
from pln.config import merge, parse_override
from pln.errors import ConfigError
from pln.plan.jobs import run_config_text
from pln.engine.run_dir import RunDir
from pln.plan.plan import Plan, Run
from pln.utils import atomic_write_text

RECIPES = ("base", "trial")  # column prefixes: the setting's recipe, the changed one


@dataclass(frozen=True)
class Job:
    """One run under both recipes: its model, dataset, config files and folders."""

    run: Run
    dataset: str
    base_config: Path
    base_dir: Path
    trial_config: Path
    trial_dir: Path

    @property
    def configs(self) -> tuple[Path, Path]:
        """The run configs, the setting's first (each names the dataset it trains on)."""
        return self.base_config, self.trial_config


def plan_jobs(plan: Plan, name: str, models: list[str], overrides: list[str],
              seeds: list[int] | None = None) -> list[Job]:
    """The runs of ``models`` (those of ``seeds`` only, when given) with their run config as the
    workflow writes it and the same config with ``overrides`` applied (both under
    ``runs/<setting>-<name>/configs/``). Raises ``SystemExit`` with one line for a model the
    setting does not train, a seed it does not train, an override that is not ``KEY=VALUE`` or
    makes an invalid config, and overrides that change nothing."""
    root = side_root(plan, name)
    error = unknown_models(plan, models)
    if error:
        raise SystemExit(f"recipe_check: {error}")
    jobs = []
    for model in models:
        error = unknown_seeds(plan, model, seeds or [])
        if error:
            raise SystemExit(f"recipe_check: {error}")
        for run in (r for r in plan.runs(model) if seeds is None or r.seed in seeds):
            config_name = plan.config_name(run)
            values = plan.run_configs[config_name]
            trial: dict[str, Any] = values
            try:
                for item in overrides:
                    trial = merge(trial, parse_override(item))
            except ConfigError as exc:
                raise SystemExit(f"recipe_check: {exc}") from None
            if trial == values:
                raise SystemExit(f"recipe_check: --set {' '.join(overrides)} leaves {config_name} as it is")
            job = Job(run, plan.models[model]["dataset"], root / "configs" / f"{config_name}-setting.yaml",
                      Path(plan.run_dir(run)), root / "configs" / f"{config_name}.yaml",
                      side_run_dir(plan, root, run))
            for path, config in ((job.base_config, values), (job.trial_config, trial)):
                try:
                    atomic_write_text(path, run_config_text(config, path))
                except ConfigError as exc:
                    raise SystemExit(f"recipe_check: {exc}") from None
            jobs.append(job)
    return jobs


def run_job(job: Job, logs: Path) -> dict[str, float]:
    """Train ``job`` under the setting's recipe (a no-op when finished), then under the trial's;
    the wall seconds of each in this call (a run finished before it takes about 2 s; a run's own
    cost is its ``run_seconds``)."""
    name = f"{job.run.model}/seed{job.run.seed}"
    t0 = time.perf_counter()
    train_run(job.base_config, job.base_dir, logs / f"{name}.setting.log")
    t1 = time.perf_counter()
    train_run(job.trial_config, job.trial_dir, logs / f"{name}.log")
    return {"seconds_base": t1 - t0, "seconds_trial": time.perf_counter() - t1}


def result_rows(jobs: list[Job]) -> pd.DataFrame:
    """One row per run: model, dataset, seed, test queries, per recipe (``base_*``, ``trial_*``)
    its epochs run, selected epoch, test R1@0.5, run seconds (its own records,
    :func:`~pln.bench.side_runs.run_seconds`) and the machines that computed it
    (:func:`~pln.bench.side_runs.run_machines`), and :data:`LOSS_COLUMN`, the first epoch whose
    training loss differs between the two (:func:`~pln.bench.side_runs.first_loss_difference`)."""
    rows = []
    for job in jobs:
        results = {"base": run_result(job.base_dir), "trial": run_result(job.trial_dir)}
        row: dict[str, Any] = {"model": job.run.model, "dataset": job.dataset, "seed": job.run.seed,
                               "test_queries": results["trial"]["test_queries"]}
        for recipe, result in results.items():
            row.update({f"{recipe}_epochs_run": result["epochs_run"],
                        f"{recipe}_selected_epoch": result["selected_epoch"],
                        f"{recipe}_test_{METRIC}": result["test"],
                        f"{recipe}_run_seconds": round(result["run_seconds"], 1),
                        f"{recipe}_machines": result["machines"]})
        row[LOSS_COLUMN] = first_loss_difference(job.base_dir, job.trial_dir)
        rows.append(row)
    return pd.DataFrame(rows)


def with_loss_column(frame: pd.DataFrame, jobs: list[Job]) -> pd.DataFrame:
    """``frame`` (rows as :func:`result_rows` writes them) with :data:`LOSS_COLUMN` filled from
    the runs of ``jobs`` where it is blank (not compared: a CSV written before the column
    existed); a row of a run without a job keeps what it has, and a row already compared (0 or
    an epoch) needs no run on disk."""
    frame = frame.copy()
    if LOSS_COLUMN not in frame:
        frame[LOSS_COLUMN] = np.nan
    for job in jobs:
        rows = (frame["model"] == job.run.model) & (frame["seed"] == job.run.seed)
        if rows.any() and frame.loc[rows, LOSS_COLUMN].isna().all():
            missing = [d for d in (job.base_dir, job.trial_dir) if not RunDir(d).epochs.is_file()]
            if missing:
                raise SystemExit(f"recipe_check: {RunDir(missing[0]).epochs} not found; unpack or train the run first")
            frame.loc[rows, LOSS_COLUMN] = first_loss_difference(job.base_dir, job.trial_dir)
    return frame


def loss_line(frame: pd.DataFrame) -> str:
    """How many runs trained the same weights as their setting run (training loss equal at every
    epoch both ran: 0) and, for the others, the epochs where they first differ; runs not
    compared (blank) are counted apart."""
    first = frame[LOSS_COLUMN].dropna().astype(int)
    differ = first[first > 0].value_counts().sort_index()
    text = f"Training loss equal to the setting run's at every epoch both ran: {int((first == 0).sum())} of {len(frame)} runs"
    if len(differ):
        text += "; the others differ first at " + ", ".join(f"epoch {e} ({n} runs)" for e, n in differ.items())
    if len(first) < len(frame):
        text += f"; {len(frame) - len(first)} not compared"
    return text


def machines_line(frame: pd.DataFrame) -> str:
    """Where the runs were computed, per recipe: each machine (or sequence of machines, for a run
    resumed on another) with its number of runs; runs trained before their epochs recorded it are
    counted as unrecorded."""
    parts = []
    for recipe in RECIPES:
        counts = frame[f"{recipe}_machines"].fillna("").replace("", "unrecorded").value_counts()
        parts.append(f"{recipe}: " + ", ".join(f"{machine} ({n} runs)" for machine, n in counts.items()))
    return "Computed on (each run's epochs.csv): " + "; ".join(parts)


def diagnostic_line(ratio: stats.Ratio) -> str:
    """The fixed reading of a diagnostic's variance ratio trial/setting with its interval
    (:func:`~pln.bench.side_runs.read_variance_ratio`)."""
    return (f"Diagnostic, never adopted (variance ratio {ratio.ratio:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]): "
            + read_variance_ratio(ratio, "the removed source carries part of the spread",
                                  "what remains carries at least half of the spread"))


def summary_lines(frame: pd.DataFrame, max_mean_drop: float, diagnostic: bool = False) -> list[str]:
    """Per model and pooled over the models: the seed s.d. of test R1@0.5 under both recipes and
    the change of the mean; the variance ratio and the mean change with their intervals; the runs
    whose training losses equal their setting run's; the adoption rule's outcome, or with
    ``diagnostic`` the fixed reading of the variance ratio (:func:`diagnostic_line`)."""
    cols = {r: f"{r}_test_{METRIC}" for r in RECIPES}
    groups = {r: [] for r in RECIPES}
    changes = []
    lines = [f"Seed s.d. of test {METRIC} [95% CI], setting's recipe -> trial; mean over seeds (change); "
             f"per seed: test {METRIC} (selected epoch / epochs run)"]
    for model, group in frame.groupby("model", sort=False):
        values = {r: group[c].to_numpy(dtype=np.float64) for r, c in cols.items()}
        for r in RECIPES:
            groups[r].append(values[r])
        change = float(values["trial"].mean() - values["base"].mean())
        changes.append(change)
        spreads = {r: stats.seed_spread(values[r]) for r in RECIPES}
        lines.append(f"  {model:24s} {format_spread(spreads['base'])} -> {format_spread(spreads['trial'])}; "
                     f"mean {values['base'].mean():.1f} -> {values['trial'].mean():.1f} ({change:+.1f})")
        cells = {r: ", ".join(f"{v:.1f} ({e}/{n})" for v, e, n in
                              zip(values[r], group[f"{r}_selected_epoch"], group[f"{r}_epochs_run"])) for r in RECIPES}
        lines.append(f"  {'':24s}   {cells['base']}  ->  {cells['trial']}")
    pooled = {r: stats.pooled_seed_spread(groups[r]) for r in RECIPES}
    ratio = stats.variance_ratio(pooled["trial"], pooled["base"])
    mean = stats.t_mean(np.array(changes))
    lines.append(f"Pooled over {len(changes)} models (one seed variance assumed): {format_spread(pooled['base'])} -> "
                 f"{format_spread(pooled['trial'])} ({pooled['trial'].df} df); variance ratio trial/setting "
                 f"{ratio.ratio:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] (F, {pooled['trial'].df} and "
                 f"{pooled['base'].df} df)")
    lines.append(f"Mean change of test {METRIC} over the models: {mean.ratio:+.2f} [{mean.low:+.2f}, {mean.high:+.2f}] "
                 f"(t over {len(changes)} models' differences of seed means)")
    steadier = pooled["trial"].sd < pooled["base"].sd
    cheap = mean.ratio > -max_mean_drop
    verdict = "adopt" if steadier and cheap else "do not adopt"
    reasons = [] if steadier else ["the pooled seed s.d. does not fall"]
    reasons += [] if cheap else [f"the mean falls by {-mean.ratio:.2f} points (rule: less than {max_mean_drop:g})"]
    if all(f"{r}_run_seconds" in frame for r in RECIPES):
        seconds = {r: frame[f"{r}_run_seconds"] for r in RECIPES}
        lines.append("Run seconds (training, validation and test, from the runs' records), setting's recipe -> trial: "
                     + " -> ".join(f"{seconds[r].sum():,.0f} ({seconds[r].notna().sum()} runs)" for r in RECIPES))
    if LOSS_COLUMN in frame:
        lines.append(loss_line(frame))
    if all(f"{r}_machines" in frame for r in RECIPES):
        lines.append(machines_line(frame))
    if diagnostic:
        lines.append(diagnostic_line(ratio))
        return lines
    lines.append(f"Adoption rule (the pooled s.d. falls and the mean falls by less than {max_mean_drop:g} points): "
                 f"{verdict}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting, e.g. demo-plateau")
    add_side_arguments(parser, "the trial's name: runs go to runs/<setting>-<name>/")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="K",
                        help="train these seeds of each model only (default: the setting's seeds); e.g. one seed "
                             "of every model first when a sitting may be cut off")
    parser.add_argument("--set", action="append", required=True, metavar="KEY=VALUE", dest="overrides",
                        help="a change of the run configs, e.g. train.lr_cosine.warmup_epochs=2 (repeatable)")
    parser.add_argument("--max-mean-drop", type=float, default=1.0,
                        help="adoption rule: the largest fall of the mean R1@0.5 accepted (points; default 1)")
    parser.add_argument("--diagnostic", action="store_true",
                        help="the change removes a source of seed variation and is never adopted: print the fixed "
                             "reading of the variance ratio instead of the adoption rule")
    parser.add_argument("--summary", action="store_true",
                        help="train nothing: print the summary of the CSV an earlier call wrote (its timing columns "
                             "kept), adding the training-loss comparison where that call did not make it")
    add_setting_arguments(parser, "results/benchmarks/recipe-<name>-<setting>.csv")
    args = parser.parse_args(argv)
    if not args.name.replace("-", "").replace("_", "").isalnum():
        parser.error(f"--name {args.name!r}: use letters, digits, '-' and '_' (it names a folder)")
    plan = load_setting(parser, args)
    jobs = plan_jobs(plan, args.name, args.models, args.overrides, args.seeds)
    out = Path(args.out or f"results/benchmarks/recipe-{args.name}-{plan.setting}.csv")
    if args.summary:
        if not out.is_file():
            parser.error(f"{out} not found: run the trial first (without --summary)")
        frame = with_loss_column(pd.read_csv(out), jobs)
        save_rows(out, frame)
        print("\n".join(summary_lines(frame[frame["model"].isin(args.models)], args.max_mean_drop, args.diagnostic)))
        return 0
    jobs, seconds, wall = train_jobs(plan, jobs, args.name, run_job, args.jobs)
    frame = save_rows(out, pd.concat([result_rows(jobs), seconds], axis=1))
    print("\n".join(summary_lines(frame, args.max_mean_drop, args.diagnostic)))
    print(f"{len(jobs)} runs in {wall:.0f} s with {args.jobs} side by side; written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
