"""The cross-fitted comparison of a transferred τ with the target's own selection: its jackknife
over seeds, and its error rate by simulation when a transfer costs nothing."""

import numpy as np
import pytest
from scipy import stats as sps

from hpo_kd.report import stability


def _statistic(h):
    """T(H): the mean over seeds j of the mean over the other seeds i of H[i, j] (nan left out)."""
    return np.mean([np.nanmean(h[:, j]) for j in range(h.shape[1]) if np.isfinite(h[:, j]).any()])


@pytest.mark.parametrize("missing", [0, 3])
def test_pseudo_values_are_the_delete_one_seed_jackknife(missing):
    rng = np.random.default_rng(missing)
    n = 7
    h = rng.normal(size=(n, n))
    np.fill_diagonal(h, np.nan)
    for k in range(missing):
        h[k, (k + 2) % n] = np.nan  # a τ that seed j never ran
    drop = [_statistic(np.delete(np.delete(h, k, 0), k, 1)) for k in range(n)]
    expect = n * _statistic(h) - (n - 1) * np.array(drop)
    assert stability.pseudo_values(h) == pytest.approx(expect)
    if not missing:  # a U-statistic: the pseudo-values average to the statistic itself
        assert stability.pseudo_values(h).mean() == pytest.approx(_statistic(h))
    # vectorised over leading axes
    both = stability.pseudo_values(np.stack([h, 2 * h]))
    assert both[1] == pytest.approx(2 * both[0])


def _simulate(rng, runs, n, curve_b, curve_a, run_sd=0.5, val_sd=0.5, seed_sd=1.0, shared=0.0):
    """`runs` studies of n seeds on a grid of len(curve_b) temperatures. Test accuracy on B, seed j,
    at τ: curve_b[τ] + a seed effect + run noise; B selects on its val (the same run's accuracy plus
    val noise); A selects on its own val, with mean curve_a and, with `shared` > 0, part of B's run
    noise of the same seed (a shared teacher and split). Returns (H, regret): H[r, i, j] = acc_j at
    B's τ from seed i minus acc_j at A's τ from seed i, and the same-seed regret per seed."""
    g = len(curve_b)
    u = rng.normal(0, seed_sd, (runs, n, 1))
    e = rng.normal(0, run_sd, (runs, n, g))
    acc = np.asarray(curve_b) + u + e
    tau_b = (acc + rng.normal(0, val_sd, (runs, n, g))).argmax(-1)
    own_noise = np.sqrt(run_sd**2 * (1 - shared**2) + val_sd**2)
    tau_a = (np.asarray(curve_a) + u + shared * e + rng.normal(0, own_noise, (runs, n, g))).argmax(-1)
    r, j = np.arange(runs)[:, None, None], np.arange(n)[None, None, :]
    h = acc[r, j, tau_b[:, :, None]] - acc[r, j, tau_a[:, :, None]]
    h[:, np.arange(n), np.arange(n)] = np.nan
    s = np.arange(n)[None, :]
    regret = acc[np.arange(runs)[:, None], s, tau_b] - acc[np.arange(runs)[:, None], s, tau_a]
    return h, regret


def _verdicts(d, margin=0.5):
    """The report's rule on each row of d (a family of one): "costs more" when the paired t-test's
    p < 0.05 with a mean above 0 and TOST does not establish equivalence."""
    n = d.shape[1]
    m, sd = d.mean(1), d.std(1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = m / (sd / np.sqrt(n))
        p = np.where(sd > 0, 2 * sps.t.sf(np.abs(t), n - 1), np.where(m == 0, 1.0, 0.0))
        se = sd / np.sqrt(n)
        p_tost = np.maximum(sps.t.sf((m + margin) / se, n - 1), sps.t.cdf((m - margin) / se, n - 1))
    p_tost = np.where(sd > 0, p_tost, np.where(np.abs(m) < margin, 0.0, 1.0))
    return (p < 0.05) & (m > 0) & ~(p_tost < 0.05)


CURVE = (0.0, 0.3, 0.5, 0.4, 0.1)  # points over τ = 1, 2, 4, 8, 16: a flat top, selections vary


@pytest.mark.parametrize(
    "n,curve,kw",
    [
        (8, CURVE, {}),
        (8, CURVE, {"shared": 0.7}),  # A's selection shares seed i's run noise with B's
        (16, CURVE, {}),
        (8, (0.0, 0.0, 0.0, 0.0, 0.0), {}),  # no τ matters
        (8, (0.0, 1.5, 0.5, 0.0, 0.0), {}),  # most seeds pick the same τ
        (8, (0.0, 3.0, 0.5, 0.0, 0.0), {}),  # every seed picks the same τ: a degenerate reference
        (8, CURVE, {"val_sd": 0.1}),
        (8, CURVE, {"val_sd": 2.0, "run_sd": 1.0}),
    ],
)
def test_no_transfer_cost_says_costs_more_in_at_most_5_percent_of_studies(n, curve, kw):
    """Under "no transfer cost" (A selects like B does), the cross-fitted comparison through its
    jackknife pseudo-values says "costs more than B's selection" in at most 5 % of 4,000 studies."""
    rng = np.random.default_rng(2024 + n)
    h, _ = _simulate(rng, 4000, n, curve, curve, **kw)
    rate = _verdicts(stability.pseudo_values(h)).mean()
    assert rate <= 0.05, rate


def test_the_same_seed_regret_is_not_a_test_of_transfer_cost():
    """Why the cross-fitted reference: B's own τ is selected on the val split of the same seed, so
    the regret says "does not transfer" far more often than 5 % when A selects like B."""
    h, regret = _simulate(np.random.default_rng(7), 4000, 8, CURVE, CURVE)
    assert _verdicts(regret).mean() > 0.2
    assert _verdicts(stability.pseudo_values(h)).mean() <= 0.05


def test_a_real_transfer_cost_is_found():
    """A prefers low τ where B's accuracy peaks at τ = 4 (a cost of about 0.27 points against B's own
    selections): with 16 seeds and a margin of 0.1 the comparison finds it in most studies."""
    curve_a = (1.0, 0.6, 0.0, -0.5, -1.0)
    h, _ = _simulate(np.random.default_rng(3), 2000, 16, CURVE, curve_a, run_sd=0.3, val_sd=0.3)
    pv = stability.pseudo_values(h)
    assert 0.2 < pv.mean(1).mean() < 0.35
    assert _verdicts(pv, margin=0.1).mean() > 0.7
