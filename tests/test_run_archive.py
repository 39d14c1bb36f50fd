"""pln.engine.run_archive (``pln pack-runs`` / ``pln unpack-runs``): a finished run carried to
another runs root without its checkpoints is taken there as finished (same files, nothing
retrained), one that ran to its epoch cap with them (extended there as a fresh longer run); an
unfinished run carried with its checkpoints resumes there to the metrics of an
uninterrupted run; packing is byte-for-byte repeatable; damaged archives, damaged result files, a
run being trained and a folder with results are refused or left with one line; an interrupted
unpack never leaves a run that looks finished. Tiny synthetic runs on the CPU, and hand-made
run folders for the refusals."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pln.cli import main as cli_main
from pln.config import config_from_dict, save_config
from pln.digest import atomic_write_digested
from pln.engine import run_dir as run_dir_module
from pln.engine.run_archive import pack_run, pack_runs, unpack_run, unpack_runs
from pln.engine.run_dir import RunDir
from pln.engine.run_lock import hold_run_lock
from pln.engine.train import KILL_AT_STEP_ENV, train
from pln.errors import DataError
from test_engine import _train_steps, tiny_config, write_config


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the lock, by its path in the folder."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A tiny run trained to the end under ``<tmp>/runs/tiny/seed0``: (runs root, config, result)."""
    tmp = tmp_path_factory.mktemp("archive")
    # Val R1@0.5 cannot move at this rate, so the stopping rule ends the run after epoch 2 of 4.
    values = tiny_config(tmp, train__lr=1e-9, train__max_epochs=4, train__stop_patience=1)
    result = train(config_from_dict(values), tmp / "runs" / "tiny" / "seed0")
    return tmp / "runs", values, result


def test_a_finished_run_travels_without_checkpoints_and_is_not_retrained(finished, tmp_path):
    runs, values, result = finished
    assert result["run"]["epochs_run"] == 2  # stopped by its rule, before its cap
    outcomes = pack_runs(runs, tmp_path / "archive")
    archive = tmp_path / "archive" / "tiny" / "seed0.tar.xz"
    assert [(o.action, o.target) for o in outcomes] == [("packed", archive)]
    assert "finished, without checkpoints" in outcomes[0].detail
    first = archive.read_bytes()
    pack_runs(runs, tmp_path / "archive")
    assert archive.read_bytes() == first  # repeatable: an unchanged run gives the same bytes

    [restored] = unpack_runs(tmp_path / "archive", tmp_path / "elsewhere")
    target = tmp_path / "elsewhere" / "tiny" / "seed0"
    assert (restored.action, restored.target) == ("unpacked", target)
    source = _files(runs / "tiny" / "seed0")
    assert _files(target) == {k: v for k, v in source.items() if not k.startswith("checkpoints/")}
    assert any(k.startswith("checkpoints/") for k in source)
    mtime = (target / RunDir.TEST_METRICS).stat().st_mtime_ns
    assert train(config_from_dict(values), target) == result  # taken as finished: nothing trained
    assert (target / RunDir.TEST_METRICS).stat().st_mtime_ns == mtime
    assert not (target / RunDir.CHECKPOINTS).exists()

    # A second unpack leaves the folder that now holds results.
    before = _files(target)
    [again] = unpack_runs(tmp_path / "archive", tmp_path / "elsewhere")
    assert again.action == "left" and _files(target) == before


def test_a_run_that_reached_its_epoch_cap_keeps_its_checkpoints_and_can_be_extended_elsewhere(tmp_path):
    values = tiny_config(tmp_path, train__max_epochs=2)
    train(config_from_dict(values), tmp_path / "runs" / "m" / "seed0")
    [packed] = pack_runs(tmp_path / "runs", tmp_path / "archive")
    assert "finished at its epoch cap, extendable, with checkpoints" in packed.detail
    unpack_runs(tmp_path / "archive", tmp_path / "other")
    longer = tiny_config(tmp_path, train__max_epochs=3)
    extended = train(config_from_dict(longer), tmp_path / "other" / "m" / "seed0", extend=True)
    fresh = train(config_from_dict(longer), tmp_path / "fresh")
    assert extended["metrics"] == fresh["metrics"] and extended["run"]["epochs_run"] == 3


