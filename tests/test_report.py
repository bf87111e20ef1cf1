"""Reports on synthetic stores whose answers are known: selection, verdicts, ranks, transfer,
files written and repeatable, bad folders."""

import os

import numpy as np
import pandas as pd
import pytest

from hpo_kd import errors as rep_errors
from hpo_kd import report as rep
from hpo_kd.cli import main
from hpo_kd.report import plot_base, plots
from hpo_kd.store import Store

A = "mnist1d|none|1|cnn_mid>cnn_bn"
B = "mnist1d|strong|1|cnn_mid>cnn_bn"
C = "mnist1d_shuffled|none|1|cnn_mid>cnn_bn"
LABEL = {A: "mnist1d(100%,none)", B: "mnist1d(100%,strong)", C: "mnist1d_shuffled(100%,none)"}
SEEDS = range(8)
NOISE = [0.1, -0.2, 0.3, 0.0, -0.1, 0.2, -0.3, 0.0]  # points, one per seed
WILD = [2.0, -3.0, 1.0, -2.5, 3.0, -1.5, 0.5, 1.0]


def _rows():
    """(setting, method, seed, tau, val %, test %)

    A: the grid selects tau 4 on every seed (val 90 > 80); KD at tau 1 equals no-KD exactly; MKD
       is 3 points above the grid's selection on every seed.
    B: the grid selects tau 1 (val 70 > 60): test 60 + noise vs 50 at tau 4; no-KD equals the grid's
       selection within 0.1; MKD scatters wildly around it.
    C: selects tau 4 like A: 70 + noise, tau 1 gives 69."""
    out = []
    for s in SEEDS:
        e = NOISE[s]
        out += [
            (A, "grid", s, 1, 80, 75 + e),
            (A, "grid", s, 4, 90, 80 + e),
            (A, "nokd", s, None, 70, 75 + e),
            (A, "mkd", s, 3.0, 88, 83 + e + 0.01 * s),
        ]
        out += [
            (B, "grid", s, 1, 70, 60 + e),
            (B, "grid", s, 4, 60, 50 + e),
            (B, "nokd", s, None, 65, 60 + e + 0.05),
            (B, "mkd", s, 2.0, 60, 60 + WILD[s]),
        ]
        out += [(C, "grid", s, 1, 60, 69 + e), (C, "grid", s, 4, 70, 70 + e), (C, "nokd", s, None, 50, 60 + e)]
    return out


def _store(folder, rows=None, seconds=1.0, study="synthetic") -> Store:
    s = Store(str(folder))
    for i, (setting, method, seed, tau, val, test) in enumerate(rows or _rows()):
        fixed = method == "grid"
        s.add(
            {
                "trial_id": f"t{i:03d}",
                "unit_id": f"t{i:03d}",
                "study": study,
                "setting": setting,
                "setting_label": LABEL[setting],
                "dataset": setting.split("|")[0],
                "augment": setting.split("|")[1],
                "fraction": 1.0,
                "teacher": "cnn_mid",
                "student": "cnn_bn",
                "method": method,
                "seed": seed,
                "tau_t_config": float(tau) if fixed else None,
                "tau_s_config": float(tau) if fixed else None,
                "status": "ok",
                "val_acc": val / 100,
                "test_acc": test / 100,
                "tau_t": float(tau) if tau else None,
                "tau_s": float(tau) if tau else None,
                "epochs": 10,
                "epochs_run": 10,
                "seconds": seconds + 0.001 * i,
                "finished_at": float(i),
            }
        )
    s.add(
        {
            "trial_id": "bad",
            "unit_id": "bad",
            "study": "synthetic",
            "setting": A,
            "setting_label": LABEL[A],
            "method": "grid",
            "seed": 0,
            "tau_t_config": 16.0,
            "tau_s_config": 16.0,
            "status": "diverged",
            "epochs_run": 3,
            "seconds": 0.25,
            "finished_at": 999.0,
        }
    )
    return s


@pytest.fixture
def ctx(tmp_path):
    s = _store(tmp_path / "runs" / "synthetic")
    return rep.analyse(s.trials(), s.curves(), margin=0.5)


def _verdict(ctx, setting, method, reference):
    c = ctx.comparisons
    return c[(c["setting"] == setting) & (c["method"] == method) & (c["reference"] == reference)].iloc[0]


def test_selection_on_val_and_cost_in_epochs(ctx):
    sel = ctx.sel.set_index(["setting", "method", "seed"])
    assert sel.loc[(A, "grid", 2), "sel_tau_t"] == 4 and sel.loc[(A, "grid", 2), "test"] == pytest.approx(80.3)
    assert sel.loc[(B, "grid", 2), "sel_tau_t"] == 1
    summ = ctx.summary.set_index(["setting", "method"])
    # seed 0 paid two ok grid trials and a diverged one (3 epochs): (10 + 10 + 3 + 7 * 20) / 8
    assert summ.loc[(A, "grid"), "epochs_per_seed"] == pytest.approx((23 + 7 * 20) / 8)
    assert summ.loc[(A, "grid"), "test_mean"] == pytest.approx(80.0)
    assert summ.loc[(A, "grid"), "tau"] == ", ".join(["4"] * 8)


