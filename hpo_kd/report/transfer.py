"""Transfer: the temperature the grid selected on setting A (by val, per seed), run on setting B
with the same seed, against B's own val-selected temperature. Regret = test accuracy at B's own
selected τ minus test accuracy at A's τ, on B (points; > 0: A's temperature is worse), paired by
seed. The cells into one target B are one Holm family ("transfer cells | B"). Each cell also
carries its axis, B's floor, and A's τ against B's selection cross-fitted (`stability.reference`),
a family of its own per target ("transfer vs B's selection (cross-fitted) | B").
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pandas as pd

from . import stability, stats
from .selection import BASELINE, GRID, best_by_val, fmt_tau, labels, ok

# The verdict on a regret (own minus transferred), in the words of a transfer.
WORDS = {
    "better": "does not transfer",
    "worse": "beats B's own selection",
    "equivalent": "transfers",
    "inconclusive": "inconclusive",
}


def cells(trials: pd.DataFrame, source: str, target: str) -> Tuple[List[Dict], List[Tuple[int, float, float]]]:
    """Per seed: the tau selected on `source`, its test accuracy on `target`, target's own
    selection, the range of target's grid (best minus worst temperature) and target's no-KD.

    Returns (rows, missing): missing lists the (seed, tau_t, tau_s) runs absent on target."""
    good = ok(trials)
    grid = good[good["method"] == GRID]
    src, own_grid = grid[grid["setting"] == source], grid[grid["setting"] == target]
    on_target = good[(good["setting"] == target) & good["method"].isin([GRID, "transfer"])]
    nokd = good[(good["setting"] == target) & (good["method"] == BASELINE)].set_index("seed")["test_acc"]
    rows, missing = [], []
    for seed, g in src.groupby("seed", sort=True):
        own = own_grid[own_grid["seed"] == seed]
        if own.empty:
            continue
        a, b = best_by_val(g), best_by_val(own)
        tt, ts = a["tau_t_config"], a["tau_s_config"]
        hit = on_target[
            (on_target["seed"] == seed)
            & np.isclose(on_target["tau_t_config"], tt)
            & np.isclose(on_target["tau_s_config"], ts)
        ]
        if hit.empty:
            missing.append((int(seed), float(tt), float(ts)))
            continue
        transferred = float(hit.sort_values("trial_id")["test_acc"].iloc[0] * 100)
        rows.append(
            {
                "seed": int(seed),
                "tau_t": float(tt),
                "tau_s": float(ts),
                "transferred": transferred,
                "own_tau_t": float(b["tau_t_config"]),
                "own_tau_s": float(b["tau_s_config"]),
                "own": float(b["test_acc"] * 100),
                "regret": float(b["test_acc"] * 100) - transferred,
                "range": float((own["test_acc"].max() - own["test_acc"].min()) * 100),
                "nokd": float(nokd.loc[seed] * 100) if seed in nokd.index else float("nan"),
            }
        )
    return rows, missing


def missing_trials(trials: pd.DataFrame, source: str, target: str):
    return cells(trials, source, target)[1]


def matrix(trials: pd.DataFrame, margin: float) -> List[Dict]:
    """One row per ordered pair of different grid settings (A, B): the paired regret over seeds
    (`stats.measure`: mean, sd, CI, p, TOST, posterior), the regret as a share of B's grid range
    (per seed: regret / (best - worst grid temperature on B), averaged; `regret_of_range`) and the
    transferred runs against B's no-KD student. Holm and verdicts are applied within each family
    (`stats.apply_holm`), then `finish` words them. `_xfit` is A's τ against B's selection,
    cross-fitted (`stability.reference`), a row for `apply_holm` in the family
    "transfer vs B's selection (cross-fitted) | B"."""
    lab = labels(trials)
    settings = sorted(trials.loc[trials["method"] == GRID, "setting"].unique())
    floors = {s: stability.floor_per_seed(trials, s) for s in settings}
    out = []
    for a in settings:
        for b in settings:
            if a == b:
                continue
            rows, missing = cells(trials, a, b)
            regret = np.array([r["regret"] for r in rows])
            r = stats.measure(regret, margin)
            rng = np.array([r_["range"] for r_ in rows])
            norm = np.where(rng > 0, regret / np.where(rng > 0, rng, 1), 0.0)
            to_nokd = [r_["transferred"] - r_["nokd"] for r_ in rows if r_["nokd"] == r_["nokd"]]
            vs_nokd, vs_nokd_eq = stats.paired(to_nokd), stats.tost(to_nokd, margin)
            xfit = stability.reference(trials, a, b, margin)
            xfit["family"] = stats.family("xfit", lab[b])
            fb = [floors[b][x["seed"]] for x in rows if x["seed"] in floors[b]]
            r.update(
                axis=stability.axis(a, b),
                _xfit=xfit,
                floor=float(np.mean(fb)) if fb else float("nan"),
                source=lab[a],
                target=lab[b],
                source_id=a,
                target_id=b,
                missing=len(missing),
                family=stats.family("transfer", lab[b]),
                taus=fmt_tau([x["tau_t"] for x in rows], [x["tau_s"] for x in rows]),
                own_taus=fmt_tau([x["own_tau_t"] for x in rows], [x["own_tau_s"] for x in rows]),
                regret_of_range=float(norm.mean()) if len(norm) else float("nan"),
                same_tau=int(
                    sum(np.isclose(x["tau_t"], x["own_tau_t"]) and np.isclose(x["tau_s"], x["own_tau_s"]) for x in rows)
                ),
                vs_nokd_n=vs_nokd["n"],
                vs_nokd_mean=vs_nokd["mean"],
                vs_nokd_lo=vs_nokd["lo"],
                vs_nokd_hi=vs_nokd["hi"],
                vs_nokd_p=vs_nokd["p"],
                vs_nokd_p_tost=vs_nokd_eq["p_tost"],
            )
            out.append(r)
    return out


XFIT_COLUMNS = (
    *stats.STAT_COLUMNS,
    "family_size",
    "verdict",
    "seeds_to_reject",
    "seeds_for_equivalence",
    "pairs",
    "pairs_missing",
    "ref_distinct",
    "same_as_regret",
)


def _note(r) -> str:
    """A note (not a verdict, not Holm-corrected) on A's τ on B against B's no-KD student."""
    if r["vs_nokd_n"] < stats.MIN_SEEDS:
        return ""
    ci = f"{r['vs_nokd_mean']:+.2f} points, 95 % CI [{r['vs_nokd_lo']:+.2f}, {r['vs_nokd_hi']:+.2f}]"
    if r["vs_nokd_hi"] < 0:
        return f"A's τ is worse on B than B's no-KD student ({ci}; uncorrected)"
    if r["vs_nokd_p_tost"] < stats.ALPHA:
        p = r["vs_nokd_p_tost"]
        return (
            f"A's τ acts as no KD on B (within ±margin of B's no-KD student, TOST p "
            f"{'< 0.001' if p < 0.001 else format(p, '.3f')}; uncorrected)"
        )
    return ""


def finish(rows: List[Dict]) -> pd.DataFrame:
    """Word the verdicts and note a transferred temperature that is worse than, or acts as, no KD
    on B."""
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["verdict"] = df["verdict"].map(WORDS)
    xfit = pd.DataFrame(list(df.pop("_xfit")))
    same = xfit["same_as_regret"].astype(bool)
    xfit["verdict"] = xfit["verdict"].map(stability.WORDS).where(~same, stability.SAME)
    for k in ("seeds_to_reject", "seeds_for_equivalence"):
        xfit[k] = xfit[k].where(~same, float("nan"))
    for k in XFIT_COLUMNS:
        df[f"xfit_{k}"] = xfit[k].values
    df["note"] = [_note(r) for _, r in df.iterrows()]
    return df
