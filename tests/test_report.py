"""Reports on a synthetic store with known numbers: means, stds, ranks, regrets; transfer gaps."""
import math
import os

import pandas as pd
import pytest

from hpo_kd import report as rep
from hpo_kd.cli import main
from hpo_kd.store import Store

A = "digits|none|1|cnn_wide>mlp"
B = "mnist1d|none|1|cnn_wide>cnn_small"
C = "digits|strong|1|cnn_wide>mlp"
LABEL = {A: "digits(100%,none)", B: "mnist1d(100%,none)", C: "digits(100%,strong)"}

# (setting, method, seed, tau, val, test, seconds)
ROWS = [
    (A, "grid", 0, 1, 0.80, 0.70, 1.0), (A, "grid", 0, 4, 0.90, 0.75, 1.0),
    (A, "grid", 1, 1, 0.85, 0.72, 1.0), (A, "grid", 1, 4, 0.84, 0.74, 1.0),
    (A, "nokd", 0, None, 0.60, 0.60, 0.5), (A, "nokd", 1, None, 0.61, 0.62, 0.5),
    (A, "mkd", 0, 3.0, 0.88, 0.76, 1.5), (A, "mkd", 1, 3.0, 0.80, 0.70, 1.5),
    (B, "grid", 0, 1, 0.60, 0.58, 1.0), (B, "grid", 0, 4, 0.50, 0.55, 1.0),
    (B, "grid", 1, 1, 0.70, 0.66, 1.0), (B, "grid", 1, 4, 0.65, 0.60, 1.0),
    (C, "grid", 0, 1, 0.70, 0.70, 1.0), (C, "grid", 1, 1, 0.70, 0.71, 1.0),
]


def _store(folder) -> Store:
    s = Store(str(folder))
    for i, (setting, method, seed, tau, val, test, sec) in enumerate(ROWS):
        fixed = method == "grid"
        s.add({
            "trial_id": f"t{i}", "unit_id": f"t{i}", "study": "synthetic", "setting": setting,
            "setting_label": LABEL[setting], "dataset": setting.split("|")[0], "augment": setting.split("|")[1],
            "fraction": 1.0, "teacher": "cnn_wide", "student": "mlp", "method": method, "seed": seed,
            "tau_t_config": float(tau) if fixed else None, "tau_s_config": float(tau) if fixed else None,
            "status": "ok", "val_acc": val, "test_acc": test, "tau_t": float(tau) if tau else None,
            "tau_s": float(tau) if tau else None, "epochs": 10, "epochs_run": 10, "seconds": sec,
            "finished_at": float(i),
        })
    s.add({"trial_id": "bad", "unit_id": "bad", "study": "synthetic", "setting": A, "setting_label": LABEL[A],
           "method": "grid", "seed": 0, "tau_t_config": 16.0, "tau_s_config": 16.0, "status": "diverged",
           "epochs_run": 3, "seconds": 0.25, "finished_at": 99.0})
    return s


@pytest.fixture
def trials(tmp_path):
    return _store(tmp_path / "runs" / "synthetic").trials()


def test_selection_means_stds_ranks(trials):
    comp = rep.comparison(rep.select(trials), trials).set_index(["setting", "method"])
    g = comp.loc[(A, "grid")]
    # seed 0 selects tau 4 by val (0.90 > 0.80): test 75; seed 1 selects tau 1 (0.85 > 0.84): test 72
    assert g["tau"] == "4, 1"
    assert g["test_mean"] == pytest.approx(73.5)
    assert g["test_std"] == pytest.approx(math.sqrt(4.5))
    assert g["test_ci95"] == pytest.approx(12.706204736 * math.sqrt(4.5) / math.sqrt(2), rel=1e-6)
    assert g["val_mean"] == pytest.approx(87.5)  # (90 + 85) / 2
    assert g["delta_vs_nokd"] == pytest.approx(73.5 - 61.0)
    # cost per seed: seed 0 paid 2 ok grid trials + 1 diverged one; seed 1 paid 2
    assert g["trials_per_seed"] == pytest.approx(2.5)
    assert g["seconds_per_seed"] == pytest.approx(((1.0 + 1.0 + 0.25) + (1.0 + 1.0)) / 2)
    m = comp.loc[(A, "mkd")]
    assert m["test_mean"] == pytest.approx(73.0) and m["test_std"] == pytest.approx(math.sqrt(18))
    assert (comp.loc[(A, "grid"), "rank"], comp.loc[(A, "mkd"), "rank"], comp.loc[(A, "nokd"), "rank"]) == (1, 2, 3)
    ranks = rep.average_rank(rep.comparison(rep.select(trials), trials)).set_index("method")
    assert ranks.loc["grid", "avg_rank"] == pytest.approx(1.0) and ranks.loc["grid", "settings"] == 3


