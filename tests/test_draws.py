"""Several draws of a study as one report, the replication table as a check of stability, trials
shared with another store, the test set's sampling error, and the cross-fitted transfer verdict
in a report."""

import math

import numpy as np
import pandas as pd
import pytest
from test_report import LABEL, NOISE, WILD, A, B, C, _rows, _store

from hpo_kd import report as rep
from hpo_kd.cli import main
from hpo_kd.report import markdown, replication, testset
from hpo_kd.store import Store


def _second_draw(folder, study="synthetic_b"):
    """Seeds 8-15: the same as the first draw but for MKD on A, now at the grid's level within a
    wide spread."""
    rows = []
    for setting, method, seed, tau, val, test in _rows():
        if setting == A and method == "mkd":
            test = 80 + NOISE[seed] + WILD[seed]
        rows.append((setting, method, seed + 8, tau, val, test))
    return _store(folder, rows, study=study)


def test_report_on_two_draws_pools_their_seeds_and_checks_their_consistency(tmp_path):
    first, second = tmp_path / "runs" / "synthetic", tmp_path / "runs" / "synthetic_b"
    _store(first)
    _second_draw(second)
    out = tmp_path / "reports"
    assert main(["report", str(first), str(second), "--out", str(out)]) == 0
    folder = out / "synthetic_pooled"
    md = (folder / "report.md").read_text()
    assert md.startswith("# Study `synthetic_pooled`: all 16 seeds of 2 draws pooled")
    assert "- Draw 1: `synthetic`" in md and "seeds 0–7 (8)" in md and "seeds 8–15 (8)" in md
    verdicts = pd.read_csv(folder / "verdicts.csv")
    assert set(verdicts["n"]) == {16}  # every paired test on all seeds
    mkd = verdicts[(verdicts["setting"] == A) & (verdicts["method"] == "mkd") & (verdicts["reference"] == "grid")].iloc[
        0
    ]
    assert mkd["verdict"] == "better" and mkd["family_size"] == 1  # the same family as one draw's
    cons = pd.read_csv(folder / "consistency.csv").set_index(["kind", "where", "what"])
    row = cons.loc[("methods vs grid", LABEL[A], "mkd − grid")]
    assert row["d1_verdict"] == "better" and row["d2_verdict"] == "inconclusive" and row["het_p"] < 0.01
    assert row["d1_n"] == 8 and row["d2_n"] == 8 and row["n"] == 16
    # the finding names each draw and the heterogeneity p, and the consistency section flags the row
    line = next(x for x in md.splitlines() if x.startswith(f"- {LABEL[A]}: MKD is better than the grid"))
    assert "; by draw +3.04 [+3.01, +3.06]; +0.06 [" in line and "heterogeneity p 0.006" in line
    section = md.split("## Consistency between draws")[1].split("\n## ")[0]
    assert "Rows whose draws differ: 2." in section and "| the draws differ |" in section
    assert "not evidence against a finding" in section
    # one store still gives its own report, in its own folder
    assert main(["report", str(first), "--out", str(out)]) == 0
    assert pd.read_csv(out / "synthetic" / "verdicts.csv")["n"].max() == 8
    assert not (out / "synthetic" / "consistency.csv").exists()


def test_pooled_draws_must_not_share_seeds(tmp_path, capsys):
    first = tmp_path / "runs" / "synthetic"
    _store(first)
    assert main(["report", str(first), str(first), "--out", str(tmp_path / "r")]) == 2
    assert "share seeds" in capsys.readouterr().err


def test_a_report_names_the_trials_it_shares_with_another_store(tmp_path):
    """Another study whose store holds the same no-KD trials (the same trial ids) on every setting."""
    first, other = tmp_path / "runs" / "synthetic", tmp_path / "runs" / "other"
    trials = _store(first).trials()
    st = Store(str(other))
    for _, r in trials[trials["method"] == "nokd"].iterrows():
        st.add(dict(r.dropna(), study="other"))
    out = tmp_path / "reports"
    assert main(["report", str(first), "--out", str(out), "--overlap", str(other)]) == 0
    md = (out / "synthetic" / "report.md").read_text()
    line = next(x for x in md.splitlines() if "Shares" in x)
    assert line.startswith("- **Shares 24 of its 88 finished trials** (the same trial ids) with `other`")
    assert f"{LABEL[A]} nokd 8, {LABEL[B]} nokd 8" in line and "not a second confirmation" in line
    assert "--overlap" in md.split("**Produced by**")[1].split("\n")[0]
    alone = rep.shared_mod.overlap(trials, [str(first)])[0]  # a store shares every trial with itself
    assert alone["shared"] == alone["total"] == 88


