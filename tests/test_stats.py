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


def test_friedman_on_demsar_2006():
    # Demsar (2006), JMLR 7, section 3.2.4: four C4.5 variants on 14 data sets, average ranks
    # 3.143, 2.000, 2.893, 1.964 give chi2_F = 9.28 and F_F = 3.69.
    fr = stats.friedman([3.143, 2.000, 2.893, 1.964], 14)
    assert fr["chi2"] == pytest.approx(9.28, abs=0.01)
    assert fr["F"] == pytest.approx(3.69, abs=0.01)
    assert fr["p_F"] < 0.05  # the critical F(3, 39) is 2.85


def test_friedman_matches_scipy_without_ties():
    from scipy.stats import friedmanchisquare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)) + np.arange(4)
    avg = stats.block_ranks(pd.DataFrame(x)).mean().to_numpy()
    assert stats.friedman(avg, 12)["chi2"] == pytest.approx(friedmanchisquare(*x.T).statistic)


def test_wilcoxon_holm_pairs_by_hand():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(1)
    wide = pd.DataFrame({"a": rng.normal(size=10) + 3, "b": rng.normal(size=10), "c": rng.normal(size=10)})
    p = stats.wilcoxon_holm(wide)
    raw = {
        (x, y): wilcoxon(wide[x], wide[y], zero_method="zsplit").pvalue for x, y in (("a", "b"), ("a", "c"), ("b", "c"))
    }
    assert list(p.index) == list(p.columns) == ["a", "b", "c"]
    assert p.loc["a", "b"] == p.loc["b", "a"] and p.loc["a", "a"] == 1
    adj = dict(zip(raw, stats.holm(list(raw.values()))))  # Holm over the three pairs
    for (x, y), v in adj.items():
        assert p.loc[x, y] == pytest.approx(v)
    same = stats.wilcoxon_holm(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0, 3.0]}))
    assert same.loc["a", "b"] == 1.0  # identical methods: no difference, no error


def test_tost_by_hand_and_its_90_interval():
    # d = 0.2, 0.4, 0.1, 0.3, 0.5: mean 0.3, sd sqrt(0.025), se 0.0707; margin 0.5
    d = [0.2, 0.4, 0.1, 0.3, 0.5]
    from scipy.stats import t

    se = math.sqrt(0.025) / math.sqrt(5)
    p_up = t.cdf((0.3 - 0.5) / se, 4)  # H0: mean >= +0.5
    p_lo = t.sf((0.3 + 0.5) / se, 4)  # H0: mean <= -0.5
    r = stats.tost(d, 0.5)
    assert r["p_tost"] == pytest.approx(max(p_up, p_lo), rel=1e-9)
    half = 2.1318468 * math.sqrt(0.025) / math.sqrt(5)  # t(0.95, 4)
    assert (r["lo90"], r["hi90"]) == (pytest.approx(0.3 - half, abs=1e-6), pytest.approx(0.3 + half, abs=1e-6))
    # p < 0.05 exactly when the 90 % interval lies inside the margin
    assert (r["p_tost"] < 0.05) == (-0.5 < r["lo90"] and r["hi90"] < 0.5)
    assert stats.tost([0.0, 0.0, 0.0], 0.5)["p_tost"] == 0.0  # identical runs
    assert stats.tost([0.5, 0.5, 0.5], 0.5)["p_tost"] == 1.0  # on the margin: not inside
    assert math.isnan(stats.tost([0.1], 0.5)["p_tost"])


