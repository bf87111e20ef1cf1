"""How stable the grid's selection is within one setting, and the axis each transfer cell moves
along.

Within a setting, the val-selected τ changes from seed to seed. Using the τ another seed of the
same setting selected costs something too: that regret is the **floor** a transfer is measured
against, since no temperature selected elsewhere can be expected to do better than one selected
on a replicate of the target itself. Per seed j of a setting: floor_j = the mean, over the other
seeds i, of (test accuracy at j's own selected τ − test accuracy at i's selected τ), both on j.
"""

from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import pandas as pd

from . import stats
from .selection import best_by_val, fmt_tau, labels, ok

# The parts of a setting id ("dataset|augment|fraction|teacher>student|options…") and the axis
# each one is, in the words of a report.
AXES = (("dataset", "data"), ("augment", "augmentation"), ("fraction", "training-set fraction"),
        ("pair", "teacher–student pair"), ("options", "data options"))  # fmt: skip


def _parts(setting_id: str) -> Dict[str, str]:
    p = setting_id.split("|")
    p += [""] * (4 - len(p))
    return {"dataset": p[0], "augment": p[1], "fraction": p[2], "pair": p[3], "options": "|".join(p[4:])}


def axis(a: str, b: str) -> str:
    """The axis two settings differ along ("data", "augmentation", …), several joined by " + "."""
    pa, pb = _parts(a), _parts(b)
    return " + ".join(name for key, name in AXES if pa[key] != pb[key])


def _grid(trials: pd.DataFrame, setting: str) -> pd.DataFrame:
    g = ok(trials)
    return g[(g["setting"] == setting) & (g["method"] == "grid")]


def selected(trials: pd.DataFrame, setting: str) -> Dict[int, pd.Series]:
    """The grid's val-selected trial of each seed of a setting."""
    return {int(s): best_by_val(g) for s, g in _grid(trials, setting).groupby("seed", sort=True)}


def accuracy_at(runs: pd.DataFrame, tau_t: float, tau_s: float) -> float:
    """Test accuracy (points) of the run at (tau_t, tau_s) among one seed's runs; nan if none."""
    hit = runs[np.isclose(runs["tau_t_config"], tau_t) & np.isclose(runs["tau_s_config"], tau_s)]
    return float(hit.sort_values("trial_id")["test_acc"].iloc[0] * 100) if len(hit) else float("nan")


def floor(trials: pd.DataFrame, setting: str) -> Dict[int, float]:
    """Per seed j: the mean regret on j of the τ the other seeds of the setting selected."""
    g, sel = _grid(trials, setting), selected(trials, setting)
    out = {}
    for j, runs in g.groupby("seed", sort=True):
        own = float(sel[int(j)]["test_acc"] * 100)
        other = [accuracy_at(runs, r["tau_t_config"], r["tau_s_config"]) for i, r in sel.items() if i != j]
        other = [a for a in other if a == a]
        if other:
            out[int(j)] = own - float(np.mean(other))
    return out


def table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per setting with a grid: the selected τ per seed, how many distinct values, the
    most frequent one and its share, the sd of log2 τ_t, and the floor (mean over seeds, 95 % t
    interval)."""
    lab, rows = labels(trials), []
    for setting in sorted(trials.loc[trials["method"] == "grid", "setting"].unique()):
        sel = selected(trials, setting)
        if not sel:
            continue
        tt = [float(r["tau_t_config"]) for r in sel.values()]
        ts = [float(r["tau_s_config"]) for r in sel.values()]
        pairs = pd.Series([f"{a:g}/{b:g}" if a != b else f"{a:g}" for a, b in zip(tt, ts)])
        f = stats.paired(list(floor(trials, setting).values()))
        rows.append(
            {
                "setting": setting,
                "setting_label": lab[setting],
                "n": len(sel),
                "taus": fmt_tau(tt, ts),
                "distinct": int(pairs.nunique()),
                "mode": pairs.value_counts().index[0],
                "mode_share": float(pairs.value_counts().iloc[0] / len(pairs)),
                "sd_log2_tau": float(np.std(np.log2(tt), ddof=1)) if len(tt) > 1 else float("nan"),
                "floor": f["mean"],
                "floor_lo": f["lo"],
                "floor_hi": f["hi"],
            }
        )
    return pd.DataFrame(rows)


def beyond_floor(regret: Dict[int, float], floor_b: Dict[int, float], margin: float) -> Dict:
    """A transfer cell's regret minus the target's floor, paired by seed (> 0: A's τ costs more on
    B than another seed's selection on B does): `stats.measure` over the seeds both have."""
    d = [regret[s] - floor_b[s] for s in sorted(regret) if s in floor_b]
    r = stats.measure(d, margin)
    r["floor"] = float(np.mean([floor_b[s] for s in sorted(regret) if s in floor_b])) if d else math.nan
    return r


# The verdict on (regret − floor), in the words of a transfer.
WORDS = {
    "better": "costs more than the floor",
    "worse": "costs less than the floor",
    "equivalent": "at the floor",
    "inconclusive": "inconclusive",
}


def per_axis(tm: pd.DataFrame) -> List[str]:
    """The axes of a transfer matrix that single cells move along (one part of the setting
    differs), in the order of AXES."""
    names = [name for _, name in AXES]
    return [a for a in names if not tm.empty and (tm["axis"] == a).any()]
