"""Replication: a study's verdicts on a second draw of seeds.

The same study run twice on disjoint seeds (`hpo-kd run STUDY --seeds 8-15 --name NAME` beside the
file's seeds) gives every verdict twice, each from its own draw, each Holm-corrected within its
own family. A finding (a verdict that is not inconclusive) *replicates* when the second draw gives
the same verdict; it is *not repeated* when the second draw is inconclusive, and *overturned* when
the second draw gives another finding. `hpo-kd replication A B` writes the table to
reports/<B>/replication.md and replication.csv.
"""

from __future__ import annotations

import os
from typing import Dict, List

import pandas as pd

from ..errors import UserError
from ..files import atomic_write
from .selection import ok

KEY = ["kind", "where", "what"]
OUTCOMES = {  # (finding in A, finding in B, same verdict) -> outcome
    (True, True, True): "replicates",
    (True, True, False): "overturned",
    (True, False, False): "not repeated (inconclusive)",
    (False, True, False): "new in the second draw",
    (False, False, True): "inconclusive twice",
}


def verdict_rows(ctx: Dict) -> pd.DataFrame:
    """One row per verdict of a report: its kind (the family's kind), where (the setting, or the
    transfer target), what was compared, the mean difference, its 95 % interval and the verdict."""
    rows: List[Dict] = []
    for _, r in ctx["comparisons"].iterrows():
        rows.append(
            dict(
                kind=r["family"].split(" | ")[0],
                where=r["setting_label"],
                what=f"{r['method']} − {r['reference']}",
                mean=r["mean"],
                lo=r["lo"],
                hi=r["hi"],
                verdict=r["verdict"],
            )
        )
    for _, r in ctx["transfer"].iterrows():
        what = f"{r['source']} → {r['target']}"
        rows.append(dict(kind="transfer cells", where=r["target"], what=what, **_v(r, "")))
        rows.append(dict(kind="transfer beyond the floor", where=r["target"], what=what, **_v(r, "beyond_")))
    return pd.DataFrame(rows, columns=KEY + ["mean", "lo", "hi", "verdict"])


def _v(r, prefix: str) -> Dict:
    mean = "beyond_mean" if prefix else "mean"
    return dict(mean=r[mean], lo=r[prefix + "lo"], hi=r[prefix + "hi"], verdict=r[prefix + "verdict"])


def outcome(a: str, b: str) -> str:
    if not isinstance(a, str) or not isinstance(b, str):
        return "in one draw only"
    return OUTCOMES[(a != "inconclusive", b != "inconclusive", a == b)]


def table(first: pd.DataFrame, second: pd.DataFrame) -> pd.DataFrame:
    """The two draws' verdict rows side by side (suffixes _a, _b) with each one's outcome."""
    t = first.merge(second, on=KEY, how="outer", suffixes=("_a", "_b"), sort=False)
    t["outcome"] = [outcome(a, b) for a, b in zip(t["verdict_a"], t["verdict_b"])]
    return t


def summary(t: pd.DataFrame) -> Dict[str, int]:
    """How many findings the first draw has, and what became of them; the second draw's new ones."""
    counts = t["outcome"].value_counts()
    out = {k: int(counts.get(k, 0)) for k in list(OUTCOMES.values()) + ["in one draw only"]}
    out["findings of the first draw"] = int((t["verdict_a"].fillna("inconclusive") != "inconclusive").sum())
    return out


def write(store_a: str, store_b: str, out_root: str = "reports") -> str:
    """Analyse both stores as their reports do and write reports/<B>/replication.md and .csv."""
    from . import _study_options, analyse, load_store
    from .markdown import replication as render

    draws = []
    for store in (store_a, store_b):
        trials, curves = load_store(store)
        opts = _study_options(store)
        draws.append((store, trials, analyse(trials, curves, opts["margin"], opts["max_spread"])))
    (_, ta, ca), (_, tb, cb) = draws
    if ca["margin"] != cb["margin"]:
        raise UserError(f"the two studies' [report] margins differ ({ca['margin']}, {cb['margin']}): not one question")
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
    text = render(t, summary(t), draws, ca["margin"])

    def write_md(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write_md)
    return path
