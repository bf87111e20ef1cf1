"""How stable the grid's selection is within one setting, the cross-fitted reference a transfer is
measured against, and the axis each transfer cell moves along.

Within a setting, the val-selected τ changes from seed to seed. Using the τ another seed of the
same setting selected costs something: the **floor**, per seed j of a setting the mean, over the
other seeds i, of (test accuracy at j's own selected τ − test accuracy at i's selected τ), both
on j. It describes how much the selection varies; it is not a bound (a τ from elsewhere can do
better on j than the τ other seeds of j's setting selected).

A transfer A → B is judged against B's own selection **cross-fitted**: on seed j, the τ B selected
on the other seeds against the τ A selected on the other seeds, both run on seed j of B
(`reference`). Every seed's selection enters every other seed's value, so the interval comes
from the jackknife over seeds (`pseudo_values`), not from treating the per-seed values as
independent.
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from . import stats
from .selection import GRID, best_by_val, fmt_tau, labels, ok

# The parts of a setting id ("dataset|augment|fraction|teacher>student|options…|train.key=value…")
# and the axis each one is, in the words of a report; a setting's own training options (`train =
# {...}`) are each an axis of their own, named by their key.
AXES = (("dataset", "data"), ("augment", "augmentation"), ("fraction", "training-set fraction"),
        ("teacher_data", "the teacher's data"), ("pair", "teacher–student pair"),
        ("options", "data options"))  # fmt: skip


def _parts(setting_id: str) -> Dict[str, object]:
    p = setting_id.split("|")
    p += [""] * (4 - len(p))
    own = dict(x[len("train.") :].split("=", 1) for x in p[4:] if x.startswith("train."))
    # the data the teacher trains on, per part: (its value, whether the setting names it); a part
    # the setting does not name follows the student's
    follows = {"teacher_fraction": p[2], "teacher_augment": p[1]}
    teacher = {k: (own.pop(k), True) if k in own else (v, False) for k, v in follows.items()}
    fraction, named = teacher["teacher_fraction"]
    teacher["teacher_fraction"] = (float(fraction), named)
    return {
        "dataset": p[0],
        "augment": p[1],
        "fraction": p[2],
        "teacher_data": teacher,
        "pair": p[3],
        "options": "|".join(x for x in p[4:] if not x.startswith("train.")),
        "train": own,
    }


def _teacher_data_differs(a: Dict, b: Dict) -> bool:
    """Whether the teachers' data differ in a part one of the two settings names: a part that
    follows the student's in both moves along the student's own axis."""
    return any(a[k][0] != b[k][0] and (a[k][1] or b[k][1]) for k in a)


def axis(a: str, b: str) -> str:
    """The axis two settings differ along ("data", "augmentation", …), several joined by " + ".
    The teacher's data counts where a setting names it (`teacher_fraction`, `teacher_augment`) and
    it differs: a student on a tenth whose teacher trained on the whole set, as the base setting's
    did, moves along the training-set fraction alone."""
    pa, pb = _parts(a), _parts(b)
    names = []
    for key, name in AXES:
        if key == "teacher_data":
            differs = _teacher_data_differs(pa[key], pb[key])
        else:
            differs = pa[key] != pb[key]
        if differs:
            names.append(name)
    own = sorted(set(pa["train"]) | set(pb["train"]))
    names += [k.replace("_", " ") for k in own if pa["train"].get(k) != pb["train"].get(k)]
    return " + ".join(names)


def _grid(trials: pd.DataFrame, setting: str) -> pd.DataFrame:
    g = ok(trials)
    return g[(g["setting"] == setting) & (g["method"] == GRID)]


def selected(trials: pd.DataFrame, setting: str) -> Dict[int, pd.Series]:
    """The grid's val-selected trial of each seed of a setting."""
    return {int(s): best_by_val(g) for s, g in _grid(trials, setting).groupby("seed", sort=True)}


