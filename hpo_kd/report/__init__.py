"""Reports: a results store in, `reports/<study>/report.md` with CSV tables and PNG plots out.

One job per module: `selection` (the trial each method reports), `stats` (paired differences,
TOST, Holm within declared families, verdicts, posteriors, ranks, Friedman, Wilcoxon–Holm, the
draws' heterogeneity), `power` (seeds for 80 % power of each test), `transfer` (the transfer
matrix), `stability` (the selection within a setting, the floor, the cross-fitted reference, the
axes), `learned` (start dependence), `pooled` (several draws of a study as one report),
`replication` (each draw alone, side by side), `shared` (trials shared with another store),
`testset` (the test set's sampling error), the plots (`plots`, `plot_verdicts`,
`plot_temperatures`, `plot_base`; what a method moves and its clamps come from its class), `context`
(the typed `Analysis` and `ReportContext`, built once per report) and the Markdown: `sections`,
one module per section of report.md in order, with `fmt`, `md_transfer`, `md_draws`. Every number
comes from the stores; the same stores give the same files (timings apart, in `timings.md` /
`timings.csv`).
"""

from __future__ import annotations

import os
from typing import Dict, List, Sequence

import pandas as pd

from .. import provenance
from ..store import Store
from . import learned as learned_mod
from . import markdown, plots, stability, stats
from . import pooled as pooled_mod
from . import published as published_mod
from . import shared as shared_mod
from . import transfer as transfer_mod
from .context import Analysis, ReportContext
from .selection import BASELINE, fmt_tau, labels, method_order, resolve_setting, select, teachers
from .transfer import cells as transfer_cells
from .transfer import missing_trials as missing_transfer_trials

DEFAULT_MARGIN = 0.5
DEFAULT_MAX_SPREAD = 1.0
MACHINE_COLUMNS = [
    "seconds",
    "cost_seconds",
    "seconds_per_seed",
    "started_at",
    "finished_at",
    "node",
    "gpu_ids",
    "device",
    "pid",
    "grouped",
    "group_kernels",
]  # how a run went, not what it found: left out of the reproducible tables


def study_options(store_dir: str) -> Dict:
    """The report keys of the study file saved beside the results (defaults when absent)."""
    out = {
        "margin": DEFAULT_MARGIN,
        "max_spread": DEFAULT_MAX_SPREAD,
        "seed_varies": "student",
        "smoke": "",
        "published": [],
        "sources": {},
        "train": {},
    }
    path = os.path.join(store_dir, "study.toml")
    if os.path.isfile(path):
        from ..study import load_stored

        s = load_stored(store_dir)
        out.update(
            margin=s.report["margin"],
            max_spread=s.report["max_spread"],
            seed_varies=s.seed_varies,
            smoke=s.report.get("smoke_test", ""),
            published=s.report.get("published", []),
            sources=s.report.get("sources", {}),
            train=dict(s.train),
        )
    return out


def analyse(
    trials: pd.DataFrame, curves: pd.DataFrame, margin: float = DEFAULT_MARGIN, max_spread: float = DEFAULT_MAX_SPREAD
) -> Dict:
    """Every table of a report, computed from the store's trials (no files written)."""
    trials = trials.copy()
    if "trial_index" not in trials:
        trials["trial_index"] = float("nan")
    sel = select(trials)
    ranks_long = stats.rank_table(sel)
    summ = stats.summary(sel, ranks_long)
    taus = {
        (s, m): ("–" if m == BASELINE else fmt_tau(list(g["sel_tau_t"]), list(g["sel_tau_s"])))
        for (s, m), g in sel.groupby(["setting", "method"])
    }
    summ["tau"] = [taus[(s, m)] for s, m in zip(summ["setting"], summ["method"])]
    order = {m: i for i, m in enumerate(method_order(summ["method"]))}
    summ = summ.sort_values(["setting", "method"], key=lambda c: c.map(order) if c.name == "method" else c)
    comps = stats.comparisons(sel, margin)
    trans = transfer_mod.matrix(trials, margin)
    starts = learned_mod.start_dependence(sel)
    # Holm within each row's declared family, never over the report
    stats.apply_holm(comps + trans + starts + [r["_xfit"] for r in trans])
    # (a study without the grid and no-KD has no comparisons: an empty table with its columns)
    comp = (
        pd.DataFrame(comps)
        if comps
        else pd.DataFrame(
            columns=[
                "setting",
                "setting_label",
                "method",
                "reference",
                "family",
                "family_size",
                *stats.STAT_COLUMNS,
                "margin",
                "verdict",
                "seeds_to_reject",
                "seeds_for_equivalence",
            ]
        )
    )
    if not comp.empty:
        comp["_o"] = comp["method"].map(order)
        comp = comp.sort_values(["setting", "reference", "_o"]).drop(columns="_o").reset_index(drop=True)
    avg, fr = stats.overall_ranks(sel)
    teach = teachers(trials)
    weak = []
    if not teach.empty:
        nokd_val = sel[sel["method"] == BASELINE].groupby("setting_label")["val_acc"].mean() * 100
        for _, r in teach.iterrows():
            if r["setting_label"] in nokd_val and r["val"] < nokd_val[r["setting_label"]]:
                weak.append(
                    f"on {r['setting_label']} the teacher's val accuracy ({r['val']:.2f} %) is below the "
                    f"no-KD student's ({nokd_val[r['setting_label']]:.2f} %): distillation from it is "
                    "not expected to help."
                )
    return Analysis(
        trials=trials,
        curves=curves,
        sel=sel,
        summary=summ.reset_index(drop=True),
        comparisons=comp,
        transfer=transfer_mod.finish(trans),
        stability=stability.table(trials),
        starts=learned_mod.finish(starts),
        ranks=avg,
        friedman=fr,
        rank_blocks=ranks_long,
        spread=stats.spread(sel, max_spread),
        teachers=teach,
        weak_teachers=weak,
        margin=margin,
        max_spread=max_spread,
    )


