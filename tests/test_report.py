"""Reporting (and the experiment plan it reads): the paper's values, table aggregation and the figures.

The run folders here are small fakes with made-up numbers in the layout ``pln train`` writes
(docs/ARCHITECTURE.md, "The run folder").
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pln.digest import write_digest
from pln.errors import ConfigError, DataError
from pln.plan.outputs import parse_metric
from pln.plan.plan import Plan
from pln.plan.run_config import real_data_inputs
from pln.report.figures import fig8_data, make_figure
from pln.report.paper import PaperValues
from pln.report.summary import summary_markdown
from pln.report.tables import aligned_outcomes, build_table, make_table, per_query_values, read_metrics

ROOT = Path(__file__).resolve().parents[1]
PAPER_TEXT = ROOT.parent / "shared" / "paper" / "PLN-paper.txt"


# ----------------------------------------------------------------------------------------------
# Fake run folders


def fake_predictions(ious: dict[int, list[float]], rel_length: dict[int, float] | None = None) -> pd.DataFrame:
    """predictions.csv rows: query -> the IoUs of its ranks 1..k (duration 100 s)."""
    rows = []
    for q, values in ious.items():
        rel = (rel_length or {}).get(q, 0.2)
        for rank, iou in enumerate(values, start=1):
            rows.append({"query": q, "video_id": f"v{q}", "duration": 100.0, "gt_start": 10.0,
                         "gt_end": 10.0 + 100 * rel, "rel_length": rel, "rank": rank, "start": 0.0,
                         "end": 5.0, "score": 1.0 / rank, "iou": iou})
    return pd.DataFrame(rows)


def write_fake_run(run_dir: Path, stages: int, value: float, preds: pd.DataFrame | None = None,
                   clips: tuple[int, ...] = (4, 8)) -> None:
    """test_metrics.json where every metric of stage t is ``value + t``, strategy2 ``value - 1``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    names = [f"R{n}@{m:g}" for n in (1, 5) for m in (0.1, 0.3, 0.5, 0.7)] + ["mIoU"]
    metrics = {f"stage{t}": {k: value + t for k in names} for t in range(1, stages + 1)}
    if stages > 1:
        metrics["strategy2"] = {k: value - 1 for k in names}
    (run_dir / "test_metrics.json").write_text(json.dumps(
        {"run": {"seed": 0}, "metrics": metrics, "default": f"stage{stages}"}))
    (preds if preds is not None else fake_predictions({0: [0.6], 1: [0.2]})).to_csv(run_dir / "predictions.csv",
                                                                                   index=False)
    maps = {f"stage{t + 1}": np.random.default_rng(t).random((2, n, n)).astype(np.float32)
            for t, n in enumerate(clips[:max(stages, 1)])}
    np.savez(run_dir / "score_maps.npz", query=np.array(["a person cooks", "b"]), gt=np.array([[10.0, 30.0]] * 2),
             duration=np.array([100.0, 100.0]), top1=np.array([[12.5, 37.5]] * 2), **maps)
    for name in ("test_metrics.json", "predictions.csv", "score_maps.npz"):  # as pln train writes them
        write_digest(run_dir / name)