def test_test_set_size_is_inferred_and_its_sampling_error_stated(tmp_path):
    rng = np.random.default_rng(0)
    k = rng.integers(3000, 3900, size=200)
    assert testset.infer_size(k / 4000) == 4000
    assert testset.infer_size(np.float32(k / 4000)) == 4000  # float32-rounded accuracies too
    assert testset.infer_size([0.5, 0.25]) is None  # too few values to tell
    assert testset.infer_size(rng.random(50)) is None  # not counts
    rows = [(s, m, seed, tau, val, round(test * 40) / 40) for s, m, seed, tau, val, test in _rows()]  # N = 4000
    folder = tmp_path / "runs" / "synthetic"
    _store(folder, rows)
    md = open(rep.write_report(str(folder), out_root=str(tmp_path / "r"))).read()
    section = md.split("## Test set")[1].split("\n## ")[0]
    assert "intervals are conditional on it" in section
    t = testset.table_of(rep.load_store(str(folder))[0], rep.select(rep.load_store(str(folder))[0]))
    a = t.set_index("setting_label").loc[LABEL[A]]
    p, q = 0.80, 0.75  # the grid's and no-KD's mean accuracy on A
    assert a["n_test"] == 4000 and a["per_point"] == 40
    assert a["se_one"] == pytest.approx(100 * math.sqrt(p * (1 - p) / 4000), abs=0.01)
    assert a["se_diff_max"] == pytest.approx(100 * math.sqrt((1 - p + 1 - q) / 4000), abs=0.01)
    assert f"| {LABEL[A]} | 4000 | 40 |" in section


def test_equivalent_vs_better_is_not_an_overturn_when_one_difference_fits_both():
    eq = dict(verdict="equivalent", lo=0.05, hi=0.45, lo90=0.1, hi90=0.4)
    better = dict(verdict="better", lo=0.2, hi=0.9, lo90=0.3, hi90=0.8)
    far = dict(verdict="better", lo=0.6, hi=1.2, lo90=0.7, hi90=1.1)
    worse = dict(verdict="worse", lo=-0.9, hi=-0.2, lo90=-0.8, hi90=-0.3)
    assert replication.outcome("equivalent", "better", eq, better) == replication.CONSISTENT
    assert replication.outcome("better", "equivalent", better, eq) == replication.CONSISTENT
    assert replication.outcome("equivalent", "better", eq, far) == "overturned"  # no μ fits both
    assert replication.outcome("better", "worse", better, worse) == "overturned"
    assert replication.outcome("better", "inconclusive", better, {}) == "inconclusive on the second draw"
    assert replication.outcome("transfers", "does not transfer", eq, better) == replication.CONSISTENT


def test_inconclusive_rows_give_the_seeds_each_test_needs():
    r = dict(
        setting_label="s",
        method="grid",
        reference="nokd",
        verdict="inconclusive",
        mean=0.2,
        lo=-0.3,
        hi=0.7,
        p_holm=0.4,
        p_below=0.1,
        p_inside=0.8,
        p_above=0.1,
        n=8,
        family_size=7,
        seeds_to_reject=190.0,
        seeds_for_equivalence=31.0,
    )
    text = markdown.finding(r, 0.5)
    assert "about 190 seeds would give the t-test 80 % power to reject no difference" in text
    assert "about 31 would give TOST 80 % power to establish equivalence within ±0.5" in text
    r.update(mean=0.9, seeds_to_reject=20.0, seeds_for_equivalence=math.inf)
    assert "equivalence is not expected (|mean| ≥ the margin)" in markdown.finding(r, 0.5)


def test_a_transferred_tau_as_good_as_the_targets_own_selection_prints_the_tost_that_decided_it(tmp_path):
    """C's grid mirrors A's: both select τ 4 on seeds 0, 1, 4 and τ 1 on 2, 3 (by val). On C, A's
    selections from the other seeds are C's own: the cross-fitted difference is 0 on every seed,
    as good as C's selection by TOST; the selections vary, so it is not the regret's test again."""
    picks = {0: 4, 1: 4, 2: 1, 3: 1, 4: 4}
    rows = []
    for s, pick in picks.items():
        for setting, base in ((A, 80), (C, 70)):
            rows += [
                (setting, "grid", s, 1, 90 if pick == 1 else 80, base - 1 + 0.1 * s),
                (setting, "grid", s, 4, 90 if pick == 4 else 80, base + 0.2 * s),
            ]
    folder = tmp_path / "runs" / "synthetic"
    _store(folder, rows)
    ctx = rep.analyse(rep.load_store(str(folder))[0], pd.DataFrame())
    cell = ctx.transfer.set_index(["source_id", "target_id"]).loc[(A, C)]
    assert cell["xfit_verdict"] == "as good as B's selection" and not cell["xfit_same_as_regret"]
    assert cell["xfit_mean"] == 0 and cell["xfit_p_tost_holm"] < 0.05
    md = open(rep.write_report(str(folder), out_root=str(tmp_path / "r"))).read()
    line = next(x for x in md.splitlines() if x.startswith(f"- Transfer {LABEL[A]} → {LABEL[C]} (data): A's τ"))
    assert "as good as B's selection, cross-fitted" in line and "TOST Holm p < 0.001" in line
    assert "90 % CI [+0.00, +0.00]" in line
