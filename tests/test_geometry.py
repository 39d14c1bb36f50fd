"""The geometry of the 2D map against hand values: the sparse candidate mask, the coarse-to-fine
cell alignment, cell spans, the IoU of spans and the IoU maps."""

import numpy as np
import pytest
import torch

from pln.errors import PLNError
from pln.geometry import (aligned_cells, cell_ious, cell_span, cell_spans, hull_iou, interval_iou, iou_map,
                          num_valid, span_to_cell, valid_mask)

# 2D-TAN's proposal layer: scale 0 has 16 layers of stride 1, each later scale 8 layers whose
# stride doubles (NUM_SCALE_LAYERS of its configs).
SCALE_LAYERS = {16: [16], 32: [16, 8], 64: [16, 8, 8], 128: [16, 8, 8, 8]}


def scale_layer_mask(n: int) -> torch.Tensor:
    """The valid cells as 2D-TAN's scale-layer construction enumerates them (explicit loops)."""
    mask = torch.zeros(n, n, dtype=torch.bool)
    offset, stride = 0, 1
    for scale, layers in enumerate(SCALE_LAYERS[n]):
        for layer in range(layers):
            if scale > 0 and layer == 0:
                stride *= 2
            for start in range(0, n, stride):
                end = start + offset + layer * stride
                if end < n:
                    mask[start, end] = True
        offset += stride * (layers + 1)
    return mask


@pytest.mark.parametrize("n, count", [(16, 136), (32, 428), (64, 1104), (128, 2548)])
def test_valid_counts(n, count):
    assert num_valid(n) == count
    assert valid_mask(n).dtype == torch.bool and valid_mask(n).shape == (n, n)


@pytest.mark.parametrize("n", [16, 32, 64, 128])
def test_matches_scale_layer_construction(n):
    assert torch.equal(valid_mask(n), scale_layer_mask(n))


def test_hand_cells():
    m = valid_mask(64)
    assert m[0, 15] and m[48, 63]  # length 16, dense
    assert not m[0, 16]  # length 17
    assert m[0, 17] and not m[1, 18]  # length 18 = 2 * 9 needs an even start
    assert m[4, 39] and not m[2, 37]  # length 36 = 4 * 9 needs a start divisible by 4
    assert not m[0, 33]  # length 34 = 2 * 17
    assert not m[5, 4]  # below the diagonal
    assert m[0, 63]  # length 64 = 4 * 16


@pytest.mark.parametrize("n, r", [(16, 2), (32, 2), (64, 2), (16, 4), (32, 4), (8, 2)])
def test_aligned_cells_are_valid_and_same_span(n, r):
    rows, cols, fine_rows, fine_cols = aligned_cells(valid_mask(n), r * n)
    assert len(rows) == num_valid(n)
    assert valid_mask(n)[rows, cols].all() and valid_mask(r * n)[fine_rows, fine_cols].all()
    duration = torch.tensor(37.3)
    assert torch.equal(cell_span(rows, cols, n, duration), cell_span(fine_rows, fine_cols, r * n, duration))


def test_aligned_cells_hand():
    rows, cols, fine_rows, fine_cols = aligned_cells(valid_mask(2), 4)
    # valid cells of N=2 in row-major order: (0,0), (0,1), (1,1)
    assert rows.tolist() == [0, 0, 1] and cols.tolist() == [0, 1, 1]
    assert fine_rows.tolist() == [0, 0, 2] and fine_cols.tolist() == [1, 3, 3]
    with pytest.raises(PLNError):
        aligned_cells(valid_mask(3), 4)


# ----------------------------------------------------------------------------------------------
# Spans


def test_cell_spans_hand_values():
    spans = cell_spans(4, torch.tensor([8.0, 4.0]))
    assert spans.shape == (2, 4, 4, 2) and spans.dtype == torch.float64
    assert spans[0, 1, 2].tolist() == [2.0, 6.0]
    assert spans[0, 0, 3].tolist() == [0.0, 8.0]
    assert spans[1, 3, 3].tolist() == [3.0, 4.0]
    # divided first, then multiplied, as the official evaluation: cell (1, 1) of 3 clips of a
    # 2.9 s video starts at 1 / 3 * 2.9 = 0.9666666666666666, where 1 * 2.9 / 3 = 0.9666666666666667
    span = cell_span(torch.tensor(1), torch.tensor(1), 3, torch.tensor(2.9, dtype=torch.float64))
    assert span.tolist() == [0.9666666666666666, 1.9333333333333331]


