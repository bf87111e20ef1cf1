"""Learned temperatures: does where a learned temperature ends depend on where it started?"""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import fmt_ci, fmt_p, stat_columns, table

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """Start dependence of the learned temperatures."""
    md: List[str] = []
    st = ctx.starts
    if not st.empty:
        md += [
            "## Learned temperatures: does the end depend on the start?",
            "",
            "Runs of one learned method started from its lowest and its highest initial temperature, paired by "
            "seed: the difference of the final temperatures in log2 units (1 = a factor of 2), judged against "
            f"a margin of ±{st['margin'].iloc[0]:g} (a factor of {2 ** st['margin'].iloc[0]:.2f}), Holm-corrected "
            "within the setting's start-dependence rows (a family of their own), by the same rule.",
            "",
            table(
                stat_columns(st).assign(
                    ci=[fmt_ci(lo, hi) for lo, hi in zip(st["lo"], st["hi"])],
                    ph=st["p_holm"].map(fmt_p),
                    fl=[f"{a:.2f} → {b:.2f}" for a, b in zip(st["final_low"], st["final_high"])],
                    starts=[f"{a:g} vs {b:g}" for a, b in zip(st["start_low"], st["start_high"])],
                ),
                [
                    ("setting_label", "setting", ""),
                    ("method", "method (learns)", ""),
                    ("quantity", "τ", ""),
                    ("starts", "starts", ""),
                    ("fl", "final τ (geometric mean): low start → high start", ""),
                    ("mean", "Δ log2 τ", "+.2f"),
                    ("ci", "95 % CI", ""),
                    ("ph", "Holm p", ""),
                    ("pt", "TOST Holm p", ""),
                    ("post", "P(< −m / ±m / > +m)", ""),
                    ("verdict", "verdict", ""),
                ],
            ),
            "",
        ]
    return md
