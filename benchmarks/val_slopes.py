"""Two diagnostics of each run's validation curve: how flat it was when the run stopped, and how
much of the selected epoch's val value is the luck of a maximum.

The slope: the least-squares slope of val R1@0.5 over the run's last ``--last`` validations
(points per epoch). A run stopped by a patience rule (``train.stop_patience``) can still be
climbing slowly: a gain of 0.1 point an epoch adds up to 1 point over 10 epochs, less than the
standard error of a val split of a few hundred queries, so the rule does not see it. The slope
says how much of that remains.

The overshoot: the selected epoch is the one with the best val value, so on a small val split part
of that value is noise that the next validations do not repeat. Per run: the val value at the
selected epoch, the mean of the validations from it to the last, and the first minus the second;
over the runs its mean, and the correlation of the seeds' val values at selection with their test
values, each taken as its deviation from its model's mean over seeds (models with at least 2
seeds): near 1 when the seeds differ in what val and test both see, lower when the choice of epoch
adds its own noise.

It reads ``runs/<setting>/<model>/seed<k>/epochs.csv`` and ``test_metrics.json``, prints a table
per model (with the test R1@0.5 of each run's selected epoch) and writes
``results/benchmarks/val-slopes-<setting>.csv`` (a subset of the models, given by ``--models``,
its own CSV beside it).

    python benchmarks/val_slopes.py demo-plateau --last 20
    python benchmarks/val_slopes.py demo-plateau --models 'tacos-*'   # val-slopes-demo-plateau-tacos.csv
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pln.engine.run_dir import RunDir
from pln.utils import atomic_write

METRIC = "R1@0.5"


def slope(values: np.ndarray) -> float:
    """Least-squares slope of ``values [K]`` against 0..K-1 (NaN for fewer than 2 values)."""
    if values.size < 2:
        return float("nan")
    x = np.arange(values.size, dtype=np.float64)
    x -= x.mean()
    return float((x * (values - values.mean())).sum() / (x * x).sum())


def selection_overshoot(epochs: np.ndarray, curve: np.ndarray, selected: int | None) -> tuple[float, float]:
    """The val value at epoch ``selected`` and the mean of ``curve [K]`` (val per epoch, epoch
    numbers ``epochs [K]``) from that epoch to the last; NaNs when the curve has no such epoch."""
    at = np.flatnonzero(epochs == selected) if selected is not None else np.empty(0, dtype=np.int64)
    if at.size == 0:
        return float("nan"), float("nan")
    return float(curve[at[0]]), float(curve[at[0]:].mean())


def run_rows(runs_root: Path, last: int, models: str = "*") -> pd.DataFrame:
    """One row per trained run under ``runs_root`` of the models whose names match the glob
    ``models``: model, seed, epochs run, selected epoch, the val slope over the last ``last``
    validations, the val value at the selected epoch and the mean from it to the last
    (:func:`selection_overshoot`), and the test value."""
    rows = []
    for epochs_csv in sorted(runs_root.glob(f"{models}/seed*/{RunDir.EPOCHS}")):
        run = RunDir(epochs_csv.parent)
        if not run.test_metrics.is_file():
            continue
        epochs = pd.read_csv(epochs_csv)
        curve = epochs[f"val_{METRIC}"].to_numpy(dtype=np.float64)
        result = json.loads(run.test_metrics.read_text())
        selected = result.get("run", {}).get("selected_epoch")
        at_selected, mean_after = selection_overshoot(epochs["epoch"].to_numpy(), curve, selected)
        rows.append({"model": run.root.parent.name, "seed": int(run.root.name.removeprefix("seed")),
                     "epochs_run": len(curve), "selected_epoch": selected,
                     f"val_slope_last{last}": slope(curve[-last:]),
                     f"val_{METRIC}_selected": at_selected, f"val_{METRIC}_mean_from_selected": mean_after,
                     f"test_{METRIC}": float(result["metrics"][result["default"]][METRIC])})
    return pd.DataFrame(rows)


def within_model_correlation(frame: pd.DataFrame, a: str, b: str) -> tuple[float, int]:
    """The correlation of columns ``a`` and ``b`` of ``frame``, each as its deviation from its
    model's mean, over the rows of models with at least 2 such rows (both values present); and
    how many rows that is (NaN below 3)."""
    rows = frame.dropna(subset=[a, b])
    rows = rows[rows.groupby("model")[a].transform("size") >= 2]
    if len(rows) < 3:
        return float("nan"), len(rows)
    dev = [rows[c] - rows.groupby("model")[c].transform("mean") for c in (a, b)]
    return float(np.corrcoef(dev[0], dev[1])[0, 1]), len(rows)


def subset_tag(models: str) -> str:
    """The default CSV's suffix for the glob ``models``: empty for all models, else the glob's
    letters, digits, '-' and '_' (``'tacos-*'`` -> ``-tacos``), so a subset never overwrites the
    setting's CSV."""
    kept = re.sub(r"[^A-Za-z0-9_-]+", "", models).strip("-_")
    return f"-{kept or 'subset'}" if models != "*" else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting whose runs are under runs/<setting>/")
    parser.add_argument("--last", type=int, default=20, help="validations at the end of each curve (default 20)")
    parser.add_argument("--runs", default="runs", help="the runs folder (default runs)")
    parser.add_argument("--models", default="*", help="a glob of the models to read, e.g. 'tacos-*' (default all)")
    parser.add_argument("--out", help="CSV (default results/benchmarks/val-slopes-<setting>.csv)")
    args = parser.parse_args(argv)
    if args.last < 2:
        parser.error("--last must be at least 2")
    root = Path(args.runs) / args.setting
    frame = run_rows(root, args.last, args.models)
    if frame.empty:
        print(f"val_slopes: no trained run (epochs.csv and test_metrics.json) under {root}/{args.models}; "
              f"train the setting first, or give --models a glob its models match", file=sys.stderr)
        return 2
    col = f"val_slope_last{args.last}"
    out = Path(args.out or f"results/benchmarks/val-slopes-{args.setting}{subset_tag(args.models)}.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    print(f"{args.setting}: val {METRIC} slope over the last {args.last} validations (points/epoch); "
          f"test {METRIC} in brackets")
    for model, group in frame.groupby("model", sort=True):
        cells = ", ".join(f"{s:+.2f} ({t:.1f})" for s, t in zip(group[col], group[f"test_{METRIC}"]))
        print(f"  {model:24s} {cells}")
    climbing = (frame[col] > 0).mean()
    print(f"{len(frame)} runs; median slope {frame[col].median():+.3f}; positive in {climbing:.0%}; "
          f"written to {out}")
    overshoot = frame[f"val_{METRIC}_selected"] - frame[f"val_{METRIC}_mean_from_selected"]
    r, n = within_model_correlation(frame, f"val_{METRIC}_selected", f"test_{METRIC}")
    print(f"val {METRIC} at the selected epoch over the mean from it to the last: {overshoot.mean():+.2f} "
          f"(s.d. {overshoot.std():.2f}, {overshoot.count()} runs); within-model correlation of val at "
          f"selection with test: {r:.2f} ({n} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