def test_span_to_cell():
    assert span_to_cell(np.array([10.0, 30.0]), 100.0, 10) == (1, 2)
    assert span_to_cell(np.array([0.0, 100.0]), 100.0, 16) == (0, 15)
    assert span_to_cell(np.array([99.0, 100.0]), 100.0, 4) == (3, 3)
    assert span_to_cell(np.array([-5.0, 3.0]), 100.0, 4) == (0, 0)  # clipped to a valid cell


# ----------------------------------------------------------------------------------------------
# IoU of spans


def test_interval_iou_hand_values():
    a = torch.tensor([[0.0, 4.0], [0.0, 4.0], [0.0, 1.0], [2.0, 2.0]])
    b = torch.tensor([[2.0, 6.0], [0.0, 4.0], [3.0, 5.0], [2.0, 2.0]])
    torch.testing.assert_close(interval_iou(a, b), torch.tensor([1 / 3, 1.0, 0.0, 0.0]))
    assert interval_iou(a, b).dtype == torch.float32  # the inputs' dtype
    # broadcasting: [2, 1, 2] x [1, 3, 2] -> [2, 3]
    assert interval_iou(a[:2, None], b[None, :3]).shape == (2, 3)


def test_hull_iou_hand_values():
    a = torch.tensor([[0.0, 4.0], [0.0, 4.0], [0.0, 1.0], [2.0, 2.0]])
    b = torch.tensor([[2.0, 6.0], [0.0, 4.0], [3.0, 5.0], [2.0, 2.0]])
    iou = hull_iou(a, b)
    assert iou.dtype == torch.float64
    assert iou.tolist() == [2 / 6, 1.0, 0.0, 0.0]  # inter / (max(end) - min(start))


# ----------------------------------------------------------------------------------------------
# IoU maps: duration 8 s, N = 4: cell (i, j) spans [2i, 2j + 2]; ground truth [2, 6]
EXPECTED_IOUS = torch.tensor([
    [0.0, 1 / 3, 2 / 3, 0.5],
    [0.0, 0.5, 1.0, 2 / 3],
    [0.0, 0.0, 0.5, 1 / 3],
    [0.0, 0.0, 0.0, 0.0],
])


def test_iou_map_by_hand() -> None:
    iou = iou_map(2.0, 6.0, 8.0, 4)
    assert iou.dtype == np.float32 and iou.shape == (4, 4)
    np.testing.assert_allclose(iou, EXPECTED_IOUS.numpy(), rtol=1e-7)
    # the moment is not clipped to the video: cell (1, 3) = [2, 8] against [2, 11] is 6 / 9
    assert iou_map(2.0, 11.0, 8.0, 4)[1, 3] == pytest.approx(2 / 3)


def test_cell_ious_hand_values():
    ious = cell_ious(torch.tensor([[2.0, 6.0]]), torch.tensor([8.0]), 4)
    assert ious.shape == (1, 4, 4) and ious.dtype == torch.float32
    torch.testing.assert_close(ious[0], EXPECTED_IOUS)


def test_cell_ious_batch_and_gt_clipping():
    # second query's end is past the video: clipped to [2, 8] -> cell (1, 3) is an exact match
    gt = torch.tensor([[2.0, 6.0], [2.0, 11.0]])
    ious = cell_ious(gt, torch.tensor([8.0, 8.0]), 4)
    torch.testing.assert_close(ious[0], EXPECTED_IOUS)
    assert ious[1, 1, 3].item() == pytest.approx(1.0)
    assert ious[1, 0, 3].item() == pytest.approx(0.75)
    assert ious[1].tril(-1).abs().sum().item() == 0.0
