"""What computed a run: pln.devices.machine_tag and its record in the run folder (each epoch's row
of epochs.csv, the train log of each sitting, timings.json), kept through a resume on another
machine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from test_engine import tiny_config  # the tiny synthetic run of the engine tests

from pln import devices
from pln.config import config_from_dict
from pln.engine import train as train_module
from pln.engine.train import train


def test_machine_tag_names_the_cpu_kernels_threads_and_torch():
    tag = devices.machine_tag(torch.device("cpu"))
    assert tag.startswith("CPU ")
    assert f", {torch.backends.cpu.get_cpu_capability()} x{torch.get_num_threads()} threads;" in tag
    assert tag.endswith(f"; torch {torch.__version__}")


def test_each_epoch_records_the_machine_that_computed_it(tmp_path: Path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setattr(train_module, "machine_tag", lambda device: "machine A")
    train(config_from_dict(tiny_config(tmp_path, train__max_epochs=1)), run)
    monkeypatch.setattr(train_module, "machine_tag", lambda device: "machine B")
    train(config_from_dict(tiny_config(tmp_path, train__max_epochs=3)), run, extend=True)
    epochs = pd.read_csv(run / "epochs.csv")
    assert list(epochs["epoch"]) == [1, 2, 3]
    assert list(epochs["machine"]) == ["machine A", "machine B", "machine B"]
    log = (run / "train.log").read_text()
    assert log.index("computing on machine A") < log.index("computing on machine B") < log.index("resuming")
    assert json.loads((run / "timings.json").read_text())["test_machine"] == "machine B"
