"""The Snakemake workflow: dry runs of every target with every setting, single-output targets,
the config schema and ``snakemake --lint``. Nothing is trained here (``-n``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a dry run -> {rule: count} (without the total)."""
    block = output.split("Job stats:", 1)[1]
    counts = {}
    for line in block.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def dry_run(*args: str) -> dict[str, int]:
    # --forceall: the whole DAG of the target, also in a tree where the main job has already run
    result = snakemake("-n", "--forceall", *args, "--quiet", "rules")
    assert result.returncode == 0, result.stdout + result.stderr
    return job_counts(result.stdout + result.stderr)


@pytest.mark.parametrize("setting", [[], ["--configfile", "config/smoke.yaml"]], ids=["default", "smoke"])
def test_dry_run_of_every_target(setting):
    counts = dry_run("all", *setting)
    assert counts["table"] == 7 and counts["figure"] == 2 and counts["fig8"] == 1 and counts["summary"] == 1
    assert counts["claims"] == 1 and counts["resolving_power"] == 1
    assert counts["stats"] == 4 and counts["prior"] == 4
    assert counts["run_config"] == counts["train"] + counts["prior"] + counts["stats"]
    tables = dry_run("all_tables", *setting)
    assert "figure" not in tables and "summary" not in tables and tables["table"] == 7
    figures = dry_run("all_figures", *setting)
    assert "table" not in figures and figures["figure"] == 2 and figures["fig8"] == 1


def test_seeds_per_model():
    # 24 trained models: one seed each, a second one for the 8 models of Tables 2-3
    assert dry_run("all_tables")["train"] == 24 + 8
    assert dry_run("all_tables", "--configfile", "config/smoke.yaml")["train"] == 24 + 8


def test_one_figure_runs_only_what_it_needs():
    counts = dry_run("figures/fig7.png")
    # the config of the one run, the dataset's statistics (and its config), one training, the figure
    assert counts == {"run_config": 2, "stats": 1, "train": 1, "figure": 1}
    counts = dry_run("results/tables/table1.csv")
    assert counts == {"run_config": 3, "stats": 3, "table": 1}


def test_paper_setting_stops_on_placeholder_paths(tmp_path):
    # outputs in a fresh folder, so the tree's own results (of another setting) do not count
    overlay = {"tables_dir": str(tmp_path / "tables"), "figures_dir": str(tmp_path / "figures"),
               "summary": str(tmp_path / "README.md")}
    (tmp_path / "outputs.yaml").write_text(yaml.safe_dump(overlay))
    result = snakemake("-n", "all", "--configfile", "config/paper.yaml", str(tmp_path / "outputs.yaml"))
    assert result.returncode != 0
    assert "Missing input files" in result.stdout + result.stderr
    assert "FILL_ME/" in result.stdout + result.stderr


