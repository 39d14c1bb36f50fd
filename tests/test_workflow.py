"""The Snakemake workflow: dry runs of every target with every setting, single-output targets,
the config schema and ``snakemake --lint``. Nothing is trained here (``-n``)."""

from __future__ import annotations

import json
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


@pytest.mark.parametrize("setting", [[], ["--configfile", "config/smoke.yaml"],
                                     ["--configfile", "config/demo-plateau.yaml"]],
                         ids=["default", "smoke", "demo-plateau"])
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
    # 24 trained models: the demo trains 3 seeds each; smoke one each, a second one for the 8
    # models of Tables 2-3
    assert dry_run("all_tables")["train"] == 24 * 3
    assert dry_run("all_tables", "--configfile", "config/smoke.yaml")["train"] == 24 + 8


def test_demo_settings_differ_from_the_demo_in_the_budget_alone():
    """demo-long and demo-plateau train the demo's models, seeds and data: their run configs
    differ from the demo's only in the training budget (epochs, batch, the stopping rule) and,
    for demo-plateau, the device and the larger training splits of ActivityNet Captions and
    Charades-STA; demo-plateau's recipe is demo-long's."""
    from pln.config import merge
    from pln.plan.loading import load_snakemake_config
    from pln.plan.plan import Plan

    def run_configs(*overlays: str) -> dict[str, dict]:
        plan = Plan(load_snakemake_config([ROOT / o for o in overlays], ROOT / "config.yaml"))
        return dict(plan.run_configs)

    def strip(cfg: dict, keys: tuple[str, ...]) -> dict:
        cfg = {**cfg, "train": {k: v for k, v in cfg.get("train", {}).items() if k not in keys}}
        data = dict(cfg.get("data", {}))
        for key in ("data_dir", "cache_dir"):  # under data/<setting>/, cache/<setting>/
            data.pop(key, None)
        return {**cfg, "data": data}

    demo, long, plateau = run_configs(), run_configs("config/demo-long.yaml"), run_configs("config/demo-plateau.yaml")
    assert set(demo) == set(long) == set(plateau)
    budget = ("max_epochs", "batch_size", "stop_patience", "device")
    # dataset: (its data values in the demo, the larger training split demo-plateau adopted)
    larger = {"synthetic-charades": ({"charades_val_fraction": 0.4, "synthetic": {"scale": 3.0}},
                                     {"charades_val_fraction": 0.2, "synthetic": {"scale": 6.0}}),
              "synthetic-activitynet": ({"synthetic": {"scale": 2.0}}, {"synthetic": {"scale": 5.0}})}
    for name in demo:
        assert strip(long[name], budget) == strip(demo[name], budget), name
        if demo[name]["data"]["dataset"] in larger:  # check the adopted split, then undo it
            in_demo, adopted = larger[demo[name]["data"]["dataset"]]
            assert merge(demo[name]["data"], in_demo) == demo[name]["data"], name
            assert merge(plateau[name]["data"], adopted) == plateau[name]["data"], name
            plateau[name] = merge(plateau[name], {"data": in_demo})
        assert strip(plateau[name], budget) == strip(demo[name], budget), name
        if "-seed" in name:
            assert strip(plateau[name], ("max_epochs", "stop_patience", "device")) == strip(long[name], (
                "max_epochs", "stop_patience", "device")), name
            train = plateau[name]["train"]
            assert (train["device"], train["max_epochs"], train["stop_patience"], train["batch_size"]) == (
                "auto", 300, 25, 32)


def test_training_inputs_target_makes_configs_and_datasets_only():
    """`training_inputs`: every trained run's config and every dataset's statistics, no training
    (what benchmarks/gpu_train_setting.sh needs on a machine without Snakemake)."""
    counts = dry_run("training_inputs", "--configfile", "config/demo-plateau.yaml")
    assert counts == {"run_config": 24 * 3 + 4, "stats": 4, "training_inputs": 1}
    counts = dry_run("training_inputs", "--configfile", "config/smoke.yaml")
    assert counts == {"run_config": 24 + 8 + 4, "stats": 4, "training_inputs": 1}