def test_paired_mkd_vs_grid(trials):
    r = rep.paired(rep.select(trials))
    # seed 0: 76 - 75 = +1, seed 1: 70 - 72 = -2
    assert r["n"] == 2 and r["mean"] == pytest.approx(-0.5) and r["std"] == pytest.approx(math.sqrt(4.5))
    assert r["cost_ratio"] == pytest.approx((1.5 + 1.5) / (2.25 + 2.0))  # MKD's seconds / the grid's
    s = rep.paired_sentence(r)
    assert s.startswith("MKD is 0.5 ± 2.1 points below the best grid temperature at 1/1.4 of its cost")


def test_transfer_regrets(trials):
    tm = rep.transfer_matrix(trials).set_index(["source_id", "target_id"])
    # A -> B: seed 0 uses A's tau 4 on B (55) vs B's own tau 1 (58): 3; seed 1 tau 1 on B: 66 vs 66: 0
    ab = tm.loc[(A, B)]
    assert ab["regret_mean"] == pytest.approx(1.5) and ab["regret_std"] == pytest.approx(math.sqrt(4.5))
    assert ab["target_seed_spread"] == pytest.approx(math.sqrt(32)) and ab["verdict"] == "transfers"
    # B -> A: B selects tau 1 for both seeds; on A: 70 vs own 75 (5), 72 vs own 72 (0)
    ba = tm.loc[(B, A)]
    assert ba["regret_mean"] == pytest.approx(2.5) and ba["verdict"] == "transfers"
    assert tm.loc[(A, A), "regret_mean"] == 0 and tm.loc[(A, A), "verdict"] == "own"
    mk = tm.loc[("mkd", A)]  # grid's selection minus MKD: (75 - 76, 72 - 70)
    assert mk["regret_mean"] == pytest.approx(0.5) and mk["verdict"].startswith("no transfer needed")


def test_does_not_transfer_when_regret_exceeds_twice_the_spread(tmp_path):
    s = _store(tmp_path / "s")
    t = s.trials()
    t.loc[(t["setting"] == B) & (t["tau_t_config"] == 4), "test_acc"] = 0.30  # A's tau 4 is bad on B
    t.loc[(t["setting"] == B) & (t["tau_t_config"] == 1), "test_acc"] = 0.66
    t.loc[(t["setting"] == B) & (t["tau_t_config"] == 1) & (t["seed"] == 0), "val_acc"] = 0.9
    t.loc[(t["setting"] == B) & (t["tau_t_config"] == 1) & (t["seed"] == 0), "test_acc"] = 0.67
    cell = rep.transfer_matrix(t).set_index(["source_id", "target_id"]).loc[(A, B)]
    # seed 0: 67 - 30 = 37, seed 1: 66 - 66 = 0 -> mean 18.5 > 2 * std(67, 66) = 1.41
    assert cell["regret_mean"] == pytest.approx(18.5)
    assert cell["verdict"] == "does not transfer"


