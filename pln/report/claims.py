"""The claims report: every claim of the paper, our effect with its 95% interval, and a verdict.

Claims are declared once, under ``claims`` in the Snakemake config (``config.yaml``; the smoke
and paper overlays inherit them). A claim has a text, a source, a metric and a list of
*parts*, each one comparison:

- ``{a: [table, block, row], b: [table, block, row]}``: row A minus row B of our tables (the
  rows name the model, the strategy ``metrics_from`` and the paper's row); the paper's effect
  is the same difference of the paper's values (``results/paper/tableN.csv``);
- ``{contrast: [part, part], weights: [1, -1]}``: a weighted sum of paired effects on
  disjoint query sets (claim: "the gain is larger on TACoS than on ActivityNet");
- ``{group_gain: P, group: G, versus: K}``: PLN's relative gain over the baseline of Fig. 8
  panel ``P`` in length group ``G`` minus that in group ``K`` (a fraction; groups with fewer than
  ``figures.fig8.min_count`` test queries are not testable).

A part whose paper value is missing (the paper prints no 2D-TAN row with I3D features; Fig. 8
is a plot) names the direction the paper states with ``paper_sign: 1`` or ``-1``.

Per part: :func:`pln.stats.paired_effect` on per-query outcomes ``[S, Q]`` (from
``predictions.csv``, the run's default strategy) or, for a strategy whose per-query outcomes are
not stored, :func:`pln.stats.seed_effect` on the per-run metrics (paired seed by seed within one
model); the minimum detectable effect of the same design at 80% power; and the verdict of
:func:`pln.stats.verdict`. A compound claim's verdict is :func:`pln.stats.combine_verdicts` of
its parts (any contradicted -> contradicted; any not testable -> not testable; all reproduced ->
reproduced; else inconclusive); its row shows the *deciding* part: the contradicted one, else
the one whose interval lies least far on the paper's side of 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pln import stats
from pln.errors import ConfigError
from pln.eval.metrics import group_labels
from pln.plan.plan import Plan
from pln.report.paper import PaperValues
from pln.report.tables import (outcome_matrix, query_length_groups, query_union, read_checked_csv,
                               read_predictions, read_run_json)
from pln.utils import atomic_write_text

COLUMNS = ("setting", "id", "claim", "source", "metric", "paper_effect", "effect", "low", "high", "mde",
           "verdict", "parts", "deciding_part", "seeds", "queries", "method")
PART_COLUMNS = ("id", "part", "paper_effect", "paper_sign", "effect", "low", "high", "mde", "verdict", "seeds", "queries",
                "method")


# ----------------------------------------------------------------------------------------------
# Spec (plain data, the rule's params)


def _row_ref(plan: Plan, ref: list[str], where: str) -> dict[str, Any]:
    """A table row ``[table, block title, row label]`` resolved to its model, runs and paper cell."""
    if not isinstance(ref, list) or len(ref) != 3:
        raise ConfigError(f"{plan.setting_file}: {where}: expected [table, block, row], got {ref!r}")
    table, block, label = ref
    if table not in plan.tables or table == "table1":
        raise ConfigError(f"{plan.setting_file}: {where}: unknown results table {table!r}")
    spec = plan.table_spec(table)
    b = next((b for b in spec["blocks"] if b["title"] == block), None)
    row = None if b is None else next((r for r in b["rows"] if r["label"] == label), None)
    if row is None:
        raise ConfigError(f"{plan.setting_file}: {where}: no row {label!r} in block {block!r} of {table}; "
                          "use a block title and row label of the tables section")
    runs = plan.run_files(row["model"])
    return {"label": f"{label} ({block})", "model": row["model"], "metrics_from": row["metrics_from"],
            "paper_csv": spec["paper_csv"], "paper_block": b["paper_block"], "paper": row["paper"], "runs": runs}


def _part_spec(plan: Plan, part: dict[str, Any], where: str) -> dict[str, Any]:
    sign = part.get("paper_sign")
    if "contrast" in part:
        subs = [_part_spec(plan, p, f"{where}.contrast[{i}]") for i, p in enumerate(part["contrast"])]
        weights = [float(w) for w in part.get("weights", [1.0, -1.0])]
        label = " minus ".join(f"[{s['label']}]" for s in subs)
        return {"kind": "contrast", "parts": subs, "weights": weights, "label": label, "paper_sign": sign}
    if "group_gain" in part:
        fig8 = plan.figure_spec("fig8") if "fig8" in plan.figures else None
        p = int(part["group_gain"])
        if fig8 is None or not 0 <= p < len(fig8["panels"]):
            raise ConfigError(f"{plan.setting_file}: {where}.group_gain: no Fig. 8 panel {p}")
        panel = fig8["panels"][p]
        labels = group_labels(fig8["edges"])
        g, k = int(part["group"]), int(part["versus"])
        return {"kind": "group_gain", "panel": panel, "edges": fig8["edges"], "group": g, "versus": k,
                "label": f"{panel['dataset']}: relative gain in {labels[g]} minus in {labels[k]}",
                "paper_sign": sign if sign is not None else 1}
    a, b = _row_ref(plan, part["a"], f"{where}.a"), _row_ref(plan, part["b"], f"{where}.b")
    return {"kind": "rows", "a": a, "b": b, "label": f"{a['label']} - {b['label']}", "paper_sign": sign}


def claims_spec(plan: Plan) -> dict[str, Any]:
    """Everything :func:`build_claims` needs, from ``claims`` of the Snakemake config."""
    cfg = plan.config.get("claims", {})
    claims = []
    for i, claim in enumerate(cfg.get("list", [])):
        where = f"claims.list[{i}]"
        parts = [_part_spec(plan, p, f"{where}.parts[{j}]") for j, p in enumerate(claim["parts"])]
        claims.append({"id": str(claim["id"]), "claim": claim["claim"], "source": claim["source"],
                       "metric": claim["metric"], "parts": parts})
    report = plan.config.get("report", {})
    return {**plan.meta(), "min_seeds": int(report.get("min_seeds_for_test", 3)),
            "seed_sd_target": report.get("seed_sd_target"),
            "model_datasets": {name: model["dataset"] for name, model in plan.models.items()},
            "min_group_queries": int(plan.figure_spec("fig8")["min_count"]) if "fig8" in plan.figures else 30,
            "claims": claims,
            "outputs": plan.claims_outputs()}


def claims_inputs(spec: dict[str, Any]) -> list[str]:
    """Every run file and paper table the claims read."""
    files: list[str] = []

    def walk(part: dict[str, Any]) -> None:
        if part["kind"] == "contrast":
            for p in part["parts"]:
                walk(p)
        elif part["kind"] == "group_gain":
            files.extend(r["predictions"] for side in ("pln", "baseline") for r in part["panel"][side]["runs"])
        else:
            for side in ("a", "b"):
                files.append(part[side]["paper_csv"])
                files.extend(f for r in part[side]["runs"] for f in (r["metrics"], r["predictions"]))

    for claim in spec["claims"]:
        for part in claim["parts"]:
            walk(part)
    return list(dict.fromkeys(files))


# ----------------------------------------------------------------------------------------------
# Outcomes


class Outcomes:
    """Per-query outcome matrices and per-run metrics of table rows, read once per file."""

    def __init__(self) -> None:
        self._preds: dict[str, pd.DataFrame] = {}
        self._json: dict[str, dict[str, Any]] = {}

    def predictions(self, path: str) -> pd.DataFrame:
        if path not in self._preds:
            self._preds[path] = read_predictions(path)
        return self._preds[path]

    def run_json(self, path: str) -> dict[str, Any]:
        if path not in self._json:
            self._json[path] = read_run_json(path)
        return self._json[path]

    def is_default(self, row: dict[str, Any]) -> bool:
        """Whether the row's strategy is the one ``predictions.csv`` holds (its default)."""
        data = self.run_json(row["runs"][0]["metrics"])
        return row["metrics_from"] in ("default", data.get("default"))

    def seed_values(self, row: dict[str, Any], metric: str) -> dict[int | None, float]:
        out = {}
        for r in row["runs"]:
            data = self.run_json(r["metrics"])
            key = data.get("default") if row["metrics_from"] == "default" else row["metrics_from"]
            out[r["seed"]] = float(data["metrics"][key][metric])
        return out

    def matrices(self, rows: list[list[dict[str, Any]]], metric: str) -> list[np.ndarray]:
        """``[S_i, Q]`` per list of runs, on the union of their test queries (missing: 0)."""
        preds = [[self.predictions(r["predictions"]) for r in runs] for runs in rows]
        queries = query_union([p for ps in preds for p in ps])
        return [outcome_matrix(ps, metric, queries) for ps in preds]


