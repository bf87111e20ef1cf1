"""The report's plots, each drawn from the tables the other modules compute. Same tables, same
bytes: no dates or software versions in the PNG metadata."""

from __future__ import annotations

import json
import math
import warnings
from typing import Dict, List

import numpy as np
import pandas as pd

from .. import methods as methods_mod
from . import stats
from .selection import base, grid_curve, labels, learned, method_order, ok, select


def color(m: str):
    """The method's colour (from its class); variants ("mkd:from16") and methods without one get
    their own, stable, from tab20."""
    c = methods_mod.info(m)["color"]
    if c is not None:
        return c
    import zlib

    import matplotlib

    return matplotlib.colormaps["tab20"](zlib.crc32(m.encode()) % 20)


def marker(m: str) -> str:
    return methods_mod.info(m)["marker"]


VERDICT_COLORS = {"better": "C2", "worse": "C3", "equivalent": "C0", "inconclusive": "0.5"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "hpo_kd"})
    return plt


COLUMNS = 3  # panels per row: more settings wrap onto further rows


def _panels(plt, n: int, height: float = 3.8, width: float = 4.6, **kw):
    """n panels, one per setting, at most COLUMNS to a row; (figure, the n axes in order)."""
    cols = min(n, COLUMNS)
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kw)
    axes = list(grid.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def _legend_below(fig, axes) -> None:
    """One legend for the figure, under the panels, so that no marker or error bar is hidden."""
    handles, names = {}, []
    for ax in np.ravel(axes):
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in handles:
                handles[n] = h
                names.append(n)
    if names:
        ncol = max(1, min(len(names), int(fig.get_size_inches()[0] / 2.4)))
        fig.legend([handles[n] for n in names], names, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.03 + 0.045 * math.ceil(len(names) / ncol), 1, 1))


