"""Ranking: strategies 1 and 2, ranking the valid cells and batched greedy NMS."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pln.errors import ConfigError
from pln.eval.ranking import nms, predict_topk, rank_candidates, strategy1, strategy2
from pln.geometry import interval_iou, valid_mask


def upper(n: int) -> torch.Tensor:
    """Every cell with i <= j valid (the sparse mask for N <= 16)."""
    return torch.ones(n, n, dtype=torch.bool).triu()


def reference_nms(spans, scores, threshold, keep=5):
    """Plain greedy NMS of one query, candidate by candidate."""
    kept = []
    for k in range(len(scores)):
        if all(interval_iou(spans[k], spans[q]).item() <= threshold for q in kept):
            kept.append(k)
        if len(kept) == keep:
            break
    return kept


def test_strategy1_picks_stage_and_negative_index():
    out = SimpleNamespace(scores=[torch.zeros(1, 2, 2), torch.ones(1, 4, 4)], masks=[upper(2), upper(4)])
    s, m = strategy1(out, 0)
    assert s.shape == (1, 2, 2) and m.shape == (2, 2)
    s, m = strategy1(out, -1)
    assert s.shape == (1, 4, 4) and torch.equal(m, upper(4))
    with pytest.raises(ConfigError):
        strategy1(out, 2)
    with pytest.raises(ConfigError):
        strategy1(out, -3)


def test_strategy2_hand_averages():
    coarse = torch.tensor([[[0.2, 0.4], [0.0, 0.6]]])
    fine = torch.arange(16, dtype=torch.float32).view(1, 4, 4) / 16 * upper(4)
    out = SimpleNamespace(scores=[coarse, fine], masks=[upper(2), upper(4)])
    fused, mask = strategy2(out)
    expected = fine.clone()
    # coarse (0,0)=[0,d/2] <-> fine (0,1); (0,1)=[0,d] <-> (0,3); (1,1)=[d/2,d] <-> (2,3)
    expected[0, 0, 1] = (0.2 + 1 / 16) / 2
    expected[0, 0, 3] = (0.4 + 3 / 16) / 2
    expected[0, 2, 3] = (0.6 + 11 / 16) / 2
    torch.testing.assert_close(fused, expected)
    assert torch.equal(mask, upper(4))


def _reference_strategy2(scores, masks):
    """Per cell: average the scores of all stages with a valid cell of exactly the same span."""
    n_final = masks[-1].shape[0]
    out = torch.zeros_like(scores[-1])
    for a, b in masks[-1].nonzero().tolist():
        values = []
        for s, m in zip(scores, masks):
            r = n_final // m.shape[0]
            if a % r == 0 and (b + 1) % r == 0 and m[a // r, (b + 1) // r - 1]:
                values.append(s[:, a // r, (b + 1) // r - 1])
        out[:, a, b] = torch.stack(values).mean(0)
    return out


@pytest.mark.parametrize("clips", [(16, 32, 64), (32, 32), (16, 64)])
def test_strategy2_matches_reference_on_sparse_masks(clips):
    torch.manual_seed(1)
    masks = [valid_mask(n) for n in clips]
    scores = [torch.rand(2, n, n) * m for n, m in zip(clips, masks)]
    fused, mask = strategy2(SimpleNamespace(scores=scores, masks=masks))
    torch.testing.assert_close(fused, _reference_strategy2(scores, masks))
    assert torch.equal(mask, masks[-1])


def test_rank_candidates_sorted_with_official_ties():
    scores = torch.tensor([[[0.5, 0.75], [0.0, 0.5]]])
    spans, ranked = rank_candidates(scores, upper(2), torch.tensor([10.0]))
    assert ranked.tolist() == [[0.75, 0.5, 0.5]]
    # the tie 0.5 / 0.5: an ascending stable sort reversed puts (1, 1) before (0, 0)
    assert spans[0].tolist() == [[0.0, 10.0], [5.0, 10.0], [0.0, 5.0]]
    assert spans.dtype == torch.float64


def test_rank_candidates_ties_follow_reversed_row_major_order_on_a_large_map():
    scores = torch.full((1, 64, 64), 0.5) * upper(64)
    scores[0, 3, 10] = 0.75
    spans, ranked = rank_candidates(scores, upper(64), torch.tensor([64.0]))
    rows, cols = upper(64).nonzero(as_tuple=True)
    expected = torch.stack([rows, cols + 1], dim=1).float()  # cell (i, j) spans [i, j + 1] here
    special = ((rows == 3) & (cols == 10)).nonzero().item()
    order = [special] + [k for k in reversed(range(len(rows))) if k != special]
    assert ranked[0, 0].item() == 0.75
    assert torch.equal(spans[0], expected[order])


def test_rank_candidates_skips_invalid_cells():
    mask = torch.tensor([[True, False], [False, True]])
    scores = torch.tensor([[[0.1, 0.99], [0.0, 0.2]]])
    spans, ranked = rank_candidates(scores, mask, torch.tensor([2.0]))
    assert ranked.tolist() == [[pytest.approx(0.2), pytest.approx(0.1)]]
    assert spans[0].tolist() == [[1.0, 2.0], [0.0, 1.0]]


def test_nms_threshold_edge_is_kept():
    # IoU([0,3],[1,4]) = 2/4 = 0.5 exactly: kept at threshold 0.5, suppressed at 0.49
    spans = torch.tensor([[[0.0, 3.0], [1.0, 4.0], [0.5, 3.0]]])
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    top, sc, valid = nms(spans, scores, threshold=0.5, keep=5)
    assert valid.tolist() == [[True, True, False, False, False]]
    assert top[0, :2].tolist() == [[0.0, 3.0], [1.0, 4.0]]
    assert sc[0, :2].tolist() == [pytest.approx(0.9), pytest.approx(0.8)]
    assert top[0, 2:].abs().sum() == 0 and sc[0, 2:].abs().sum() == 0
    top, _, valid = nms(spans, scores, threshold=0.49, keep=5)
    assert valid.tolist() == [[True, False, False, False, False]]


def test_nms_fewer_than_keep_and_batch_independence():
    spans = torch.tensor([
        [[0.0, 1.0], [2.0, 3.0], [0.0, 1.0], [4.0, 5.0]],
        [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]],
    ])
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.7, 0.6]])
    top, _, valid = nms(spans, scores, threshold=0.4, keep=5)
    assert valid.sum(1).tolist() == [3, 4]
    assert top[0, :3].tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    top, _, valid = nms(spans, scores, threshold=0.4, keep=2)
    assert valid.tolist() == [[True, True], [True, True]]
    assert top[1].tolist() == [[0.0, 1.0], [1.0, 2.0]]


def test_nms_with_score_ties_follows_rank_order():
    # equal scores: the candidate ranked first (the later cell) wins and suppresses its twin
    scores = torch.tensor([[[0.7, 0.7], [0.0, 0.7]]])
    spans, ranked = rank_candidates(scores, upper(2), torch.tensor([4.0]))
    top, _, valid = nms(spans, ranked, threshold=0.4, keep=5)
    # ranked: (1,1)=[2,4], (0,1)=[0,4], (0,0)=[0,2]; [0,4] overlaps [2,4] with IoU 0.5 > 0.4
    assert top[0, valid[0]].tolist() == [[2.0, 4.0], [0.0, 2.0]]


@pytest.mark.parametrize("keep", [1, 5, 50])
def test_nms_matches_reference_loop_on_random_inputs(keep):
    gen = torch.Generator().manual_seed(0)
    b, k = 6, 40
    starts = torch.rand(b, k, generator=gen) * 8
    lengths = torch.rand(b, k, generator=gen) * 4 + 0.1
    spans = torch.stack([starts, starts + lengths], dim=-1).double()
    scores = torch.rand(b, k, generator=gen).round(decimals=1)  # many ties
    scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
    spans = spans.gather(1, order[..., None].expand(-1, -1, 2))
    for threshold in (0.1, 0.3, 0.5):
        top, sc, valid = nms(spans, scores, threshold, keep=keep)
        assert top.shape == (b, keep, 2) and sc.shape == valid.shape == (b, keep)
        for q in range(b):
            ref = reference_nms(spans[q], scores[q], threshold, keep)
            assert valid[q].sum().item() == len(ref) and valid[q, : len(ref)].all()
            assert (top[q, len(ref):] == 0).all() and (sc[q, len(ref):] == 0).all()
            torch.testing.assert_close(top[q, : len(ref)], spans[q, ref])
            torch.testing.assert_close(sc[q, : len(ref)], scores[q, ref])


def test_predict_topk_end_to_end():
    scores = torch.zeros(1, 4, 4)
    scores[0, 1, 2] = 0.9  # [2, 6]
    scores[0, 1, 3] = 0.8  # [2, 8]: IoU 4/6 with [2, 6] -> suppressed at 0.5
    scores[0, 0, 0] = 0.7  # [0, 2]
    out = SimpleNamespace(scores=[scores], masks=[upper(4)])
    top, sc, valid = predict_topk(out, torch.tensor([8.0]), strategy="1", nms_threshold=0.5, keep=5)
    assert top.shape == (1, 5, 2) and valid.all()
    assert top[0, :2].tolist() == [[2.0, 6.0], [0.0, 2.0]]
    assert sc[0, 0].item() == pytest.approx(0.9)
    with pytest.raises(ConfigError):
        predict_topk(out, torch.tensor([8.0]), strategy="3")
