"""The report's transfer sections: the selection within a setting, the cells along each axis, the
transfer matrix, and the findings of the cross-fitted comparison with B's selection."""

from __future__ import annotations

from typing import Dict, List

import pandas as pd

from . import stability
from .fmt import _ci, _extra, _p, _stat, prefixed, table
from .selection import GRID, base, method_order, temperature_method


def xfit_findings(tm: pd.DataFrame, note=lambda r: "") -> List[str]:
    """One line per transfer cell whose cross-fitted comparison with B's selection has a verdict
    (not inconclusive, and not the regret's own test again); `note(row)` adds to a line."""
    if tm.empty:
        return []
    dec = tm[~tm["xfit_verdict"].isin(["inconclusive", stability.SAME])]
    return [
        f"- Transfer {r['source']} → {r['target']} ({r['axis']}): A's τ {r['xfit_verdict']}, cross-fitted "
        f"(B's selection minus A's τ on B, {_stat(prefixed(r, 'xfit_'))}){note(r)}."
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
            st.assign(ci=[_ci(lo, hi) for lo, hi in zip(st["floor_lo"], st["floor_hi"])]),
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


def axes_section(tm: pd.DataFrame, axes: List[str], margin: float) -> List[str]:
    """The transfer cells that move along one axis (one part of the setting differs)."""
    cells = tm[tm["axis"].isin(axes)] if not tm.empty else tm
    if cells.empty:
        return []
    cells = cells.assign(
        _o=cells["axis"].map({a: i for i, a in enumerate(axes)}),
        changed=[f"{n - s}/{n}" for n, s in zip(cells["n"], cells["same_tau"])],
        ci=[_ci(lo, hi) for lo, hi in zip(cells["lo"], cells["hi"])],
        bci=[_ci(lo, hi) for lo, hi in zip(cells["xfit_lo"], cells["xfit_hi"])],
        bph=cells["xfit_p_holm"].map(_p),
        bpt=cells["xfit_p_tost_holm"].map(_p),
        bpost=[
            "–" if a != a else f"{a:.2f} / {b:.2f} / {c:.2f}"
            for a, b, c in zip(cells["xfit_p_below"], cells["xfit_p_inside"], cells["xfit_p_above"])
        ],
    ).sort_values(["_o", "target", "source"])
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


def transfer_section(ctx: Dict) -> List[str]:
    """The selection within a setting, the transfer cells per axis and the whole transfer matrix."""
    md: List[str] = []
    m, comp, tm = ctx["margin"], ctx["comparisons"], ctx["transfer"]
    md += selection_section(ctx.get("stability", pd.DataFrame()))
    md += axes_section(tm, stability.per_axis(tm), m)
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
                _extra(tm.assign(ci=[_ci(lo, hi) for lo, hi in zip(tm["lo"], tm["hi"])], ph=tm["p_holm"].map(_p))),
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
        md += beside_transfer(comp)
    return md


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
                _extra(mk.assign(ci=[_ci(lo, hi) for lo, hi in zip(mk["lo"], mk["hi"])], ph=mk["p_holm"].map(_p))),
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
