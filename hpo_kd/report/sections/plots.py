"""The plots, each with its caption, and where the timings are."""

from __future__ import annotations

from typing import TYPE_CHECKING, List

if TYPE_CHECKING:
    from ..context import ReportContext


def render(ctx: ReportContext) -> List[str]:
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
    for name in ctx.plots:
        md += [f"![{captions.get(name, name)}]({name})", ""]
    md += ["Timings (trial-seconds, machine-dependent): [`timings.md`](timings.md).", ""]
    return md
