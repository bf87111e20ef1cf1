"""Turn a results store into `reports/<study>/report.md` with CSV tables and PNG plots.

Every number comes from the store. Selection is on validation accuracy (final epoch), the
reported number is the test accuracy of the selected trial. Re-running on the same store gives
the same files.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from .errors import UserError
from .store import Store

SEARCHED = ("grid", "optuna")
METHOD_ORDER = ["grid", "optuna", "mkd", "dts", "ctkd", "nokd"]
LEARNED = ("mkd", "dts", "ctkd")


# ---------------------------------------------------------------------- selection


def _ok(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["status"] == "ok"].copy()


def select(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (setting, method, seed): the trial a researcher would report.

    Searched methods pick the trial with the best val accuracy (ties: the lower temperature,
    then the trial id); other methods have one trial. Cost columns sum every trial of the unit,
    finished in any status, since all of them were paid for."""
    t = trials[trials["method"] != "teacher"]
    ok = _ok(t)
    if ok.empty:
        return pd.DataFrame()
    ok = ok.sort_values(["setting", "method", "seed", "val_acc", "tau_t_config", "trial_id"],
                        ascending=[True, True, True, False, True, True])
    best = ok.groupby(["setting", "method", "seed"], sort=True).head(1).copy()
    cost = (
        t.groupby(["setting", "method", "seed"], sort=True)
        .agg(cost_trials=("trial_id", "count"), cost_epochs=("epochs_run", "sum"),
             cost_seconds=("seconds", "sum"))
        .reset_index()
    )
    best = best.merge(cost, on=["setting", "method", "seed"], how="left")
    searched = best["method"].isin(SEARCHED)
    best["sel_tau_t"] = np.where(searched, best["tau_t_config"], best["tau_t"])
    best["sel_tau_s"] = np.where(searched, best["tau_s_config"], best["tau_s"])
    return best.sort_values(["setting", "method", "seed"]).reset_index(drop=True)


def _ci95(x: np.ndarray) -> float:
    from scipy import stats

    n = len(x)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))


def _fmt_tau(ts: List[float], tt: Optional[List[float]] = None) -> str:
    def f(v):
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"

    if tt is None or all(a == b for a, b in zip(ts, tt)):
        return ", ".join(f(v) for v in ts)
    return ", ".join(f"{f(a)}/{f(b)}" for a, b in zip(ts, tt))


def comparison(sel: pd.DataFrame, trials: pd.DataFrame) -> pd.DataFrame:
    """Per setting and method: selected temperatures, test mean/std/CI, val, delta vs no-KD, cost, rank."""
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        nokd = g[g["method"] == "nokd"]["test_acc"].to_numpy()
        nokd_mean = nokd.mean() if len(nokd) else float("nan")
        label = g["setting_label"].iloc[0]
        for method, m in g.groupby("method", sort=False):
            test = m["test_acc"].to_numpy() * 100
            rows.append({
                "setting": setting,
                "setting_label": label,
                "method": method,
                "seeds": len(m),
                "tau": "–" if method == "nokd" else _fmt_tau(list(m["sel_tau_t"]), list(m["sel_tau_s"])),
                "test_mean": test.mean(),
                "test_std": test.std(ddof=1) if len(test) > 1 else float("nan"),
                "test_ci95": _ci95(test),
                "val_mean": m["val_acc"].mean() * 100,
                "delta_vs_nokd": round(test.mean() - nokd_mean * 100, 9) + 0.0,  # no "-0.00"
                "trials_per_seed": m["cost_trials"].mean(),
                "epochs_per_seed": m["cost_epochs"].mean(),
                "seconds_per_seed": m["cost_seconds"].mean(),
            })
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["rank"] = df.groupby("setting")["test_mean"].rank(ascending=False, method="min").astype(int)
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    df["_o"] = df["method"].map(lambda m: order.get(m, 99))
    return df.sort_values(["setting", "_o"]).drop(columns="_o").reset_index(drop=True)


def teachers(trials: pd.DataFrame) -> pd.DataFrame:
    t = _ok(trials[trials["method"] == "teacher"])
    return t[["setting_label", "dataset", "augment", "fraction", "teacher", "val_acc", "test_acc"]].drop_duplicates(
        "setting_label").sort_values("setting_label").reset_index(drop=True)


