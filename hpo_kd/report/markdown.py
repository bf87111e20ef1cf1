"""The report as Markdown: every sentence is built from a computed table or verdict."""

from __future__ import annotations

import math
import os
from typing import Dict, List, Tuple

import pandas as pd

from .. import methods as methods_mod
from .. import provenance
from ..provenance import describe
from . import stability


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


def _p(p: float) -> str:
    if p != p:
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ci(lo: float, hi: float) -> str:
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


def _stat(r, unit: str = "points") -> str:
    """The numbers behind a verdict: mean, 95 % CI and Holm p of the t-test; for an equivalent
    verdict, the 90 % interval and TOST's Holm p; the posterior; seeds; the family's size."""
    out = f"{r['mean']:+.2f}{' ' + unit if unit else ''}, 95 % CI {_ci(r['lo'], r['hi'])}, Holm p {_p(r['p_holm'])}"
    if r["verdict"] in ("equivalent", "transfers", "independent of the start"):
        out += f", 90 % CI {_ci(r['lo90'], r['hi90'])}, TOST Holm p {_p(r['p_tost_holm'])}"
    return out + f", {_pr(r)}, {r['n']} seeds, family of {r['family_size']}"


def finding(r: Dict, margin: float) -> str:
    """One sentence for one comparison, from its verdict."""
    a, b = words(r["method"]), words(r["reference"])
    stat = _stat(r)
    v = r["verdict"]
    if v == "equivalent":
        return f"{r['setting_label']}: {a} is equivalent to {b} within ±{margin:g} points ({stat})."
    if v in ("better", "worse"):
        return f"{r['setting_label']}: {a} is {v} than {b} ({stat})."
    need = r["seeds_for_power"]
    more = (
        f"about {int(need)} seeds would give 80 % power at the observed effect (α corrected for the family)"
        if math.isfinite(need)
        else "more seeds would not give 80 % power at the observed effect"
    )
    return f"{r['setting_label']}: {a} vs {b} is inconclusive ({stat}); {more}."


def _rank_pairs(avg: pd.DataFrame, pairs: pd.DataFrame) -> str:
    """The pairs of methods whose Wilcoxon–Holm p < 0.05, the better-ranked first."""
    r = list(zip(avg["method"], avg["avg_rank"]))
    out = [
        f"{a} ranks above {b} ({ra:.2f} vs {rb:.2f}, Wilcoxon–Holm p {_p(pairs.loc[a, b])})"
        for i, (a, ra) in enumerate(r)
        for b, rb in r[i + 1 :]
        if pairs.loc[a, b] < 0.05
    ]
    return (
        ("Pairs that differ (Wilcoxon–Holm p < 0.05): " + "; ".join(out) + ".")
        if out
        else "No pair differs at Wilcoxon–Holm p < 0.05."
    )


def _start_finding(r) -> str:
    verb = "is independent of the start" if r["verdict"] == "independent of the start" else r["verdict"]
    return (
        f"{r['setting_label']}: {r['method']}, final {r['quantity']} {verb}: {r['start_low']:g} → "
        f"{r['final_low']:.2f}, {r['start_high']:g} → {r['final_high']:.2f} (Δ log2 " + _stat(r, "") + ")."
    )


def _extra(df: pd.DataFrame) -> pd.DataFrame:
    """The formatted columns a comparison table shares: 90 % CI, TOST Holm p, posterior, power."""
    df = df.copy()
    df["ci90"] = [_ci(lo, hi) for lo, hi in zip(df["lo90"], df["hi90"])]
    df["pt"] = df["p_tost_holm"].map(_p)
    df["post"] = [
        "–" if a != a else f"{a:.2f} / {b:.2f} / {c:.2f}"
        for a, b, c in zip(df["p_below"], df["p_inside"], df["p_above"])
    ]
    df["need"] = df["seeds_for_power"].map(_power)
    df["fam"] = df["family_size"].astype(int)
    return df


