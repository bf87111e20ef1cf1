"""Selection: from the store's trials to one row per (setting, method, seed), the trial a
researcher would report. Searched methods select on **val** accuracy at the final epoch; the
number reported is the selected trial's **test** accuracy.
"""

from __future__ import annotations

import json
import math
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from .. import methods as methods_mod
from ..errors import UserError
from ..searchers import SEARCHERS

GRID = "grid"  # the searcher whose selection every method is compared with (and the transfer matrix uses)
BASELINE = "nokd"  # the student without KD, the other reference

# Val ties: the lower temperature, then the trial id (deterministic).
_SELECT_ORDER = (["val_acc", "tau_t_config", "tau_s_config", "trial_id"], [False, True, True, True])


def base(method: str) -> str:
    """The temperature method of a method name: "mkd:from16" (a variant of a study file) is MKD."""
    return method.split(":", 1)[0]


def method_class(method: str):
    """The class behind a study method: its searcher's (grid, optuna, ...) or its temperature
    method's ("mkd:from16" is MKD's); None for a method whose plugin is not loaded now."""
    b = base(method)
    for registry in (SEARCHERS, methods_mod.METHODS):
        if b in registry:
            return registry.get(b)
    return None


def run_options(raw) -> Dict:
    """A stored trial's method options (a JSON text in the store; missing: none)."""
    return json.loads(raw or "{}") if isinstance(raw, str) else {}


def moved_temperatures(method: str, options: Dict) -> List[Tuple[str, str]]:
    """The temperatures a run of `method` with `options` moves while training, from its class:
    (curve column, name in a legend)."""
    cls = method_class(method)
    return cls.moved_temperatures(options) if cls is not None else [("tau_t", "T")]


def temperature_method(method: str):
    """The temperature method class behind `method` (None for a searcher, or a plugin not loaded)."""
    cls = method_class(method)
    return cls if isinstance(cls, type) and issubclass(cls, methods_mod.TemperatureMethod) else None


def kind(method: str) -> str:
    """searched / learned / baseline, from the method's class (a searcher's for grid, optuna)."""
    return methods_mod.info(method)["kind"]


def learned(methods) -> List[str]:
    return [m for m in method_order(methods) if kind(m) == "learned"]


def ok(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["status"] == "ok"].copy()


def method_order(methods) -> List[str]:
    return sorted(set(methods), key=lambda m: (methods_mod.info(m)["order"], m))


def best_by_val(g: pd.DataFrame) -> pd.Series:
    """The val-selected row of a group of trials."""
    cols, asc = _SELECT_ORDER
    return g.sort_values(cols, ascending=asc).iloc[0]


def select(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, method, seed). Cost columns sum every trial of the unit, finished in
    any status, since all of them were paid for: trials, epochs (deterministic) and seconds."""
    t = trials[~trials["method"].isin(["teacher", "transfer"])]
    good = ok(t)
    if good.empty:
        return pd.DataFrame()
    cols, asc = _SELECT_ORDER
    good = good.sort_values(["setting", "method", "seed"] + cols, ascending=[True, True, True] + asc)
    best = good.groupby(["setting", "method", "seed"], sort=True).head(1).copy()
    cost = (
        t.groupby(["setting", "method", "seed"], sort=True)
        .agg(cost_trials=("trial_id", "count"), cost_epochs=("epochs_run", "sum"), cost_seconds=("seconds", "sum"))
        .reset_index()
    )
    best = best.merge(cost, on=["setting", "method", "seed"], how="left")
    searched = best["method"].map(kind) == "searched"
    best["sel_tau_t"] = np.where(searched, best["tau_t_config"], best["tau_t"])
    best["sel_tau_s"] = np.where(searched, best["tau_s_config"], best["tau_s"])
    best["test"] = best["test_acc"] * 100
    return best.sort_values(["setting", "method", "seed"]).reset_index(drop=True)


def labels(trials: pd.DataFrame) -> Dict[str, str]:
    return dict(zip(trials["setting"], trials["setting_label"]))


def teachers(trials: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the teachers' val/test accuracy, mean and range over the teachers of the study
    (one per seed when seeds vary the teacher)."""
    t = ok(trials[trials["method"] == "teacher"])
    if t.empty:
        return pd.DataFrame()
    return (
        t.groupby("setting_label", sort=True)
        .agg(
            teacher=("teacher", "first"),
            teachers=("trial_id", "count"),
            val=("val_acc", lambda v: v.mean() * 100),
            test=("test_acc", lambda v: v.mean() * 100),
            test_min=("test_acc", lambda v: v.min() * 100),
            test_max=("test_acc", lambda v: v.max() * 100),
        )
        .reset_index()
    )


def grid_curve(trials: pd.DataFrame, setting: str) -> pd.DataFrame:
    """The grid's fixed-temperature runs of one setting (tau_t = tau_s), one row per (tau, seed)."""
    g = ok(trials)
    g = g[(g["setting"] == setting) & (g["method"] == GRID)]
    return g[np.isclose(g["tau_t_config"], g["tau_s_config"])]


def fmt_tau(ts: List[float], tt: Optional[List[float]] = None) -> str:
    def f(v):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"

    if tt is None or all(a == b for a, b in zip(ts, tt)):
        return ", ".join(f(v) for v in ts)
    return ", ".join(f"{f(a)}/{f(b)}" for a, b in zip(ts, tt))


def resolve_setting(trials: pd.DataFrame, name: str) -> str:
    """A setting given by its id, its label, or a data set name that names exactly one setting."""
    t = trials[trials["method"] != "teacher"]
    ids = sorted(t["setting"].unique())
    lab = labels(t)
    if name in ids:
        return name
    by_label = [i for i in ids if lab[i] == name]
    by_dataset = [i for i in ids if i.split("|")[0] == name]
    for cands in (by_label, by_dataset):
        if len(cands) == 1:
            return cands[0]
    allowed = ", ".join(sorted(set(lab[i] for i in ids)))
    raise UserError(f"setting {name!r} is not in this study (or is ambiguous); allowed: {allowed}")
