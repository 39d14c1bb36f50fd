"""The training recipe (pln.engine.recipe): gradient-norm clipping, the plateau schedule on the
validation loss, the validation loss itself, and the config keys that set them."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from pln.config import LossConfig, PlateauConfig, TrainConfig, config_from_dict
from pln.data.dataset import make_loader
from pln.engine.recipe import ValidationLoss, backward_step, current_lr, make_optimizer, make_plateau
from pln.engine.splits import TRAINING, open_split
from pln.errors import ConfigError
from pln.loss import joint_loss
from pln.model import PLN
from test_model_pln import tiny_batch, tiny_cfg


def _loss(model: PLN, scale: float) -> torch.Tensor:
    out = model(*tiny_batch(model.cfg))
    return scale * sum((s[:, m] - 0.7).pow(2).sum() for s, m in zip(out.scores, out.masks))


def _grad_norm(model: torch.nn.Module) -> float:
    return math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in model.parameters() if p.grad is not None))


@pytest.mark.parametrize("scale", [1e4, 1e-3], ids=["large", "small"])
def test_backward_step_clips_the_gradient_norm_at_10(scale):
    torch.manual_seed(0)
    model = PLN(tiny_cfg([8, 16], num_units=32))
    reference = copy.deepcopy(model)
    lr = 0.05
    # Reference: plain gradients, rescaled by hand to norm min(norm, 10), then an SGD step.
    _loss(reference, scale).backward()
    norm = _grad_norm(reference)
    factor = min(1.0, 10.0 / norm)
    expected = {n: p.detach() - lr * factor * p.grad for n, p in reference.named_parameters()}

    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    backward_step(model, optimizer, _loss(model, scale), grad_clip_norm=10.0)
    assert _grad_norm(model) == pytest.approx(min(norm, 10.0), rel=1e-5)
    if scale > 1:
        assert norm > 100  # the case really clips
    else:
        assert norm < 10  # the case leaves the gradients as they are
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-7, msg=name)


def test_backward_step_without_clipping_keeps_the_norm():
    torch.manual_seed(0)
    model = PLN(tiny_cfg([8, 16], num_units=32))
    reference = copy.deepcopy(model)
    _loss(reference, 1e4).backward()
    backward_step(model, torch.optim.SGD(model.parameters(), lr=0.0), _loss(model, 1e4), grad_clip_norm=None)
    assert _grad_norm(model) == pytest.approx(_grad_norm(reference), rel=1e-6)
    assert _grad_norm(model) > 10


def test_plateau_multiplies_lr_by_factor_after_patience_plus_one_bad_validations():
    model = PLN(tiny_cfg([8], num_units=32))
    optimizer = make_optimizer(model, TrainConfig(lr=1e-4, lr_plateau=PlateauConfig(factor=0.8, patience=3)))
    assert isinstance(optimizer, torch.optim.Adam)  # the plateau schedule needs torch's Optimizer
    plateau = make_plateau(optimizer, PlateauConfig(factor=0.8, patience=3))
    lrs = []
    for loss in [1.0, 1.0, 1.2, 1.0, 1.1]:  # the best, then 4 (= patience + 1) without improvement
        plateau.step(loss)
        lrs.append(current_lr(optimizer))
    assert lrs[:4] == [1e-4] * 4
    assert lrs[4] == pytest.approx(0.8e-4)
    # An improvement resets the count: 3 more bad ones keep the rate, the 4th cuts it again.
    plateau.step(0.5)
    for _ in range(3):
        plateau.step(0.6)
    assert current_lr(optimizer) == pytest.approx(0.8e-4)
    plateau.step(0.6)
    assert current_lr(optimizer) == pytest.approx(0.64e-4)


def test_plateau_state_round_trips():
    model = PLN(tiny_cfg([8], num_units=32))
    optimizer = make_optimizer(model, TrainConfig(lr_plateau=PlateauConfig(patience=1)))
    plateau = make_plateau(optimizer, PlateauConfig(patience=1))
    for loss in [1.0, 2.0]:
        plateau.step(loss)
    state = plateau.state_dict()
    fresh = make_plateau(make_optimizer(model, TrainConfig(lr_plateau=PlateauConfig(patience=1))),
                         PlateauConfig(patience=1))
    fresh.load_state_dict(state)
    assert fresh.num_bad_epochs == 1 and fresh.best == 1.0
    assert make_plateau(optimizer, None) is None


def test_validation_loss_equals_the_training_loss_of_the_same_batches(tmp_path):
    cfg = config_from_dict({
        "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.05, "feature_dim": 16},
                 "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
        "model": {"feature_dim": 16, "num_units": 32, "hidden": 8, "word_dim": 50, "lstm_layers": 1,
                  "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 8},
    })
    split = open_split(cfg, "val", TRAINING, torch.device("cpu"))  # items carry the IoU maps the training uses
    dataset = split.dataset
    torch.manual_seed(0)
    model = PLN(cfg.model).eval()
    lambdas = cfg.loss.resolved_lambdas(2)
    meter = ValidationLoss(cfg.loss, lambdas)
    feed = split.feed
    weighted, count = 0.0, 0
    with torch.no_grad():
        for batch in make_loader(dataset, 8, shuffle=False):
            out = model(feed.units(batch), batch["words"], batch["lengths"])
            meter(out, batch)
            total, _ = joint_loss(out, batch["ious"], cfg.loss, lambdas)
            weighted += float(total) * len(batch["lengths"])
            count += len(batch["lengths"])
    assert meter.count == count == len(dataset)
    assert meter.mean() == pytest.approx(weighted / count, rel=1e-5)
    assert math.isnan(ValidationLoss(LossConfig(), [1.0]).mean())


def test_recipe_keys_are_typed_and_validated():
    cfg = config_from_dict({"train": {"lr_plateau": {}}})
    assert cfg.train.lr_plateau == PlateauConfig(factor=0.8, patience=20)
    assert cfg.train.grad_clip_norm == 10.0 and cfg.train.weight_decay == 0.0
    assert config_from_dict({}).train.lr_plateau is None
    assert config_from_dict({"train": {"grad_clip_norm": None}}).train.grad_clip_norm is None
    bad = [({"grad_clip_norm": 0}, r"train\.grad_clip_norm must be > 0"),
           ({"lr_plateau": {"factor": 1.0}}, r"train\.lr_plateau\.factor must be in \(0, 1\)"),
           ({"lr_plateau": {"patience": -1}}, r"train\.lr_plateau\.patience must be in \[0, 10000\]"),
           ({"lr_plateau": {"cooldown": 1}}, r"unknown config key 'train\.lr_plateau\.cooldown'"),
           ({"weight_decay": 1.5}, r"train\.weight_decay must be in \[0, 1\)")]
    for train, message in bad:
        with pytest.raises(ConfigError, match=message):
            config_from_dict({"train": train})


def test_cosine_schedule_values_by_hand():
    from pln.config import CosineConfig
    from pln.engine.recipe import scheduled_lr

    cfg = TrainConfig(lr=1.0, max_epochs=4, lr_cosine=CosineConfig(warmup_epochs=1))
    # 10 steps per epoch: warm-up over steps 0..9, then cosine over the 30 steps 10..39
    assert scheduled_lr(cfg, 0, 10) == pytest.approx(0.1)
    assert scheduled_lr(cfg, 9, 10) == pytest.approx(1.0)
    assert scheduled_lr(cfg, 10, 10) == pytest.approx(1.0)
    assert scheduled_lr(cfg, 25, 10) == pytest.approx(0.5)
    assert scheduled_lr(cfg, 39, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 29 / 30)))
    floor = TrainConfig(lr=2.0, max_epochs=4, lr_cosine=CosineConfig(warmup_epochs=0, final_fraction=0.1))
    assert scheduled_lr(floor, 0, 10) == pytest.approx(2.0)
    assert scheduled_lr(floor, 20, 10) == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    assert scheduled_lr(TrainConfig(), 5, 10) is None


def test_cosine_keys_are_validated():
    with pytest.raises(ConfigError, match="choose one schedule"):
        config_from_dict({"train": {"lr_cosine": {}, "lr_plateau": {}}})
    with pytest.raises(ConfigError, match="final_fraction"):
        config_from_dict({"train": {"lr_cosine": {"final_fraction": 2}}})


def test_cosine_schedule_in_training(tmp_path):
    """Tiny run: 32 training queries in batches of 16 are 2 steps per epoch; with 3 epochs and one
    warm-up epoch the first steps of epochs 1, 2, 3 (global steps 0, 2, 4 of 6) get lr / 2, lr and
    lr (1 + cos(pi / 2)) / 2 = lr / 2, which epochs.csv records."""
    import pandas as pd

    from pln.engine.train import train
    from test_engine import tiny_config

    values = tiny_config(tmp_path, train__lr_plateau=None, train__lr_cosine={"warmup_epochs": 1})
    train(config_from_dict(values), tmp_path / "run")
    lrs = list(pd.read_csv(tmp_path / "run" / "epochs.csv")["lr"])
    assert lrs == pytest.approx([0.5e-3, 1e-3, 0.5e-3], rel=1e-12)


def test_weight_average_follows_the_formula_by_hand():
    """Horizon 4 steps: decay 0.75, the k-th update uses min(0.75, (1 + k) / (10 + k)), i.e.
    2/11, 3/12, ... until k = 26, where (1 + k) / (10 + k) = 27/36 = 0.75. A one-weight model
    whose weight is set to 1, 2, 3, ... before each update; the average restated in floats."""
    from pln.engine.recipe import WeightAverage

    model = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, horizon_steps=4.0)
    assert average.decay == 0.75
    expected = 0.0
    for k in range(1, 41):
        with torch.no_grad():
            model.weight.fill_(float(k))
        d = min(0.75, (1 + k) / (10 + k))
        assert average.step_decay() == pytest.approx(d, abs=0)
        expected = d * expected + (1 - d) * k
        average.update(model)
        assert average.model.weight.item() == pytest.approx(expected, rel=1e-14)
    assert average.step_decay() == 0.75
    assert not average.model.weight.requires_grad
    assert model.weight.item() == 40.0  # the trained model is left alone


def test_weight_average_copies_buffers_and_round_trips():
    from pln.engine.recipe import WeightAverage

    model = torch.nn.BatchNorm1d(3)
    average = WeightAverage(model, horizon_steps=10.0)
    with torch.no_grad():
        model.running_mean.fill_(5.0)
        model.weight.fill_(3.0)
    average.update(model)
    assert torch.equal(average.model.running_mean, torch.full((3,), 5.0))
    assert torch.allclose(average.model.weight, torch.full((3,), 1.0 + 2.0 * (1 - 2 / 11)))
    again = WeightAverage(torch.nn.BatchNorm1d(3), horizon_steps=10.0)
    again.load_state_dict(copy.deepcopy(average.state_dict()))
    assert again.updates == 1 and torch.equal(again.model.weight, average.model.weight)
    with pytest.raises(ValueError, match="at least one step"):
        WeightAverage(model, horizon_steps=0.5)


def test_ema_key_is_validated():
    assert config_from_dict({}).train.ema_epochs is None
    assert config_from_dict({"train": {"ema_epochs": 0.5}}).train.ema_epochs == 0.5
    with pytest.raises(ConfigError, match=r"train\.ema_epochs must be in \(0, 1000\]"):
        config_from_dict({"train": {"ema_epochs": 0}})


def test_weight_average_in_training_is_what_is_selected_and_resumed(tmp_path):
    """Tiny runs with train.ema_epochs. One epoch (so epoch 1 is the selected one): best.pt holds
    the average, not the raw weights, which last.pt keeps beside it. Two epochs: the average
    counts every step, and a run killed in epoch 2 resumes it to the same test metrics as the
    uninterrupted run."""
    import json

    from pln.engine.checkpoint import load_checkpoint
    from pln.engine.train import train
    from test_engine import _kill_and_resume, _train_steps, tiny_config

    one = tiny_config(tmp_path / "one", train__lr_plateau=None, train__ema_epochs=2, train__max_epochs=1)
    assert train(config_from_dict(one), tmp_path / "one" / "run")["run"]["selected_epoch"] == 1
    last = load_checkpoint(tmp_path / "one" / "run" / "checkpoints" / "last.pt")
    best = load_checkpoint(tmp_path / "one" / "run" / "checkpoints" / "best.pt")
    assert best["model"].keys() == last["average"]["model"].keys()
    for name, value in last["average"]["model"].items():
        assert torch.equal(best["model"][name], value)
    assert any(not torch.equal(last["model"][n], last["average"]["model"][n]) for n in last["model"])

    values = tiny_config(tmp_path, train__lr_plateau=None, train__ema_epochs=2, train__max_epochs=2)
    whole = tmp_path / "whole"
    result = train(config_from_dict(values), whole)
    assert load_checkpoint(whole / "checkpoints" / "last.pt")["average"]["updates"] == 2 * _train_steps(values)
    run = _kill_and_resume(values, tmp_path, _train_steps(values) + 1)
    assert json.loads((run / "test_metrics.json").read_text())["metrics"] == result["metrics"]


def test_weight_average_leaves_the_training_as_it_is(tmp_path):
    """With a constant rate (no plateau schedule, which would read the averaged model's val loss)
    train.ema_epochs changes what is validated and tested, not the steps: every epoch's training
    losses equal the run without it, to the last digit."""
    import pandas as pd

    from pln.engine.train import train
    from test_engine import tiny_config

    losses = {}
    for name, ema in (("raw", None), ("ema", 2)):
        values = tiny_config(tmp_path / name, train__lr_plateau=None, train__ema_epochs=ema, train__max_epochs=3)
        train(config_from_dict(values), tmp_path / name / "run")
        losses[name] = pd.read_csv(tmp_path / name / "run" / "epochs.csv").filter(regex="^(epoch|train_loss|loss_stage)")
    assert list(losses["raw"]["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(losses["raw"], losses["ema"])
