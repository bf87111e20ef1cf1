"""Replication: a study's verdicts on a second draw of seeds, a check of stability.

The same study run twice on disjoint seeds (`hpo-kd run STUDY --seeds 8-15 --name NAME` beside the
file's seeds) gives every verdict twice, each from its own draw, each Holm-corrected within its
own family. A finding (a verdict that is not inconclusive) *replicates* when the second draw gives
the same verdict; it is *inconclusive on the second draw* when that draw decides nothing (a draw
of a few seeds has little power: that is not evidence against it); two findings that differ but
fit one true difference (equivalent in one draw, better or worse in the other, their intervals
overlapping inside the margin) are *consistent within the margin*; *overturned* is left for two
findings that contradict each other. Every row also has the draws' heterogeneity p (the draw ×
effect interaction, `stats.heterogeneity`). The study's verdicts come from all its seeds pooled
(`hpo-kd report A B`, `pooled`). `hpo-kd replication A B` writes the table to
reports/<B>/replication.md and replication.csv.
"""

from __future__ import annotations

import os
from typing import Dict, List

import pandas as pd

from ..errors import UserError
from ..files import atomic_write
from . import stability, stats
from .context import Analysis
from .fmt import EQUIVALENT
from .selection import ok

KEY = ["kind", "where", "what"]
STATS = ["n", "mean", "sd", "lo", "hi", "lo90", "hi90", "verdict"]
OUTCOMES = {  # (finding in A, finding in B, same verdict) -> outcome
    (True, True, True): "replicates",
    (True, True, False): "overturned",
    (True, False, False): "inconclusive on the second draw",
    (False, True, False): "new in the second draw",
    (False, False, True): "inconclusive twice",
}
CONSISTENT = "consistent within the margin"  # equivalent in one draw, better/worse in the other, one true μ fits both


def verdict_rows(ctx: Analysis) -> pd.DataFrame:
    """One row per verdict of a report: its kind (the family's kind), where (the setting, or the
    transfer target), what was compared, seeds, the mean difference, its sd, 95 % and 90 % intervals
    and the verdict. A cross-fitted transfer row that is the regret's test again is not a verdict."""
    rows: List[Dict] = []
    for _, r in ctx.comparisons.iterrows():
        what = f"{r['method']} − {r['reference']}"
        rows.append(dict(kind=r["family"].split(" | ")[0], where=r["setting_label"], what=what, **_v(r, "")))
    for _, r in ctx.transfer.iterrows():
        what = f"{r['source']} → {r['target']}"
        rows.append(dict(kind=stats.KINDS["transfer"], where=r["target"], what=what, **_v(r, "")))
        if r["xfit_verdict"] != stability.SAME:
            rows.append(dict(kind=stats.KINDS["xfit"], where=r["target"], what=what, **_v(r, "xfit_")))
    for _, r in ctx.starts.iterrows():
        what = f"{r['method'].split(';')[0]} {r['quantity']}"  # without the count of runs at a clamp
        rows.append(dict(kind=r["family"].split(" | ")[0], where=r["setting_label"], what=what, **_v(r, "")))
    return pd.DataFrame(rows, columns=KEY + STATS)


def _v(r, prefix: str) -> Dict:
    return {k: r[prefix + k] for k in STATS}


def compatible(ra: Dict, rb: Dict) -> bool:
    """Two different findings that one true difference fits: one of equivalence (its 90 % interval
    inside ±m) and one of a difference (its 95 % interval beside 0) whose intervals overlap, e.g.
    both consistent with 0 < μ < m."""
    ea, eb = ra["verdict"] in EQUIVALENT, rb["verdict"] in EQUIVALENT
    if ea == eb:
        return False
    (lo_e, hi_e), (lo_d, hi_d) = [(r["lo90"], r["hi90"]) if e else (r["lo"], r["hi"]) for r, e in ((ra, ea), (rb, eb))]
    if not ea:
        (lo_e, hi_e), (lo_d, hi_d) = (lo_d, hi_d), (lo_e, hi_e)
    return max(lo_e, lo_d) < min(hi_e, hi_d)


def outcome(a: str, b: str, ra: Dict | None = None, rb: Dict | None = None) -> str:
    if not isinstance(a, str) or not isinstance(b, str):
        return "in one draw only"
    out = OUTCOMES[(a != "inconclusive", b != "inconclusive", a == b)]
    if out == "overturned" and ra is not None and rb is not None and compatible(ra, rb):
        return CONSISTENT
    return out


def table(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The two draws' verdict rows side by side (suffixes _a, _b) with each one's outcome and the
    draws' heterogeneity p."""
    t = first.merge(second, on=KEY, how="outer", suffixes=("_a", "_b"), sort=False)
    out, het = [], []
    for _, r in t.iterrows():
        ra, rb = ({k: r[f"{k}_{x}"] for k in STATS} for x in ("a", "b"))
        out.append(outcome(r["verdict_a"], r["verdict_b"], ra, rb))
        het.append(stats.heterogeneity([ra["mean"], rb["mean"]], [ra["sd"], rb["sd"]], [_n(ra), _n(rb)]))
    t["outcome"], t["het_p"] = out, het
    return t


def _n(r: Dict) -> int:
    return int(r["n"]) if r["n"] == r["n"] else 0


def summary(t: pd.DataFrame) -> Dict[str, int]:
    """How many findings the first draw has, and what became of them; the second draw's new ones."""
    counts = t["outcome"].value_counts()
    out = {k: int(counts.get(k, 0)) for k in list(OUTCOMES.values()) + [CONSISTENT, "in one draw only"]}
    out["findings of the first draw"] = int((t["verdict_a"].fillna("inconclusive") != "inconclusive").sum())
    return out


def write(store_a: str, store_b: str, out_root: str = "reports") -> str:
    """Analyse both stores as their reports do and write reports/<B>/replication.md and .csv."""
    from . import analyse, load_store, study_options
    from .md_draws import replication as render

    draws = []
    for store in (store_a, store_b):
        trials, curves = load_store(store)
        opts = study_options(store)
        draws.append((store, trials, analyse(trials, curves, opts["margin"], opts["max_spread"])))
    (_, ta, ca), (_, tb, cb) = draws
    if ca.margin != cb.margin:
        raise UserError(f"the two studies' [report] margins differ ({ca.margin}, {cb.margin}): not one question")
    common = set(ok(ta)["seed"]) & set(ok(tb)["seed"])
    if common:
        seeds = ", ".join(str(int(s)) for s in sorted(common))
        raise UserError(f"the two stores share seeds {seeds}: a second draw needs other seeds (--seeds)")
    t = table(verdict_rows(ca), verdict_rows(cb))
    name = tb["study"].iloc[0]
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    t.round(4).to_csv(os.path.join(out, "replication.csv"), index=False)
    path = os.path.join(out, "replication.md")
    text = render(t, summary(t), draws, ca.margin)

    def write_md(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write_md)
    return path