def test_missing_transfer_trial_is_detected_and_scheduled(trials, tmp_path, monkeypatch, capsys):
    # A's seed 0 selects tau 4, which C's grid never ran
    assert rep.missing_transfer_trials(trials, A, C) == [(0, 4.0, 4.0)]
    assert rep.missing_transfer_trials(trials, A, B) == []
    folder = tmp_path / "runs" / "synthetic"
    _store(folder)
    (folder / "study.toml").write_text(
        'name = "synthetic"\nseeds = [0, 1]\n[[settings]]\ndataset = "digits"\n'
        '[[settings]]\ndataset = "digits"\naugment = "strong"\n[methods.grid]\ntemperatures = [1]\n'
    )
    planned = []

    def fake_run(self, plan=None):
        planned.extend(plan)
        st = Store(self.folder)
        for t in plan:  # what the real runner would store
            st.add({"trial_id": t.id, "unit_id": t.id, "study": "synthetic", "setting": t.setting.id,
                    "setting_label": t.setting.label, "method": t.method, "seed": t.seed,
                    "tau_t_config": t.config["tau_t"], "tau_s_config": t.config["tau_s"], "status": "ok",
                    "val_acc": 0.5, "test_acc": 0.65, "epochs_run": 1, "seconds": 1.0})
        return {"ran": len(plan), "planned": len(plan)}

    monkeypatch.setattr("hpo_kd.tune.Runner.run", fake_run)
    assert main(["transfer", "--study", str(folder), "--source", "digits(100%,none)",
                 "--target", "digits(100%,strong)"]) == 0
    assert [(t.method, t.seed, t.config["tau_t"], t.setting.id) for t in planned] == [("transfer", 0, 4.0, C)]
    out = capsys.readouterr().out
    # seed 0: own 70 vs transferred 65 -> 5; seed 1: tau 1 on C is C's own -> 0; regret 2.5
    assert "selected on digits(100%,none) → on digits(100%,strong)" in out
    assert "regret 2.5 points" in out


def test_report_writes_files_and_is_repeatable(tmp_path, trials):
    folder = tmp_path / "runs" / "synthetic"
    _store(folder)
    out = tmp_path / "reports"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    files = sorted(os.listdir(out / "synthetic"))
    for f in ("report.md", "comparison.csv", "temperature.png", "anytime.png", "transfer.png", "transfer.csv"):
        assert f in files
    first = {f: (out / "synthetic" / f).read_bytes() for f in files}
    assert main(["report", str(folder), "--out", str(out)]) == 0
    assert first == {f: (out / "synthetic" / f).read_bytes() for f in files}
    md = first["report.md"].decode()
    assert "| grid | 4, 1 | 73.50 | 2.12 |" in md
    csv = pd.read_csv(out / "synthetic" / "comparison.csv")
    assert set(csv["method"]) == {"grid", "mkd", "nokd"}


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


def test_optuna_searches_become_optuna_studies(tmp_path):
    s = _store(tmp_path / "s")
    for i, (tau, val) in enumerate([(2.0, 0.7), (5.0, 0.9), (11.0, 0.8)]):
        s.add({"trial_id": f"o{i}", "unit_id": "u", "study": "synthetic", "setting": A, "setting_label": LABEL[A],
               "method": "optuna", "seed": 0, "tau_t_config": tau, "tau_s_config": tau, "status": "ok",
               "val_acc": val, "test_acc": val, "epochs_run": 10, "seconds": 1.0, "finished_at": 100.0 + i,
               "options": {"low": 1.0, "high": 16.0, "separate": False}})
    (study,) = rep.optuna_studies(s.trials())
    assert [t.params["tau"] for t in study.trials] == [2.0, 5.0, 11.0]
    assert study.best_value == 0.9 and study.best_params == {"tau": 5.0}
    dist = study.trials[0].distributions["tau"]
    assert (dist.low, dist.high, dist.log) == (1.0, 16.0, True)
    assert rep.plot_optuna(s.trials(), str(tmp_path / "optuna.png"))
    assert (tmp_path / "optuna.png").stat().st_size > 10_000
