"""The paper's figures, regenerated with seaborn / matplotlib (PNG and PDF).

- Fig. 5: distributions of the target-moment lengths per dataset (``pln stats``'s
  ``moment_lengths.csv``): seconds on the top row, share of the video on the bottom row.
- Fig. 7: the stage score maps of one test query (``score_maps.npz`` of a trained run), with the
  ground truth (red) and the top-1 prediction (blue) marked.
- Fig. 8: per moment-length group, PLN against the one-stage baseline (``predictions.csv``): 95%
  intervals over seeds and queries as error bars, the relative gain of PLN with its interval over
  each group, the test queries of each group under its label, groups below ``min_count`` queries
  hatched; the numbers also go to a CSV.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot state), so the module
works without a display. Every figure's title names the setting and the dataset actually used.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from pln.errors import DataError
from pln.eval.metrics import group_labels
from pln.geometry import span_to_cell
from pln import stats
from pln.report.tables import (outcome_matrix, query_length_groups, query_union, read_checked_csv,
                               read_predictions)
from pln.utils import atomic_write, atomic_write_text

PLN_COLOR, BASE_COLOR, GAIN_COLOR = "#1f77b4", "#aaaaaa", "#d62728"


def save(fig: Figure, paths: list[str | Path]) -> None:
    """Save ``fig`` to every path (format from the suffix), atomically."""
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        atomic_write(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight"))


def _setting(spec: dict[str, Any]) -> str:
    return f"setting {spec['setting']}, {spec['setting_file']}"


# ----------------------------------------------------------------------------------------------
# Fig. 5


def fig5(spec: dict[str, Any]) -> Figure:
    """Moment-length histograms, one column per dataset (seconds, then relative length)."""
    frames = []
    for item in spec["datasets"]:
        frame = read_checked_csv(item["lengths"], ["split", "length_s", "rel_length"],
                                 "the moment_lengths.csv of pln stats", "run pln stats")
        frames.append((item, frame))
    fig = Figure(figsize=(4.2 * len(frames), 6.4), layout="constrained")
    axes = fig.subplots(2, len(frames), squeeze=False)
    for col, (item, frame) in enumerate(frames):
        sns.histplot(frame, x="length_s", stat="percent", bins=30, ax=axes[0, col], color=PLN_COLOR)
        axes[0, col].set_title(textwrap.fill(f"{item['dataset']} (run on {item['dataset_used']})", 45), fontsize=10)
        axes[0, col].set(xlabel="moment length (s)", ylabel="queries (%)")
        sns.histplot(frame, x="rel_length", stat="percent", bins=np.linspace(0, 1, 21), ax=axes[1, col],
                     color=BASE_COLOR)
        axes[1, col].set(xlabel="moment length / video length", ylabel="queries (%)")
    fig.suptitle(f"Fig. 5: target-moment lengths, all splits ({_setting(spec)})")
    return fig


# ----------------------------------------------------------------------------------------------
# Fig. 7


def fig7(spec: dict[str, Any]) -> Figure:
    """Score map of every stage for one test query: rows = start clip, columns = end clip."""
    path = Path(spec["score_maps"])
    if not path.exists():
        raise DataError(f"{path}: score maps not found; train the run first (snakemake builds it)")
    with np.load(path) as npz:
        data = {k: npz[k] for k in npz.files}
    stages = sorted((k for k in data if k.startswith("stage")), key=lambda k: int(k[5:]))
    for key in ("gt", "duration", "top1", *stages[:1]):
        if key not in data:
            raise DataError(f"{path}: no array {key!r}; expected the score_maps.npz of pln train")
    q = spec["query"]
    if not 0 <= q < len(data["duration"]):
        raise DataError(f"{path}: query {q} out of range (the file holds {len(data['duration'])}); "
                        "set figures.fig7.query")
    duration, gt, top1 = float(data["duration"][q]), data["gt"][q], data["top1"][q]
    fig = Figure(figsize=(4.2 * len(stages), 4.4), layout="constrained")
    axes = fig.subplots(1, len(stages), squeeze=False)[0]
    for ax, key in zip(axes, stages):
        smap = data[key][q]
        n = smap.shape[-1]
        upper = np.triu(np.ones((n, n), dtype=bool))
        image = ax.imshow(np.ma.masked_where(~upper, smap), cmap="viridis", vmin=0.0,
                          vmax=max(float(smap.max()), 1e-6), origin="upper")
        for span, color, label in ((gt, "red", "target moment"), (top1, "blue", "top-1 prediction")):
            i, j = span_to_cell(span, duration, n)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=color, linewidth=2, label=label))
        ax.set(title=f"{key} (N={n})", xlabel="end clip j", ylabel="start clip i")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(image, ax=ax, shrink=0.8, label="score")
    axes[0].legend(loc="lower left", fontsize=8)
    query = str(data["query"][q]) if "query" in data else f"#{q}"
    fig.suptitle(f"Fig. 7: {spec['model']} seed {spec['seed']} on {spec['dataset_used']} ({_setting(spec)})\n"
                 f"query: {query}  gt {gt[0]:.1f}-{gt[1]:.1f}s, top-1 {top1[0]:.1f}-{top1[1]:.1f}s")
    return fig


# ----------------------------------------------------------------------------------------------
# Fig. 8


FIG8_VALUES = ("pln", "pln_low", "pln_high", "baseline", "baseline_low", "baseline_high", "gain", "gain_low",
               "gain_high")


def fig8_data(spec: dict[str, Any]) -> pd.DataFrame:
    """Long frame, one line per (dataset, metric, group): ``count`` (test queries), ``pln`` and
    ``baseline`` (mean over seeds and queries, percent) with 95% intervals ``*_low`` / ``*_high``
    (:func:`pln.stats.mean_interval`), the relative ``gain`` of PLN (percent) with its interval
    (:func:`pln.stats.relative_effect`, delta method), and ``below_min`` (fewer than
    ``min_count`` queries: marked, its gain not interpreted)."""
    rows = []
    min_count = int(spec.get("min_count", 30))
    labels = group_labels(spec["edges"])
    for panel in spec["panels"]:
        for side in ("pln", "baseline"):
            if "rel_length" not in read_predictions(panel[side]["runs"][0]["predictions"]).columns:
                raise DataError(f"{panel[side]['runs'][0]['predictions']}: no rel_length column")
        preds_pln = [read_predictions(r["predictions"]) for r in panel["pln"]["runs"]]
        preds_base = [read_predictions(r["predictions"]) for r in panel["baseline"]["runs"]]
        queries = query_union(preds_pln + preds_base)
        group = query_length_groups(preds_pln + preds_base, queries, spec["edges"])
        for metric in spec["metrics"]:
            a_all = outcome_matrix(preds_pln, metric, queries)
            b_all = outcome_matrix(preds_base, metric, queries)
            for g, label in enumerate(labels):
                sel = group == g
                line = {"dataset": panel["dataset"], "dataset_used": panel["dataset_used"], "metric": metric,
                        "group": label, "count": int(sel.sum()), "below_min": bool(sel.sum() < min_count),
                        "pln_label": panel["pln"]["label"], "baseline_label": panel["baseline"]["label"],
                        "seeds_pln": len(preds_pln), "seeds_baseline": len(preds_base)}
                if sel.sum() >= 2:
                    a, b = a_all[:, sel], b_all[:, sel]
                    ea, eb = stats.mean_interval(a), stats.mean_interval(b)
                    gain = stats.relative_effect(a, b)
                    line.update(pln=ea.estimate, pln_low=ea.low, pln_high=ea.high, baseline=eb.estimate,
                                baseline_low=eb.low, baseline_high=eb.high, gain=100 * gain.estimate,
                                gain_low=100 * gain.low, gain_high=100 * gain.high)
                else:  # 0 or 1 query: no interval
                    line.update(dict.fromkeys(FIG8_VALUES, np.nan))
                    if sel.any():
                        line.update(pln=float(a_all[:, sel].mean()), baseline=float(b_all[:, sel].mean()))
                rows.append(line)
    return pd.DataFrame(rows)


def _gain_text(line: pd.Series) -> str:
    """``+12% [-3, +27]``, or ``n/a`` when the baseline scores 0 (no ratio)."""
    if not np.isfinite(line["gain"]):
        return "n/a"
    if np.isfinite(line["gain_low"]):
        return f"{round(line['gain']):+d}%\n[{round(line['gain_low']):+d}, {round(line['gain_high']):+d}]"
    return f"{round(line['gain']):+d}%"


def fig8(spec: dict[str, Any], data: pd.DataFrame) -> Figure:
    """Bars per length group (rows: datasets, columns: metrics) with 95% error bars, PLN's relative
    gain and its interval above, the test queries of each group under its label; a group below
    ``min_count`` queries is hatched and its label marked."""
    datasets = list(dict.fromkeys(data["dataset"]))
    metrics = list(spec["metrics"])
    min_count = int(spec.get("min_count", 30))
    fig = Figure(figsize=(5.4 * len(metrics), 4.4 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(metrics), squeeze=False)
    width = 0.38
    for r, dataset in enumerate(datasets):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            part = data[(data["dataset"] == dataset) & (data["metric"] == metric)].reset_index(drop=True)
            x = np.arange(len(part))
            for offset, side, color in ((-width / 2, "baseline", BASE_COLOR), (width / 2, "pln", PLN_COLOR)):
                value = part[side].to_numpy(dtype=float)
                err = np.vstack([value - part[f"{side}_low"].to_numpy(dtype=float),
                                 part[f"{side}_high"].to_numpy(dtype=float) - value])
                bars = ax.bar(x + offset, np.nan_to_num(value), width, color=color,
                              label=part[f"{side}_label"].iloc[0])
                ax.errorbar(x + offset, value, yerr=np.nan_to_num(err), fmt="none", ecolor="black",
                            elinewidth=0.8, capsize=2)
                for bar, below in zip(bars, part["below_min"]):
                    if below:
                        bar.set_hatch("//")
                        bar.set_alpha(0.5)
            top = np.nanmax(np.r_[part["pln_high"].to_numpy(dtype=float), part["baseline_high"].to_numpy(dtype=float),
                                  part["pln"].to_numpy(dtype=float), 1.0])
            for i, line in part.iterrows():
                height = np.nanmax([line["pln_high"], line["baseline_high"], line["pln"], line["baseline"], 0.0])
                ax.text(i, height + 0.02 * top, _gain_text(line), ha="center", va="bottom",
                        color=GAIN_COLOR if not line["below_min"] else "grey", fontsize=7)
            ax.set_xticks(x, [f"{g}\nn={n}" + (f" (< {min_count})" if below else "")
                              for g, n, below in zip(part["group"], part["count"], part["below_min"])], fontsize=7)
            ax.set_ylim(0, top * 1.3)
            seeds = f"seeds {part['seeds_pln'].iloc[0]} / {part['seeds_baseline'].iloc[0]}"
            ax.set(title=f"{dataset} (run on {part['dataset_used'].iloc[0]}; {seeds})",
                   xlabel="moment length / video length (n = test queries)", ylabel=f"{metric} (%)")
            handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(f"Fig. 8: PLN vs one-stage per moment-length group ({_setting(spec)}). Error bars: 95% interval "
                 f"over seeds and queries; red: relative gain of PLN [95% CI]; hatched: < {min_count} queries",
                 fontsize=9)
    return fig


def make_figure(spec: dict[str, Any], outputs: list[str | Path]) -> None:
    """Draw one figure from its spec and write it to ``outputs`` (PNG, PDF; Fig. 8 also CSV)."""
    images = [p for p in outputs if Path(p).suffix in (".png", ".pdf")]
    if spec["figure"] == "fig5":
        save(fig5(spec), images)
    elif spec["figure"] == "fig7":
        save(fig7(spec), images)
    elif spec["figure"] == "fig8":
        data = fig8_data(spec)
        for path in outputs:
            if Path(path).suffix == ".csv":
                atomic_write_text(path, data.to_csv(index=False))
        save(fig8(spec, data), images)
    else:
        raise DataError(f"unknown figure {spec['figure']!r}")
