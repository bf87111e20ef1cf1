"""The report as Markdown: every sentence is built from a computed table or verdict."""

from __future__ import annotations

from typing import Dict, List

import pandas as pd

from ..provenance import describe
from . import md_draws, stability, stats, testset
from .fmt import POWER_COLUMNS, _ci, _extra, _p, _stat, need, table, words
from .md_transfer import transfer_section, xfit_findings

__all__ = ["render", "timings", "finding", "table", "words", "_ci", "_p", "_stat"]


def finding(r: Dict, margin: float) -> str:
    """One sentence for one comparison, from its verdict."""
    a, b = words(r["method"]), words(r["reference"])
    stat = _stat(r)
    v = r["verdict"]
    if v == "equivalent":
        return f"{r['setting_label']}: {a} is equivalent to {b} within ±{margin:g} points ({stat})."
    if v in ("better", "worse"):
        return f"{r['setting_label']}: {a} is {v} than {b} ({stat})."
    return f"{r['setting_label']}: {a} vs {b} is inconclusive ({stat}); {need(r, margin)}."


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


def _header(ctx: Dict) -> List[str]:
    """The title, what produced the report, the study's [train] options and how to read it."""
    m = ctx["margin"]
    draws = ctx.get("draws") or []
    title = f"# Study `{ctx['study']}`"
    if draws:
        title += f": all {sum(len(d['seeds']) for d in draws)} seeds of {len(draws)} draws pooled"
    md = [title, ""]
    md += ["**Produced by** `" + ctx["command"] + "`.", ""]
    md.append("- Report: " + ctx["report_code"])
    md += md_draws.header(ctx)
    for i, e in enumerate(ctx["provenance"] or [], 1):
        md.append(f"- Run {i} of the study: " + describe(e))
    if not ctx["provenance"] and not draws:
        md.append("- Runs: no provenance recorded in the store")
    md.append(f"- {ctx['n_trials']} stored trials ({ctx['statuses']}); seeds vary: {ctx['seed_varies']}.")
    if ctx.get("train"):  # the study's [train] table: what every trial was trained (and evaluated) with
        md.append(
            "- Trial options (`[train]`): "
            + ", ".join(f"{k} = {v!r}" for k, v in sorted(ctx["train"].items()))
            + "; the rest are the defaults (`hpo-kd distill --help`)."
        )
    md += md_draws.shared(ctx)
    md.append("")
    if ctx.get("smoke"):
        md += ["> **Smoke test, not evidence.** " + ctx["smoke"], ""]
    md += [
        "How to read it. Selection on **val** accuracy (final epoch); every accuracy is the **test** accuracy"
        " of the selected trial, in %. A comparison is the paired difference over seeds (method minus "
        "reference, points), its 95 % t interval and a two-sided paired t-test, and an equivalence test "
        f"(TOST: two one-sided paired t-tests against ±{m:g} points, the margin, at α = 0.05 each; its 90 % "
        "interval). Both p-values are Holm-corrected within the comparison's **family**, declared in advance:"
        " one family per kind of comparison (methods vs grid, methods vs no-KD, transfer cells, transfer vs "
        "B's selection (cross-fitted), start dependence) and setting (for a transfer cell: its target), "
        "whatever else this report holds. Verdict: *equivalent* when TOST's Holm p < 0.05 (also when the "
        "t-test rejects too: a real difference smaller than the margin); else *better* / *worse* when the "
        "t-test's Holm p < 0.05 (the sign of the mean says which); else *inconclusive* (always with fewer "
        "than 3 seeds), with the seeds each test would need for 80 % power at the observed mean and sd, α "
        "corrected for the family (0.05 / its size): the t-test to reject no difference, TOST to establish "
        "equivalence. Beside each verdict, P(< −m / ±m / > +m): the posterior probabilities that the "
        "mean difference is below −margin, inside ±margin, above +margin (Bayesian correlated t-test with ρ ="
        " 0, flat prior; no correction). Intervals are over seeds only (see *Test set*). Cost is in epochs "
        "per seed (deterministic); trial-seconds are in `timings.md`, apart, because they depend on the "
        "machine.",
        "",
    ]
    if draws:
        md += [
            "The verdicts use every seed of every draw, in the same families as one draw's report; beside each "
            "finding, each draw's own mean difference and 95 % interval and the heterogeneity p of the draws "
            "(*Consistency between draws*).",
            "",
        ]
    return md


def _findings(ctx: Dict) -> List[str]:
    """Every verdict that is not inconclusive, and how many are; in a pooled report, with each
    draw's numbers."""
    md: List[str] = []
    m = ctx["margin"]
    comp, tm, st = ctx["comparisons"], ctx["transfer"], ctx["starts"]
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
                f"- Transfer {what}: {r['verdict']} (regret "
                + _stat(r)
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
        md += [f"- {_start_finding(r)}" for _, r in dec.iterrows()] + ([""] if not dec.empty else [])
    n_inc = sum(int((df["verdict"] == "inconclusive").sum()) for df in (comp, tm, st) if not df.empty)
    n_inc += int((tm["xfit_verdict"] == "inconclusive").sum()) if not tm.empty else 0
    md += [
        f"{n_inc} comparison(s) are inconclusive; they are listed per setting below. Ranks are exploratory "
        "and not among the findings (their own section).",
        "",
    ]
    return md + md_draws.consistency_section(ctx)


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
        *POWER_COLUMNS,
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
    sections = (
        _header,
        _findings,
        _teachers_and_spread,
        testset.section,
        _per_setting,
        _published,
        _ranks,
        transfer_section,
        _starts,
        _plots,
    )
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