def _beyond(r) -> Dict:
    """A transfer row's regret-beyond-the-floor statistics, under the names `_stat` reads."""
    keys = ("mean", "lo", "hi", "p_holm", "p_tost_holm", "p_below", "p_inside", "p_above")
    out = {k: r[f"beyond_{k}"] for k in keys}
    out.update(verdict=r["beyond_verdict"], lo90=math.nan, hi90=math.nan, n=r["n"], family_size=r["family_size"])
    return out


def floor_findings(tm: pd.DataFrame) -> List[str]:
    """One line per transfer cell whose regret beyond B's floor has a verdict."""
    if tm.empty:
        return []
    dec = tm[tm["beyond_verdict"] != "inconclusive"]
    return [
        f"- Transfer {r['source']} → {r['target']} ({r['axis']}): regret beyond B's floor "
        f"{r['beyond_verdict']} ({_stat(_beyond(r))})."
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
        "the other seeds of the same setting, then its mean over seeds and 95 % t interval. A transfer "
        "from another setting is measured against it: a cell's regret beyond the floor is its regret minus "
        "the target's floor, paired by seed.",
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
                ("ci", "95 % CI", ""),
            ],
        ),
        "",
    ]


def axes_section(tm: pd.DataFrame, axes: List[str], margin: float) -> List[str]:
    """The transfer cells that move along one axis (one part of the setting differs)."""
    cells = tm[tm["axis"].isin(axes)] if not tm.empty else tm
    if cells.empty:
        return []
    cells = cells.assign(
        _o=cells["axis"].map({a: i for i, a in enumerate(axes)}),
        changed=[f"{n - s}/{n}" for n, s in zip(cells["n"], cells["same_tau"])],
        ci=[_ci(lo, hi) for lo, hi in zip(cells["lo"], cells["hi"])],
        bci=[_ci(lo, hi) for lo, hi in zip(cells["beyond_lo"], cells["beyond_hi"])],
        bph=cells["beyond_p_holm"].map(_p),
        bpost=[
            "–" if a != a else f"{a:.2f} / {b:.2f} / {c:.2f}"
            for a, b, c in zip(cells["beyond_p_below"], cells["beyond_p_inside"], cells["beyond_p_above"])
        ],
    ).sort_values(["_o", "target", "source"])
    return [
        "## Transfer along each axis",
        "",
        "The cells between two settings that differ in one thing only. `τ changed`: the seeds whose "
        "selection on A differs from B's own. `regret` and its verdict as in the transfer table below. "
        "`beyond the floor`: the regret minus B's floor (the regret of another seed's selection on B, "
        "see *Selection within a setting*), paired by seed, with a two-sided paired t-test and TOST against "
        f'±{margin:g} points, Holm-corrected within the cells into B (family "transfer beyond the floor | '
        'B"): *costs more than the floor* (t-test), *at the floor* (TOST), *costs less than the floor*, or '
        "*inconclusive*.",
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
                ("beyond_mean", "beyond the floor", "+.2f"),
                ("bci", "95 % CI", ""),
                ("bph", "Holm p", ""),
                ("bpost", "P(< −m / ±m / > +m)", ""),
                ("beyond_verdict", "verdict vs the floor", ""),
            ],
        ),
        "",
    ]


