"""benchmarks/rounding_pairs.py and pln.stats.pair_spread: the s.d. that pairs imply (hand-computed
and simulated), which two runs are one experiment, the pairs of a tiny run and its copy, and the
summary's figures and fixed reading against hand-computed values and scipy."""

from __future__ import annotations

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
from pln.plan.plan import Run

from bench_scripts import REPO, load_benchmark

rounding_pairs = load_benchmark("rounding_pairs")

TINY = {"name": "tiny", "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16}},
        "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
                  "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
        "train": {"max_epochs": 2, "batch_size": 16, "lr": 3e-3, "threads": 1}}


def test_pair_spread_hand_computed():
    spread = stats.pair_spread(np.array([1.0, -2.0, 3.0]))
    low, high = stats.sd_ratio_bounds(3)
    assert spread.sd == pytest.approx(math.sqrt(14 / 6)) and spread.df == 3
    assert (spread.low, spread.high) == pytest.approx((spread.sd * low, spread.sd * high))
    assert math.isnan(stats.pair_spread(np.array([])).sd)


def test_pair_spread_recovers_the_run_sd():
    rng = np.random.default_rng(0)
    runs = rng.normal(50.0, 2.0, size=(20000, 2))  # two independent draws of one model per pair
    spread = stats.pair_spread(runs[:, 1] - runs[:, 0])
    assert spread.sd == pytest.approx(2.0, rel=0.02) and spread.low < 2.0 < spread.high


def _run_folder(path: Path, seed: int, order_seed: int | None) -> Path:
    path.mkdir(parents=True)
    values = {**TINY, "train": {**TINY["train"], "seed": seed, "order_seed": order_seed}}
    (path / "config.yaml").write_text(yaml.safe_dump(values))
    return path


def test_one_experiment_when_the_order_seed_resolves_alike(tmp_path):
    setting = _run_folder(tmp_path / "a", 0, None)
    assert rounding_pairs.experiment_differences(setting, _run_folder(tmp_path / "b", 0, 0)) == []
    assert rounding_pairs.experiment_differences(setting, _run_folder(tmp_path / "c", 0, None)) == []
    seed1 = _run_folder(tmp_path / "d", 1, None)
    assert rounding_pairs.experiment_differences(seed1, _run_folder(tmp_path / "e", 1, 0)) == [
        "train.order_seed: setting run has 1, side run has 0"]
    other = _run_folder(tmp_path / "f", 0, None)
    text = (other / "config.yaml").read_text().replace("lr: 0.003", "lr: 0.001")
    (other / "config.yaml").write_text(text)
    assert rounding_pairs.experiment_differences(setting, other) == [
        "train.lr: setting run has 0.003, side run has 0.001"]


def test_pairs_of_a_tiny_run_and_its_copy(tmp_path):
    values = {**TINY, "data": {**TINY["data"], "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")}}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(values))
    runs = tmp_path / "runs" / "demo"
    base = runs / "tiny" / "seed0"
    side_runs.train_run(config, base, tmp_path / "train.log")
    side = tmp_path / "runs" / "demo-copy" / "tiny" / "seed0"
    side_runs.copy_run(base, side)
    plan = SimpleNamespace(runs_root=str(runs), setting_file="demo.yaml",  # trains seeds 0 and 1 of "tiny"
                           runs=lambda model: [Run(model, "d", "train", k) for k in (0, 1)],
                           run_dir=lambda run: f"{runs}/{run.model}/seed{run.seed}")
    frame = rounding_pairs.pair_rows(plan, "copy", ["tiny"], 0)
    assert frame["difference"].tolist() == [0.0] and frame["first_other_loss_epoch"].tolist() == [0]
    epochs = pd.read_csv(side / "epochs.csv")
    epochs.loc[epochs["epoch"] == 2, "train_loss"] += 1e-9  # as if epoch 2 were computed with other kernels
    epochs.to_csv(side / "epochs.csv", index=False)
    assert rounding_pairs.pair_rows(plan, "copy", ["tiny"], 0)["first_other_loss_epoch"].tolist() == [2]
    text = (side / "config.yaml").read_text()
    (side / "config.yaml").write_text(text.replace("order_seed: null", "order_seed: 3"))
    with pytest.raises(SystemExit, match=r"demo-copy/tiny/seed0 is another experiment than .*train.order_seed: "
                                         r"setting run has 0, side run has 3"):
        rounding_pairs.pair_rows(plan, "copy", ["tiny"], 0)
    with pytest.raises(SystemExit, match="seed1 is not a finished run; train it first"):
        rounding_pairs.pair_rows(plan, "copy", ["tiny"], 1)
    with pytest.raises(SystemExit, match="demo.yaml trains no seed 2 of tiny"):
        rounding_pairs.pair_rows(plan, "copy", ["tiny"], 2)


def _frame(differences: list[float], first: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(differences))], "seed": 0, "test_queries": 2501,
                         "base_selected_epoch": 10, "base_test_R1@0.5": 40.0, "other_selected_epoch": 12,
                         "other_test_R1@0.5": [40.0 + d for d in differences], "difference": differences,
                         "first_other_loss_epoch": first})


def test_summary_hand_computed():
    frame = _frame([1.0, -2.0, 3.0, 0.0], [1, 9, 1, 0])  # the last pair was computed alike
    reference = stats.Spread(2.0, 1.6, 2.7, 28)
    lines = rounding_pairs.summary_lines(frame, reference)
    assert lines[4].endswith("none (computed alike)") and "( -2.0; epochs 10 / 12); 9" in lines[2]
    assert lines[5] == "Pairs used (training losses differ): 3 of 4; test queries per run 2,501 to 2,501"
    assert "sqrt(sum d^2 / 2K):  1.53 [" in lines[6] and "(3 df)" in lines[6]
    ratio = (14 / 6) / 4  # the pairs' variance over the reference's
    low, high = ratio / sps.f.ppf(0.975, 3, 28), ratio / sps.f.ppf(0.025, 3, 28)
    assert lines[7].startswith(f"Variance ratio rounding/seed {ratio:.2f} [{low:.2f}, {high:.2f}] (F, 3 and 28 df): "
                               "inconclusive")
    half = sps.t.ppf(0.975, 2) * np.std([1, -2, 3], ddof=1) / math.sqrt(3)
    assert lines[8] == f"Mean difference +0.67 [{2 / 3 - half:+.2f}, {2 / 3 + half:+.2f}] (t over 3 pairs)"


def test_summary_reading():
    many = np.tile([2.5, -2.5], 30) * math.sqrt(2)  # 60 pairs, run s.d. 2.5 from the rounding alone
    lines = rounding_pairs.summary_lines(_frame(list(many), [1] * 60), stats.Spread(2.4, 1.9, 3.3, 28))
    assert "lower end over 0.5: a rounding-level perturbation alone gives at least half" in lines[-2]
    small = np.tile([0.2, -0.2], 30)
    lines = rounding_pairs.summary_lines(_frame(list(small), [5] * 60), stats.Spread(2.4, 1.9, 3.3, 28))
    assert "upper end under 1: a rounding-level perturbation moves a run less than another seed does" in lines[-2]
    alike = rounding_pairs.summary_lines(_frame([0.0, 0.0], [0, 0]), stats.Spread(2.4, 1.9, 3.3, 28))
    assert alike[-1] == "Pairs used (training losses differ): 0 of 2; nothing to read"


def test_an_unknown_model_is_refused_in_one_line(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as exit_info:
        rounding_pairs.main(["demo-plateau", "--name", "order0tacos", "--models", "tacos-tan", "tacos-prior"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith("config/demo-plateau.yaml trains no model tacos-prior")
