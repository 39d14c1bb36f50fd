"""The paper's numbers, transcribed from its Tables 1-7 into ``results/paper/table{1..7}.csv``.

Tidy format, one value per line: ``table, block, dataset, method, metric, value``. ``block`` is
the part of the table a row belongs to (the dataset in Tables 1, 2 and 7; ``VGG`` / ``I3D`` in
Table 3; ``two-stage`` / ``three-stage`` in Table 4; ``one-stage`` .. ``four-stage`` in Table 5;
``64 clips`` / ``128 clips`` in Table 6). ``method`` is the row as printed (citations kept, so
that ``SCDM[74]`` and ``SCDM[75]`` stay apart; Table 1: the split). ``metric`` uses the keys of
``test_metrics.json`` (``R1@0.5``, ``mIoU``; Table 1: ``videos``, ``sentences``). A cell the paper
leaves empty ("-") has an empty value.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pln.errors import DataError

COLUMNS = ("table", "block", "dataset", "method", "metric", "value")


class PaperValues:
    """Look-up of the paper's value of one (block, method, metric) cell of one table."""

    def __init__(self, frame: pd.DataFrame, source: str = "<frame>"):
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise DataError(f"{source}: missing columns {missing}; expected {', '.join(COLUMNS)}")
        self.source = source
        self.frame = frame
        keys = frame[["block", "method", "metric"]].astype(str)
        dup = keys.duplicated()
        if dup.any():
            row = keys[dup].iloc[0]
            raise DataError(f"{source}: duplicate entry block={row['block']!r} method={row['method']!r} "
                            f"metric={row['metric']!r}; keep one")
        self._values = {tuple(k): float(v) for k, v in zip(keys.itertuples(index=False), frame["value"])}

    @classmethod
    def read(cls, path: str | Path) -> "PaperValues":
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: paper values not found; the transcribed tables live in results/paper/")
        return cls(pd.read_csv(path, dtype={"block": str, "method": str, "metric": str}), str(path))

    def get(self, block: str, method: str | None, metric: str) -> float:
        """The paper's value, or NaN where the paper has none (or ``method`` is None)."""
        if method is None:
            return math.nan
        return self._values.get((str(block), str(method), str(metric)), math.nan)

    def methods(self, block: str) -> list[str]:
        """The rows of one block, in the paper's order."""
        sel = self.frame[self.frame["block"].astype(str) == block]
        return list(dict.fromkeys(sel["method"].astype(str)))
