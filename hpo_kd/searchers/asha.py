"""ASHA (Li et al., 2020) on Ray Tune's `ASHAScheduler`: fixed-τ students tried one after another
(the list `temperatures` in its order, or seeded log-uniform draws in [low, high]); at each rung
(epochs grace_period, grace_period x reduction_factor, ...) a trial whose val accuracy is below
the top 1/reduction_factor of the search's trials that reached that rung stops. Its budget is in
epochs (`EpochBudgetSearcher`): at most `budget` full students, the grid's cost for a grid of
`budget` temperatures; what stopped trials leave unspent goes to further trials (log-uniform
draws only: a list is tried once). Selection on val as for every searcher: among the trials
that ran every epoch (a stopped trial is paid for, its epochs in the store, but not selected).

    [methods.asha]
    temperatures = [1, 2, 4, 8, 16]  # the candidates, in this order; or leave out for log-uniform draws
    # low = 1.0, high = 16.0         # the draws' range (without temperatures)
    budget = 5                       # full students' epochs (default: as many as temperatures, else 8)
    # trials = 15                    # at most (default: every temperature, else 3 x budget)
    grace_period = 1                 # epochs before the first rung
    reduction_factor = 3             # the top 1/reduction_factor goes on at each rung
    concurrent = 1                   # its trials at once (1: ASHA's decisions do not depend on timing)
    seed = 0                         # the draws (combined with the study seed)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..checks import fail, low_below_high, option
from ..plan import Trial
from .base import EpochBudgetSearcher, SearchRun, register


@dataclass(frozen=True)
class AshaOptions:
    temperatures: Optional[List[float]] = option(None, "floats", lo=0, lo_open=True, doc="candidates, in order")
    low: Optional[float] = option(None, "float", lo=0, lo_open=True, doc="log-uniform range (1)")
    high: Optional[float] = option(None, "float", lo=0, lo_open=True, doc="log-uniform range (16)")
    budget: Optional[int] = option(None, "int", lo=1, doc="full students' epochs")
    trials: Optional[int] = option(None, "int", lo=1, doc="at most")
    grace_period: int = option(1, "int", lo=1)
    reduction_factor: int = option(3, "int", lo=2)
    concurrent: int = option(1, "int", lo=1, doc="trials of the search at once")
    seed: int = option(0, "int", lo=0)
    method: str = "fixed"

    def resolve(self) -> "AshaOptions":
        n = len(self.temperatures) if self.temperatures else None
        budget = self.budget or n or 8
        changes: Dict[str, Any] = {"budget": budget, "trials": self.trials or n or 3 * budget}
        if self.temperatures is None:
            changes.update(low=1.0 if self.low is None else self.low, high=16.0 if self.high is None else self.high)
        return dataclasses.replace(self, **changes)

    def check(self, path: str, prefix: str) -> None:
        if self.temperatures is not None:
            if self.low is not None or self.high is not None:
                fail(path, prefix + "temperatures", "give either temperatures = [...] or low/high, not both")
            if self.trials > len(self.temperatures):
                fail(path, prefix + "trials", f"{self.trials} is more than the {len(self.temperatures)} temperatures")
        else:
            low_below_high(path, prefix, self.low, self.high)


def candidates(t: Trial) -> List[float]:
    """Search `t`'s τ, in the order it tries them: its list, or `trials` seeded log-uniform draws."""
    o = t.search
    if o.get("temperatures"):
        return list(o["temperatures"])[: o["trials"]]
    from ..tune.multifidelity import log_uniform

    return log_uniform(o["low"], o["high"], o["seed"] * 100003 + t.seed, o["trials"])


@register("asha")
class Asha(EpochBudgetSearcher):
    """ASHA over a list of τ or log-uniform draws, at most `budget` students' epochs."""

    name = "asha"
    label = "ASHA"
    color = "C8"
    marker = "X"
    order = 15
    Options = AshaOptions

    @classmethod
    def tune_search(cls, t: Trial, spec: Dict[str, Any], run: SearchRun):
        from ..tune.multifidelity import EpochBudget, Proposals, asha_scheduler, replay

        done = run.finished(t.id)
        done = done.sort_values("trial_index") if len(done) else done
        epochs = cls.trial_epochs(t)
        searcher = Proposals(candidates(t)[len(done) :])
        spec = dict(spec, per_epoch=True)  # ASHA reads every epoch
        s = EpochBudget(
            spec, searcher, t.budget - len(done), len(done), t.search["concurrent"], cls.epochs_left(t, done), epochs
        )
        scheduler = asha_scheduler(t.search["grace_period"], t.search["reduction_factor"], epochs)
        if len(done):  # a resumed search: its finished trials' rungs, as they ran
            curves = run.store.curves()
            replay(
                scheduler,
                [curves[curves["trial_id"] == i].sort_values("epoch").to_dict("records") for i in done["trial_id"]],
            )
        return s, scheduler
