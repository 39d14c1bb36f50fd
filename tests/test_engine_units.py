"""The unit feed: resident table vs streamed units give the same batches; the placement policy;
config validation; training metrics do not depend on where the units live; the no-sync NaN check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_engine import tiny_config  # the tiny synthetic run of the engine tests

from pln.config import DataConfig, config_from_dict
from pln.data.dataset import make_loader
from pln.engine.splits import EVALUATION, PURPOSES, TRAINING, open_split
from pln.engine.train import check_finite, train
from pln.engine.units import (
    GIB,
    load_table,
    place_on_device,
    table_bytes,
    units_resident,
)
from pln.errors import ConfigError, TrainingError

CPU = torch.device("cpu")
MODEL = {"feature_dim": 8, "word_dim": 50, "num_units": 16, "clips": [4, 16]}


def _config(tmp_path: Path, **data: object):
    return config_from_dict({
        "data": {"dataset": "synthetic-charades", "data_dir": str(tmp_path / "data"),
                 "cache_dir": str(tmp_path / "cache"), "synthetic": {"scale": 0.3, "feature_dim": 8},
                 **data},
        "model": MODEL})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("units")


def test_placement_policy_by_hand() -> None:
    assert place_on_device(10, "always", 0.0, 0)
    assert not place_on_device(10, "never", 100.0, None)
    assert place_on_device(GIB, "auto", 1.0, None)  # exactly the budget fits
    assert not place_on_device(GIB + 4, "auto", 1.0, None)
    assert place_on_device(100, "auto", 1.0, 200)  # half the free memory fits
    assert not place_on_device(101, "auto", 1.0, 200)
    with pytest.raises(ConfigError, match="data.units_on_device"):
        place_on_device(10, "sometimes", 1.0, None)


def test_bad_units_on_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.units_on_device"):
        _config(tmp_path, units_on_device="sometimes")
    with pytest.raises(ConfigError, match="data.units_on_device"):
        _config(tmp_path, units_on_device=True)  # what YAML makes of "yes"
    with pytest.raises(ConfigError, match="data.units_device_max_gib"):
        _config(tmp_path, units_device_max_gib=-1.0)
    with pytest.raises(ConfigError, match="data.units_on_device"):
        DataConfig(units_on_device="on").validate()
    assert DataConfig().units_on_device == "auto" and DataConfig().units_device_max_gib == 24.0


def test_load_table_in_chunks(monkeypatch) -> None:
    units = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
    assert table_bytes(units) == 120
    monkeypatch.setattr("pln.engine.units.COPY_CHUNK_BYTES", 50)  # two videos per chunk
    table = load_table(units, CPU)
    assert table.dtype == torch.float32 and torch.equal(table, torch.from_numpy(units))


def test_modes_chosen_by_the_config(data_dir: Path) -> None:
    cases = [({}, True), ({"units_on_device": "never"}, False), ({"units_on_device": "always"}, True),
             ({"units_device_max_gib": 1e-9}, False),
             ({"units_on_device": "always", "units_device_max_gib": 1e-9}, True)]
    for data, resident in cases:
        split = open_split(_config(data_dir, **data), "test", EVALUATION, CPU)
        ds, feed = split.dataset, split.feed
        assert units_resident(ds.units, CPU, _config(data_dir, **data).data) is resident, data
        assert feed.on_device is resident, data
        assert ds.units_in_items is (not resident), data
        assert (feed.table is not None) is resident
        assert ("units" in ds[0]) is (not resident)
        if resident:
            assert tuple(feed.table.shape) == ds.units.shape and feed.table.device == CPU


def test_a_purpose_fixes_what_items_carry_and_how_they_load(data_dir: Path) -> None:
    cfg = _config(data_dir, num_workers=0)
    opened = {purpose: open_split(cfg, "test", purpose, CPU) for purpose in PURPOSES}
    for purpose, split in opened.items():
        assert split.dataset.ious_in_items is (purpose == TRAINING), purpose
        assert split.shuffle is (purpose == TRAINING)
        assert split.batch_size == (cfg.train.batch_size if purpose == TRAINING else cfg.train.eval_batch_size)
        assert (split.dataset[0]["ious"] != []) is (purpose == TRAINING)
        assert split.device == CPU and split.loader().batch_size == split.batch_size
    workers = _config(data_dir, num_workers=2)
    assert open_split(workers, "test", EVALUATION, CPU).num_workers == 2
    assert open_split(workers, "test", "benchmarking", CPU).num_workers == 0  # timed in-process
    with pytest.raises(ValueError, match="purpose"):
        open_split(cfg, "test", "testing", CPU)


def test_resident_and_streamed_give_the_same_units(data_dir: Path) -> None:
    resident_split = open_split(_config(data_dir), "test", EVALUATION, CPU)
    streamed_split = open_split(_config(data_dir, units_on_device="never"), "test", EVALUATION, CPU)
    resident_ds, resident = resident_split.dataset, resident_split.feed
    streamed_ds, streamed = streamed_split.dataset, streamed_split.feed
    loaders = [make_loader(ds, 5, shuffle=True, seed=3) for ds in (resident_ds, streamed_ds)]
    n = 0
    for a, b in zip(*loaders):
        assert "units" not in a and b["units"].shape == (len(b["video"]), 16, 8)
        assert torch.equal(a["video"], b["video"])
        got = resident.units(a)
        assert got.dtype == torch.float32 and got.shape == b["units"].shape
        assert torch.equal(got, streamed.units(b))
        n += len(a["video"])
    assert n == len(resident_ds)
    with pytest.raises(RuntimeError, match="without 'units'"):
        streamed.units({"video": torch.tensor([0])})


def test_check_finite_names_the_first_bad_step() -> None:
    check_finite([], 0)
    check_finite([(0, torch.tensor(0.5)), (1, torch.tensor(0.7))], 0)
    pending = [(10, torch.tensor(0.5)), (11, torch.tensor(float("inf"))), (12, torch.tensor(float("nan")))]
    with pytest.raises(TrainingError, match=r"loss is inf at epoch 3, step 12;"):
        check_finite(pending, 2)


def test_training_metrics_do_not_depend_on_unit_placement(tmp_path: Path) -> None:
    results = {}
    for mode in ("always", "never"):
        values = tiny_config(tmp_path, train__max_epochs=2, data__units_on_device=mode)
        results[mode] = train(config_from_dict(values), tmp_path / mode)
    assert results["always"]["metrics"] == results["never"]["metrics"]
    assert results["always"]["run"]["selected_epoch"] == results["never"]["run"]["selected_epoch"]
    epochs = [(tmp_path / mode / "epochs.csv").read_text().splitlines() for mode in ("always", "never")]
    losses = [[row.split(",")[1:4] for row in rows[1:]] for rows in epochs]  # train_loss, stage losses
    assert losses[0] == losses[1]
    maps = [np.load(tmp_path / mode / "score_maps.npz") for mode in ("always", "never")]
    np.testing.assert_array_equal(maps[0]["stage2"], maps[1]["stage2"])
    log = (tmp_path / "never" / "train.log").read_text()
    assert "units of train" in log and "streamed through the loader" in log
    assert "resident on cpu" in (tmp_path / "always" / "train.log").read_text()


def test_nan_loss_between_checks_names_its_step(tmp_path: Path) -> None:
    """Checking every step and checking once at the end of the epoch name the same first bad step."""
    messages = []
    for log_every in (1, 1000):
        values = tiny_config(tmp_path, train__lr=1e30, train__max_epochs=1, train__log_every=log_every)
        with pytest.raises(TrainingError, match=r"loss is nan at epoch 1, step \d+;") as err:
            train(config_from_dict(values), tmp_path / f"nan{log_every}")
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "step 1;" not in messages[0]  # step 1 runs the untouched model: its loss is finite
