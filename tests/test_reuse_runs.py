"""benchmarks/reuse_runs.py and pln.bench.side_runs.place_run: a trial's finished run of the
setting's current config replaces the setting's folder (files as in the trial, its lock not
copied, the completeness mark moved in last); a run of another config, an unfinished one, one being
written and an equal run already in place are left; the exit status says whether any run is the
setting's. Run folders here are made by hand (a config, a checkpoint file, test metrics)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pln.bench import side_runs
from pln.config import config_from_dict, merge, parse_override, save_config
from pln.engine import run_dir as run_dir_module
from pln.engine.run_dir import RunDir
from pln.engine.run_lock import LOCK_NAME, hold_run_lock
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan, Run

from bench_scripts import REPO, load_benchmark

reuse_runs = load_benchmark("reuse_runs")

MODEL = "charades-i3d-tan"


def _plan(tmp_path: Path) -> Plan:
    config = load_snakemake_config([REPO / "config" / "demo-plateau.yaml"], base=REPO / "config.yaml")
    config["runs_root"] = str(tmp_path / "runs")
    return Plan(config)


def _make_run(root: Path, values: dict, finished: bool = True, r1: float = 50.0) -> RunDir:
    """A run folder as ``pln train`` leaves it: its resolved config, a checkpoint, test metrics."""
    run = RunDir(root)
    (root / RunDir.CHECKPOINTS).mkdir(parents=True)
    save_config(config_from_dict(values, str(root)), run.config)
    run.last.write_bytes(os.urandom(64))
    if finished:
        run.write_test_metrics({"epochs_run": 30, "selected_epoch": 5}, {"default": {"R1@0.5": r1}}, "default")
    return run


def _values(plan: Plan, seed: int, *overrides: str) -> dict:
    values = plan.run_configs[plan.config_name(Run(MODEL, "charades-i3d", "train", seed))]
    for item in overrides:
        values = merge(values, parse_override(item))
    return values


def _outcomes(plan: Plan, source: Path) -> dict[str, str]:
    return {Path(folder).relative_to(plan.runs_root).as_posix(): what
            for folder, what in reuse_runs.reuse(plan, source)}


def test_places_the_trials_run_of_the_settings_config(tmp_path):
    plan = _plan(tmp_path)
    source = tmp_path / "runs" / "demo-plateau-trial"
    src = _make_run(source / MODEL / "seed0", _values(plan, 0, "train.device=cpu", "train.threads=2"), r1=61.5)
    with hold_run_lock(src.root):  # a lock file in the trial's folder, not to be copied
        pass
    stale = _make_run(Path(plan.run_dir(Run(MODEL, "charades-i3d", "train", 0))),
                      _values(plan, 0, "data.synthetic.scale=3.0"), r1=40.0)
    (stale.root / "old-only.txt").write_text("from the run of another config")
    outcomes = _outcomes(plan, source)
    assert outcomes[f"{MODEL}/seed0"] == reuse_runs.PLACED
    assert outcomes[f"{MODEL}/seed1"] == "no run"
    assert len(outcomes) == 72  # every trained run of the setting, none of its prior baselines
    assert not (stale.root / "old-only.txt").exists()
    assert stale.last.read_bytes() == src.last.read_bytes()
    assert stale.read_test_metrics()["metrics"]["default"]["R1@0.5"] == 61.5
    assert stale.config.read_text() == src.config.read_text()
    assert (stale.root / LOCK_NAME).is_file()  # the setting's own lock, from the placement
    assert not [p for p in stale.root.parent.iterdir() if p.name.endswith(".tmp")]
    stamp = stale.test_metrics.stat().st_mtime_ns
    assert _outcomes(plan, source)[f"{MODEL}/seed0"] == reuse_runs.ALREADY  # a second call leaves it
    assert stale.test_metrics.stat().st_mtime_ns == stamp


def test_leaves_what_is_not_the_settings_run(tmp_path):
    plan = _plan(tmp_path)
    source = tmp_path / "runs" / "demo-plateau-trial"
    _make_run(source / MODEL / "seed0", _values(plan, 0, "data.synthetic.scale=9.0"))
    _make_run(source / MODEL / "seed1", _values(plan, 1), finished=False)
    busy = _make_run(source / MODEL / "seed2", _values(plan, 2))
    setting = [_make_run(Path(plan.run_dir(Run(MODEL, "charades-i3d", "train", s))),
                         _values(plan, s, "train.lr=0.01")) for s in (0, 1, 2)]
    before = [run.test_metrics.read_bytes() for run in setting]
    damaged = _make_run(source / "charades-i3d-pln2" / "seed0", _values(plan, 0))
    damaged.config.write_text("model: [unclosed\n")
    with hold_run_lock(busy.root):
        outcomes = _outcomes(plan, source)
    assert outcomes["charades-i3d-pln2/seed0"].startswith(f"unreadable: {damaged.config}: damaged")
    assert outcomes[f"{MODEL}/seed0"] == "another config: data.synthetic.scale: trial has 9.0, setting has 6.0"
    assert outcomes[f"{MODEL}/seed1"] == "unfinished"
    assert outcomes[f"{MODEL}/seed2"] == "being written"
    assert [run.test_metrics.read_bytes() for run in setting] == before


def test_the_completeness_mark_moves_in_last(tmp_path, monkeypatch):
    plan = _plan(tmp_path)
    src = _make_run(tmp_path / "trial" / "seed0", _values(plan, 0))
    dst = tmp_path / "setting" / "seed0"
    moved = []
    real_replace = os.replace

    def replace(a, b):
        moved.append(Path(b).name)
        if Path(b).name == RunDir.TEST_METRICS:
            raise OSError("killed before the last move")
        real_replace(a, b)

    monkeypatch.setattr(run_dir_module.os, "replace", replace)  # place_run moves with move_into_run_folder
    with pytest.raises(OSError):
        side_runs.place_run(src.root, dst)
    assert moved[-1] == RunDir.TEST_METRICS and len(moved) > 2
    assert not RunDir(dst).is_complete() and RunDir(dst).last.is_file()  # a run pln train resumes
    assert not [p for p in dst.parent.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(ValueError, match="not a finished run"):
        side_runs.place_run(dst, tmp_path / "elsewhere")


def test_exit_status(tmp_path, monkeypatch, capsys):
    plan = _plan(tmp_path)
    source = tmp_path / "runs" / "demo-plateau-trial"
    _make_run(source / MODEL / "seed0", _values(plan, 0, "data.synthetic.scale=9.0"))
    monkeypatch.setattr(reuse_runs, "load_setting", lambda parser, args: plan)
    assert reuse_runs.main(["demo-plateau", "--from", str(source)]) == 1
    out = capsys.readouterr().out
    assert "0 placed" in out and "1 another config" in out and "71 no run" in out
    assert "adopt the trial's change in the overlay first" in out
    _make_run(source / MODEL / "seed1", _values(plan, 1))
    assert reuse_runs.main(["demo-plateau", "--from", str(source)]) == 0
    assert "1 placed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        reuse_runs.main(["demo-plateau", "--from", str(tmp_path / "missing")])
    assert "no such folder" in capsys.readouterr().err
