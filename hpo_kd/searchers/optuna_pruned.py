"""Optuna with pruning: TPE over log τ in [low, high] (as `optuna`), and an Optuna pruner that
stops a poor trial early, with a budget in epochs (`EpochBudgetSearcher`): at most `budget` full
students, what pruned trials leave unspent going to further trials.

Inside Ray Tune an Optuna pruner does nothing by itself (Ray Tune 2.60's `OptunaSearch` never
asks `should_prune`), and a trial Tune stops early reaches Optuna as COMPLETE with its early
accuracy. Here the search's scheduler reports every epoch to the Optuna trial and asks the
pruner, and a stopped trial is told PRUNED (`hpo_kd.tune.multifidelity`): TPE ranks it below the
trials that ran to the end, by how far it got.

    [methods.optuna_pruned]
    budget = 8             # full students' epochs per setting and seed
    # trials = 24          # at most (default: 3 x budget)
    pruner = "median"      # or "halving" (Optuna's SuccessiveHalvingPruner)
    grace_period = 1       # the first epoch a trial can be pruned at
    reduction_factor = 3   # "halving": the top 1/reduction_factor goes on at each rung
    startup_trials = 4     # random trials before TPE (default: half the budget, 2..10)
    low = 1.0
    high = 16.0
    separate = false       # true: search tau_t and tau_s separately
    seed = 0               # TPE sampler seed (combined with the study seed)

"median" stops a trial whose val accuracy at an epoch (from `grace_period` on) is below the median
of the COMPLETE trials' at that epoch. The search proposes in batches of `slots` trials and tells
Optuna a batch only when all of it has finished, so the median pruner sees the same COMPLETE
trials whatever the timing. "halving" compares trials still running too: its search runs one
trial at a time, so its decisions do not depend on timing either.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

from ..checks import low_below_high, option
from ..plan import Trial
from .base import EpochBudgetSearcher, SearchRun, one_tau_unless_student_temperature, register
from .optuna import storage_of


@dataclass(frozen=True)
class OptunaPrunedOptions:
    budget: int = option(8, "int", lo=1, doc="full students' epochs")
    trials: Optional[int] = option(None, "int", lo=1, doc="at most")
    pruner: str = option("median", "choice", choices=("median", "halving"))
    grace_period: int = option(1, "int", lo=1)
    reduction_factor: int = option(3, "int", lo=2)
    startup_trials: Optional[int] = option(None, "int", lo=1)
    low: float = option(1.0, "float", lo=0, lo_open=True)
    high: float = option(16.0, "float", lo=0, lo_open=True)
    separate: bool = option(False, "bool")
    seed: int = option(0, "int", lo=0)
    method: str = "fixed"

    def resolve(self) -> "OptunaPrunedOptions":
        startup = self.startup_trials or min(10, max(2, self.budget // 2))
        return dataclasses.replace(self, trials=self.trials or 3 * self.budget, startup_trials=startup)

    def check(self, path: str, prefix: str) -> None:
        low_below_high(path, prefix, self.low, self.high)
        if self.separate:
            one_tau_unless_student_temperature(path, prefix + "separate", self.method)


@register("optuna_pruned")
class OptunaPruned(EpochBudgetSearcher):
    """Optuna's TPE with a pruner that acts, pruned trials told PRUNED, a budget in epochs."""

    name = "optuna_pruned"
    label = "Optuna pruned"
    color = "C6"
    marker = "d"
    order = 12
    Options = OptunaPrunedOptions
    budget_keys = ("budget", "trials", "startup_trials")

    @classmethod
    def tune_search(cls, t: Trial, spec: Dict[str, Any], run: SearchRun):
        from ray.tune.search.optuna import OptunaSearch

        from ..tune.multifidelity import EpochBudget, PrunedOptunaSearch, PrunerScheduler, pruner_of
        from ..tune.search import search_space, sync, tpe_sampler

        done = run.finished(t.id)
        sampler = tpe_sampler(t)
        name = sync(t, storage_of(run), run.rows(t.id), sampler)
        epochs = cls.trial_epochs(t)
        searcher = PrunedOptunaSearch(
            space=OptunaSearch.convert_search_space(search_space(t)),
            metric="val_acc",
            mode="max",
            sampler=sampler,
            storage=storage_of(run),
            study_name=name,
            epochs=epochs,
            pruner=pruner_of(t.search),
        )
        batch = 1 if t.search["pruner"] == "halving" else run.slots
        spec = dict(spec, per_epoch=True)  # the pruner reads every epoch
        s = EpochBudget(spec, searcher, t.budget - len(done), len(done), batch, cls.epochs_left(t, done), epochs)
        return s, PrunerScheduler(searcher)

    @classmethod
    def finished(cls, t: Trial, run: SearchRun) -> None:
        from ..tune.search import sync

        sync(t, storage_of(run), run.rows(t.id))
