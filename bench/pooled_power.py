"""Power of a study's two designs for deciding findings over two draws of seeds, by simulation at
the effects the shipped studies see; and the error rate of the cross-fitted transfer reference.

    .venv/bin/python bench/pooled_power.py [--runs 10000] [--seed 0]

A Holm family of K comparisons (K = 6: methods vs grid; 7: methods vs no-KD), each a paired
difference over seeds with mean mu (points) and seed sd sigma, judged by the report's rule (margin
0.5: *equivalent* by TOST's Holm p < 0.05, else *better* by the t-test's Holm p < 0.05 and a mean
above 0). For each (mu, sigma, K) it prints the share of simulated studies that call the
comparison *better*:

* `one draw (8)`: one draw of 8 seeds;
* `two-stage (8 + 8)`: better in a first draw of 8 seeds and again in a second draw of 8, each
  Holm-corrected within its family (the replication rule: a finding only where both draws give it);
* `pooled (16)`: better on all 16 seeds at once (`hpo-kd report A A_b`).

`one effect`: the family's other K - 1 members have mean 0 (the worst case for Holm, whose
smallest p-value is compared with 0.05 / K); `all K`: every member has mean mu. The last rows, at
mu = 0, give the share of studies with any false finding in the family (better or worse, any
member; family-wise error).

The second table: the cross-fitted comparison of a transferred τ with the target's own selection
(`stability.reference`), under "no transfer cost" (A selects as B does), over a grid of five
temperatures whose test accuracy is `curve` + seed effect (sd 1) + run noise (sd 0.5); B selects
on val (the run's accuracy + val noise, sd 0.5). The share of studies in which it says *costs
more than B's selection*, with the same-seed regret's *does not transfer* beside it.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from hpo_kd.report.stability import pseudo_values  # noqa: E402

MARGIN, ALPHA = 0.5, 0.05


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's adjusted p-values along the last axis (vectorised over the leading ones)."""
    k = p.shape[-1]
    order = np.argsort(p, axis=-1)
    ps = np.take_along_axis(p, order, -1) * (k - np.arange(k))
    ps = np.minimum(np.maximum.accumulate(ps, axis=-1), 1.0)
    out = np.empty_like(ps)
    np.put_along_axis(out, order, ps, -1)
    return out


def verdicts(d: np.ndarray) -> np.ndarray:
    """+1 better, -1 worse, 0 otherwise (equivalent or inconclusive), for d of shape (runs, K, n)."""
    n = d.shape[-1]
    m, se = d.mean(-1), d.std(-1, ddof=1) / np.sqrt(n)
    t = m / se
    p = 2 * stats.t.sf(np.abs(t), n - 1)
    p_tost = np.maximum(stats.t.sf((m + MARGIN) / se, n - 1), stats.t.cdf((m - MARGIN) / se, n - 1))
    eq = holm(p_tost) < ALPHA
    sig = (holm(p) < ALPHA) & ~eq
    return np.where(sig, np.sign(m), 0)


def power_row(rng, runs: int, mu: float, sigma: float, k: int, all_k: bool) -> dict:
    means = np.full(k, mu) if all_k else np.r_[mu, np.zeros(k - 1)]
    d = rng.normal(means[None, :, None], sigma, size=(runs, k, 16))
    one, two, pooled = verdicts(d[..., :8]), verdicts(d[..., 8:]), verdicts(d)
    if mu == 0:
        return {
            "one": np.mean((one != 0).any(-1)),
            "two": np.mean(((one != 0) & (one == two)).any(-1)),
            "pooled": np.mean((pooled != 0).any(-1)),
        }
    return {
        "one": np.mean(one[:, 0] == 1),
        "two": np.mean((one[:, 0] == 1) & (two[:, 0] == 1)),
        "pooled": np.mean(pooled[:, 0] == 1),
    }


def transfer_row(rng, runs: int, n: int, curve) -> tuple[float, float]:
    g = len(curve)
    u = rng.normal(0, 1.0, (runs, n, 1))
    e = rng.normal(0, 0.5, (runs, n, g))
    acc = np.asarray(curve) + u + e
    tau_b = (acc + rng.normal(0, 0.5, (runs, n, g))).argmax(-1)
    tau_a = (np.asarray(curve) + u + rng.normal(0, np.sqrt(0.5), (runs, n, g))).argmax(-1)
    r, j = np.arange(runs)[:, None, None], np.arange(n)[None, None, :]
    h = acc[r, j, tau_b[:, :, None]] - acc[r, j, tau_a[:, :, None]]
    h[:, np.arange(n), np.arange(n)] = np.nan
    s = np.arange(runs)[:, None], np.arange(n)[None, :]
    regret = acc[s[0], s[1], tau_b] - acc[s[0], s[1], tau_a]

    def costs_more(x):
        v = verdicts(x[:, None, :])[:, 0]
        return float(np.mean(v == 1))

    return costs_more(pseudo_values(h)), costs_more(regret)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10000, help="simulated studies per row (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    print(f"Share of {a.runs} simulated studies that call the comparison *better* (margin {MARGIN}, Holm within K)")
    print()
    print("| μ (points) | seed sd | K | family | one draw (8) | two-stage (8 + 8) | pooled (16) |")
    print("|---|---|---|---|---|---|---|")
    for mu in (0.6, 0.8, 1.0):
        for sigma in (0.5, 0.75, 1.0):
            for k in (6, 7):
                for all_k in (False, True):
                    r = power_row(rng, a.runs, mu, sigma, k, all_k)
                    fam = f"all {k}" if all_k else "one effect"
                    print(f"| {mu} | {sigma} | {k} | {fam} | {r['one']:.2f} | {r['two']:.2f} | {r['pooled']:.2f} |")
    for sigma in (0.5, 1.0):
        r = power_row(rng, a.runs, 0.0, sigma, 7, False)
        print(f"| 0 | {sigma} | 7 | any false finding | {r['one']:.3f} | {r['two']:.3f} | {r['pooled']:.3f} |")
    print()
    print(f"Transfer under no transfer cost: share of {a.runs} simulated studies saying *costs more* (family of one)")
    print()
    print("| seeds | accuracy over τ = 1, 2, 4, 8, 16 (points) | cross-fitted (jackknife) | same-seed regret |")
    print("|---|---|---|---|")
    for n in (8, 16):
        for curve in ((0, 0.3, 0.5, 0.4, 0.1), (0, 0, 0, 0, 0), (0, 1.5, 0.5, 0, 0), (0, 3, 0.5, 0, 0)):
            xf, rg = transfer_row(rng, a.runs, n, curve)
            print(f"| {n} | {', '.join(f'{c:g}' for c in curve)} | {xf:.3f} | {rg:.3f} |")


if __name__ == "__main__":
    main()
