"""`pln bench` runs, writes its CSV with both variants, and prices the paper plan."""

from __future__ import annotations

import pandas as pd

from pln.bench import CONFIGS, bench_config_for, paper_gpu_hours
from pln.cli import main


def test_bench_writes_both_variants(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    rc = main(["bench", "--device", "cpu", "--configs", "pln-activitynet-16-64", "--width", "8", "--batch", "2",
               "--steps", "1", "--warmup", "0", "--out", str(out)])
    assert rc == 0
    frame = pd.read_csv(out)
    assert list(frame["variant"]) == ["ours", "eager-fp32"]
    assert {"device", "torch", "date", "train_queries_per_s", "infer_queries_per_s", "peak_mem_gib", "params",
            "train_gflop_per_step", "speedup_vs_eager_fp32"} <= set(frame.columns)
    assert frame["device"].str.startswith("CPU").all()
    # same computation: same parameters; the banded ConvNet does fewer FLOPs
    assert frame["params"].nunique() == 1
    assert frame.loc[0, "train_gflop_per_step"] < frame.loc[1, "train_gflop_per_step"]
    assert "ours vs eager fp32" in capsys.readouterr().out


def test_paper_gpu_hours_scale_with_rate():
    fast = paper_gpu_hours({name: 1000.0 for name in CONFIGS})
    slow = paper_gpu_hours({name: 100.0 for name in CONFIGS})
    assert fast[1] == slow[1] > 20
    assert abs(slow[0] / fast[0] - 10.0) < 1e-9
    assert bench_config_for("tacos", 1) == "2dtan-tacos-128"
    assert bench_config_for("charades", 2) == "pln-charades-16-64"
