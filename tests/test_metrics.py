"""Metrics: per-query outcomes (Rank@n IoU=m strictly greater, the top-1 IoU) and their means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pln.errors import PLNError
from pln.eval.metrics import compute_metrics, per_query_hits, query_outcomes


def test_query_outcomes_hand_values():
    # three queries' IoUs by rank; query 2 kept one candidate, query 3 none
    ious = np.array([[0.2, 0.6, 0.8], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = query_outcomes(ious, ranks=[1, 2], thresholds=[0.5, 0.7])
    assert list(out) == ["R1@0.5", "R1@0.7", "R2@0.5", "R2@0.7", "IoU"]
    assert out["R1@0.5"].tolist() == [False, False, False]  # 0.5 is not > 0.5
    assert out["R2@0.5"].tolist() == [True, False, False]
    assert out["R2@0.7"].tolist() == [False, False, False]  # 0.8 is at rank 3
    assert out["IoU"].tolist() == [0.2, 0.5, 0.0]
    percent = query_outcomes(ious, ranks=[5], thresholds=[0.7], percent=True)
    assert percent["R5@0.7"].tolist() == [100.0, 0.0, 0.0] and percent["R5@0.7"].dtype == np.float64
    assert percent["IoU"].tolist() == [20.0, 50.0, 0.0]
    assert query_outcomes(np.zeros((2, 0)), [1], [0.5])["IoU"].tolist() == [0.0, 0.0]  # nothing kept
    with pytest.raises(PLNError):
        query_outcomes(ious, ranks=[0], thresholds=[0.5])


# gt [0, 4]; candidates: [0, 2] has IoU exactly 0.5, [0, 3] has 0.75, [10, 12] has 0
GT = torch.tensor([[0.0, 4.0], [0.0, 4.0]])
TOP = torch.tensor([
    [[0.0, 2.0], [0.0, 3.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0]],
    [[0.0, 3.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0]],
])
VALID = torch.ones(2, 5, dtype=torch.bool)


def test_iou_equal_to_threshold_is_not_a_hit():
    assert compute_metrics(TOP[:1], VALID[:1], GT[:1], ranks=[1], ious=[0.5])["R1@0.5"] == 0.0
    assert compute_metrics(TOP[:1], VALID[:1], GT[:1], ranks=[1], ious=[0.3])["R1@0.3"] == 100.0


def test_rank1_versus_rank5():
    m = compute_metrics(TOP, VALID, GT, ranks=[1, 5], ious=[0.5, 0.7])
    assert m["R1@0.5"] == pytest.approx(50.0)  # only query 2's top-1 (0.75) is > 0.5
    assert m["R5@0.5"] == pytest.approx(100.0)  # query 1's second candidate has 0.75
    assert m["R1@0.7"] == pytest.approx(50.0)
    assert m["R5@0.7"] == pytest.approx(100.0)
    assert m["mIoU"] == pytest.approx((0.5 + 0.75) / 2 * 100)
    assert set(m) == {"R1@0.5", "R5@0.5", "R1@0.7", "R5@0.7", "mIoU"}


def test_invalid_candidates_never_count():
    valid = VALID.clone()
    valid[0, 1:] = False  # query 1 kept only [0, 2]
    m = compute_metrics(TOP, valid, GT, ranks=[5], ious=[0.5])
    assert m["R5@0.5"] == pytest.approx(50.0)


def test_per_query_hits_frame():
    hits = per_query_hits(TOP, VALID, GT, ranks=[1, 5], ious=[0.5])
    assert list(hits.columns) == ["R1@0.5", "R5@0.5", "IoU"]
    assert hits["R1@0.5"].tolist() == [False, True]
    assert hits["R5@0.5"].tolist() == [True, True]
    assert hits["IoU"].tolist() == pytest.approx([0.5, 0.75])


def test_metric_names_for_tacos_thresholds():
    m = compute_metrics(TOP, VALID, GT, ranks=[1], ious=[0.1, 0.45])
    assert set(m) == {"R1@0.1", "R1@0.45", "mIoU"}