def _rows_effect(part: dict[str, Any], metric: str, data: Outcomes, min_seeds: int
                 ) -> tuple[stats.Effect, float, float]:
    """(effect, mde, paper effect) of a row-minus-row part."""
    a, b = part["a"], part["b"]
    paper = (PaperValues.read(a["paper_csv"]).get(a["paper_block"], a["paper"], metric)
             - PaperValues.read(b["paper_csv"]).get(b["paper_block"], b["paper"], metric))
    if data.is_default(a) and data.is_default(b):
        ma, mb = data.matrices([a["runs"], b["runs"]], metric)
        return stats.paired_effect(ma, mb, min_seeds=min_seeds), stats.minimum_detectable_effect(ma, mb), paper
    va, vb = data.seed_values(a, metric), data.seed_values(b, metric)
    paired = a["model"] == b["model"]
    if paired:
        seeds = [s for s in va if s in vb]
        xa, xb = np.array([va[s] for s in seeds]), np.array([vb[s] for s in seeds])
    else:
        xa, xb = np.array(list(va.values())), np.array(list(vb.values()))
    return (stats.seed_effect(xa, xb, paired=paired, min_seeds=min_seeds),
            stats.seed_mde(xa, xb, paired=paired), paper)


def _group_matrices(part: dict[str, Any], metric: str, data: Outcomes) -> tuple[list[np.ndarray], np.ndarray]:
    """PLN and baseline outcomes ``[S, Q]`` and each query's length group ``[Q]``."""
    panel = part["panel"]
    runs = [panel["pln"]["runs"], panel["baseline"]["runs"]]
    mats = data.matrices(runs, metric)
    preds = [data.predictions(r["predictions"]) for rs in runs for r in rs]
    return mats, query_length_groups(preds, query_union(preds), part["edges"])


