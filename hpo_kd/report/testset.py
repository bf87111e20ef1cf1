"""The test set's own sampling error, which intervals over seeds leave out.

Every accuracy in a report is a count of correct test samples out of the test set's N. When every
seed evaluates on the same test set (MNIST-1D's test signals come from one generator seed), the
intervals over seeds are conditional on that test set: they do not include how much another
test set of the same size would move the accuracies, and more seeds do not shrink that part. The
store keeps no per-sample predictions, so the report gives its size instead (not a bootstrap):

* N, inferred from the stored accuracies: the smallest N ≤ 100,000 for which every test accuracy
  of the setting is a whole number of samples out of N (within 0.01 sample);
* the binomial standard error of one accuracy p, sqrt(p (1 − p) / N);
* an upper bound on the standard error of a paired difference of two students' accuracies on the
  same N samples: its variance is (p01 + p10 − (p01 − p10)²) / N, p01 and p10 the shares of
  samples only one of them gets right, and p01 + p10 is at most the sum of their error rates
  e1 + e2, so the standard error is at most sqrt((e1 + e2) / N). Students that err on the same
  samples come far below it; the per-sample predictions would say how far.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Dict, List, Optional

import numpy as np
import pandas as pd

from .fmt import table
from .selection import BASELINE, GRID, ok

if TYPE_CHECKING:
    from .context import ReportContext

MAX_N = 100_000
TOL = 0.01  # samples


def infer_size(acc, max_n: int = MAX_N) -> Optional[int]:
    """The smallest N for which every accuracy in `acc` (fractions) is k / N; None without at least
    5 distinct values or without such an N up to max_n."""
    a = np.unique(np.asarray(acc, dtype=float)[np.isfinite(acc)])
    if len(a) < 5:
        return None
    n = np.arange(1, max_n + 1, dtype=float)
    cand = n[np.abs(a[0] * n - np.round(a[0] * n)) < TOL]
    for v in a[1:]:
        cand = cand[np.abs(v * cand - np.round(v * cand)) < TOL]
        if not len(cand):
            return None
    return int(cand[0])


def table_of(trials: pd.DataFrame, sel: pd.DataFrame) -> pd.DataFrame:
    """Per setting: N, the grid's and no-KD's mean test accuracy, the binomial standard error of
    one accuracy (at the grid's mean), and the bound on the standard error of grid minus no-KD."""
    good = ok(trials)
    rows = []
    for setting, g in sel.groupby("setting", sort=True):
        n = infer_size(good.loc[good["setting"] == setting, "test_acc"])
        acc = {m: float(h["test"].mean()) / 100 for m, h in g.groupby("method") if m in (GRID, BASELINE)}
        p = acc.get(GRID, float(g["test"].mean()) / 100)
        r: Dict = {"setting_label": g["setting_label"].iloc[0], "n_test": n if n else float("nan"), "acc": 100 * p}
        r["se_one"] = 100 * math.sqrt(p * (1 - p) / n) if n else float("nan")
        both = n and len(acc) == 2
        r["se_diff_max"] = 100 * math.sqrt((2 - acc[GRID] - acc[BASELINE]) / n) if both else float("nan")
        r["per_point"] = n / 100 if n else float("nan")
        rows.append(r)
    return pd.DataFrame(rows)


def section(ctx: ReportContext) -> List[str]:
    t = table_of(ctx.trials, ctx.sel) if not ctx.sel.empty else pd.DataFrame()
    if t.empty:
        return []
    return [
        "## Test set",
        "",
        "Every interval in this report is over seeds. When every seed evaluates on the same test set, the "
        "intervals are conditional on it: the test set's own sampling error is common to every seed, is not "
        "in them and does not shrink with more seeds. Its size, from the test-set size N (inferred from the "
        "stored accuracies): the binomial standard error of one accuracy (at the grid's mean), and an upper "
        "bound on the standard error of a paired difference (grid minus no-KD; two students that err on the "
        "same samples come far below it; the store keeps no per-sample predictions to say how far).",
        "",
        table(
            t,
            [
                ("setting_label", "setting", ""),
                ("n_test", "test samples N", ".0f"),
                ("per_point", "samples per point", ".0f"),
                ("acc", "grid test %", ".2f"),
                ("se_one", "SE of one accuracy (points)", ".2f"),
                ("se_diff_max", "SE of grid − no-KD, at most (points)", ".2f"),
            ],
        ),
        "",
    ]