def test_synthetic_store_gives_the_known_verdicts(ctx):
    assert _verdict(ctx, A, "mkd", "grid")["verdict"] == "better"
    assert _verdict(ctx, A, "mkd", "grid")["mean"] == pytest.approx(3.035)
    assert _verdict(ctx, A, "grid", "nokd")["verdict"] == "better"
    assert _verdict(ctx, B, "grid", "nokd")["verdict"] == "equivalent"
    wild = _verdict(ctx, B, "mkd", "grid")
    assert wild["verdict"] == "inconclusive" and wild["seeds_to_reject"] > 8
    assert 0 < wild["p_inside"] < 1 and wild["p_below"] + wild["p_inside"] + wild["p_above"] == pytest.approx(1)
    assert _verdict(ctx, B, "mkd", "nokd")["verdict"] == "inconclusive"
    # Holm within declared families: (kind, setting), never over the whole report
    n = len(ctx.comparisons) + len(ctx.transfer)
    assert n == 7 + 6  # A and B: mkd-grid, grid-nokd, mkd-nokd; C: grid-nokd; 6 transfer cells
    fam = ctx.comparisons.set_index(["setting", "method", "reference"])
    assert fam.loc[(A, "mkd", "grid"), "family"] == "methods vs grid | mnist1d(100%,none)"
    assert fam.loc[(A, "mkd", "grid"), "family_size"] == 1  # the only method vs the grid on A
    assert fam.loc[(A, "mkd", "nokd"), "family_size"] == 2  # grid and MKD vs no-KD on A
    raw, adj = _verdict(ctx, A, "mkd", "grid")["p"], _verdict(ctx, A, "mkd", "grid")["p_holm"]
    assert adj == raw  # a family of one
    g, m = _verdict(ctx, A, "grid", "nokd"), _verdict(ctx, A, "mkd", "nokd")
    assert max(g["p_holm"], m["p_holm"]) == pytest.approx(max(2 * min(g["p"], m["p"]), max(g["p"], m["p"])))
    assert set(ctx.transfer["family_size"]) == {2}  # two sources into each target
    # the equivalent verdict comes from TOST: its 90 % interval lies inside the margin
    eq = _verdict(ctx, B, "grid", "nokd")
    assert eq["p_tost_holm"] < 0.05 and -0.5 < eq["lo90"] and eq["hi90"] < 0.5


def test_transfer_verdicts_and_the_no_kd_note(ctx):
    tm = ctx.transfer.set_index(["source_id", "target_id"])
    assert tm.loc[(A, B), "verdict"] == "does not transfer" and tm.loc[(A, B), "mean"] == pytest.approx(10)
    assert tm.loc[(A, B), "regret_of_range"] == pytest.approx(1.0)  # the worst of B's grid
    assert tm.loc[(A, C), "verdict"] == "transfers" and tm.loc[(A, C), "same_tau"] == 8
    assert tm.loc[(A, C), "mean"] == 0
    ba = tm.loc[(B, A)]  # tau 1 from B on A: 75 vs 80, and exactly A's no-KD student
    assert ba["verdict"] == "does not transfer" and ba["mean"] == pytest.approx(5)
    assert "acts as no KD" in ba["note"]
    # tau 4 from A on B: 50 + noise, below B's no-KD student (60.05 + noise): flagged
    assert tm.loc[(A, B), "note"].startswith("A's τ is worse on B than B's no-KD student (-10.05 points")
    assert tm.loc[(A, C), "note"] == ""  # 70 + noise on C, 10 above C's no-KD
    assert (A, A) not in tm.index  # no diagonal


def test_ranks_per_seed_with_ties_averaged(ctx):
    blocks = ctx.rank_blocks.set_index(["setting", "seed", "method"])["rank"]
    # on A, KD at tau 1 is not a method; no-KD (75) < grid (80) < MKD (83): 3, 2, 1
    assert (blocks.loc[(A, 0, "mkd")], blocks.loc[(A, 0, "grid")], blocks.loc[(A, 0, "nokd")]) == (1, 2, 3)
    avg = ctx.ranks.set_index("method")["avg_rank"]
    assert set(avg.index) == {"grid", "mkd", "nokd"}  # blocks with every method: A and B
    fr = ctx.friedman
    assert fr["n"] == 16 and fr["k"] == 3


def test_tied_methods_share_the_average_rank(tmp_path):
    rows = [r for r in _rows() if r[0] == A and r[1] != "mkd"]
    rows = [(s, m, seed, tau, val, 80.0 if m != "grid" or tau == 4 else test) for s, m, seed, tau, val, test in rows]
    s = _store(tmp_path / "s", rows)
    blocks = rep.analyse(s.trials(), s.curves()).rank_blocks
    assert set(blocks["rank"]) == {1.5}


def test_spread_flag_and_weak_teacher_warning(tmp_path):
    rows = _rows() + [(B, "nokd", 9, None, 65, 40.0)]  # one wild no-KD seed on B
    s = _store(tmp_path / "s", rows)
    s.add(
        {
            "trial_id": "teach",
            "unit_id": "teach",
            "study": "synthetic",
            "setting": A,
            "setting_label": LABEL[A],
            "method": "teacher",
            "teacher": "cnn_mid",
            "seed": 0,
            "status": "ok",
            "val_acc": 0.5,
            "test_acc": 0.5,
            "epochs_run": 20,
            "seconds": 5.0,
        }
    )
    c = rep.analyse(s.trials(), s.curves(), max_spread=1.0)
    sp = c.spread.set_index("setting")
    assert sp.loc[B, "flag"] == "above the limit" and sp.loc[A, "flag"] == ""
    assert len(c.weak_teachers) == 1 and "below the no-KD student" in c.weak_teachers[0]


