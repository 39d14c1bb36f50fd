"""Metrics: Rank@n IoU=m (strictly greater), mIoU, length groups, gains, paired bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pln.errors import PLNError
from pln.eval.metrics import (
    compute_metrics,
    length_group_metrics,
    paired_bootstrap,
    per_query_hits,
    recall_at,
    relative_gain,
)


# gt [0, 4]; candidates: [0, 2] has IoU exactly 0.5, [0, 3] has 0.75, [10, 12] has 0
GT = torch.tensor([[0.0, 4.0], [0.0, 4.0]])
TOP = torch.tensor([
    [[0.0, 2.0], [0.0, 3.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0]],
    [[0.0, 3.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0], [10.0, 12.0]],
])
VALID = torch.ones(2, 5, dtype=torch.bool)


def test_iou_equal_to_threshold_is_not_a_hit():
    assert recall_at(TOP[:1], VALID[:1], GT[:1], n=1, m=0.5) == 0.0
    assert recall_at(TOP[:1], VALID[:1], GT[:1], n=1, m=0.3) == 100.0


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


def _grouped_inputs():
    # duration 100; moment lengths give fractions 0.05, 0.1, 0.15, 0.3, 0.5, 1.0, 0.0
    lengths = torch.tensor([5.0, 10.0, 15.0, 30.0, 50.0, 100.0, 0.0])
    gt = torch.stack([torch.zeros(7), lengths], dim=1)
    duration = torch.full((7,), 100.0)
    top = gt[:, None, :].repeat(1, 5, 1).clone()
    top[1, 0] = torch.tensor([60.0, 70.0])  # query 2 misses at top-1
    valid = torch.ones(7, 5, dtype=torch.bool)
    return top, valid, gt, duration


def test_length_group_counts_and_metrics():
    top, valid, gt, duration = _grouped_inputs()
    df = length_group_metrics(top, valid, gt, duration, ranks=[1], ious=[0.5])
    assert df["group"].tolist() == ["[0, 0.1)", "[0.1, 0.2)", "[0.2, 0.3)", "[0.3, 0.5)", "[0.5, 1]"]
    assert df["count"].tolist() == [2, 2, 0, 1, 2]
    # group 0 holds the 5 s moment (hit) and the 0-length one (IoU 0): 50 %
    assert df.loc[0, "R1@0.5"] == pytest.approx(50.0)
    assert df.loc[1, "R1@0.5"] == pytest.approx(50.0)
    assert math.isnan(df.loc[2, "R1@0.5"])
    assert df.loc[4, "R1@0.5"] == pytest.approx(100.0)
    assert df.loc[4, "mIoU"] == pytest.approx(100.0)


def test_length_group_bad_edges():
    top, valid, gt, duration = _grouped_inputs()
    with pytest.raises(PLNError):
        length_group_metrics(top, valid, gt, duration, edges=[0.5, 0.2])


def test_relative_gain():
    top, valid, gt, duration = _grouped_inputs()
    base = length_group_metrics(top, valid, gt, duration, edges=[0.0, 0.2, 1.0], ranks=[1], ious=[0.5])
    better = base.copy()
    better["R1@0.5"] = [75.0, 100.0]
    gain = relative_gain(better, base)
    assert gain["group"].tolist() == ["[0, 0.2)", "[0.2, 1]"]
    assert gain["R1@0.5"].tolist() == pytest.approx([50.0, 0.0])  # 50 -> 75 is +50 %
    assert gain["mIoU"].tolist() == pytest.approx([0.0, 0.0])
    with pytest.raises(PLNError):
        relative_gain(better, base.iloc[:1])


def test_paired_bootstrap_clear_winner_and_identical():
    rng = np.random.default_rng(0)
    b = rng.random(300) < 0.4
    a = b | (rng.random(300) < 0.5)  # a hits wherever b does, and more
    diff, p = paired_bootstrap(a, b, n_boot=2000, seed=1)
    assert diff == pytest.approx(a.mean() - b.mean())
    assert diff > 0 and p < 0.01
    diff, p = paired_bootstrap(b, b, n_boot=2000, seed=1)
    assert diff == 0.0 and p == 1.0


def test_paired_bootstrap_noise_is_not_significant_and_seeded():
    rng = np.random.default_rng(3)
    a = rng.random(400) < 0.5
    b = a.copy()
    b[:2] = ~b[:2]  # two flipped queries: no real difference
    first = paired_bootstrap(a, b, n_boot=1000, seed=7)
    assert first[1] > 0.2
    assert paired_bootstrap(a, b, n_boot=1000, seed=7) == first
    with pytest.raises(PLNError):
        paired_bootstrap(a, b[:10])