def test_checkpoints_travel_when_asked(finished, tmp_path):
    runs, _, _ = finished
    outcome = pack_run(runs / "tiny" / "seed0", tmp_path / "a.tar.xz", checkpoints=True)
    assert "with checkpoints" in outcome.detail
    unpack_run(tmp_path / "a.tar.xz", tmp_path / "copy")
    assert _files(tmp_path / "copy") == _files(runs / "tiny" / "seed0")


def test_an_unfinished_run_resumes_elsewhere_to_the_uninterrupted_metrics(tmp_path):
    values = tiny_config(tmp_path)
    result = train(config_from_dict(values), tmp_path / "uninterrupted")
    cfg_path = write_config(tmp_path, values)
    killed = tmp_path / "runs" / "tiny" / "seed0"
    steps = _train_steps(values)
    cmd = [sys.executable, "-m", "pln.cli", "train", str(cfg_path), "--out", str(killed)]
    done = subprocess.run(cmd, env={**os.environ, KILL_AT_STEP_ENV: str(steps + 2)}, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL
    assert not (killed / RunDir.TEST_METRICS).exists()

    [packed] = pack_runs(tmp_path / "runs", tmp_path / "archive")
    assert "unfinished, resumable, with checkpoints" in packed.detail
    [restored] = unpack_runs(tmp_path / "archive", tmp_path / "other")
    assert "unfinished, resumable, with checkpoints" in restored.detail
    resumed = train(config_from_dict(values), tmp_path / "other" / "tiny" / "seed0")
    assert "resuming" in (tmp_path / "other" / "tiny" / "seed0" / RunDir.LOG).read_text()  # not retrained
    assert resumed["metrics"] == result["metrics"]
    assert resumed["run"]["selected_epoch"] == result["run"]["selected_epoch"]


# Hand-made run folders for the refusals: a config, a checkpoint, digested result files.

def _make_run(root: Path, finished: bool = True) -> RunDir:
    run = RunDir(root)
    (root / RunDir.CHECKPOINTS).mkdir(parents=True)
    save_config(config_from_dict(tiny_config(root.parent), str(root)), run.config)
    run.last.write_bytes(b"weights")
    if finished:
        atomic_write_digested(run.predictions, lambda tmp: Path(tmp).write_text("qid,start,end\n0,1.0,2.0\n"))
        run.write_test_metrics({"epochs_run": 3, "selected_epoch": 2}, {"stage1": {"R1@0.5": 50.0}}, "stage1")
    return run


def test_a_damaged_result_file_is_not_packed(tmp_path):
    run = _make_run(tmp_path / "runs" / "m" / "seed0")
    run.predictions.write_text("qid,start,end\n0,1.0,9.0\n")
    with pytest.raises(DataError, match=r"predictions\.csv: content does not match its digest"):
        pack_run(run.root, tmp_path / "a.tar.xz")
    assert not (tmp_path / "a.tar.xz").exists()


def test_a_run_being_trained_is_left_and_the_others_packed(tmp_path):
    busy = _make_run(tmp_path / "runs" / "m" / "seed0")
    _make_run(tmp_path / "runs" / "m" / "seed1")
    _make_run(tmp_path / "runs" / "m" / "seed2", finished=False).last.unlink()
    _make_run(tmp_path / "runs" / "m" / ".seed1.x7.tmp")  # an interrupted copy: not a run folder
    with hold_run_lock(busy.root):
        outcomes = {o.source.name: (o.action, o.detail) for o in pack_runs(tmp_path / "runs", tmp_path / "archive")}
    assert outcomes["seed0"] == ("left", "being trained now; pack it when its process has ended")
    assert outcomes["seed1"][0] == "packed"
    assert outcomes["seed2"] == ("left", "unfinished, no checkpoints/last.pt to resume from")
    assert len(outcomes) == 3
    assert sorted(p.name for p in (tmp_path / "archive" / "m").iterdir()) == ["seed1.tar.xz"]


def _tar(path: Path, members: dict[str, bytes], link: str | None = None) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:200]), "not a readable run archive"),
    (lambda p: p.write_text("not an archive"), "not a readable run archive"),
    (lambda p: _tar(p, {"epochs.csv": b"epoch\n1\n"}), "holds no config.yaml, so it is not a run archive"),
    (lambda p: _tar(p, {"config.yaml": b"name: x\n"}, link="checkpoints"), "'checkpoints', not a plain file"),
])
def test_a_bad_archive_is_refused_with_one_line_and_nothing_restored(tmp_path, make, message):
    run = _make_run(tmp_path / "runs" / "m" / "seed0")
    archive = tmp_path / "a.tar.xz"
    pack_run(run.root, archive)
    make(archive)
    with pytest.raises(DataError, match=message) as info:
        unpack_run(archive, tmp_path / "to" / "seed0")
    assert str(archive) in str(info.value) and "\n" not in str(info.value)
    assert not RunDir(tmp_path / "to" / "seed0").has_results()
    assert [p.name for p in (tmp_path / "to").iterdir()] == ["seed0"]  # no temp folder left behind


