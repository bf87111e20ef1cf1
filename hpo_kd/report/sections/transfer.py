"""Transfer: the whole transfer matrix with its verdicts, then the runs of the methods that need no
transfer (`beside_transfer` on their class) against each setting's grid selection."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import fmt_ci, fmt_p, stat_columns, table
from ..md_transfer import XFIT_TEXT, beside_transfer, xfit_display

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """The whole transfer matrix, then the runs shown beside it."""
    md: List[str] = []
    m, comp, tm = ctx.margin, ctx.comparisons, ctx.transfer
    if not tm.empty:
        md += [
            "## Transfer",
            "",
            "The τ the grid selected on A (val, per seed) run on B with the same seed. Regret = test accuracy "
            "at B's own selected τ minus accuracy at A's τ (points), on B's test split, paired by seed (> 0: A's "
            "τ is worse). B's own τ was chosen on the val split of the same seed, among students trained on it, "
            "so the regret also counts what choosing among them gains; a regret above 0 is expected even when "
            "A's τ is as good as any τ selected on B (the cross-fitted comparison asks that). `regret ÷ range` "
            "divides each seed's regret by the range of B's grid (best minus worst "
            "temperature on test), averaged. The cells into one target B are one Holm family. Verdicts: "
            f"*transfers* (TOST against ±{m:g}, Holm p < 0.05); else *does not transfer* (regret > 0, t-test "
            "Holm p < 0.05) or *beats B's own selection* (regret < 0, Holm p < 0.05); else *inconclusive*. "
            "`same τ` counts "
            "seeds where A and B selected the same τ (regret 0). The note compares A's τ on B with B's no-KD "
            "student (uncorrected, not a verdict): *worse on B than B's no-KD student* when the 95 % interval of "
            "their difference lies below 0; *acts as no KD* when their TOST p < 0.05.",
            "",
            table(
                stat_columns(
                    tm.assign(ci=[fmt_ci(lo, hi) for lo, hi in zip(tm["lo"], tm["hi"])], ph=tm["p_holm"].map(fmt_p))
                ),
                [
                    ("source", "A (source)", ""),
                    ("target", "B (target)", ""),
                    ("taus", "τ from A per seed", ""),
                    ("own_taus", "B's own τ", ""),
                    ("same_tau", "same τ", "d"),
                    ("mean", "regret", "+.2f"),
                    ("ci", "95 % CI", ""),
                    ("ph", "Holm p", ""),
                    ("ci90", "90 % CI", ""),
                    ("pt", "TOST Holm p", ""),
                    ("post", "P(< −m / ±m / > +m)", ""),
                    ("regret_of_range", "regret ÷ range", ".2f"),
                    ("verdict", "verdict", ""),
                    ("note", "note", ""),
                ],
            ),
            "",
        ]
        md += crossfit_table(tm, m)
        md += beside_transfer(comp)
    return md


def crossfit_table(tm, margin: float) -> List[str]:
    """Every cell's cross-fitted comparison with B's selection: A's τ and B's reference both
    selected on seeds other than the one they are run on (the regret's own reference is not)."""
    cells = xfit_display(tm)
    return [
        "### Every cell, cross-fitted",
        "",
        XFIT_TEXT.format(m=margin),
        "",
        table(
            cells,
            [
                ("source", "A (source)", ""),
                ("target", "B (target)", ""),
                ("xfit_mean", "B's selection − A's τ, cross-fitted", "+.2f"),
                ("bci", "95 % CI (jackknife)", ""),
                ("bph", "Holm p", ""),
                ("bci90", "90 % CI", ""),
                ("bpt", "TOST Holm p", ""),
                ("bpost", "P(< −m / ±m / > +m)", ""),
                ("xfit_verdict", "verdict", ""),
            ],
        ),
        "",
    ]