def test_posterior_is_the_rho_0_t_posterior():
    from scipy.stats import t

    d = np.array([0.3, -0.2, 0.9, 0.4, 0.1, 0.6])
    n, mean, se = len(d), d.mean(), d.std(ddof=1) / math.sqrt(len(d))
    r = stats.posterior(d, 0.5)
    assert r["p_below"] == pytest.approx(t.cdf((-0.5 - mean) / se, n - 1))
    assert r["p_above"] == pytest.approx(t.sf((0.5 - mean) / se, n - 1))
    assert r["p_below"] + r["p_inside"] + r["p_above"] == pytest.approx(1.0)
    # with a zero margin, P(mean > 0) is 1 minus the one-sided p of the paired t-test
    from scipy.stats import ttest_1samp

    assert 1 - stats.posterior(d, 1e-12)["p_above"] == pytest.approx(
        ttest_1samp(d, 0, alternative="greater").pvalue, abs=1e-9
    )
    # baycomp's runs=1 shortcut is not rho = 0: it inflates the variance by the Nadeau-Bengio factor
    import baycomp

    x = np.zeros(n)
    shortcut = baycomp.two_on_single(x, d, rope=0.5, runs=1)
    assert shortcut[1] != pytest.approx(r["p_inside"])
    same = stats.posterior([1.0, 1.0, 1.0], 0.5)
    assert (same["p_below"], same["p_inside"], same["p_above"]) == (0.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "mean,p,p_tost,n,verdict",
    [
        (0.0, 1.0, 0.049, 8, "equivalent"),
        (0.0, 1.0, 0.051, 8, "inconclusive"),  # TOST's Holm p just above 0.05
        (0.25, 0.001, 0.01, 8, "equivalent"),  # a real difference smaller than the margin
        (1.1, 0.049, 1.0, 8, "better"),
        (1.1, 0.051, 1.0, 8, "inconclusive"),  # Holm p just above 0.05
        (-1.1, 0.01, 1.0, 8, "worse"),
        (-1.1, 0.0, 1.0, 2, "inconclusive"),  # two seeds decide nothing
        (0.0, float("nan"), float("nan"), 1, "inconclusive"),
    ],
)
def test_verdict_edges(mean, p, p_tost, n, verdict):
    assert stats.verdict(mean, p, p_tost, n) == verdict


def test_two_seeds_that_agree_decide_nothing():
    # digits' test split has 360 images: two seeds can both differ by exactly +1.39 points
    two = stats.compare([1.39, 1.39], margin=0.5)
    assert two["p"] == 0.0 and two["lo"] == two["hi"] == 1.39
    assert two["verdict"] == "inconclusive" and two["seeds_to_reject"] == 3
    assert stats.compare([0.0, 0.0], margin=0.5)["verdict"] == "inconclusive"
    assert stats.compare([0.0, 0.0, 0.0], margin=0.5)["verdict"] == "equivalent"  # identical runs


def test_verdicts_from_differences():
    eq = stats.compare([0.1, -0.1, 0.05, 0.0, 0.1, -0.05, 0.0, 0.05], margin=0.5)
    assert eq["verdict"] == "equivalent" and eq["p_tost"] < 1e-6
    inc = stats.compare([1.0, 3.0], margin=0.5)  # n = 2: t(0.975, 1) = 12.7, a huge interval
    assert inc["verdict"] == "inconclusive"
    assert stats.compare([2.0, 2.1, 1.9, 2.2, 2.0], margin=0.5)["verdict"] == "better"
    assert stats.compare([-2.0, -2.1, -1.9, -2.2, -2.0], margin=0.5)["verdict"] == "worse"
    wide = stats.compare([0.4, -0.6, 1.2, 0.1, -0.3], margin=0.5)  # around 0, too wide for TOST
    assert wide["verdict"] == "inconclusive" and wide["p_tost"] > 0.05 and wide["p"] > 0.05


def test_holm_family_can_turn_a_raw_difference_inconclusive():
    d = [0.5, 1.0, 1.5, 0.2, 1.8]  # raw p = 0.029: "better" alone, 3 x 0.029 > 0.05 in a family of 3
    alone = stats.compare(d, margin=0.5)
    assert alone["p"] < 0.05 and alone["verdict"] == "better"
    rows = [dict(stats.measure(d, 0.5), family="methods vs grid | A") for _ in range(3)]
    stats.apply_holm(rows)
    assert rows[0]["p_holm"] == pytest.approx(3 * alone["p"])
    assert [r["verdict"] for r in rows] == ["inconclusive"] * 3
    assert all(r["family_size"] == 3 and math.isfinite(r["seeds_to_reject"]) for r in rows)


def _rows_of(kind, setting, ds, margin=0.5):
    return [dict(stats.measure(d, margin), family=stats.family(kind, setting)) for d in ds]


