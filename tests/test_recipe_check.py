"""benchmarks/recipe_check.py: the runs it plans (only the overrides differ), a tiny run under both
recipes, its summary against hand-computed s.d.'s, variance ratio and mean change, and the
adoption rule; the F and t intervals of pln.stats against scipy.stats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from pln import stats
from pln.bench import side_runs
from pln.engine.run_dir import RunDir
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan, Run

from bench_scripts import REPO, load_benchmark

recipe_check = load_benchmark("recipe_check")

WARMUP = ["train.lr_cosine.warmup_epochs=2", "train.lr_cosine.final_fraction=1.0"]


def _plan(tmp_path: Path) -> Plan:
    config = load_snakemake_config([REPO / "config" / "demo-plateau.yaml"], base=REPO / "config.yaml")
    config["runs_root"] = str(tmp_path / "runs")
    return Plan(config)


def test_plans_the_runs_with_only_the_overrides_changed(tmp_path):
    jobs = recipe_check.plan_jobs(_plan(tmp_path), "warmup2", ["charades-i3d-tan"], WARMUP)
    assert len(jobs) == 3 and [j.run.seed for j in jobs] == [0, 1, 2]
    job = jobs[1]
    assert job.base_dir == tmp_path / "runs" / "demo-plateau" / "charades-i3d-tan" / "seed1"
    assert job.trial_dir == tmp_path / "runs" / "demo-plateau-warmup2" / "charades-i3d-tan" / "seed1"
    base, trial = (yaml.safe_load(p.read_text()) for p in (job.base_config, job.trial_config))
    assert base["train"].get("lr_cosine") is None
    assert trial["train"].pop("lr_cosine") == {"warmup_epochs": 2, "final_fraction": 1.0}
    base["train"].pop("lr_cosine", None)
    assert base == trial
    seed2 = recipe_check.plan_jobs(_plan(tmp_path), "warmup2", ["charades-i3d-tan", "tacos-tan"], WARMUP, [2])
    assert [(j.run.model, j.run.seed) for j in seed2] == [("charades-i3d-tan", 2), ("tacos-tan", 2)]
    with pytest.raises(SystemExit, match="trains no seed 7 of tacos-tan"):
        recipe_check.plan_jobs(_plan(tmp_path), "warmup2", ["tacos-tan"], WARMUP, [0, 7])


@pytest.mark.parametrize("overrides, generated", [
    (WARMUP, 1),  # a recipe change: the trial trains on the setting's dataset
    (["data.synthetic.scale=9.0", "data.charades_val_fraction=0.3"], 2),  # a data change: its own dataset
])
def test_generates_each_distinct_dataset_once(tmp_path, monkeypatch, overrides, generated):
    jobs = recipe_check.plan_jobs(_plan(tmp_path), "t", ["charades-i3d-tan", "charades-i3d-pln2"], overrides)
    calls = []
    monkeypatch.setattr(side_runs, "pln_call", lambda *args, log: calls.append(args))
    side_runs.generate_datasets(((job.dataset, config) for job in jobs for config in job.configs), tmp_path)
    assert len(calls) == generated and all(args[0] == "generate" for args in calls)
    assert calls[0][1] == jobs[0].base_config


@pytest.mark.parametrize("models, overrides, message", [
    (["charades-i3d-prior"], WARMUP, "trains no model charades-i3d-prior"),
    (["charades-i3d-tan"], ["train.lr=0.003"], "leaves charades-i3d-tan-seed0 as it is"),
    (["charades-i3d-tan"], ["train.lr"], "expected KEY=VALUE"),
    (["charades-i3d-tan"], ["train.lr_cosine.warmup_epochs=-1"], "warmup_epochs must be in"),
])
def test_refuses_what_would_not_make_a_trial(tmp_path, models, overrides, message):
    with pytest.raises(SystemExit, match=message):
        recipe_check.plan_jobs(_plan(tmp_path), "t", models, overrides)


def test_a_tiny_run_under_both_recipes(tmp_path):
    """The trial trains afresh with the changed recipe; the setting's run is trained once."""
    values = {"name": "tiny", "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16},
                                       "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
              "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
                        "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
              "train": {"max_epochs": 2, "batch_size": 16, "lr": 3e-3, "threads": 1}}
    base = json.loads(json.dumps(values))
    trial = json.loads(json.dumps(values))
    trial["train"]["lr_cosine"] = {"warmup_epochs": 2, "final_fraction": 1.0}
    paths = [tmp_path / "base.yaml", tmp_path / "trial.yaml"]
    for path, cfg in zip(paths, (base, trial)):
        path.write_text(yaml.safe_dump(cfg))
    job = recipe_check.Job(Run("tiny", "synthetic-charades", "train", 0), "toy", paths[0], tmp_path / "runs" / "seed0",
                           paths[1], tmp_path / "trial" / "seed0")
    seconds = recipe_check.run_job(job, tmp_path / "logs")
    assert set(seconds) == {"seconds_base", "seconds_trial"}
    lrs = {name: pd.read_csv(d / "epochs.csv")["lr"].tolist() for name, d in (("base", job.base_dir),
                                                                             ("trial", job.trial_dir))}
    assert lrs["base"] == [3e-3, 3e-3]
    assert lrs["trial"][0] < 3e-3  # still warming up at the end of epoch 1 of 2
    stamps = [(d / "test_metrics.json").stat().st_mtime_ns for d in (job.base_dir, job.trial_dir)]
    recipe_check.run_job(job, tmp_path / "logs")  # both finished: nothing is trained or tested again
    assert [(d / "test_metrics.json").stat().st_mtime_ns for d in (job.base_dir, job.trial_dir)] == stamps
    frame = recipe_check.result_rows([job])
    assert list(frame.columns[:4]) == ["model", "dataset", "seed", "test_queries"]
    assert {"base_test_R1@0.5", "trial_test_R1@0.5", "trial_selected_epoch"} <= set(frame.columns)
    assert frame[recipe_check.LOSS_COLUMN].iloc[0] == 1  # a warm-up changes the training from its first epoch
    older = frame.drop(columns=[recipe_check.LOSS_COLUMN])  # a CSV written before the column existed
    assert recipe_check.with_loss_column(older, [job])[recipe_check.LOSS_COLUMN].tolist() == [1]
    elsewhere = recipe_check.Job(job.run, "toy", paths[0], tmp_path / "gone", paths[1], job.trial_dir)
    with pytest.raises(SystemExit, match="gone/epochs.csv not found; unpack or train the run first"):
        recipe_check.with_loss_column(older, [elsewhere])
    for recipe, run_dir in (("base", job.base_dir), ("trial", job.trial_dir)):
        epochs = pd.read_csv(run_dir / "epochs.csv")
        test = json.loads((run_dir / "timings.json").read_text())["test_seconds"]
        expected = epochs["train_seconds"].sum() + epochs["val_seconds"].sum() + test
        assert frame[f"{recipe}_run_seconds"].iloc[0] == pytest.approx(expected, abs=0.051) and expected > 0