def _header(ctx: Dict) -> List[str]:
    """The title, what produced the report, the study's [train] options and how to read it."""
    m = ctx["margin"]
    md = [f"# Study `{ctx['study']}`", ""]
    md += ["**Produced by** `" + ctx["command"] + "`.", ""]
    md.append("- Report: " + ctx["report_code"])
    for i, e in enumerate(ctx["provenance"] or [], 1):
        md.append(f"- Run {i} of the study: " + describe(e))
    if not ctx["provenance"]:
        md.append("- Runs: no provenance recorded in the store")
    md.append(f"- {ctx['n_trials']} stored trials ({ctx['statuses']}); seeds vary: {ctx['seed_varies']}.")
    if ctx.get("train"):  # the study's [train] table: what every trial was trained (and evaluated) with
        md.append(
            "- Trial options (`[train]`): "
            + ", ".join(f"{k} = {v!r}" for k, v in sorted(ctx["train"].items()))
            + "; the rest are the defaults (`hpo-kd distill --help`)."
        )
    md.append("")
    if ctx.get("smoke"):
        md += ["> **Smoke test, not evidence.** " + ctx["smoke"], ""]
    md += [
        "How to read it. Selection on **val** accuracy (final epoch); every accuracy is the **test** accuracy"
        " of the selected trial, in %. A comparison is the paired difference over seeds (method minus "
        "reference, points), its 95 % t interval and a two-sided paired t-test, and an equivalence test "
        f"(TOST: two one-sided paired t-tests against ±{m:g} points, the margin, at α = 0.05 each; its 90 % "
        "interval). Both p-values are Holm-corrected within the comparison's **family**, declared in advance:"
        " one family per kind of comparison (methods vs grid, methods vs no-KD, transfer cells, transfer "
        "beyond the floor, start dependence) and setting (for a transfer cell: its target), whatever else "
        "this report holds. Verdict: *equivalent* when TOST's Holm p < 0.05 (also when the t-test rejects "
        "too: a real difference smaller than the margin); else *better* / *worse* when the t-test's Holm p < "
        "0.05 (the sign of the mean says which); else *inconclusive* (always with fewer than 3 seeds), with "
        "the seeds a paired t-test needs for 80 % power at the observed effect, α corrected for the family "
        "(0.05 / its size). Beside each verdict, P(< −m / ±m / > +m): the posterior probabilities that the "
        "mean difference is below −margin, inside ±margin, above +margin (Bayesian correlated t-test with ρ ="
        " 0, flat prior; no correction). Cost is in epochs per seed (deterministic); trial-seconds are in "
        "`timings.md`, apart, because they depend on the machine.",
        "",
    ]
    return md


def _findings(ctx: Dict) -> List[str]:
    """Every verdict that is not inconclusive, and how many are."""
    md: List[str] = []
    m = ctx["margin"]
    comp = ctx["comparisons"]
    decided = comp[comp["verdict"] != "inconclusive"]
    md += ["## Findings (every verdict that is not inconclusive)", ""]
    n_decided = sum(
        int((df["verdict"] != "inconclusive").sum()) for df in (comp, ctx["transfer"], ctx["starts"]) if not df.empty
    )
    if not ctx["transfer"].empty:
        n_decided += int((ctx["transfer"]["beyond_verdict"] != "inconclusive").sum())
    if n_decided == 0:
        md += ["None: every comparison is inconclusive at this number of seeds.", ""]
    elif not decided.empty:
        md += [f"- {finding(r, m)}" for _, r in decided.iterrows()] + [""]
    tm = ctx["transfer"]
    if not tm.empty:
        dec = tm[tm["verdict"] != "inconclusive"]
        for _, r in dec.iterrows():
            md.append(
                f"- Transfer {r['source']} → {r['target']}: {r['verdict']} (regret "
                + _stat(r)
                + ")"
                + (f"; {r['note']}" if r["note"] else "")
                + "."
            )
        if not dec.empty:
            md.append("")
        floor_lines = floor_findings(tm)
        md += floor_lines + ([""] if floor_lines else [])
    st = ctx["starts"]
    if not st.empty:
        dec = st[st["verdict"] != "inconclusive"]
        md += [f"- {_start_finding(r)}" for _, r in dec.iterrows()] + ([""] if not dec.empty else [])
    n_inc = sum(int((df["verdict"] == "inconclusive").sum()) for df in (comp, tm, st) if not df.empty)
    n_inc += int((tm["beyond_verdict"] == "inconclusive").sum()) if not tm.empty else 0
    md += [
        f"{n_inc} comparison(s) are inconclusive; they are listed per setting below. Ranks are exploratory "
        "and not among the findings (their own section).",
        "",
    ]
    return md


