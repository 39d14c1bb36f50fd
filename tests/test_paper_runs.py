"""The paper's runs, pinned: every run of config/paper.yaml (over config.yaml, as Snakemake merges
them) is resolved through the workflow's own plan (pln.plan.plan.Plan) and compared, value
by value, with the checked-in table tests/data/paper_runs.csv (one row per model). A change to any
value that decides a paper row (clip counts, ConvNet, widths, word vectors, LSTM, labels,
lambdas, positional encoding, the optimisation recipe, epochs, precision, features, NMS,
seeds, ...) fails here until the table is edited with it. After a deliberate change:

    .venv/bin/python tests/test_paper_runs.py > tests/data/paper_runs.csv   # then review the diff
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from pln.config import ExperimentConfig, config_from_dict
from pln.plan.loading import load_snakemake_config
from pln.plan.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
PINNED = ROOT / "tests" / "data" / "paper_runs.csv"
# What a prior-only baseline (training moments scored on the last stage's map, then NMS) reads.
PRIOR_KEYS = ("dataset", "clips", "charades_val", "nms")


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)


def _file(path: str | None) -> str:
    return Path(path).name if path else "none"


def facts(cfg: ExperimentConfig) -> dict[str, str]:
    """The values of one resolved run that decide its paper row (everything but the seed)."""
    m, loss, t, d, e = cfg.model, cfg.loss, cfg.train, cfg.data, cfg.eval
    plateau = t.lr_plateau
    labels = f"pln tau={loss.tau:g}" if loss.label == "pln" else \
        f"tan min={loss.min_iou:g} max={loss.max_iou:g} bias={loss.bias:g}"
    values: dict[str, Any] = {
        "dataset": d.dataset, "features": _file(d.feature_file), "feature_kind": d.feature_kind,
        "feature_dim": m.feature_dim, "word_vectors": _file(d.glove), "word_dim": m.word_dim,
        "strip_punctuation": d.strip_punctuation, "units": m.num_units, "clips": m.clips,
        "hidden": m.hidden, "lstm_layers": m.lstm_layers,
        "positional_encoding": f"{m.positional_encoding_place}" if m.positional_encoding else False,
        "conv": f"{m.conv_layers}x{m.conv_kernel}x{m.conv_kernel} ch{m.conv_channels} "
                f"pad={m.conv_padding} count_norm={_text(m.conv_count_norm)} init={m.conv_init}",
        "cfm": f"{_text(m.use_cfm)} proj={m.cfm_projection}",
        "uc": f"{_text(m.use_uc)} {m.upsample_mode} relu={_text(m.uc_relu)} "
              f"blocks={_text(m.uc_blocks)} same_size={m.uc_same_size}",
        "sharing": f"convnet={_text(m.share_convnet)} fusion={_text(m.share_fusion)} "
                   f"predictor={_text(m.share_predictor)}",
        "labels": labels, "lambdas": loss.resolved_lambdas(m.num_stages),
        "optimiser": f"adam lr={t.lr:g} wd={t.weight_decay:g} batch={t.batch_size}",
        "grad_clip": t.grad_clip_norm,
        "plateau": f"val_loss factor={plateau.factor:g} patience={plateau.patience}" if plateau else None,
        "cosine": (f"warmup={t.lr_cosine.warmup_epochs:g} final={t.lr_cosine.final_fraction:g}"
                   if t.lr_cosine else None),
        "stop_patience": t.stop_patience,
        "max_epochs": t.max_epochs, "batches_per_epoch": t.max_train_batches or "all",
        "precision": "bf16" if t.bf16 else "fp32", "select": f"val {t.select_metric}",
        "charades_val": f"{d.charades_val_fraction:g} seed={d.charades_val_seed}",
        "nms": e.resolved_nms(d.family), "strategy": f"{e.strategy} stage={e.stage}",
    }
    return {k: _text(v) for k, v in values.items()}


def resolved_rows() -> list[dict[str, str]]:
    """One row per model of the paper setting: kind, seeds and :func:`facts` (equal for all seeds)."""
    plan = Plan(load_snakemake_config([ROOT / "config" / "paper.yaml"], ROOT / "config.yaml"))
    rows = []
    for model in plan.used_models():  # config.yaml's JSONL example is declared but not run here
        runs = plan.runs(model)
        per_seed = [facts(config_from_dict(plan.run_configs[plan.config_name(r)])) for r in runs]
        assert all(f == per_seed[0] for f in per_seed), f"{model}: its seeds differ in more than the seed"
        seeds = [config_from_dict(plan.run_configs[plan.config_name(r)]).train.seed for r in runs]
        row = {"model": model, "kind": plan.kind(model),
               "seeds": _text(seeds) if plan.kind(model) == "train" else "none"}
        if plan.kind(model) == "prior":  # no model, no training: only its data and split matter
            per_seed[0] = {k: (v if k in PRIOR_KEYS else "n/a") for k, v in per_seed[0].items()}
        rows.append(row | per_seed[0])
    return rows


def to_csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_paper_runs_match_the_pinned_table():
    with PINNED.open(newline="") as fh:
        pinned = {row["model"]: row for row in csv.DictReader(fh)}
    resolved = {row["model"]: row for row in resolved_rows()}
    assert sorted(resolved) == sorted(pinned), "models of config/paper.yaml differ from tests/data/paper_runs.csv"
    diffs = [f"{model}.{key}: config gives {value!r}, table has {pinned[model].get(key)!r}"
             for model, row in resolved.items() for key, value in row.items() if pinned[model].get(key) != value]
    diffs += [f"{model}.{key}: in the table, not resolved" for model in pinned for key in pinned[model]
              if key not in resolved[model]]
    assert not diffs, "the paper setting changed:\n" + "\n".join(diffs[:20])


def test_pinned_table_states_the_recipe_of_the_paper():
    """Spot checks of the table itself against the paper's text (section 4.1.3) and 2D-TAN's."""
    with PINNED.open(newline="") as fh:
        rows = {row["model"]: row for row in csv.DictReader(fh)}
    trained = [r for r in rows.values() if r["kind"] == "train"]
    assert all(r["precision"] == "fp32" and r["grad_clip"] == "10" for r in trained)
    assert all(r["plateau"] == "val_loss factor=0.8 patience=20" for r in trained)
    assert all(r["optimiser"] == "adam lr=0.0001 wd=0 batch=32" for r in trained)
    assert all(r["max_epochs"] == ("100" if m.endswith("-tan") else "50") for m, r in rows.items() if r in trained)
    assert rows["tacos-pln2"]["clips"] == "32 128" and rows["activitynet-pln2"]["clips"] == "16 64"
    assert rows["activitynet-pln2"]["positional_encoding"] == "after_fc"
    assert rows["activitynet-tan"]["positional_encoding"] == "false"
    assert rows["tacos-tan"]["conv"].startswith("8x5x5") and rows["activitynet-tan"]["conv"].startswith("4x9x9")
    assert rows["tacos-pln3"]["lambdas"] == "1 1.3 1.5" and rows["tacos-pln4"]["lambdas"] == "1 1.2 1.5 2"
    assert {rows[m]["nms"] for m in ("tacos-pln2", "activitynet-pln2", "charades-vgg-pln2")} == {"0.4", "0.5", "0.45"}


if __name__ == "__main__":
    sys.stdout.write(to_csv(resolved_rows()))
