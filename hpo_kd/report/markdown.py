"""The report as Markdown: every sentence is built from a computed table or verdict."""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import pandas as pd

from .. import methods as methods_mod
from ..provenance import describe



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
    return f"[{lo:+.2f}, {hi:+.2f}]"


def finding(r: Dict, margin: float) -> str:
    """One sentence for one comparison, from its verdict."""
    a, b = words(r["method"]), words(r["reference"])
    stat = f"{r['mean']:+.2f} points, 95 % CI {_ci(r['lo'], r['hi'])}, Holm p {_p(r['p_holm'])}, {r['n']} seeds"
    v = r["verdict"]
    if v == "equivalent":
        return f"{r['setting_label']}: {a} is equivalent to {b} within ±{margin:g} points ({stat})."
    if v in ("better", "worse"):
        return f"{r['setting_label']}: {a} is {v} than {b} ({stat})."
    need = r["seeds_needed"]
    more = (f"about {int(need)} seeds would resolve it at the observed spread" if math.isfinite(need)
            else "more seeds would not resolve it at the observed spread")
    return f"{r['setting_label']}: {a} vs {b} is inconclusive ({stat}); {more}."


def _rank_pairs(avg: pd.DataFrame, cd: float) -> str:
    """The pairs of methods whose average ranks differ by more than the critical difference."""
    r = list(zip(avg["method"], avg["avg_rank"]))
    pairs = [f"{a} ranks above {b} ({ra:.2f} vs {rb:.2f})" for i, (a, ra) in enumerate(r) for b, rb in r[i + 1:]
             if rb - ra > cd]
    return ("Pairs further apart than CD: " + "; ".join(pairs) + ".") if pairs else "No pair is further apart than CD."


def _start_finding(r) -> str:
    verb = "is independent of the start" if r["verdict"] == "independent of the start" else r["verdict"]
    return (f"{r['setting_label']}: {r['method']}, final {r['quantity']} {verb}: {r['start_low']:g} → "
            f"{r['final_low']:.2f}, {r['start_high']:g} → {r['final_high']:.2f} (Δ log2 {r['mean']:+.2f}, "
            f"95 % CI {_ci(r['lo'], r['hi'])}, Holm p {_p(r['p_holm'])}, {r['n']} seeds).")


