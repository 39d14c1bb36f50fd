"""Faults and bad input: run-folder locking, verified checkpoints and result files, value ranges,
damaged data, unwritable outputs. Each case is what a user met; where the CLI's exit code and
first error line matter it runs as a subprocess. Tiny synthetic runs on the CPU."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from pln.cli import main as cli_main
from pln.config import config_from_dict, load_config
from pln.data.dataset import build_dataset, resolve_source
from pln.data.features import FeatureStore
from pln.digest import sidecar
from pln.engine.checkpoint import load_checkpoint
from pln.engine.run_lock import hold_run_lock, lock_path
from pln.engine.train import train
from pln.errors import CheckpointError, ConfigError, DataError, OutputError
from pln.plan.loading import load_snakemake_config
from pln.report.tables import read_metrics, read_predictions
from pln.utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
PLN = [sys.executable, "-m", "pln.cli"]

TINY = {
    "name": "tiny",
    "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16}},
    "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
              "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
    "train": {"max_epochs": 2, "batch_size": 16, "lr": 1.0e-3, "threads": 1, "device": "cpu"},
}


def tiny(tmp: Path, **data) -> dict:
    values = json.loads(json.dumps(TINY))
    values["data"].update({"data_dir": str(tmp / "data"), "cache_dir": str(tmp / "cache"), **data})
    return values


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def pln(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PLN, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def first_error(result: subprocess.CompletedProcess) -> str:
    """The CLI's error line; the whole stderr must be that one line (no traceback)."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[-1]


def cli_error(capsys, *argv: str) -> str:
    """Run the CLI in-process; it must fail with exit 2 and one ``error:`` line."""
    rc = cli_main(list(argv))
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("faults")
    values = tiny(tmp)
    train(config_from_dict(values), tmp / "run")
    return tmp / "run", values


@pytest.fixture(scope="module")
def charades_files(trained) -> Path:
    """The tiny synthetic Charades-STA files (2D-TAN layout), to be read as a real dataset."""
    _, values = trained
    return resolve_source(config_from_dict(values)).annotation_dir


def real_copy(tmp: Path, folder: Path, values: dict) -> tuple[Path, dict]:
    """A copy of the synthetic files read as the real ``charades`` dataset; its config."""
    target = tmp / "ann"
    shutil.copytree(folder, target)
    cfg = json.loads(json.dumps(values))
    cfg["data"] = {"dataset": "charades", "annotation_dir": str(target), "feature_kind": "vgg",
                   "feature_file": str(target / "vgg_rgb_features.hdf5"), "cache_dir": str(tmp / "cache")}
    return target, cfg


# ----------------------------------------------------------------------------------------------
# 1. The run-folder lock


