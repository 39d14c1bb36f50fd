"""The names of the workflow's outputs: the paper's tables and figures, their file formats, the
files of ``pln stats``, and the metric names a table block reports (``R<n>@<m>``, ``mIoU``)."""

from __future__ import annotations

import re

from pln.errors import ConfigError

STATS_FILES = ("table1.csv", "moment_lengths.csv")
TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "table7")
FIGURES = ("fig5", "fig7", "fig8")
TABLE_FORMATS = ("csv", "md", "tex")
FIGURE_FORMATS = ("png", "pdf")
_METRIC = re.compile(r"^R(\d+)@([0-9.]+)$|^mIoU$")


def parse_metric(name: str) -> tuple[int, float] | None:
    """``"R5@0.3"`` -> ``(5, 0.3)``; ``"mIoU"`` -> ``None``; anything else raises ConfigError."""
    match = _METRIC.match(name)
    if not match:
        raise ConfigError(f"metric {name!r}: expected R<n>@<m> (e.g. R1@0.5) or mIoU")
    if name == "mIoU":
        return None
    return int(match.group(1)), float(match.group(2))
