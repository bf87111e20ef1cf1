"""The report's plots of verdicts: the forest plot of paired differences, the posterior
probabilities, the critical-difference diagram of the ranks and the transfer heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import plot_base as pb


def forest(rows: pd.DataFrame, margin: float, path: str) -> bool:
    """Per setting: each comparison's paired difference (mean, 95 % CI) with the ±margin band and
    its verdict; the panels share their x-limits (set alike), so that widths compare across settings."""
    if rows.empty:
        return False
    plt = pb.pyplot()
    settings = sorted(rows["setting"].unique())
    n_max = max(len(rows[rows["setting"] == s]) for s in settings)
    fig, axes = pb.panels(plt, len(settings), 0.42 * n_max + 2.2, 5.2)
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
            c = pb.VERDICT_COLORS.get(r["verdict"], "k")
            if np.isfinite(lo) and np.isfinite(hi):
                ax.plot([lo, hi], [yi, yi], color=c, linewidth=2)
            ax.plot([r["mean"]], [yi], "o", color=c, label=f"verdict: {r['verdict']}")
        ax.set_xlim(-span, span)
        ax.set_yticks(y, [f"{r['method']} − {r['reference']}: {r['verdict']}" for _, r in g.iterrows()])
        ax.set_xlabel("Δ test accuracy (points): mean, 95 % CI")
        ax.set_title(g["setting_label"].iloc[0])
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    pb.finish(plt, fig, axes, path)
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
    plt = pb.pyplot()
    settings = sorted(rows["setting"].unique())
    n_max = max(len(rows[rows["setting"] == s]) for s in settings)
    fig, axes = pb.panels(plt, len(settings), 0.36 * n_max + 2.2, 5.6)
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
    pb.finish(plt, fig, axes, path)
    return True


def cd_diagram(avg: pd.DataFrame, pairs: pd.DataFrame, n_blocks: int, path: str) -> None:
    """Critical-difference diagram (scikit-posthocs' `critical_difference_diagram`): average ranks
    on a line; methods whose pairwise Wilcoxon–Holm p >= 0.05 are joined by a bar. Exploratory."""
    plt = pb.pyplot()
    import scikit_posthocs as sp

    k = len(avg)
    ranks = avg.set_index("method")["avg_rank"]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.3 * k))
    sp.critical_difference_diagram(
        ranks,
        pairs.loc[ranks.index, ranks.index],
        ax=ax,
        alpha=0.05,
        color_palette={m: pb.color(m) for m in ranks.index},
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
    pb.save(plt, fig, path)


def num(x: float) -> str:
    """One decimal, never "-0.0"."""
    return f"{round(float(x), 1) + 0.0:.1f}"


def transfer_heatmap(tm: pd.DataFrame, margin: float, path: str, floors: pd.DataFrame | None = None) -> bool:
    """Mean regret of A's temperature on B (points). The colour scale is symmetric and set by the
    75th percentile of |regret| (at least 2 x margin), so one outlier does not wash out the rest;
    cells beyond it take the end colour and show their value. The diagonal is not coloured; it
    prints B's floor (`floors`: the stability table) when given."""
    if tm.empty:
        return False
    plt = pb.pyplot()
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
        ci = f"\n[{num(lo)}, {num(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
        txt = f"{num(r['mean'])}{ci}\n{r['verdict']}"
        dark = r["verdict"] != "inconclusive" and abs(r["mean"]) > 0.6 * vmax
        ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    fl = {} if floors is None or floors.empty else floors.set_index("setting_label")
    for i, s in enumerate(srcs):
        txt = "(own)"
        if len(fl) and s in fl.index:
            f = fl.loc[s]
            ci = f"\n[{num(f['floor_lo'])}, {num(f['floor_hi'])}]" if np.isfinite(f["floor_lo"]) else ""
            txt = f"floor {num(f['floor'])}{ci}"
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
    pb.save(plt, fig, path)
    return True