def test_report_writes_files_and_is_repeatable(tmp_path):
    folder = tmp_path / "runs" / "synthetic"
    _store(folder)
    (folder / "study.toml").write_text(
        'name = "synthetic"\nseeds = [0, 1]\n[train]\neval_bn = "recompute"\nepochs = 3\n[report]\nmargin = 0.25\n'
        '[[settings]]\ndataset = "mnist1d"\n[methods.grid]\ntemperatures = [1, 4]\n'
    )
    out = tmp_path / "reports"
    # a plot of an earlier report that this store has no data for goes; a replication stays
    (out / "synthetic").mkdir(parents=True)
    (out / "synthetic" / "optuna.png").write_bytes(b"stale")
    (out / "synthetic" / "replication.md").write_text("kept")
    assert main(["report", str(folder), "--out", str(out)]) == 0
    assert not (out / "synthetic" / "optuna.png").exists()
    assert (out / "synthetic" / "replication.md").read_text() == "kept"
    files = sorted(os.listdir(out / "synthetic"))
    for f in (
        "report.md",
        "timings.md",
        "comparison.csv",
        "verdicts.csv",
        "transfer.csv",
        "accuracy_cost.png",
        "regret_budget.png",
        "forest.png",
        "posterior.png",
        "cd_diagram.png",
        "temperature.png",
        "transfer.png",
    ):
        assert f in files, f
    first = {f: (out / "synthetic" / f).read_bytes() for f in files}
    assert main(["report", str(folder), "--out", str(out)]) == 0
    assert first == {f: (out / "synthetic" / f).read_bytes() for f in files}
    md = first["report.md"].decode()
    assert "within ±0.25 points" in md  # the study file's margin
    assert "- Trial options (`[train]`): epochs = 3, eval_bn = 'recompute';" in md  # how the students were evaluated
    # ranks: A and B, 16 blocks, exploratory, in a section of their own and not among the findings;
    # MKD ranks above both others by pairwise Wilcoxon-Holm
    ranks = md.split("## Ranks (exploratory: a family of its own, not among the findings)")[1].split("\n## ")[0]
    assert "Pairs that differ (Wilcoxon–Holm p < 0.05): " in ranks and "mkd ranks above nokd" in ranks
    assert "ranks above" not in md.split("## Findings")[1].split("\n## ")[0]
    # the verdicts table carries the family, TOST and the posterior
    for col in (
        "family",
        "family_size",
        "p_tost_holm",
        "lo90",
        "hi90",
        "p_below",
        "p_inside",
        "p_above",
        "seeds_to_reject",
        "seeds_for_equivalence",
    ):
        assert col in pd.read_csv(out / "synthetic" / "verdicts.csv").columns, col
    assert "MKD is better than the grid's selected τ (+3.04 points" in md
    assert (
        "Transfer mnist1d(100%,none) → mnist1d(100%,strong), against B's same-seed selection (which favours B: "
        "see the cross-fitted lines): does not transfer" in md
    )
    assert "### Every cell, cross-fitted" in md  # every cell's cross-fitted comparison, in one table
    # The same results on a machine twice as slow: the report is the same, only timings.md moves.
    for f in ("trials.parquet", "curves.parquet"):
        if (folder / f).exists():
            (folder / f).unlink()
    _store(folder, seconds=2.0)
    assert main(["report", str(folder), "--out", str(out)]) == 0
    again = {f: (out / "synthetic" / f).read_bytes() for f in files}
    assert {f for f in files if first[f] != again[f]} == {"timings.md", "timings.csv"}
    assert "torch" not in md or "Run 1" in md  # versions only from recorded provenance
    verdicts = pd.read_csv(out / "synthetic" / "verdicts.csv")
    assert set(verdicts["verdict"]) == {"better", "equivalent", "inconclusive"}
    assert "cost_seconds" not in pd.read_csv(out / "synthetic" / "selected.csv").columns