def _part_effect(part: dict[str, Any], metric: str, data: Outcomes, spec: dict[str, Any]
                 ) -> tuple[stats.Effect, float, float]:
    """(effect, mde, paper effect) of any part."""
    min_seeds = spec["min_seeds"]
    if part["kind"] == "rows":
        return _rows_effect(part, metric, data, min_seeds)
    if part["kind"] == "contrast":
        subs = part["parts"]
        if not all(data.is_default(s[side]) for s in subs for side in ("a", "b")):
            raise ConfigError(f"claims: contrast {part['label']}: every row must use its run's default strategy")
        pairs = [tuple(data.matrices([s["a"]["runs"], s["b"]["runs"]], metric)) for s in subs]
        paper = sum(w * _rows_effect(s, metric, data, min_seeds)[2] for s, w in zip(subs, part["weights"]))
        return (stats.contrast(pairs, part["weights"], min_seeds=min_seeds),
                stats.contrast_mde(pairs, part["weights"]), paper)
    (ma, mb), group = _group_matrices(part, metric, data)
    pairs = [(ma[:, group == g], mb[:, group == g]) for g in (part["group"], part["versus"])]
    if min(p[0].shape[1] for p in pairs) < max(2, spec["min_group_queries"]):
        return stats.Effect(math.nan, math.nan, math.nan, ma.shape[0], mb.shape[0],
                            int(sum(p[0].shape[1] for p in pairs)), False, "too few queries in a group"), math.nan, math.nan
    return (stats.contrast(pairs, [1.0, -1.0], relative=True, min_seeds=min_seeds),
            stats.contrast_mde(pairs, [1.0, -1.0], relative=True), math.nan)


# ----------------------------------------------------------------------------------------------
# Building and writing


def _deciding(parts: list[dict[str, Any]], verdict: str) -> dict[str, Any]:
    """The part a compound claim's row shows (see the module docstring)."""
    if verdict == stats.CONTRADICTED:
        return next(p for p in parts if p["verdict"] == stats.CONTRADICTED)
    if verdict == stats.NOT_TESTABLE:
        return next(p for p in parts if p["verdict"] == stats.NOT_TESTABLE)

    def margin(p: dict[str, Any]) -> float:
        sign = p["_sign"]
        bound = p["low"] if sign > 0 else -p["high"]
        return bound if not math.isnan(bound) else -math.inf
    return min(parts, key=margin)


