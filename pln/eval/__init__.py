"""Ranking (score maps -> ranked moments after NMS) and the benchmark metrics."""

from pln.eval.metrics import compute_metrics, per_query_hits, query_outcomes
from pln.eval.ranking import nms, predict_topk, rank_candidates, strategy1, strategy2

__all__ = [
    "nms", "predict_topk", "rank_candidates", "strategy1", "strategy2",
    "compute_metrics", "per_query_hits", "query_outcomes",
]
