# Shared set-up: the experiment plan of this config and the helpers the rules' inputs call.

import os

from pln.engine.run_dir import RunDir
from pln.plan.jobs import pln_command, run_config_text, setting_mark_path
from pln.plan.loading import load_snakemake_config
from pln.plan.outputs import STATS_FILES
from pln.plan.plan import Plan
from pln.plan.run_config import real_data_inputs
from pln.report.claims import claims_inputs, claims_spec
from pln.report.settings import settings_path, settings_spec, write_settings

PLAN = Plan(config)
SETTINGS = settings_path(PLAN)
CLAIMS_SPEC = claims_spec(PLAN) if PLAN.claims_outputs() else {}
PLN = pln_command(config.get("pln_command"))
RUNS = PLAN.runs_root


# Tables and figures live at fixed paths whatever the setting, and every table and figure job
# takes the setting marker as an input. The marker is the output of rule setting_mark, whose
# params hold the setting: switching settings changes them, so Snakemake reruns that job (its
# "params" rerun trigger) and with it every table and figure; nothing else does. Parsing
# writes nothing: `snakemake -n` leaves the tree as it was.
SETTING_MARK = setting_mark_path(PLAN.tables_dir)

# Overlay entries (--configfile) must name datasets, models, tables and figures of config.yaml.
load_snakemake_config(
    [os.path.relpath(p) for p in workflow.overwrite_configfiles],
    os.path.join(workflow.basedir, "config.yaml"),
)


wildcard_constraints:
    model="[A-Za-z0-9][A-Za-z0-9.-]*",
    seed="[0-9]+",
    dataset="[A-Za-z0-9][A-Za-z0-9.-]*",
    name="[A-Za-z0-9][A-Za-z0-9.-]*",
    table="table[1-7]",


localrules:
    all,
    setting_mark,
    all_tables,
    all_figures,
    training_inputs,
    run_config,
    stats,
    prior,
    table,
    figure,
    fig8,
    summary,
    settings,
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