def test_run_seconds_from_the_runs_records(tmp_path):
    run = side_runs.RunDir(tmp_path)
    pd.DataFrame({"epoch": [1, 2, 3], "train_seconds": [10.0, 11.0, 12.5], "val_seconds": [2.0, None, 2.5]}
                 ).to_csv(run.epochs, index=False)
    assert math.isnan(side_runs.run_seconds(run))  # no timings.json yet
    run.timings.write_text(json.dumps({"test_seconds": 4.0, "test_queries_per_s": 100.0}))
    assert side_runs.run_seconds(run) == pytest.approx(10 + 11 + 12.5 + 2 + 2.5 + 4)  # no validation in epoch 2


def _epochs(run_dir: Path, losses: list[float]) -> Path:
    run_dir.mkdir(parents=True)
    pd.DataFrame({"epoch": range(1, len(losses) + 1), "lr": 1e-3, "train_loss": losses}).to_csv(
        run_dir / "epochs.csv", index=False)
    return run_dir


def test_first_loss_difference(tmp_path):
    base = _epochs(tmp_path / "base", [0.5, 0.25, 0.125, 0.1])
    same_but_longer = _epochs(tmp_path / "longer", [0.5, 0.25, 0.125, 0.1, 0.09, 0.08])
    other_at_3 = _epochs(tmp_path / "other3", [0.5, 0.25, 0.125000001, 0.1])
    other_at_1 = _epochs(tmp_path / "other1", [0.4, 0.25, 0.125, 0.1])
    shorter = _epochs(tmp_path / "shorter", [0.5, 0.25])
    assert side_runs.first_loss_difference(base, same_but_longer) == 0  # stops later, same training
    assert side_runs.first_loss_difference(base, shorter) == 0
    assert side_runs.first_loss_difference(base, other_at_3) == 3  # exact, not approximate
    assert side_runs.first_loss_difference(base, other_at_1) == 1
    assert side_runs.first_loss_difference(other_at_3, base) == 3


def test_loss_line():
    frame = pd.DataFrame({recipe_check.LOSS_COLUMN: [0, 1, 1, 0, 7, 0]})
    assert recipe_check.loss_line(frame) == ("Training loss equal to the setting run's at every epoch both ran: 3 of 6 "
                                             "runs; the others differ first at epoch 1 (2 runs), epoch 7 (1 runs)")
    assert recipe_check.loss_line(frame.iloc[[0, 3]]).endswith(": 2 of 2 runs")


