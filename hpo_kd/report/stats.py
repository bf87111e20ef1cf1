"""The statistics of a report: paired differences over seeds, Holm's correction, verdicts against a
margin, ranks with ties averaged, Friedman's test and the Nemenyi critical difference.

Pure functions of numbers (NumPy arrays, pandas frames); no store, no plots.

Verdict rule (one rule for every comparison of a report, method vs reference and transfer alike),
for the paired differences d (method minus reference, in points) over seeds, the 95 % t interval
[lo, hi] of their mean, the paired t-test's p and its Holm-adjusted value over the report:
  * equivalent:   margin <= lo and hi <= margin (the whole interval inside +-margin);
  * better/worse: not equivalent, and the Holm-adjusted p < 0.05 (the mean's sign says which);
  * inconclusive: anything else, and always with fewer than 3 seeds (two seeds that happen to
    agree give a zero-width interval); it comes with the number of seeds that would give an
    interval narrow enough to decide, at the observed spread of d.
"""
from __future__ import annotations

import math
from typing import Dict, Iterable, List, Sequence

import numpy as np
import pandas as pd

ALPHA = 0.05
LEVEL = 0.95
MIN_SEEDS = 3  # fewer paired seeds decide nothing: two seeds that happen to agree give a zero-width interval
MAX_SEEDS = 1000  # "more than this" when the margin cannot be resolved at the observed spread


def _t(df: int, level: float = LEVEL) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def paired(d: Sequence[float], level: float = LEVEL) -> Dict[str, float]:
    """Mean of the paired differences d, its t interval at `level`, and the two-sided paired
    t-test's p (H0: mean 0). n < 2 gives an unbounded interval and p = nan; d all equal (sd 0)
    gives a zero-width interval and p = 0 (or 1 when they are all 0)."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        return {"n": n, "mean": mean, "sd": float("nan"), "lo": -math.inf, "hi": math.inf, "p": float("nan")}
    sd = float(d.std(ddof=1))
    half = _t(n - 1, level) * sd / math.sqrt(n)
    if sd == 0:
        p = 1.0 if mean == 0 else 0.0
    else:
        from scipy import stats

        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half, "p": p}


def holm(p: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted)."""
    p = np.asarray(list(p), dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        out[j] = running
    return out


def verdict(lo: float, hi: float, mean: float, p_adj: float, margin: float, n: int = MIN_SEEDS) -> str:
    if n < MIN_SEEDS:
        return "inconclusive"
    if -margin <= lo and hi <= margin:
        return "equivalent"
    if p_adj == p_adj and p_adj < ALPHA:
        return "better" if mean > 0 else "worse"
    return "inconclusive"


def seeds_to_resolve(mean: float, sd: float, margin: float, family: int = 1, level: float = LEVEL) -> float:
    """Seeds that would decide at the observed mean and spread: a 95 % interval inside +-margin
    (equivalent), or one that excludes 0 at the Bonferroni level of a family of `family`
    comparisons (which implies Holm p < 0.05), whichever comes first; inf when neither comes
    within MAX_SEEDS."""
    if sd != sd:
        return float("nan")
    alpha = 1 - level
    for n in range(MIN_SEEDS, MAX_SEEDS + 1):
        se = sd / math.sqrt(n)
        if _t(n - 1, level) * se <= margin - abs(mean) or _t(n - 1, 1 - alpha / family) * se < abs(mean):
            return n
    return math.inf


def compare(d: Sequence[float], margin: float, p_adj: float | None = None) -> Dict[str, float]:
    """paired(d) with its verdict; `p_adj` is the Holm-adjusted p (defaults to the raw p)."""
    r = paired(d)
    r["p_holm"] = r["p"] if p_adj is None else p_adj
    r["verdict"] = verdict(r["lo"], r["hi"], r["mean"], r["p_holm"], margin, r["n"])
    r["seeds_needed"] = seeds_to_resolve(r["mean"], r["sd"], margin) if r["verdict"] == "inconclusive" else float("nan")
    return r


def apply_holm(rows: List[Dict], margin: float) -> None:
    """Holm-adjust the `p` of every row (one family: the comparisons of one report) and set each
    row's `p_holm`, `verdict` and `seeds_needed` in place; a row may carry its own `margin`."""
    adj = holm([r["p"] for r in rows])
    for r, pa in zip(rows, adj):
        m = r.get("margin", margin)
        r["p_holm"] = float(pa)
        r["verdict"] = verdict(r["lo"], r["hi"], r["mean"], r["p_holm"], m, r["n"])
        r["seeds_needed"] = (seeds_to_resolve(r["mean"], r["sd"], m, family=len(rows))
                             if r["verdict"] == "inconclusive" else float("nan"))


# ---------------------------------------------------------------------- ranks and Friedman


def block_ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Ranks within each block (row; a block is one setting and seed), 1 = highest score, tied
    scores sharing the average of their ranks."""
    return scores.rank(axis=1, ascending=False, method="average")


def friedman(avg_ranks: Sequence[float], n_blocks: int) -> Dict[str, float]:
    """Friedman's chi-square from the average ranks of k methods over n blocks, with Iman and
    Davenport's F and their p-values (Demsar 2006, eqs. for chi2_F and F_F)."""
    from scipy import stats

    r = np.asarray(avg_ranks, dtype=float)
    k, n = len(r), n_blocks
    chi2 = 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4)
    denom = n * (k - 1) - chi2
    ff = (n - 1) * chi2 / denom if denom > 0 else math.inf
    return {
        "k": k, "n": n, "chi2": float(chi2), "p_chi2": float(stats.chi2.sf(chi2, k - 1)),
        "F": float(ff), "p_F": float(stats.f.sf(ff, k - 1, (k - 1) * (n - 1))) if denom > 0 else 0.0,
    }


