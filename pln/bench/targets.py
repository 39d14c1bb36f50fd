"""The project's speed targets (SPEC section 8) and the lines that set them against measured rows."""

from __future__ import annotations

import pandas as pd

# The official 2D-TAN code on one NVIDIA H200, TACoS N=128, batch 32 (SPEC section 8): queries/s
# as shipped and with anomaly detection off.
OFFICIAL_TACOS_H200 = {"as shipped": 41.0, "anomaly detection off": 47.5}
TARGET_TRAIN_VS_OFFICIAL = 3.0
TARGET_PLN_TACOS_TRAIN = 300.0
TARGET_EVAL = 5000.0


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def target_lines(frame: pd.DataFrame) -> list[str]:
    """The project's speed targets against the measured ``ours`` rows of ``frame`` (one line each)."""
    ours = frame[frame.variant == "ours"].set_index("config")
    lines = []
    if "2dtan-tacos-128" in ours.index:
        q = ours.loc["2dtan-tacos-128", "train_queries_per_s"]
        ref = OFFICIAL_TACOS_H200["as shipped"]
        lines.append(f"2D-TAN TACoS training {q:.1f} q/s = x{q / ref:.2f} the official code as shipped "
                     f"({ref} q/s on an H200), x{q / OFFICIAL_TACOS_H200['anomaly detection off']:.2f} with its "
                     f"anomaly detection off; target >= x{TARGET_TRAIN_VS_OFFICIAL:g} "
                     f"({TARGET_TRAIN_VS_OFFICIAL * ref:.0f} q/s): {_verdict(q >= TARGET_TRAIN_VS_OFFICIAL * ref)}")
    if "pln-tacos-32-128" in ours.index:
        q = ours.loc["pln-tacos-32-128", "train_queries_per_s"]
        lines.append(f"PLN 32-128 TACoS training {q:.1f} q/s; target >= {TARGET_PLN_TACOS_TRAIN:.0f}: "
                     f"{_verdict(q >= TARGET_PLN_TACOS_TRAIN)}")
    if "eval_queries_per_s" in ours.columns:
        for name, row in ours.iterrows():
            q = row["eval_queries_per_s"]
            lines.append(f"{name} evaluation (NMS and metrics included) {q:.0f} q/s; target >= "
                         f"{TARGET_EVAL:.0f}: {_verdict(q >= TARGET_EVAL)}")
    if "data_queries_per_s" in ours.columns:
        for name, row in ours.iterrows():
            lines.append(f"{name} data path {row['data_queries_per_s']:.0f} q/s against training "
                         f"{row['train_queries_per_s']:.0f} q/s: the loader "
                         f"{'keeps up' if row['data_queries_per_s'] >= row['train_queries_per_s'] else 'is the bottleneck'}")
    return lines
