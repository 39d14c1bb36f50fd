"""The paper's tables, regenerated: aggregation over seeds and CSV / Markdown / LaTeX output.

A table is built from its spec (:meth:`pln.plan.plan.Plan.table_spec`, plain data) into
one long :class:`pandas.DataFrame`, one line per (row, metric), with the columns of
:data:`COLUMNS`:

- ``mean``, ``std`` (sample std over seeds, ddof=1; empty for one seed), ``n`` (seeds) and
  ``seeds`` (which ones) of the row's metric over its runs;
- ``low``, ``high``: the 95% interval of the mean over seeds and test queries
  (:func:`pln.stats.mean_interval` on the per-query outcomes of ``predictions.csv``; for a
  strategy whose per-query outcomes are not stored, :func:`pln.stats.seed_effect` on the per-run
  values) and ``interval`` (which kind); empty below 2 seeds. The interval keeps its offsets
  from the per-query mean but is placed around ``mean`` (the runs' ``test_metrics.json``), so a
  cell never shows an interval off its own number;
- ``queries``: test queries behind the row (fewest over its runs), ``split_queries``: the test
  split's size (``run.test_queries`` / ``run.test_split_queries`` of ``test_metrics.json`` when
  present; else the queries of ``predictions.csv`` / empty);
- ``paper`` (the paper's value for that row, ``results/paper/tableN.csv``) and
  ``diff = mean - paper`` only where the data are the paper's (a synthetic stand-in gets no diff:
  the paper's number is a reference, not a target);
- for a row with a ``test_against`` model (e.g. PLN vs the one-stage 2D-TAN): ``baseline`` and
  the paired effect ``effect`` with its 95% interval ``effect_low``, ``effect_high``
  (:func:`pln.stats.paired_effect`: seeds and test queries) and ``testable`` (both have at least
  ``min_seeds_for_test`` seeds).

The CSV is that frame; Markdown and LaTeX show ``mean [low, high]`` cells, the seeds and test
queries of every row, the paper's value and the paired effect on the lines under each row. Every
output names the setting that produced it and the dataset actually used (``synthetic-tacos``,
not ``TACoS``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pln.config import is_synthetic_dataset
from pln.engine.run_dir import read_run_json, verify_run_file
from pln.errors import DataError
from pln.eval.metrics import metric_name, query_outcomes
from pln import stats
from pln.plan.outputs import parse_metric
from pln.report.paper import PaperValues
from pln.utils import atomic_write_text

COLUMNS = ("table", "setting", "setting_file", "block", "dataset", "dataset_used", "row", "model",
           "metrics_from", "metric", "mean", "std", "low", "high", "interval", "n", "seeds", "queries",
           "split_queries", "paper", "diff", "baseline", "effect", "effect_low", "effect_high", "testable")
PREDICTION_COLUMNS = ("query", "rank", "iou")
SUB = "↳ "  # marks the paper / diff / test lines under a row


# ----------------------------------------------------------------------------------------------
# Reading run outputs


def read_metrics(path: str | Path, key: str = "default") -> dict[str, float]:
    """The metric dict ``{"R1@0.5": .., "mIoU": ..}`` of one run's ``test_metrics.json``.

    ``key`` is a key of its ``metrics`` mapping (``stage1``, ``strategy2``, ...) or ``default``
    (the run's default strategy).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: run output not found; train the run first (snakemake builds it)")
    data = read_run_json(path)  # verified against its digest
    metrics = data["metrics"]
    name = data.get("default") if key == "default" else key
    if name not in metrics:
        raise DataError(f"{path}: no metrics {name!r} (has {', '.join(metrics) or 'none'}); "
                        f"check metrics_from of the table row")
    return metrics[name]


def read_checked_csv(path: str | Path, columns: list[str], what: str, producer: str) -> pd.DataFrame:
    """Read a CSV made by another step, refusing a missing file or missing columns clearly.

    ``what`` names the file for the messages (e.g. "the predictions.csv of pln train"),
    ``producer`` says how it is made (e.g. "train the run first").
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} not found; {producer} (snakemake builds it)")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; expected {what}")
    return frame


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A run's ``predictions.csv`` (top-5 per test query), checked for the columns used here."""
    if Path(path).exists():
        verify_run_file(path)
    return read_checked_csv(path, PREDICTION_COLUMNS, "the predictions.csv of pln train", "train the run first")


def rank_ious(pred: pd.DataFrame) -> tuple[pd.Index, np.ndarray]:
    """The IoUs of ``predictions.csv`` rows as a matrix: ``(queries [Q] sorted, ious [Q, K])``
    with ``ious[q, k]`` the IoU of query ``q``'s rank ``k + 1`` candidate, 0 where that rank was
    not kept (the layout :func:`pln.eval.metrics.query_outcomes` reads)."""
    queries, row = np.unique(pred["query"].to_numpy(), return_inverse=True)
    rank = pred["rank"].to_numpy(dtype=np.int64)
    ious = np.zeros((len(queries), int(rank.max()) if len(rank) else 0), dtype=np.float64)
    ious[row, rank - 1] = pred["iou"].to_numpy(dtype=np.float64)
    return pd.Index(queries, name="query"), ious


def per_query_values(pred: pd.DataFrame, metric: str) -> pd.Series:
    """Per-query outcome of ``metric`` in percent, indexed by query
    (:func:`pln.eval.metrics.query_outcomes` with ``percent``).

    ``R{n}@{m}``: 100 if one of the ranks ``1..n`` has IoU strictly greater than ``m``, else 0.
    ``mIoU``: 100 x the rank-1 IoU. A query without any kept candidate is not in ``pred``; it
    scores 0 (see :func:`aligned_outcomes`).
    """
    parsed = parse_metric(metric)
    queries, ious = rank_ious(pred)
    if parsed is None:
        return pd.Series(query_outcomes(ious, [], [], percent=True)["IoU"], index=queries)
    n, m = parsed
    return pd.Series(query_outcomes(ious, [n], [m], percent=True)[metric_name(n, m)], index=queries)


def outcome_matrix(preds: list[pd.DataFrame], metric: str, queries: pd.Index) -> np.ndarray:
    """Per-query outcomes ``[S, Q]`` (percent) of one model's runs on ``queries``, in that order.

    A query missing from a run's predictions (nothing kept) counts as 0 there.
    """
    return np.stack([per_query_values(p, metric).reindex(queries).fillna(0.0).to_numpy() for p in preds])


def aligned_outcomes(preds_a: list[pd.DataFrame], preds_b: list[pd.DataFrame], metric: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query outcomes of systems A and B, each averaged over its seeds, on the same queries.

    Queries are the union over all runs; a query missing from a run's predictions (nothing kept)
    counts as 0 there. Returns two arrays ``[Q]``.
    """
    queries = query_union(preds_a + preds_b)
    return (outcome_matrix(preds_a, metric, queries).mean(axis=0),
            outcome_matrix(preds_b, metric, queries).mean(axis=0))


def query_union(preds: list[pd.DataFrame]) -> pd.Index:
    """Every test query of any of the runs, sorted."""
    return pd.Index(sorted(set().union(*(set(p["query"]) for p in preds))))


def length_group_of(rel_length: np.ndarray, edges: list[float]) -> np.ndarray:
    """Length group per query (Fig. 8), from ``rel_length [Q]``.

    ``edges[g] <= x < edges[g+1]``, the last group closed; -1 outside the edges (or NaN).
    """
    group = np.searchsorted(np.asarray(edges), rel_length, side="right") - 1
    group[rel_length == edges[-1]] = len(edges) - 2
    group[(rel_length < edges[0]) | (rel_length > edges[-1]) | np.isnan(rel_length)] = -1
    return group


def query_length_groups(preds: list[pd.DataFrame], queries: pd.Index, edges: list[float]) -> np.ndarray:
    """Length group ``[Q]`` of each of ``queries`` from the runs' ``rel_length`` column."""
    rel = pd.concat([p.groupby("query")["rel_length"].first() for p in preds]).groupby(level=0).first()
    return length_group_of(rel.reindex(queries).to_numpy(dtype=np.float64), edges)


# ----------------------------------------------------------------------------------------------
# Building


def is_synthetic(dataset_used: str) -> bool:
    """Whether a block ran on the synthetic stand-in (its numbers are not the paper's kind)."""
    return is_synthetic_dataset(str(dataset_used))  # the label starts with the dataset's name


def _summary(values: list[float]) -> tuple[float, float, int]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std, int(arr.size)


def _query_counts(runs: list[dict[str, Any]], jsons: list[dict[str, Any]], preds: list[pd.DataFrame] | None
                  ) -> tuple[float, float]:
    """(test queries behind the row: fewest over its runs, the test split's size) or NaN."""
    info = [j.get("run", {}) for j in jsons]
    used = [i["test_queries"] for i in info if "test_queries" in i]
    split = [i["test_split_queries"] for i in info if "test_split_queries" in i]
    if not used and preds:
        used = [p["query"].nunique() for p in preds]
    return (float(min(used)) if used else math.nan, float(max(split)) if split else math.nan)


def build_table(spec: dict[str, Any]) -> pd.DataFrame:
    """Tables 2-7: one line per (row, metric) with mean, interval, counts, paper value, paired effect."""
    paper = PaperValues.read(spec["paper_csv"])
    min_seeds = spec["min_seeds_for_test"]
    preds_cache: dict[str, pd.DataFrame] = {}

    def preds_of(runs: list[dict[str, Any]]) -> list[pd.DataFrame]:
        for r in runs:
            if r["predictions"] not in preds_cache:
                preds_cache[r["predictions"]] = read_predictions(r["predictions"])
        return [preds_cache[r["predictions"]] for r in runs]

    lines = []
    for block in spec["blocks"]:
        synthetic = is_synthetic(block["dataset_used"])
        for row in block["rows"]:
            runs = row["runs"]
            jsons = [read_run_json(r["metrics"]) for r in runs]
            per_run = [read_metrics(r["metrics"], row["metrics_from"]) for r in runs]
            default = row["metrics_from"] in ("default", jsons[0].get("default"))
            preds = preds_of(runs) if default and all("predictions" in r for r in runs) else None
            queries, split = _query_counts(runs, jsons, preds)
            against = row.get("test_against")
            for metric in block["metrics"]:
                missing = [r["metrics"] for r, m in zip(runs, per_run) if metric not in m]
                if missing:
                    raise DataError(f"{missing[0]}: no metric {metric!r} under {row['metrics_from']!r}; "
                                    f"check the metrics of table {spec['table']}")
                mean, std, n = _summary([m[metric] for m in per_run])
                if preds is not None:
                    cell = stats.mean_interval(outcome_matrix(preds, metric, query_union(preds)),
                                               seed=spec["bootstrap_seed"])
                else:
                    cell = stats.seed_effect(np.array([m[metric] for m in per_run]))
                ref = paper.get(block["paper_block"], row.get("paper"), metric)
                line = {
                    "table": spec["table"], "setting": spec["setting"], "setting_file": spec["setting_file"],
                    "block": block["title"], "dataset": block["dataset"], "dataset_used": block["dataset_used"],
                    "row": row["label"], "model": row["model"], "metrics_from": row["metrics_from"],
                    # the interval's offsets from the per-query mean, around the runs' own mean (the
                    # two agree when predictions.csv reproduces test_metrics.json exactly)
                    "metric": metric, "mean": mean, "std": std, "low": mean + cell.low - cell.estimate,
                    "high": mean + cell.high - cell.estimate,
                    "interval": cell.method if not math.isnan(cell.low) else "",
                    "n": n, "seeds": " ".join(str(r["seed"]) for r in runs if r["seed"] is not None),
                    "queries": queries, "split_queries": split,
                    "paper": ref, "diff": math.nan if synthetic else mean - ref, "baseline": "",
                    "effect": math.nan, "effect_low": math.nan, "effect_high": math.nan, "testable": False,
                }
                if against is not None and preds is not None:
                    base = preds_of(against["runs"])
                    qs = query_union(preds + base)
                    eff = stats.paired_effect(outcome_matrix(preds, metric, qs), outcome_matrix(base, metric, qs),
                                              min_seeds=min_seeds)
                    line.update(baseline=against["label"], effect=eff.estimate, effect_low=eff.low,
                                effect_high=eff.high, testable=eff.testable)
                lines.append(line)
    return pd.DataFrame(lines, columns=list(COLUMNS))


def build_table1(spec: dict[str, Any]) -> pd.DataFrame:
    """Table 1 (dataset statistics) from each dataset's ``pln stats`` ``table1.csv``."""
    paper = PaperValues.read(spec["paper_csv"])
    lines = []
    for block in spec["blocks"]:
        stats = read_checked_csv(block["stats"], ["split", *spec["metrics"]], "the table1.csv of pln stats",
                                 "run pln stats")
        for split in spec["splits"]:
            sel = stats[stats["split"] == split]
            for metric in spec["metrics"]:
                value = float(sel[metric].iloc[0]) if len(sel) else math.nan
                ref = paper.get(block["dataset"], split, metric)
                lines.append({
                    "table": spec["table"], "setting": spec["setting"], "setting_file": spec["setting_file"],
                    "block": block["dataset"], "dataset": block["dataset"], "dataset_used": block["dataset_used"],
                    "row": split, "model": "", "metrics_from": "", "metric": metric, "mean": value,
                    "std": math.nan, "low": math.nan, "high": math.nan, "interval": "",
                    "n": 1 if len(sel) else 0, "seeds": "", "queries": math.nan, "split_queries": math.nan,
                    "paper": ref, "diff": math.nan if is_synthetic(block["dataset_used"]) else value - ref,
                    "baseline": "", "effect": math.nan, "effect_low": math.nan, "effect_high": math.nan,
                    "testable": False,
                })
    return pd.DataFrame(lines, columns=list(COLUMNS))


# ----------------------------------------------------------------------------------------------
# Rendering


def _num(x: float, digits: int = 2, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _cell(line: pd.Series, integer: bool) -> str:
    if line["n"] == 0 or math.isnan(line["mean"]):
        return "–"
    if integer:
        return f"{line['mean']:.0f}"
    spread = "" if math.isnan(line["low"]) else f" [{line['low']:.2f}, {line['high']:.2f}]"
    return f"{line['mean']:.2f}{spread}"


def _queries_cell(line: pd.Series) -> str:
    """Test queries behind a row; flagged when fewer than its split holds."""
    used, split = line["queries"], line["split_queries"]
    if math.isnan(used):
        return "–"
    if not math.isnan(split) and used < split:
        return f"{used:.0f} of {split:.0f} (!)"
    return f"{used:.0f}"


def _effect_cell(line: pd.Series, min_seeds: int) -> str:
    if not line["testable"]:
        return f"not testable (< {min_seeds} seeds)"
    return f"{line['effect']:+.2f} [{line['effect_low']:+.2f}, {line['effect_high']:+.2f}]"


def _block_grid(df: pd.DataFrame, block: str, integer: bool, min_seeds: int = 3
                ) -> tuple[list[str], list[list[str]]]:
    """Header (metrics, seeds, queries) and display rows of one block: each row, then its
    paper / diff / paired-effect lines."""
    part = df[df["block"] == block]
    metrics = list(dict.fromkeys(part["metric"]))
    synthetic = is_synthetic(part["dataset_used"].iloc[0])
    header = metrics if integer else [*metrics, "Seeds", "Test queries"]
    pad = [] if integer else ["", ""]
    grid = []
    for label in dict.fromkeys(part["row"]):
        rows = part[part["row"] == label].set_index("metric").loc[metrics]
        first = rows.iloc[0]
        extra = [] if integer else [str(int(first["n"])), _queries_cell(first)]
        grid.append([label] + [_cell(r, integer) for _, r in rows.iterrows()] + extra)
        digits = 0 if integer else 2
        if rows["paper"].notna().any():  # rows the paper lacks (the prior-only baseline) skip these
            name = "paper (real data; reference only)" if synthetic else "paper"
            grid.append([f"{SUB}{name}"] + [_num(v, digits) for v in rows["paper"]] + pad)
            if not synthetic:
                grid.append([f"{SUB}diff"] + [_num(v, digits, signed=True) for v in rows["diff"]] + pad)
        baseline = first["baseline"]
        if isinstance(baseline, str) and baseline:
            grid.append([f"{SUB}vs {baseline}: paired effect [95% CI]"]
                        + [_effect_cell(r, min_seeds) for _, r in rows.iterrows()] + pad)
    return header, grid


def _header_text(spec: dict[str, Any]) -> str:
    text = f"Setting: {spec['setting']} ({spec['setting_file']})"
    return text + (f": {spec['description']}" if spec.get("description") else "")


def to_markdown(df: pd.DataFrame, spec: dict[str, Any]) -> str:
    """The table as Markdown: one sub-table per block, headed by the dataset actually used."""
    integer = spec["table"] == "table1"
    out = [f"# Table {spec['table'].removeprefix('table')}: {spec['title']}", "", _header_text(spec) + ".", ""]
    if integer:
        out.append("Cells: our count; paper: the paper's Table 1 (for a synthetic stand-in a reference only); "
                   "diff: ours - paper, real data only.")
    else:
        out.append("Cells: mean over seeds [95% interval over seeds and test queries: variance components "
                   "with a generalized pivot from per-query outcomes; for a strategy whose per-query "
                   "outcomes are not stored, a t interval over the seeds' values; none for one seed]. "
                   "Seeds and Test queries: what stands behind each row ((!): fewer test queries than "
                   "the split holds). Paired effect: row minus its baseline on the same test queries, "
                   "95% interval over seeds and queries (Welch-Satterthwaite t); not testable below "
                   f"{spec.get('min_seeds_for_test', 3)} seeds per model. Where the data are synthetic, "
                   "the paper's value (real data) is a reference only: no difference is taken.")
    blocks = spec["blocks"]
    for title in dict.fromkeys(df["block"]):
        part = df[df["block"] == title]
        used = part["dataset_used"].iloc[0]
        out += ["", f"## {title}: run on {used} (paper: {part['dataset'].iloc[0]})", ""]
        metrics, grid = _block_grid(df, title, integer, spec.get("min_seeds_for_test", 3))
        out.append("| " + " | ".join(["Method" if not integer else "Split", *metrics]) + " |")
        out.append("|" + "---|" * (len(metrics) + 1))
        for line in grid:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in line) + " |")
        notes = next((b.get("notes", []) for b in blocks if b.get("title", b.get("dataset")) == title), [])
        if notes:
            out += ["", "Models:"] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("–", "--"), ("*", r"$^*$")):
        text = text.replace(a, b)
    return text


