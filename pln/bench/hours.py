"""Device-hours of the paper plan's training runs at measured training rates."""

from __future__ import annotations

from pln.config import config_from_dict
from pln.data.synthetic import SHAPES


def bench_config_for(family: str, stages: int) -> str:
    """The measured configuration that stands for a run of the paper plan (same dataset shape)."""
    if family == "tacos":
        return "2dtan-tacos-128" if stages == 1 else "pln-tacos-32-128"
    return "pln-activitynet-16-64" if family == "activitynet" else "pln-charades-16-64"


def paper_gpu_hours(queries_per_s: dict[str, float], overlay: str = "config/paper.yaml") -> tuple[float, int]:
    """(device-hours, training runs) of every training run of ``overlay``, at the given rates
    (queries/s per configuration of :data:`pln.bench.configs.CONFIGS`).

    Each run is charged its real dataset's train queries (:data:`pln.data.synthetic.SHAPES`) x
    ``train.max_epochs`` at the training rate of the configuration of the same dataset and stage
    count (validation and test passes excluded).
    """
    from pln.plan.loading import load_snakemake_config
    from pln.plan.plan import Plan

    plan = Plan(load_snakemake_config([overlay]))
    hours, runs = 0.0, 0
    used = set(plan.used_models())
    for run in plan.all_runs():
        if run.kind != "train" or run.model not in used:
            continue
        cfg = config_from_dict(plan.run_configs[plan.config_name(run)])
        rate = queries_per_s[bench_config_for(cfg.data.family, cfg.model.num_stages)]
        hours += SHAPES[cfg.data.family].queries["train"] * cfg.train.max_epochs / rate / 3600
        runs += 1
    return hours, runs