def test_an_archive_whose_results_do_not_match_their_digests_is_refused(tmp_path):
    run = _make_run(tmp_path / "runs" / "m" / "seed0")
    files = _files(run.root)
    files["predictions.csv"] = b"qid,start,end\n0,1.0,9.0\n"
    archive = _tar(tmp_path / "a.tar.xz", files)
    with pytest.raises(DataError, match=r"a\.tar\.xz: its predictions\.csv does not match its digest"):
        unpack_run(archive, tmp_path / "to")
    assert not RunDir(tmp_path / "to").has_results()


def test_an_interrupted_unpack_leaves_a_run_that_does_not_look_finished(tmp_path, monkeypatch):
    run = _make_run(tmp_path / "runs" / "m" / "seed0")
    pack_run(run.root, tmp_path / "a.tar.xz")
    real = os.replace
    moved: list[str] = []

    def record(src, dst):
        moved.append(Path(dst).name)
        real(src, dst)

    monkeypatch.setattr(run_dir_module.os, "replace", record)
    unpack_run(tmp_path / "a.tar.xz", tmp_path / "whole")
    assert moved[-1] == RunDir.TEST_METRICS and len(moved) == len(_files(tmp_path / "whole"))
    for k in range(len(moved)):  # interrupted at each move in turn
        calls = iter(range(len(moved)))

        def interrupt(src, dst, k=k):
            if next(calls) == k:
                raise KeyboardInterrupt
            real(src, dst)

        monkeypatch.setattr(run_dir_module.os, "replace", interrupt)
        with pytest.raises(KeyboardInterrupt):
            unpack_run(tmp_path / "a.tar.xz", tmp_path / f"to{k}")
        assert not RunDir(tmp_path / f"to{k}").is_complete()


def test_cli_prints_one_line_per_run_and_refuses_an_empty_root(tmp_path, capsys):
    _make_run(tmp_path / "runs" / "m" / "seed0")
    assert cli_main(["pack-runs", str(tmp_path / "runs"), "--out", str(tmp_path / "archive")]) == 0
    assert capsys.readouterr().out.startswith(f"packed   {tmp_path / 'runs' / 'm' / 'seed0'} -> ")
    assert cli_main(["unpack-runs", str(tmp_path / "archive"), "--out", str(tmp_path / "back")]) == 0
    assert "unpacked" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert cli_main(["pack-runs", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    assert cli_main(["unpack-runs", str(tmp_path / "empty"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path / 'empty'}: holds no run folder (a folder with config.yaml); give a runs root "
                   "such as runs/demo",
                   f"error: {tmp_path / 'empty'}: holds no run archive (*.tar.xz); give the folder `pln pack-runs` wrote"]
