"""Findings: every verdict that is not inconclusive, one sentence each (in a pooled report with
each draw's numbers), and how many are inconclusive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List

from .. import md_draws, stability, stats
from ..fmt import need, stat_text, words
from ..md_transfer import xfit_findings

if TYPE_CHECKING:
    from ..context import ReportContext


def finding(r: Dict, margin: float) -> str:
    """One sentence for one comparison, from its verdict."""
    a, b = words(r["method"]), words(r["reference"])
    stat = stat_text(r)
    v = r["verdict"]
    if v == "equivalent":
        return f"{r['setting_label']}: {a} is equivalent to {b} within ±{margin:g} points ({stat})."
    if v in ("better", "worse"):
        return f"{r['setting_label']}: {a} is {v} than {b} ({stat})."
    return f"{r['setting_label']}: {a} vs {b} is inconclusive ({stat}); {need(r, margin)}."


def start_finding(r) -> str:
    verb = "is independent of the start" if r["verdict"] == "independent of the start" else r["verdict"]
    return (
        f"{r['setting_label']}: {r['method']}, final {r['quantity']} {verb}: {r['start_low']:g} → "
        f"{r['final_low']:.2f}, {r['start_high']:g} → {r['final_high']:.2f} (Δ log2 " + stat_text(r, "") + ")."
    )


def render(ctx: ReportContext) -> List[str]:
    """Every verdict that is not inconclusive, and how many are; in a pooled report, with each
    draw's numbers."""
    md: List[str] = []
    m = ctx.margin
    comp, tm, st = ctx.comparisons, ctx.transfer, ctx.starts
    decided = comp[comp["verdict"] != "inconclusive"]
    md += ["## Findings (every verdict that is not inconclusive)", ""]
    n_decided = sum(int((df["verdict"] != "inconclusive").sum()) for df in (comp, tm, st) if not df.empty)
    if not tm.empty:
        n_decided += int((~tm["xfit_verdict"].isin(["inconclusive", stability.SAME])).sum())
    if n_decided == 0:
        md += ["None: every comparison is inconclusive at this number of seeds.", ""]
    elif not decided.empty:
        for _, r in decided.iterrows():
            key = (r["family"].split(" | ")[0], r["setting_label"], f"{r['method']} − {r['reference']}")
            md.append(f"- {finding(r, m)[:-1]}{md_draws.note_for(ctx, key)}.")
        md.append("")
    if not tm.empty:
        dec = tm[tm["verdict"] != "inconclusive"]
        for _, r in dec.iterrows():
            what = f"{r['source']} → {r['target']}"
            md.append(
                f"- Transfer {what}, against B's same-seed selection (which favours B: see the cross-fitted "
                f"lines): {r['verdict']} (regret "
                + stat_text(r)
                + ")"
                + (f"; {r['note']}" if r["note"] else "")
                + md_draws.note_for(ctx, (stats.KINDS["transfer"], r["target"], what))
                + "."
            )
        if not dec.empty:
            md.append("")
        kind = stats.KINDS["xfit"]
        lines = xfit_findings(
            tm, lambda r: md_draws.note_for(ctx, (kind, r["target"], f"{r['source']} → {r['target']}"))
        )
        md += lines + ([""] if lines else [])
    if not st.empty:
        dec = st[st["verdict"] != "inconclusive"]
        md += [f"- {start_finding(r)}" for _, r in dec.iterrows()] + ([""] if not dec.empty else [])
    n_inc = sum(int((df["verdict"] == "inconclusive").sum()) for df in (comp, tm, st) if not df.empty)
    n_inc += int((tm["xfit_verdict"] == "inconclusive").sum()) if not tm.empty else 0
    md += [
        f"{n_inc} comparison(s) are inconclusive; they are listed per setting below. Ranks are exploratory "
        "and not among the findings (their own section).",
        "",
    ]
    return md
