"""Strategy keys: the names of what a run reports (``"stage1"``, ..., ``"stageS"``,
``"strategy2"``) and the one rule that picks the key a command reports by default.

``test_metrics.json``'s ``"metrics"`` and ``"default"``, ``pln evaluate``, ``pln predict``, the
validation selection of ``pln train`` and the prior baseline all name strategies through here.
"""

from __future__ import annotations

from pln.config import ExperimentConfig
from pln.errors import ConfigError

STRATEGY2 = "strategy2"


def stage_key(t: int) -> str:
    """``"stage{t + 1}"``: the key of Strategy 1 at stage ``t`` (0-based), also the name of that
    stage's score maps in ``score_maps.npz``."""
    return f"stage{t + 1}"


def strategy_keys(num_stages: int) -> list[str]:
    """``["stage1", ..., "stageS", "strategy2"]`` (Strategy 2 only with more than one stage)."""
    keys = [stage_key(t) for t in range(num_stages)]
    return keys + ([STRATEGY2] if num_stages > 1 else [])


def select_key(cfg: ExperimentConfig, strategy: str | None = None, stage: int | None = None) -> str:
    """The one strategy key to report: the rule shared by `pln train` (``test_metrics.json``'s
    ``"default"``), `pln evaluate` and `pln predict`.

    ``strategy`` and ``stage`` (1-based) are a command's options; what they leave unset comes from
    the run's ``eval.strategy`` and ``eval.stage`` (0-based, negative counts from the last):

    - Strategy 2 -> ``"strategy2"``; a one-stage model has nothing to fuse (Strategy 2 of one stage
      is that stage's map), so it gets ``"stage1"``;
    - Strategy 1 -> ``"stage{t}"``, ``t = stage`` or else the stage ``eval.stage`` names.
    """
    num_stages = cfg.model.num_stages
    if stage is not None and strategy == "2":
        raise ConfigError("--stage goes with Strategy 1; Strategy 2 fuses every stage")
    chosen = strategy or ("1" if stage is not None else cfg.eval.strategy)
    if chosen == "2":
        return STRATEGY2 if num_stages > 1 else stage_key(0)
    if chosen != "1":
        raise ConfigError(f"eval.strategy must be '1' or '2', got {chosen!r}")
    if stage is None:
        if not -num_stages <= cfg.eval.stage < num_stages:
            raise ConfigError(f"eval.stage={cfg.eval.stage} is not a stage of a {num_stages}-stage model")
        return stage_key(cfg.eval.stage % num_stages)
    if not 1 <= stage <= num_stages:
        raise ConfigError(f"--stage {stage}: the model has stages 1..{num_stages}")
    return stage_key(stage - 1)


def parse_key(key: str) -> tuple[str, int]:
    """``"stage2"`` -> ``("1", 1)`` (strategy, 0-based stage); ``"strategy2"`` -> ``("2", -1)``."""
    if key == STRATEGY2:
        return "2", -1
    return "1", int(key.removeprefix("stage")) - 1