def test_one_figure_runs_only_what_it_needs():
    counts = dry_run("figures/fig7.png")
    # the config of the one run, the dataset's statistics (and its config), one training, the figure
    assert counts == {"run_config": 2, "stats": 1, "train": 1, "figure": 1, "setting_mark": 1}
    counts = dry_run("results/tables/table1.csv")
    assert counts == {"run_config": 3, "stats": 3, "table": 1, "setting_mark": 1}


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
    # Fig. 8 already built by another setting (its marker made by the marker job of that setting):
    # switching to this one must rebuild it.
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump({k: overlay[k] for k in ("tables_dir", "figures_dir",
                                                                               "summary")}))
    made = snakemake("--cores", "1", str(tmp_path / ".setting"), "--configfile", str(tmp_path / "demo.yaml"))
    assert made.returncode == 0, made.stdout + made.stderr
    assert (tmp_path / ".setting").read_text() == "demo\n"
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
    assert "rule setting_mark:" in out and "rule fig8:" in out  # the switch rebuilds Fig. 8
    assert (tmp_path / ".setting").read_text() == "demo\n"  # a dry run writes nothing


def test_overlay_typo_names_the_key_and_the_users_file(tmp_path):
    smoke = (ROOT / "config" / "smoke.yaml").read_text()
    assert "  charades-vgg:" in smoke
    (tmp_path / "my smoke.yaml").write_text(smoke.replace("  charades-vgg:", "  charades-vg:"))
    result = snakemake("-n", "all", "--configfile", str(tmp_path / "my smoke.yaml"))
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "datasets.charades-vg" in out and "my smoke.yaml" in out, out
    assert "config/smoke.yaml:" not in out


def test_parsing_writes_no_setting_marker(tmp_path):
    overlay = tmp_path / "o.yaml"
    overlay.write_text(yaml.safe_dump({"tables_dir": str(tmp_path / "results" / "tables")}))
    result = snakemake("-n", "all", "--configfile", str(overlay))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "setting_mark" in result.stdout + result.stderr  # planned, not written
    assert not (tmp_path / "results").exists()


def test_shell_commands_quote_every_path():
    rules = (ROOT / "workflow" / "rules" / "runs.smk").read_text()
    shells = re.findall(r'^\s+"(\{params\.pln\}.*)"$', rules, flags=re.M)
    assert len(shells) == 3
    for line in shells:
        fields = re.findall(r"\{([^}]*)\}", line)
        assert all(f.endswith(":q") for f in fields if f != "params.pln"), line


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


JSONL_OVERLAY = ("--configfile", "config/smoke.yaml", "config/jsonl-example.yaml")


def test_a_jsonl_dataset_enters_a_table(tmp_path):
    """The example overlay's JSONL dataset (generated here) plans its runs like a built-in one."""
    from pln.data.jsonl_example import write_example

    write_example(tmp_path / "ex", scale=0.05)
    paths = {"datasets": {"jsonl-example": {"config": {"data": {"annotation_dir": str(tmp_path / "ex" / "annotations"),
                                                       "feature_dir": str(tmp_path / "ex" / "features")}}}},
             "tables_dir": str(tmp_path / "tables")}
    (tmp_path / "paths.yaml").write_text(yaml.safe_dump(paths))
    counts = dry_run(str(tmp_path / "tables" / "table2.csv"), *JSONL_OVERLAY, str(tmp_path / "paths.yaml"))
    assert counts == {"run_config": 4, "stats": 1, "train": 2, "prior": 1, "table": 1, "setting_mark": 1}


def copy_tree(tmp_path: Path) -> tuple[Path, object]:
    """A copy of the tree without run outputs, and a snakemake runner in it."""
    work = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".venv", ".git", ".snakemake", "runs", "data", "cache", "logs", "benchmarks",
                                    "__pycache__", "*.egg-info")
    shutil.copytree(ROOT, work, ignore=ignore)
    for stale in [*(work / "results" / "tables").glob("*"), *(work / "figures").glob("*")]:
        stale.unlink()
    run = lambda *args: subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, capture_output=True,
                                       text=True, timeout=1800)
    return work, run


