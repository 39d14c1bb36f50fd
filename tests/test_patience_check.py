"""benchmarks/patience_check.py: the runs it plans for a setting, a tiny run under both rules (the
longer one continues the same epochs), and its per-model and pooled seed s.d.'s (hand-computed)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from pln.bench import side_runs
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan, Run

from bench_scripts import REPO, load_benchmark

patience_check = load_benchmark("patience_check")


def test_plans_the_setting_runs_with_only_the_patience_changed(tmp_path):
    config = load_snakemake_config([REPO / "config" / "demo-plateau.yaml"], base=REPO / "config.yaml")
    config["runs_root"] = str(tmp_path / "runs")
    plan = Plan(config)
    jobs = patience_check.plan_jobs(plan, 40, ["charades-i3d"])
    assert sorted({j.run.model for j in jobs}) == ["charades-i3d-pln2", "charades-i3d-tan"]
    assert len(jobs) == 6 and {j.dataset for j in jobs} == {"charades-i3d"}
    job = jobs[0]
    assert job.base_dir == tmp_path / "runs" / "demo-plateau" / job.run.model / f"seed{job.run.seed}"
    assert job.long_dir == tmp_path / "runs" / "demo-plateau-patience40" / job.run.model / f"seed{job.run.seed}"
    base, long = (yaml.safe_load(p.read_text()) for p in (job.base_config, job.long_config))
    assert (base["train"].pop("stop_patience"), long["train"].pop("stop_patience")) == (25, 40)
    assert base == long and (job.setting_patience, job.patience, job.max_epochs) == (25, 40, 300)
    with pytest.raises(SystemExit, match="stop_patience 25; --patience must be longer"):
        patience_check.plan_jobs(plan, 25, ["charades-i3d"])


def test_a_tiny_run_under_both_rules(tmp_path):
    """The longer patience continues the run of the setting's rule: the same first epochs, then more."""
    values = {"name": "tiny", "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16},
                                       "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
              "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
                        "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
              "train": {"max_epochs": 6, "batch_size": 16, "lr": 3e-3, "threads": 1, "stop_patience": 1}}
    jobs = []
    for seed in (0, 1):
        base = json.loads(json.dumps(values))
        base["train"]["seed"] = seed
        long = json.loads(json.dumps(base))
        long["train"]["stop_patience"] = 3
        paths = [tmp_path / f"base{seed}.yaml", tmp_path / f"long{seed}.yaml"]
        for path, cfg in zip(paths, (base, long)):
            path.write_text(yaml.safe_dump(cfg))
        jobs.append(patience_check.Job(Run("tiny", "synthetic-charades", "train", seed), "toy", 6, 1, 3,
                                       paths[0], tmp_path / "runs" / f"seed{seed}", paths[1],
                                       tmp_path / "long" / f"seed{seed}"))
    for job in jobs:
        seconds = patience_check.run_job(job, tmp_path / "logs")
        assert set(seconds) == {"seconds_setting", "seconds_extension"}
        first = pd.read_csv(job.base_dir / "epochs.csv").filter(regex="^(epoch|train_loss|val_R)")
        longer = pd.read_csv(job.long_dir / "epochs.csv").filter(regex="^(epoch|train_loss|val_R)")
        assert len(longer) >= len(first) and longer.iloc[:len(first)].equals(first)
    frame = patience_check.result_rows(jobs)
    assert list(frame["seed"]) == [0, 1] and (frame["long_epochs_run"] > frame["setting_epochs_run"]).all()
    assert (frame["setting_patience"] == 1).all() and (frame["long_patience"] == 3).all()
    lines = patience_check.summary_lines(frame)
    assert lines[0].startswith("Seed s.d. of test R1@0.5 [95% CI], patience 1 (the setting's) -> 3")
    assert any(line.lstrip().startswith("toy") for line in lines)


def test_summary_sds_hand_computed():
    rows = []
    for model, setting, long in (("m1", [40, 42, 44], [41, 41, 41]), ("m2", [10, 10, 16], [12, 14, 16])):
        for seed, (a, b) in enumerate(zip(setting, long)):
            rows.append({"model": model, "dataset": "d", "seed": seed, "max_epochs": 150, "setting_patience": 10,
                         "setting_epochs_run": 30, "setting_selected_epoch": 20, "setting_test_R1@0.5": a,
                         "long_patience": 25, "long_epochs_run": 150 if model == "m2" and seed == 0 else 45,
                         "long_selected_epoch": 20 if seed else 35, "long_test_R1@0.5": b})
    lines = patience_check.summary_lines(pd.DataFrame(rows), target=2.5)
    text = "\n".join(lines)
    # m1: s.d. 2.00 -> 0.00; m2: s.d. sqrt(12) = 3.46 -> 2.00; pooled sqrt((2*4 + 2*12) / 4) = 2.83 -> sqrt(2) = 1.41
    assert "m1" in lines[1] and " 2.00 [" in lines[1] and " 0.00 [" in lines[1]
    assert " 3.46 [" in lines[3] and " 2.00 [" in lines[3]
    pooled = next(line for line in lines if line.lstrip().startswith("d "))
    assert " 2.83 [" in pooled and " 1.41 [" in pooled and "(4 df, 2 models)" in pooled
    assert "6 runs; with patience 25, 1 ran to the cap of epochs; the selected epoch moved in 2" in text
    assert "undetermined" in text


def test_rows_of_an_earlier_check_are_kept_unless_replaced(tmp_path):
    csv = tmp_path / "check.csv"
    pd.DataFrame({"model": ["a", "a", "b"], "seed": [0, 1, 0], "value": [1, 2, 3]}).to_csv(csv, index=False)
    merged = side_runs.merge_rows(csv, pd.DataFrame({"model": ["a"], "seed": [1], "value": [9]}))
    assert sorted(zip(merged["model"], merged["seed"], merged["value"])) == [("a", 0, 1), ("a", 1, 9), ("b", 0, 3)]
    fresh = pd.DataFrame({"model": ["c"], "seed": [0], "value": [5]})
    assert side_runs.merge_rows(tmp_path / "none.csv", fresh).equals(fresh)