def _key(tau_t: float, tau_s: float) -> Tuple[float, float]:
    return round(float(tau_t), 6), round(float(tau_s), 6)


def accuracy_table(trials: pd.DataFrame, setting: str) -> Dict[int, Dict[Tuple[float, float], float]]:
    """Per seed of a setting: the test accuracy (points) at each (tau_t, tau_s) it ran, from its
    grid and transfer runs (a grid run before a transfer run, then the lower trial id)."""
    g = ok(trials)
    g = g[(g["setting"] == setting) & g["method"].isin([GRID, "transfer"])]
    g = g.assign(_g=(g["method"] != GRID).astype(int)).sort_values(["_g", "trial_id"])
    out: Dict[int, Dict[Tuple[float, float], float]] = {}
    for seed, tt, ts, acc in zip(g["seed"], g["tau_t_config"], g["tau_s_config"], g["test_acc"]):
        out.setdefault(int(seed), {}).setdefault(_key(tt, ts), float(acc * 100))
    return out


def _tau(r: pd.Series) -> Tuple[float, float]:
    return _key(r["tau_t_config"], r["tau_s_config"])


def crossfit(runs: Dict[int, Dict], ref: Dict[int, Tuple], alt: Dict[int, Tuple]) -> Tuple[List[int], np.ndarray]:
    """The seeds and the matrix H[i, j] = acc_j(ref_i) − acc_j(alt_i), i ≠ j: on seed j's runs, the
    test accuracy at the τ `ref` took from seed i minus the accuracy at the τ `alt` took from seed i
    (points); nan on the diagonal and where seed j has no run at one of the two τ."""
    seeds = sorted(set(runs) & set(ref) & set(alt))
    h = np.full((len(seeds), len(seeds)), np.nan)
    for b, j in enumerate(seeds):
        for a, i in enumerate(seeds):
            if i != j:
                h[a, b] = runs[j].get(ref[i], np.nan) - runs[j].get(alt[i], np.nan)
    return seeds, h


def pseudo_values(h: np.ndarray) -> np.ndarray:
    """Jackknife pseudo-values over seeds of T(H) = mean over seeds j of the mean over the other
    seeds i of H[i, j] (nan entries left out), for H of shape (..., n, n): P_k = n T − (n − 1) T_−k,
    T_−k the same statistic without seed k (its row and its column, i.e. its selection and its
    evaluation). Their mean is T (exactly, without missing entries: T is a U-statistic) and
    sd / sqrt(n) is the jackknife standard error, which counts that every seed's selection enters
    every other seed's value; so the pseudo-values go through the paired tests as n rows. A
    pseudo-value is nan where T_−k is undefined."""
    h = np.asarray(h, dtype=float)
    n = h.shape[-1]
    fin = np.isfinite(h)
    hz = np.where(fin, h, 0.0)
    cols, cnt = hz.sum(-2), fin.sum(-2)  # (..., j)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(cnt > 0, cols / np.maximum(cnt, 1), 0.0)
        t = c.sum(-1) / (cnt > 0).sum(-1)
        cols_k = cols[..., None, :] - hz  # (..., k, j): column j without row k
        cnt_k = cnt[..., None, :] - fin
        keep = (cnt_k > 0) & ~np.eye(n, dtype=bool)
        c_k = np.where(keep, cols_k / np.maximum(cnt_k, 1), 0.0)
        t_k = c_k.sum(-1) / keep.sum(-1)
    return n * np.asarray(t)[..., None] - (n - 1) * t_k


def floor(trials: pd.DataFrame, setting: str) -> Tuple[List[int], np.ndarray]:
    """The floor's matrix: H[i, j] = acc_j(j's own selected τ) − acc_j(i's selected τ), i ≠ j; the
    mean of column j is the regret on seed j of the τ another seed selected."""
    sel = selected(trials, setting)
    runs = accuracy_table(trials, setting)
    seeds = sorted(set(sel) & set(runs))
    h = np.full((len(seeds), len(seeds)), np.nan)
    for b, j in enumerate(seeds):
        own = float(sel[j]["test_acc"] * 100)
        for a, i in enumerate(seeds):
            if i != j:
                h[a, b] = own - runs[j].get(_tau(sel[i]), np.nan)
    return seeds, h