HOLDER = textwrap.dedent("""
    import sys, time
    from pln.engine.run_lock import hold_run_lock
    with hold_run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def start_holder(run: Path, seconds: float) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(run), str(seconds)], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout.readline().strip() == "held"
    return child


def test_second_train_on_a_locked_folder_stops_naming_folder_and_pid(tmp_path):
    run = tmp_path / "run"
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny(tmp_path))
    holder = start_holder(run, 60)
    try:
        result = pln("train", str(cfg), "--out", str(run), timeout=120)
        assert result.returncode == 2
        line = first_error(result)
        assert str(run) in line and f"process {holder.pid}" in line and "--wait" in line
        assert not (run / "config.yaml").exists()  # refused before touching the folder
        result = pln("evaluate", str(run), timeout=120)
        assert result.returncode == 2
        line = first_error(result)
        assert "being written" in line and f"process {holder.pid}" in line
    finally:
        holder.kill()
        holder.wait()


def test_wait_queues_behind_the_holder_and_a_killed_holder_blocks_nobody(tmp_path):
    run = tmp_path / "run"
    holder = start_holder(run, 3)
    t0 = time.monotonic()
    with hold_run_lock(run, wait=True):
        assert time.monotonic() - t0 > 1.0  # waited for the holder to end
    holder.wait()
    holder = start_holder(run, 60)
    holder.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
    holder.wait()
    with hold_run_lock(run):
        assert lock_path(run).read_text().strip() == str(os.getpid())


def test_in_process_lock_refuses_a_second_holder(tmp_path):
    with hold_run_lock(tmp_path / "run"):
        holder = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path / "run"), "0"], cwd=ROOT,
                                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert holder.returncode != 0 and "RunLockedError" in holder.stderr
        assert f"process {os.getpid()}" in holder.stderr


def test_two_trains_with_different_seeds_never_mix_their_files(tmp_path, trained):
    """The issue's reproduction: two `pln train` into one --out with seeds 0 and 1."""
    _, values = trained
    values = json.loads(json.dumps(values))
    values["data"]["cache_dir"] = str(tmp_path / "cache")
    cfg = write_yaml(tmp_path / "cfg.yaml", values)
    run = tmp_path / "R"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([*PLN, "train", str(cfg), "--out", str(run), "--set", f"train.seed={s}"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in (0, 1)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    loser = outs[codes.index(2)][1]
    assert "is writing this run folder" in loser or "holds a run of another configuration" in loser
    winner_seed = codes.index(0)
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == winner_seed
    assert json.loads((run / "test_metrics.json").read_text())["run"]["seed"] == winner_seed
    assert load_checkpoint(run / "checkpoints" / "best.pt")["config"]["train"]["seed"] == winner_seed


def test_a_run_that_failed_before_training_does_not_block_the_corrected_rerun(tmp_path, capsys, trained):
    _, values = trained
    values = json.loads(json.dumps(values))
    values["train"]["max_epochs"] = 1
    bad = dict(values, data={**values["data"], "glove": str(tmp_path / "missing-glove.txt")})
    run = tmp_path / "run"
    err = cli_error(capsys, "train", str(write_yaml(tmp_path / "bad.yaml", bad)), "--out", str(run))
    assert "missing-glove.txt" in err
    assert cli_main(["train", str(write_yaml(tmp_path / "good.yaml", values)), "--out", str(run)]) == 0
    assert (run / "test_metrics.json").is_file()


# ----------------------------------------------------------------------------------------------
# 2. Verified checkpoints and result files


def test_damaged_checkpoint_is_refused_naming_the_file_and_the_recovery(tmp_path, trained):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    best = copy / "checkpoints" / "best.pt"
    data = bytearray(best.read_bytes())
    lo = len(data) // 2
    for i in range(lo, lo + 1000):  # the case: XOR a block of bytes with 0x40
        data[i] ^= 0x40
    best.write_bytes(bytes(data))
    result = pln("evaluate", str(copy))
    assert result.returncode == 2
    line = first_error(result)
    assert str(best) in line and "--checkpoint last" in line and "retrain" in line


def test_edited_tensor_fails_the_digest(tmp_path, trained):
    run, _ = trained
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    key = next(iter(state["model"]))
    state["model"][key] = state["model"][key] + 1e-3  # a plausible-looking change
    path = tmp_path / "best.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="does not match its digest"):
        load_checkpoint(path)
    del state["sha256"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="no digest"):
        load_checkpoint(path)


def test_garbage_checkpoint_never_suggests_weights_only_false(tmp_path, capsys, trained):
    run, _ = trained
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    err = cli_error(capsys, "evaluate", str(run), "--checkpoint", str(garbage))
    assert "garbage.pt" in err and "weights_only" not in err
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "obj": object()}, evil)
    err = cli_error(capsys, "evaluate", str(run), "--checkpoint", str(evil))
    assert "evil.pt" in err and "weights_only" not in err


def test_result_files_carry_digests_and_tables_refuse_edited_ones(tmp_path, trained):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    for name in ("test_metrics.json", "predictions.csv", "score_maps.npz"):
        assert sidecar(copy / name).is_file()
    assert read_metrics(copy / "test_metrics.json")  # intact: read
    metrics = copy / "test_metrics.json"
    metrics.write_text(metrics.read_text().replace('"R1@0.5": ', '"R1@0.5": 9'))
    with pytest.raises(DataError, match="does not match its digest.*test_metrics.json"):
        read_metrics(metrics)
    preds = copy / "predictions.csv"
    preds.write_bytes(preds.read_bytes()[: preds.stat().st_size // 2])  # truncated
    with pytest.raises(DataError, match="predictions.csv: content does not match"):
        read_predictions(preds)
    result = pln("train", str(copy / "config.yaml"), "--out", str(copy))  # complete run: re-reads it
    assert result.returncode == 2
    assert "test_metrics.json" in first_error(result) and "rerun" in first_error(result)


def test_identical_reruns_give_byte_identical_results(tmp_path, trained):
    run, values = trained
    again = tmp_path / "again"
    train(config_from_dict(values), again)
    for name in ("test_metrics.json", "predictions.csv"):
        assert (again / name).read_bytes() == (run / name).read_bytes(), name
    timings = json.loads((run / "timings.json").read_text())
    assert timings["test_queries_per_s"] > 0
    assert "per_s" not in (run / "test_metrics.json").read_text()


def test_test_metrics_count_the_queries_of_the_split(tmp_path, capsys, trained, charades_files):
    run, values = trained
    info = json.loads((run / "test_metrics.json").read_text())["run"]
    assert info["test_queries"] == info["test_split_queries"] > 0
    # a video missing from the feature file: its pairs are dropped, and the counts say so
    folder, cfg = real_copy(tmp_path, charades_files, values)
    test_videos = {line.split()[0] for line in (folder / "charades_sta_test.txt").read_text().splitlines()}
    with h5py.File(folder / "vgg_rgb_features.hdf5", "a") as f:
        del f[sorted(test_videos)[0]]
    assert cli_main(["baseline-prior", str(write_yaml(tmp_path / "cfg.yaml", cfg)), "--out", str(tmp_path / "p")]) == 0
    info = json.loads((tmp_path / "p" / "test_metrics.json").read_text())["run"]
    assert 0 < info["test_queries"] < info["test_split_queries"]


# ----------------------------------------------------------------------------------------------
# 3. Workflow overlays


def test_overlay_typo_is_named_with_its_file(tmp_path):
    smoke = (ROOT / "config" / "smoke.yaml").read_text()
    typo = tmp_path / "mine.yaml"
    typo.write_text(smoke.replace("  charades-vgg:", "  charades-vg:"))
    with pytest.raises(ConfigError, match=r"mine\.yaml: datasets\.charades-vg: no such entry"):
        load_snakemake_config([ROOT / "config" / "smoke.yaml", typo], ROOT / "config.yaml")
    assert load_snakemake_config([ROOT / "config" / "smoke.yaml"], ROOT / "config.yaml")["setting"] == "smoke"


# ----------------------------------------------------------------------------------------------
# 4. Ranges, checked before anything runs


@pytest.mark.parametrize("override, needle", [
    ("data.synthetic.scale=0", "data.synthetic.scale must be > 0"),
    ("data.synthetic.scale=-1", "data.synthetic.scale must be > 0"),
    ("train.max_train_batches=0", "train.max_train_batches must be >= 1"),
    ("eval.iou_thresholds=[1.5]", "eval.iou_thresholds"),
    ("eval.ranks=[]", "eval.ranks"),
    ("eval.nms_threshold=7", "eval.nms_threshold must be in (0, 1]"),
    ("model.clips=[8,", "not valid YAML"),
    ("model.clips=[0,8]", "model.clips: every clip count must be >= 1"),
    ("train.select_metric=R9@0.5", "train.select_metric"),
    ("data.max_bad_row_fraction=2", "data.max_bad_row_fraction must be in [0, 1]"),
])
def test_bad_values_stop_before_anything_is_built(tmp_path, capsys, override, needle):
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny(tmp_path))
    err = cli_error(capsys, "train", str(cfg), "--out", str(tmp_path / "run"), "--set", override)
    assert needle in err
    assert not (tmp_path / "cache").exists()  # nothing was built


def test_numbers_as_people_type_them(tmp_path):
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny(tmp_path))
    loaded = load_config(cfg, ["train.lr=1e-3", "eval.strategy=2", "loss.tau=5E-1"])
    assert loaded.train.lr == 1e-3 and loaded.eval.strategy == "2" and loaded.loss.tau == 0.5
    with pytest.raises(ConfigError, match="eval.strategy: 3 is not one of"):
        load_config(cfg, ["eval.strategy=3"])


@pytest.mark.parametrize("nms", ["7", "-0.5", "nan"])
def test_evaluate_nms_outside_0_1_is_refused(capsys, trained, nms):
    run, _ = trained
    assert "--nms must be in (0, 1]" in cli_error(capsys, "evaluate", str(run), "--nms", nms)


@pytest.mark.parametrize("duration", ["inf", "0", "-3"])
def test_predict_duration_must_be_finite_and_positive(capsys, trained, charades_files, duration):
    run, _ = trained
    video = (charades_files / "charades_sta_test.txt").read_text().split()[0]
    err = cli_error(capsys, "predict", "--checkpoint", str(run / "checkpoints" / "best.pt"),
                    "--features", str(charades_files / "vgg_rgb_features.hdf5"), "--video", video,
                    "--query", "a person", "--duration", duration)
    assert "--duration" in err


# ----------------------------------------------------------------------------------------------
# 5. One line instead of a traceback


def test_damaged_hdf5_internals_are_one_line(tmp_path, trained, charades_files):
    _, values = trained
    folder, cfg = real_copy(tmp_path, charades_files, values)
    path = folder / "vgg_rgb_features.hdf5"
    data = bytearray(path.read_bytes())
    for i in range(800, 4000):  # past the superblock: the root group's symbol table
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    result = pln("train", str(write_yaml(tmp_path / "cfg.yaml", cfg)), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    line = first_error(result)
    assert str(path) in line and "damaged HDF5" in line
    debug = pln("--debug", "train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "run"))
    assert debug.returncode == 2 and debug.stderr.splitlines()[-1] == line  # same line, still one error


def test_mixed_widths_and_string_features_are_named(tmp_path):
    path = tmp_path / "f.hdf5"
    with h5py.File(path, "w") as f:
        f["a"] = np.ones((5, 16), np.float32)
        f["b"] = np.ones((5, 8), np.float32)
        f["c"] = np.array([b"x" * 16] * 5)[:, None].repeat(16, axis=1)
    store = FeatureStore(path, "charades", 16)
    assert store.get("a").shape == (5, 16)
    with pytest.raises(DataError, match="'b' has 8-d features"):
        store.get("b")
    with pytest.raises(DataError, match="'c' are of type"):
        store.get("c")


def test_unknown_video_in_predict_says_which_file(capsys, trained, charades_files, tmp_path):
    run, _ = trained
    best = str(run / "checkpoints" / "best.pt")
    feats = tmp_path / "f.hdf5"
    shutil.copy(charades_files / "vgg_rgb_features.hdf5", feats)
    err = cli_error(capsys, "predict", "--checkpoint", best, "--features", str(feats), "--video", "NOPE",
                    "--query", "a person")
    assert "not in this feature file" in err and "f.hdf5" in err
    with h5py.File(feats, "a") as f:
        f["ONLY_HERE"] = np.ones((10, 16), np.float32)
    err = cli_error(capsys, "predict", "--checkpoint", best, "--features", str(feats), "--video", "ONLY_HERE",
                    "--query", "a person")
    assert "not in the annotations" in err and "--duration" in err


def test_unwritable_outputs_say_so_and_evaluate_prints_first(capsys, trained, tmp_path):
    run, _ = trained
    rc = cli_main(["evaluate", str(run), "--out", "/sys/pln-result.json"])
    captured = capsys.readouterr()
    assert rc == 2
    assert json.loads(captured.out)["metrics"]  # the result was printed before the write failed
    assert captured.err.startswith("error: /sys/pln-result.json: cannot write: the folder is not writable")
    cfg = write_yaml(tmp_path / "cfg.yaml", tiny(tmp_path))
    err = cli_error(capsys, "train", str(cfg), "--out", "/sys/pln-run")
    assert "/sys/pln-run" in err and "not writable" in err


def test_full_disk_is_named(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("pln.utils.os.replace", full)
    with pytest.raises(OutputError, match=r"x\.txt: cannot write: the disk is full"):
        atomic_write_text(tmp_path / "x.txt", "hello")
    assert list(tmp_path.iterdir()) == []  # no temp file left behind


def test_damaged_run_config_is_one_line(tmp_path, capsys, trained):
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "config.yaml").write_text("data: {dataset: [unclosed\n")
    err = cli_error(capsys, "evaluate", str(copy))
    assert "config.yaml: damaged" in err


# ----------------------------------------------------------------------------------------------
# 6-7. Data quality, early checks, umask


def test_absurd_feature_rows_are_counted_and_capped(tmp_path, capsys, trained, charades_files):
    _, values = trained
    folder, cfg = real_copy(tmp_path, charades_files, values)
    with h5py.File(folder / "vgg_rgb_features.hdf5", "a") as f:
        video = sorted(f)[0]
        x = f[video][()]
        x[: max(1, len(x) // 2)] = 3e30  # finite, absurd: overflows the L2 norm
        f[video][...] = x
    path = write_yaml(tmp_path / "cfg.yaml", cfg)
    err = cli_error(capsys, "train", str(path), "--out", str(tmp_path / "run"))
    assert "vgg_rgb_features.hdf5" in err and "data.max_bad_row_fraction=0.01" in err
    cfg["data"]["max_bad_row_fraction"] = 1.0
    reports = [build_dataset(config_from_dict(cfg), s).report["bad_rows_zeroed"] for s in ("train", "val", "test")]
    for report in reports:
        assert 0 <= report["fraction"] == report["rows"] / report["of_rows"] <= 1
    assert sum(r["rows"] for r in reports) == max(1, len(x) // 2)


def test_missing_test_split_is_caught_before_training(tmp_path, capsys, trained, charades_files):
    _, values = trained
    folder, cfg = real_copy(tmp_path, charades_files, values)
    (folder / "charades_sta_test.txt").unlink()
    err = cli_error(capsys, "train", str(write_yaml(tmp_path / "cfg.yaml", cfg)), "--out", str(tmp_path / "run"))
    assert "charades_sta_test.txt not found" in err
    assert not (tmp_path / "cache").exists()  # the train split was not built first


def test_outputs_and_caches_follow_the_umask(tmp_path):
    from pln.data.cache import cached_dir

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
        entry = cached_dir(tmp_path / "cache", "entry", lambda tmp: (tmp / "a").write_text("x"))
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644
    assert entry.stat().st_mode & 0o777 == 0o755