def _teachers_and_spread(ctx: Dict) -> List[str]:
    """The teachers' accuracy (with a warning for a teacher below its no-KD student) and the seed spread."""
    md: List[str] = []
    t = ctx["teachers"]
    if not t.empty:
        md += [
            "## Teachers",
            "",
            table(
                t,
                [
                    ("setting_label", "setting", ""),
                    ("teacher", "teacher", ""),
                    ("teachers", "teachers", "d"),
                    ("val", "val % (mean)", ".2f"),
                    ("test", "test % (mean)", ".2f"),
                    ("test_min", "min", ".2f"),
                    ("test_max", "max", ".2f"),
                ],
            ),
            "",
        ]
        for w in ctx["weak_teachers"]:
            md.append(f"> **Warning:** {w}")
        if ctx["weak_teachers"]:
            md.append("")
    sp = ctx["spread"]
    if not sp.empty:
        md += [
            "## Seed spread",
            "",
            f"Standard deviation over seeds of the test accuracy (points); a setting above {ctx['max_spread']:g} "
            "is flagged: its comparisons need more seeds or longer training.",
            "",
            table(
                sp,
                [
                    ("setting_label", "setting", ""),
                    ("nokd_sd", "no-KD sd", ".2f"),
                    ("grid_sd", "grid's selection sd", ".2f"),
                    ("flag", "flag", ""),
                ],
            ),
            "",
        ]
    return md


def _per_setting(ctx: Dict) -> List[str]:
    """Per setting: each method's selection and accuracy, then every comparison with its verdict."""
    md: List[str] = []
    comp = ctx["comparisons"]
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
        ("need", "seeds for 80 % power (at the observed effect, α corrected for the family)", ""),
    ]
    summ = ctx["summary"]
    for s in sorted(summ["setting"].unique()):
        g = summ[summ["setting"] == s]
        c = comp[comp["setting"] == s].copy()
        c["label"] = c["method"] + " − " + c["reference"]
        c["ci"] = [_ci(lo, hi) for lo, hi in zip(c["lo"], c["hi"])]
        c["p_holm_s"] = c["p_holm"].map(_p)
        c["p"] = c["p"].map(_p)
        c = _extra(c)
        md += [f"## {g['setting_label'].iloc[0]} — `{s}`", "", table(g, s_cols), "", table(c, c_cols), ""]
    return md


def _published(ctx: Dict) -> List[str]:
    """The published figures beside this study's, each measured the papers' way too."""
    md: List[str] = []
    pub = ctx.get("published")
    if pub is not None and not pub.empty:
        md += [
            "## Beside the published figures",
            "",
            "What papers report for the same pair (one number each, from their recipe and machines), beside "
            "this study's test accuracy, mean and sd over seeds. For orientation only: no verdict is computed "
            "from a published figure, and a study that trains for fewer epochs than the papers' 240 is not "
            "comparable to them.",
            "",
            "*Measured* is this study's figure: the test accuracy after the final epoch, of the configuration "
            "a method selected on val (KD: the grid's τ = 4 runs; the teacher as trained). "
            "*Best test over epochs* is the measure the papers report (CRD, CTKD, DKD, LS-KD, "
            "mdistiller's tables): for the same runs, the highest test accuracy over each run's epochs, mean "
            "over runs. It selects the epoch on the **test** set, so it is optimistic and not an estimate of "
            "accuracy on unseen data; it is shown only so that each published figure stands beside its like. "
            "A run that evaluated only its last epoch (a teacher) counts that epoch.",
            "",
            table(
                pub,
                [
                    ("setting_label", "setting", ""),
                    ("what", "what", ""),
                    ("n", "runs", "d"),
                    ("measured", "measured %", ".2f"),
                    ("sd", "sd", ".2f"),
                    ("best_test", "best test over epochs % (test-set selection, the papers' measure)", ".2f"),
                    ("published", "published %", ".2f"),
                    ("source", "source", ""),
                ],
            ),
            "",
        ]
        md += [f"- `{k}`: {v}" for k, v in sorted(ctx["sources"].items()) if k in set(pub["source"])] + [""]
    return md