@pytest.mark.parametrize("others", [2, 7])
def test_the_same_paired_data_give_the_same_verdict_whatever_else_the_report_holds(others):
    """One family: two methods vs the grid on setting A. Whatever other comparisons share the
    report (vs no-KD, other settings, transfer cells, start dependence), their p-values, Holm p,
    verdicts and power stay the same."""
    mine = [[0.8, 1.0, 1.4, 0.9, 1.2], [0.1, -0.1, 0.05, 0.0, 0.1]]
    alone = _rows_of("grid", "A", mine)
    stats.apply_holm(alone)
    rng = np.random.default_rng(others)
    kinds = [
        ("nokd", "A"),
        ("grid", "B"),
        ("transfer", "A"),
        ("start", "A"),
        ("nokd", "B"),
        ("transfer", "B"),
        ("start", "B"),
    ]
    noise = [list(rng.normal(0.3, 0.5, size=5)) for _ in range(others)]
    extra = [r for (k, s), d in zip(kinds[:others], noise) for r in _rows_of(k, s, [d])]
    crowd = _rows_of("grid", "A", mine) + extra
    stats.apply_holm(crowd)
    for a, b in zip(alone, crowd[:2]):
        keys = ("p", "p_holm", "p_tost_holm", "family_size", "verdict", "seeds_to_reject", "seeds_for_equivalence")
        for key in keys + ("p_inside",):
            assert a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]), key
    assert [r["verdict"] for r in crowd[:2]] == ["better", "equivalent"]
    # whereas one family over the whole report (the old design) would change the first verdict
    pooled = [dict(r, family="report") for r in _rows_of("grid", "A", mine)] + [dict(r, family="report") for r in extra]
    stats.apply_holm(pooled)
    assert pooled[0]["p_holm"] > alone[0]["p_holm"]


def test_seeds_to_reject_is_statsmodels_ttestpower_where_that_is_finite():
    from statsmodels.stats.power import TTestPower

    n = TTestPower().solve_power(effect_size=0.5, alpha=0.05, power=0.8, alternative="two-sided")
    assert stats.power.seeds_to_reject(0.5, 1.0) == math.ceil(n) == 34
    for es, nobs, alpha in ((0.3, 30, 0.05), (1.0, 8, 0.05 / 7), (3.0, 3, 0.01), (0.5, 200, 0.05 / 6)):
        assert stats.power.power_ttest(es, nobs, alpha) == pytest.approx(
            TTestPower().power(effect_size=es, nobs=nobs, alpha=alpha), abs=1e-5
        )
    # a larger family asks for a smaller alpha and so more seeds
    assert stats.power.seeds_to_reject(0.5, 1.0, family=10) > stats.power.seeds_to_reject(0.5, 1.0, family=1)
    assert stats.power.seeds_to_reject(0.0, 1.0) == math.inf  # no effect to detect
    assert stats.power.seeds_to_reject(0.01, 10.0) == math.inf  # beyond the cap
    assert math.isnan(stats.power.seeds_to_reject(0.3, float("nan")))


@pytest.mark.parametrize("es", [5.0, 7.5, 8.0, 20.0])
def test_large_effects_need_few_seeds_not_more_than_1000(es):
    """scipy's noncentral t returns NaN (or more than 1) at these effects, where TTestPower's root
    finder gave up and the old code printed "> 1000"."""
    from statsmodels.stats.power import TTestPower

    assert math.isnan(TTestPower().power(effect_size=8.0, nobs=3, alpha=0.05 / 7))  # what this guards against
    n = stats.power.seeds_to_reject(es, 1.0, family=7)
    assert n == 3 or (math.isfinite(n) and n <= 5)
    assert stats.power.power_ttest(es, int(n), 0.05 / 7) >= 0.8


def test_seeds_for_equivalence_edges():
    p = stats.power
    assert p.seeds_for_equivalence(0.6, 0.5, 0.5) == math.inf  # |mean| beyond the margin: never
    assert p.seeds_for_equivalence(0.5, 0.5, 0.5) == math.inf  # on it: never either
    assert p.seeds_for_equivalence(0.0, 0.0, 0.5) == 3
    assert math.isnan(p.seeds_for_equivalence(0.1, float("nan"), 0.5))
    # closer to the margin, or a larger family, needs more seeds
    assert p.seeds_for_equivalence(0.3, 0.5, 0.5) > p.seeds_for_equivalence(0.1, 0.5, 0.5)
    assert p.seeds_for_equivalence(0.1, 0.5, 0.5, family=7) > p.seeds_for_equivalence(0.1, 0.5, 0.5)
    # power at n - 1 is below 80 %, at n at least 80 %
    n = int(p.seeds_for_equivalence(0.1, 0.5, 0.5, family=7))
    assert p.power_tost(0.2, 1.0, n, 0.05 / 7) >= 0.8 > p.power_tost(0.2, 1.0, n - 1, 0.05 / 7)