def test_cli_transfer_runs_missing_trials_and_prints_the_verdict(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "runs" / "synthetic"
    s = _store(folder, [r for r in _rows() if not (r[0] == C and r[3] == 4)])
    trials = s.trials()
    assert rep.missing_transfer_trials(trials, A, C) == [(seed, 4.0, 4.0) for seed in SEEDS]
    (folder / "study.toml").write_text(
        'name = "synthetic"\nseeds = [0, 1, 2, 3, 4, 5, 6, 7]\n[[settings]]\ndataset = "mnist1d"\n'
        '[[settings]]\ndataset = ["mnist1d_shuffled"]\nteacher = "cnn_mid"\nstudent = "cnn_bn"\n'
        "[methods.grid]\ntemperatures = [1]\n"
    )
    planned = []

    def fake_run(self, plan=None):
        planned.extend(plan)
        st = Store(self.folder)
        for t in plan:  # what the real runner would store: tau 4 on C is one point below C's own
            st.add(
                {
                    "trial_id": t.id,
                    "unit_id": t.id,
                    "study": "synthetic",
                    "setting": C,
                    "setting_label": LABEL[C],
                    "method": t.method,
                    "seed": t.seed,
                    "tau_t_config": t.config["tau_t"],
                    "tau_s_config": t.config["tau_s"],
                    "status": "ok",
                    "val_acc": 0.5,
                    "test_acc": (68 + NOISE[t.seed]) / 100,
                    "epochs_run": 1,
                    "seconds": 1.0,
                }
            )
        return {"ran": len(plan), "planned": len(plan)}

    monkeypatch.setattr("hpo_kd.tune.Runner.run", fake_run)
    assert (
        main(["transfer", "--study", str(folder), "--source", "mnist1d(100%,none)", "--target", "mnist1d_shuffled"])
        == 0
    )
    assert sorted((t.method, t.seed, t.config["tau_t"]) for t in planned) == [("transfer", s_, 4.0) for s_ in SEEDS]
    out = capsys.readouterr().out
    assert "selected on mnist1d(100%,none) → on mnist1d_shuffled(100%,none)" in out
    assert "regret +1.00 points" in out and "does not transfer" in out


def test_report_on_empty_or_foreign_folder_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    assert main(["report", str(tmp_path / "foreign")]) == 2
    err = capsys.readouterr().err
    assert "not a results store" in err and "Traceback" not in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "trials.parquet").write_text("not parquet")
    assert main(["report", str(tmp_path / "bad")]) == 2
    assert "not a readable results table" in capsys.readouterr().err


def test_optuna_searches_become_optuna_studies_in_sampling_order(tmp_path):
    s = _store(tmp_path / "s")
    for i, (tau, val, idx) in enumerate([(2.0, 0.7, 2), (5.0, 0.9, 0), (11.0, 0.8, 1)]):
        s.add(
            {
                "trial_id": f"o{i}",
                "unit_id": "u",
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "method": "optuna",
                "seed": 0,
                "tau_t_config": tau,
                "tau_s_config": tau,
                "status": "ok",
                "val_acc": val,
                "test_acc": val,
                "epochs_run": 10,
                "seconds": 1.0,
                "finished_at": 100.0 + i,
                "trial_index": idx,
                "options": {"low": 1.0, "high": 16.0, "separate": False},
            }
        )
    (study,) = plots.optuna_studies(s.trials())
    assert [t.params["tau"] for t in study.trials] == [5.0, 11.0, 2.0]
    assert study.best_value == 0.9 and study.best_params == {"tau": 5.0}
    dist = study.trials[0].distributions["tau"]
    assert (dist.low, dist.high, dist.log) == (1.0, 16.0, True)
    assert plots.optuna_history(s.trials(), str(tmp_path / "optuna.png"))
    assert (tmp_path / "optuna.png").stat().st_size > 10_000


def test_normalised_regret_curve_of_the_grid(tmp_path):
    s = _store(tmp_path / "s")
    h = pd.DataFrame({"val_acc": [0.8, 0.9], "test_acc": [0.75, 0.80], "status": ["ok", "ok"]})
    regs = plots.incumbent_regret(h, oracle=80.0, rng=5.0)
    assert np.allclose(regs, [1.0, 0.0])  # tau 1 first: the worst; then tau 4: the best
    # a trial stopped early is paid for (a point on the budget axis) but never selected
    h = pd.DataFrame(
        {
            "val_acc": [0.95, 0.8, 0.99, 0.9],
            "test_acc": [0.9, 0.75, 0.9, 0.8],
            "status": ["stopped", "ok", "stopped", "ok"],
        }
    )
    regs = plots.incumbent_regret(h, oracle=80.0, rng=5.0)
    assert np.isnan(regs[0]) and np.allclose(regs[1:], [1.0, 1.0, 0.0])
    assert plots.regret_vs_budget(s.trials(), rep.select(s.trials()), str(tmp_path / "r.png"))


def test_learned_start_dependence(tmp_path):
    """MKD from 0.5 and from 16: tau_t ends at the same place (x1.1), tau_s keeps a factor of 4."""
    s = Store(str(tmp_path / "s"))
    i = 0
    for seed in SEEDS:
        for start, tt, ts in ((0.5, 4.0, 2.0), (16.0, 4.4, 8.0)):
            jitter = 1 + 0.01 * NOISE[seed]
            s.add(
                {
                    "trial_id": f"m{i}",
                    "unit_id": f"m{i}",
                    "study": "synthetic",
                    "setting": A,
                    "setting_label": LABEL[A],
                    "method": f"mkd:{start:g}",
                    "seed": seed,
                    "tau_t_config": start,
                    "tau_s_config": start,
                    "options": {"learn": "both"},
                    "status": "ok",
                    "val_acc": 0.9,
                    "test_acc": 0.9,
                    "tau_t": tt * jitter,
                    "tau_s": ts * jitter,
                    "epochs_run": 10,
                    "seconds": 1.0,
                }
            )
            i += 1
    st = rep.analyse(s.trials(), s.curves()).starts.set_index("quantity")
    assert st.loc["tau_t", "verdict"] == "independent of the start"  # log2(1.1) = 0.14 < 0.5
    assert st.loc["tau_s", "verdict"] == "depends on the start (ends higher from higher)"
    assert st.loc["tau_s", "mean"] == pytest.approx(2.0)  # log2(8 / 2)
    assert st.loc["tau_t", "final_low"] == pytest.approx(4.0, rel=0.01)
    # the report's findings list these verdicts and does not open with "None"
    md = open(rep.write_report(str(tmp_path / "s"), out_root=str(tmp_path / "r"))).read()
    findings = md.split("## Findings")[1].split("\n## ")[0]
    assert "None: every comparison" not in findings
    assert "final tau_s depends on the start" in findings and "final tau_t is independent" in findings