def average_rank(comp: pd.DataFrame) -> pd.DataFrame:
    return (comp.groupby("method")["rank"].agg(["mean", "count"]).rename(columns={"mean": "avg_rank", "count": "settings"})
            .sort_values(["avg_rank"]).reset_index())


def paired(sel: pd.DataFrame, a: str = "mkd", b: str = "grid") -> Optional[Dict[str, float]]:
    """Method a vs method b's selected configuration, paired by setting and seed."""
    x = sel[sel["method"] == a].set_index(["setting", "seed"])
    y = sel[sel["method"] == b].set_index(["setting", "seed"])
    idx = x.index.intersection(y.index)
    if len(idx) == 0:
        return None
    d = (x.loc[idx, "test_acc"] - y.loc[idx, "test_acc"]).to_numpy() * 100
    cost = (x.loc[idx, "cost_seconds"].sum() / y.loc[idx, "cost_seconds"].sum())
    p = float("nan")
    if len(d) >= 2 and np.any(d != 0):
        from scipy import stats

        p = float(stats.wilcoxon(d).pvalue)
    return {"n": len(d), "mean": float(d.mean()), "std": float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
            "p": p, "cost_ratio": float(cost), "a": a, "b": b}


def paired_sentence(r: Dict[str, float]) -> str:
    names = {"mkd": "MKD", "grid": "the best grid temperature", "dts": "DTS", "ctkd": "CTKD", "optuna": "Optuna"}
    a, b = names.get(r["a"], r["a"]), names.get(r["b"], r["b"])
    side = "above" if r["mean"] > 0 else "below"
    ratio = r["cost_ratio"]
    cost = f"1/{1 / ratio:.1f} of its cost" if ratio < 1 else f"{ratio:.1f}× its cost"
    std = "" if math.isnan(r["std"]) else f" ± {r['std']:.1f}"
    p = "p not defined (all differences zero or one pair)" if math.isnan(r["p"]) else f"Wilcoxon signed-rank p = {r['p']:.3g}"
    return (f"{a} is {abs(r['mean']):.1f}{std} points {side} {b} at {cost} "
            f"({r['n']} setting×seed pairs; {p}).")


# ---------------------------------------------------------------------- transfer


def _setting_labels(trials: pd.DataFrame) -> Dict[str, str]:
    return dict(zip(trials["setting"], trials["setting_label"]))


def transfer_cells(trials: pd.DataFrame, source: str, target: str):
    """Per seed: tau selected on `source` by val (grid), its test acc on `target`, target's own.

    Returns (rows, missing) where missing lists (seed, tau_t, tau_s) runs absent on target."""
    ok = _ok(trials)
    grid = ok[ok["method"] == "grid"]
    src = grid[grid["setting"] == source]
    tgt_own = grid[grid["setting"] == target]
    tgt_any = ok[(ok["setting"] == target) & ok["method"].isin(["grid", "transfer"])]
    rows, missing = [], []
    for seed, g in src.groupby("seed", sort=True):
        best_src = g.sort_values(["val_acc", "tau_t_config"], ascending=[False, True]).iloc[0]
        own = tgt_own[tgt_own["seed"] == seed]
        if own.empty:
            continue
        best_own = own.sort_values(["val_acc", "tau_t_config"], ascending=[False, True]).iloc[0]
        tt, ts = best_src["tau_t_config"], best_src["tau_s_config"]
        hit = tgt_any[(tgt_any["seed"] == seed) & np.isclose(tgt_any["tau_t_config"], tt)
                      & np.isclose(tgt_any["tau_s_config"], ts)]
        if hit.empty:
            missing.append((int(seed), float(tt), float(ts)))
            continue
        rows.append({"seed": int(seed), "tau_t": tt, "tau_s": ts, "transferred": hit["test_acc"].iloc[0] * 100,
                     "own_tau_t": best_own["tau_t_config"], "own_tau_s": best_own["tau_s_config"],
                     "own": best_own["test_acc"] * 100})
    return rows, missing


