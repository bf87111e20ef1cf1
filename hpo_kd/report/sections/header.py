"""The title, what produced the report (command, code, runs, draws, trials, `[train]`), a smoke
test's warning and how to read the report."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

from ...provenance import describe
from .. import md_draws

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
    """The title, what produced the report, the study's [train] options and how to read it."""
    m = ctx.margin
    draws = ctx.draws
    title = f"# Study `{ctx.study}`"
    if draws:
        title += f": all {sum(len(d['seeds']) for d in draws)} seeds of {len(draws)} draws pooled"
    md = [title, ""]
    md += ["**Produced by** `" + ctx.command + "`.", ""]
    md.append("- Report: " + ctx.report_code)
    md += md_draws.header(ctx)
    for i, e in enumerate(ctx.provenance, 1):
        md.append(f"- Run {i} of the study: " + describe(e))
    if not ctx.provenance and not draws:
        md.append("- Runs: no provenance recorded in the store")
    md.append(f"- {ctx.n_trials} stored trials ({ctx.statuses}); seeds vary: {ctx.seed_varies}.")
    if ctx.train:  # the study's [train] table: what every trial was trained (and evaluated) with
        md.append(
            "- Trial options (`[train]`): "
            + ", ".join(f"{k} = {v!r}" for k, v in sorted(ctx.train.items()))
            + "; the rest are the defaults (`hpo-kd distill --help`)."
        )
    md += md_draws.shared(ctx)
    md.append("")
    if ctx.smoke:
        md += ["> **Smoke test, not evidence.** " + ctx.smoke, ""]
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
