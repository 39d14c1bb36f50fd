"""bf16 against fp32 training on the synthetic benchmark: same metrics within seed noise?

Trains one config at several seeds in fp32 and with bf16 autocast (``train.bf16``), then prints
the mean and standard deviation of each test metric per precision and the difference of the
means in units of its standard error. Writes ``results/benchmarks/precision-<device>.csv``.

    python benchmarks/precision.py --config benchmarks/precision.yaml --seeds 0 1 2 --device cuda
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import pandas as pd

from pln.config import load_config
from pln.engine.train import train
from pln.utils import atomic_write


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="benchmarks/precision.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", default=None, help="run folders (default: a temporary folder)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run (repeatable), e.g. --set train.max_epochs=5")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="pln-precision-"))
    rows = []
    for bf16 in (False, True):
        for seed in args.seeds:
            cfg = load_config(args.config, [*args.overrides, f"train.seed={seed}",
                                            f"train.bf16={str(bf16).lower()}", f"train.device={args.device}"])
            result = train(cfg, work / f"{'bf16' if bf16 else 'fp32'}-seed{seed}")
            metrics = result["metrics"][result["default"]]
            rows.append({"precision": "bf16" if bf16 else "fp32", "seed": seed,
                         "device": result["run"]["device"], **metrics})
            print(f"{rows[-1]['precision']} seed {seed}: " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items()),
                  flush=True)
    frame = pd.DataFrame(rows)
    metric_cols = [c for c in frame.columns if c not in ("precision", "seed", "device")]
    summary = frame.groupby("precision")[metric_cols].agg(["mean", "std"])
    print(summary.round(2).to_string())
    n = len(args.seeds)
    for col in metric_cols:
        a, b = frame[frame.precision == "fp32"][col], frame[frame.precision == "bf16"][col]
        se = math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n) if n > 1 else float("nan")
        z = (b.mean() - a.mean()) / se if se and se > 0 else float("nan")
        print(f"{col:8s} bf16 - fp32 = {b.mean() - a.mean():+6.2f} points ({z:+.2f} standard errors)")
    out = Path(args.out or f"results/benchmarks/precision-{frame['device'].iloc[0].split(':')[0]}.csv")
    atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False, float_format="%.4f"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
