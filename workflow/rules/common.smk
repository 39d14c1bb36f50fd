# Shared set-up: the experiment plan of this config and the helpers the rules' inputs call.

import os

from pln.report.claims import claims_inputs, claims_spec
from pln.report.experiments import (
    PRIOR_FILES,
    STATS_FILES,
    TRAIN_FILES,
    Plan,
    pln_command,
    real_data_inputs,
    write_run_config,
)

PLAN = Plan(config)
CLAIMS_SPEC = claims_spec(PLAN) if PLAN.claims_outputs() else {}
PLN = pln_command(config.get("pln_command"))
RUNS = PLAN.runs_root


def mark_setting(path, setting):
    """Record which setting the shared tables and figures belong to; return the marker's path.

    Tables and figures live at fixed paths whatever the setting, and every table and figure job
    takes this marker as an input. The marker is rewritten (a new mtime) only when the setting
    differs from the recorded one, so switching settings rebuilds them, and nothing else does.
    """
    current = open(path).read().strip() if os.path.exists(path) else None
    if current != setting:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w") as fh:
            fh.write(f"{setting}\n")
    return path


SETTING_MARK = mark_setting(os.path.join(os.path.dirname(PLAN.tables_dir) or ".", ".setting"), PLAN.setting)


wildcard_constraints:
    model="[A-Za-z0-9][A-Za-z0-9.-]*",
    seed="[0-9]+",
    dataset="[A-Za-z0-9][A-Za-z0-9.-]*",
    name="[A-Za-z0-9][A-Za-z0-9.-]*",
    table="table[1-7]",


localrules:
    all,
    all_tables,
    all_figures,
    run_config,
    stats,
    prior,
    table,
    figure,
    fig8,
    summary,
    claims,
    resolving_power,


def train_inputs(wildcards):
    """A trained run needs its config, its data files (real data) and its dataset prepared."""
    name = f"{wildcards.model}-seed{wildcards.seed}"
    dataset = PLAN.models[wildcards.model]["dataset"]
    return {
        "config": PLAN.config_path(name),
        "prepared": f"{PLAN.stats_dir(dataset)}/table1.csv",
        "data": real_data_inputs(PLAN.run_configs[name]),
    }


def prior_inputs(wildcards):
    name = f"{wildcards.model}-prior"
    dataset = PLAN.models[wildcards.model]["dataset"]
    return {
        "config": PLAN.config_path(name),
        "prepared": f"{PLAN.stats_dir(dataset)}/table1.csv",
        "data": real_data_inputs(PLAN.run_configs[name]),
    }


def stats_inputs(wildcards):
    """Statistics read the annotations only (and make the synthetic dataset)."""
    name = f"stats-{wildcards.dataset}"
    return {"config": PLAN.config_path(name), "data": real_data_inputs(PLAN.run_configs[name], annotations_only=True)}


def train_resource(key):
    """A training resource of the model being trained (resources.train, then the model's own)."""
    return lambda wildcards: PLAN.resources(wildcards.model)[key]