def floor_per_seed(trials: pd.DataFrame, setting: str) -> Dict[int, float]:
    """Per seed j: the mean regret on j of the τ the other seeds of the setting selected."""
    seeds, h = floor(trials, setting)
    return {j: float(np.nanmean(h[:, b])) for b, j in enumerate(seeds) if np.isfinite(h[:, b]).any()}


def table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per setting with a grid: the selected τ per seed, how many distinct values, the
    most frequent one and its share, the sd of log2 τ_t, and the floor (mean over seeds, 95 % t
    interval)."""
    lab, rows = labels(trials), []
    for setting in sorted(trials.loc[trials["method"] == GRID, "setting"].unique()):
        sel = selected(trials, setting)
        if not sel:
            continue
        tt = [float(r["tau_t_config"]) for r in sel.values()]
        ts = [float(r["tau_s_config"]) for r in sel.values()]
        pairs = pd.Series([f"{a:g}/{b:g}" if a != b else f"{a:g}" for a, b in zip(tt, ts)])
        f = stats.paired(_finite(pseudo_values(floor(trials, setting)[1])))
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


def _finite(x) -> List[float]:
    return [float(v) for v in np.asarray(x, dtype=float).ravel() if np.isfinite(v)]


def reference(trials: pd.DataFrame, source: str, target: str, margin: float) -> Dict:
    """A's τ against B's own selection on B, both cross-fitted: on seed j, the mean over the other
    seeds i of acc_j(the τ B selected on seed i) − acc_j(the τ A selected on seed i) (points; > 0:
    A's selections cost B more than B's own do). Neither τ comes from seed j, so the two are
    selected alike and neither shares seed j's val split or teacher. Tested through the jackknife
    pseudo-values over seeds (`pseudo_values`), which count the selections every seed shares.

    When A and B each select one τ on every seed, the cross-fitted values are the cell's regret
    itself: the row is that same test again, so it is not tested (p nan: left out of its Holm
    family, no verdict) and `xfit_same_as_regret` says so."""
    ref = {s: _tau(r) for s, r in selected(trials, target).items()}
    alt = {s: _tau(r) for s, r in selected(trials, source).items()}
    seeds, h = crossfit(accuracy_table(trials, target), ref, alt)
    pv = pseudo_values(h) if len(seeds) else np.zeros(0)
    use = [ref[s] for s in seeds], [alt[s] for s in seeds]
    same = len(seeds) > 0 and len(set(use[0])) == 1 and len(set(use[1])) == 1
    r = stats.measure(_finite(pv), margin)
    if same:
        r.update(p=math.nan, p_tost=math.nan)
    r.update(
        pairs=int(np.isfinite(h).sum()),
        pairs_missing=int(len(seeds) * (len(seeds) - 1) - np.isfinite(h).sum()),
        ref_distinct=len(set(use[0])),
        same_as_regret=bool(same),
    )
    return r


# The verdict on the cross-fitted difference (B's selections minus A's, on B), in the words of a transfer.
WORDS = {
    "better": "costs more than B's selection",
    "worse": "costs less than B's selection",
    "equivalent": "as good as B's selection",
    "inconclusive": "inconclusive",
}
SAME = "the regret's test (one τ on every seed of A and of B)"


def per_axis(tm: pd.DataFrame) -> List[str]:
    """The axes of a transfer matrix that single cells move along (one part of the setting
    differs), in the order of AXES."""
    names = [name for _, name in AXES]
    return [a for a in names if not tm.empty and (tm["axis"] == a).any()]
