"""The report's plots of temperatures: test accuracy against temperature, the temperatures
over epochs of the methods that move them (what each moves, its clamps: from its class), and
Optuna's optimisation history."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from ..searchers.optuna import Optuna
from . import plot_base as pb
from . import stats
from .selection import (
    BASELINE,
    GRID,
    base,
    grid_curve,
    kind,
    learned,
    method_order,
    moved_temperatures,
    ok,
    run_options,
    select,
    temperature_method,
)


def temperature(sel: pd.DataFrame, trials: pd.DataFrame, path: str) -> None:
    """Test accuracy against temperature: the grid (mean and 95 % CI per τ), the τ the grid
    selected on val per seed (triangles), learned methods at their final τ, and no-KD."""
    plt = pb.pyplot()
    settings = sorted(sel["setting"].unique())
    fig, axes = pb.panels(plt, len(settings), 4.2)
    for ax, s in zip(axes, settings):
        g = grid_curve(trials, s)
        ss = sel[sel["setting"] == s]
        if not g.empty:
            agg = {t: stats.paired(v.to_numpy() * 100) for t, v in g.groupby("tau_t_config")["test_acc"]}
            taus = sorted(agg)
            means = [agg[t]["mean"] for t in taus]
            half = [0 if not np.isfinite(agg[t]["hi"]) else agg[t]["hi"] - agg[t]["mean"] for t in taus]
            ax.errorbar(
                taus,
                means,
                yerr=half,
                color=pb.color(GRID),
                marker="o",
                capsize=3,
                label="grid: fixed τ (mean ± 95 % CI)",
            )
            chosen = ss[ss["method"] == GRID]["sel_tau_t"].value_counts()
            top = max(m + h for m, h in zip(means, half))
            for t, c in chosen.items():
                ax.plot([t], [top + 0.3], "v", color=pb.color(GRID), markersize=6)
                ax.annotate(
                    f"×{c}",
                    (t, top + 0.3),
                    xytext=(5, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color=pb.color(GRID),
                )
            ax.plot([], [], "v", color=pb.color(GRID), label="τ selected on val (× seeds)")
        for m in method_order(ss["method"]):
            if m in (GRID, BASELINE):
                continue
            r = ss[ss["method"] == m]
            tau = np.sqrt(r["sel_tau_t"].astype(float) * r["sel_tau_s"].astype(float))
            p = stats.paired(r["test"])
            ax.errorbar(
                [tau.mean()],
                [p["mean"]],
                yerr=[0 if not np.isfinite(p["hi"]) else p["hi"] - p["mean"]],
                color=pb.color(m),
                marker=pb.marker(m),
                markersize=9,
                linestyle="none",
                capsize=3,
                label=f"{m} ({'selected' if kind(m) == 'searched' else 'final learned'} τ)",
            )
        nk = ss[ss["method"] == BASELINE]
        if not nk.empty:
            p = stats.paired(nk["test"])
            ax.axhline(p["mean"], color=pb.color(BASELINE), linestyle="--", label="no-KD student (band: 95 % CI)")
            if np.isfinite(p["hi"]):
                ax.axhspan(p["lo"], p["hi"], color=pb.color(BASELINE), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("temperature τ (log scale; √(τ_t·τ_s) for learned pairs)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(ss["setting_label"].iloc[0])
        ax.grid(alpha=0.3)
    pb.finish(plt, fig, axes, path)


def _trajectory_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """The finished runs whose temperatures move: every run of a learned method, and the selected
    trial of a search whose trials change their τ (PBT's member)."""
    sel = select(trials)
    moving = {m for m in set(sel["method"]) if kind(m) == "searched" and moved_temperatures(m, {})} if len(sel) else ()
    chosen = sel.loc[sel["method"].isin(moving), "trial_id"] if len(sel) else []
    return ok(trials[trials["method"].isin(learned(trials["method"])) | trials["trial_id"].isin(chosen)])


def _at(end: float, bounds) -> bool:
    return bounds is not None and bool(np.isclose(end, bounds[0], rtol=1e-4) or np.isclose(end, bounds[1], rtol=1e-4))


def trajectories(trials: pd.DataFrame, curves: pd.DataFrame, path: str) -> bool:
    """One panel per (setting, method): every seed's temperature over epochs (thin) and their mean
    (thick), for each learned method and for the selected trial of a search whose trials change
    their τ (PBT); which temperatures, their colours, clamps and held values come from the method's
    class: the clamp range dotted, a run that ends at a clamp marked ×. The panels share the y-axis."""
    t = _trajectory_rows(trials)
    if t.empty or curves.empty:
        return False
    c = curves.merge(t[["trial_id", "setting", "setting_label", "method", "seed"]], on="trial_id")
    # a method without a single temperature (MLKD logs NaN) has no trajectory to draw
    c = c[c[["tau_t", "tau_s"]].notna().any(axis=1)]
    if c.empty:  # e.g. only the teacher (which has no curve) among the "learned" rows
        return False
    plt = pb.pyplot()
    keys = [(s, m) for s in sorted(c["setting"].unique()) for m in method_order(c[c["setting"] == s]["method"])]
    fig, axes = pb.panels(plt, len(keys), 3.0, 4.2)
    top = float(np.nanmax(c[["tau_t", "tau_s"]].to_numpy(dtype=float))) * 1.08
    for ax, (s, m) in zip(axes, keys):
        g = c[(c["setting"] == s) & (c["method"] == m)]
        raw = t.loc[t["method"] == m, "options"].dropna() if "options" in t else pd.Series(dtype=str)
        options = run_options(raw.iloc[0]) if len(raw) else {}
        cls = temperature_method(m)
        colors = cls.trajectory_colors if cls else None
        bounds = cls.clamps(options) if cls else None
        label = (cls.label if cls else None) or base(m)
        who = label if colors else base(m)  # coloured by temperature: the legend names the method
        for col, name in moved_temperatures(m, options):
            colr = colors[col] if colors else pb.color(m)
            for _, run in g.groupby("seed"):
                run = run.sort_values("epoch")
                ax.plot(run["epoch"], run[col], color=colr, linewidth=0.7, alpha=0.45)
                end = float(run[col].iloc[-1])
                if _at(end, bounds):
                    ax.plot([run["epoch"].iloc[-1]], [end], "x", color="k", markersize=7, label="ends at the clamp")
            mean = g.groupby("epoch")[col].mean()
            ax.plot(mean.index, mean.values, color=colr, linewidth=2, label=f"{who} {name}: mean (thin: each seed)")
        if bounds is not None:
            for v in bounds:
                ax.axhline(v, color="0.4", linestyle=":", linewidth=1, label=f"{label}'s clamp range")
        held = [f"{k} = {v:g} held" for k, v in (cls.held_temperatures(options) if cls else {}).items()]
        title = m + (f" ({held[0]})" if held else "")
        ax.set_ylim(0, top)
        ax.set_xlabel("epoch")
        ax.set_ylabel("temperature")
        ax.set_title(f"{g['setting_label'].iloc[0]}: {title}", fontsize=9)
        ax.grid(alpha=0.3)
    pb.finish(plt, fig, axes, path)
    return True


def optuna_studies(trials: pd.DataFrame):
    """The store's Optuna searches as `optuna.Study` objects (one per setting and seed), so that
    Optuna's own visualisation can draw them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = trials[(trials["method"] == Optuna.name) & trials["status"].isin(["ok", "stopped"])]
    studies = []
    for (setting, seed), g in t.groupby(["setting", "seed"], sort=True):
        search = json.loads(g["options"].iloc[0] or "{}")
        low = min(search.get("low", g["tau_t_config"].min()), g[["tau_t_config", "tau_s_config"]].min().min())
        high = max(search.get("high", g["tau_t_config"].max()), g[["tau_t_config", "tau_s_config"]].max().max())
        dist = optuna.distributions.FloatDistribution(low, high, log=True)
        names = ["tau_t", "tau_s"] if search.get("separate") else ["tau"]
        st = optuna.create_study(direction="maximize", study_name=f"{g['setting_label'].iloc[0]} seed {int(seed)}")
        for _, r in g.sort_values(["trial_index", "trial_id"]).iterrows():
            params = (
                {"tau": r["tau_t_config"]}
                if names == ["tau"]
                else {"tau_t": r["tau_t_config"], "tau_s": r["tau_s_config"]}
            )
            st.add_trial(
                optuna.trial.create_trial(
                    params=params, distributions={k: dist for k in params}, value=float(r["val_acc"])
                )
            )
        studies.append(st)
    return studies


def optuna_history(trials: pd.DataFrame, path: str) -> bool:
    """Optuna's own optimisation-history plot of every search in the store."""
    studies = optuna_studies(trials)
    if not studies:
        return False
    plt = pb.pyplot()
    from optuna.visualization.matplotlib import plot_optimization_history

    # Optuna switches the global style to ggplot; rc_context puts it back for the other plots.
    with plt.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib backend experimental
        ax = plot_optimization_history(studies, target_name="val accuracy")
        fig = ax.figure
        fig.set_size_inches(10, 4.2)
        ax.set_title("Optuna (TPE) searches: val accuracy per trial and best so far\n(drawn by optuna.visualization)")
        ax.set_xlabel("trial number within the search")
        ax.set_ylabel("val accuracy (fraction)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return True
