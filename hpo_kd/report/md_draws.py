"""The report's text about draws of seeds: the replication table of two draws, and in a pooled
report the draws, each finding's consistency between them, and the trials shared with other
studies."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Dict, List, Tuple

import pandas as pd

from .. import provenance
from ..provenance import describe
from .fmt import fmt_ci, fmt_p, table
from .replication import CONSISTENT

if TYPE_CHECKING:
    from .context import ReportContext


def _seeds(seeds: List[int]) -> str:
    """0–7 for a run of consecutive seeds, else a list."""
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def header(ctx: ReportContext) -> List[str]:
    """The draws a pooled report holds, each with its runs."""
    out = []
    for k, d in enumerate(ctx.draws, 1):
        runs = "; ".join(describe(e) for e in provenance.load(d["store"]) or []) or "no provenance recorded"
        out.append(
            f"- Draw {k}: `{d['study']}` ({os.path.relpath(d['store'])}), seeds {_seeds(d['seeds'])} "
            f"({len(d['seeds'])}); {runs}"
        )
    return out


def shared(ctx: ReportContext) -> List[str]:
    """One line per other store given with --overlap: how many of this report's trials it holds."""
    out = []
    for o in ctx.overlap or []:
        if not o["shared"]:
            out.append(f"- Shares no trial with `{o['study']}` ({os.path.relpath(o['store'])}).")
            continue
        parts = ", ".join(f"{label} {method} {n}" for label, method, n in o["by"])
        out.append(
            f"- **Shares {o['shared']} of its {o['total']} finished trials** (the same trial ids) with "
            f"`{o['study']}` ({os.path.relpath(o['store'])}): {parts}. A verdict resting on these trials "
            "is the same evidence in both studies, not a second confirmation."
        )
    return out


def note_for(ctx: ReportContext, key: Tuple[str, str, str]) -> str:
    """For a finding of a pooled report: each draw's mean and interval and the heterogeneity p."""
    c = ctx.consistency
    if c is None or c.empty:
        return ""
    hit = c[(c["kind"] == key[0]) & (c["where"] == key[1]) & (c["what"] == key[2])]
    if hit.empty:
        return ""
    r = hit.iloc[0]
    parts = [_draw_stat(r, k) for k in range(1, len(ctx.draws) + 1)]
    return f"; by draw {'; '.join(parts)}, heterogeneity p {fmt_p(r['het_p'])}"


def _draw_stat(r, k: int) -> str:
    m = r[f"d{k}_mean"]
    if m != m:
        return "–"
    return f"{m:+.2f} {fmt_ci(r[f'd{k}_lo'], r[f'd{k}_hi'])}"


def consistency_section(ctx: ReportContext) -> List[str]:
    """Every pooled finding, and every row whose draws disagree, with each draw's own numbers."""
    c = ctx.consistency
    if c is None or c.empty:
        return []
    ks = range(1, len(ctx.draws) + 1)
    shown = c[(c["verdict"] != "inconclusive") | (c["het_p"] < 0.05)].copy()
    if shown.empty:
        return []
    cells = zip(shown["verdict"], shown["mean"], shown["lo"], shown["hi"])
    shown["pooled"] = [f"{v}: {m:+.2f} {fmt_ci(lo, hi)}" for v, m, lo, hi in cells]
    for k in ks:
        shown[f"draw{k}"] = [
            "–" if not isinstance(r[f"d{k}_verdict"], str) else f"{r[f'd{k}_verdict']}: {_draw_stat(r, k)}"
            for _, r in shown.iterrows()
        ]
    shown["het"] = shown["het_p"].map(fmt_p)
    shown["agree"] = ["the draws differ" if p < 0.05 else "" for p in shown["het_p"]]
    cols = [("kind", "family", ""), ("where", "setting", ""), ("what", "comparison", ""), ("pooled", "all seeds", "")]
    cols += [(f"draw{k}", f"draw {k} alone", "") for k in ks]
    cols += [("het", "heterogeneity p", ""), ("agree", "", "")]
    n_diff = int((c["het_p"] < 0.05).sum())
    return [
        "## Consistency between draws",
        "",
        "Every finding on all seeds, and every comparison whose draws disagree, beside each draw's own mean "
        "difference, 95 % interval and verdict (each draw Holm-corrected within its family, as its own report "
        "would). Heterogeneity p: Welch's test that the draws have the same mean difference (the draw × "
        "effect interaction; uncorrected); below 0.05 the draws differ and the pooled mean averages two "
        "different things. A draw's *inconclusive* is not evidence against a finding: one draw has fewer "
        f"seeds and so less power. Rows whose draws differ: {n_diff}.",
        "",
        table(shown, cols),
        "",
    ]


