"""Optuna: TPE over log τ in [low, high], `trials` students per setting and seed, the first
`startup_trials` drawn at random, optionally with Ray Tune's ASHA stopping poor trials early.

A search is an `OptunaSearch` with a seeded `TPESampler` inside the study's one Tuner
(`hpo_kd.tune.search`), proposing in whole batches of `slots` trials; each search is also an
Optuna study in `runs/<study>/optuna.db`, made to follow the store.

    [methods.optuna]
    trials = 8             # per setting and seed (raising it extends the same search)
    startup_trials = 4     # random trials before TPE (default: half the budget, 2..10)
    low = 1.0              # log-uniform range
    high = 16.0
    separate = false       # true: search tau_t and tau_s separately
    seed = 0               # TPE sampler seed (combined with the study seed)
    asha = false           # stop poor trials early with Ray Tune's ASHA
    grace_period = 2
    reduction_factor = 2

With `asha = true`, a trial ASHA stopped is told to Optuna PRUNED (TPE ranks it below the trials
that ran to the end), not COMPLETE at its early accuracy, which TPE would take as final.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..checks import low_below_high, option
from ..plan import Trial
from .base import EpochBudgetSearcher, Searcher, SearchRun, one_tau_unless_student_temperature, register


@dataclass(frozen=True)
class OptunaOptions:
    trials: int = option(8, "int", lo=1, doc="students per setting and seed")
    # Optuna's default (10 random trials before TPE) would make a small budget pure random
    # search: by default half the budget (at least 2, at most 10) is random.
    startup_trials: Optional[int] = option(None, "int", lo=1, doc="random trials before TPE")
    low: float = option(1.0, "float", lo=0, lo_open=True, doc="log-uniform range")
    high: float = option(16.0, "float", lo=0, lo_open=True)
    separate: bool = option(False, "bool", doc="search tau_t and tau_s separately")
    seed: int = option(0, "int", lo=0, doc="TPE sampler seed (combined with the study seed)")
    asha: bool = option(False, "bool", doc="stop poor trials early with Ray Tune's ASHA")
    grace_period: int = option(2, "int", lo=1)
    reduction_factor: int = option(2, "int", lo=2)
    method: str = "fixed"

    def resolve(self) -> "OptunaOptions":
        if self.startup_trials is None:
            return dataclasses.replace(self, startup_trials=min(10, max(2, self.trials // 2)))
        return self

    def check(self, path: str, prefix: str) -> None:
        low_below_high(path, prefix, self.low, self.high)
        if self.separate:
            one_tau_unless_student_temperature(path, prefix + "separate", self.method)


def storage_of(run: SearchRun):
    """The study's Optuna storage (`runs/<study>/optuna.db`), opened once per run."""
    from ..tune.search import open_storage

    if "optuna_storage" not in run.shared:
        run.shared["optuna_storage"] = open_storage(run.folder)
    return run.shared["optuna_storage"]


@register("optuna")
class Optuna(Searcher):
    """Optuna's seeded TPE through Ray Tune's `OptunaSearch` (optionally with ASHA)."""

    name = "optuna"
    label = "Optuna"
    color = "C1"
    marker = "D"
    order = 10
    Options = OptunaOptions
    # Raising `trials` extends the same search (its finished trials are kept and handed to the
    # sampler), and so does a new startup_trials.
    budget_keys = ("trials", "startup_trials")

    @classmethod
    def budget(cls, opts: Dict[str, Any]) -> int:
        return opts["trials"]

    @classmethod
    def tune_search(cls, t: Trial, spec: Dict[str, Any], run: SearchRun):
        from ..tune.search import asha, optuna_search

        if not t.search["asha"]:
            s = optuna_search(t, spec, run.finished(t.id), run.slots, storage=storage_of(run), rows=run.rows(t.id))
            return s, None
        # ASHA stops trials early: a stopped trial is told PRUNED, not COMPLETE at its early accuracy
        from ..tune.multifidelity import StoppedAsPruned

        epochs = EpochBudgetSearcher.trial_epochs(t)
        s = optuna_search(
            t, spec, run.finished(t.id), run.slots, storage_of(run), run.rows(t.id), cls=StoppedAsPruned, epochs=epochs
        )
        return s, asha(t, s.spec)

    @classmethod
    def finished(cls, t: Trial, run: SearchRun) -> None:
        from ..tune.search import sync

        sync(t, storage_of(run), run.rows(t.id))
