"""The paper's figures, regenerated with seaborn / matplotlib (PNG and PDF).

- Fig. 5: distributions of the target-moment lengths per dataset (``pln stats``'s
  ``moment_lengths.csv``): seconds on the top row, share of the video on the bottom row.
- Fig. 7: the stage score maps of one test query (``score_maps.npz`` of a trained run), with the
  ground truth (red) and the top-1 prediction (blue) marked.
- Fig. 8: per moment-length group, PLN against the one-stage baseline (``predictions.csv``), with
  the relative gain of PLN written over each group; the numbers also go to a CSV.

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
from pln.report.tables import per_query_values, read_checked_csv, read_predictions
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


def span_to_cell(span: np.ndarray, duration: float, n: int) -> tuple[int, int]:
    """The cell (i, j) of an ``n``-clip map nearest to ``span`` = (start, end) seconds.

    Cell (i, j) spans ``[i d/n, (j+1) d/n]`` (SPEC section 5), so i = round(start n/d) and
    j = round(end n/d) - 1, clipped to ``0 <= i <= j < n``.
    """
    i = int(np.clip(np.rint(span[0] * n / duration), 0, n - 1))
    j = int(np.clip(np.rint(span[1] * n / duration) - 1, i, n - 1))
    return i, j


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


def length_group_table(preds: list[pd.DataFrame], metric: str, edges: list[float]) -> pd.DataFrame:
    """``metric`` per moment-length group, per-query outcomes averaged over the runs (seeds).

    Groups follow :func:`pln.eval.metrics.length_groups`: ``edges[g] <= rel_length <
    edges[g+1]``, the last group closed. Returns ``group, count, value`` (value in percent).
    """
    outcome = pd.concat([per_query_values(p, metric) for p in preds], axis=1)
    outcome = outcome.fillna(0.0).mean(axis=1)
    rel = pd.concat([p.groupby("query")["rel_length"].first() for p in preds]).groupby(level=0).first()
    rel = rel.reindex(outcome.index)
    group = np.searchsorted(np.asarray(edges), rel.to_numpy(), side="right") - 1
    group[rel.to_numpy() == edges[-1]] = len(edges) - 2
    labels = group_labels(edges)
    frame = pd.DataFrame({"group": group, "value": outcome.to_numpy()})
    frame = frame[(frame["group"] >= 0) & (frame["group"] < len(labels))]
    agg = frame.groupby("group")["value"].agg(["count", "mean"]).reindex(range(len(labels)))
    return pd.DataFrame({"group": labels, "count": agg["count"].fillna(0).astype(int).to_numpy(),
                         "value": agg["mean"].to_numpy()})


def fig8_data(spec: dict[str, Any]) -> pd.DataFrame:
    """Long frame: dataset, dataset_used, metric, group, count, pln, baseline, gain (percent)."""
    rows = []
    for panel in spec["panels"]:
        for side in ("pln", "baseline"):
            if "rel_length" not in read_predictions(panel[side]["runs"][0]["predictions"]).columns:
                raise DataError(f"{panel[side]['runs'][0]['predictions']}: no rel_length column")
        preds_pln = [read_predictions(r["predictions"]) for r in panel["pln"]["runs"]]
        preds_base = [read_predictions(r["predictions"]) for r in panel["baseline"]["runs"]]
        for metric in spec["metrics"]:
            a = length_group_table(preds_pln, metric, spec["edges"])
            b = length_group_table(preds_base, metric, spec["edges"])
            base = b["value"].where(b["value"] != 0)
            rows.append(pd.DataFrame({
                "dataset": panel["dataset"], "dataset_used": panel["dataset_used"], "metric": metric,
                "group": a["group"], "count": a["count"], "pln": a["value"], "baseline": b["value"],
                "gain": 100.0 * (a["value"] - base) / base,
                "pln_label": panel["pln"]["label"], "baseline_label": panel["baseline"]["label"],
                "seeds_pln": len(preds_pln), "seeds_baseline": len(preds_base),
            }))
    return pd.concat(rows, ignore_index=True)


def fig8(spec: dict[str, Any], data: pd.DataFrame) -> Figure:
    """Grouped bars per length group (rows: datasets, columns: metrics), gain in red above."""
    datasets = list(dict.fromkeys(data["dataset"]))
    metrics = list(spec["metrics"])
    fig = Figure(figsize=(5.0 * len(metrics), 3.8 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(metrics), squeeze=False)
    for r, dataset in enumerate(datasets):
        for c, metric in enumerate(metrics):
            ax = axes[r, c]
            part = data[(data["dataset"] == dataset) & (data["metric"] == metric)]
            pln_label, base_label = part["pln_label"].iloc[0], part["baseline_label"].iloc[0]
            long = pd.concat([
                pd.DataFrame({"group": part["group"], "value": part["baseline"], "model": base_label}),
                pd.DataFrame({"group": part["group"], "value": part["pln"], "model": pln_label}),
            ], ignore_index=True)
            sns.barplot(long, x="group", y="value", hue="model", ax=ax,
                        palette={base_label: BASE_COLOR, pln_label: PLN_COLOR})
            top = np.nanmax(np.r_[part["pln"].to_numpy(), part["baseline"].to_numpy(), 1.0])
            for x, (_, line) in enumerate(part.iterrows()):
                if np.isfinite(line["gain"]):
                    height = np.nanmax([line["pln"], line["baseline"]])
                    ax.text(x, height + 0.02 * top, f"{line['gain']:+.1f}%", ha="center", va="bottom",
                            color=GAIN_COLOR, fontsize=8)
            ax.set_ylim(0, top * 1.12)
            ax.set(title=f"{dataset} (run on {part['dataset_used'].iloc[0]})", xlabel="moment length / video length",
                   ylabel=f"{metric} (%)")
            handles, labels = ax.get_legend_handles_labels()
            ax.get_legend().remove()
    fig.legend(handles, labels, loc="outside lower center", ncols=2)
    fig.suptitle(f"Fig. 8: PLN vs one-stage per moment-length group, gain of PLN in red ({_setting(spec)})")
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
