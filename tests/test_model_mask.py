"""The sparse candidate mask and the coarse-to-fine cell alignment."""

import pytest
import torch

from pln.model.mask import aligned_cells, num_valid, valid_cells, valid_mask

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
    rows, cols = aligned_cells(n, r * n)
    ci, cj = valid_cells(n)
    assert len(rows) == num_valid(n)
    assert valid_mask(r * n)[rows, cols].all()
    # same span in units of the fine clip: [r*i, r*(j+1))
    assert torch.equal(rows, r * ci) and torch.equal(cols + 1, r * (cj + 1))


def test_aligned_cells_hand():
    rows, cols = aligned_cells(2, 4)
    # valid cells of N=2 in row-major order: (0,0), (0,1), (1,1)
    assert rows.tolist() == [0, 0, 2] and cols.tolist() == [1, 3, 3]
