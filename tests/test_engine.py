"""The training engine: determinism, resume equivalence, evaluate-from-checkpoint, predict, and
refusal of mismatched or corrupt checkpoints. Tiny synthetic runs on the CPU."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from pln.cli import main as cli_main
from pln.config import config_from_dict
from pln.engine.checkpoint import load_checkpoint
from pln.engine.evaluate import evaluate_run
from pln.engine.predict import predict
from pln.engine.run_dir import RunDir
from pln.engine.train import train
from pln.errors import CheckpointError, ConfigError

TINY = {
    "name": "tiny",
    "data": {"dataset": "synthetic-charades", "synthetic": {"scale": 0.1, "feature_dim": 16}},
    "model": {"feature_dim": 16, "num_units": 32, "hidden": 16, "word_dim": 50, "lstm_layers": 1,
              "clips": [8, 16], "conv_layers": 1, "conv_kernel": 3, "conv_channels": 16},
    # patience 0: the plateau schedule acts within the 3 epochs (and resume must restore it)
    "train": {"max_epochs": 3, "batch_size": 16, "lr": 1e-3, "threads": 1,
              "lr_plateau": {"factor": 0.5, "patience": 0}},
}


def tiny_config(tmp: Path, **over) -> dict:
    values = json.loads(json.dumps(TINY))
    values["data"]["data_dir"] = str(tmp / "data")
    values["data"]["cache_dir"] = str(tmp / "cache")
    for key, value in over.items():
        section, name = key.split("__")
        values[section][name] = value
    return values


def write_config(tmp: Path, values: dict) -> Path:
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("engine")
    values = tiny_config(tmp)
    result = train(config_from_dict(values), tmp / "run")
    return tmp / "run", values, result


def test_run_folder_is_complete(trained):
    run, _, result = trained
    for name in ("config.yaml", "epochs.csv", "checkpoints/best.pt", "checkpoints/last.pt",
                 "test_metrics.json", "predictions.csv", "score_maps.npz", "data_report.json", "train.log"):
        assert (run / name).is_file(), name
    assert set(result["metrics"]) == {"stage1", "stage2", "strategy2"}
    assert result["run"]["selection_split"] == "val"
    assert 1 <= result["run"]["selected_epoch"] <= 3
    import pandas as pd

    epochs = pd.read_csv(run / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert {"lr", "loss_stage1", "loss_stage2", "val_loss", "val_R1@0.5", "train_queries_per_s"} <= set(epochs.columns)
    preds = pd.read_csv(run / "predictions.csv")
    assert preds.groupby("query")["rank"].max().le(5).all()
    assert preds["iou"].between(0, 1).all()


def test_plateau_schedule_follows_the_validation_loss(trained):
    """epochs.csv's lr column against ReduceLROnPlateau restated: with patience 0, the next
    epoch's rate is halved after every validation loss that is not below best * (1 - 1e-4)."""
    import pandas as pd

    run, values, _ = trained
    epochs = pd.read_csv(run / "epochs.csv")
    assert epochs["val_loss"].gt(0).all()
    lr, best = values["train"]["lr"], float("inf")
    for row in epochs.itertuples():
        assert row.lr == pytest.approx(lr, rel=1e-12)
        if row.val_loss < best * (1 - 1e-4):
            best = row.val_loss
        else:
            lr *= 0.5
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["scheduler"]["best"] == pytest.approx(best)
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(lr)


