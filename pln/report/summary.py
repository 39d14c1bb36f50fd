"""The summary page (``results/README.md``): the setting, and a link to every table and figure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from pln.utils import atomic_write_text


def _tested_lines(csv: str | Path) -> list[str]:
    """One line per tested row (PLN vs its baseline): mIoU difference and p-value."""
    path = Path(csv)
    if not path.exists():
        return []
    frame = pd.read_csv(path)
    tested = frame[frame["baseline"].notna() & (frame["metric"] == "mIoU")] if "baseline" in frame else frame[:0]
    lines = []
    for _, row in tested.iterrows():
        p = "not tested (fewer seeds than report.min_seeds_for_test)" if math.isnan(row["p_value"]) \
            else f"{row['diff_vs_baseline']:+.2f} points, paired bootstrap p = {row['p_value']:.3g}"
        lines.append(f"  - {row['block']} ({row['dataset_used']}): {row['row']} - {row['baseline']}, mIoU: {p}")
    return lines


def summary_markdown(spec: dict[str, Any]) -> str:
    """The page's Markdown text from :meth:`pln.report.experiments.Plan.summary_spec`."""
    out = ["# PLN-Bench results", "",
           f"Setting: **{spec['setting']}** (`{spec['setting_file']}`)"
           + (f": {spec['description']}." if spec.get("description") else "."),
           f"Run folders: `{spec['runs_root']}/`. Paper values: `results/paper/`.", "", "## Tables", ""]
    for table in spec["tables"]:
        links = ", ".join(f"[{ext}]({link})" for ext, link in table["files"].items())
        out.append(f"- **Table {table['name'].removeprefix('table')}**: {table['title']} ({links})")
        out += _tested_lines(table["csv"])
    out += ["", "## Figures", ""]
    for figure in spec["figures"]:
        links = ", ".join(f"[{ext}]({link})" for ext, link in figure["files"].items())
        out.append(f"- **Fig. {figure['name'].removeprefix('fig')}** ({links})")
        if "png" in figure["files"]:
            out.append(f"\n  ![{figure['name']}]({figure['files']['png']})\n")
    out += ["", "## Models", ""] + [f"- {m}" for m in spec["models"]]
    return "\n".join(out) + "\n"


def write_summary(spec: dict[str, Any], path: str | Path) -> None:
    atomic_write_text(path, summary_markdown(spec))
