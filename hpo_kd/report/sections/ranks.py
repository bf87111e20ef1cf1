"""Ranks: the exploratory average ranks, Friedman's test and the Wilcoxon–Holm pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

import pandas as pd

from ..fmt import fmt_p, table

if TYPE_CHECKING:
    from ..context import ReportContext


def rank_pairs(avg: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """The pairs of methods whose Wilcoxon–Holm p < 0.05, the better-ranked first."""
    r = list(zip(avg["method"], avg["avg_rank"]))
    out = [
        f"{a} ranks above {b} ({ra:.2f} vs {rb:.2f}, Wilcoxon–Holm p {fmt_p(pairs.loc[a, b])})"
        for i, (a, ra) in enumerate(r)
        for b, rb in r[i + 1 :]
        if pairs.loc[a, b] < 0.05
    ]
    return (
        ("Pairs that differ (Wilcoxon–Holm p < 0.05): " + "; ".join(out) + ".")
        if out
        else "No pair differs at Wilcoxon–Holm p < 0.05."
    )


def render(ctx: ReportContext) -> List[str]:
    """The exploratory ranks, Friedman and the Wilcoxon–Holm pairs."""
    md: List[str] = []
    fr = ctx.friedman
    if not ctx.ranks.empty:
        md += [
            "## Ranks (exploratory: a family of its own, not among the findings)",
            "",
            "Ranks within each (setting, seed) block, ties sharing the average rank; blocks with every method "
            "only. Blocks of different settings are pooled, so a rank describes this study's mix of settings. "
            "Pairs are compared by two-sided Wilcoxon signed-rank tests over the blocks, Holm-corrected over "
            "all pairs (scikit-posthocs); these p-values are not in any family of the verdicts above.",
            "",
            table(ctx.ranks, [("method", "method", ""), ("avg_rank", "average rank", ".2f")]),
            "",
        ]
        if fr is not None:
            md += [
                f"Friedman over {fr['n']} blocks and {fr['k']} methods: χ² = {fr['chi2']:.2f} "
                f"(p {fmt_p(fr['p_chi2'])}), Iman–Davenport F = {fr['F']:.2f} (p {fmt_p(fr['p_F'])}). "
                + rank_pairs(ctx.ranks, fr["pairs"]),
                "",
            ]
    return md