def test_checkpoint_of_an_older_model_config_still_loads():
    """A checkpoint written before share_heads was split (and before the UC/CFM keys existed)
    matches today's config with the defaults that equal its behaviour."""
    import dataclasses

    from pln.config import ModelConfig
    from pln.engine.checkpoint import check_model_config

    today = config_from_dict({"model": {"share_fusion": True, "share_predictor": True}}).to_dict()["model"]
    old = {k: v for k, v in today.items() if k not in (
        "share_fusion", "share_predictor", "uc_relu", "uc_blocks", "uc_same_size", "cfm_projection")}
    old["share_heads"] = True
    check_model_config("old.pt", {"config": {"model": old}}, today)
    with pytest.raises(CheckpointError, match=r"model\.share_fusion"):
        check_model_config("old.pt", {"config": {"model": old}}, dataclasses.asdict(ModelConfig()))
    with pytest.raises(CheckpointError, match=r"unknown config key 'model\.bogus'"):
        check_model_config("odd.pt", {"config": {"model": {**old, "bogus": 1}}}, today)


def test_second_call_does_nothing(trained):
    run, values, result = trained
    mtime = (run / "test_metrics.json").stat().st_mtime_ns
    again = train(config_from_dict(values), run)
    assert again == result
    assert (run / "test_metrics.json").stat().st_mtime_ns == mtime


def test_same_seed_same_metrics(trained, tmp_path):
    _, values, result = trained
    values = dict(values)
    again = train(config_from_dict(values), tmp_path / "run2")
    assert again["metrics"] == result["metrics"]


def test_evaluate_equals_training_time_metrics(trained):
    run, _, result = trained
    ev = evaluate_run(run)
    assert ev["metrics"] == result["metrics"]
    # Strategy 1 at stage 1 alone, and another NMS threshold, without retraining.
    one = evaluate_run(run, stage=1)
    assert one["metrics"]["stage1"] == result["metrics"]["stage1"]
    looser = evaluate_run(run, stage=2, nms_threshold=0.9)
    assert looser["nms_threshold"] == 0.9