def _tost_rejects(d, margin, alpha):
    """Vectorised TOST over the rows of d: both one-sided paired t-tests reject at `alpha`."""
    from scipy.stats import t

    n = d.shape[1]
    m, se = d.mean(1), d.std(1, ddof=1) / math.sqrt(n)
    return (t.sf((m + margin) / se, n - 1) < alpha) & (t.cdf((m - margin) / se, n - 1) < alpha)


@pytest.mark.parametrize("mean,sd,family", [(1.0, 1.5, 1), (0.6, 0.8, 7), (3.0, 0.4, 7)])
def test_seeds_to_reject_give_80_percent_of_simulated_studies(mean, sd, family):
    """Simulate studies of that many seeds at the observed mean and sd: the paired t-test at
    alpha = 0.05 / family rejects in about 80 % of them."""
    from scipy.stats import ttest_1samp

    n = int(stats.power.seeds_to_reject(mean, sd, family=family))
    rng = np.random.default_rng(12345)
    d = rng.normal(mean, sd, size=(4000, n))
    hit = np.mean(ttest_1samp(d, 0.0, axis=1).pvalue < 0.05 / family)
    assert hit >= 0.78, (n, hit)
    assert stats.power.power_ttest(mean / sd, n, 0.05 / family) == pytest.approx(hit, abs=0.025)
    assert n == 3 or stats.power.power_ttest(mean / sd, n - 1, 0.05 / family) < 0.8  # the smallest such n


@pytest.mark.parametrize("mean,sd,family", [(0.0, 0.8, 1), (0.2, 0.5, 7), (0.1, 0.3, 6)])
def test_seeds_for_equivalence_give_80_percent_of_simulated_studies(mean, sd, family):
    """Simulate studies of that many seeds at the observed mean and sd: TOST against ±0.5 at
    alpha = 0.05 / family on each side establishes equivalence in about 80 % of them, as many as
    the computed power says."""
    n = int(stats.power.seeds_for_equivalence(mean, sd, 0.5, family=family))
    rng = np.random.default_rng(54321)
    d = rng.normal(mean, sd, size=(4000, n))
    hit = np.mean(_tost_rejects(d, 0.5, 0.05 / family))
    assert hit >= 0.78, (n, hit)
    assert stats.power.power_tost(mean / sd, 0.5 / sd, n, 0.05 / family) == pytest.approx(hit, abs=0.025)
    # and the library's TOST agrees with the vectorised one on a few rows
    from statsmodels.stats.weightstats import ttost_paired

    for row in d[:20]:
        assert (ttost_paired(row, np.zeros(n), -0.5, 0.5)[0] < 0.05 / family) == _tost_rejects(
            row[None], 0.5, 0.05 / family
        )[0]


def test_heterogeneity_of_two_draws_is_welchs_t_test():
    from scipy.stats import ttest_ind_from_stats

    p = stats.heterogeneity([1.0, 0.5], [0.8, 0.9], [8, 8])
    assert p == pytest.approx(ttest_ind_from_stats(1.0, 0.8, 8, 0.5, 0.9, 8, equal_var=False).pvalue)
    assert stats.heterogeneity([1.0, 1.0], [0.0, 0.0], [8, 8]) == 1.0
    assert stats.heterogeneity([1.0, 0.0], [0.0, 0.0], [8, 8]) == 0.0
    assert stats.heterogeneity([1.0, 0.0], [0.0, 0.5], [8, 8]) < 0.001  # one draw of sd 0: no error
    assert math.isnan(stats.heterogeneity([1.0], [0.5], [8]))
    assert math.isnan(stats.heterogeneity([1.0, 2.0], [0.5, float("nan")], [8, 1]))
    # three draws: Welch's one-way ANOVA
    assert 0 < stats.heterogeneity([1.0, 0.5, 0.0], [0.5, 0.5, 0.5], [8, 8, 8]) < 0.01