def transfer_matrix(trials: pd.DataFrame) -> pd.DataFrame:
    """Regret (target's own selected test acc minus the transferred one), mean and std over seeds.

    Includes an `MKD` source row: MKD's own run on each target, against the target's selection."""
    labels = _setting_labels(trials)
    grid_settings = sorted(trials.loc[trials["method"] == "grid", "setting"].unique())
    out = []
    for a in grid_settings:
        for b in grid_settings:
            rows, missing = transfer_cells(trials, a, b)
            own = [r["own"] for r in rows]
            regret = np.array([r["own"] - r["transferred"] for r in rows])
            out.append(_cell(labels[a], labels[b], a, b, regret, own, len(missing),
                             _fmt_tau([r["tau_t"] for r in rows], [r["tau_s"] for r in rows])))
    sel = select(trials)
    for b in grid_settings:
        g = sel[(sel["setting"] == b)]
        mk = g[g["method"] == "mkd"].set_index("seed")
        gr = g[g["method"] == "grid"].set_index("seed")
        seeds = mk.index.intersection(gr.index)
        if len(seeds):
            regret = (gr.loc[seeds, "test_acc"] - mk.loc[seeds, "test_acc"]).to_numpy() * 100
            out.append(_cell("MKD (own run)", labels[b], "mkd", b, regret,
                             list(gr.loc[seeds, "test_acc"] * 100), 0, "learned"))
    return pd.DataFrame(out)


def _cell(src_label, tgt_label, a, b, regret, own, n_missing, taus):
    spread = float(np.std(own, ddof=1)) if len(own) > 1 else float("nan")
    mean = float(regret.mean()) if len(regret) else float("nan")
    std = float(regret.std(ddof=1)) if len(regret) > 1 else float("nan")
    verdict = "—"
    if len(regret):
        if a == "mkd":
            verdict = "no transfer needed (own run)"
        elif a == b:
            verdict = "own"
        elif not math.isnan(spread) and mean > 2 * spread:
            verdict = "does not transfer"
        else:
            verdict = "transfers"
    return {"source": src_label, "target": tgt_label, "source_id": a, "target_id": b, "taus": taus,
            "regret_mean": mean, "regret_std": std, "target_seed_spread": spread, "seeds": len(regret),
            "missing": n_missing, "verdict": verdict}


def missing_transfer_trials(trials: pd.DataFrame, source: str, target: str):
    return transfer_cells(trials, source, target)[1]


def resolve_setting(trials: pd.DataFrame, name: str) -> str:
    """A setting given by its id, its label, or a data set name that names exactly one setting."""
    t = trials[trials["method"] != "teacher"]
    ids = sorted(t["setting"].unique())
    labels = _setting_labels(t)
    if name in ids:
        return name
    by_label = [i for i in ids if labels[i] == name]
    by_dataset = [i for i in ids if i.split("|")[0] == name]
    for cands in (by_label, by_dataset):
        if len(cands) == 1:
            return cands[0]
    allowed = ", ".join(sorted(set(labels[i] for i in ids)))
    raise UserError(f"setting {name!r} is not in this study (or is ambiguous); allowed: {allowed}")


# ---------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "hpo_kd"})
    return plt


def _panels(plt, n: int):
    """One row of n panels, one per setting."""
    return plt.subplots(1, n, figsize=(4.6 * n, 3.8), squeeze=False)


def _save(plt, fig, path: str) -> None:
    # No software/date metadata, so the same store gives byte-identical PNGs.
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


MARKERS = {"optuna": "D", "mkd": "*", "dts": "s", "ctkd": "^"}
COLORS = {"grid": "C0", "optuna": "C1", "mkd": "C3", "dts": "C2", "ctkd": "C4", "nokd": "0.4"}