def to_latex(df: pd.DataFrame, spec: dict[str, Any]) -> str:
    """The table as a LaTeX ``table`` (booktabs): a heading line per block names the dataset used."""
    integer = spec["table"] == "table1"
    grids = [(title, *_block_grid(df, title, integer, spec.get("min_seeds_for_test", 3)))
             for title in dict.fromkeys(df["block"])]
    width = max(len(m) for _, m, _ in grids)
    used = ", ".join(dict.fromkeys(df["dataset_used"]))
    out = [f"% {spec['table']}: {spec['title']}",
           f"% {_header_text(spec)}",
           r"\begin{table}[t]", r"\centering",
           rf"\caption{{{_tex(spec['title'])}. Setting: {_tex(spec['setting'])} "
           rf"(\texttt{{{_tex(spec['setting_file'])}}}); data: {_tex(used)}.}}",
           rf"\begin{{tabular}}{{l{'c' * width}}}", r"\toprule"]
    for i, (title, metrics, grid) in enumerate(grids):
        part = df[df["block"] == title]
        if i:
            out.append(r"\midrule")
        out.append(rf"\multicolumn{{{width + 1}}}{{l}}{{\textit{{{_tex(title)}: run on "
                   rf"{_tex(part['dataset_used'].iloc[0])}}}}} \\")
        pad = [""] * (width - len(metrics))
        out.append(" & ".join([("Split" if integer else "Method"), *map(_tex, metrics), *pad]) + r" \\")
        out.append(r"\midrule")
        for line in grid:
            label = line[0]
            label = r"\quad " + _tex(label.removeprefix(SUB)) if label.startswith(SUB) else _tex(label)
            out.append(" & ".join([label, *map(_tex, line[1:]), *pad]) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def write_table(df: pd.DataFrame, spec: dict[str, Any], csv: str | Path, md: str | Path, tex: str | Path) -> None:
    """Write the CSV (the frame as it is), the Markdown and the LaTeX files, atomically."""
    atomic_write_text(csv, df.to_csv(index=False))
    atomic_write_text(md, to_markdown(df, spec))
    atomic_write_text(tex, to_latex(df, spec))


def make_table(spec: dict[str, Any], csv: str | Path, md: str | Path, tex: str | Path) -> pd.DataFrame:
    """Build one table from its spec and write its three files."""
    df = build_table1(spec) if spec["table"] == "table1" else build_table(spec)
    write_table(df, spec, csv, md, tex)
    return df
