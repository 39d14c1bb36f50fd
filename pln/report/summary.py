"""The summary page (``results/README.md``): the setting, and a link to every table and figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pln.utils import atomic_write_text


def _tested_lines(csv: str | Path) -> list[str]:
    """One line per tested row (PLN vs its baseline): the mIoU paired effect and its interval."""
    path = Path(csv)
    if not path.exists():
        return []
    frame = pd.read_csv(path)
    if "effect" not in frame:
        return []
    tested = frame[frame["baseline"].notna() & (frame["metric"] == "mIoU")]
    lines = []
    for _, row in tested.iterrows():
        text = f"{row['effect']:+.2f} points [{row['effect_low']:+.2f}, {row['effect_high']:+.2f}] (95% CI)" \
            if row["testable"] else "not testable (fewer seeds than report.min_seeds_for_test)"
        lines.append(f"  - {row['block']} ({row['dataset_used']}): {row['row']} - {row['baseline']}, mIoU: {text}")
    return lines


def summary_markdown(spec: dict[str, Any]) -> str:
    """The page's Markdown text from :meth:`pln.plan.plan.Plan.summary_spec`."""
    out = ["# PLN-Bench results", "",
           f"Setting: **{spec['setting']}** (`{spec['setting_file']}`)"
           + (f": {spec['description']}." if spec.get("description") else "."),
           f"Run folders: `{spec['runs_root']}/`. Paper values: `results/paper/`.", ""]
    if spec.get("claims"):
        links = ", ".join(f"[{ext}]({link})" for ext, link in spec["claims"].items())
        out += ["## The paper's claims", "",
                f"- **Claims report** ({links}): every claim of the paper, our effect with its 95% "
                "interval, the minimum detectable effect of our design and a verdict.", ""]
    if spec.get("resolving_power"):
        out += [f"- **Resolving power** ([md]({spec['resolving_power']})): seeds, test queries, selected epoch "
                "and seed s.d. per model; the MDE per claim.", ""]
    out += ["## Tables", ""]
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
