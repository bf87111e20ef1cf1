"""The report's plots, each drawn from the tables the other modules compute: here accuracy
against cost and regret against budget, and `all_plots`, which draws every plot a report has data
for; the plots of verdicts are in `plot_verdicts`, those of temperatures in `plot_temperatures`,
what they share in `plot_base`. Same tables, same bytes: no dates or software versions in the PNG
metadata."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, List

import numpy as np
import pandas as pd

from . import plot_base as pb
from . import stats
from .plot_base import color, marker
from .plot_temperatures import optuna_history, optuna_studies, temperature, trajectories
from .plot_verdicts import cd_diagram, forest, num, posterior, transfer_heatmap
from .selection import GRID, grid_curve, kind, labels, method_order, ok

if TYPE_CHECKING:
    from .context import ReportContext

__all__ = [
    "accuracy_vs_cost",
    "all_plots",
    "cd_diagram",
    "color",
    "forest",
    "incumbent_regret",
    "marker",
    "num",
    "optuna_history",
    "optuna_studies",
    "posterior",
    "regret_vs_budget",
    "temperature",
    "trajectories",
    "transfer_heatmap",
]


def _cost_ticks(costs, apart: float = 1.12) -> list:
    """The distinct costs, as ticks at least `apart` times each other (on the log axis labels
    closer than that overlap): a multi-fidelity searcher's mean epochs are fractional and near
    each other's."""
    ticks = []
    for c in sorted(costs.round(6).unique()):
        if not ticks or c >= ticks[-1] * apart:
            ticks.append(c)
    return ticks


def accuracy_vs_cost(summary: pd.DataFrame, path: str) -> None:
    """Per setting: test accuracy (mean and 95 % CI over seeds) against cost in epochs per seed;
    the Pareto front (no method cheaper and at least as accurate) is joined by a line. Methods of
    the same cost are spread sideways (a multiplicative jitter, drawn with a tick at the true cost)
    and each point is labelled, so that one-run methods do not hide one another."""
    plt = pb.pyplot()
    settings = sorted(summary["setting"].unique())
    fig, axes = pb.panels(plt, len(settings), 4.6)
    for ax, s in zip(axes, settings):
        g = summary[summary["setting"] == s]
        same = g.groupby(g["epochs_per_seed"].round(6))["method"].transform("count")
        rank = g.groupby(g["epochs_per_seed"].round(6)).cumcount()
        for (_, r), k, i in zip(g.iterrows(), same, rank):
            m = r["method"]
            x = r["epochs_per_seed"] * (1.05 ** (i - (k - 1) / 2) if k > 1 else 1.0)
            half = 0 if math.isnan(r["test_ci95"]) else r["test_ci95"]
            ax.errorbar(
                [x],
                [r["test_mean"]],
                yerr=[half],
                color=pb.color(m),
                marker=pb.marker(m),
                markersize=7,
                capsize=3,
                linestyle="none",
                label=m,
            )
            if k > 1:
                ax.annotate(
                    m,
                    (x, r["test_mean"] + half),
                    xytext=(0, 4),
                    textcoords="offset points",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color=pb.color(m),
                )
        for c in g["epochs_per_seed"][same > 1].unique():
            ax.axvline(c, color="0.6", linewidth=0.6, linestyle=":")
        front = g.sort_values(["epochs_per_seed", "test_mean"], ascending=[True, False])
        best, pts = -math.inf, []
        for _, r in front.iterrows():
            if r["test_mean"] > best:
                best = r["test_mean"]
                pts.append((r["epochs_per_seed"], r["test_mean"]))
        if pts:
            xs, ys = zip(*pts)
            ax.step(xs, ys, where="post", color="k", alpha=0.35, linewidth=1, label="Pareto front (mean)")
        ax.set_xscale("log")
        ticks = _cost_ticks(g["epochs_per_seed"])
        ax.set_xticks(ticks, [f"{t:.0f}" for t in ticks])  # the costs themselves, not powers of ten
        ax.set_xticks([], minor=True)
        ax.set_xlabel("cost: epochs per seed (log scale)\nequal costs: spread sideways around the dotted line")
        ax.margins(y=0.25)
        ax.set_ylabel("test accuracy (%), mean ± 95 % CI")
        ax.set_title(g["setting_label"].iloc[0])
        ax.grid(alpha=0.3, which="both")
    pb.finish(plt, fig, axes, path)


def incumbent_regret(h: pd.DataFrame, oracle: float, rng: float) -> np.ndarray:
    """Normalised regret of the val-selected trial after each trial of a search (in order). A
    trial stopped early (status `stopped`) is paid for but never selected; before the first
    finished trial there is no selection (NaN)."""
    out, best_val, best_test = [], -math.inf, None
    for _, r in h.iterrows():
        if r["status"] == "ok" and r["val_acc"] > best_val:  # ties keep the earlier trial
            best_val, best_test = r["val_acc"], r["test_acc"] * 100
        if best_test is None:
            out.append(math.nan)
        else:
            out.append((oracle - best_test) / rng if rng > 0 else 0.0)
    return np.array(out)