def test_paper_setting_with_data_present_dry_runs_as_gpu_jobs(tmp_path):
    paths = {}
    for name in ("tacos", "activitynet", "charades"):
        (tmp_path / name).mkdir()
        paths[name] = tmp_path / name
    for name in ("t.h5", "a.h5", "v.h5", "i.h5", "glove.txt"):
        (tmp_path / name).write_text("x")
    overlay = {
        "tables_dir": str(tmp_path / "tables"), "figures_dir": str(tmp_path / "figures"),
        "summary": str(tmp_path / "README.md"),
        "base": {"data": {"glove": str(tmp_path / "glove.txt")}},
        "datasets": {
            "tacos": {"config": {"data": {"annotation_dir": str(paths["tacos"]), "feature_file": str(tmp_path / "t.h5")}}},
            "activitynet": {"config": {"data": {"annotation_dir": str(paths["activitynet"]),
                                                "feature_file": str(tmp_path / "a.h5")}}},
            "charades-vgg": {"config": {"data": {"annotation_dir": str(paths["charades"]),
                                                 "feature_file": str(tmp_path / "v.h5")}}},
            "charades-i3d": {"config": {"data": {"annotation_dir": str(paths["charades"]),
                                                 "feature_file": str(tmp_path / "i.h5")}}},
        },
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    # Fig. 8 already built by another setting: switching to this one must rebuild it.
    (tmp_path / ".setting").write_text("demo\n")
    (tmp_path / "figures").mkdir()
    for ext in ("png", "pdf", "csv"):
        (tmp_path / "figures" / f"fig8.{ext}").write_text("x")
    result = snakemake("-n", str(tmp_path / "figures" / "fig8.png"), "--configfile", "config/paper.yaml",
                       str(tmp_path / "overlay.yaml"))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "runs/paper/tacos-pln2/seed2/test_metrics.json" in out  # three seeds
    assert "runs/paper/tacos-tan/seed2/test_metrics.json" in out
    assert re.search(r"gpu=1\b", out) and "mem_mb=32000" in out
    assert (tmp_path / ".setting").read_text().strip() == "paper"


def test_schema_names_a_typo_key(tmp_path):
    (tmp_path / "typo.yaml").write_text("seedz: [0]\n")
    result = snakemake("-n", "all", "--configfile", str(tmp_path / "typo.yaml"))
    assert result.returncode != 0
    assert "seedz" in result.stdout + result.stderr


def test_a_typo_inside_an_experiment_config_is_named(tmp_path):
    (tmp_path / "typo.yaml").write_text("base:\n  model:\n    hiden: 8\n")
    result = snakemake("-n", "all", "--configfile", str(tmp_path / "typo.yaml"))
    assert result.returncode != 0
    assert "model.hiden" in result.stdout + result.stderr


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("PLN_SKIP_SLOW")),
                    reason="PLN_SKIP_SLOW is set: the end-to-end smoke workflow takes minutes")
def test_smoke_workflow_end_to_end(tmp_path):
    """The whole DAG on config/smoke.yaml in a copy of the tree, then the output checker; a
    second call has nothing to do."""
    work = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", ".snakemake", "runs", "data", "cache", "logs", "benchmarks",
                                    "__pycache__", "*.egg-info")
    shutil.copytree(ROOT, work, ignore=ignore)
    for stale in [*(work / "results" / "tables").glob("*"), *(work / "figures").glob("*")]:
        stale.unlink()
    run = lambda *args: subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, capture_output=True,
                                       text=True, timeout=1800)
    first = run("--cores", "2", "all", "--configfile", "config/smoke.yaml")
    assert first.returncode == 0, first.stdout[-5000:] + first.stderr[-5000:]
    check = subprocess.run([sys.executable, "-m", "pln.report.check", "config/smoke.yaml"], cwd=work,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    # the claims report: one row per declared claim; the smoke setting trains 2 seeds (Tables 2-3
    # models, tacos-pln2) or 1, so nothing is testable, and the MDE needs 2 seeds a model
    config = yaml.safe_load((work / "config.yaml").read_text())
    claims = pd.read_csv(work / "results" / "claims.csv", dtype={"id": str}).set_index("id")
    assert list(claims.index) == [str(c["id"]) for c in config["claims"]["list"]]
    assert (claims["verdict"] == "not testable").all() and (claims["setting"] == "smoke").all()
    # MDE: known with 2 seeds on both sides (claims 1 and 3: >= 0; 0 where an untrained model
    # scores 0 on every query), unknown with one seed (w/o CFM / w/o UC)
    assert claims.loc["1", "mde"] >= 0 and claims.loc["3", "mde"] >= 0
    assert np.isnan(claims.loc["7", "mde"])
    parts = pd.read_csv(work / "results" / "claims_parts.csv", dtype={"id": str})
    assert parts.groupby("id").size().to_dict() == {str(c["id"]): len(c["parts"]) for c in config["claims"]["list"]}
    assert claims.loc["1", "queries"] > 0 and claims.loc["1", "seeds"] == "2/2"
    summary = (work / "results" / "README.md").read_text()
    assert summary.index("claims.md") < summary.index("table1.md")
    assert "| tacos-pln2 | 2 |" in (work / "results" / "resolving_power.md").read_text()
    second = run("-n", "all", "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in second.stdout + second.stderr
