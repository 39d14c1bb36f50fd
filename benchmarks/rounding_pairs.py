"""How far apart do two runs of one experiment end when only their arithmetic differs? A run of a
setting (``runs/<setting>/<model>/seed<k>``) and a run of the same experiment in a side folder
(``runs/<setting>-<name>/<model>/seed<k>``, e.g. a recipe check's seed whose changed key resolves
to the setting's value) trained on another CPU: the same initial weights, the same batches, the
same code, but other kernels (AVX2 against AVX-512) round differently, and the training losses of
the two part at some epoch. If the training amplifies such a perturbation the way it amplifies
another seed, the two runs end as far apart as two seeds do.

A pair enters when its two configs are one experiment (the result-neutral keys aside, and
``train.order_seed`` compared as it resolves) and its training losses differ at some epoch (a pair
computed alike is the same run twice and is listed, not used). From the K pairs' differences of
test R1@0.5, the s.d. of one run that the rounding alone gives, ``sqrt(sum d^2 / (2 K))`` (K df,
:func:`pln.stats.pair_spread`), and its variance ratio to the setting's pooled seed variance of
the same models (F interval). The reading is fixed: the ratio's upper end under 1 means a
rounding-level perturbation moves a run less than another seed does; its lower end over 0.5 means
it alone gives at least half of the seed variance (the spread is the training's sensitivity to
any perturbation, not what a seed holds); otherwise inconclusive. The mean difference (t
interval) checks that neither machine is better. Caveat: each pair's setting run is also one of
the seeds of the reference, which makes the F interval somewhat too wide.

    python benchmarks/rounding_pairs.py demo-plateau --name order0tacos --seed 0 --models tacos-tan tacos-pln2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pln import stats
from pln.bench.side_runs import (LOSS_COLUMN, METRIC, add_setting_arguments, add_side_arguments, first_loss_difference,
                                 format_spread, load_setting, read_variance_ratio, run_result, side_root, side_run_dir,
                                 unknown_models, unknown_seeds)
from pln.engine.checkpoint import config_differences
from pln.engine.run_dir import RunDir, experiment_dict
from pln.plan.plan import Plan
from pln.utils import atomic_write


def experiment_differences(base_dir: Path, other_dir: Path) -> list[str]:
    """How the experiment of the run in ``other_dir`` differs from that in ``base_dir`` (empty
    when it is the same): the result-neutral keys aside, ``train.order_seed`` as it resolves."""
    values = []
    for run_dir in (base_dir, other_dir):
        cfg = RunDir(run_dir).read_config()
        values.append(experiment_dict(cfg))
        values[-1]["train"]["order_seed"] = cfg.train.resolved_order_seed
    return config_differences(*values, names=("setting run", "side run"))


def pair_rows(plan: Plan, name: str, models: list[str], seed: int) -> pd.DataFrame:
    """One row per model: the two runs' selected epochs and test R1@0.5, their difference (side
    run minus setting run) and the first epoch whose training loss differs (0: none). Raises
    ``SystemExit`` with one line for a missing or unfinished run and for two runs that are not
    one experiment."""
    rows = []
    for model in models:
        error = unknown_seeds(plan, model, [seed])
        if error:
            raise SystemExit(f"rounding_pairs: {error}")
        run = next(r for r in plan.runs(model) if r.seed == seed)
        base_dir, other_dir = Path(plan.run_dir(run)), side_run_dir(plan, side_root(plan, name), run)
        for d in (base_dir, other_dir):
            if not RunDir(d).is_complete():
                raise SystemExit(f"rounding_pairs: {d} is not a finished run; train it first")
        differences = experiment_differences(base_dir, other_dir)
        if differences:
            raise SystemExit(f"rounding_pairs: {other_dir} is another experiment than {base_dir}: {differences[0]}")
        results = {"base": run_result(base_dir), "other": run_result(other_dir)}
        row: dict[str, Any] = {"model": model, "seed": seed, "test_queries": results["base"]["test_queries"]}
        for side, result in results.items():
            row.update({f"{side}_selected_epoch": result["selected_epoch"], f"{side}_test_{METRIC}": result["test"]})
        row["difference"] = results["other"]["test"] - results["base"]["test"]
        row[LOSS_COLUMN] = first_loss_difference(base_dir, other_dir)
        rows.append(row)
    return pd.DataFrame(rows)


def setting_spread(plan: Plan, models: list[str]) -> stats.Spread:
    """The setting's pooled seed s.d. of test R1@0.5 over ``models`` (chi-square interval)."""
    return stats.pooled_seed_spread([np.array([run_result(Path(plan.run_dir(run)))["test"] for run in plan.runs(m)])
                                     for m in models])


def summary_lines(frame: pd.DataFrame, reference: stats.Spread) -> list[str]:
    """Per pair its results and difference; the pairs used; the s.d. the rounding alone gives,
    its variance ratio to ``reference`` and the fixed reading; the mean difference."""
    lines = [f"Test {METRIC}: setting run -> the same experiment with other arithmetic (selected epochs); "
             "first epoch whose training loss differs"]
    for _, r in frame.iterrows():
        first = "none (computed alike)" if r[LOSS_COLUMN] == 0 else int(r[LOSS_COLUMN])
        lines.append(f"  {r['model']:24s} {r[f'base_test_{METRIC}']:5.1f} -> {r[f'other_test_{METRIC}']:5.1f} "
                     f"({r['difference']:+5.1f}; epochs {r['base_selected_epoch']} / {r['other_selected_epoch']}); "
                     f"{first}")
    used = frame[frame[LOSS_COLUMN] > 0]
    differences = used["difference"].to_numpy(dtype=np.float64)
    lines.append(f"Pairs used (training losses differ): {len(used)} of {len(frame)}")
    if len(used) == 0:
        lines[-1] += "; nothing to read"
        return lines
    lines[-1] += f"; test queries per run {int(used['test_queries'].min()):,} to {int(used['test_queries'].max()):,}"
    spread = stats.pair_spread(differences)
    ratio = stats.variance_ratio(spread, reference)
    mean = stats.t_mean(differences)
    lines.append(f"s.d. of one run from the rounding alone, sqrt(sum d^2 / 2K): {format_spread(spread)} ({spread.df} df); "
                 f"setting's pooled seed s.d. of the same models: {format_spread(reference)} ({reference.df} df)")
    lines.append(f"Variance ratio rounding/seed {ratio.ratio:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] "
                 f"(F, {spread.df} and {reference.df} df): "
                 + read_variance_ratio(ratio, "a rounding-level perturbation moves a run less than another seed does",
                                       "a rounding-level perturbation alone gives at least half of the seed variance"))
    lines.append(f"Mean difference {mean.ratio:+.2f} [{mean.low:+.2f}, {mean.high:+.2f}] (t over {len(used)} pairs)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting, e.g. demo-plateau")
    add_side_arguments(parser, "the side folder: runs/<setting>-<name>/")
    parser.add_argument("--seed", type=int, default=0, help="the seed whose runs are paired (default 0)")
    add_setting_arguments(parser, "results/benchmarks/rounding-pairs-<name>-<setting>.csv", jobs=False)
    args = parser.parse_args(argv)
    plan = load_setting(parser, args)
    error = unknown_models(plan, args.models)
    if error:
        parser.error(error)
    frame = pair_rows(plan, args.name, args.models, args.seed)
    out = Path(args.out or f"results/benchmarks/rounding-pairs-{args.name}-{plan.setting}.csv")
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    print("\n".join(summary_lines(frame, setting_spread(plan, args.models))))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
