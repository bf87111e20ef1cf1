"""Figures that papers publish for a setting's teacher/student pair, beside what the study measured.

The figures and their sources come from the study file (`[report.sources]`, `[[report.published]]`),
never from this code. A published figure is a single number from another recipe and machine: it is
shown for orientation, and no verdict is computed from it.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd

from .selection import ok

# How a figure's name reads in the table.
FIGURE_WORDS = {"teacher": "teacher", "nokd": "student alone (no-KD)", "kd": "KD, τ = 4"}


def _measured(trials: pd.DataFrame, sel: pd.DataFrame, setting: str, entry: Dict, figure: str) -> np.ndarray:
    """Test accuracies (%) over seeds of what `figure` names, in `setting`."""
    if figure == "teacher":  # a teacher is trained once per pair (and seed), wherever it was planned
        t = ok(trials[(trials["method"] == "teacher") & (trials["dataset"] == entry["dataset"])
                      & (trials["teacher"] == entry["teacher"])])
        return t["test_acc"].to_numpy() * 100
    if figure == "kd":  # Hinton's KD as the papers run it: the grid's tau_t = tau_s = 4 runs
        g = ok(trials[(trials["setting"] == setting) & (trials["method"] == "grid")])
        g = g[np.isclose(g["tau_t_config"], 4.0) & np.isclose(g["tau_s_config"], 4.0)]
        return g["test_acc"].to_numpy() * 100
    s = sel[(sel["setting"] == setting) & (sel["method"] == figure)]
    return s["test"].to_numpy()


def table(trials: pd.DataFrame, sel: pd.DataFrame, published: List[Dict], sources: Dict[str, str]) -> pd.DataFrame:
    """One row per (setting, published figure) whose data set and pair the study ran."""
    rows = []
    settings = trials[trials["method"] != "teacher"].drop_duplicates("setting")
    for entry in published:
        match = settings[(settings["dataset"] == entry["dataset"]) & (settings["teacher"] == entry["teacher"])
                         & (settings["student"] == entry["student"])]
        for _, s in match.sort_values("setting_label").iterrows():
            for fig, value in entry["figures"].items():
                v = _measured(trials, sel, s["setting"], entry, fig)
                rows.append({
                    "setting_label": s["setting_label"], "figure": fig, "what": FIGURE_WORDS.get(fig, fig),
                    "n": len(v), "measured": float(v.mean()) if len(v) else float("nan"),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                    "published": float(value), "source": entry["source"],
                })
    return pd.DataFrame(rows, columns=["setting_label", "figure", "what", "n", "measured", "sd", "published",
                                       "source"])
