"""How many paired seeds a comparison needs for 80 % power, for each of the two tests behind a
verdict: the two-sided paired t-test (to reject "no difference") and TOST against ±margin (to
establish equivalence), each at the observed mean and sd, at alpha = 0.05 / family size (Holm's
worst case: a family's smallest p-value is compared with 0.05 / K).

Both powers are exact integrals over the sample sd. With Z ~ N(0, 1) the standardised mean and
w = s / sd = sqrt(V / (n - 1)), V ~ chi2(n - 1), independent of Z:

* t-test: reject when |mean_hat| > c s / sqrt(n), c = t(1 - alpha / 2, n - 1), so
  power = E_w[Phi(delta - c w) + Phi(-delta - c w)], delta = mean sqrt(n) / sd;
* TOST: reject both one-sided nulls when mean_hat - c s / sqrt(n) > -m and mean_hat + c s /
  sqrt(n) < m, c = t(1 - alpha, n - 1), so power = E_w[max(0, Phi(b - c w) - Phi(a + c w))],
  a = (-m - mean) sqrt(n) / sd, b = (m - mean) sqrt(n) / sd.

statsmodels' `TTestPower` computes the first from scipy's noncentral t, which returns NaN for
large noncentrality (statsmodels 0.15, scipy 1.17: `TTestPower().power(effect_size=8, nobs=3,
alpha=0.05/7)` is NaN), so its root finder fails for large effects; statsmodels has no power for
the paired TOST. So both are here, by
quadrature over w (scipy), and agree with `TTestPower` where that is finite (tests/test_stats.py).
The smallest n is found by bisection over integers (power rises with n).
"""

from __future__ import annotations

import math
from functools import lru_cache

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 3
MAX_SEEDS = 1000


def _expect(f, df: int, w_max: float = math.inf) -> float:
    """E[f(w) 1(w < w_max)], w = sqrt(V / df), V ~ chi2(df): Gauss–Legendre over the quantiles u
    of V, u in (0, P(w < w_max)); f takes an array."""
    import numpy as np
    from scipy import special, stats

    u_max = 1.0 if not math.isfinite(w_max) else float(stats.chi2.cdf(df * w_max**2, df))
    if u_max <= 0:
        return 0.0
    x, weights = special.roots_legendre(200)
    u = (x + 1) / 2 * u_max
    w = np.sqrt(stats.chi2.ppf(u, df) / df)
    return float(np.sum(weights * f(w)) * u_max / 2)


@lru_cache(maxsize=4096)
def power_ttest(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs at the standardised effect |mean| / sd."""
    from scipy import stats

    if n < 2:
        return float("nan")
    c, delta = float(stats.t.ppf(1 - alpha / 2, n - 1)), abs(effect) * math.sqrt(n)
    return min(1.0, _expect(lambda w: stats.norm.cdf(delta - c * w) + stats.norm.cdf(-delta - c * w), n - 1))


@lru_cache(maxsize=4096)
def power_tost(effect: float, bound: float, n: int, alpha: float = ALPHA) -> float:
    """Power of TOST (each side at `alpha`) with n pairs, true mean `effect` and margin `bound`,
    both in units of the sd."""
    from scipy import stats

    if n < 2:
        return float("nan")
    c = float(stats.t.ppf(1 - alpha, n - 1))
    a, b = (-bound - effect) * math.sqrt(n), (bound - effect) * math.sqrt(n)
    if b <= a:
        return 0.0
    # TOST rejects only while a + c w < b - c w, i.e. w < (b - a) / (2 c)
    p = _expect(lambda w: stats.norm.cdf(b - c * w) - stats.norm.cdf(a + c * w), n - 1, (b - a) / (2 * c))
    return min(1.0, max(0.0, p))


def _smallest_n(power_at) -> float:
    """The smallest n in [2, MAX_SEEDS] with power_at(n) >= POWER (at least MIN_SEEDS); inf if none."""
    if not power_at(MAX_SEEDS) >= POWER:
        return math.inf
    lo, hi = 2, MAX_SEEDS  # power_at(hi) >= POWER
    while lo < hi:
        mid = (lo + hi) // 2
        if power_at(mid) >= POWER:
            hi = mid
        else:
            lo = mid + 1
    return float(max(MIN_SEEDS, lo))


def seeds_to_reject(mean: float, sd: float, family: int = 1) -> float:
    """Paired seeds for 80 % power of the two-sided t-test at the observed mean and sd, alpha =
    0.05 / family; at least MIN_SEEDS; inf beyond MAX_SEEDS or with mean 0; nan without an sd."""
    if sd != sd or mean != mean:
        return float("nan")
    if mean == 0:
        return math.inf
    if sd == 0:
        return float(MIN_SEEDS)
    alpha = ALPHA / max(family, 1)
    return _smallest_n(lambda n: power_ttest(round(abs(mean) / sd, 12), n, alpha))


def seeds_for_equivalence(mean: float, sd: float, margin: float, family: int = 1) -> float:
    """Paired seeds for 80 % power of TOST against ±margin if the true mean were the observed one,
    alpha = 0.05 / family on each side; inf when |mean| >= margin (equivalence is then not what
    is true) or beyond MAX_SEEDS; nan without an sd."""
    if sd != sd or mean != mean:
        return float("nan")
    if abs(mean) >= margin:
        return math.inf
    if sd == 0:
        return float(MIN_SEEDS)
    alpha = ALPHA / max(family, 1)
    return _smallest_n(lambda n: power_tost(round(abs(mean) / sd, 12), round(margin / sd, 12), n, alpha))
