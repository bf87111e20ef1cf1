"""The report's transfer sections: the selection within a setting, the cells along each axis, the
transfer matrix, and the findings of the cross-fitted comparison with B's selection."""

from __future__ import annotations

from typing import List

import pandas as pd

from . import stability
from .fmt import fmt_ci, fmt_p, prefixed, stat_columns, stat_text, table
from .selection import GRID, base, method_order, temperature_method


def xfit_findings(tm: pd.DataFrame, note=lambda r: "") -> List[str]:
    """One line per transfer cell whose cross-fitted comparison with B's selection has a verdict
    (not inconclusive, and not the regret's own test again); `note(row)` adds to a line."""
    if tm.empty:
        return []
    dec = tm[~tm["xfit_verdict"].isin(["inconclusive", stability.SAME])]
    return [
        f"- Transfer {r['source']} → {r['target']} ({r['axis']}): A's τ {r['xfit_verdict']}, cross-fitted "
        f"(B's selection minus A's τ on B, {stat_text(prefixed(r, 'xfit_'))}){note(r)}."
        for _, r in dec.iterrows()
    ]


def selection_section(st: pd.DataFrame) -> List[str]:
    """How much the grid's val-selected τ varies over the seeds of one setting, and the floor."""
    if st.empty:
        return []
    return [
        "## Selection within a setting",
        "",
        "The τ the grid selected on val, per seed; how many distinct values; the most frequent one and the "
        "share of seeds that chose it; the sd of log2 τ_t over seeds. The **floor**: per seed, the mean "
        "regret (own selected τ minus another seed's selected τ, test accuracy on this seed, points) over "
        "the other seeds of the same setting, then its mean over seeds, with a 95 % interval from the "
        "jackknife over seeds (every seed's selection enters every other seed's value, so the per-seed "
        "values are not independent). It says how much the selection varies; it is not a bound: a τ "
        "selected elsewhere can do better on a seed than the τ the other seeds of its setting selected.",
        "",
        table(
            st.assign(ci=[fmt_ci(lo, hi) for lo, hi in zip(st["floor_lo"], st["floor_hi"])]),
            [
                ("setting_label", "setting", ""),
                ("taus", "selected τ per seed", ""),
                ("distinct", "distinct", "d"),
                ("mode", "most frequent", ""),
                ("mode_share", "its share", ".0%"),
                ("sd_log2_tau", "sd log2 τ", ".2f"),
                ("floor", "floor", "+.2f"),
                ("ci", "95 % CI (jackknife)", ""),
            ],
        ),
        "",
    ]


XFIT_TEXT = (
    "`B's selection − A's τ, cross-fitted`: on seed j of B, the mean over the other seeds i of (accuracy "
    "at the τ B selected on seed i minus accuracy at the τ A selected on seed i), then the mean over j "
    "(> 0: A's τ costs B more than B's own selection does). Both τ come from seeds other than j, so both "
    "are selected alike and neither shares seed j's val split or teacher; its interval and tests use the "
    "jackknife pseudo-values over seeds, which count that every seed's selections enter every other "
    "seed's value. Holm within the cells into B (family \"transfer vs B's selection (cross-fitted) | "
    "B\"): *costs more than B's selection* (t-test), *as good as B's selection* (TOST against "
    "±{m:g}), *costs less than B's selection*, or *inconclusive*. When A and B each select one τ on "
    "every seed it is the regret's test again and is not counted twice: it says so instead of a verdict."
)


def xfit_display(cells: pd.DataFrame) -> pd.DataFrame:
    """`cells` with the cross-fitted comparison's display columns: bci / bci90 (its intervals), bph /
    bpt (its Holm p-values) and bpost (its posterior probabilities)."""
    return cells.assign(
        bci=[fmt_ci(lo, hi) for lo, hi in zip(cells["xfit_lo"], cells["xfit_hi"])],
        bci90=[fmt_ci(lo, hi) for lo, hi in zip(cells["xfit_lo90"], cells["xfit_hi90"])],
        bph=cells["xfit_p_holm"].map(fmt_p),
        bpt=cells["xfit_p_tost_holm"].map(fmt_p),
        bpost=[
            "–" if a != a else f"{a:.2f} / {b:.2f} / {c:.2f}"
            for a, b, c in zip(cells["xfit_p_below"], cells["xfit_p_inside"], cells["xfit_p_above"])
        ],
    )


def axes_section(tm: pd.DataFrame, axes: List[str], margin: float) -> List[str]:
    """The transfer cells that move along one axis (one part of the setting differs)."""
    cells = tm[tm["axis"].isin(axes)] if not tm.empty else tm
    if cells.empty:
        return []
    cells = (
        xfit_display(cells)
        .assign(
            _o=cells["axis"].map({a: i for i, a in enumerate(axes)}),
            changed=[f"{n - s}/{n}" for n, s in zip(cells["n"], cells["same_tau"])],
            ci=[fmt_ci(lo, hi) for lo, hi in zip(cells["lo"], cells["hi"])],
        )
        .sort_values(["_o", "target", "source"])
    )
    return [
        "## Transfer along each axis",
        "",
        "The cells between two settings that differ in one thing only. `τ changed`: the seeds whose "
        "selection on A differs from B's own. `regret` and its verdict as in the transfer table below. "
        "`B's floor`: see *Selection within a setting*. " + XFIT_TEXT.format(m=margin),
        "",
        table(
            cells,
            [
                ("axis", "axis", ""),
                ("source", "A (source)", ""),
                ("target", "B (target)", ""),
                ("changed", "τ changed", ""),
                ("mean", "regret", "+.2f"),
                ("ci", "95 % CI", ""),
                ("verdict", "verdict", ""),
                ("floor", "B's floor", "+.2f"),
                ("xfit_mean", "B's selection − A's τ, cross-fitted", "+.2f"),
                ("bci", "95 % CI (jackknife)", ""),
                ("bph", "Holm p", ""),
                ("bpt", "TOST Holm p", ""),
                ("bpost", "P(< −m / ±m / > +m)", ""),
                ("xfit_verdict", "verdict vs B's selection", ""),
            ],
        ),
        "",
    ]


def beside_transfer(comp: pd.DataFrame) -> List[str]:
    """The runs of each method whose class asks for it (`beside_transfer`: a method that sets its
    temperature on each setting needs no transfer) against each setting's grid selection."""
    md: List[str] = []
    if comp.empty:
        return md
    bases = comp["method"].map(base)
    for b in method_order(bases):
        cls = temperature_method(b)
        if cls is None or not cls.beside_transfer:
            continue
        label = cls.label or b
        mk = comp[(bases == b) & (comp["reference"] == GRID)]
        if mk.empty:
            continue
        md += [
            f"{label}'s own runs need no transfer; shown apart, against each setting's grid selection:",
            "",
            table(
                stat_columns(
                    mk.assign(ci=[fmt_ci(lo, hi) for lo, hi in zip(mk["lo"], mk["hi"])], ph=mk["p_holm"].map(fmt_p))
                ),
                [
                    ("setting_label", "setting", ""),
                    ("method", "method", ""),
                    ("mean", f"{label} − grid", "+.2f"),
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
