"""Check the outputs of a finished workflow: every table and figure exists, parses and has the
expected rows. CI runs it after the smoke setting::

    snakemake --cores 2 all --configfile config/smoke.yaml
    python -m pln.report.check config/smoke.yaml      # exit 1 and a list of problems if any

The config files are merged the way Snakemake merges them
(:func:`pln.plan.loading.load_snakemake_config`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pln.engine.run_dir import RunDir, verify_run_file
from pln.errors import PLNError
from pln.eval.metrics import group_labels
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan
from pln.report.tables import COLUMNS
from pln.stats import VERDICTS


def expected_rows(spec: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(block, row, metric) of every line the table's CSV must hold."""
    if spec["table"] == "table1":
        return {(b["dataset"], split, m) for b in spec["blocks"] for split in spec["splits"] for m in spec["metrics"]}
    return {(b["title"], r["label"], m) for b in spec["blocks"] for r in b["rows"] for m in b["metrics"]}


def check_table(plan: Plan, table: str) -> list[str]:
    csv, md, tex = plan.table_outputs(table)
    problems = [f"{p}: missing" for p in (csv, md, tex) if not Path(p).exists()]
    if problems:
        return problems
    frame = pd.read_csv(csv)
    if list(frame.columns) != list(COLUMNS):
        return [f"{csv}: columns {list(frame.columns)}, expected {list(COLUMNS)}"]
    spec = plan.table_spec(table)
    found = set(zip(frame["block"].astype(str), frame["row"].astype(str), frame["metric"].astype(str)))
    want = expected_rows(spec)
    if found != want:
        problems.append(f"{csv}: rows differ from the config: missing {sorted(want - found)[:3]}, "
                        f"unexpected {sorted(found - want)[:3]}")
    if (frame["setting"] != plan.setting).any():
        problems.append(f"{csv}: made by another setting than {plan.setting!r}; rerun the workflow")
    text = Path(md).read_text()
    for block in spec["blocks"]:
        if f"run on {block['dataset_used']}" not in text:
            problems.append(f"{md}: no header naming the dataset used, {block['dataset_used']!r}")
        for row in block.get("rows", []):
            if f"| {row['label']} |" not in text:
                problems.append(f"{md}: no row {row['label']!r}")
    tex_text = Path(tex).read_text()
    if tex_text.count(r"\begin{tabular}") != 1 or tex_text.count(r"\end{tabular}") != 1:
        problems.append(f"{tex}: expected one tabular environment")
    return problems


def check_figure(plan: Plan, figure: str) -> list[str]:
    problems = []
    for path in plan.figure_outputs(figure):
        p = Path(path)
        if not p.exists() or p.stat().st_size == 0:
            problems.append(f"{path}: missing or empty")
            continue
        head = p.read_bytes()[:5]
        if p.suffix == ".png" and head[:4] != b"\x89PNG":
            problems.append(f"{path}: not a PNG file")
        if p.suffix == ".pdf" and head != b"%PDF-":
            problems.append(f"{path}: not a PDF file")
        if p.suffix == ".csv":
            spec = plan.figure_spec(figure)
            frame = pd.read_csv(p)
            want = len(spec["panels"]) * len(spec["metrics"]) * len(group_labels(spec["edges"]))
            if len(frame) != want:
                problems.append(f"{path}: {len(frame)} rows, expected {want} (panels x metrics x groups)")
    return problems


def check_run_files(plan: Plan) -> list[str]:
    """The run result files the tables and figures read that are missing or do not match their
    digests (:mod:`pln.digest`): a truncated or edited file is reported, not aggregated."""
    inputs = [f for t in plan.tables for f in plan.table_inputs(t)]
    inputs += [f for fig in plan.figures for f in plan.figure_inputs(fig)]
    problems = []
    for path in dict.fromkeys(f for f in inputs if Path(f).name in RunDir.TRAIN_RESULTS):
        if not Path(path).is_file():
            problems.append(f"{path}: missing")
            continue
        try:
            verify_run_file(path)
        except PLNError as exc:
            problems.append(str(exc))
    return problems


def check_claims(plan: Plan) -> list[str]:
    """The claims report: one row per declared claim, each with a known verdict."""
    outputs = plan.claims_outputs()
    problems = [f"{f}: missing" for f in plan.all_reports() if not Path(f).exists()]
    if not outputs or problems:
        return problems
    frame = pd.read_csv(outputs["csv"], dtype={"id": str})
    want = [str(c["id"]) for c in plan.claims["list"]]
    if list(frame["id"]) != want:
        problems.append(f"{outputs['csv']}: claims {list(frame['id'])}, expected {want}")
    bad = sorted(set(frame["verdict"]) - set(VERDICTS))
    if bad:
        problems.append(f"{outputs['csv']}: unknown verdicts {bad}")
    return problems


def check_outputs(plan: Plan) -> list[str]:
    """Every problem found with the run results, tables, figures, claims and summary of ``plan``
    (empty: all good)."""
    problems = check_run_files(plan)
    problems += [p for t in plan.tables for p in check_table(plan, t)]
    problems += check_claims(plan)
    problems += [p for f in plan.figures for p in check_figure(plan, f)]
    summary = Path(plan.summary)
    if not summary.exists():
        problems.append(f"{summary}: missing")
    else:
        text = summary.read_text()
        claims_md = [plan.claims_outputs()["md"]] if plan.claims_outputs() else []
        linked = claims_md + plan.all_tables() + plan.all_figures()
        problems += [f"{summary}: no link to {f}" for f in linked if Path(f).name not in text]
    return problems


def main(argv: list[str] | None = None) -> int:
    overlays = sys.argv[1:] if argv is None else argv
    try:
        problems = check_outputs(Plan(load_snakemake_config(overlays)))
    except PLNError as exc:
        problems = [str(exc)]
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not problems:
        print("all tables and figures present, parsed and complete")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