# Every file `write_report` may write into reports/<study>/.
OUTPUTS = {
    "report.md",
    "timings.md",
    "timings.csv",
    "cost.csv",
    "comparison.csv",
    "verdicts.csv",
    "selected.csv",
    "transfer.csv",
    "learned_start.csv",
    "selection.csv",
    "published.csv",
    "consistency.csv",
    "accuracy_cost.png",
    "regret_budget.png",
    "forest.png",
    "posterior.png",
    "cd_diagram.png",
    "temperature.png",
    "trajectories.png",
    "optuna.png",
    "transfer.png",
}


def load_store(store_dir: str):
    """(trials, curves) of a study's store."""
    store = Store.open_existing(store_dir)
    return store.trials(), store.curves()


def _cost(trials: pd.DataFrame) -> pd.DataFrame:
    """Per setting and method: trials and epochs spent (every status), as the store counts them."""
    return (
        trials.groupby(["setting_label", "method"], sort=True)
        .agg(trials=("trial_id", "count"), epochs=("epochs_run", "sum"))
        .reset_index()
    )


def context(stores: List[str], out: str = "", overlap: Sequence[str] = (), name: str | None = None) -> ReportContext:
    """A report's context, built once: on one store, or on several draws of a study pooled
    (`pooled`), with what produced it; the published figures; the plots, drawn into `out` (none
    when `out` is empty)."""
    if len(stores) == 1:
        trials, curves = load_store(stores[0])
        opts = study_options(stores[0])
        analysis = analyse(trials, curves, opts["margin"], opts["max_spread"])
        study, runs = name or trials["study"].iloc[0], provenance.load(stores[0])
    else:
        analysis, opts = pooled_mod.analyse_draws(stores)
        study, runs = name or analysis.draws[0]["study"] + "_pooled", []
    command = "hpo-kd report " + " ".join(os.path.relpath(s) for s in stores)
    command += "".join(f" --overlap {os.path.relpath(o)}" for o in overlap)
    ctx = ReportContext.of(
        analysis,
        study=study,
        opts=opts,
        provenance=runs,
        command=command + (f" --name {name}" if name else ""),
        report_code=provenance.code_version(),
        overlap=shared_mod.overlap(analysis.trials, list(overlap)),
    )
    if opts["published"] and not ctx.sel.empty:
        ctx.published = published_mod.table(ctx.trials, ctx.sel, opts["published"], opts["sources"], ctx.curves)
    if out:
        ctx.plots = plots.all_plots(ctx, os.path.join(out, study))
    return ctx


def write_report(
    store_dir: str | Sequence[str], out_root: str = "reports", overlap: Sequence[str] = (), name: str | None = None
) -> str:
    """reports/<study>/report.md and its tables and plots, from one store; from several stores
    (draws of one study on disjoint seeds), one report on all their seeds, in
    reports/<first study>_pooled/ unless `name` is given. `overlap`: other stores whose shared
    trials the header names."""
    stores = [store_dir] if isinstance(store_dir, str) else list(store_dir)
    ctx = context(stores, out_root, overlap, name)
    out = os.path.join(out_root, ctx.study)
    written = set(ctx.plots) | {"cost.csv", "timings.csv", "report.md", "timings.md"}

    def csv(df, name):
        written.add(name)
        df.drop(columns=[c for c in MACHINE_COLUMNS if c in df.columns]).round(4).to_csv(
            os.path.join(out, name), index=False
        )

    csv(ctx.summary, "comparison.csv")
    csv(ctx.comparisons, "verdicts.csv")
    csv(ctx.sel, "selected.csv")
    for df, fname in (
        (ctx.transfer, "transfer.csv"),
        (ctx.starts, "learned_start.csv"),
        (ctx.stability, "selection.csv"),
        (ctx.published, "published.csv"),
        (ctx.consistency, "consistency.csv"),
    ):
        if df is not None and not df.empty:
            csv(df, fname)
    _cost(ctx.trials).to_csv(os.path.join(out, "cost.csv"), index=False)
    ctx.summary[["setting_label", "method", "epochs_per_seed", "seconds_per_seed"]].round(2).to_csv(
        os.path.join(out, "timings.csv"), index=False
    )
    for fname, text in (("report.md", markdown.render(ctx)), ("timings.md", markdown.timings(ctx))):
        path = os.path.join(out, fname)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    # A file a report may write that this one did not (no data for it, or an older version's)
    # would describe other trials: remove it. Other files (replication.md) are left alone.
    for stale in (OUTPUTS | {"anytime.png"}) - written:
        if os.path.exists(os.path.join(out, stale)):
            os.remove(os.path.join(out, stale))
    return os.path.join(out, "report.md")


__all__ = [
    "Analysis",
    "ReportContext",
    "analyse",
    "context",
    "study_options",
    "load_store",
    "write_report",
    "select",
    "resolve_setting",
    "transfer_cells",
    "missing_transfer_trials",
    "fmt_tau",
    "labels",
]