def test_evaluate_cli_prints_json(trained, capsys):
    run, _, result = trained
    assert cli_main(["evaluate", str(run), "--strategy", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["metrics"]["strategy2"] == result["metrics"]["strategy2"]


def _train_steps(values: dict) -> int:
    from pln.data.dataset import build_dataset

    return -(-len(build_dataset(config_from_dict(values), "train")) // values["train"]["batch_size"])


def _kill_and_resume(values: dict, tmp_path: Path, kill_at: int) -> Path:
    """Train in a subprocess that SIGKILLs itself at global step ``kill_at``, then rerun the same
    command to completion; returns the run folder."""
    from pln.engine.train import KILL_AT_STEP_ENV

    cfg_path = write_config(tmp_path, values)
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pln.cli", "train", str(cfg_path), "--out", str(run)]
    killed = subprocess.run(cmd, env={**env, KILL_AT_STEP_ENV: str(kill_at)}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not (run / "test_metrics.json").exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return run


def test_resume_after_kill_equals_uninterrupted(trained, tmp_path):
    _, values, result = trained
    # Steps of the whole run: the killed process dies at a random one of them, mid-epoch or not.
    steps = _train_steps(values)
    kill_at = random.Random(1234).randint(steps + 1, steps * values["train"]["max_epochs"])
    run = _kill_and_resume(values, tmp_path, kill_at)  # after at least one checkpoint
    resumed = json.loads((run / "test_metrics.json").read_text())
    assert resumed["metrics"] == result["metrics"]
    assert resumed["run"]["selected_epoch"] == result["run"]["selected_epoch"]


def test_resume_restores_the_plateau_schedule(tmp_path):
    """With a rate too small to move the validation loss and patience 0, the schedule halves the
    rate after every validation but the first. Killed in epoch 2, the resumed run must still
    know epoch 1's best loss to halve the rate for epoch 3, as the uninterrupted run does."""
    import pandas as pd

    values = tiny_config(tmp_path, train__lr=1e-6)
    whole = tmp_path / "whole"
    train(config_from_dict(values), whole)
    lrs = list(pd.read_csv(whole / "epochs.csv")["lr"])
    assert lrs == pytest.approx([1e-6, 1e-6, 5e-7], rel=1e-12)
    run = _kill_and_resume(values, tmp_path, _train_steps(values) + 1)  # the first step of epoch 2
    resumed = pd.read_csv(run / "epochs.csv")
    assert list(resumed["lr"]) == pytest.approx(lrs, rel=1e-12)
    assert json.loads((run / "test_metrics.json").read_text())["metrics"] == \
        json.loads((whole / "test_metrics.json").read_text())["metrics"]


def test_predict_top5_on_trained_model(trained):
    run, values, _ = trained
    from pln.data.dataset import build_dataset

    ds = build_dataset(config_from_dict(values), "test")
    sample = ds.samples[0]
    features = ds.store.path
    key, moments = predict(run / "checkpoints" / "best.pt", features, sample.video_id, sample.sentence)
    assert key == "stage2"
    assert 1 <= len(moments) <= 5
    scores = [m[2] for m in moments]
    assert scores == sorted(scores, reverse=True)
    for start, end, _ in moments:
        assert 0 <= start < end <= sample.duration + 1e-4


def test_predict_cli(trained, capsys):
    run, values, _ = trained
    from pln.data.dataset import build_dataset

    ds = build_dataset(config_from_dict(values), "test")
    s = ds.samples[0]
    rc = cli_main(["predict", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--features",
                   str(ds.store.path), "--video", s.video_id, "--query", s.sentence])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].split()[:2] == ["rank", "start"]
    assert 3 <= len(lines) <= 7


def test_mismatched_checkpoint_is_refused(trained, tmp_path):
    run, values, _ = trained
    other = tmp_path / "other"
    other.mkdir()
    other_values = json.loads(json.dumps(values))
    other_values["model"]["hidden"] = 24
    (other / "config.yaml").write_text(yaml.safe_dump(config_from_dict(other_values).to_dict()))
    (other / "checkpoints").mkdir()
    (other / "checkpoints" / "best.pt").write_bytes((run / "checkpoints" / "best.pt").read_bytes())
    with pytest.raises(CheckpointError, match=r"model\.hidden"):
        evaluate_run(other)


def test_speed_only_model_keys_do_not_block_a_checkpoint(trained, tmp_path):
    """A checkpoint evaluates under other speed settings (dense ConvNet, other strips, layout, the
    map's backward) with the same metrics: they change how the model is computed, not what."""
    run, values, _ = trained
    other = tmp_path / "speed"
    other.mkdir()
    other_values = json.loads(json.dumps(values))
    other_values["model"].update(conv_banded=False, conv_block=3, conv_channels_last=True, map_fast=False)
    (other / "config.yaml").write_text(yaml.safe_dump(config_from_dict(other_values).to_dict()))
    (other / "checkpoints").mkdir()
    (other / "checkpoints" / "best.pt").write_bytes((run / "checkpoints" / "best.pt").read_bytes())
    ours, theirs = evaluate_run(run), evaluate_run(other)
    for key in ours["metrics"]:
        for metric, value in ours["metrics"][key].items():
            assert theirs["metrics"][key][metric] == pytest.approx(value, abs=1e-6)


def test_corrupt_checkpoint_is_refused(trained, tmp_path, capsys):
    run, _, _ = trained
    bad = tmp_path / "bad.pt"
    bad.write_bytes((run / "checkpoints" / "best.pt").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="bad.pt"):
        evaluate_run(run, checkpoint=str(bad))
    rc = cli_main(["evaluate", str(run), "--checkpoint", str(bad)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.pt" in err and len(err.splitlines()) == 1


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "model": {}, "obj": object()}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        from pln.engine.checkpoint import load_checkpoint

        load_checkpoint(path)


def test_run_folder_of_another_config_is_refused(trained):
    run, values, _ = trained
    other = json.loads(json.dumps(values))
    other["train"]["lr"] = 0.5
    with pytest.raises(ConfigError, match="train.lr"):
        train(config_from_dict(other), run)


def test_replace_stale_empties_a_folder_of_another_config_and_trains_afresh(tmp_path, trained):
    """`--replace-stale` (what the workflow's rules pass): a folder trained with another config is
    emptied but for its lock, and the run it then holds equals a fresh run of the new config."""
    import shutil

    run, values, _ = trained
    stale = tmp_path / "stale"
    shutil.copytree(run, stale)
    (stale / "checkpoints" / "extra.pt").write_bytes(b"old")
    other = json.loads(json.dumps(values))
    other["train"]["lr"] = 0.5
    other["train"]["max_epochs"] = 1
    replaced = train(config_from_dict(other), stale, replace_stale=True)
    fresh = train(config_from_dict(other), tmp_path / "fresh")
    assert replaced["metrics"] == fresh["metrics"]
    assert (stale / "test_metrics.json").read_bytes() == (tmp_path / "fresh" / "test_metrics.json").read_bytes()
    assert not (stale / "checkpoints" / "extra.pt").exists() and (stale / ".lock").is_file()
    assert yaml.safe_load((stale / "config.yaml").read_text())["train"]["lr"] == 0.5
    assert len((stale / "epochs.csv").read_text().splitlines()) == 2  # header + the one epoch
    # the same config again: nothing is emptied, the complete run is returned as it is
    assert train(config_from_dict(other), stale, replace_stale=True)["metrics"] == fresh["metrics"]


def test_extend_continues_a_finished_run_with_a_longer_budget(tmp_path, trained):
    """`--extend`: a finished 3-epoch run continued to 5 epochs equals a fresh 5-epoch run (same
    epochs, same test file); without the flag, with a shorter budget or with another key changed
    the folder is refused, naming the key."""
    import shutil

    import pandas as pd

    run, values, _ = trained
    longer = json.loads(json.dumps(values))
    longer["train"]["max_epochs"] = 5
    extended_dir = tmp_path / "extended"
    shutil.copytree(run, extended_dir)
    with pytest.raises(ConfigError, match="train.max_epochs.*--extend"):
        train(config_from_dict(longer), extended_dir)
    extended = train(config_from_dict(longer), extended_dir, extend=True)
    fresh = train(config_from_dict(longer), tmp_path / "fresh")
    assert extended["metrics"] == fresh["metrics"]
    assert extended["run"]["epochs_run"] == 5
    assert (extended_dir / "test_metrics.json").read_bytes() == (tmp_path / "fresh" / "test_metrics.json").read_bytes()
    curves = [pd.read_csv(d / "epochs.csv").filter(regex="^(epoch|train_loss|val_(?!seconds))") for d in (extended_dir, tmp_path / "fresh")]
    assert len(curves[0]) == 5 and curves[0].equals(curves[1])
    assert yaml.safe_load((extended_dir / "config.yaml").read_text())["train"]["max_epochs"] == 5
    shorter = json.loads(json.dumps(longer))
    shorter["train"]["max_epochs"] = 4
    with pytest.raises(ConfigError, match="train.max_epochs"):
        train(config_from_dict(shorter), extended_dir, extend=True)
    other = json.loads(json.dumps(longer))
    other["train"].update(max_epochs=6, lr=0.5)
    with pytest.raises(ConfigError, match="train.lr"):
        train(config_from_dict(other), extended_dir, extend=True)


def test_budget_extension_rule():
    """Longer or equal max_epochs and stop_patience (None: no rule, the longest), nothing else."""
    from pln.engine.run_dir import is_budget_extension

    def cfg(max_epochs, patience, lr=1e-3):
        return {"train": {"max_epochs": max_epochs, "stop_patience": patience, "lr": lr}, "model": {"hidden": 8}}

    assert is_budget_extension(cfg(150, 10), cfg(150, 25))
    assert is_budget_extension(cfg(150, 10), cfg(200, None))
    assert is_budget_extension(cfg(150, 10), cfg(150, 10))
    assert not is_budget_extension(cfg(150, 25), cfg(150, 10))
    assert not is_budget_extension(cfg(150, None), cfg(150, 25))
    assert not is_budget_extension(cfg(150, 10), cfg(100, 25))
    assert not is_budget_extension(cfg(150, 10), cfg(150, 25, lr=3e-3))


def test_result_neutral_keys_do_not_block_a_run_folder(trained):
    """A run folder accepts a config that differs only in keys of RESULT_NEUTRAL_KEYS (how the
    run executes: threads, folders, the ConvNet's speed-only paths); a result key still differs."""
    from pln.engine.run_dir import RunDir, check_same_experiment

    run, values, _ = trained
    other = json.loads(json.dumps(values))
    other["train"].update(threads=2, log_every=7)
    other["data"].update(num_workers=1, cache_dir=str(run / "elsewhere"))
    other["model"].update(conv_banded=False, conv_block=3, conv_channels_last=True, map_fast=False)
    check_same_experiment(RunDir(run), config_from_dict(other))
    other["model"]["hidden"] = 24
    with pytest.raises(ConfigError, match="model.hidden"):
        check_same_experiment(RunDir(run), config_from_dict(other))


def test_nan_loss_stops_with_epoch_and_step(tmp_path):
    values = tiny_config(tmp_path)
    values["train"]["lr"] = 1e30
    values["train"]["max_epochs"] = 2
    from pln.errors import TrainingError

    with pytest.raises(TrainingError, match=r"epoch \d+, step \d+"):
        train(config_from_dict(values), tmp_path / "nan")


def test_prior_baseline(trained, tmp_path):
    _, values, result = trained
    from pln.engine.prior import run_prior

    prior = run_prior(config_from_dict(values), tmp_path / "prior")
    assert set(prior["metrics"]) == {"stage1"}
    assert (tmp_path / "prior" / "predictions.csv").is_file()


def test_select_key_rule_for_every_stage_count_and_setting():
    from pln.engine.evaluate import resolve_keys
    from pln.engine.keys import select_key, strategy_keys

    for clips in ([16], [8, 16], [8, 16, 32], [4, 8, 16, 32]):
        s = len(clips)
        for strategy in ("1", "2"):
            for stage in range(-s, s):
                cfg = config_from_dict({"model": {"clips": clips}, "eval": {"strategy": strategy, "stage": stage}})
                expected = "strategy2" if strategy == "2" and s > 1 else ("stage1" if strategy == "2" else f"stage{stage % s + 1}")
                assert select_key(cfg) == expected
                assert expected in strategy_keys(s)  # test_metrics.json has it
                assert resolve_keys(cfg, None, None) == strategy_keys(s)
                assert resolve_keys(cfg, "1", None) == [f"stage{stage % s + 1}"]  # --strategy 1: eval.stage
                assert select_key(cfg, None, 1) == select_key(cfg, "1", 1) == "stage1"
    with pytest.raises(ConfigError, match="--stage 3"):
        select_key(config_from_dict({"model": {"clips": [8, 16]}}), "1", 3)


@pytest.mark.parametrize("strategy,stage", [("1", 0), ("2", -1)])
def test_predict_evaluate_and_test_metrics_share_the_default(trained, tmp_path, strategy, stage):
    """A run whose config says eval.strategy/eval.stage: training's test_metrics.json, pln
    evaluate and pln predict all report the same default key."""
    from pln.data.dataset import build_dataset
    from pln.engine.keys import select_key

    _, values, _ = trained
    values = json.loads(json.dumps(values))
    values["eval"] = {"strategy": strategy, "stage": stage}
    values["train"]["max_epochs"] = 1
    cfg = config_from_dict(values)
    result = train(cfg, tmp_path / "run")
    expected = select_key(cfg)
    assert expected == ("stage1" if strategy == "1" else "strategy2")
    assert result["default"] == expected
    assert evaluate_run(tmp_path / "run")["default"] == expected
    sample = build_dataset(cfg, "test").samples[0]
    key, _ = predict(tmp_path / "run" / "checkpoints" / "best.pt", build_dataset(cfg, "test").store.path,
                     sample.video_id, sample.sentence)
    assert key == expected


def test_predictions_csv_reproduces_the_test_metrics(trained):
    """The tables recompute per-query hits from predictions.csv: their means must be the run's
    test_metrics.json exactly (floats are written in full, so no IoU is rounded onto a threshold)."""
    from pln.report.tables import per_query_values, read_predictions

    run, _, _ = trained
    result = json.loads((run / "test_metrics.json").read_text())
    metrics = result["metrics"][result["default"]]
    pred = read_predictions(run / "predictions.csv")
    queries = result["run"]["test_queries"]
    for name, value in metrics.items():
        per_query = per_query_values(pred, name)
        assert per_query.sum() / queries == pytest.approx(value, abs=1e-9), name


def test_plateau_reached_counts_validations_since_the_best():
    from pln.engine.train import plateau_reached

    assert not plateau_reached(None, 50, 1)
    assert not plateau_reached(3, 4, 2)  # epochs 3, 4 not better than 2: two of three
    assert plateau_reached(3, 5, 2)      # epochs 3, 4, 5
    assert not plateau_reached(1, 2, 2)  # the best is the last epoch


def test_stop_patience_ends_training_on_a_plateau(tmp_path):
    """A rate too small to change any prediction keeps val R1@0.5 at epoch 1's value (equal is not
    better), so with patience 2 the run stops after epoch 3 of 6 and tests epoch 1."""
    values = tiny_config(tmp_path, train__lr=1e-9, train__max_epochs=6, train__stop_patience=2)
    result = train(config_from_dict(values), tmp_path / "run")
    assert result["run"]["epochs_run"] == 3
    assert result["run"]["selected_epoch"] == 1
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "run" / "epochs.csv")["epoch"]) == [1, 2, 3]
    with pytest.raises(ConfigError, match="stop_patience"):
        config_from_dict(tiny_config(tmp_path, train__stop_patience=0))


def _first_epoch(tmp: Path, name: str, **train_keys) -> tuple[float, dict[str, torch.Tensor]]:
    """Train ``name`` on the first batch of one epoch at a learning rate too small to move the
    weights: the batch's loss (which queries it holds depends on the order) and the weights (the
    initial ones, to about 1e-9)."""
    values = tiny_config(tmp, train__max_epochs=1, train__lr=1e-12, train__lr_plateau=None,
                         train__max_train_batches=1)
    values["train"].update(train_keys)
    run = tmp / name
    train(config_from_dict(values), run)
    loss = float(pd.read_csv(run / "epochs.csv")["train_loss"].iloc[0])
    return loss, load_checkpoint(RunDir(run).last)["model"]


def test_order_seed_changes_the_epochs_order_and_not_the_initial_weights(tmp_path):
    loss, weights = _first_epoch(tmp_path, "default")
    same_loss, same_weights = _first_epoch(tmp_path, "order0", order_seed=0)
    other_loss, other_weights = _first_epoch(tmp_path, "order1", order_seed=1)
    init1_loss, init1_weights = _first_epoch(tmp_path, "seed1", seed=1, order_seed=0)
    # order_seed equal to seed is the default: the same run
    assert same_loss == loss and all(torch.equal(same_weights[k], weights[k]) for k in weights)
    # another order: the same initial weights, another sequence of batches
    assert other_loss != loss
    assert all(torch.allclose(other_weights[k], weights[k], atol=1e-8) for k in weights)
    # another initial seed with the order of seed 0: other weights
    assert init1_loss != loss
    assert any(not torch.allclose(init1_weights[k], weights[k], atol=1e-3) for k in weights)


def test_order_seed_must_not_be_negative(tmp_path):
    with pytest.raises(ConfigError, match="train.order_seed"):
        config_from_dict(tiny_config(tmp_path, train__order_seed=-1))
