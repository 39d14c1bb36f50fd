"""Training objective: soft labels, stage and joint losses against hand values."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from pln.config import LossConfig
from pln.errors import PLNError
from pln.geometry import cell_ious
from pln.loss import joint_loss, soft_labels, stage_loss

def test_soft_labels_pln_mode():
    cfg = LossConfig(tau=0.5, label="pln")
    iou = torch.tensor([0.0, 0.3, 0.5, 0.75, 1.0])
    torch.testing.assert_close(soft_labels(iou, cfg), torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0]))


def test_soft_labels_tan_mode():
    cfg = LossConfig(label="tan", min_iou=0.3, max_iou=0.7)
    iou = torch.tensor([0.2, 0.3, 0.5, 0.7, 0.9])
    torch.testing.assert_close(soft_labels(iou, cfg), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))


def test_soft_labels_tan_bias():
    cfg = LossConfig(label="tan", min_iou=0.5, max_iou=1.0, bias=0.1)
    iou = torch.tensor([0.4, 0.5, 0.75, 1.0])
    torch.testing.assert_close(soft_labels(iou, cfg), torch.tensor([0.0, 0.0, 0.55, 1.0]))


def _bce(x: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_stage_loss_averages_valid_cells_only():
    mask = torch.tensor([[True, True], [False, True]])
    logits = torch.tensor([[[0.5, -1.0], [7.0, 2.0]], [[-0.3, 1.5], [-9.0, 0.0]]])
    labels = torch.tensor([[[0.0, 0.2], [1.0, 1.0]], [[0.5, 0.0], [1.0, 0.9]]])
    cells = [(0.5, 0.0), (-1.0, 0.2), (2.0, 1.0), (-0.3, 0.5), (1.5, 0.0), (0.0, 0.9)]
    expected = sum(_bce(x, y) for x, y in cells) / len(cells)
    assert stage_loss(logits, labels, mask).item() == pytest.approx(expected, rel=1e-6)
    # an invalid cell's logit or label has no influence
    logits[:, 1, 0] = -50.0
    labels[:, 1, 0] = 0.3
    assert stage_loss(logits, labels, mask).item() == pytest.approx(expected, rel=1e-6)


def test_stage_loss_empty_mask_is_refused():
    with pytest.raises(PLNError):
        stage_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.zeros(2, 2, dtype=torch.bool))


def _two_stage_output():
    torch.manual_seed(0)
    masks = [torch.ones(2, 2, dtype=torch.bool).triu(), torch.ones(4, 4, dtype=torch.bool).triu()]
    logits = [torch.randn(3, 2, 2, requires_grad=True), torch.randn(3, 4, 4, requires_grad=True)]
    gt = torch.tensor([[1.0, 5.0], [0.0, 2.0], [3.0, 8.0]])
    duration = torch.tensor([8.0, 8.0, 8.0])
    ious = [cell_ious(gt, duration, 2), cell_ious(gt, duration, 4)]
    return SimpleNamespace(logits=logits, masks=masks), ious


def test_joint_loss_weighting_and_gradients():
    cfg = LossConfig()
    out, ious = _two_stage_output()
    total, per_stage = joint_loss(out, ious, cfg, lambdas=[1.0, 1.5])
    l1 = stage_loss(out.logits[0], soft_labels(ious[0], cfg), out.masks[0])
    l2 = stage_loss(out.logits[1], soft_labels(ious[1], cfg), out.masks[1])
    assert [p.item() for p in per_stage] == pytest.approx([l1.item(), l2.item()])
    assert total.item() == pytest.approx(l1.item() + 1.5 * l2.item())
    total.backward()
    assert out.logits[0].grad is not None and out.logits[1].grad.abs().sum() > 0


def test_joint_loss_default_lambdas_and_mismatch():
    cfg = LossConfig()
    out, ious = _two_stage_output()
    total, per_stage = joint_loss(out, ious, cfg)  # paper's (1.0, 1.5) for two stages
    assert total.item() == pytest.approx(per_stage[0].item() + 1.5 * per_stage[1].item())
    with pytest.raises(PLNError):
        joint_loss(out, ious, cfg, lambdas=[1.0])
    with pytest.raises(PLNError):
        joint_loss(out, ious[:1], cfg)