def _finish(plt, fig, axes, path):
    _legend_below(fig, axes)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def accuracy_vs_cost(summary: pd.DataFrame, path: str) -> None:
    """Per setting: test accuracy (mean and 95 % CI over seeds) against cost in epochs per seed;
    the Pareto front (no method cheaper and at least as accurate) is joined by a line. Methods of
    the same cost are spread sideways (a multiplicative jitter, drawn with a tick at the true cost)
    and each point is labelled, so that one-run methods do not hide one another."""
    plt = _plt()
    settings = sorted(summary["setting"].unique())
    fig, axes = _panels(plt, len(settings), 4.6)
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
                color=color(m),
                marker=marker(m),
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
                    color=color(m),
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
        ticks = sorted(g["epochs_per_seed"].round(6).unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # the costs themselves, not powers of ten
        ax.set_xticks([], minor=True)
        ax.set_xlabel("cost: epochs per seed (log scale)\nequal costs: spread sideways around the dotted line")
        ax.margins(y=0.25)
        ax.set_ylabel("test accuracy (%), mean ± 95 % CI")
        ax.set_title(g["setting_label"].iloc[0])
        ax.grid(alpha=0.3, which="both")
    _finish(plt, fig, axes, path)


def _incumbent_regret(h: pd.DataFrame, oracle: float, rng: float) -> np.ndarray:
    """Normalised regret of the val-selected trial after each trial of a search (in order)."""
    out, best_val, best_test = [], -math.inf, None
    for _, r in h.iterrows():
        if r["val_acc"] > best_val:  # ties keep the earlier trial
            best_val, best_test = r["val_acc"], r["test_acc"] * 100
        out.append((oracle - best_test) / rng if rng > 0 else 0.0)
    return np.array(out)


def regret_vs_budget(trials: pd.DataFrame, sel: pd.DataFrame, path: str) -> bool:
    """Per setting: the normalised test regret of each method's val-selected trial against the
    budget spent (epochs), mean and 95 % CI band over seeds. Per seed, regret is normalised by the
    grid's range: (best grid temperature - method) / (best - worst grid temperature). Searches are
    drawn trial by trial (the grid in ascending temperature, Optuna in the order it sampled);
    single-trial methods are one point."""
    good = ok(trials)
    settings = sorted(good.loc[good["method"] == "grid", "setting"].unique())
    if not settings:
        return False
    plt = _plt()
    lab = labels(trials)
    fig, axes = _panels(plt, len(settings), 4.2)
    for ax, s in zip(axes, settings):
        grid = grid_curve(trials, s)
        ref = {
            seed: ((g["test_acc"].max() * 100), (g["test_acc"].max() - g["test_acc"].min()) * 100)
            for seed, g in grid.groupby("seed")
        }
        for m in method_order(good.loc[good["setting"] == s, "method"]):
            runs = good[(good["setting"] == s) & (good["method"] == m)]
            if m in ("grid", "optuna", "pbt"):
                order = ["tau_t_config", "tau_s_config"] if m == "grid" else ["trial_index", "trial_id"]
                curves = [np.cumsum(h.sort_values(order)["epochs_run"].to_numpy()) for _, h in runs.groupby("seed")]
                regs = [
                    _incumbent_regret(h.sort_values(order), *ref[seed])
                    for seed, h in runs.groupby("seed")
                    if seed in ref
                ]
                if not regs:
                    continue
                k = min(len(r) for r in regs)
                R = np.array([r[:k] for r in regs])
                x = np.array([c[:k] for c in curves]).mean(axis=0)
                mean = R.mean(axis=0)
                half = np.array([stats.paired(R[:, i])["hi"] - mean[i] if len(R) > 1 else 0 for i in range(k)])
                ax.step(x, mean, where="post", color=color(m), label=m, marker=marker(m), markersize=4)
                ax.fill_between(x, mean - half, mean + half, step="post", color=color(m), alpha=0.15)
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
                    color=color(m),
                    marker=marker(m),
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
    _finish(plt, fig, axes, path)
    return True


def forest(rows: pd.DataFrame, margin: float, path: str) -> bool:
    """Per setting: each comparison's paired difference (mean, 95 % CI) with the ±margin band and
    its verdict; the panels share their x-limits (set alike), so that widths compare across settings."""
    if rows.empty:
        return False
    plt = _plt()
    settings = sorted(rows["setting"].unique())
    n_max = max(len(rows[rows["setting"] == s]) for s in settings)
    fig, axes = _panels(plt, len(settings), 0.42 * n_max + 2.2, 5.2)
    finite = np.concatenate(
        [rows["lo"][np.isfinite(rows["lo"])], rows["hi"][np.isfinite(rows["hi"])], [-margin, margin]]
    )
    span = max(abs(finite.min()), abs(finite.max())) * 1.1
    for ax, s in zip(axes, settings):
        g = rows[rows["setting"] == s].reset_index(drop=True)
        y = n_max - 1 - np.arange(len(g))  # from the top, the same row height in every panel
        ax.set_ylim(-0.6, n_max - 0.4)
        ax.axvspan(-margin, margin, color="C0", alpha=0.12, label=f"±{margin:g} points: the margin")
        ax.axvline(0, color="k", linewidth=0.8)
        for yi, (_, r) in zip(y, g.iterrows()):
            lo, hi = r["lo"], r["hi"]
            c = VERDICT_COLORS.get(r["verdict"], "k")
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color=c, linewidth=2)
            ax.plot([r["mean"]], [yi], "o", color=c, label=f"verdict: {r['verdict']}")
        ax.set_xlim(-span, span)
        ax.set_yticks(y, [f"{r['method']} − {r['reference']}: {r['verdict']}" for _, r in g.iterrows()])
        ax.set_xlabel("Δ test accuracy (points): mean, 95 % CI")
        ax.set_title(g["setting_label"].iloc[0])
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    _finish(plt, fig, axes, path)
    return True


POSTERIOR_COLORS = (
    ("p_below", "C3", "P(Δ < −margin)"),
    ("p_inside", "C0", "P(−margin ≤ Δ ≤ +margin)"),
    ("p_above", "C2", "P(Δ > +margin)"),
)


def posterior(rows: pd.DataFrame, margin: float, path: str, title: str = "") -> bool:
    """Per setting: one stacked horizontal bar per comparison, the posterior probabilities (Bayesian
    correlated t-test, ρ = 0) that the mean difference lies below −margin, inside ±margin, above
    +margin; the verdict beside each bar."""
    rows = rows[rows["p_inside"].notna()] if not rows.empty else rows
    if rows.empty:
        return False
    plt = _plt()
    settings = sorted(rows["setting"].unique())
    n_max = max(len(rows[rows["setting"] == s]) for s in settings)
    fig, axes = _panels(plt, len(settings), 0.36 * n_max + 2.2, 5.6)
    for ax, s in zip(axes, settings):
        g = rows[rows["setting"] == s].reset_index(drop=True)
        y = n_max - 1 - np.arange(len(g))  # from the top, the same row height in every panel
        ax.set_ylim(-0.6, n_max - 0.4)
        left = np.zeros(len(g))
        for col, c, name in POSTERIOR_COLORS:
            v = g[col].to_numpy(float)
            ax.barh(y, v, left=left, color=c, alpha=0.75, height=0.7, label=name)
            left += v
        for yi, (_, r) in zip(y, g.iterrows()):
            ax.text(1.02, yi, r["verdict"], va="center", fontsize=7, transform=ax.get_yaxis_transform())
        ax.set_xlim(0, 1)
        ax.set_yticks(y, [f"{r['method']} − {r['reference']}" for _, r in g.iterrows()])
        ax.set_xlabel(f"posterior probability (margin ±{margin:g} points)")
        ax.set_title(g["setting_label"].iloc[0])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _finish(plt, fig, axes, path)
    return True