def regret_vs_budget(trials: pd.DataFrame, sel: pd.DataFrame, path: str) -> bool:
    """Per setting: the normalised test regret of each method's val-selected trial against the
    budget spent (epochs), mean and 95 % CI band over seeds. Per seed, regret is normalised by the
    grid's range: (best grid temperature - method) / (best - worst grid temperature). Searches are
    drawn trial by trial (the grid in ascending temperature, the others in the order they
    proposed), their trials stopped early counted in the budget; single-trial methods are one point."""
    good = ok(trials)
    paid = trials[trials["status"].isin(["ok", "stopped"])]
    settings = sorted(good.loc[good["method"] == GRID, "setting"].unique())
    if not settings:
        return False
    plt = pb.pyplot()
    lab = labels(trials)
    fig, axes = pb.panels(plt, len(settings), 4.2)
    for ax, s in zip(axes, settings):
        grid = grid_curve(trials, s)
        ref = {
            seed: ((g["test_acc"].max() * 100), (g["test_acc"].max() - g["test_acc"].min()) * 100)
            for seed, g in grid.groupby("seed")
        }
        for m in method_order(good.loc[good["setting"] == s, "method"]):
            runs = good[(good["setting"] == s) & (good["method"] == m)]
            if kind(m) == "searched":  # a search, trial by trial, what stopped early included
                runs = paid[(paid["setting"] == s) & (paid["method"] == m)]
                order = ["tau_t_config", "tau_s_config"] if m == GRID else ["trial_index", "trial_id"]
                curves = [np.cumsum(h.sort_values(order)["epochs_run"].to_numpy()) for _, h in runs.groupby("seed")]
                regs = [
                    incumbent_regret(h.sort_values(order), *ref[seed])
                    for seed, h in runs.groupby("seed")
                    if seed in ref
                ]
                if not regs:
                    continue
                k = min(len(r) for r in regs)
                R = np.array([r[:k] for r in regs])
                x = np.array([c[:k] for c in curves]).mean(axis=0)
                first = int(np.argmax(np.isfinite(R).all(axis=0)))  # from where every seed has a selection
                R, x, k = R[:, first:], x[first:], k - first
                mean = R.mean(axis=0)
                half = np.array([stats.paired(R[:, i])["hi"] - mean[i] if len(R) > 1 else 0 for i in range(k)])
                ax.step(x, mean, where="post", color=pb.color(m), label=m, marker=pb.marker(m), markersize=4)
                ax.fill_between(x, mean - half, mean + half, step="post", color=pb.color(m), alpha=0.15)
            else:
                r = sel[(sel["setting"] == s) & (sel["method"] == m)]
                vals = [
                    (ref[seed][0] - t) / ref[seed][1]
                    for seed, t in zip(r["seed"], r["test"])
                    if seed in ref and ref[seed][1] > 0
                ]
                if not vals:
                    continue
                p = stats.paired(vals)
                half = 0 if len(vals) < 2 else p["hi"] - p["mean"]
                ax.errorbar(
                    [r["cost_epochs"].mean()],
                    [p["mean"]],
                    yerr=[half],
                    color=pb.color(m),
                    marker=pb.marker(m),
                    markersize=8,
                    capsize=3,
                    linestyle="none",
                    label=m,
                )
        ax.axhline(0, color="k", linewidth=0.8)
        ax.set_xlabel("budget: epochs per seed")
        ax.set_ylabel("normalised regret (0 = best grid τ, 1 = worst)")
        ax.set_title(lab[s])
        ax.grid(alpha=0.3)
    pb.finish(plt, fig, axes, path)
    return True


def all_plots(ctx: "ReportContext", out: str) -> List[str]:
    """Draw every plot that the report has data for into folder `out`; returns the file names drawn."""
    os.makedirs(out, exist_ok=True)
    drawn = []

    def p(name):
        drawn.append(name)
        return os.path.join(out, name)

    accuracy_vs_cost(ctx.summary, p("accuracy_cost.png"))
    if not regret_vs_budget(ctx.trials, ctx.sel, p("regret_budget.png")):
        drawn.pop()
    if not forest(ctx.comparisons, ctx.margin, p("forest.png")):
        drawn.pop()
    if not posterior(
        ctx.comparisons,
        ctx.margin,
        p("posterior.png"),
        "Posterior of the mean difference (Bayesian correlated t-test, ρ = 0), method − reference",
    ):
        drawn.pop()
    if ctx.friedman is not None and ctx.friedman["n"] >= 5:
        cd_diagram(ctx.ranks, ctx.friedman["pairs"], ctx.friedman["n"], p("cd_diagram.png"))
    temperature(ctx.sel, ctx.trials, p("temperature.png"))
    if not trajectories(ctx.trials, ctx.curves, p("trajectories.png")):
        drawn.pop()
    if not optuna_history(ctx.trials, p("optuna.png")):
        drawn.pop()
    if not transfer_heatmap(ctx.transfer, ctx.margin, p("transfer.png"), ctx.stability):
        drawn.pop()
    return drawn