def test_a_one_temperature_variant_starts_where_its_learned_temperature_starts_and_clamps_are_flagged(tmp_path):
    """MKD learning tau_s from 0.5 and from 16 with tau_t held at 4: the start is tau_s's; the runs
    that end at MKD's clamp (tau_max 20) are counted in the row."""
    s = Store(str(tmp_path / "s"))
    for i, (seed, start) in enumerate((sd, st) for sd in SEEDS for st in (0.5, 16.0)):
        s.add(
            {
                "trial_id": f"m{i}",
                "unit_id": f"m{i}",
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "method": f"mkd:{start:g}-tau_s",
                "seed": seed,
                "tau_t_config": 4.0,
                "tau_s_config": start,
                "options": {"learn": "tau_s"},
                "status": "ok",
                "val_acc": 0.9,
                "test_acc": 0.9,
                "tau_t": 4.0,
                "tau_s": 20.0 if start == 16.0 else 2.0 * (1 + 0.01 * NOISE[seed]),
                "epochs_run": 10,
                "seconds": 1.0,
            }
        )
    st = rep.analyse(s.trials(), s.curves()).starts
    assert list(st["quantity"]) == ["tau_s"] and st["start_low"].iloc[0] == 0.5 and st["start_high"].iloc[0] == 16.0
    assert st["at_clamp"].iloc[0] == len(SEEDS)
    assert st["method"].iloc[0].endswith(f"{len(SEEDS)} of {2 * len(SEEDS)} runs end at a clamp")


def test_published_figures_beside_the_papers_best_test_over_epochs(tmp_path):
    """The papers' measure (best test accuracy over epochs, mean over runs) of the same runs as
    `measured`: the best epoch is never the last, and a configuration that is not selected (MKD
    started at 16, lower val) has the highest test accuracy of all and must not count."""
    folder = tmp_path / "runs" / "synthetic"
    s = Store(str(folder))

    def add(tid, method, seed, val, tests, tau=None):
        s.add(
            {
                "trial_id": tid,
                "unit_id": tid,
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "dataset": "mnist1d",
                "augment": "none",
                "fraction": 1.0,
                "teacher": "cnn_mid",
                "student": None if method == "teacher" else "cnn_bn",
                "method": method,
                "seed": seed,
                "tau_t_config": tau,
                "tau_s_config": tau,
                "status": "ok",
                "val_acc": val / 100,
                "test_acc": tests[-1] / 100,
                "epochs": 3,
                "epochs_run": 3,
                "seconds": 1.0,
            },
            [
                {
                    "epoch": e,
                    "val_acc": None if t is None else val / 100,
                    "test_acc": None if t is None else t / 100,
                    "tau_t": tau,
                    "tau_s": tau,
                }
                for e, t in enumerate(tests, 1)
            ],
        )

    add("teach", "teacher", 0, 75, [None, None, 72.0])  # a teacher evaluates its last epoch only
    for sd in range(3):
        add(f"g4-{sd}", "grid", sd, 90, [70.0, 78.0 + sd, 76.0], tau=4.0)
        add(f"g1-{sd}", "grid", sd, 80, [60.0, 61.0, 62.0], tau=1.0)
        add(f"n-{sd}", "nokd", sd, 70, [66.0 + sd, 65.0, 64.0])
        add(f"m1-{sd}", "mkd", sd, 88, [74.0, 80.0 + 2 * sd, 79.0], tau=1.0)
        add(f"m16-{sd}", "mkd", sd, 85, [90.0, 95.0, 91.0], tau=16.0)  # not selected (val 85 < 88)
    entry = {
        "dataset": "mnist1d",
        "teacher": "cnn_mid",
        "student": "cnn_bn",
        "source": "x",
        "figures": {"teacher": 73.0, "nokd": 70.0, "kd": 71.0, "mkd": 72.0},
    }
    from hpo_kd.report import published

    pub = published.table(s.trials(), rep.select(s.trials()), [entry], {"x": "X et al."}, s.curves())
    pub = pub.set_index("figure")
    assert pub.loc["teacher", "best_test"] == pytest.approx(72.0) and pub.loc["teacher", "n"] == 1
    assert pub.loc["kd", "best_test"] == pytest.approx(np.mean([78, 79, 80]))
    assert pub.loc["kd", "measured"] == pytest.approx(76.0)  # our figure: the final epoch, unchanged
    assert pub.loc["nokd", "best_test"] == pytest.approx(np.mean([66, 67, 68]))
    assert pub.loc["nokd", "measured"] == pytest.approx(64.0)
    assert pub.loc["mkd", "best_test"] == pytest.approx(np.mean([80, 82, 84]))
    assert pub.loc["mkd", "measured"] == pytest.approx(79.0)
    # without curves the column is there, empty
    assert published.table(s.trials(), rep.select(s.trials()), [entry], {})["best_test"].isna().all()
    # through the report: the column, labelled, and the sentence that says it selects on test
    (folder / "study.toml").write_text(
        'name = "synthetic"\nseeds = [0, 1, 2]\n[[settings]]\ndataset = "mnist1d"\n[methods.grid]\n'
        'temperatures = [1, 4]\n[report.sources]\nx = "X et al."\n[[report.published]]\ndataset = "mnist1d"\n'
        'teacher = "cnn_mid"\nstudent = "cnn_bn"\nsource = "x"\nfigures = {teacher = 73.0, nokd = 70.0, kd = 71.0, '
        "mkd = 72.0}\n"
    )
    md = open(rep.write_report(str(folder), out_root=str(tmp_path / "reports"))).read()
    section = md.split("## Beside the published figures")[1].split("\n## ")[0]
    assert "| best test over epochs % (test-set selection, the papers' measure) |" in section
    assert "selects the epoch on the **test** set" in section
    assert "| KD, τ = 4 | 3 | 76.00 | 0.00 | 79.00 | 71.00 | x |" in section
    csv = pd.read_csv(tmp_path / "reports" / "synthetic" / "published.csv").set_index("figure")
    assert csv.loc["mkd", "best_test"] == pytest.approx(82.0)


