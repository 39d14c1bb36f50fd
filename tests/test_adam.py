"""pln.engine.adam.CpuAdam against torch.optim.Adam: the same parameters bit for bit, state dicts
that load into each other, and no import of torch's compiler stack."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pln.config import PlateauConfig, TrainConfig
from pln.engine.adam import CpuAdam
from pln.engine.recipe import backward_step, make_optimizer, set_lr
from pln.model import PLN
from test_model_pln import tiny_batch, tiny_cfg


def _loss(model: PLN) -> torch.Tensor:
    out = model(*tiny_batch(model.cfg))
    return sum((s[:, m] - 0.7).pow(2).mean() for s, m in zip(out.scores, out.masks))


def _train(model: PLN, optimizer, steps: int, lrs: list[float] | None = None) -> None:
    for t in range(steps):
        if lrs is not None:
            set_lr(optimizer, lrs[t])
        backward_step(model, optimizer, _loss(model), grad_clip_norm=10.0)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_cpu_adam_equals_torch_adam_bit_for_bit(weight_decay):
    torch.manual_seed(0)
    model = PLN(tiny_cfg([8, 16], num_units=32))
    twin = copy.deepcopy(model)
    ours = CpuAdam(model.parameters(), lr=3e-3, weight_decay=weight_decay)
    theirs = torch.optim.Adam(twin.parameters(), lr=3e-3, weight_decay=weight_decay)
    lrs = [3e-3 * (1 + t % 3) for t in range(12)]  # the rate changed between steps, as a schedule does
    _train(model, ours, 12, lrs)
    _train(twin, theirs, 12, lrs)
    assert not _same(model, PLN(tiny_cfg([8, 16], num_units=32)))  # it trained
    assert _same(model, twin)


def test_state_dicts_load_into_each_other_and_continue_identically():
    torch.manual_seed(1)
    model = PLN(tiny_cfg([8], num_units=32))
    ours = CpuAdam(model.parameters(), lr=1e-2)
    _train(model, ours, 5)
    # CpuAdam's state -> torch's Adam, and torch's -> a fresh CpuAdam, each on a copy of the model.
    twin, other = copy.deepcopy(model), copy.deepcopy(model)
    theirs = torch.optim.Adam(twin.parameters(), lr=0.0)
    theirs.load_state_dict(ours.state_dict())
    assert theirs.state_dict()["param_groups"][0]["lr"] == 1e-2
    back = CpuAdam(other.parameters(), lr=0.0)
    back.load_state_dict(theirs.state_dict())
    _train(model, ours, 4)
    _train(twin, theirs, 4)
    _train(other, back, 4)
    assert _same(model, twin) and _same(model, other)
    assert ours.state_dict()["state"][0]["step"].item() == 9.0


def test_a_state_of_another_model_is_refused():
    model = PLN(tiny_cfg([8], num_units=32))
    state = CpuAdam(list(model.parameters())[:3], lr=1e-3).state_dict()
    with pytest.raises(ValueError, match="parameters"):
        CpuAdam(model.parameters(), lr=1e-3).load_state_dict(state)


def test_make_optimizer_picks_cpu_adam_on_the_cpu_without_a_plateau_schedule():
    model = PLN(tiny_cfg([8], num_units=32))
    assert isinstance(make_optimizer(model, TrainConfig()), CpuAdam)
    assert isinstance(make_optimizer(model, TrainConfig(lr_plateau=PlateauConfig())), torch.optim.Adam)


def test_training_on_the_cpu_never_imports_torch_dynamo():
    code = (
        "import sys, torch\n"
        "from pln.config import TrainConfig\n"
        "from pln.engine.recipe import backward_step, make_optimizer\n"
        "from pln.model import PLN\n"
        "from test_model_pln import tiny_batch, tiny_cfg\n"
        "model = PLN(tiny_cfg([8, 16], num_units=32))\n"
        "opt = make_optimizer(model, TrainConfig())\n"
        "for _ in range(2):\n"
        "    out = model(*tiny_batch(model.cfg))\n"
        "    backward_step(model, opt, sum(s[:, m].sum() for s, m in zip(out.scores, out.masks)), 10.0)\n"
        "opt.state_dict()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent,
                         check=True)
    assert out.stdout.strip() == "False"