def build_claims(spec: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per claim, one row per part) as frames with :data:`COLUMNS` / :data:`PART_COLUMNS`."""
    data = Outcomes()
    rows, part_rows = [], []
    for claim in spec["claims"]:
        parts = []
        for part in claim["parts"]:
            eff, mde, paper = _part_effect(part, claim["metric"], data, spec)
            sign = part.get("paper_sign")
            direction = paper if not math.isnan(paper) else (float(sign) if sign else math.nan)
            scale = 100.0 if part["kind"] == "group_gain" else 1.0  # a fraction -> percent
            parts.append({"id": claim["id"], "part": part["label"], "paper_effect": paper, "paper_sign": sign,
                          "effect": eff.estimate * scale, "low": eff.low * scale, "high": eff.high * scale,
                          "mde": mde * scale, "verdict": stats.verdict(direction, eff),
                          "seeds": f"{eff.n_seeds_a}/{eff.n_seeds_b}", "queries": eff.n_queries,
                          "method": eff.method, "_sign": math.copysign(1.0, direction) if not math.isnan(direction) else 1.0})
        verdict = stats.combine_verdicts([p["verdict"] for p in parts])
        top = _deciding(parts, verdict)
        counts = pd.Series([p["verdict"] for p in parts]).value_counts()
        rows.append({"setting": spec["setting"], "id": claim["id"], "claim": claim["claim"], "source": claim["source"],
                     "metric": claim["metric"], **{k: top[k] for k in ("paper_effect", "effect", "low", "high")},
                     "mde": max((p["mde"] for p in parts), default=math.nan), "verdict": verdict,
                     "parts": ", ".join(f"{n} {v}" for v, n in counts.items()), "deciding_part": top["part"],
                     "seeds": top["seeds"], "queries": top["queries"], "method": top["method"]})
        part_rows += [{k: p[k] for k in PART_COLUMNS} for p in parts]
    return pd.DataFrame(rows, columns=list(COLUMNS)), pd.DataFrame(part_rows, columns=list(PART_COLUMNS))


def _num(x: float, signed: bool = True) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def _interval(low: float, high: float) -> str:
    return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _sd_range(spread: stats.Spread) -> str:
    return f"[{spread.low:.2f}, {spread.high:.2f}]"


def _paper(x: float, sign: Any) -> str:
    if not math.isnan(x):
        return f"{x:+.2f}"
    return {1: "> 0 (stated)", -1: "< 0 (stated)"}.get(sign, "–")


def to_markdown(claims: pd.DataFrame, parts: pd.DataFrame, spec: dict[str, Any]) -> str:
    out = ["# The paper's claims: verdicts", "",
           f"Setting: {spec['setting']} ({spec['setting_file']})" + (f": {spec['description']}" if spec.get("description") else "") + ".",
           "",
           "Effects in points of the metric (Fig. 8 claims: points of relative gain, percent). Ours: "
           "mean over seeds and test queries, 95% interval accounting for seeds and test queries "
           "(variance components, Welch-Satterthwaite t; see README, *Uncertainty and verdicts*). "
           "MDE: minimum detectable effect of our design at 80% power (two-sided 5%). Verdict: "
           "**reproduced** (same sign as the paper, interval excludes 0), **contradicted** (opposite "
           f"sign, excludes 0), **inconclusive**, **not testable** (fewer than {spec['min_seeds']} "
           "seeds a model). A compound claim: any part contradicted -> contradicted; any not testable "
           "-> not testable; all reproduced -> reproduced; else inconclusive. Its row shows the "
           "deciding part; every part is listed below the table.", "",
           "| # | Claim | Source | Metric | Paper | Ours [95% CI] | MDE | Seeds | Queries | Verdict |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    signs = {c["id"]: c["parts"][0].get("paper_sign") for c in spec["claims"]}
    for _, r in claims.iterrows():
        out.append(f"| {r['id']} | {r['claim']} | {r['source']} | {r['metric']} | {_paper(r['paper_effect'], signs[r['id']])} | "
                   f"{_num(r['effect'])} {_interval(r['low'], r['high'])} | {_num(r['mde'], False)} | {r['seeds']} | "
                   f"{r['queries']} | **{r['verdict']}** ({r['parts']}) |")
    out += ["", "## Parts", "", "| # | Comparison | Paper | Ours [95% CI] | MDE | Seeds | Queries | Method | Verdict |",
            "|---|---|---|---|---|---|---|---|---|"]
    for _, p in parts.iterrows():
        sign = None if pd.isna(p["paper_sign"]) else int(p["paper_sign"])
        out.append(f"| {p['id']} | {p['part']} | {_paper(p['paper_effect'], sign)} | {_num(p['effect'])} "
                   f"{_interval(p['low'], p['high'])} | {_num(p['mde'], False)} | {p['seeds']} | {p['queries']} | "
                   f"{p['method']} | {p['verdict']} |")
    return "\n".join(out) + "\n"


def make_claims(spec: dict[str, Any]) -> pd.DataFrame:
    """Build the claims report and write its CSV (per claim), parts CSV and Markdown."""
    claims, parts = build_claims(spec)
    outputs = spec["outputs"]
    atomic_write_text(outputs["csv"], claims.to_csv(index=False))
    atomic_write_text(outputs["parts"], parts.to_csv(index=False))
    atomic_write_text(outputs["md"], to_markdown(claims, parts, spec))
    return claims


# ----------------------------------------------------------------------------------------------
# Resolving power


def _claim_models(spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every model a claim reads, with its runs, in order of first use."""
    models: dict[str, list[dict[str, Any]]] = {}

    def walk(part: dict[str, Any]) -> None:
        if part["kind"] == "contrast":
            for p in part["parts"]:
                walk(p)
        elif part["kind"] == "group_gain":
            for side in ("pln", "baseline"):
                models.setdefault(part["panel"][side]["model"], part["panel"][side]["runs"])
        else:
            for side in ("a", "b"):
                models.setdefault(part[side]["model"], part[side]["runs"])

    for claim in spec["claims"]:
        for part in claim["parts"]:
            walk(part)
    return models