def render(ctx: Dict) -> str:
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
        md.append("- Trial options (`[train]`): " + ", ".join(f"{k} = {v!r}" for k, v in sorted(ctx["train"].items()))
                  + "; the rest are the defaults (`hpo-kd distill --help`).")
    md.append("")
    if ctx.get("smoke"):
        md += ["> **Smoke test, not evidence.** " + ctx["smoke"], ""]
    md += [
        "How to read it. Selection on **val** accuracy (final epoch); every accuracy is the **test** accuracy of "
        "the selected trial, in %. A comparison is the paired difference over seeds (method minus reference, "
        "points), its 95 % t interval and a paired t-test, Holm-corrected over all "
        f"{ctx['n_comparisons']} comparisons of this report (transfer cells included). Verdict: *equivalent* when "
        f"the whole interval lies within ±{m:g} points (the margin); else *better* / *worse* when Holm p < 0.05; "
        "else *inconclusive* (always with fewer than 3 seeds), with the seeds that would resolve it at the "
        "observed spread. Cost is in epochs "
        "per seed (deterministic); trial-seconds are in `timings.md`, apart, because they depend on the machine.",
        "",
    ]
    # ---- findings
    comp = ctx["comparisons"]
    decided = comp[comp["verdict"] != "inconclusive"]
    md += ["## Findings (every verdict that is not inconclusive)", ""]
    n_decided = sum(int((df["verdict"] != "inconclusive").sum())
                    for df in (comp, ctx["transfer"], ctx["starts"]) if not df.empty)
    if n_decided == 0:
        md += ["None: every comparison is inconclusive at this number of seeds.", ""]
    elif not decided.empty:
        md += [f"- {finding(r, m)}" for _, r in decided.iterrows()] + [""]
    tm = ctx["transfer"]
    if not tm.empty:
        dec = tm[tm["verdict"] != "inconclusive"]
        for _, r in dec.iterrows():
            md.append(f"- Transfer {r['source']} → {r['target']}: {r['verdict']} (regret {r['mean']:+.2f} points, "
                      f"95 % CI {_ci(r['lo'], r['hi'])}, Holm p {_p(r['p_holm'])}, {r['n']} seeds)"
                      + (f"; {r['note']}" if r["note"] else "") + ".")
        if not dec.empty:
            md.append("")
    st = ctx["starts"]
    if not st.empty:
        dec = st[st["verdict"] != "inconclusive"]
        md += [f"- {_start_finding(r)}" for _, r in dec.iterrows()] + ([""] if not dec.empty else [])
    n_inc = sum(int((df["verdict"] == "inconclusive").sum()) for df in (comp, tm, st) if not df.empty)
    md += [f"{n_inc} comparison(s) are inconclusive; they are listed per setting below.", ""]
    fr = ctx["friedman"]
    if fr is not None:
        sig = fr["p_F"] < 0.05
        md += [f"Ranks: Friedman over {fr['n']} (setting, seed) blocks and {fr['k']} methods: χ² = {fr['chi2']:.2f} "
               f"(p {_p(fr['p_chi2'])}), Iman–Davenport F = {fr['F']:.2f} (p {_p(fr['p_F'])}): "
               + (f"the methods' ranks differ (Nemenyi's CD = {fr['cd']:.2f}). " + _rank_pairs(ctx["ranks"], fr["cd"])
                  if sig else "no ranking: the ranks do not differ significantly."), ""]
    # ---- teachers and spread
    t = ctx["teachers"]
    if not t.empty:
        md += ["## Teachers", "", table(t, [("setting_label", "setting", ""), ("teacher", "teacher", ""),
                                             ("teachers", "teachers", "d"), ("val", "val % (mean)", ".2f"),
                                             ("test", "test % (mean)", ".2f"), ("test_min", "min", ".2f"),
                                             ("test_max", "max", ".2f")]), ""]
        for w in ctx["weak_teachers"]:
            md.append(f"> **Warning:** {w}")
        if ctx["weak_teachers"]:
            md.append("")
    sp = ctx["spread"]
    if not sp.empty:
        md += ["## Seed spread", "",
               f"Standard deviation over seeds of the test accuracy (points); a setting above {ctx['max_spread']:g} "
               "is flagged: its comparisons need more seeds or longer training.", "",
               table(sp, [("setting_label", "setting", ""), ("nokd_sd", "no-KD sd", ".2f"),
                          ("grid_sd", "grid's selection sd", ".2f"), ("flag", "flag", "")]), ""]
    # ---- per setting
    s_cols = [("method", "method", ""), ("tau", "selected τ per seed (τ_t/τ_s)", ""), ("seeds", "seeds", "d"),
              ("test_mean", "test %", ".2f"), ("test_sd", "sd", ".2f"), ("test_ci95", "95 % CI ±", ".2f"),
              ("val_mean", "val %", ".2f"), ("trials_per_seed", "trials", ".0f"), ("epochs_per_seed", "epochs", ".0f"),
              ("avg_rank", "mean rank", ".2f")]
    c_cols = [("label", "comparison", ""), ("mean", "Δ points", "+.2f"), ("ci", "95 % CI", ""), ("p", "p", ""),
              ("p_holm_s", "Holm p", ""), ("verdict", "verdict", ""), ("need", "seeds to resolve", "")]
    summ = ctx["summary"]
    for s in sorted(summ["setting"].unique()):
        g = summ[summ["setting"] == s]
        c = comp[comp["setting"] == s].copy()
        c["label"] = c["method"] + " − " + c["reference"]
        c["ci"] = [_ci(lo, hi) for lo, hi in zip(c["lo"], c["hi"])]
        c["p_holm_s"] = c["p_holm"].map(_p)
        c["p"] = c["p"].map(_p)
        c["need"] = [("–" if n != n else (str(int(n)) if math.isfinite(n) else "> 1000")) for n in c["seeds_needed"]]
        md += [f"## {g['setting_label'].iloc[0]} — `{s}`", "", table(g, s_cols), "", table(c, c_cols), ""]
    # ---- published figures
    pub = ctx.get("published")
    if pub is not None and not pub.empty:
        md += ["## Beside the published figures", "",
               "What papers report for the same pair (one number each, from their recipe and machines), beside "
               "this study's test accuracy, mean and sd over seeds. For orientation only: no verdict is computed "
               "from a published figure, and a study that trains for fewer epochs than the papers' 240 is not "
               "comparable to them.", "",
               "*Measured* is this study's figure: the test accuracy after the final epoch, of the configuration "
               "a method selected on val (KD: the grid's τ = 4 runs; the teacher as trained). *Best test over epochs* is the measure the papers report (CRD, CTKD, DKD, LS-KD, "
               "mdistiller's tables): for the same runs, the highest test accuracy over each run's epochs, mean "
               "over runs. It selects the epoch on the **test** set, so it is optimistic and not an estimate of "
               "accuracy on unseen data; it is shown only so that each published figure stands beside its like. "
               "A run that evaluated only its last epoch (a teacher) counts that epoch.", "",
               table(pub, [("setting_label", "setting", ""), ("what", "what", ""), ("n", "runs", "d"),
                           ("measured", "measured %", ".2f"), ("sd", "sd", ".2f"),
                           ("best_test", "best test over epochs % (test-set selection, the papers' measure)", ".2f"),
                           ("published", "published %", ".2f"), ("source", "source", "")]), ""]
        md += [f"- `{k}`: {v}" for k, v in sorted(ctx["sources"].items()) if k in set(pub["source"])] + [""]
    # ---- ranks
    if not ctx["ranks"].empty:
        md += ["## Average rank per (setting, seed) block", "",
               "Ranks within each block, ties sharing the average rank; blocks with every method only.", "",
               table(ctx["ranks"], [("method", "method", ""), ("avg_rank", "average rank", ".2f")]), ""]
    # ---- transfer
    if not tm.empty:
        md += ["## Transfer", "",
               "The τ the grid selected on A (val, per seed) run on B with the same seed. Regret = B's own selected "
               "τ minus A's τ, on B's test split (points; > 0: A's τ is worse). Normalised regret divides each "
               "seed's regret by the range of B's grid (best minus worst temperature). Verdicts: *transfers* "
               f"(interval within ±{m:g}), *does not transfer* (regret > 0, Holm p < 0.05), *beats B's own "
               "selection*, *inconclusive*. `same τ` counts seeds where A and B selected the same τ (regret 0).", "",
               table(tm.assign(ci=[_ci(lo, hi) for lo, hi in zip(tm["lo"], tm["hi"])],
                               ph=tm["p_holm"].map(_p)),
                     [("source", "A (source)", ""), ("target", "B (target)", ""), ("taus", "τ from A per seed", ""),
                      ("own_taus", "B's own τ", ""), ("same_tau", "same τ", "d"), ("mean", "regret", "+.2f"),
                      ("ci", "95 % CI", ""), ("ph", "Holm p", ""), ("norm_regret", "normalised", ".2f"),
                      ("verdict", "verdict", ""), ("note", "note", "")]), ""]
        mk = comp[(comp["method"].str.split(":").str[0] == "mkd") & (comp["reference"] == "grid")]
        if not mk.empty:
            md += ["MKD's own runs need no transfer; shown apart, against each setting's grid selection:", "",
                   table(mk.assign(ci=[_ci(lo, hi) for lo, hi in zip(mk["lo"], mk["hi"])], ph=mk["p_holm"].map(_p)),
                         [("setting_label", "setting", ""), ("method", "method", ""), ("mean", "MKD − grid", "+.2f"),
                          ("ci", "95 % CI", ""),
                          ("ph", "Holm p", ""), ("verdict", "verdict", "")]), ""]
    if not st.empty:
        md += ["## Learned temperatures: does the end depend on the start?", "",
               "Runs of one learned method started from its lowest and its highest initial temperature, paired by "
               "seed: the difference of the final temperatures in log2 units (1 = a factor of 2), judged against "
               f"a margin of ±{st['margin'].iloc[0]:g} (a factor of {2 ** st['margin'].iloc[0]:.2f}), Holm-corrected "
               "with the rest of the report.", "",
               table(st.assign(ci=[_ci(lo, hi) for lo, hi in zip(st["lo"], st["hi"])], ph=st["p_holm"].map(_p),
                               fl=[f"{a:.2f} → {b:.2f}" for a, b in zip(st["final_low"], st["final_high"])],
                               starts=[f"{a:g} vs {b:g}" for a, b in zip(st["start_low"], st["start_high"])]),
                     [("setting_label", "setting", ""), ("method", "method (learns)", ""), ("quantity", "τ", ""),
                      ("starts", "starts", ""), ("fl", "final τ (geometric mean): low start → high start", ""),
                      ("mean", "Δ log2 τ", "+.2f"), ("ci", "95 % CI", ""), ("ph", "Holm p", ""),
                      ("verdict", "verdict", "")]), ""]
    md += ["## Plots", ""]
    captions = {
        "accuracy_cost.png": "test accuracy vs cost (epochs per seed), mean ± 95 % CI, Pareto front",
        "regret_budget.png": "normalised regret vs budget, mean and 95 % CI band over seeds",
        "forest.png": "paired differences per setting with the margin band",
        "cd_diagram.png": "critical-difference diagram of average ranks",
        "temperature.png": "test accuracy vs temperature; triangles: the τ selected on val",
        "trajectories.png": "learned temperature trajectories",
        "optuna.png": "Optuna's optimisation history",
        "transfer.png": "transfer regret heatmap",
    }
    for name in ctx["plots"]:
        md += [f"![{captions.get(name, name)}]({name})", ""]
    md += ["Timings (trial-seconds, machine-dependent): [`timings.md`](timings.md).", ""]
    return "\n".join(md)


def timings(ctx: Dict) -> str:
    summ = ctx["summary"]
    return "\n".join([
        f"# Study `{ctx['study']}`: timings", "",
        "Trial-seconds per seed (the training time of every trial a method ran), from the store. They depend on "
        "the machine and its load, so they live here, apart from the reproducible report. A student that "
        "trained in a group with others of its setting and seed (the store's `grouped` column; "
        "`[resources] students_per_trial`) counts its share of the group's training time and its own "
        "evaluation.", "",
        table(summ, [("setting_label", "setting", ""), ("method", "method", ""), ("epochs_per_seed", "epochs", ".0f"),
                     ("seconds_per_seed", "trial-seconds", ".1f")]), ""])
