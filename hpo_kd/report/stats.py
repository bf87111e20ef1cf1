"""The statistics of a report: paired differences over seeds, equivalence (TOST), Holm's correction
within declared families, verdicts against a margin, posterior probabilities (Bayesian correlated
t-test), a power calculation, ranks with ties averaged, Friedman's test and pairwise Wilcoxon–Holm.

Pure functions of numbers (NumPy arrays, pandas frames); no store, no plots. The field's libraries
do the work where they have it: statsmodels (`multipletests` for Holm, `ttost_paired` for TOST),
baycomp (the posterior of the correlated t-test), scikit-posthocs (pairwise Wilcoxon with Holm).
What is by hand is what they lack (the t interval's bookkeeping, the Iman–Davenport F, the family
bookkeeping, and in `power` the power of the t-test and of TOST: statsmodels' `TTestPower` fails
for large effects and has no paired TOST).

Verdict rule (one rule for every comparison, method vs reference, transfer and start dependence
alike), for the paired differences d over seeds (method minus reference):
  * equivalent:   TOST's p (two one-sided t-tests at alpha = 0.05 each against -margin and
    +margin; equivalently, the 90 % interval inside (-margin, +margin)), Holm-adjusted within the
    comparison's family, is < 0.05 (this wins when the t-test also rejects: a real difference
    smaller than the margin);
  * better/worse: otherwise, when the two-sided paired t-test's Holm-adjusted p < 0.05 (Holm
    within the same family); the mean's sign says which;
  * inconclusive: anything else, and always with fewer than 3 seeds (two seeds that happen to
    agree give a zero-width interval); it comes with the seeds each test needs for 80 % power at
    the observed mean and sd, at the family's worst-case Holm alpha (0.05 / family size): the
    t-test to reject "no difference", TOST to establish equivalence (`power`).

Families are declared, not "whatever this report holds": a comparison's family is its kind
(methods vs grid, methods vs no-KD, transfer cells, transfer vs B's selection, start dependence)
within one setting (for a transfer cell: its target setting). The same paired data in the same
family give the same verdict whatever else a report contains.
"""

from __future__ import annotations

import gc
import math
from typing import Dict, Iterable, List, Sequence

import numpy as np
import pandas as pd

from . import power
from .selection import BASELINE, GRID

ALPHA = power.ALPHA
LEVEL = 0.95
# The columns of one comparison's statistics, in the order the tables and CSVs keep them.
STAT_COLUMNS = (
    "n",
    "mean",
    "sd",
    "lo",
    "hi",
    "p",
    "p_holm",
    "lo90",
    "hi90",
    "p_tost",
    "p_tost_holm",
    "p_below",
    "p_inside",
    "p_above",
)
MIN_SEEDS = power.MIN_SEEDS  # fewer paired seeds decide nothing: two seeds that agree give a zero-width interval
MAX_SEEDS = power.MAX_SEEDS  # "more than this" when the observed effect is too small for any practical number

# The kinds of comparison, each its own family per setting (the family's name is "<kind> | <setting label>").
KINDS = {
    GRID: "methods vs grid",
    BASELINE: "methods vs no-KD",
    "transfer": "transfer cells",
    "xfit": "transfer vs B's selection (cross-fitted)",
    "start": "start dependence",
}


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

        p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return {"n": n, "mean": mean, "sd": sd, "lo": mean - half, "hi": mean + half, "p": p}


