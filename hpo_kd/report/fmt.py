"""How a report writes numbers: tables, p-values, intervals, posteriors, the seeds for power, the
statistics behind a verdict. Shared by the report's section modules."""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import pandas as pd

from .. import methods as methods_mod

# Verdict words (in any kind's wording) that come from TOST: their 90 % interval and TOST p decide them.
EQUIVALENT = {"equivalent", "transfers", "independent of the start", "as good as B's selection"}


def words(method: str) -> str:
    """How a sentence names a method (from its class)."""
    return methods_mod.info(method)["words"]


def table(df: pd.DataFrame, cols: List[Tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(h for _, h, _ in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    for _, r in df.iterrows():
        cells = []
        for c, _, fmt in cols:
            v = r[c]
            if isinstance(v, float) and math.isnan(v):
                cells.append("–")
            elif isinstance(v, float) and math.isinf(v):
                cells.append(f"> {1000}" if v > 0 else "–")
            else:
                cells.append(format(v, fmt) if fmt else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt_p(p: float) -> str:
    if p != p:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def fmt_ci(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "[–]"
    return f"[{round(lo, 2) + 0.0:+.2f}, {round(hi, 2) + 0.0:+.2f}]"  # + 0.0: never "-0.00"


def _pr(r) -> str:
    """The posterior probabilities, below / inside / above the margin."""
    if r["p_inside"] != r["p_inside"]:
        return "P(< −m / ±m / > +m) –"
    return f"P(< −m / ±m / > +m) {r['p_below']:.2f} / {r['p_inside']:.2f} / {r['p_above']:.2f}"


def _power(n: float) -> str:
    if n != n:
        return "–"
    return str(int(n)) if math.isfinite(n) else "> 1000"


def _power_eq(n: float, mean: float, margin: float) -> str:
    """Seeds for equivalence; none can be expected when the observed |mean| is at or beyond the margin."""
    if n != n:
        return "–"
    if not math.isfinite(n) and abs(mean) >= margin:
        return "none (|Δ| ≥ m)"
    return _power(n)


def need(r, margin: float) -> str:
    """What an inconclusive row would take: the seeds for 80 % power of each test, labelled."""
    rej = r["seeds_to_reject"]
    first = (
        f"about {int(rej)} seeds would give the t-test 80 % power to reject no difference"
        if math.isfinite(rej)
        else "more than 1000 seeds would be needed for 80 % power to reject no difference"
    )
    eq = r["seeds_for_equivalence"]
    if abs(r["mean"]) >= margin:
        second = "equivalence is not expected (|mean| ≥ the margin)"
    elif math.isfinite(eq):
        second = f"about {int(eq)} would give TOST 80 % power to establish equivalence within ±{margin:g}"
    else:
        second = f"more than 1000 would be needed to establish equivalence within ±{margin:g}"
    return f"{first}; {second} (at the observed mean and sd, α corrected for the family)"


def stat_text(r, unit: str = "points") -> str:
    """The numbers behind a verdict: mean, 95 % CI and Holm p of the t-test; for a verdict of
    equivalence, the 90 % interval and TOST's Holm p, which decided it; the posterior; seeds; the
    family's size."""
    out = (
        f"{r['mean']:+.2f}{' ' + unit if unit else ''}, 95 % CI {fmt_ci(r['lo'], r['hi'])}, Holm p {fmt_p(r['p_holm'])}"
    )
    if r["verdict"] in EQUIVALENT:
        out += f", 90 % CI {fmt_ci(r['lo90'], r['hi90'])}, TOST Holm p {fmt_p(r['p_tost_holm'])}"
    return out + f", {_pr(r)}, {r['n']} seeds, family of {r['family_size']}"


def stat_columns(df: pd.DataFrame) -> pd.DataFrame:
    """The formatted columns a comparison table shares: 90 % CI, TOST Holm p, posterior, power."""
    df = df.copy()
    df["ci90"] = [fmt_ci(lo, hi) for lo, hi in zip(df["lo90"], df["hi90"])]
    df["pt"] = df["p_tost_holm"].map(fmt_p)
    df["post"] = [
        "–" if a != a else f"{a:.2f} / {b:.2f} / {c:.2f}"
        for a, b, c in zip(df["p_below"], df["p_inside"], df["p_above"])
    ]
    df["need"] = df["seeds_to_reject"].map(_power)
    df["need_eq"] = [
        _power_eq(n, m, g) for n, m, g in zip(df["seeds_for_equivalence"], df["mean"], df.get("margin", df["mean"] * 0))
    ]
    df["fam"] = df["family_size"].astype(int)
    return df


POWER_COLUMNS = [
    ("need", "seeds for 80 % power: reject (t-test)", ""),
    ("need_eq", "seeds for 80 % power: equivalence (TOST)", ""),
]


def prefixed(r, prefix: str) -> Dict:
    """A row's statistics stored under `prefix` (a transfer row's cross-fitted columns), under the
    names `stat_text` reads."""
    keys = ("n", "mean", "lo", "hi", "lo90", "hi90", "p_holm", "p_tost_holm", "p_below", "p_inside", "p_above")
    out = {k: r[prefix + k] for k in keys}
    out.update(verdict=r[prefix + "verdict"], family_size=r[prefix + "family_size"])
    out["n"] = int(out["n"]) if out["n"] == out["n"] else 0
    out["family_size"] = int(out["family_size"]) if out["family_size"] == out["family_size"] else 0
    return out
