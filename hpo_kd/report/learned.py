"""Learned temperatures: does where a learned temperature ends depend on where it started?

For each setting and learned method (with its `learn` option), the runs started from the lowest
and from the highest initial temperature are paired by seed; the difference of their final
temperatures is taken in log2 units (1 = a factor of 2) and judged like every other comparison,
against a margin in log2 units. The start-dependence rows of one setting are one Holm family of
their own (never mixed with accuracy differences)."""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd

from . import stats
from .selection import base, learned, moved_temperatures, run_options, temperature_method

TAU_MARGIN = 0.5  # log2 units: final temperatures within a factor of 2**0.5 = 1.41 are "the same"
WORDS = {
    "equivalent": "independent of the start",
    "better": "depends on the start (ends higher from higher)",
    "worse": "depends on the start (ends lower from higher)",
    "inconclusive": "inconclusive",
}


def start_dependence(sel: pd.DataFrame, margin: float = TAU_MARGIN) -> List[Dict]:
    rows = []
    t = sel[sel["method"].isin(learned(sel["method"]))].copy()
    if t.empty:
        return rows
    t["base"] = t["method"].map(base)
    t["learn"] = [run_options(o).get("learn", "both") for o in t["options"]]
    # where the learned temperature started (a variant learning tau_s holds tau_t at one value)
    t["start"] = np.where(t["learn"] == "tau_s", t["tau_s_config"], t["tau_t_config"])
    for (setting, b, learn), g in t.groupby(["setting", "base", "learn"], sort=True):
        starts = sorted(g["start"].dropna().unique())
        if len(starts) < 2:
            continue
        low = g[g["start"] == starts[0]].set_index("seed")
        high = g[g["start"] == starts[-1]].set_index("seed")
        seeds = low.index.intersection(high.index)
        for col, _ in moved_temperatures(b, run_options(g["options"].iloc[0])):  # what the method moves
            d = np.log2(high.loc[seeds, col].to_numpy(float)) - np.log2(low.loc[seeds, col].to_numpy(float))
            r = stats.measure(d, margin)
            label = g["setting_label"].iloc[0]
            clamped = _at_clamp(pd.concat([low.loc[seeds], high.loc[seeds]]), col)
            flag = f"; {clamped} of {2 * len(seeds)} runs end at a clamp" if clamped else ""
            r.update(
                kind="start",
                setting=setting,
                setting_label=label,
                method=f"{b} ({learn}){flag}",
                at_clamp=clamped,
                family=stats.family("start", label),
                reference=f"start {starts[0]:g}",
                quantity=col,
                start_low=starts[0],
                start_high=starts[-1],
                final_low=float(np.exp2(np.log2(low.loc[seeds, col].to_numpy(float)).mean())),
                final_high=float(np.exp2(np.log2(high.loc[seeds, col].to_numpy(float)).mean())),
            )
            rows.append(r)
    return rows


def _at_clamp(runs: pd.DataFrame, col: str) -> int:
    """How many of `runs` end with temperature `col` at a bound of its method's clamp range (from
    the method's class, e.g. MKD's tau_min / tau_max): there the clamp, not the gradient, decided."""
    n = 0
    for _, r in runs.iterrows():
        cls = temperature_method(r["method"])
        bounds = cls.clamps(run_options(r["options"])) if cls else None
        n += bounds is not None and bool(
            np.isclose(r[col], bounds[0], rtol=1e-4) or np.isclose(r[col], bounds[1], rtol=1e-4)
        )
    return n


def finish(rows: List[Dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if not df.empty:
        df["verdict"] = df["verdict"].map(WORDS)
    return df