def test_heatmap_numbers_never_read_minus_zero():
    assert plots.num(-0.04) == "0.0" and plots.num(-0.06) == "-0.1" and plots.num(0.04) == "0.0"
    from hpo_kd.report.fmt import fmt_ci

    assert fmt_ci(-0.004, 0.3) == "[+0.00, +0.30]"


def test_selection_within_a_setting_its_floor_and_the_axis_of_a_transfer(tmp_path):
    """A selects tau 4 on seeds 0, 1, 4 and tau 1 on seeds 2, 3 (by val); B selects tau 1 on every
    seed. A's floor, per seed, is its own test accuracy minus the mean test accuracy (on that seed)
    at the tau each other seed selected."""
    acc = {0: (76, 80), 1: (78, 81), 2: (79, 79), 3: (77, 80), 4: (80, 82)}  # test % at tau 1, tau 4
    picks = {0: 4, 1: 4, 2: 1, 3: 1, 4: 4}
    rows = []
    for s, (t1, t4) in acc.items():
        rows += [
            (A, "grid", s, 1, 90 if picks[s] == 1 else 80, t1),
            (A, "grid", s, 4, 90 if picks[s] == 4 else 80, t4),
            (B, "grid", s, 1, 70, 60),
            (B, "grid", s, 4, 60, 50),
        ]
    trials = _store(tmp_path / "runs" / "synthetic", rows).trials()
    ctx = rep.analyse(trials, pd.DataFrame(), margin=0.5)

    def at(s, tau):
        return acc[s][0 if tau == 1 else 1]

    expect = {j: at(j, picks[j]) - np.mean([at(j, picks[i]) for i in acc if i != j]) for j in acc}
    assert expect[3] == pytest.approx(77 - (80 + 80 + 77 + 80) / 4)  # by hand: seeds 0, 1, 4 chose 4; 2 chose 1
    assert rep.stability.floor_per_seed(trials, A) == pytest.approx(expect)
    st = ctx.stability.set_index("setting")
    assert st.loc[A, "taus"] == "4, 4, 1, 1, 4" and st.loc[A, "distinct"] == 2
    assert st.loc[A, "mode"] == "4" and st.loc[A, "mode_share"] == pytest.approx(0.6)
    assert st.loc[A, "floor"] == pytest.approx(np.mean(list(expect.values())))
    assert st.loc[B, "distinct"] == 1 and st.loc[B, "floor"] == 0 and st.loc[B, "sd_log2_tau"] == 0
    assert st.loc[A, "floor_lo"] < st.loc[A, "floor"] < st.loc[A, "floor_hi"]
    # B's tau 1 on A against A's own selection, cross-fitted: on seed j, the mean over the other
    # seeds i of acc_j(A's tau from seed i) - acc_j(B's tau from seed i), then the mean over j
    tm = ctx.transfer.set_index(["source_id", "target_id"])
    ba = tm.loc[(B, A)]
    assert ba["axis"] == "augmentation" and ba["floor"] == pytest.approx(np.mean(list(expect.values())))
    xfit = {j: np.mean([at(j, picks[i]) - at(j, 1) for i in acc if i != j]) for j in acc}
    assert ba["xfit_mean"] == pytest.approx(np.mean(list(xfit.values())))
    assert ba["xfit_family_size"] == 1 and ba["xfit_verdict"] in rep.stability.WORDS.values()
    assert not ba["xfit_same_as_regret"] and ba["xfit_pairs"] == 20 and ba["xfit_pairs_missing"] == 0
    # A's varying tau on B, whose selection is tau 1 on every seed (a degenerate reference): on seed
    # j, B's tau 1 (60) against A's taus from the other seeds (tau 4: 50); not the regret's test, since
    # A's tau on seed j is never used on seed j
    ab = tm.loc[(A, B)]
    share4 = {j: np.mean([picks[i] == 4 for i in acc if i != j]) for j in acc}
    assert ab["xfit_mean"] == pytest.approx(10 * np.mean(list(share4.values())))
    assert ab["xfit_ref_distinct"] == 1 and not ab["xfit_same_as_regret"]
    assert rep.stability.axis(A, "mnist1d|none|0.1|cnn_mid>cnn_bn") == "training-set fraction"
    # a student on a tenth whose teacher trained on the whole set, as A's did: the fraction alone
    tenth = "mnist1d|none|0.1|cnn_mid>cnn_bn|train.teacher_fraction=1.0"
    assert rep.stability.axis(A, tenth) == "training-set fraction"
    assert rep.stability.axis(tenth, "mnist1d|none|0.1|cnn_mid>cnn_bn") == "the teacher's data"
    assert rep.stability.axis(A, tenth + "|train.epochs=90") == "training-set fraction + epochs"
    # the tenth names its teacher's fraction, not its augmentation: the augmentation part follows
    # the student's in both settings, so it counts as the augmentation axis alone
    assert rep.stability.axis(tenth, "mnist1d|strong|1|cnn_mid>cnn_bn") == "augmentation + training-set fraction"
    assert rep.stability.axis(A, "mnist1d|none|1|cnn_mid>mlp") == "teacher–student pair"
    assert rep.stability.axis(A, C) == "data"
    assert rep.stability.axis(B, C) == "data + augmentation"