def plot_temperature(sel: pd.DataFrame, trials: pd.DataFrame, path: str) -> None:
    plt = _plt()
    ok = _ok(trials)
    settings = sorted(sel["setting"].unique())
    fig, axes = _panels(plt, len(settings))
    for ax, s in zip(axes[0], settings):
        g = ok[(ok["setting"] == s) & (ok["method"] == "grid") & (ok["tau_t_config"] == ok["tau_s_config"])]
        label = sel.loc[sel["setting"] == s, "setting_label"].iloc[0]
        if not g.empty:
            agg = g.groupby("tau_t_config")["test_acc"].agg(["mean", "std", "count"]).reset_index()
            ax.errorbar(agg["tau_t_config"], agg["mean"] * 100, yerr=agg["std"].fillna(0) * 100, color=COLORS["grid"],
                        marker="o", capsize=3, label="grid (fixed τ, mean ± std)")
        ss = sel[sel["setting"] == s]
        for m in ("optuna", "mkd", "dts", "ctkd"):
            r = ss[ss["method"] == m]
            if r.empty:
                continue
            tau = np.sqrt(r["sel_tau_t"].astype(float) * r["sel_tau_s"].astype(float))
            ax.errorbar([tau.mean()], [r["test_acc"].mean() * 100],
                        yerr=[r["test_acc"].std(ddof=1) * 100 if len(r) > 1 else 0],
                        color=COLORS[m], marker=MARKERS[m], markersize=9, linestyle="none", capsize=3,
                        label=f"{m} ({'selected' if m == 'optuna' else 'final learned'} τ)")
        nk = ss[ss["method"] == "nokd"]
        if not nk.empty:
            mu, sd = nk["test_acc"].mean() * 100, (nk["test_acc"].std(ddof=1) * 100 if len(nk) > 1 else 0)
            ax.axhline(mu, color=COLORS["nokd"], linestyle="--", label="no-KD student (band: ± std)")
            ax.axhspan(mu - sd, mu + sd, color=COLORS["nokd"], alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("temperature τ (log scale; √(τ_t·τ_s) for learned pairs)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{label}: test accuracy vs temperature")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    _save(plt, fig, path)


def plot_anytime(trials: pd.DataFrame, path: str) -> None:
    plt = _plt()
    from matplotlib.ticker import NullFormatter

    t = trials[(trials["method"] != "teacher")].copy()
    settings = sorted(t["setting"].unique())
    labels = _setting_labels(t)
    fig, axes = _panels(plt, len(settings))
    for ax, s in zip(axes[0], settings):
        g = t[t["setting"] == s]
        for m in [m for m in METHOD_ORDER if m in set(g["method"])]:
            first = True
            for seed, h in g[g["method"] == m].groupby("seed", sort=True):
                h = h.sort_values(["finished_at", "trial_id"])
                cost = h["seconds"].fillna(0).cumsum().to_numpy()
                best = (h["val_acc"].fillna(0).cummax() * 100).to_numpy()
                kw = dict(color=COLORS.get(m, "k"), alpha=0.8, label=m if first else None)
                if len(h) > 1:
                    ax.step(cost, best, where="post", **kw)
                else:
                    ax.plot(cost, best, marker=MARKERS.get(m, "o"), linestyle="none", **kw)
                first = False
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("cumulative cost (trial-seconds, log scale; one line per seed)")
        ax.set_ylabel("best-so-far val accuracy (%)")
        ax.set_title(f"{labels[s]}: anytime performance")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    _save(plt, fig, path)


def plot_trajectories(trials: pd.DataFrame, curves: pd.DataFrame, path: str) -> bool:
    t = _ok(trials[trials["method"].isin(LEARNED)])
    if t.empty or curves.empty:
        return False
    plt = _plt()
    c = curves.merge(t[["trial_id", "setting", "setting_label", "method", "seed"]], on="trial_id")
    settings = sorted(c["setting"].unique())
    fig, axes = _panels(plt, len(settings))
    for ax, s in zip(axes[0], settings):
        g = c[c["setting"] == s]
        for m in [m for m in LEARNED if m in set(g["method"])]:
            h = g[g["method"] == m]
            cols = [("tau_t", "τ_t", "-"), ("tau_s", "τ_s", "--")] if m == "mkd" else [("tau_t", "T", "-")]
            for col, name, ls in cols:
                agg = h.groupby("epoch")[col].agg(["mean", "min", "max"]).reset_index()
                ax.plot(agg["epoch"], agg["mean"], color=COLORS[m], linestyle=ls, label=f"{m} {name} (mean)")
                ax.fill_between(agg["epoch"], agg["min"], agg["max"], color=COLORS[m], alpha=0.15)
        ax.set_xlabel("epoch")
        ax.set_ylabel("temperature")
        ax.set_title(f"{g['setting_label'].iloc[0]}: learned temperatures\n(line: mean, band: min–max over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(plt, fig, path)
    return True


def plot_transfer(tm: pd.DataFrame, path: str) -> bool:
    if tm.empty:
        return False
    plt = _plt()
    srcs = list(dict.fromkeys(tm["source"]))
    tgts = list(dict.fromkeys(tm["target"]))
    M = np.full((len(srcs), len(tgts)), np.nan)
    for _, r in tm.iterrows():
        M[srcs.index(r["source"]), tgts.index(r["target"])] = r["regret_mean"]
    fig, ax = plt.subplots(figsize=(1.5 * len(tgts) + 4.5, 0.75 * len(srcs) + 2.4))
    # A 5-point floor keeps seed noise from looking like a large regret.
    vmax = max(5.0, float(np.nanmax(np.abs(M)))) if np.isfinite(M).any() else 5.0
    im = ax.imshow(M, cmap="RdYlGn_r", vmin=-vmax, vmax=vmax, aspect="auto")
    for _, r in tm.iterrows():
        i, j = srcs.index(r["source"]), tgts.index(r["target"])
        if math.isnan(r["regret_mean"]):
            txt = "missing"
        else:
            sd = "" if math.isnan(r["regret_std"]) else f"\n± {r['regret_std']:.1f}"
            mark = "\n✗ no transfer" if r["verdict"] == "does not transfer" else ""
            txt = f"{r['regret_mean']:.1f}{sd}{mark}"
        dark = not math.isnan(r["regret_mean"]) and abs(r["regret_mean"]) > 0.6 * vmax
        ax.text(j, i, txt, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(len(tgts)), tgts, rotation=20, ha="right")
    ax.set_yticks(range(len(srcs)), srcs)
    ax.set_xlabel("target setting B (where the temperature is used)")
    ax.set_ylabel("source setting A (where τ was selected on val)")
    ax.set_title("Transfer regret: B's own selected τ minus A's τ on B\n(test accuracy points, mean ± std over seeds)")
    fig.colorbar(im, ax=ax, label="regret (points; > 0: worse than B's own τ)")
    _save(plt, fig, path)
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
        for _, r in g.sort_values(["finished_at", "trial_id"]).iterrows():
            params = {"tau": r["tau_t_config"]} if names == ["tau"] else {"tau_t": r["tau_t_config"], "tau_s": r["tau_s_config"]}
            st.add_trial(optuna.trial.create_trial(params=params, distributions={k: dist for k in params},
                                                   value=float(r["val_acc"])))
        studies.append(st)
    return studies


def plot_optuna(trials: pd.DataFrame, path: str) -> bool:
    """Optuna's own optimisation-history plot of every search in the store."""
    studies = optuna_studies(trials)
    if not studies:
        return False
    import warnings

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


# ---------------------------------------------------------------------- the report


def _md_table(df: pd.DataFrame, cols: List[Tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(h for _, h, _ in cols) + " |"
    sep = "|" + "|".join("---" for _ in cols) + "|"
    lines = [head, sep]
    for _, r in df.iterrows():
        cells = []
        for c, _, fmt in cols:
            v = r[c]
            if isinstance(v, float) and math.isnan(v):
                cells.append("–")
            else:
                cells.append(format(v, fmt) if fmt else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(store_dir: str, out_root: str = "reports") -> str:
    store = Store.open_existing(store_dir)
    trials, curves = store.trials(), store.curves()
    study = trials["study"].iloc[0]
    out = os.path.join(out_root, study)
    os.makedirs(out, exist_ok=True)
    sel = select(trials)
    comp = comparison(sel, trials)
    teach = teachers(trials)
    ranks = average_rank(comp) if not comp.empty else pd.DataFrame()
    pr = paired(sel)
    tm = transfer_matrix(trials)
    comp.round(4).to_csv(os.path.join(out, "comparison.csv"), index=False)
    sel.drop(columns=["finished_at", "node"], errors="ignore").round(4).to_csv(os.path.join(out, "selected.csv"), index=False)
    if not tm.empty:
        tm.round(4).to_csv(os.path.join(out, "transfer.csv"), index=False)
    store.cost().round(2).to_csv(os.path.join(out, "cost.csv"), index=False)

    n_status = trials["status"].value_counts().sort_index()
    md = [f"# Study `{study}`", ""]
    md.append(f"Generated by `hpo-kd report {os.path.relpath(store_dir)}` from {len(trials)} stored trials "
              f"({', '.join(f'{k}: {v}' for k, v in n_status.items())}). Selection on val accuracy (final epoch); "
              "accuracies are test accuracy (%) of the selected trial, mean ± std and 95 % CI (t) over seeds. "
              "Cost is per seed: trials, epochs and trial-seconds. Rank 1 = best mean test accuracy in the setting.")
    md.append("")
    if not teach.empty:
        md += ["## Teachers", "", _md_table(teach.assign(val=teach["val_acc"] * 100, test=teach["test_acc"] * 100),
                                            [("setting_label", "setting", ""), ("teacher", "teacher", ""),
                                             ("val", "val %", ".2f"), ("test", "test %", ".2f")]), ""]
    cols = [("method", "method", ""), ("tau", "selected τ per seed (τ_t/τ_s)", ""), ("test_mean", "test %", ".2f"),
            ("test_std", "± std", ".2f"), ("test_ci95", "95 % CI ±", ".2f"), ("val_mean", "val %", ".2f"),
            ("delta_vs_nokd", "Δ vs no-KD", "+.2f"), ("trials_per_seed", "trials", ".0f"),
            ("epochs_per_seed", "epochs", ".0f"), ("seconds_per_seed", "trial-s", ".1f"), ("rank", "rank", "d")]
    for s, g in comp.groupby("setting", sort=True):
        md += [f"## {g['setting_label'].iloc[0]} — `{s}`", "", _md_table(g, cols), ""]
    if not ranks.empty:
        md += ["## Average rank across settings", "",
               _md_table(ranks, [("method", "method", ""), ("avg_rank", "average rank", ".2f"), ("settings", "settings", "d")]), ""]
    if pr:
        md += ["## MKD vs the grid's selected temperature (paired by setting and seed)", "", paired_sentence(pr), ""]
    md += ["## Plots", "", "![test accuracy vs temperature](temperature.png)", "",
           "![anytime: best-so-far val accuracy vs cost](anytime.png)", ""]
    plot_temperature(sel, trials, os.path.join(out, "temperature.png"))
    plot_anytime(trials, os.path.join(out, "anytime.png"))
    if plot_trajectories(trials, curves, os.path.join(out, "trajectories.png")):
        md += ["![learned temperature trajectories](trajectories.png)", ""]
    if plot_optuna(trials, os.path.join(out, "optuna.png")):
        md += ["![Optuna's optimisation history](optuna.png)", ""]
    if len(tm) and tm["source_id"].nunique() > 1:
        plot_transfer(tm, os.path.join(out, "transfer.png"))
        md += ["## Transfer matrix", "",
               "Regret = test accuracy of B's own val-selected grid τ minus that of the τ selected on A, run on B "
               "(points, mean ± std over seeds; the same seed on both sides). *does not transfer*: regret > 2 × "
               "the seed spread (std) of B's own selection. The MKD row needs no transfer: it is MKD's own run on B.",
               "", _md_table(tm, [("source", "A (source)", ""), ("target", "B (target)", ""), ("taus", "τ from A per seed", ""),
                                   ("regret_mean", "regret", ".2f"), ("regret_std", "± std", ".2f"),
                                   ("target_seed_spread", "B spread", ".2f"), ("missing", "missing runs", "d"),
                                   ("verdict", "verdict", "")]), "", "![transfer heatmap](transfer.png)", ""]
    path = os.path.join(out, "report.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(md))
    os.replace(path + ".tmp", path)
    return path