@pytest.mark.parametrize("low, high, reading", [
    (0.2, 0.8, ["removed source carries part"]),
    (0.6, 1.4, ["what remains carries at least half"]),
    (0.55, 0.95, ["removed source carries part", "what remains carries at least half"]),
    (0.5, 1.0, ["inconclusive"]),  # the bounds themselves are not past them
    (float("nan"), float("nan"), ["inconclusive"]),
])
def test_diagnostic_reading(low, high, reading):
    line = recipe_check.diagnostic_line(stats.Ratio(0.7, low, high))
    assert line.startswith("Diagnostic, never adopted (variance ratio 0.70 [")
    for phrase in ("removed source carries part", "what remains carries at least half", "inconclusive"):
        assert (phrase in line) == (phrase in reading)


def test_a_diagnostic_prints_its_reading_and_no_adoption_rule():
    frame = _frame({"m1": [40, 42, 44], "m2": [10, 10, 16]}, {"m1": [41, 41, 41], "m2": [12, 14, 16]})
    frame[recipe_check.LOSS_COLUMN] = [0, 1, 1, 0, 1, 2]
    lines = recipe_check.summary_lines(frame, 1.0, diagnostic=True)
    assert not any("Adoption rule" in line for line in lines)
    assert lines[-2].endswith("2 of 6 runs; the others differ first at epoch 1 (3 runs), epoch 2 (1 runs)")
    # the ratio 0.25 with F(4, 4): [0.026, 2.40], which reaches both bounds
    assert lines[-1].startswith("Diagnostic, never adopted (variance ratio 0.25 [0.03, 2.40]): inconclusive")
    assert recipe_check.summary_lines(frame, 1.0)[-1].startswith("Adoption rule")


