"""The `pln` command line: stats, generate, and one-line errors with a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pln.cli import main


def _config(tmp_path, **data) -> str:
    values = {
        "data": {"dataset": "synthetic-charades", "data_dir": str(tmp_path / "data"),
                 "cache_dir": str(tmp_path / "cache"), "synthetic": {"scale": 0.2, "feature_dim": 16}, **data},
        "model": {"feature_dim": 16, "word_dim": 50, "hidden": 16, "conv_channels": 16, "clips": [16]},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_stats_writes_table1_and_lengths(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["stats", cfg, "--out", str(tmp_path / "stats")]) == 0
    printed = capsys.readouterr().out
    assert "synthetic-charades" in printed
    t1 = pd.read_csv(tmp_path / "stats" / "table1.csv")
    assert set(t1["split"]) == {"train", "test"}
    assert (t1["sentences"] >= t1["videos"]).all()
    lengths = pd.read_csv(tmp_path / "stats" / "moment_lengths.csv")
    assert lengths["rel_length"].between(0, 1).all()
    assert len(lengths) == t1["sentences"].sum()


def test_generate_is_idempotent(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["generate", cfg]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["generate", cfg]) == 0
    assert capsys.readouterr().out.strip() == first


@pytest.mark.parametrize("override, needle", [
    ("model.hiden=3", "model.hiden"),
    ("train.lr=fast", "train.lr"),
    ("data.dataset=tacoss", "data.dataset"),
    ("model.clips=[64,32]", "model.clips"),
])
def test_bad_config_is_one_line_error(tmp_path, capsys, override, needle):
    cfg = _config(tmp_path)
    rc = main(["train", cfg, "--out", str(tmp_path / "run"), "--set", override])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "test_metrics.json").exists()


def test_missing_config_file(tmp_path, capsys):
    assert main(["stats", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_training_a_real_dataset_without_features_names_the_key(tmp_path, capsys):
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "tacos", "annotation_dir": str(tmp_path)},
                                    "model": {"word_dim": 50}}))
    assert main(["train", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "data.feature_file" in capsys.readouterr().err


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "annotations"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/annotations is absent (real annotation files)")
def test_stats_of_a_real_dataset_needs_no_features(tmp_path, capsys):
    path = tmp_path / "tacos.yaml"
    path.write_text(yaml.safe_dump({"data": {"dataset": "tacos", "annotation_dir": str(SHARED / "tacos")}}))
    assert main(["stats", str(path), "--out", str(tmp_path / "stats")]) == 0
    t1 = pd.read_csv(tmp_path / "stats" / "table1.csv").set_index("split")
    assert t1.loc["train", "sentences"] == 9790
    assert t1.loc["val", "sentences"] == 4436
    assert t1.loc["test", "sentences"] == 4001


def test_help_loads_no_heavy_module():
    """`pln --help` and every sub-command's help are built without torch, numpy or pandas."""
    code = ("import sys\n"
            "from pln.cli import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "for sub in parser._subparsers._group_actions[0].choices.values():\n"
            "    sub.format_help()\n"
            "print(sorted(m for m in ('torch', 'numpy', 'pandas') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
