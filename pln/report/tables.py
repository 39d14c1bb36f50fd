"""The paper's tables, regenerated: aggregation over seeds and CSV / Markdown / LaTeX output.

A table is built from its spec (:meth:`pln.report.experiments.Plan.table_spec`, plain data) into
one long :class:`pandas.DataFrame`, one line per (row, metric), with the columns of
:data:`COLUMNS`:

- ``mean``, ``std`` (sample std over seeds, ddof=1; empty for one seed), ``n`` (seeds) and
  ``seeds`` (which ones) of the row's metric over its runs;
- ``paper`` (the paper's value for that row, ``results/paper/tableN.csv``) and
  ``diff = mean - paper``;
- for a row with a ``test_against`` model (e.g. PLN vs the one-stage 2D-TAN): ``baseline``,
  ``diff_vs_baseline`` (mean per-query difference, percentage points) and ``p_value`` of a paired
  bootstrap over test queries (:func:`pln.eval.metrics.paired_bootstrap`) when both have at
  least ``min_seeds_for_test`` common seeds; per query, the outcome is averaged over the seeds.

The CSV is that frame; Markdown and LaTeX show ``mean ± std (n)`` cells with the paper's value,
the difference and the p-value on the lines under each row. Every output names the setting that
produced it and the dataset actually used (``synthetic-tacos``, not ``TACoS``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pln.engine.run_dir import read_run_json, verify_run_file
from pln.errors import DataError
from pln.eval.metrics import paired_bootstrap
from pln.report.experiments import parse_metric
from pln.report.paper import PaperValues
from pln.utils import atomic_write_text

COLUMNS = ("table", "setting", "setting_file", "block", "dataset", "dataset_used", "row", "model",
           "metrics_from", "metric", "mean", "std", "n", "seeds", "paper", "diff", "baseline",
           "diff_vs_baseline", "p_value")
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


def per_query_values(pred: pd.DataFrame, metric: str) -> pd.Series:
    """Per-query outcome of ``metric`` in percent, indexed by query.

    ``R{n}@{m}``: 100 if one of the ranks ``1..n`` has IoU strictly greater than ``m``, else 0.
    ``mIoU``: 100 x the rank-1 IoU. A query without any kept candidate scores 0 (see
    :func:`aligned_outcomes`).
    """
    parsed = parse_metric(metric)
    if parsed is None:
        top1 = pred[pred["rank"] == 1]
        return (top1.groupby("query")["iou"].max() * 100.0).astype(float)
    n, m = parsed
    head = pred[pred["rank"] <= n]
    return ((head["iou"] > m).groupby(head["query"]).any() * 100.0).astype(float)


def aligned_outcomes(preds_a: list[pd.DataFrame], preds_b: list[pd.DataFrame], metric: str
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query outcomes of systems A and B, each averaged over its seeds, on the same queries.

    Queries are the union over all runs; a query missing from a run's predictions (nothing kept)
    counts as 0 there. Returns two arrays ``[Q]``.
    """
    a = pd.concat([per_query_values(p, metric) for p in preds_a], axis=1)
    b = pd.concat([per_query_values(p, metric) for p in preds_b], axis=1)
    queries = a.index.union(b.index)
    a = a.reindex(queries).fillna(0.0).mean(axis=1)
    b = b.reindex(queries).fillna(0.0).mean(axis=1)
    return a.to_numpy(), b.to_numpy()


# ----------------------------------------------------------------------------------------------
# Building


def _summary(values: list[float]) -> tuple[float, float, int]:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return float(arr.mean()), std, int(arr.size)


def build_table(spec: dict[str, Any]) -> pd.DataFrame:
    """Tables 2-7: one line per (row, metric) with mean/std/n over seeds, paper value, diff, test."""
    paper = PaperValues.read(spec["paper_csv"])
    lines = []
    for block in spec["blocks"]:
        for row in block["rows"]:
            runs = row["runs"]
            per_run = [read_metrics(r["metrics"], row["metrics_from"]) for r in runs]
            test = _test_setup(row, spec)
            for metric in block["metrics"]:
                missing = [r["metrics"] for r, m in zip(runs, per_run) if metric not in m]
                if missing:
                    raise DataError(f"{missing[0]}: no metric {metric!r} under {row['metrics_from']!r}; "
                                    f"check the metrics of table {spec['table']}")
                mean, std, n = _summary([m[metric] for m in per_run])
                ref = paper.get(block["paper_block"], row.get("paper"), metric)
                line = {
                    "table": spec["table"], "setting": spec["setting"], "setting_file": spec["setting_file"],
                    "block": block["title"], "dataset": block["dataset"], "dataset_used": block["dataset_used"],
                    "row": row["label"], "model": row["model"], "metrics_from": row["metrics_from"],
                    "metric": metric, "mean": mean, "std": std, "n": n,
                    "seeds": " ".join(str(r["seed"]) for r in runs if r["seed"] is not None),
                    "paper": ref, "diff": mean - ref, "baseline": "", "diff_vs_baseline": math.nan,
                    "p_value": math.nan,
                }
                if test is not None:
                    label, preds_a, preds_b = test
                    line["baseline"] = label
                    if preds_a:
                        a, b = aligned_outcomes(preds_a, preds_b, metric)
                        diff, p = paired_bootstrap(a, b, n_boot=spec["n_boot"], seed=spec["bootstrap_seed"])
                        line["diff_vs_baseline"], line["p_value"] = diff, p
                lines.append(line)
    return pd.DataFrame(lines, columns=list(COLUMNS))