def _frame(base: dict[str, list[float]], trial: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for model in base:
        for seed, (a, b) in enumerate(zip(base[model], trial[model])):
            rows.append({"model": model, "dataset": "d", "seed": seed, "base_epochs_run": 40, "base_selected_epoch": 15,
                         "base_test_R1@0.5": a, "trial_epochs_run": 50, "trial_selected_epoch": 25,
                         "trial_test_R1@0.5": b})
    return pd.DataFrame(rows)


def test_summary_hand_computed():
    # m1: s.d. 2 -> 0, mean 42 -> 41 (-1); m2: s.d. sqrt(12) -> 2, mean 12 -> 14 (+2)
    frame = _frame({"m1": [40, 42, 44], "m2": [10, 10, 16]}, {"m1": [41, 41, 41], "m2": [12, 14, 16]})
    lines = recipe_check.summary_lines(frame, max_mean_drop=1.0)
    text = "\n".join(lines)
    assert " 2.00 [" in lines[1] and " 0.00 [" in lines[1] and "mean 42.0 -> 41.0 (-1.0)" in lines[1]
    assert " 3.46 [" in lines[3] and " 2.00 [" in lines[3] and "(+2.0)" in lines[3]
    # pooled: sqrt((8 + 24) / 4) = 2.83 -> sqrt(8 / 4) = 1.41; ratio 2 / 8 = 0.25 with F(4, 4)
    assert "2.83 [" in lines[5] and "1.41 [" in lines[5] and "(4 df)" in lines[5]
    low, high = 0.25 / sps.f.ppf(0.975, 4, 4), 0.25 / sps.f.ppf(0.025, 4, 4)
    assert f"variance ratio trial/setting 0.25 [{low:.2f}, {high:.2f}]" in lines[5]
    # mean change: (-1 + 2) / 2 = +0.5, t with 1 df: 0.5 +- 12.706 * 2.121 / sqrt(2)
    half = sps.t.ppf(0.975, 1) * np.std([-1, 2], ddof=1) / math.sqrt(2)
    assert f"+0.50 [{0.5 - half:+.2f}, {0.5 + half:+.2f}]" in lines[6]
    assert text.endswith("adopt")


def test_summary_run_seconds():
    frame = _frame({"m": [40, 42, 44]}, {"m": [41, 41, 41]})
    assert not any(line.startswith("Run seconds") for line in recipe_check.summary_lines(frame, 1.0))
    frame["base_run_seconds"] = [100.0, 200.0, 1250.5]
    frame["trial_run_seconds"] = [300.0, float("nan"), 400.0]  # a run without records
    lines = recipe_check.summary_lines(frame, 1.0)
    assert lines[-2].endswith("setting's recipe -> trial: 1,550 (3 runs) -> 700 (2 runs)")


def test_adoption_rule():
    steadier_but_lower = _frame({"m": [40, 42, 44]}, {"m": [38, 38.5, 39]})
    assert recipe_check.summary_lines(steadier_but_lower, 1.0)[-1].endswith(
        "do not adopt (the mean falls by 3.50 points (rule: less than 1))")
    wider = _frame({"m": [40, 41, 42]}, {"m": [38, 42, 46]})
    assert "do not adopt (the pooled seed s.d. does not fall)" in recipe_check.summary_lines(wider, 1.0)[-1]
    assert recipe_check.summary_lines(steadier_but_lower, 4.0)[-1].endswith(": adopt")


def test_f_and_t_intervals_against_scipy():
    a, b = stats.Spread(math.sqrt(0.48), 0, 0, 14), stats.Spread(1.0, 0, 0, 14)
    ratio = stats.variance_ratio(a, b)
    assert ratio.ratio == pytest.approx(0.48)
    assert (ratio.low, ratio.high) == pytest.approx((0.48 / sps.f.ppf(0.975, 14, 14), 0.48 / sps.f.ppf(0.025, 14, 14)))
    assert (round(ratio.low, 2), round(ratio.high, 2)) == (0.16, 1.43)
    assert math.isnan(stats.variance_ratio(a, stats.Spread(1.0, 0, 0, 0)).ratio)
    assert all(math.isnan(v) for v in vars(stats.variance_ratio(a, stats.Spread(0.0, 0, 0, 14))).values())
    x = np.array([1.0, 2.0, 3.0, 4.0])
    mean = stats.t_mean(x)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert (mean.ratio, mean.low, mean.high) == pytest.approx((2.5, 2.5 - half, 2.5 + half))
    assert math.isnan(stats.t_mean(np.array([3.0])).low)


def test_a_failed_run_does_not_stop_the_others(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(side_runs, "generate_datasets", lambda configs, log_dir: list(configs))
    monkeypatch.setattr(side_runs, "costliest_first", lambda items, run_config: items)
    plan = SimpleNamespace(setting="demo", run_configs={}, config_name=lambda run: run.model)
    jobs = [SimpleNamespace(run=Run("m", "d", "train", seed), dataset="d", configs=()) for seed in range(4)]
    ended = []

    def run_job(job, logs):
        if job.run.seed in (0, 2):
            raise RuntimeError(f"pln train failed (exit 1); see {logs}/m/seed{job.run.seed}.log")
        ended.append(job.run.seed)
        return {"seconds_trial": 1.0}

    with pytest.raises(SystemExit) as failure:
        side_runs.train_jobs(plan, jobs, "trial", run_job, n_jobs=1)  # one at a time: seed 0 fails first
    assert sorted(ended) == [1, 3]
    assert str(failure.value).splitlines() == ["2 of 4 runs failed (the others ended):",
                                               "m seed 0: pln train failed (exit 1); see logs/demo-trial/train/m/seed0.log",
                                               "m seed 2: pln train failed (exit 1); see logs/demo-trial/train/m/seed2.log"]
    jobs, seconds, _ = side_runs.train_jobs(plan, jobs[1::2], "trial", run_job, n_jobs=2)
    assert seconds["seconds_trial"].tolist() == [1.0, 1.0]


def test_a_compared_csv_needs_no_runs_and_blank_means_not_compared(tmp_path):
    jobs = recipe_check.plan_jobs(_plan(tmp_path), "t", ["charades-i3d-tan"], WARMUP)  # no run on disk
    frame = pd.DataFrame({"model": "charades-i3d-tan", "seed": [0, 1, 2], recipe_check.LOSS_COLUMN: [0, 4, 0]})
    assert recipe_check.with_loss_column(frame, jobs)[recipe_check.LOSS_COLUMN].tolist() == [0, 4, 0]
    frame.loc[1, recipe_check.LOSS_COLUMN] = None  # not compared: its runs are needed
    with pytest.raises(SystemExit, match=r"seed1/epochs.csv not found; unpack or train the run first"):
        recipe_check.with_loss_column(frame, jobs)
    assert recipe_check.loss_line(frame) == ("Training loss equal to the setting run's at every epoch both ran: "
                                             "2 of 3 runs; 1 not compared")


def test_where_the_runs_were_computed(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    pd.DataFrame({"epoch": [1, 2], "train_loss": [0.5, 0.4]}).to_csv(old / "epochs.csv", index=False)
    assert side_runs.run_machines(RunDir(old)) == ""  # trained before epochs recorded it
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3], "machine": ["CPU A", "CPU A", "CPU B"]}).to_csv(resumed / "epochs.csv", index=False)
    assert side_runs.run_machines(RunDir(resumed)) == "CPU A + CPU B"
    frame = pd.DataFrame({"base_machines": ["", "", "CPU A"], "trial_machines": ["CPU B", "CPU A + CPU B", "CPU B"]})
    assert recipe_check.machines_line(frame) == (
        "Computed on (each run's epochs.csv): base: unrecorded (2 runs), CPU A (1 runs); "
        "trial: CPU B (2 runs), CPU A + CPU B (1 runs)")
