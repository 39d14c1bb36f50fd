"""``pln compare``: the paired effect of two methods on the same test queries, from their
prediction files, with the interval method of our tables (:func:`pln.stats.paired_effect`).

Each method is one prediction file per training seed. Every file is scored against the same
annotation file under one protocol (:func:`pln.eval.score.score_files`); its per-query outcomes
(0/100 hits, 100 x IoU, 100 x AP) form one row of the method's ``[S, Q]`` table. The effect of
A over B is ``mean(A) - mean(B)`` in percentage points; its interval accounts for the seeds of
both methods and the shared queries, and ``testable`` is False below ``min_seeds`` seeds per
method (the estimate is still given; with one seed each, no interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pln.errors import DataError
from pln.eval.score import Scored, score_files
from pln.stats import paired_effect

COLUMNS = ["metric", "mean_a", "mean_b", "effect", "low", "high", "n_seeds_a", "n_seeds_b", "n_queries",
           "testable", "method"]


def outcome_column(metric: str) -> str:
    """The per-query column behind a summary metric: ``mIoU`` -> ``IoU``, ``mAP@0.5`` -> ``AP@0.5``."""
    return {"mIoU": "IoU"}.get(metric, metric[1:] if metric.startswith("mAP") else metric)


def outcome_table(scored: Sequence[Scored], metric: str) -> np.ndarray:
    """``[S, Q]`` per-query outcomes (percent units) of one metric over a method's seed files."""
    column = outcome_column(metric)
    if column not in scored[0].per_query.columns:
        known = ", ".join(scored[0].summary)
        raise DataError(f"--metric {metric!r} is not a metric of the {scored[0].protocol} protocol; "
                        f"choose from {known}")
    return np.stack([s.per_query[column].to_numpy(dtype=np.float64) * 100.0 for s in scored])


def compare_files(a_files: Sequence[str | Path], b_files: Sequence[str | Path], annotations: str | Path,
                  protocol: str = "2dtan", nms_threshold: float = 0.5, ious: Sequence[float] = (0.3, 0.5, 0.7),
                  metrics: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0,
                  min_seeds: int = 3) -> pd.DataFrame:
    """One row per metric: the means of A and B, the effect A - B with its interval (``COLUMNS``)."""
    if not a_files or not b_files:
        raise DataError("pln compare: give at least one prediction file per method")
    score = lambda f: score_files(f, annotations, protocol, nms_threshold, ious=ious)  # noqa: E731
    a, b = [score(f) for f in a_files], [score(f) for f in b_files]
    rows = []
    for metric in metrics or list(a[0].summary):
        ta, tb = outcome_table(a, metric), outcome_table(b, metric)
        effect = paired_effect(ta, tb, n_boot=n_boot, seed=seed, min_seeds=min_seeds)
        rows.append([metric, float(ta.mean()), float(tb.mean()), effect.estimate, effect.low, effect.high,
                     effect.n_seeds_a, effect.n_seeds_b, effect.n_queries, effect.testable, effect.method])
    return pd.DataFrame(rows, columns=COLUMNS)
