"""Ranking (score maps -> ranked moments after NMS) and the benchmark metrics."""

from pln.eval.ranking import nms, predict_topk, rank_candidates, strategy1, strategy2
from pln.eval.metrics import (
    compute_metrics,
    length_group_metrics,
    paired_bootstrap,
    per_query_hits,
    recall_at,
    relative_gain,
)

__all__ = [
    "nms", "predict_topk", "rank_candidates", "strategy1", "strategy2",
    "compute_metrics", "length_group_metrics", "paired_bootstrap",
    "per_query_hits", "recall_at", "relative_gain",
]
