"""Coverage of the 95% intervals of :mod:`pln.stats` on simulated outcomes with known truth.

For each design (seeds per model x test queries x seed standard deviation on the latent
scale), draws ``--designs`` experiments from :mod:`pln.stats_sim`, and prints how often the
paired effect's and the mean's intervals cover the true values, for the defaults (``t`` for the
paired effect, ``pivot`` for the mean) and, for comparison, each method for both. Writes ``results/benchmarks/interval_coverage.csv``.

    python benchmarks/interval_coverage.py --designs 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from pln.stats_sim import Design, coverage
from pln.utils import atomic_write_text

DESIGNS = [(s, q, sd) for sd in (0.0, 0.15, 0.4) for s, q in ((3, 400), (5, 400), (3, 2500))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--designs", type=int, default=1000, help="simulated experiments per design")
    parser.add_argument("--methods", nargs="+", default=["default", "t", "pivot", "bootstrap"])
    parser.add_argument("--queries", type=int, nargs="+", default=None, help="only designs with these test queries")
    parser.add_argument("--seed-sd", type=float, nargs="+", default=None, help="only these latent seed s.d.")
    parser.add_argument("--append", action="store_true", help="add the rows to an existing --out file")
    parser.add_argument("--out", default="results/benchmarks/interval_coverage.csv")
    args = parser.parse_args()
    rows = []
    for method in args.methods:
        for n_seeds, n_queries, seed_sd in DESIGNS:
            if (args.queries and n_queries not in args.queries) or (args.seed_sd and seed_sd not in args.seed_sd):
                continue
            design = Design(n_seeds=n_seeds, n_queries=n_queries, seed_sd=seed_sd)
            res = coverage(design, args.designs, seed=1,
                           method=None if method == "default" else method)
            rows.append({"method": method, "seeds": n_seeds, "queries": n_queries, "seed_sd_latent": seed_sd,
                         "designs": args.designs, "coverage_paired": res["paired"], "coverage_mean": res["mean"],
                         "mc_se": round(res["mc_se"], 4), "paired_half_width": round(res["half_width"], 2)})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    if args.append and Path(args.out).exists():
        frame = pd.concat([pd.read_csv(args.out), frame], ignore_index=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, frame.to_csv(index=False))
    print(frame.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
