"""Figures that papers publish for a setting's teacher/student pair, beside what the study measured.

The figures and their sources come from the study file (`[report.sources]`, `[[report.published]]`),
never from this code. A published figure is a single number from another recipe and machine: it is
shown for orientation, and no verdict is computed from it.

Beside this study's own figure (the test accuracy at the final epoch of the configuration selected on
val), the table gives the measure the CIFAR KD papers report (CRD, CTKD, DKD, LS-KD; mdistiller's
tables): the best test accuracy over epochs, mean over runs, for the same runs. It chooses the epoch
on the test set, so it is optimistic; it is there so that a published figure is set beside its like.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from .selection import GRID, ok

# How a figure's name reads in the table.
FIGURE_WORDS = {"teacher": "teacher", "nokd": "student alone (no-KD)", "kd": "KD, τ = 4"}


def _rows(trials: pd.DataFrame, sel: pd.DataFrame, setting: str, entry: Dict, figure: str) -> pd.DataFrame:
    """The trials (one per run: trial_id, test %) whose test accuracy `figure` names, in `setting`."""
    if figure == "teacher":  # a teacher is trained once per pair (and seed), wherever it was planned
        t = ok(
            trials[
                (trials["method"] == "teacher")
                & (trials["dataset"] == entry["dataset"])
                & (trials["teacher"] == entry["teacher"])
            ]
        )
    elif figure == "kd":  # Hinton's KD as the papers run it: the grid's tau_t = tau_s = 4 runs
        g = ok(trials[(trials["setting"] == setting) & (trials["method"] == GRID)])
        t = g[np.isclose(g["tau_t_config"], 4.0) & np.isclose(g["tau_s_config"], 4.0)]
    else:  # a method's val-selected trial per seed
        t = sel[(sel["setting"] == setting) & (sel["method"] == figure)]
    return pd.DataFrame({"trial_id": t["trial_id"].to_numpy(), "test": t["test_acc"].to_numpy() * 100})


def best_test(curves: Optional[pd.DataFrame], trial_ids) -> np.ndarray:
    """Per trial: its highest test accuracy (%) over the epochs of its curve, the epoch chosen on the
    test set (the CIFAR KD papers' measure); NaN for a trial without test accuracies in the store.
    A trial that evaluated its last epoch only (a teacher) has that epoch's."""
    if curves is None or curves.empty or "test_acc" not in curves:
        return np.full(len(trial_ids), np.nan)
    best = curves.groupby("trial_id")["test_acc"].max() * 100  # NaN epochs (not evaluated) are skipped
    return np.array([best.get(t, np.nan) for t in trial_ids], dtype=float)


def table(
    trials: pd.DataFrame,
    sel: pd.DataFrame,
    published: List[Dict],
    sources: Dict[str, str],
    curves: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """One row per (setting, published figure) whose data set and pair the study ran. `measured`: the
    runs' test accuracy as this study reports it (final epoch, the configuration selected on val);
    `best_test`: the same runs' best test accuracy over epochs, mean over runs (NaN unless every run
    has a curve with test accuracies)."""
    rows = []
    settings = trials[trials["method"] != "teacher"].drop_duplicates("setting")
    for entry in published:
        match = settings[
            (settings["dataset"] == entry["dataset"])
            & (settings["teacher"] == entry["teacher"])
            & (settings["student"] == entry["student"])
        ]
        for _, s in match.sort_values("setting_label").iterrows():
            for fig, value in entry["figures"].items():
                r = _rows(trials, sel, s["setting"], entry, fig)
                v = r["test"].to_numpy()
                b = best_test(curves, list(r["trial_id"]))
                rows.append(
                    {
                        "setting_label": s["setting_label"],
                        "figure": fig,
                        "what": FIGURE_WORDS.get(fig, fig),
                        "n": len(v),
                        "measured": float(v.mean()) if len(v) else float("nan"),
                        "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                        "best_test": float(b.mean()) if len(b) else float("nan"),
                        "published": float(value),
                        "source": entry["source"],
                    }
                )
    return pd.DataFrame(
        rows, columns=["setting_label", "figure", "what", "n", "measured", "sd", "best_test", "published", "source"]
    )