def test_a_changed_config_rewrites_the_run_config(tmp_path):
    """A run config is rewritten (and what reads it rerun) when the config changes it, and only
    then: its text is a params value Snakemake records."""
    work, run = copy_tree(tmp_path)
    target = "runs/smoke/configs/tacos-pln2-seed0.yaml"
    made = run("--cores", "1", target, "--configfile", "config/smoke.yaml")
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    assert "lr: 0.003" in (work / target).read_text()
    same = run("-n", target, "--configfile", "config/smoke.yaml")
    assert "Nothing to be done" in same.stdout + same.stderr
    (work / "lr.yaml").write_text("base:\n  train:\n    lr: 0.001\n")
    changed = run("-n", target, "--configfile", "config/smoke.yaml", "lr.yaml")
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert "Params have changed" in changed.stdout + changed.stderr
    assert job_counts(changed.stdout + changed.stderr).get("run_config") == 1


def test_a_longer_budget_continues_the_workflow_run(tmp_path):
    """A setting whose runs are trained and whose max_epochs then grows continues each run from
    its last epoch (the train rule passes --extend): the first epoch's row of epochs.csv, its
    measured seconds included, survives, and the run has the longer budget's epochs."""
    work, run = copy_tree(tmp_path)
    folder = work / "runs" / "smoke" / "tacos-one16" / "seed0"
    target = str((folder / "test_metrics.json").relative_to(work))
    made = run("--cores", "1", target, "--configfile", "config/smoke.yaml")
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-3000:]
    first = pd.read_csv(folder / "epochs.csv")
    assert list(first["epoch"]) == [1]
    (work / "longer.yaml").write_text("datasets:\n  tacos:\n    config: {train: {max_epochs: 3}}\n")
    longer = run("--cores", "1", target, "--configfile", "config/smoke.yaml", "longer.yaml")
    assert longer.returncode == 0, longer.stdout[-3000:] + longer.stderr[-3000:]
    assert "continuing with a longer budget" in (work / "logs" / "smoke" / "train" / "tacos-one16" / "seed0.log").read_text()
    epochs = pd.read_csv(folder / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(epochs.iloc[:1], first)
    assert json.loads((folder / "test_metrics.json").read_text())["run"]["epochs_run"] == 3


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("PLN_SKIP_SLOW")),
                    reason="PLN_SKIP_SLOW is set: the JSONL example workflow takes minutes")
def test_jsonl_example_workflow_trains_and_tabulates(tmp_path):
    """config/jsonl-example.yaml as its header says: generate, then Table 2 on the JSONL data."""
    work, run = copy_tree(tmp_path)
    made = subprocess.run([sys.executable, "-m", "pln.cli", "example-jsonl", "data/jsonl-example"], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    result = run("--cores", "2", "results/jsonl-example/tables/table2.csv", *JSONL_OVERLAY)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    table = (work / "results" / "jsonl-example" / "tables" / "table2.csv").read_text()
    assert "jsonl-pln2" in table and "jsonl-tan" in table and "jsonl-prior" in table
    assert (work / "runs" / "jsonl-example" / "jsonl-pln2" / "seed0" / "predictions.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("PLN_SKIP_SLOW")),
                    reason="PLN_SKIP_SLOW is set: the end-to-end smoke workflow takes minutes")
def test_smoke_workflow_end_to_end(tmp_path):
    """The whole DAG on config/smoke.yaml in a copy of the tree, then the output checker; a
    second call has nothing to do; then Snakemake's report holds every table, figure and the
    run settings, each with its caption."""
    work, run = copy_tree(tmp_path)
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
    report = run("--report", "results/report.html", "all", "--configfile", "config/smoke.yaml")
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    html = (work / "results" / "report.html").read_text()
    smoke = yaml.safe_load((work / "config" / "smoke.yaml").read_text())
    items = [f"results/tables/table{n}.csv" for n in range(1, 8)] + [f"figures/fig{n}.png" for n in (5, 7, 8)]
    for item in items + ["results/settings.yaml"]:
        assert f'"{item}": {{"name"' in html, item  # an entry of the report's results
    for caption in ("Fig. 5: target-moment lengths", "Fig. 7: the score map", "Fig. 8: PLN against",
                    "Run settings", "Videos and sentences per split", "Test-split metrics"):
        assert caption in html, caption
    assert html.count(smoke["description"]) >= len(items)  # every caption names the setting