def tost(d: Sequence[float], margin: float) -> Dict[str, float]:
    """Equivalence by two one-sided paired t-tests (statsmodels' `ttost_paired`), H0: mean <= -margin
    or mean >= +margin, each side at alpha = 0.05: its p (the larger one-sided p) and the 90 %
    interval that goes with it (p < 0.05 exactly when the 90 % interval lies inside +-margin).
    sd 0 (the library would divide by zero): p 0 strictly inside the margin, else 1."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return {"p_tost": float("nan"), "lo90": -math.inf, "hi90": math.inf}
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = _t(n - 1, 1 - 2 * ALPHA) * sd / math.sqrt(n)
    if sd == 0:
        p = 0.0 if -margin < mean < margin else 1.0
    else:
        from statsmodels.stats.weightstats import ttost_paired

        p = float(ttost_paired(d, np.zeros(n), -margin, margin)[0])
    return {"p_tost": p, "lo90": mean - half, "hi90": mean + half}


def holm(p: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels' `multipletests`); NaN stays NaN and is not
    counted in the family."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(list(p), dtype=float)
    out = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        # Its Holm branch calls gc.collect(): ~0.1 s in a process holding torch and matplotlib, and
        # a report has dozens of families. Frozen, the objects that exist are not walked again.
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
        finally:
            gc.unfreeze()
    return out


def posterior(d: Sequence[float], margin: float) -> Dict[str, float]:
    """The posterior probabilities that the mean difference is below -margin, inside +-margin and
    above +margin: the Bayesian correlated t-test (Benavoli et al., JMLR 2017; baycomp) with
    correlation rho = 0, since seeds are independent replicates, not cross-validation folds.

    baycomp's `two_on_single(x, y, runs=1)` / `CorrelatedTTest` would not give rho = 0: they
    compute the variance with the Nadeau–Bengio factor 1/n + 1/(nfolds - 1), nfolds = n / runs,
    i.e. rho = 1/n. So the posterior is baycomp's own `Posterior` (a Student t with n - 1 degrees
    of freedom, location mean(d), scale sd(d) / sqrt(n)), built with the rho = 0 variance."""
    from baycomp.single import Posterior

    d = np.asarray(d, dtype=float)
    n = len(d)
    if n < 2:
        return {"p_below": float("nan"), "p_inside": float("nan"), "p_above": float("nan")}
    var = float(d.var(ddof=1)) / n
    lo, ins, hi = Posterior(float(d.mean()), var, n - 1, rope=margin).probs()
    return {"p_below": float(lo), "p_inside": float(ins), "p_above": float(hi)}


def verdict(mean: float, p_holm: float, p_tost_holm: float, n: int = MIN_SEEDS) -> str:
    """The verdict from the Holm-adjusted p-values of the t-test and of TOST. When both reject
    (a difference that is real but smaller than the margin), the margin decides: equivalent."""
    if n < MIN_SEEDS:
        return "inconclusive"
    if p_tost_holm == p_tost_holm and p_tost_holm < ALPHA:
        return "equivalent"
    if p_holm == p_holm and p_holm < ALPHA:
        return "better" if mean > 0 else "worse"
    return "inconclusive"


def heterogeneity(means: Sequence[float], sds: Sequence[float], ns: Sequence[int]) -> float:
    """Do two or more draws of seeds give the same mean difference? The p-value of Welch's test of
    equal means across the draws (statsmodels' `anova_generic` with unequal variances; for two
    draws it is Welch's two-sample t-test of their paired differences): the draw × effect
    interaction. nan with fewer than two draws of at least two seeds; a draw with sd 0 counts with
    a tiny variance (two draws of sd 0: p 1 if their means are equal, else 0)."""
    from statsmodels.stats.oneway import anova_generic

    rows = [(m, s, n) for m, s, n in zip(means, sds, ns) if n >= 2 and m == m and s == s]
    if len(rows) < 2:
        return float("nan")
    m, s, n = (np.array(x, dtype=float) for x in zip(*rows))
    if (s == 0).all():
        return 1.0 if np.ptp(m) == 0 else 0.0
    var = np.maximum(s**2, 1e-12 * max(float((s**2).max()), 1e-12))
    return float(anova_generic(m, var, n, use_var="unequal").pvalue)


def family(kind: str, setting_label: str) -> str:
    return f"{KINDS[kind]} | {setting_label}"


def compare(
    d: Sequence[float],
    margin: float,
    p_holm: float | None = None,
    p_tost_holm: float | None = None,
    family_size: int = 1,
) -> Dict[str, float]:
    """Every statistic of one comparison with its verdict; `p_holm`, `p_tost_holm` are the
    Holm-adjusted p-values within its family (default: the raw ones, a family of one)."""
    r = measure(d, margin)
    r["p_holm"] = r["p"] if p_holm is None else p_holm
    r["p_tost_holm"] = r["p_tost"] if p_tost_holm is None else p_tost_holm
    r["family_size"] = family_size
    _decide(r, family_size)
    return r


def _decide(r: Dict, size: int) -> None:
    """The verdict; for an inconclusive row, the seeds each of its two tests needs for 80 % power at
    the observed mean and sd, alpha corrected for the family (`power`)."""
    r["verdict"] = verdict(r["mean"], r["p_holm"], r["p_tost_holm"], r["n"])
    inc = r["verdict"] == "inconclusive"
    nan = float("nan")
    r["seeds_to_reject"] = power.seeds_to_reject(r["mean"], r["sd"], family=size) if inc else nan
    r["seeds_for_equivalence"] = (
        power.seeds_for_equivalence(r["mean"], r["sd"], r.get("margin", nan), family=size) if inc else nan
    )


def measure(d: Sequence[float], margin: float) -> Dict[str, float]:
    """The per-comparison statistics that need no family: paired t, TOST, posterior."""
    r = paired(d)
    r.update(tost(d, margin))
    r.update(posterior(d, margin))
    r["margin"] = margin
    return r


def apply_holm(rows: List[Dict]) -> None:
    """Holm within each family (the row's `family`; a row without one is a family of its own), on
    the t-test's p and, separately, on TOST's p (rows from `measure`); sets `p_holm`,
    `p_tost_holm`, `family_size`, `verdict`, `seeds_to_reject` and `seeds_for_equivalence` in place."""
    groups: Dict[str, List[Dict]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.get("family") or f"__alone_{i}", []).append(r)
    for g in groups.values():
        adj, adj_t = holm([r["p"] for r in g]), holm([r.get("p_tost", float("nan")) for r in g])
        size = sum(1 for r in g if r["p"] == r["p"])
        for r, pa, pt in zip(g, adj, adj_t):
            r["p_holm"], r["p_tost_holm"], r["family_size"] = float(pa), float(pt), size
            _decide(r, size)


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
        "k": k,
        "n": n,
        "chi2": float(chi2),
        "p_chi2": float(stats.chi2.sf(chi2, k - 1)),
        "F": float(ff),
        "p_F": float(stats.f.sf(ff, k - 1, (k - 1) * (n - 1))) if denom > 0 else 0.0,
    }


def wilcoxon_holm(wide: pd.DataFrame) -> pd.DataFrame:
    """Pairwise two-sided Wilcoxon signed-rank tests between the methods (columns) over the blocks
    (rows), Holm-adjusted over the pairs (one family of its own): scikit-posthocs'
    `posthoc_wilcoxon(p_adjust="holm")`, zero differences split between the signs ("zsplit", so
    that a pair of identical methods gives p = 1 rather than an error). A square frame of p-values."""
    import warnings

    import scikit_posthocs as sp

    long = wide.reset_index(drop=True).melt(var_name="method", value_name="test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that exact p-values are unavailable with ties
        p = sp.posthoc_wilcoxon(long, val_col="test", group_col="method", zero_method="zsplit", p_adjust="holm")
    return p.fillna(1.0).loc[list(wide.columns), list(wide.columns)]


# ---------------------------------------------------------------------- tables from a selection

REFERENCES = (GRID, BASELINE)  # every method is compared with the grid's selection and with no-KD


def comparisons(sel: pd.DataFrame, margin: float) -> List[Dict]:
    """Per setting, each method against each reference (the grid's val-selected temperature and
    the no-KD student), paired by seed: rows with the differences' statistics (`measure`) and
    their family (the reference's kind within the setting). Holm's correction and the verdicts are
    applied later, within each family (`apply_holm`)."""
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        by = {m: h.set_index("seed")["test"] for m, h in g.groupby("method")}
        for ref in REFERENCES:
            if ref not in by:
                continue
            for m in by:
                if m == ref or (ref == GRID and m == BASELINE):
                    continue  # no-KD vs grid is the same pair as grid vs no-KD
                seeds = by[m].index.intersection(by[ref].index)
                d = (by[m].loc[seeds] - by[ref].loc[seeds]).to_numpy()
                r = measure(d, margin)
                label = g["setting_label"].iloc[0]
                r.update(setting=setting, setting_label=label, method=m, reference=ref, family=family(ref, label))
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
        rows.append(
            {
                "setting": setting,
                "setting_label": g["setting_label"].iloc[0],
                "method": m,
                "seeds": n,
                "test_mean": float(test.mean()),
                "test_sd": sd,
                "test_ci95": _t(n - 1) * sd / math.sqrt(n) if n > 1 else float("nan"),
                "val_mean": float(g["val_acc"].mean() * 100),
                "trials_per_seed": float(g["cost_trials"].mean()),
                "epochs_per_seed": float(g["cost_epochs"].mean()),
                "seconds_per_seed": float(g["cost_seconds"].mean()),
                "avg_rank": float(rk.mean()) if len(rk) else float("nan"),
            }
        )
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


def overall_ranks(sel: pd.DataFrame) -> tuple[pd.DataFrame, Dict | None]:
    """Average rank per method over the (setting, seed) blocks that hold every method of the study,
    Friedman's test over those blocks and the pairwise Wilcoxon–Holm p-values (`pairs`, a square
    frame) — exploratory, a family of its own (None with fewer than 2 blocks or 2 methods)."""
    wide = sel.pivot_table(index=["setting", "seed"], columns="method", values="test").dropna()
    if wide.empty or wide.shape[1] < 2:
        return pd.DataFrame(columns=["method", "avg_rank"]), None
    r = block_ranks(wide)
    avg = r.mean().rename("avg_rank").reset_index().sort_values(["avg_rank", "method"]).reset_index(drop=True)
    fr = None
    if len(wide) >= 2:
        fr = friedman(avg["avg_rank"].to_numpy(), len(wide))
        fr["pairs"] = wilcoxon_holm(wide)
    return avg, fr


def spread(sel: pd.DataFrame, limit: float) -> pd.DataFrame:
    """Per setting: the seed spread (sd over seeds, points) of the no-KD student and of the grid's
    selected student, flagged when above `limit`."""
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        r = {"setting": setting, "setting_label": g["setting_label"].iloc[0]}
        for m in (BASELINE, GRID):
            v = g.loc[g["method"] == m, "test"]
            r[f"{m}_sd"] = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        worst = max((r[k] for k in ("nokd_sd", "grid_sd") if r[k] == r[k]), default=float("nan"))
        r["flag"] = "above the limit" if worst == worst and worst > limit else ""
        rows.append(r)
    return pd.DataFrame(rows)
