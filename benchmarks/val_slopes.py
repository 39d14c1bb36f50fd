"""How flat each run's validation curve was when it stopped: the least-squares slope of val R1@0.5
over its last ``--last`` validations (points per epoch), per run, with the test R1@0.5 of the
epoch it selected.

A run stopped by a patience rule (``train.stop_patience``) can still be climbing slowly: a gain of
0.1 point an epoch adds up to 1 point over 10 epochs, less than the standard error of a val split
of a few hundred queries, so the rule does not see it. This script says how much of that remains.
It reads ``runs/<setting>/<model>/seed<k>/epochs.csv`` and ``test_metrics.json``, prints a table
per model and writes ``results/benchmarks/val-slopes-<setting>.csv``.

    python benchmarks/val_slopes.py demo-plateau --last 20
"""

from __future__ import annotations

import argparse
import json
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


def run_rows(runs_root: Path, last: int) -> pd.DataFrame:
    """One row per trained run under ``runs_root``: model, seed, epochs run, selected epoch, the
    val slope over the last ``last`` validations and the test value."""
    rows = []
    for epochs_csv in sorted(runs_root.glob(f"*/seed*/{RunDir.EPOCHS}")):
        run = RunDir(epochs_csv.parent)
        if not run.test_metrics.is_file():
            continue
        curve = pd.read_csv(epochs_csv)[f"val_{METRIC}"].to_numpy(dtype=np.float64)
        result = json.loads(run.test_metrics.read_text())
        rows.append({"model": run.root.parent.name, "seed": int(run.root.name.removeprefix("seed")),
                     "epochs_run": len(curve), "selected_epoch": result.get("run", {}).get("selected_epoch"),
                     f"val_slope_last{last}": slope(curve[-last:]),
                     f"test_{METRIC}": float(result["metrics"][result["default"]][METRIC])})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting whose runs are under runs/<setting>/")
    parser.add_argument("--last", type=int, default=20, help="validations at the end of each curve (default 20)")
    parser.add_argument("--runs", default="runs", help="the runs folder (default runs)")
    parser.add_argument("--out", help="CSV (default results/benchmarks/val-slopes-<setting>.csv)")
    args = parser.parse_args(argv)
    if args.last < 2:
        parser.error("--last must be at least 2")
    root = Path(args.runs) / args.setting
    frame = run_rows(root, args.last)
    if frame.empty:
        print(f"val_slopes: no trained run (epochs.csv and test_metrics.json) under {root}; train the "
              f"setting first", file=sys.stderr)
        return 2
    col = f"val_slope_last{args.last}"
    out = Path(args.out or f"results/benchmarks/val-slopes-{args.setting}.csv")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