def cd_diagram(avg: pd.DataFrame, pairs: pd.DataFrame, n_blocks: int, path: str) -> None:
    """Critical-difference diagram (scikit-posthocs' `critical_difference_diagram`): average ranks
    on a line; methods whose pairwise Wilcoxon–Holm p >= 0.05 are joined by a bar. Exploratory."""
    plt = _plt()
    import scikit_posthocs as sp

    k = len(avg)
    ranks = avg.set_index("method")["avg_rank"]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * k))
    sp.critical_difference_diagram(
        ranks,
        pairs.loc[ranks.index, ranks.index],
        ax=ax,
        alpha=0.05,
        color_palette={m: color(m) for m in ranks.index},
        label_fmt_left="{label} ({rank:.2f})",
        label_fmt_right="({rank:.2f}) {label}",
        label_props={"fontsize": 8},
    )
    # scikit-posthocs draws each bar through a set of methods, in the set's (hash) order: the same
    # bar, but other bytes in each process. Points in rank order make the file repeatable.
    for line in ax.get_lines():
        x, y = (np.asarray(v, dtype=float) for v in line.get_data())
        if len(x) > 1 and np.all(y == y[0]):
            line.set_data(np.sort(x), y)
    ax.set_title(
        f"Average rank over {n_blocks} (setting, seed) blocks (1 = best), exploratory;\n"
        "bars join methods not different at pairwise Wilcoxon–Holm p < 0.05",
        fontsize=8,
        pad=22,
    )
    _save(plt, fig, path)


def _num(x: float) -> str:
    """One decimal, never "-0.0"."""
    return f"{round(float(x), 1) + 0.0:.1f}"


def transfer_heatmap(tm: pd.DataFrame, margin: float, path: str, floors: pd.DataFrame | None = None) -> bool:
    """Mean regret of A's temperature on B (points). The colour scale is symmetric and set by the
    75th percentile of |regret| (at least 2 x margin), so one outlier does not wash out the rest;
    cells beyond it take the end colour and show their value. The diagonal is not coloured; it
    prints B's floor (`floors`: the stability table) when given."""
    if tm.empty:
        return False
    plt = _plt()
    srcs = sorted(set(tm["source"]) | set(tm["target"]))
    M = np.full((len(srcs), len(srcs)), np.nan)
    for _, r in tm.iterrows():
        if r["verdict"] != "inconclusive":  # only decided cells take a colour; the rest stay neutral grey
            M[srcs.index(r["source"]), srcs.index(r["target"])] = r["mean"]
    finite = np.abs(tm["mean"].to_numpy(float))
    finite = finite[np.isfinite(finite)]
    vmax = max(2 * margin, float(np.quantile(finite, 0.75)) if len(finite) else 0.0)
    fig, ax = plt.subplots(figsize=(1.7 * len(srcs) + 4.0, 0.9 * len(srcs) + 2.6))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.9")
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
    for i in range(len(srcs)):  # the diagonal: lighter than an inconclusive cell
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, color="white", zorder=1))
    for _, r in tm.iterrows():
        i, j = srcs.index(r["source"]), srcs.index(r["target"])
        if r["verdict"] == "inconclusive":
            ax.add_patch(
                plt.Rectangle(
                    (j - 0.5, i - 0.5), 1, 1, facecolor="none", edgecolor="0.7", hatch="///", linewidth=0, zorder=1
                )
            )
        lo, hi = r["lo"], r["hi"]
        ci = f"\n[{_num(lo)}, {_num(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
        txt = f"{_num(r['mean'])}{ci}\n{r['verdict']}"
        dark = r["verdict"] != "inconclusive" and abs(r["mean"]) > 0.6 * vmax
        ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fl = {} if floors is None or floors.empty else floors.set_index("setting_label")
    for i, s in enumerate(srcs):
        txt = "(own)"
        if len(fl) and s in fl.index:
            f = fl.loc[s]
            ci = f"\n[{_num(f['floor_lo'])}, {_num(f['floor_hi'])}]" if np.isfinite(f["floor_lo"]) else ""
            txt = f"floor {_num(f['floor'])}{ci}"
        ax.text(i, i, txt, ha="center", va="center", fontsize=7, color="0.4")
    ax.set_xticks(range(len(srcs)), srcs, rotation=20, ha="right")
    ax.set_yticks(range(len(srcs)), srcs)
    ax.set_xlabel(
        "target setting B (where the temperature is used)\n"
        "grey, hatched: inconclusive (no colour); diagonal: B's floor, the regret of another seed's τ on B"
    )
    ax.set_ylabel("source setting A (where τ was selected on val)")
    ax.set_title(
        "Transfer regret: accuracy at B's own selected τ minus at A's τ, on B (test points;\n"
        "mean, 95 % CI over seeds, Holm-corrected verdict; inconclusive cells grey, hatched)"
    )
    fig.colorbar(im, ax=ax, extend="both", label=f"regret (points; scale clipped at ±{vmax:.1f})")
    _save(plt, fig, path)
    return True