def demo_config(tmp_path: Path) -> dict:
    """config.yaml with this file's own seed layout (one seed a model, two for Tables 2-3), so
    the hand-computed values below do not follow the demo's seed count."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["seeds"] = [0]
    config["seed_sets"] = {"paired": [0, 1]}
    config["runs_root"] = str(tmp_path / "runs")
    config["paper_dir"] = str(ROOT / "results" / "paper")
    config["report"]["n_boot"] = 300
    return config


def fill_fake_runs(plan: Plan, preds_by_model: dict[str, list[pd.DataFrame]] | None = None) -> None:
    """A fake run folder for every run of the plan; ``value`` = 40 + 4 * seed index."""
    for model in plan.models:
        for k, run in enumerate(plan.runs(model)):
            stages = len(plan.run_configs[plan.config_name(run)]["model"].get("clips", [32, 128]))
            stages = 1 if run.kind == "prior" else stages
            preds = (preds_by_model or {}).get(model, [None] * 9)[k]
            write_fake_run(Path(plan.run_dir(run)), stages, 40.0 + 4 * k, preds)


# ----------------------------------------------------------------------------------------------
# The paper's values


@pytest.mark.parametrize("table, block, method, metric, value", [
    ("table1", "ActivityNet Captions", "train", "sentences", 37421),
    ("table1", "TACoS", "val", "videos", 27),
    ("table2", "TACoS", "PLN", "R1@0.1", 53.74),
    ("table2", "TACoS", "2D-TAN[82]", "mIoU", 25.19),
    ("table2", "ActivityNet Captions", "2D-TAN[82]", "R5@0.7", 62.26),
    ("table2", "ActivityNet Captions", "CBP[60]", "mIoU", 36.85),
    ("table3", "I3D", "PLN", "mIoU", 49.09),
    ("table3", "VGG", "2D-TAN[82]", "R5@0.5", 83.84),
    ("table4", "three-stage", "Strategy 1 (t=3)", "R5@0.5", 49.86),
    ("table4", "two-stage", "Strategy 2", "R1@0.7", 15.87),
    ("table5", "four-stage", "N=16-32-64-128", "R1@0.3", 38.42),
    ("table6", "128 clips", "N=128-128", "R5@0.7", 22.57),
    ("table6", "64 clips", "N=32-64*", "mIoU", 25.01),
    ("table7", "ActivityNet Captions", "w/o UC", "mIoU", 43.39),
    ("table7", "Charades-STA", "w/o CFM", "R1@0.5", 44.09),
])
def test_paper_values_spot_checks(table, block, method, metric, value):
    paper = PaperValues.read(ROOT / "results" / "paper" / f"{table}.csv")
    assert paper.get(block, method, metric) == pytest.approx(value)


def test_paper_values_shapes_and_gaps():
    counts = {1: 18, 2: 27 * 14, 3: 14 * 7, 4: 7 * 7, 5: 7 * 7, 6: 8 * 7, 7: 9 * 4}
    for t, n in counts.items():
        assert len(pd.read_csv(ROOT / "results" / "paper" / f"table{t}.csv")) == n
    table1 = PaperValues.read(ROOT / "results" / "paper" / "table1.csv")
    assert math.isnan(table1.get("Charades-STA", "val", "videos"))  # "-" in the paper
    table2 = PaperValues.read(ROOT / "results" / "paper" / "table2.csv")
    assert math.isnan(table2.get("TACoS", "DEBUG[36]", "R1@0.5"))
    assert math.isnan(table2.get("TACoS", None, "R1@0.5"))


@pytest.mark.skipif(not PAPER_TEXT.exists(), reason="../shared/paper/PLN-paper.txt is not beside the repository")
def test_table2_matches_the_paper_text_line_by_line():
    text = PAPER_TEXT.read_text()
    frame = pd.read_csv(ROOT / "results" / "paper" / "table2.csv", dtype={"value": str})
    for method, part in frame.groupby("method", sort=False):
        values = [("-" if pd.isna(v) else v) for v in part["value"]]
        tacos, anet = part[part["block"] == "TACoS"], part[part["block"] != "TACoS"]
        values = [("-" if pd.isna(v) else v) for v in list(tacos["value"]) + list(anet["value"])]
        pattern = re.escape(method).replace(r"\[", r" ?\[") + r" " + " ".join(map(re.escape, values)) + r"\n"
        assert re.search(pattern, text), f"{method}: {values} not in the paper's Table 2"


def test_paper_values_refuse_duplicates(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("table,block,dataset,method,metric,value\nt,b,d,m,R1@0.5,1\nt,b,d,m,R1@0.5,2\n")
    with pytest.raises(DataError, match="duplicate"):
        PaperValues.read(path)


# ----------------------------------------------------------------------------------------------
# Per-query outcomes and the paired test


def test_per_query_values_hand_computed():
    pred = fake_predictions({0: [0.2, 0.6, 0.8], 1: [0.5], 2: [0.55, 0.1]})
    assert per_query_values(pred, "R1@0.5").to_dict() == {0: 0.0, 1: 0.0, 2: 100.0}  # 0.5 is not > 0.5
    assert per_query_values(pred, "R5@0.7").to_dict() == {0: 100.0, 1: 0.0, 2: 0.0}
    assert per_query_values(pred, "R5@0.5").to_dict() == {0: 100.0, 1: 0.0, 2: 100.0}
    np.testing.assert_allclose(per_query_values(pred, "mIoU").to_numpy(), [20.0, 50.0, 55.0])
    with pytest.raises(ConfigError):
        parse_metric("R1@")


def test_aligned_outcomes_average_seeds_and_fill_missing_queries():
    a0 = fake_predictions({0: [0.9], 1: [0.9]})
    a1 = fake_predictions({0: [0.9], 1: [0.1]})
    b0 = fake_predictions({0: [0.1], 2: [0.9]})  # query 1 kept nothing, query 2 only here
    a, b = aligned_outcomes([a0, a1], [b0], "R1@0.5")
    np.testing.assert_allclose(a, [100.0, 50.0, 0.0])
    np.testing.assert_allclose(b, [0.0, 0.0, 100.0])


# ----------------------------------------------------------------------------------------------
# The plan


def config_divisor(plan: Plan) -> int:
    return int(plan.config.get("clip_divisor", 1))


def test_clip_divisor_one_keeps_the_papers_counts(tmp_path):
    config = demo_config(tmp_path)
    config["clip_divisor"] = 1
    plan = Plan(config)
    assert plan.run_configs["activitynet-tan-seed1"]["model"]["clips"] == [64]
    assert plan.run_configs["tacos-pln4-seed0"]["model"]["clips"] == [16, 32, 64, 128]
    assert plan.run_configs["tacos-pln4-seed0"]["model"].get("num_units", 256) == 256


def test_plan_merges_base_dataset_model_seed(tmp_path):
    plan = Plan(demo_config(tmp_path))
    cfg = plan.run_configs["activitynet-tan-seed1"]
    assert cfg["train"]["seed"] == 1 and cfg["name"] == "activitynet-tan"
    # the demo divides the paper's N=64 (and the 256 units) by clip_divisor 4
    assert config_divisor(plan) == 4
    assert cfg["model"]["clips"] == [16] and cfg["model"]["num_units"] == 64
    assert cfg["model"]["conv_kernel"] == 9
    assert cfg["model"]["positional_encoding"] is False  # the model overrides the dataset
    assert cfg["model"]["hidden"] == 32  # from base
    assert cfg["data"]["dataset"] == "synthetic-activitynet"
    assert cfg["data"]["data_dir"] == "data/demo/activitynet"
    assert plan.run_configs["activitynet-pln2-seed0"]["model"]["positional_encoding"] is True
    assert plan.dataset_used("charades-i3d").startswith("synthetic-charades (I3D stand-in")
    # a model trained once serves Tables 2, 4, 5, 6, 7 and Fig. 8
    users = [t for t in plan.tables if t != "table1"
             if any(r["model"] == "tacos-pln2" for b in plan.tables[t]["blocks"] for r in b["rows"])]
    assert users == ["table2", "table4", "table5", "table6", "table7"]
    assert len([r for r in plan.all_runs() if r.model == "tacos-pln2"]) == 2


def test_plan_names_a_typo_in_an_experiment_fragment(tmp_path):
    config = demo_config(tmp_path)
    config["models"]["tacos-pln2"]["config"]["model"]["hiden"] = 8
    with pytest.raises(ConfigError, match=r"model\.hiden"):
        Plan(config)


def test_seed_sets(tmp_path):
    config = demo_config(tmp_path)
    assert Plan(config).seeds("tacos-pln2") == [0, 1] and Plan(config).seeds("tacos-pln3") == [0]
    config["models"]["tacos-pln3"]["seeds"] = "triple"
    with pytest.raises(ConfigError, match="models.tacos-pln3.seeds: unknown seed set 'triple'"):
        Plan(config)


def test_plan_refuses_unknown_models_and_datasets(tmp_path):
    config = demo_config(tmp_path)
    config["tables"]["table2"]["blocks"][0]["rows"][0]["model"] = "tacos-plm2"
    with pytest.raises(ConfigError, match="tables.table2.blocks\\[0\\].rows\\[0\\].model.*tacos-plm2"):
        Plan(config)
    config = demo_config(tmp_path)
    config["models"]["tacos-pln2"]["dataset"] = "tacos2"
    with pytest.raises(ConfigError, match="models.tacos-pln2.dataset"):
        Plan(config)


def test_real_data_inputs():
    real = {"data": {"dataset": "tacos", "annotation_dir": "A", "feature_file": "F.h5", "glove": "G.txt"}}
    assert real_data_inputs(real) == ["A", "F.h5", "G.txt"]
    assert real_data_inputs(real, annotations_only=True) == ["A"]
    assert real_data_inputs({"data": {"dataset": "synthetic-tacos", "annotation_dir": "A"}}) == []


# ----------------------------------------------------------------------------------------------
# Tables


def test_table2_aggregates_seeds_and_compares_with_paper(tmp_path):
    config = demo_config(tmp_path)
    config["seed_sets"]["paired"] = [0, 1, 2]
    plan = Plan(config)
    good = [fake_predictions({q: [0.9 if q % 3 else 0.1] for q in range(60)})] * 3
    bad = [fake_predictions({q: [0.1] for q in range(60)})] * 3
    fill_fake_runs(plan, {"tacos-pln2": good, "tacos-tan": bad})
    spec = plan.table_spec("table2")
    df = build_table(spec)
    pln = df[(df["block"] == "TACoS") & (df["row"] == "PLN")].set_index("metric")
    # seeds 0, 1, 2: 40 + 2, 44 + 2, 48 + 2 (default = stage2)
    assert pln.loc["R1@0.1", "mean"] == pytest.approx(46.0)
    assert pln.loc["R1@0.1", "std"] == pytest.approx(4.0)
    assert pln.loc["R1@0.1", "n"] == 3 and pln.loc["R1@0.1", "seeds"] == "0 1 2"
    assert pln.loc["R1@0.1", "paper"] == pytest.approx(53.74)
    assert math.isnan(pln.loc["R1@0.1", "diff"])  # synthetic data: the paper's value is a reference only
    assert (pln["dataset_used"] == "synthetic-tacos").all() and (pln["setting"] == "demo").all()
    assert (pln["queries"] == 60).all() and pln["split_queries"].isna().all()
    # the cell's interval: identical seeds, 40 of 60 hits -> query s.e. sqrt(var / 60)
    hits = np.array([100.0 if q % 3 else 0.0 for q in range(60)])
    half = 1.96 * hits.std(ddof=1) / math.sqrt(60)
    assert pln.loc["R1@0.5", "high"] - pln.loc["R1@0.5", "low"] == pytest.approx(2 * half, rel=0.1)
    # paired effect: 40 of 60 queries better, none worse -> +66.7 points, interval excludes 0
    assert pln.loc["R1@0.5", "effect"] == pytest.approx(100.0 * 40 / 60)
    assert pln.loc["R1@0.5", "effect_low"] > 0 and pln.loc["R1@0.5", "testable"]
    assert pln.loc["R1@0.5", "baseline"] == "2D-TAN (one-stage)"
    prior = df[(df["row"] == "Prior only")]
    assert (prior["n"] == 1).all() and prior["std"].isna().all() and prior["paper"].isna().all()
    anet = df[df["block"] == "ActivityNet Captions"]
    assert set(anet["metric"]) == {"R1@0.3", "R1@0.5", "R1@0.7", "R5@0.3", "R5@0.5", "R5@0.7", "mIoU"}
    assert anet["dataset_used"].iloc[0] == "synthetic-activitynet"


def test_identical_systems_give_zero_effect_and_two_seeds_no_test(tmp_path):
    config = demo_config(tmp_path)
    config["seed_sets"]["paired"] = [0, 1, 2]
    plan = Plan(config)
    fill_fake_runs(plan)
    df = build_table(plan.table_spec("table3"))
    tested = df[df["row"] == "PLN"]
    assert (tested["effect"] == 0.0).all() and tested["testable"].all()
    assert not ((tested["effect_low"] > 0) | (tested["effect_high"] < 0)).any()
    config["seed_sets"]["paired"] = [0, 1]
    plan = Plan(config)
    fill_fake_runs(plan)
    df = build_table(plan.table_spec("table3"))
    assert not df[df["row"] == "PLN"]["testable"].any()
    make_table(plan.table_spec("table3"), tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex")
    assert "not testable (< 3 seeds)" in (tmp_path / "t.md").read_text()


def test_rows_on_fewer_test_queries_than_the_split_are_flagged(tmp_path):
    plan = Plan(demo_config(tmp_path))
    fill_fake_runs(plan)
    for run in plan.runs("tacos-nocfm"):
        path = Path(plan.run_file(run, "test_metrics.json"))
        data = json.loads(path.read_text())
        data["run"].update(test_queries=2, test_split_queries=5)
        path.write_text(json.dumps(data))
        write_digest(path)
    out = tmp_path / "t"
    df = make_table(plan.table_spec("table7"), out / "t.csv", out / "t.md", out / "t.tex")
    row = df[(df["block"] == "TACoS") & (df["row"] == "w/o CFM")].iloc[0]
    assert row["queries"] == 2 and row["split_queries"] == 5
    assert "| 1 | 2 of 5 (!) |" in (out / "t.md").read_text()


def test_table4_reads_stages_and_strategy2(tmp_path):
    plan = Plan(demo_config(tmp_path))
    fill_fake_runs(plan)
    df = build_table(plan.table_spec("table4"))
    three = df[(df["block"] == "three-stage") & (df["metric"] == "mIoU")].set_index("row")["mean"]
    assert three.to_dict() == {"Strategy 1 (t=1)": 41.0, "Strategy 1 (t=2)": 42.0, "Strategy 1 (t=3)": 43.0,
                               "Strategy 2": 39.0}  # one seed: value 40 + t
    two = df[(df["block"] == "two-stage") & (df["metric"] == "mIoU")].set_index("row")
    assert two.loc["Strategy 1 (t=1)", "mean"] == 43.0 and two.loc["Strategy 1 (t=1)", "n"] == 2  # seeds 0, 1


def test_table_files_render_header_and_cells(tmp_path):
    plan = Plan(demo_config(tmp_path))
    fill_fake_runs(plan)
    out = tmp_path / "tables"
    spec = plan.table_spec("table7")
    df = make_table(spec, out / "t.csv", out / "t.md", out / "t.tex")
    back = pd.read_csv(out / "t.csv")
    assert len(back) == len(df) == 3 * 3 * 4
    md = (out / "t.md").read_text()
    assert "Setting: demo (config.yaml)" in md
    assert "## TACoS: run on synthetic-tacos (paper: TACoS)" in md
    assert "| Full model | 44.00 [" in md and "| 2 | 2 |" in md  # seeds, test queries
    assert "| ↳ paper (real data; reference only) | 43.89 |" in md and "↳ diff" not in md
    assert "clips 8-32" in md  # the demo's clip counts (32-128 divided by 4) are stated
    tex = (out / "t.tex").read_text()
    assert "Test queries" in tex and "synthetic-charades" in tex and tex.count(r"\begin{tabular}") == 1


def test_missing_metrics_key_names_the_file(tmp_path):
    run = tmp_path / "r"
    write_fake_run(run, 1, 10.0)
    with pytest.raises(DataError, match="strategy2"):
        read_metrics(run / "test_metrics.json", "strategy2")
    with pytest.raises(DataError, match="not found"):
        read_metrics(tmp_path / "nope.json")


def test_table1_from_stats(tmp_path):
    plan = Plan(demo_config(tmp_path))
    for d in plan.tables["table1"]["datasets"]:
        stats = Path(plan.stats_dir(d))
        stats.mkdir(parents=True)
        pd.DataFrame({"dataset": "x", "split": ["train", "val", "test"], "videos": [4, 2, 1],
                      "sentences": [400, 200, 100]}).to_csv(stats / "table1.csv", index=False)
    out = tmp_path / "t"
    df = make_table(plan.table_spec("table1"), out / "1.csv", out / "1.md", out / "1.tex")
    row = df[(df["dataset"] == "TACoS") & (df["row"] == "train") & (df["metric"] == "sentences")].iloc[0]
    assert row["mean"] == 400 and row["paper"] == 9790 and math.isnan(row["diff"])  # synthetic: no diff
    assert "run on synthetic-tacos" in (out / "1.md").read_text()


# ----------------------------------------------------------------------------------------------
# Figures and summary


def test_length_groups_and_gain(tmp_path):
    pln = fake_predictions({0: [0.9], 1: [0.9], 2: [0.9], 3: [0.1]}, rel_length={0: 0.05, 1: 0.05, 2: 0.6, 3: 0.6})
    base = fake_predictions({0: [0.9], 1: [0.1], 2: [0.9], 3: [0.9]}, rel_length={0: 0.05, 1: 0.05, 2: 0.6, 3: 0.6})
    spec = {"metrics": ["R1@0.5"], "edges": [0.0, 0.1, 0.5, 1.0], "panels": [{
        "dataset": "TACoS", "dataset_used": "synthetic-tacos",
        "pln": {"label": "PLN", "runs": [{"predictions": _save(tmp_path / "a.csv", pln)}]},
        "baseline": {"label": "2D-TAN", "runs": [{"predictions": _save(tmp_path / "b.csv", base)}]}}]}
    data = fig8_data(spec)
    assert data["pln"].iloc[0] == 100.0 and math.isnan(data["pln"].iloc[1]) and data["pln"].iloc[2] == 50.0
    assert data["baseline"].iloc[0] == 50.0 and data["baseline"].iloc[2] == 100.0
    assert data["gain"].iloc[0] == pytest.approx(100.0)  # 100 vs 50
    assert data["gain"].iloc[2] == pytest.approx(-50.0)  # 50 vs 100
    assert data["count"].tolist() == [2, 0, 2] and data["below_min"].all()  # min_count 30 by default
    assert data["pln_low"].isna().all()  # one seed: no interval over seeds


def test_fig8_intervals_and_gain_interval(tmp_path):
    rel = {q: (0.05 if q < 40 else 0.6) for q in range(80)}
    runs = {}
    rng = np.random.default_rng(0)
    for name, p_hit in (("a", 0.75), ("b", 0.5)):
        frames = [fake_predictions({q: [0.9 if rng.random() < p_hit else 0.1] for q in range(80)}, rel)
                  for s in range(3)]
        runs[name] = [{"predictions": _save(tmp_path / f"{name}{s}.csv", f)} for s, f in enumerate(frames)]
    spec = {"metrics": ["R1@0.5"], "edges": [0.0, 0.1, 1.0], "min_count": 30, "panels": [{
        "dataset": "TACoS", "dataset_used": "synthetic-tacos",
        "pln": {"label": "PLN", "runs": runs["a"]}, "baseline": {"label": "2D-TAN", "runs": runs["b"]}}]}
    data = fig8_data(spec)
    first = data.iloc[0]
    assert first["count"] == 40 and not first["below_min"]
    a, b = first["pln"], first["baseline"]
    assert first["gain"] == pytest.approx(100 * (a / b - 1))
    assert first["gain_low"] < first["gain"] < first["gain_high"] and first["pln_low"] < a < first["pln_high"]


def _save(path: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(path, index=False)
    write_digest(path)  # as pln train writes a predictions.csv
    return str(path)


def test_all_figures_and_summary_are_written(tmp_path):
    plan = Plan(demo_config(tmp_path))
    fill_fake_runs(plan)
    for d in plan.figures["fig5"]["datasets"]:
        stats = Path(plan.stats_dir(d))
        stats.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        pd.DataFrame({"dataset": d, "split": "train", "length_s": rng.gamma(2, 10, 50),
                      "rel_length": rng.random(50)}).to_csv(stats / "moment_lengths.csv", index=False)
    for figure in ("fig5", "fig7", "fig8"):
        outputs = [str(tmp_path / "fig" / f"{figure}.{ext}") for ext in ("png", "pdf")]
        outputs += [str(tmp_path / "fig" / "fig8.csv")] if figure == "fig8" else []
        make_figure(plan.figure_spec(figure), outputs)
        for path in outputs:
            assert Path(path).stat().st_size > 0
    assert Path(outputs[0]).read_bytes()[:4] == b"\x89PNG"
    fig8 = pd.read_csv(tmp_path / "fig" / "fig8.csv")
    assert set(fig8["dataset"]) == {"TACoS", "ActivityNet Captions"}
    spec = plan.summary_spec()
    text = summary_markdown(spec)
    for table in plan.all_tables():
        assert Path(table).name in text
    for figure in plan.all_figures():
        assert Path(figure).name in text
    assert "](tables/table2.md)" in text and "](../figures/fig8.png)" in text


def test_output_checker_accepts_complete_outputs_and_names_gaps(tmp_path):
    from pln.plan.loading import load_snakemake_config
    from pln.report.check import check_outputs
    from pln.report.summary import write_summary

    config = demo_config(tmp_path)
    config.update(tables_dir=str(tmp_path / "results" / "tables"), figures_dir=str(tmp_path / "figures"),
                  summary=str(tmp_path / "results" / "README.md"))
    config["report"]["n_boot"] = 50
    config["claims"].update(output=str(tmp_path / "results" / "claims"),
                            resolving_power=str(tmp_path / "results" / "resolving_power.md"))
    plan = Plan(config)
    fill_fake_runs(plan)
    for d in plan.datasets:
        stats = Path(plan.stats_dir(d))
        stats.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"dataset": d, "split": ["train", "val", "test"], "videos": 3, "sentences": 9}).to_csv(
            stats / "table1.csv", index=False)
        pd.DataFrame({"dataset": d, "split": "train", "length_s": [1.0, 2.0, 5.0],
                      "rel_length": [0.1, 0.2, 0.5]}).to_csv(stats / "moment_lengths.csv", index=False)
    for table in plan.tables:
        make_table(plan.table_spec(table), *plan.table_outputs(table))
    for figure in plan.figures:
        make_figure(plan.figure_spec(figure), plan.figure_outputs(figure))
    from pln.report.claims import claims_spec, make_claims, make_resolving_power
    make_claims(claims_spec(plan))
    make_resolving_power(claims_spec(plan), plan.claims_outputs()["csv"], plan.resolving_power_output())
    write_summary(plan.summary_spec(), plan.summary)
    assert check_outputs(plan) == []
    text = Path(plan.summary).read_text()
    assert text.index("claims.md") < text.index("table1.md")  # the claims report comes first
    csv = plan.table_outputs("table5")[0]
    frame = pd.read_csv(csv)
    frame[frame["row"] != "N=16-32-64-128"].to_csv(csv, index=False)
    Path(plan.figure_outputs("fig7")[1]).write_text("not a pdf")
    problems = check_outputs(plan)
    assert any("table5.csv: rows differ" in p and "N=16-32-64-128" in p for p in problems)
    assert any("fig7.pdf: not a PDF" in p for p in problems)
    merged = load_snakemake_config([ROOT / "config" / "smoke.yaml"], base=ROOT / "config.yaml")
    assert merged["setting"] == "smoke" and merged["base"]["model"]["hidden"] == 16
    assert merged["base"]["model"]["word_dim"] == 50  # kept from config.yaml
    assert merged["models"]["tacos-pln2"]["dataset"] == "tacos"  # kept from config.yaml


# ----------------------------------------------------------------------------------------------
# The claims report


def test_claims_report_rows_and_verdicts(tmp_path):
    from pln.report.claims import build_claims, claims_spec, make_claims, make_resolving_power

    config = demo_config(tmp_path)
    config["seeds"] = [0, 1, 2]
    config["seed_sets"]["paired"] = [0, 1, 2]
    config["claims"]["output"] = str(tmp_path / "claims")
    plan = Plan(config)
    rel = {q: (0.05 if q < 40 else 0.6) for q in range(80)}
    good = [fake_predictions({q: [0.9 if q % 4 else 0.1] for q in range(80)}, rel)] * 3
    plain = [fake_predictions({q: [0.9 if q % 2 else 0.1] for q in range(80)}, rel)] * 3
    fill_fake_runs(plan, {m: (good if m == "tacos-pln2" else plain) for m in plan.models})
    spec = claims_spec(plan)
    claims, parts = build_claims(spec)
    assert list(claims["id"]) == ["1", "2", "3", "4", "5a", "5b", "6", "7", "8"]
    v = claims.set_index("id")["verdict"].to_dict()
    # 1: TACoS reproduced (+25 points), the other datasets identical -> inconclusive
    assert v["1"] == "inconclusive" and claims.set_index("id").loc["1", "parts"] == "3 inconclusive, 1 reproduced"
    tacos = parts[(parts["id"] == "1")].iloc[0]
    assert tacos["effect"] == pytest.approx(25.0) and tacos["low"] > 0 and tacos["verdict"] == "reproduced"
    # 3 and 4 from the per-run values (stage t = value + t, strategy2 = value - 1): exact +1, -3 / -4
    assert v["3"] == "reproduced" and v["4"] == "reproduced"
    assert parts[parts["id"] == "4"]["effect"].tolist() == [-3.0, -4.0]  # two / three stages
    assert v["5b"] == "reproduced" and v["5a"] == "inconclusive"
    assert v["8"] == "not testable"  # the groups [0.1, 0.2) .. hold no test queries
    paper_2 = (31.12 - 25.32) - (45.66 - 44.51)  # Table 2, R1@0.5: (PLN - 2D-TAN) TACoS - ActivityNet
    assert parts[parts["id"] == "2"]["paper_effect"].iloc[0] == pytest.approx(paper_2)
    assert v["2"] == "reproduced"  # +25 on TACoS, 0 on ActivityNet
    make_claims(spec)
    md = (tmp_path / "claims.md").read_text()
    assert "| 5b | Two stages beat three and four stages on TACoS |" in md and "**reproduced**" in md
    make_resolving_power(spec, tmp_path / "claims.csv", tmp_path / "rp.md")
    rp = (tmp_path / "rp.md").read_text()
    assert "| tacos-pln2 | 3 | 80 |" in rp
    # R1@0.5 of 40 / 44 / 48 (fill_fake_runs): s.d. 4, 95% interval 4 x [0.5207, 6.2847] (chi-square
    # quantiles 7.3778 and 0.050636 with 2 df), which contains the 2.5 target
    assert "| 4.00 [2.08, 25.14] | undetermined |" in rp.split("| tacos-pln2 |")[1].split("\n")[0]
    # pooled over the 24 claim models, 48 df: 4 x [0.8339, 1.2493] (chi-square 69.023 and 30.755), above 2.5
    n_models = len([line for line in rp.splitlines() if line.startswith("| ") and " | 3 | 80 | " in line])
    assert n_models == 24
    assert "over these 24 models" in rp and "4.00 [3.34, 5.00] (48 degrees of freedom" in rp
    assert "met 0, not met 0, undetermined 24 of 24 models; the pooled s.d.: not met." in rp
    # pooled per dataset: 14 TACoS models (28 df; chi-square 44.461 and 15.308), 4 of ActivityNet
    # Captions and of Charades-STA VGG (8 df; 17.535 and 2.1797), 2 of I3D (4 df; 11.143 and 0.48442)
    # Every model has the same three values, so Bartlett's statistic is 0 (p = 1); each s.d. of 4 is
    # over 2.5, and with 2 df a model's estimate exceeds 2.5 by chance with probability
    # exp(-(2.5 / 4)^2) = 0.6766 when its true s.d. is 4: 14 x 0.6766 = 9.5, 4 x = 2.7, 2 x = 1.4
    assert "| tacos | 14 | 4.00 [3.17, 5.41] | 28 | p = 1 (chi-square 0.00, 13 df) | not met | 14 (9.5) |" in rp
    assert "| activitynet | 4 | 4.00 [2.70, 7.66] | 8 | p = 1 (chi-square 0.00, 3 df) | not met | 4 (2.7) |" in rp
    assert "| charades-vgg | 4 | 4.00 [2.70, 7.66] | 8 | p = 1 (chi-square 0.00, 3 df) | not met | 4 (2.7) |" in rp
    assert "| charades-i3d | 2 | 4.00 [2.40, 11.49] | 4 | p = 1 (chi-square 0.00, 1 df) | undetermined | 2 (1.4) |" in rp
    assert "Bartlett's test of that assumption: p = 1 (chi-square 0.00, 23 df)" in rp
    # two seeds a model: nothing is testable
    config["seeds"] = [0, 1]
    config["seed_sets"]["paired"] = [0, 1]
    plan = Plan(config)
    claims, _ = build_claims(claims_spec(plan))
    assert (claims["verdict"] == "not testable").all()


def test_claims_refuse_an_unknown_row(tmp_path):
    from pln.report.claims import claims_spec

    config = demo_config(tmp_path)
    config["claims"]["list"][0]["parts"][0]["a"] = ["table2", "TACoS", "PLM"]
    with pytest.raises(ConfigError, match=r"claims.list\[0\].parts\[0\].a: no row 'PLM'"):
        claims_spec(Plan(config))
