"""Put a trial's finished runs in their setting once the setting has adopted the trial's change, so
that a run of the setting does not train them again. A trial of ``benchmarks/recipe_check.py``
trains each run of its models under the changed config into ``runs/<setting>-<name>/<model>/seed<k>``;
after the change is written into the setting's overlay, those are the setting's own runs. For every
run the setting trains, the trial's folder of the same model and seed replaces
``runs/<setting>/<model>/seed<k>`` when its config equals the run config the workflow now writes
for it (the keys that leave results as they are aside: the test ``pln train`` makes before it
resumes a folder). A folder of the trial that is unfinished, being written, or made with another
config is left, and listed with the reason; a setting's run that already equals it is left too.

Run it after the trial's summary (``recipe_check.py`` reads the setting's earlier runs from the
folders this replaces), then ``snakemake --cores all all --configfile config/<setting>.yaml``,
which trains the setting's other runs; where it schedules the train job of a placed run (its run
config written later), ``pln train`` finds the run finished and leaves it as it is.

    python benchmarks/reuse_runs.py demo-plateau --from runs/demo-plateau-train5tacos
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from pln.bench.side_runs import add_setting_arguments, load_setting, place_run, side_run_dir
from pln.config import ExperimentConfig, config_from_dict
from pln.engine.run_dir import RunDir, run_config_differences
from pln.errors import ConfigError
from pln.engine.run_lock import RunLockedError
from pln.plan.plan import Plan

PLACED, ALREADY = "placed", "already in place"


def reuse(plan: Plan, source: Path) -> list[tuple[str, str]]:
    """For every trained run of ``plan``, ``(its folder, what happened)``: :data:`PLACED` (the run
    of ``source`` replaced it), :data:`ALREADY` (it holds an equal finished run), or why the
    run of ``source`` was left ("no run", "unfinished", "being written", "another config: ...",
    "unreadable: ..." for a damaged config file)."""
    outcomes = []
    for model in plan.trained_models():
        for run in plan.runs(model):
            name = plan.config_name(run)
            cfg = config_from_dict(plan.run_configs[name], plan.config_path(name))
            src, dst = RunDir(side_run_dir(plan, source, run)), RunDir(Path(plan.run_dir(run)))
            outcomes.append((str(dst.root), _reuse_one(src, dst, cfg)))
    return outcomes


def _reuse_one(src: RunDir, dst: RunDir, cfg: ExperimentConfig) -> str:
    if not src.config.is_file():
        return "no run"
    if not src.is_complete():
        return "unfinished"
    try:
        differences = run_config_differences(src, cfg, names=("trial", "setting"))
        if differences:
            return f"another config: {differences[0]}"
        if dst.is_complete() and not run_config_differences(dst, cfg):
            return ALREADY
    except ConfigError as exc:  # a damaged config.yaml, named with what to do
        return f"unreadable: {exc}"
    try:
        place_run(src.root, dst.root)
    except RunLockedError:
        return "being written"
    return PLACED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("setting", help="a setting, e.g. demo-plateau")
    parser.add_argument("--from", dest="source", required=True, type=Path,
                        help="the trial's run folder, e.g. runs/demo-plateau-train5tacos")
    add_setting_arguments(parser, jobs=False)
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"--from {args.source}: no such folder; give a trial's runs, e.g. runs/<setting>-<name>")
    plan = load_setting(parser, args)
    outcomes = reuse(plan, args.source)
    counts = Counter(what if what in (PLACED, ALREADY) else what.split(":")[0] for _, what in outcomes)
    for folder, what in outcomes:
        if what not in (PLACED, ALREADY, "no run"):
            print(f"  left {folder}: {what}")
    parts = [f"{counts[PLACED]} placed from {args.source}", f"{counts[ALREADY]} already in place"]
    parts += [f"{n} {what}" for what, n in sorted(counts.items()) if what not in (PLACED, ALREADY)]
    print(f"{plan.setting}: of its {len(outcomes)} trained runs, " + ", ".join(parts))
    if not counts[PLACED] + counts[ALREADY]:
        print(f"reuse_runs: no run of {args.source} is one of {plan.setting}'s runs as its overlay now "
              "configures them; adopt the trial's change in the overlay first")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