def temperature(sel: pd.DataFrame, trials: pd.DataFrame, path: str) -> None:
    """Test accuracy against temperature: the grid (mean and 95 % CI per τ), the τ the grid
    selected on val per seed (triangles), learned methods at their final τ, and no-KD."""
    plt = _plt()
    settings = sorted(sel["setting"].unique())
    fig, axes = _panels(plt, len(settings), 4.2)
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
                color=color("grid"),
                marker="o",
                capsize=3,
                label="grid: fixed τ (mean ± 95 % CI)",
            )
            chosen = ss[ss["method"] == "grid"]["sel_tau_t"].value_counts()
            top = max(m + h for m, h in zip(means, half))
            for t, c in chosen.items():
                ax.plot([t], [top + 0.3], "v", color=color("grid"), markersize=6)
                ax.annotate(
                    f"×{c}",
                    (t, top + 0.3),
                    xytext=(5, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color=color("grid"),
                )
            ax.plot([], [], "v", color=color("grid"), label="τ selected on val (× seeds)")
        for m in method_order(ss["method"]):
            if m in ("grid", "nokd"):
                continue
            r = ss[ss["method"] == m]
            tau = np.sqrt(r["sel_tau_t"].astype(float) * r["sel_tau_s"].astype(float))
            p = stats.paired(r["test"])
            ax.errorbar(
                [tau.mean()],
                [p["mean"]],
                yerr=[0 if not np.isfinite(p["hi"]) else p["hi"] - p["mean"]],
                color=color(m),
                marker=marker(m),
                markersize=9,
                linestyle="none",
                capsize=3,
                label=f"{m} ({'selected' if m in ('optuna', 'pbt') else 'final learned'} τ)",
            )
        nk = ss[ss["method"] == "nokd"]
        if not nk.empty:
            p = stats.paired(nk["test"])
            ax.axhline(p["mean"], color=color("nokd"), linestyle="--", label="no-KD student (band: 95 % CI)")
            if np.isfinite(p["hi"]):
                ax.axhspan(p["lo"], p["hi"], color=color("nokd"), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("temperature τ (log scale; √(τ_t·τ_s) for learned pairs)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(ss["setting_label"].iloc[0])
        ax.grid(alpha=0.3)
    _finish(plt, fig, axes, path)


TAU_COLORS = {"tau_t": "C0", "tau_s": "C1"}


def _moved(m: str, options: Dict) -> List[tuple]:
    """(curve column, name) of the temperatures method m moves over epochs."""
    if base(m) == "pbt":
        return [("tau_t", "τ of the selected member")]
    if base(m) == "lskd":
        return [("tau_t", "mean per-sample τ_t")]
    if base(m) != "mkd":
        return [("tau_t", "T")]
    learn = options.get("learn", "both")
    return [(col, "τ_" + col[-1]) for col in ("tau_t", "tau_s") if learn in ("both", col)]


def trajectories(trials: pd.DataFrame, curves: pd.DataFrame, path: str) -> bool:
    """One panel per (setting, method): every seed's temperature over epochs (thin) and their mean
    (thick), for each learned method and for PBT's selected member; MKD's clamp range dotted, a
    run that ends at a clamp marked ×. The panels share the y-axis."""
    sel = select(trials)
    chosen = sel.loc[sel["method"].map(base) == "pbt", "trial_id"] if not sel.empty else []
    t = ok(trials[trials["method"].isin(learned(trials["method"])) | trials["trial_id"].isin(chosen)])
    if t.empty or curves.empty:
        return False
    c = curves.merge(t[["trial_id", "setting", "setting_label", "method", "seed"]], on="trial_id")
    # a method without a single temperature (MLKD logs NaN) has no trajectory to draw
    c = c[c[["tau_t", "tau_s"]].notna().any(axis=1)]
    if c.empty:  # e.g. only the teacher (which has no curve) among the "learned" rows
        return False
    plt = _plt()
    keys = [(s, m) for s in sorted(c["setting"].unique()) for m in method_order(c[c["setting"] == s]["method"])]
    fig, axes = _panels(plt, len(keys), 3.0, 4.2)
    top = float(np.nanmax(c[["tau_t", "tau_s"]].to_numpy(dtype=float))) * 1.08
    for ax, (s, m) in zip(axes, keys):
        g = c[(c["setting"] == s) & (c["method"] == m)]
        raw = t.loc[t["method"] == m, "options"].dropna() if "options" in t else pd.Series(dtype=str)
        options = json.loads(raw.iloc[0]) if len(raw) and isinstance(raw.iloc[0], str) else {}
        lo, hi = options.get("tau_min", 0.5), options.get("tau_max", 20.0)
        for col, name in _moved(m, options):
            colr = TAU_COLORS[col] if base(m) == "mkd" else color(m)
            for _, run in g.groupby("seed"):
                run = run.sort_values("epoch")
                ax.plot(run["epoch"], run[col], color=colr, linewidth=0.7, alpha=0.45)
                end = float(run[col].iloc[-1])
                if base(m) == "mkd" and (np.isclose(end, lo, rtol=1e-4) or np.isclose(end, hi, rtol=1e-4)):
                    ax.plot([run["epoch"].iloc[-1]], [end], "x", color="k", markersize=7, label="ends at the clamp")
            mean = g.groupby("epoch")[col].mean()
            who = f"MKD {name}" if base(m) == "mkd" else f"{base(m)} {name}"
            ax.plot(mean.index, mean.values, color=colr, linewidth=2, label=f"{who}: mean (thin: each seed)")
        if base(m) == "mkd":
            for v in (lo, hi):
                ax.axhline(v, color="0.4", linestyle=":", linewidth=1, label="MKD's clamp range")
            learn = options.get("learn", "both")
            held = [f"{k} = {options.get(k, 4):g} held" for k in ("tau_t", "tau_s") if learn not in ("both", k)]
            m = m + (f" ({held[0]})" if held else "")
        ax.set_ylim(0, top)
        ax.set_xlabel("epoch")
        ax.set_ylabel("temperature")
        ax.set_title(f"{g['setting_label'].iloc[0]}: {m}", fontsize=9)
        ax.grid(alpha=0.3)
    _finish(plt, fig, axes, path)
    return True


def optuna_studies(trials: pd.DataFrame):
    """The store's Optuna searches as `optuna.Study` objects (one per setting and seed), so that
    Optuna's own visualisation can draw them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t = trials[(trials["method"] == "optuna") & trials["status"].isin(["ok", "stopped"])]
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
    plt = _plt()
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


def all_plots(ctx: Dict, out: str) -> List[str]:
    """Draw every plot that the report has data for; returns the file names drawn."""
    import os

    drawn = []

    def p(name):
        drawn.append(name)
        return os.path.join(out, name)

    accuracy_vs_cost(ctx["summary"], p("accuracy_cost.png"))
    if not regret_vs_budget(ctx["trials"], ctx["sel"], p("regret_budget.png")):
        drawn.pop()
    if not forest(ctx["comparisons"], ctx["margin"], p("forest.png")):
        drawn.pop()
    if not posterior(
        ctx["comparisons"],
        ctx["margin"],
        p("posterior.png"),
        "Posterior of the mean difference (Bayesian correlated t-test, ρ = 0), method − reference",
    ):
        drawn.pop()
    if ctx["friedman"] is not None and ctx["friedman"]["n"] >= 5:
        cd_diagram(ctx["ranks"], ctx["friedman"]["pairs"], ctx["friedman"]["n"], p("cd_diagram.png"))
    temperature(ctx["sel"], ctx["trials"], p("temperature.png"))
    if not trajectories(ctx["trials"], ctx["curves"], p("trajectories.png")):
        drawn.pop()
    if not optuna_history(ctx["trials"], p("optuna.png")):
        drawn.pop()
    if not transfer_heatmap(ctx["transfer"], ctx["margin"], p("transfer.png"), ctx.get("stability")):
        drawn.pop()
    return drawn