def resolving_power_markdown(spec: dict[str, Any], claims: pd.DataFrame, metric: str = "R1@0.5") -> str:
    """Per model: seeds, test queries, selected epochs, seed s.d. of ``metric`` with its 95%
    interval (and, with ``seed_sd_target``, whether the model meets it) and the query-level s.e.;
    the pooled seed s.d. of the models; per claim: the MDE of our design."""
    data = Outcomes()
    target = None if spec.get("seed_sd_target") is None else float(spec["seed_sd_target"])
    out = [f"# Resolving power of the {spec['setting']} setting", "",
           f"Setting: {spec['setting']} ({spec['setting_file']}). Per model that enters a claim: its seeds, "
           f"test queries, the epoch selected on val per seed (of the epochs run), the seed standard "
           f"deviation of {metric} (default strategy, ddof=1) with its 95% interval (chi-square, normal "
           f"seeds; pln.stats.seed_spread) and its query-level standard error (sqrt(p (1 - p) / Q), one "
           "seed). Per claim: the minimum detectable effect of our design at 80% power (largest over its "
           "parts).", ""]
    if target is not None:
        low3, high3 = stats.sd_ratio_bounds(2)  # the interval of a 3-seed s.d., in multiples of it
        out += [f"Stability target: a seed s.d. of at most {target:g} points. **met**: the interval's "
                "upper end is at or below it; **not met**: its lower end is above it; **undetermined**: "
                f"the interval contains it (with 3 seeds it spans {low3:.2f} to {high3:.2f} times the "
                f"estimate, so only an s.d. under {target / high3:.2f} can be shown to meet it).", ""]
    head = f"| Model | Seeds | Test queries | Selected epoch (of run) | Seed s.d. {metric} [95% CI] |"
    rule = "|---|---|---|---|---|"
    if target is not None:
        head, rule = head + f" s.d. <= {target:g} |", rule + "---|"
    out += [head + f" Query s.e. {metric} |", rule + "---|"]
    groups, judged, datasets = [], [], []
    for model, runs in _claim_models(spec).items():
        datasets.append(spec.get("model_datasets", {}).get(model, "?"))
        infos = [data.run_json(r["metrics"]) for r in runs]
        values = np.array([float(j["metrics"][j["default"]][metric]) for j in infos])
        groups.append(values)
        queries = [j.get("run", {}).get("test_queries") or data.predictions(r["predictions"])["query"].nunique()
                   for j, r in zip(infos, runs)]
        epochs = ", ".join(f"{j.get('run', {}).get('selected_epoch', '?')} ({j.get('run', {}).get('epochs_run', '?')})"
                           for j in infos)
        spread = stats.seed_spread(values)
        sd = f"{spread.sd:.2f} {_sd_range(spread)}" if spread.df else "– (1 seed)"
        p = values.mean() / 100.0
        se = 100.0 * math.sqrt(p * (1 - p) / min(queries)) if min(queries) else math.nan
        row = f"| {model} | {values.size} | {min(queries)} | {epochs} | {sd} |"
        if target is not None:
            judged.append(stats.sd_target_verdict(spread, target))
            row += f" {judged[-1]} |"
        out.append(row + f" {se:.2f} |")
    pooled = stats.pooled_seed_spread(groups)
    if pooled.df:
        common = stats.common_variance_test(groups)
        out += ["", f"Pooled seed s.d. of {metric} over these {len(groups)} models, one seed variance common to "
                f"all assumed: {pooled.sd:.2f} {_sd_range(pooled)} ({pooled.df} degrees of "
                f"freedom; pln.stats.pooled_seed_spread). Bartlett's test of that assumption: "
                f"{_bartlett(common)} (pln.stats.common_variance_test; a small p says the models' "
                "seed variances differ)."]
        if target is not None:
            counts = ", ".join(f"{k} {judged.count(k)}" for k in (stats.SD_MET, stats.SD_NOT_MET, stats.SD_UNDETERMINED))
            out += [f"Against the target of {target:g}: {counts} of {len(judged)} models; the pooled s.d.: "
                    f"{stats.sd_target_verdict(pooled, target)}."]
        out += _pooled_by_dataset(groups, datasets, metric, target)
    out += ["", "| Claim | MDE (points; claim 8: points of relative gain, %) | Verdict |", "|---|---|---|"]
    for _, r in claims.iterrows():
        out.append(f"| {r['id']} | {_num(r['mde'], False)} | {r['verdict']} |")
    return "\n".join(out) + "\n"