def test_replication_says_which_findings_a_second_draw_repeats(tmp_path, capsys):
    """Draw 2 (seeds 8-15): the same as draw 1 but for MKD on A, now the grid's equal within noise
    of a wide spread: A's 'MKD better than the grid' is not repeated, the rest replicate."""
    first = tmp_path / "runs" / "synthetic"
    _store(first)
    rows = []
    for setting, method, seed, tau, val, test in _rows():
        if setting == A and method == "mkd":
            test = 80 + NOISE[seed] + WILD[seed]
        rows.append((setting, method, seed + 8, tau, val, test))
    second = tmp_path / "runs" / "synthetic_b"
    _store(second, rows, study="synthetic_b")
    out = tmp_path / "reports"
    assert main(["replication", str(first), str(second), "--out", str(out)]) == 0
    t = pd.read_csv(out / "synthetic_b" / "replication.csv").set_index(["kind", "where", "what"])
    assert t.loc[("methods vs grid", LABEL[A], "mkd − grid"), "outcome"] == "inconclusive on the second draw"
    assert t.loc[("methods vs grid", LABEL[A], "mkd − grid"), "het_p"] < 0.01  # the draws differ
    assert t.loc[("methods vs no-KD", LABEL[A], "grid − nokd"), "outcome"] == "replicates"
    assert t.loc[("methods vs no-KD", LABEL[B], "grid − nokd"), "verdict_b"] == "equivalent"
    cell = t.loc[("transfer cells", LABEL[B], f"{LABEL[A]} → {LABEL[B]}")]
    assert cell["outcome"] == "replicates" and cell["verdict_a"] == "does not transfer"
    assert set(t["outcome"]) <= {"replicates", "inconclusive on the second draw", "inconclusive twice"}
    text = (out / "synthetic_b" / "replication.md").read_text()
    assert "# Replication of `synthetic` by `synthetic_b`" in text and "seeds 8, 9, 10" in text
    findings = int((t["verdict_a"] != "inconclusive").sum())
    assert (
        f"The first draw's findings: {findings}; replicate: {findings - 1}; inconclusive on the second draw: 1; "
        "consistent within the margin: 0; overturned: 0." in text
    )
    assert "not evidence against the finding" in text
    # the same seeds in both stores are not a second draw: exit 2, nothing written
    assert main(["replication", str(first), str(first), "--out", str(tmp_path / "r2")]) == 2
    assert "share seeds" in capsys.readouterr().err and not (tmp_path / "r2").exists()


def test_run_seeds_and_name_override_a_study_and_its_store_keeps_them(tmp_path, capsys):
    from hpo_kd.study import load_stored, load_study, overridden, parse_seeds

    assert parse_seeds("8-11") == [8, 9, 10, 11] and parse_seeds("0-1,5") == [0, 1, 5]
    for bad in ("8-x", "5-3", "1,1", ""):
        with pytest.raises(rep_errors.UserError, match="--seeds"):
            parse_seeds(bad)
    path = tmp_path / "s.toml"
    path.write_text('name = "s"\nseeds = [0, 1]\n[[settings]]\ndataset = "digits"\n[methods.nokd]\n')
    study = overridden(load_study(str(path)), seeds=[8, 9], name="s_b")
    assert (study.name, study.seeds, study.overrides) == ("s_b", [8, 9], {"seeds": [8, 9], "name": "s_b"})
    from hpo_kd.tune import Runner

    runner = Runner(study, runs_dir=str(tmp_path / "runs"))
    runner._save_study_copy()
    again = load_stored(str(tmp_path / "runs" / "s_b"))
    assert (again.name, again.seeds) == ("s_b", [8, 9])
    # a later run of a store on the file's seeds: the earlier overrides no longer hold
    Runner(overridden(load_study(str(path)), name="s_b"), runs_dir=str(tmp_path / "runs"))._save_study_copy()
    assert load_stored(str(tmp_path / "runs" / "s_b")).seeds == [0, 1]
    Runner(overridden(load_study(str(path)), seeds=[5]), runs_dir=str(tmp_path / "runs"))._save_study_copy()
    Runner(load_study(str(path)), runs_dir=str(tmp_path / "runs"))._save_study_copy()
    assert load_stored(str(tmp_path / "runs" / "s")).seeds == [0, 1]
    assert main(["run", str(path), "--seeds", "8-x", "--dry-run"]) == 2
    assert "--seeds: '8-x' is not allowed" in capsys.readouterr().err


