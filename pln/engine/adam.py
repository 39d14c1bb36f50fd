"""Adam on the CPU without torch's compiler stack: the update of ``torch.optim.Adam`` (its
single-tensor path, the one it takes for CPU tensors), written out op for op.

Why it exists. Every ``torch.optim.Optimizer`` imports ``torch._dynamo`` the first time one of its
methods runs (``add_param_group`` already does, from ``__init__``): 2-3 CPU s per process on a
2-core machine, paid by each of the demo's 72 training runs. This class does the same arithmetic
on the same state without that import. ``tests/test_recipe.py`` checks that its parameters equal
``torch.optim.Adam``'s bit for bit over many steps (with and without weight decay), that the
state dicts load into each other and continue identically, and that a process using it never
imports ``torch._dynamo``.

The update of step ``t`` (``beta1, beta2 = betas``; L2 weight decay added to the gradient, as
``torch.optim.Adam`` without ``decoupled_weight_decay``)::

    g   = grad + weight_decay * p
    m   = lerp(m, g, 1 - beta1)
    v   = beta2 * v + (1 - beta2) * g * g
    p  -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

What it does not do: AMSGrad, ``maximize``, complex parameters, several parameter groups, CUDA's
fused or foreach kernels, and schedulers that need a ``torch.optim.Optimizer`` (``ReduceLROnPlateau``).
:func:`pln.engine.recipe.make_optimizer` uses torch's Adam for those cases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class CpuAdam:
    """Adam over ``params`` (one parameter group) with ``torch.optim.Adam``'s arithmetic and
    ``state_dict`` layout; ``param_groups[0]["lr"]`` may be changed between steps."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.param_groups: list[dict[str, Any]] = [{
            "params": list(params), "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay,
            "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
            "differentiable": False, "fused": None, "decoupled_weight_decay": False,
        }]
        # Per parameter: the step count (a float32 scalar tensor, as torch keeps it on the CPU) and
        # the first and second moments, created at the parameter's first step.
        self.state: dict[torch.nn.Parameter, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop (or zero) every parameter's gradient."""
        for p in self.param_groups[0]["params"]:
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad.detach_()
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        group = self.param_groups[0]
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": torch.tensor(0.0, dtype=torch.float32),
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            grad = p.grad
            if weight_decay != 0:
                grad = grad.add(p, alpha=weight_decay)
            state["step"] += 1
            step = state["step"].item()
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step_size = lr / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict[str, Any]:
        """The state in ``torch.optim.Adam``'s layout: parameters by their index."""
        params = self.param_groups[0]["params"]
        index = {id(p): i for i, p in enumerate(params)}
        state = {index[id(p)]: {k: v.clone() for k, v in s.items()} for p, s in self.state.items()}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        group["params"] = list(range(len(params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state written by :meth:`state_dict` or by ``torch.optim.Adam`` over the same
        parameters (in the same order)."""
        groups = state_dict["param_groups"]
        params = self.param_groups[0]["params"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError(f"optimizer state has {len(groups)} parameter group(s) of "
                             f"{[len(g['params']) for g in groups]} parameters; this model has 1 group of {len(params)}")
        if groups[0].get("amsgrad") or groups[0].get("maximize"):
            raise ValueError("optimizer state is of Adam with amsgrad or maximize, which CpuAdam does not do")
        position = {i: k for k, i in enumerate(groups[0]["params"])}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[position[int(i)]]
            self.state[p] = {
                "step": torch.as_tensor(s["step"], dtype=torch.float32).detach().clone().cpu(),
                "exp_avg": s["exp_avg"].detach().to(p.device, p.dtype, copy=True),
                "exp_avg_sq": s["exp_avg_sq"].detach().to(p.device, p.dtype, copy=True),
            }
        for key in ("lr", "betas", "eps", "weight_decay"):
            self.param_groups[0][key] = groups[0][key]