def replication(t: pd.DataFrame, counts: Dict[str, int], draws, margin: float) -> str:
    """reports/<B>/replication.md: every finding of either draw with what the other draw says."""
    md = [f"# Replication of `{draws[0][1]['study'].iloc[0]}` by `{draws[1][1]['study'].iloc[0]}`", ""]
    md += [f"**Produced by** `hpo-kd replication {os.path.relpath(draws[0][0])} {os.path.relpath(draws[1][0])}`.", ""]
    md.append("- Report: " + provenance.code_version())
    for store, trials, _ in draws:
        seeds = ", ".join(str(int(s)) for s in sorted(trials.loc[trials["status"] == "ok", "seed"].unique()))
        runs = "; ".join(describe(e) for e in provenance.load(store) or []) or "no provenance recorded"
        md.append(f"- `{trials['study'].iloc[0]}`: seeds {seeds}; {runs}")
    a, b = (os.path.relpath(d[0]) for d in draws)
    md += [
        "",
        "A check of stability, not the study's verdicts: those come from all seeds pooled "
        f"(`hpo-kd report {a} {b}`). The same study on two disjoint draws of seeds; every verdict computed on "
        f"each draw alone, as its report computes it (Holm within its family, margin ±{margin:g} points). A "
        "finding (a verdict that is not inconclusive) *replicates* when the other draw gives the same verdict; "
        "it is *inconclusive on the second draw* when that draw decides nothing, which one draw of a few seeds "
        "often does for a real effect (it has little power), so that is not evidence against the finding; "
        f"two different findings that one true difference fits (equivalent in one draw, better or worse in the "
        f"other, their 90 % and 95 % intervals overlapping, e.g. both consistent with 0 < μ < {margin:g}) are "
        f"*{CONSISTENT}*; *overturned* means two findings that contradict each other. Heterogeneity p: Welch's "
        "test that the two draws have the same mean difference (uncorrected).",
        "",
        f"The first draw's findings: {counts['findings of the first draw']}; replicate: {counts['replicates']}; "
        f"inconclusive on the second draw: {counts['inconclusive on the second draw']}; "
        f"{CONSISTENT}: {counts[CONSISTENT]}; overturned: {counts['overturned']}. "
        f"Findings of the second draw only: {counts['new in the second draw']}. "
        f"Inconclusive in both: {counts['inconclusive twice']}.",
        "",
    ]
    shown = t[t["outcome"] != "inconclusive twice"].copy()
    shown["first"] = [_draw(r, "_a") for _, r in shown.iterrows()]
    shown["second"] = [_draw(r, "_b") for _, r in shown.iterrows()]
    shown["het"] = shown["het_p"].map(fmt_p)
    order = {k: i for i, k in enumerate(["replicates", CONSISTENT, "overturned", "inconclusive on the second draw"])}
    shown = shown.sort_values(
        ["outcome", "kind", "where"], key=lambda c: c.map(order).fillna(9) if c.name == "outcome" else c
    )
    cols = [("outcome", "outcome", ""), ("kind", "family", ""), ("where", "setting", ""), ("what", "comparison", "")]
    cols += [("first", "first draw", ""), ("second", "second draw", ""), ("het", "heterogeneity p", "")]
    md.append(table(shown, cols))
    md.append("")
    return "\n".join(md)


def _draw(r, suffix: str) -> str:
    v = r["verdict" + suffix]
    if not isinstance(v, str):
        return "–"
    return f"{v}: {r['mean' + suffix]:+.2f} {fmt_ci(r['lo' + suffix], r['hi' + suffix])}"