def nemenyi_cd(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks for k methods over n blocks."""
    from scipy import stats

    q = stats.studentized_range.ppf(1 - alpha, k, math.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * n)))


# ---------------------------------------------------------------------- tables from a selection

REFERENCES = ("grid", "nokd")  # every method is compared with the grid's selection and with no-KD


def comparisons(sel: pd.DataFrame) -> List[Dict]:
    """Per setting, each method against each reference (the grid's val-selected temperature and
    the no-KD student), paired by seed: rows with the differences' mean, sd, CI and raw p. Holm's
    correction and the verdicts are applied later, over every comparison of the report."""
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        by = {m: h.set_index("seed")["test"] for m, h in g.groupby("method")}
        for ref in REFERENCES:
            if ref not in by:
                continue
            for m in by:
                if m == ref or (ref == "grid" and m == "nokd"):
                    continue  # no-KD vs grid is the same pair as grid vs no-KD
                seeds = by[m].index.intersection(by[ref].index)
                d = (by[m].loc[seeds] - by[ref].loc[seeds]).to_numpy()
                r = paired(d)
                r.update(setting=setting, setting_label=g["setting_label"].iloc[0], method=m, reference=ref)
                rows.append(r)
    return rows


def summary(sel: pd.DataFrame, ranks: pd.DataFrame) -> pd.DataFrame:
    """Per setting and method: seeds, test mean, sd and 95 % CI half-width, val mean, cost per seed
    (trials, epochs; seconds apart) and the average of the per-seed ranks."""
    rows = []
    for (setting, m), g in sel.groupby(["setting", "method"], sort=True):
        test = g["test"].to_numpy()
        n = len(test)
        sd = float(test.std(ddof=1)) if n > 1 else float("nan")
        rk = ranks[(ranks["setting"] == setting) & (ranks["method"] == m)]["rank"]
        rows.append({
            "setting": setting, "setting_label": g["setting_label"].iloc[0], "method": m, "seeds": n,
            "test_mean": float(test.mean()), "test_sd": sd,
            "test_ci95": _t(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan"),
            "val_mean": float(g["val_acc"].mean() * 100),
            "trials_per_seed": float(g["cost_trials"].mean()), "epochs_per_seed": float(g["cost_epochs"].mean()),
            "seconds_per_seed": float(g["cost_seconds"].mean()),
            "avg_rank": float(rk.mean()) if len(rk) else float("nan"),
        })
    return pd.DataFrame(rows)


def rank_table(sel: pd.DataFrame) -> pd.DataFrame:
    """Long table (setting, seed, method, rank): ranks within each (setting, seed) block that has
    every method of its setting, ties averaged."""
    out = []
    for setting, g in sel.groupby("setting", sort=True):
        wide = g.pivot(index="seed", columns="method", values="test").dropna()
        if wide.empty:
            continue
        r = block_ranks(wide).reset_index().melt(id_vars="seed", var_name="method", value_name="rank")
        r["setting"] = setting
        out.append(r)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["setting", "seed", "method", "rank"])


def overall_ranks(sel: pd.DataFrame) -> tuple[pd.DataFrame, Dict[str, float] | None]:
    """Average rank per method over the (setting, seed) blocks that hold every method of the study,
    and Friedman's test over those blocks (None with fewer than 2 blocks or 2 methods)."""
    wide = sel.pivot_table(index=["setting", "seed"], columns="method", values="test").dropna()
    if wide.empty or wide.shape[1] < 2:
        return pd.DataFrame(columns=["method", "avg_rank"]), None
    r = block_ranks(wide)
    avg = r.mean().rename("avg_rank").reset_index().sort_values(["avg_rank", "method"]).reset_index(drop=True)
    fr = None
    if len(wide) >= 2:
        fr = friedman(avg["avg_rank"].to_numpy(), len(wide))
        fr["cd"] = nemenyi_cd(len(avg), len(wide))
    return avg, fr


def spread(sel: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Per setting: the seed spread (sd over seeds, points) of the no-KD student and of the grid's
    selected student, flagged when above `limit`."""
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        r = {"setting": setting, "setting_label": g["setting_label"].iloc[0]}
        for m in ("nokd", "grid"):
            v = g.loc[g["method"] == m, "test"]
            r[f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        worst = max((r[k] for k in ("nokd_sd", "grid_sd") if r[k] == r[k]), default=float("nan"))
        r["flag"] = "above the limit" if worst == worst and worst > limit else ""
        rows.append(r)
    return pd.DataFrame(rows)
