"""The report's statistics against hand-computed and published values."""
import math

import numpy as np
import pandas as pd
import pytest

from hpo_kd.report import stats


def test_paired_ci_and_p_by_hand():
    # d = 1, 2, 3, 4: mean 2.5, sd sqrt(5/3); t(0.975, 3) = 3.182446 (t table)
    r = stats.paired([1, 2, 3, 4])
    sd = math.sqrt(5 / 3)
    half = 3.1824463 * sd / 2
    assert r["n"] == 4 and r["mean"] == pytest.approx(2.5) and r["sd"] == pytest.approx(sd)
    assert (r["lo"], r["hi"]) == (pytest.approx(2.5 - half, abs=1e-6), pytest.approx(2.5 + half, abs=1e-6))
    # t = 2.5 / (sd / 2) = 3.873; two-sided p with 3 df = 0.03047
    assert r["p"] == pytest.approx(0.030466, abs=1e-5)


def test_paired_degenerate_cases():
    one = stats.paired([1.0])
    assert one["lo"] == -math.inf and one["hi"] == math.inf and math.isnan(one["p"])
    same = stats.paired([0.5, 0.5, 0.5])
    assert same["lo"] == same["hi"] == 0.5 and same["p"] == 0.0
    zero = stats.paired([0.0, 0.0])
    assert zero["p"] == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    adj = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adj.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]).tolist() == pytest.approx([1.0, 1.0])  # capped at 1
    nan = stats.holm([0.01, float("nan"), 0.02])
    assert nan[0] == pytest.approx(0.02) and math.isnan(nan[1]) and nan[2] == pytest.approx(0.02)


def test_tied_ranks_are_averaged():
    scores = pd.DataFrame({"a": [90.0, 70.0], "b": [90.0, 80.0], "c": [80.0, 80.0]})
    r = stats.block_ranks(scores)
    assert r.iloc[0].tolist() == [1.5, 1.5, 3.0]
    assert r.iloc[1].tolist() == [3.0, 1.5, 1.5]


def test_friedman_and_cd_on_demsar_2006():
    # Demsar (2006), JMLR 7, section 3.2.4: four C4.5 variants on 14 data sets, average ranks
    # 3.143, 2.000, 2.893, 1.964 give chi2_F = 9.28 and F_F = 3.69; Nemenyi's CD = 1.25.
    fr = stats.friedman([3.143, 2.000, 2.893, 1.964], 14)
    assert fr["chi2"] == pytest.approx(9.28, abs=0.01)
    assert fr["F"] == pytest.approx(3.69, abs=0.01)
    assert fr["p_F"] < 0.05  # the critical F(3, 39) is 2.85
    assert stats.nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)


def test_friedman_matches_scipy_without_ties():
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)) + np.arange(4)
    avg = stats.block_ranks(pd.DataFrame(x)).mean().to_numpy()
    assert stats.friedman(avg, 12)["chi2"] == pytest.approx(friedmanchisquare(*x.T).statistic)


@pytest.mark.parametrize("lo,hi,mean,p,verdict", [
    (-0.5, 0.5, 0.0, 1.0, "equivalent"),          # the interval exactly on the margin
    (-0.5000001, 0.4, 0.0, 1.0, "inconclusive"),   # a hair outside
    (0.1, 0.4, 0.25, 0.001, "equivalent"),         # significant but inside the margin
    (0.2, 2.0, 1.1, 0.049, "better"),
    (0.2, 2.0, 1.1, 0.051, "inconclusive"),        # Holm p just above 0.05
    (-2.0, -0.2, -1.1, 0.01, "worse"),
])
def test_verdict_edges(lo, hi, mean, p, verdict):
    assert stats.verdict(lo, hi, mean, p, margin=0.5) == verdict


def test_two_seeds_that_agree_decide_nothing():
    # digits' test split has 360 images: two seeds can both differ by exactly +1.39 points
    two = stats.compare([1.39, 1.39], margin=0.5)
    assert two["p"] == 0.0 and two["lo"] == two["hi"] == 1.39
    assert two["verdict"] == "inconclusive" and two["seeds_needed"] == 3
    assert stats.compare([0.0, 0.0], margin=0.5)["verdict"] == "inconclusive"
    assert stats.compare([0.0, 0.0, 0.0], margin=0.5)["verdict"] == "equivalent"  # identical runs


def test_verdicts_from_differences():
    eq = stats.compare([0.1, -0.1, 0.05, 0.0, 0.1, -0.05, 0.0, 0.05], margin=0.5)
    assert eq["verdict"] == "equivalent"
    inc = stats.compare([1.0, 3.0], margin=0.5)  # n = 2: t(0.975, 1) = 12.7, a huge interval
    assert inc["verdict"] == "inconclusive"
    # mean 2, sd sqrt(2): the smallest n with t(n-1) * sqrt(2) / sqrt(n) < 2:
    # n = 4 gives 3.182 * 1.414 / 2 = 2.25, n = 5 gives 2.776 * 1.414 / 2.236 = 1.76
    assert inc["seeds_needed"] == 5
    # in a family of 10, excluding 0 needs t at 1 - 0.05/20: n = 7 gives 4.317 * 1.414 / 2.646 = 2.31,
    # n = 8 gives 4.029 * 1.414 / 2.828 = 2.01, n = 9 gives 3.833 * 1.414 / 3 = 1.81
    assert stats.seeds_to_resolve(2.0, math.sqrt(2), 0.5, family=10) == 9
    assert stats.compare([2.0, 2.1, 1.9, 2.2, 2.0], margin=0.5)["verdict"] == "better"
    assert stats.compare([-2.0, -2.1, -1.9, -2.2, -2.0], margin=0.5)["verdict"] == "worse"

def test_holm_family_can_turn_a_raw_difference_inconclusive():
    d = [0.5, 1.0, 1.5, 0.2, 1.8]  # raw p = 0.029: "better" alone, 3 x 0.029 > 0.05 in a family of 3
    alone = stats.compare(d, margin=0.5)
    assert alone["p"] < 0.05 and alone["verdict"] == "better"
    rows = [stats.paired(d) for _ in range(3)]  # three such comparisons in one report
    stats.apply_holm(rows, margin=0.5)
    assert rows[0]["p_holm"] == pytest.approx(3 * alone["p"])
    assert [r["verdict"] for r in rows] == ["inconclusive"] * 3
    assert all(math.isfinite(r["seeds_needed"]) for r in rows)


def test_seeds_to_resolve():
    # mean 0, sd 1, margin 0.5: needs t(n-1) / sqrt(n) <= 0.5, first true at n = 18 (2.110 / 4.243 = 0.497)
    assert stats.seeds_to_resolve(0.0, 1.0, 0.5) == 18
    assert stats.seeds_to_resolve(0.0, 0.0, 0.5) == 3  # never fewer than 3
    assert stats.seeds_to_resolve(0.0, 100.0, 0.5) == math.inf  # beyond the cap