def _test_setup(row: dict[str, Any], spec: dict[str, Any]
                ) -> tuple[str, list[pd.DataFrame], list[pd.DataFrame]] | None:
    """(baseline label, predictions of A, predictions of B) over the common seeds, or None.

    The prediction lists are empty when fewer than ``min_seeds_for_test`` seeds are common.
    """
    against = row.get("test_against")
    if against is None:
        return None
    runs_a = {r["seed"]: r for r in row["runs"]}
    runs_b = {r["seed"]: r for r in against["runs"]}
    common = [s for s in runs_a if s in runs_b]
    if len(common) < spec["min_seeds_for_test"]:
        return against["label"], [], []
    preds_a = [read_predictions(runs_a[s]["predictions"]) for s in common]
    preds_b = [read_predictions(runs_b[s]["predictions"]) for s in common]
    return against["label"], preds_a, preds_b


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
                    "std": math.nan, "n": 1 if len(sel) else 0, "seeds": "", "paper": ref, "diff": value - ref,
                    "baseline": "", "diff_vs_baseline": math.nan, "p_value": math.nan,
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
    spread = "" if math.isnan(line["std"]) else f" ± {line['std']:.2f}"
    return f"{line['mean']:.2f}{spread} ({int(line['n'])})"


def _p(x: float) -> str:
    if math.isnan(x):
        return "–"
    return f"{x:.3g}" if x >= 1e-3 else f"{x:.1e}"


def _block_grid(df: pd.DataFrame, block: str, integer: bool) -> tuple[list[str], list[list[str]]]:
    """Header (metrics) and display rows of one block: each row, then paper / diff / p lines."""
    part = df[df["block"] == block]
    metrics = list(dict.fromkeys(part["metric"]))
    grid = []
    for label in dict.fromkeys(part["row"]):
        rows = part[part["row"] == label].set_index("metric").loc[metrics]
        grid.append([label] + [_cell(r, integer) for _, r in rows.iterrows()])
        digits = 0 if integer else 2
        if rows["paper"].notna().any():  # rows the paper lacks (the prior-only baseline) skip these
            grid.append([f"{SUB}paper"] + [_num(v, digits) for v in rows["paper"]])
            grid.append([f"{SUB}diff"] + [_num(v, digits, signed=True) for v in rows["diff"]])
        baseline = rows["baseline"].iloc[0]
        if isinstance(baseline, str) and baseline:
            grid.append([f"{SUB}vs {baseline}: diff"] + [_num(v, 2, signed=True) for v in rows["diff_vs_baseline"]])
            grid.append([f"{SUB}vs {baseline}: p"] + [_p(v) for v in rows["p_value"]])
    return metrics, grid


def _header_text(spec: dict[str, Any]) -> str:
    text = f"Setting: {spec['setting']} ({spec['setting_file']})"
    return text + (f": {spec['description']}" if spec.get("description") else "")


def to_markdown(df: pd.DataFrame, spec: dict[str, Any]) -> str:
    """The table as Markdown: one sub-table per block, headed by the dataset actually used."""
    integer = spec["table"] == "table1"
    out = [f"# Table {spec['table'].removeprefix('table')}: {spec['title']}", "", _header_text(spec) + ".", ""]
    if integer:
        out.append("Cells: our count; paper: the paper's Table 1; diff: ours - paper.")
    else:
        test = f", p: paired bootstrap over test queries ({spec['n_boot']} resamples)" if "n_boot" in spec else ""
        out.append("Cells: mean ± std over seeds (number of seeds); paper: the paper's value; "
                   f"diff: ours - paper (percentage points){test}.")
    blocks = spec["blocks"]
    for title in dict.fromkeys(df["block"]):
        part = df[df["block"] == title]
        used = part["dataset_used"].iloc[0]
        out += ["", f"## {title}: run on {used} (paper: {part['dataset'].iloc[0]})", ""]
        metrics, grid = _block_grid(df, title, integer)
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
    grids = [(title, *_block_grid(df, title, integer)) for title in dict.fromkeys(df["block"])]
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