def _bartlett(test: stats.Homogeneity) -> str:
    """A common-variance test in words: ``p = 0.77 (chi-square 9.09, 13 df)``."""
    if math.isnan(test.p):
        return "undefined (fewer than 2 models with 2 seeds, or seeds with no spread)"
    return f"p = {test.p:.2g} (chi-square {test.statistic:.2f}, {test.df} df)"


def _pooled_by_dataset(groups: list[np.ndarray], datasets: list[str], metric: str,
                       target: float | None) -> list[str]:
    """Lines of a table: per dataset, the seed s.d. pooled over its models (one seed variance per
    dataset assumed, more plausible than one for all) with its interval, Bartlett's test of that
    assumption and, with a ``target``, its judgement and how many models exceed the target by
    their point estimate against how many would by chance if the pooled s.d. were every model's
    (:func:`pln.stats.chance_over_target`)."""
    lines = ["", f"Pooled seed s.d. of {metric} per dataset (one seed variance per dataset assumed; Bartlett's "
             "test of it per dataset, normal seeds"
             + ("; expected by chance: how many models would exceed the target by their own estimate if "
                "each model's true s.d. were the dataset's pooled one" if target is not None else "") + "):", ""]
    head, rule = "| Dataset | Models | Pooled seed s.d. [95% CI] | Degrees of freedom | Common variance |", \
        "|---|---|---|---|---|"
    if target is not None:
        head += f" s.d. <= {target:g} | Models over {target:g} by point estimate (expected by chance) |"
        rule += "---|---|"
    lines += [head, rule]
    for dataset in dict.fromkeys(datasets):
        members = [g for g, d in zip(groups, datasets) if d == dataset]
        pooled = stats.pooled_seed_spread(members)
        sd = f"{pooled.sd:.2f} {_sd_range(pooled)}" if pooled.df else "– (1 seed)"
        row = f"| {dataset} | {len(members)} | {sd} | {pooled.df} | {_bartlett(stats.common_variance_test(members))} |"
        if target is not None:
            spreads = [stats.seed_spread(g) for g in members]
            over = sum(1 for sp in spreads if sp.df and sp.sd > target)
            chance = sum(stats.chance_over_target(pooled.sd, sp.df, target) for sp in spreads if sp.df)
            row += f" {stats.sd_target_verdict(pooled, target) if pooled.df else '–'} |"
            row += f" {over} ({chance:.1f}) |" if pooled.df else " – |"
        lines.append(row)
    return lines


def make_resolving_power(spec: dict[str, Any], claims_csv: str | Path, out: str | Path) -> None:
    """Write the resolving-power page from the claims spec and the claims CSV."""
    claims = read_checked_csv(claims_csv, ["id", "mde", "verdict"], "the claims.csv of the claims rule",
                              "build the claims report first")
    atomic_write_text(out, resolving_power_markdown(spec, claims))