def test_trajectories_show_the_tau_schedule_of_pbts_selected_member(tmp_path, monkeypatch):
    """Three PBT members of one seed: the plot's PBT line is the schedule of the member with the
    best val accuracy (member 1), not a mean over the population."""
    s = Store(str(tmp_path / "runs" / "synthetic"))
    schedules = {0: [2.0, 2.4, 2.4], 1: [8.0, 6.4, 7.68], 2: [1.0, 1.2, 0.96]}
    for i, taus in schedules.items():
        s.add(
            {
                "trial_id": f"p{i}",
                "unit_id": "p",
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "method": "pbt",
                "seed": 0,
                "trial_index": float(i),
                "tau_t_config": taus[-1],
                "tau_s_config": taus[-1],
                "tau_t": taus[-1],
                "tau_s": taus[-1],
                "status": "ok",
                "val_acc": 0.9 if i == 1 else 0.8,
                "test_acc": 0.85,
                "epochs_run": 3,
                "seconds": 1.0,
                "finished_at": float(i),
            },
            [{"epoch": e + 1, "tau_t": t, "tau_s": t, "val_acc": 0.5} for e, t in enumerate(taus)],
        )
    drawn = {}
    monkeypatch.setattr(plot_base, "finish", lambda plt, fig, axes, path: drawn.update(axes=axes))
    assert plots.trajectories(s.trials(), s.curves(), str(tmp_path / "t.png"))
    lines = {ln.get_label(): list(ln.get_ydata()) for ln in drawn["axes"][0].get_lines()}
    assert lines["pbt τ of the selected member: mean (thin: each seed)"] == schedules[1]


def test_trajectories_draw_what_mkd_learns_and_mark_a_run_that_ends_at_the_clamp(tmp_path, monkeypatch):
    """One panel per (setting, method); a variant that learns tau_s alone draws tau_s only (tau_t
    is held), and its run that ends at tau_max = 20 is marked."""
    s = Store(str(tmp_path / "runs" / "synthetic"))
    for seed, taus in enumerate([[4.0, 9.0, 20.0], [4.0, 6.0, 7.0]]):
        s.add(
            {
                "trial_id": f"m{seed}",
                "unit_id": f"m{seed}",
                "study": "synthetic",
                "setting": A,
                "setting_label": LABEL[A],
                "method": "mkd:4-tau_s",
                "options": {"learn": "tau_s"},
                "seed": seed,
                "tau_t": 4.0,
                "tau_s": taus[-1],
                "status": "ok",
                "val_acc": 0.8,
                "test_acc": 0.8,
                "epochs_run": 3,
                "seconds": 1.0,
                "finished_at": float(seed),
            },
            [{"epoch": e + 1, "tau_t": 4.0, "tau_s": t, "val_acc": 0.5} for e, t in enumerate(taus)],
        )
    drawn = {}
    monkeypatch.setattr(plot_base, "finish", lambda plt, fig, axes, path: drawn.update(axes=axes))
    assert plots.trajectories(s.trials(), s.curves(), str(tmp_path / "t.png"))
    (ax,) = drawn["axes"]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "MKD τ_s: mean (thin: each seed)" in labels and not any("τ_t" in x for x in labels)
    assert labels.count("ends at the clamp") == 1
    assert "tau_t = 4 held" in ax.get_title()


@pytest.mark.slow
def test_cd_diagram_is_the_same_file_in_every_process(tmp_path):
    """scikit-posthocs draws a bar through a set of names, whose order is the process's hash
    order; the diagram must not depend on it."""
    import subprocess
    import sys

    script = (
        "import sys, pandas as pd\n"
        "from hpo_kd.report import plots\n"
        "m = ['grid', 'optuna', 'dts', 'nokd', 'ctkd']\n"
        "avg = pd.DataFrame({'method': m, 'avg_rank': [1.5, 2.0, 3.0, 3.5, 4.0]})\n"
        "pairs = pd.DataFrame(1.0, index=m, columns=m)\n"
        "pairs.loc['grid', 'ctkd'] = pairs.loc['ctkd', 'grid'] = 0.01\n"
        "plots.cd_diagram(avg, pairs, 24, sys.argv[1])\n"
    )
    seeds = ("1", "3")  # two hash seeds that order the set of the bar's names differently:
    orders = [
        subprocess.run(
            [sys.executable, "-c", "print(list({'grid', 'ctkd'}))"],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in seeds
    ]
    assert orders[0] != orders[1]
    files = []
    for seed in seeds:
        path = tmp_path / f"cd{seed}.png"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        files.append(path.read_bytes())
    assert files[0] == files[1]


def test_cost_ticks_keep_the_costs_apart_enough_to_read():
    """The accuracy-vs-cost axis labels each distinct cost, but a multi-fidelity searcher's mean
    epochs are fractional and near each other's: those closer than 12 % share the first's tick."""
    costs = pd.Series([30.0, 30.0, 89.2375, 91.375, 150.0, 150.0])
    assert plots._cost_ticks(costs) == [30.0, 89.2375, 150.0]
    assert plots._cost_ticks(pd.Series([30.0, 60.0, 150.0])) == [30.0, 60.0, 150.0]
