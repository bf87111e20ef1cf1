"""A study's verdicts from all its draws of seeds together.

A study run on several disjoint draws of seeds (`hpo-kd run STUDY --seeds 8-15 --name NAME_b`
beside the file's seeds) has its verdicts computed on every seed at once: `hpo-kd report A B`
pools the stores' trials and writes one report (reports/<A>_pooled/ unless named), with the same
families, margin and rule as a one-store report, so a family's Holm correction is unchanged and
each paired test has all the seeds. Beside every verdict it gives each draw's own mean difference
and the draws' heterogeneity p (`stats.heterogeneity`, the draw × effect interaction), a check
that the draws agree before their seeds are pooled. The per-draw verdicts stay in
`hpo-kd replication A B`, a check of stability, not a second test: one draw of a few seeds has
little power, so a finding that is inconclusive on one draw is not evidence against it
(bench/pooled_power.py measures the two designs' power).
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import pandas as pd

from ..errors import UserError
from . import stats
from .context import Analysis
from .replication import KEY, STATS, verdict_rows
from .selection import ok


def load_draws(stores: List[str]) -> List[Dict]:
    """Each store's trials, curves, study options and seeds; the stores must be draws of one study
    (the same margin) on disjoint seeds."""
    from . import load_store, study_options

    draws = []
    for store in stores:
        trials, curves = load_store(store)
        opts = study_options(store)
        seeds = sorted(int(s) for s in ok(trials)["seed"].dropna().unique())
        study = trials["study"].iloc[0]
        draws.append(dict(store=store, study=study, trials=trials, curves=curves, opts=opts, seeds=seeds))
    margins = {d["opts"]["margin"] for d in draws}
    if len(margins) > 1:
        listed = ", ".join(map(str, sorted(margins)))
        raise UserError(f"the stores' [report] margins differ ({listed}): not one question")
    for i, a in enumerate(draws):
        for b in draws[i + 1 :]:
            common = sorted(set(a["seeds"]) & set(b["seeds"]))
            if common:
                raise UserError(
                    f"{a['store']!r} and {b['store']!r} share seeds {', '.join(map(str, common))}: "
                    "draws to pool need other seeds (hpo-kd run STUDY --seeds ... --name ...)"
                )
    return draws


def pool(draws: List[Dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The draws' trials and curves as one table each (trial ids are unique across draws: they
    name the seed)."""
    trials = pd.concat([d["trials"] for d in draws], ignore_index=True)
    curves = [d["curves"] for d in draws if not d["curves"].empty]
    return trials, (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame())


def consistency(pooled: pd.DataFrame, per_draw: List[pd.DataFrame]) -> pd.DataFrame:
    """Every pooled verdict row (`replication.verdict_rows`) with each draw's n, mean, 95 % interval
    and verdict (columns d1_*, d2_*, …) and the draws' heterogeneity p (`het_p`)."""
    t = pooled.copy()
    for k, rows in enumerate(per_draw, 1):
        own = rows[KEY + STATS].rename(columns={c: f"d{k}_{c}" for c in STATS})
        t = t.merge(own, on=KEY, how="left")
    ks = range(1, len(per_draw) + 1)
    t["het_p"] = [
        stats.heterogeneity([r[f"d{k}_mean"] for k in ks], [r[f"d{k}_sd"] for k in ks], [_n(r[f"d{k}_n"]) for k in ks])
        for _, r in t.iterrows()
    ]
    return t


def _n(v) -> int:
    return int(v) if v == v else 0


def analyse_draws(stores: List[str]) -> Tuple[Analysis, Dict]:
    """The report's tables on all the draws' seeds pooled, with `draws` (store, study, seeds) and
    `consistency` (`consistency`); and the first draw's study options."""
    from . import analyse

    draws = load_draws(stores)
    opts = draws[0]["opts"]
    per_draw = [verdict_rows(analyse(d["trials"], d["curves"], opts["margin"], opts["max_spread"])) for d in draws]
    trials, curves = pool(draws)
    pooled = analyse(trials, curves, opts["margin"], opts["max_spread"])
    pooled.consistency = consistency(verdict_rows(pooled), per_draw)
    pooled.draws = [{k: d[k] for k in ("store", "study", "seeds")} for d in draws]
    return pooled, opts