def _ranks(ctx: Dict) -> List[str]:
    """The exploratory ranks, Friedman and the Wilcoxon–Holm pairs."""
    md: List[str] = []
    fr = ctx["friedman"]
    if not ctx["ranks"].empty:
        md += [
            "## Ranks (exploratory: a family of its own, not among the findings)",
            "",
            "Ranks within each (setting, seed) block, ties sharing the average rank; blocks with every method "
            "only. Blocks of different settings are pooled, so a rank describes this study's mix of settings. "
            "Pairs are compared by two-sided Wilcoxon signed-rank tests over the blocks, Holm-corrected over "
            "all pairs (scikit-posthocs); these p-values are not in any family of the verdicts above.",
            "",
            table(ctx["ranks"], [("method", "method", ""), ("avg_rank", "average rank", ".2f")]),
            "",
        ]
        if fr is not None:
            md += [
                f"Friedman over {fr['n']} blocks and {fr['k']} methods: χ² = {fr['chi2']:.2f} "
                f"(p {_p(fr['p_chi2'])}), Iman–Davenport F = {fr['F']:.2f} (p {_p(fr['p_F'])}). "
                + _rank_pairs(ctx["ranks"], fr["pairs"]),
                "",
            ]
    return md


def _transfer(ctx: Dict) -> List[str]:
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
            "τ is worse). `regret ÷ range` divides each seed's regret by the range of B's grid (best minus worst "
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
        mk = comp[(comp["method"].str.split(":").str[0] == "mkd") & (comp["reference"] == "grid")]
        if not mk.empty:
            md += [
                "MKD's own runs need no transfer; shown apart, against each setting's grid selection:",
                "",
                table(
                    _extra(mk.assign(ci=[_ci(lo, hi) for lo, hi in zip(mk["lo"], mk["hi"])], ph=mk["p_holm"].map(_p))),
                    [
                        ("setting_label", "setting", ""),
                        ("method", "method", ""),
                        ("mean", "MKD − grid", "+.2f"),
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


def _starts(ctx: Dict) -> List[str]:
    """Start dependence of the learned temperatures."""
    md: List[str] = []
    st = ctx["starts"]
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
                _extra(st).assign(
                    ci=[_ci(lo, hi) for lo, hi in zip(st["lo"], st["hi"])],
                    ph=st["p_holm"].map(_p),
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


def _plots(ctx: Dict) -> List[str]:
    """The plots, each with its caption."""
    md: List[str] = []
    md += ["## Plots", ""]
    captions = {
        "accuracy_cost.png": "test accuracy vs cost (epochs per seed), mean ± 95 % CI, Pareto front",
        "regret_budget.png": "normalised regret vs budget, mean and 95 % CI band over seeds",
        "forest.png": "paired differences per setting with the margin band",
        "posterior.png": "posterior probabilities below / inside / above the margin, per comparison",
        "cd_diagram.png": "average ranks, bars joining methods not different at Wilcoxon–Holm p < 0.05 (exploratory)",
        "temperature.png": "test accuracy vs temperature; triangles: the τ selected on val",
        "trajectories.png": "learned temperature trajectories",
        "optuna.png": "Optuna's optimisation history",
        "transfer.png": "transfer regret heatmap; on the diagonal, each setting's floor",
    }
    for name in ctx["plots"]:
        md += [f"![{captions.get(name, name)}]({name})", ""]
    md += ["Timings (trial-seconds, machine-dependent): [`timings.md`](timings.md).", ""]
    return md


def render(ctx: Dict) -> str:
    """The report, section by section."""
    sections = (_header, _findings, _teachers_and_spread, _per_setting, _published, _ranks, _transfer, _starts, _plots)
    return "\n".join(line for section in sections for line in section(ctx))


def timings(ctx: Dict) -> str:
    summ = ctx["summary"]
    return "\n".join(
        [
            f"# Study `{ctx['study']}`: timings",
            "",
            "Trial-seconds per seed (the training time of every trial a method ran), from the store. They depend on "
            "the machine and its load, so they live here, apart from the reproducible report. A student that "
            "trained in a group with others of its setting and seed (the store's `grouped` column; "
            "`[resources] students_per_trial`) counts its share of the group's training time and its own "
            "evaluation.",
            "",
            table(
                summ,
                [
                    ("setting_label", "setting", ""),
                    ("method", "method", ""),
                    ("epochs_per_seed", "epochs", ".0f"),
                    ("seconds_per_seed", "trial-seconds", ".1f"),
                ],
            ),
            "",
        ]
    )


def replication(t: pd.DataFrame, counts: Dict[str, int], draws, margin: float) -> str:
    """reports/<B>/replication.md: every finding of either draw with what the other draw says."""
    md = [f"# Replication of `{draws[0][1]['study'].iloc[0]}` by `{draws[1][1]['study'].iloc[0]}`", ""]
    md += [f"**Produced by** `hpo-kd replication {os.path.relpath(draws[0][0])} {os.path.relpath(draws[1][0])}`.", ""]
    md.append("- Report: " + provenance.code_version())
    for store, trials, _ in draws:
        seeds = ", ".join(str(int(s)) for s in sorted(trials.loc[trials["status"] == "ok", "seed"].unique()))
        runs = "; ".join(describe(e) for e in provenance.load(store) or []) or "no provenance recorded"
        md.append(f"- `{trials['study'].iloc[0]}`: seeds {seeds}; {runs}")
    md += [
        "",
        "The same study on two disjoint draws of seeds; every verdict computed on each draw alone, as its "
        f"report computes it (Holm within its family, margin ±{margin:g} points). A finding (a verdict that "
        "is not inconclusive) *replicates* when the other draw gives the same verdict, is *not repeated* "
        "when the other draw is inconclusive, and is *overturned* when it gives another finding.",
        "",
        f"The first draw's findings: {counts['findings of the first draw']}; replicate: {counts['replicates']}; "
        f"not repeated: {counts['not repeated (inconclusive)']}; overturned: {counts['overturned']}. "
        f"Findings of the second draw only: {counts['new in the second draw']}. "
        f"Inconclusive in both: {counts['inconclusive twice']}.",
        "",
    ]
    shown = t[t["outcome"] != "inconclusive twice"].copy()
    shown["first"] = [_draw(r, "_a") for _, r in shown.iterrows()]
    shown["second"] = [_draw(r, "_b") for _, r in shown.iterrows()]
    order = {k: i for i, k in enumerate(["replicates", "overturned", "not repeated (inconclusive)"])}
    shown = shown.sort_values(
        ["outcome", "kind", "where"], key=lambda c: c.map(order).fillna(9) if c.name == "outcome" else c
    )
    cols = [("outcome", "outcome", ""), ("kind", "family", ""), ("where", "setting", ""), ("what", "comparison", "")]
    md.append(table(shown, cols + [("first", "first draw", ""), ("second", "second draw", "")]))
    md.append("")
    return "\n".join(md)


def _draw(r, suffix: str) -> str:
    v = r["verdict" + suffix]
    if not isinstance(v, str):
        return "–"
    return f"{v}: {r['mean' + suffix]:+.2f} {_ci(r['lo' + suffix], r['hi' + suffix])}"
