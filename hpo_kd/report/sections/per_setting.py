"""Per setting: each method's selection and accuracy, then every comparison with its verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ..fmt import POWER_COLUMNS, fmt_ci, fmt_p, stat_columns, table

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """Per setting: each method's selection and accuracy, then every comparison with its verdict."""
    md: List[str] = []
    comp = ctx.comparisons
    s_cols = [
        ("method", "method", ""),
        ("tau", "selected τ per seed (τ_t/τ_s)", ""),
        ("seeds", "seeds", "d"),
        ("test_mean", "test %", ".2f"),
        ("test_sd", "sd", ".2f"),
        ("test_ci95", "95 % CI ±", ".2f"),
        ("val_mean", "val %", ".2f"),
        ("trials_per_seed", "trials", ".0f"),
        ("epochs_per_seed", "epochs", ".0f"),
        ("avg_rank", "mean rank", ".2f"),
    ]
    c_cols = [
        ("label", "comparison", ""),
        ("mean", "Δ points", "+.2f"),
        ("ci", "95 % CI", ""),
        ("p", "p", ""),
        ("p_holm_s", "Holm p", ""),
        ("ci90", "90 % CI", ""),
        ("pt", "TOST Holm p", ""),
        ("post", "P(< −m / ±m / > +m)", ""),
        ("verdict", "verdict", ""),
        ("fam", "family size", "d"),
        *POWER_COLUMNS,
    ]
    summ = ctx.summary
    for s in sorted(summ["setting"].unique()):
        g = summ[summ["setting"] == s]
        c = comp[comp["setting"] == s].copy()
        c["label"] = c["method"] + " − " + c["reference"]
        c["ci"] = [fmt_ci(lo, hi) for lo, hi in zip(c["lo"], c["hi"])]
        c["p_holm_s"] = c["p_holm"].map(fmt_p)
        c["p"] = c["p"].map(fmt_p)
        c = stat_columns(c)
        md += [f"## {g['setting_label'].iloc[0]} — `{s}`", "", table(g, s_cols), "", table(c, c_cols), ""]
    return md
