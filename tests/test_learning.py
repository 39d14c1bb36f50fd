"""A small PLN learns the synthetic task to well above the prior-only baseline (CPU, < 1 min)."""

from __future__ import annotations

from pln.config import config_from_dict
from pln.engine.prior import run_prior
from pln.engine.train import train


def test_small_pln_beats_prior_by_far(tmp_path):
    values = {
        "name": "learn",
        "data": {"dataset": "synthetic-charades", "data_dir": str(tmp_path / "data"),
                 "cache_dir": str(tmp_path / "cache"), "synthetic": {"scale": 4.0, "feature_dim": 64}},
        "model": {"feature_dim": 64, "num_units": 32, "hidden": 32, "word_dim": 50, "lstm_layers": 1,
                  "clips": [8, 16], "conv_layers": 2, "conv_kernel": 3, "conv_channels": 32},
        "train": {"max_epochs": 12, "batch_size": 16, "lr": 1e-3, "threads": 2},
    }
    cfg = config_from_dict(values)
    pln = train(cfg, tmp_path / "pln")["metrics"]["stage2"]
    prior = run_prior(cfg, tmp_path / "prior")["metrics"]["stage1"]
    assert pln["R1@0.5"] >= 2 * prior["R1@0.5"], (pln, prior)
    assert pln["R1@0.5"] >= prior["R1@0.5"] + 15.0, (pln, prior)
    assert pln["mIoU"] >= prior["mIoU"] + 10.0, (pln, prior)
