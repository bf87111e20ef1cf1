"""Multi-fidelity searches in the study's Tuner: trials that may stop early, the searches that
spend a budget in epochs, and Optuna told the truth about a stopped trial. This module imports
Ray Tune and Optuna: only the searchers' run hooks import it, once Ray is starting.

- `EpochBudget`: a search that spends at most its budget in epochs. It proposes a trial only
  while the epochs its finished trials ran, plus the planned epochs of every trial it proposes
  now, fit; a trial that stops early leaves its unspent epochs to later trials.
- `Proposals`: a Ray Tune searcher that proposes a fixed list of τ in order (ASHA's candidates).
- `StoppedAsPruned`: Ray Tune's `OptunaSearch` tells Optuna COMPLETE, with the early accuracy,
  for a trial that a scheduler (ASHA) stopped, and TPE then takes that accuracy as final. This
  subclass tells such a trial PRUNED (its last epoch's accuracy its last intermediate value), so
  TPE ranks it below every trial that ran to the end.
- `PrunedOptunaSearch` and `PrunerScheduler`: Ray Tune 2.60's `OptunaSearch` reports every
  epoch to Optuna but creates its study with a `NopPruner` and never calls `should_prune`, so an
  Optuna pruner does nothing inside Tune. Here the search's study gets the pruner, and the
  search's scheduler reports each epoch's val accuracy to the Optuna trial, asks `should_prune`,
  and stops the Tune trial when it says so; the trial is then told PRUNED.
"""

from __future__ import annotations

import math
import random
from typing import Any, Dict, List, Optional

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from .search import Batched


def epochs_of(result: Optional[Dict[str, Any]]) -> Optional[int]:
    """The epochs a trial ran, from its last result (a per-epoch report or the final one)."""
    if not result:
        return None
    e = result.get("epoch", result.get("training_iteration"))
    return int(e) if e is not None and e == e else None


class EpochBudget(Batched):
    """A search of at most `trials` trials that spends at most `epochs_left` epochs (see the
    module docstring): a trial is charged the epochs it ran, a failed one its planned epochs."""

    def __init__(self, spec, searcher, trials: int, offset: int, batch: int, epochs_left: float, per_trial: int):
        super().__init__(spec, searcher, trials, offset, batch)
        self.epochs_left, self.per_trial = epochs_left, per_trial

    def room(self) -> int:
        return min(self.batch_size, self.left, int(self.epochs_left // self.per_trial))

    def record(self, sid: str, result: Optional[Dict], error: bool) -> None:
        super().record(sid, result, error)
        ran = None if error else epochs_of(result)
        self.epochs_left -= ran if ran else self.per_trial


def log_uniform(low: float, high: float, seed: int, n: int) -> List[float]:
    """`n` seeded log-uniform draws in [low, high] (the same seed gives the same list)."""
    rng = random.Random(seed)
    return [math.exp(rng.uniform(math.log(low), math.log(high))) for _ in range(n)]


class Proposals(Searcher):
    """Proposes `taus` in order (tau_t = tau_s = tau), whatever the results; then nothing."""

    def __init__(self, taus: List[float]):
        super().__init__(metric="val_acc", mode="max")
        self.taus, self.given = list(taus), 0

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        if self.given >= len(self.taus):
            return None
        self.given += 1
        return {"tau": float(self.taus[self.given - 1])}

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        pass


def asha_scheduler(grace_period: int, reduction_factor: int, epochs: int) -> ASHAScheduler:
    """One search's ASHA: its rungs compare that search's trials only."""
    return ASHAScheduler(
        time_attr="epoch",
        metric="val_acc",
        mode="max",
        max_t=epochs + 1,  # +1: reaching max_t would stop a trial before its final report
        grace_period=grace_period,
        reduction_factor=reduction_factor,
    )


class _Replayed:
    def __init__(self, trial_id: str):
        self.trial_id = trial_id


def replay(scheduler: ASHAScheduler, curves: List[List[Dict[str, Any]]]) -> None:
    """Give a resumed search's ASHA the rung results of the trials it finished before (their
    curves, in the order they ran), as if they had just run: the search goes on where it was.
    (Ray's ASHA keeps its rungs on its one bracket, `_brackets[0]`, with `brackets=1`.)"""
    bracket = scheduler._brackets[0]
    for i, curve in enumerate(curves):
        t = _Replayed(f"replayed-{i}")
        for row in curve:
            if bracket.on_result(t, int(row["epoch"]), float(row["val_acc"])) == TrialScheduler.STOP:
                break


class StoppedAsPruned(OptunaSearch):
    """`OptunaSearch` that tells a trial stopped before its planned `epochs` PRUNED, not COMPLETE
    (see the module docstring). `pruned`: the searcher trial ids told so."""

    def __init__(self, *args, epochs: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.epochs = epochs
        self.pruned: set = set()
        self.reported: Dict[str, int] = {}  # searcher trial id -> the last epoch reported to Optuna

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        super().on_trial_result(trial_id, result)
        self.reported[trial_id] = int(result.get("training_iteration", 0))

    def report(self, trial_id: str, value: float, epoch: int) -> None:
        """An epoch's val accuracy as the Optuna trial's intermediate value (once per epoch)."""
        if epoch > self.reported.get(trial_id, 0):
            self._ot_trials[trial_id].report(float(value), epoch)
            self.reported[trial_id] = epoch

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        ran = epochs_of(result)
        stopped = not error and result and not result.get("final") and ran is not None and ran < self.epochs
        if not stopped or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)
        value = result.get("val_acc")
        if value is not None and value == value:
            # the epoch that stopped it never reached the searcher (Tune skips it once stopped)
            self.report(trial_id, value, ran)
        self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
        self._completed_trials.add(trial_id)
        self.pruned.add(trial_id)


class PrunedOptunaSearch(StoppedAsPruned):
    """`OptunaSearch` whose study has a pruner that acts: `should_stop` reports an epoch and asks
    the pruner (its `PrunerScheduler` calls it); the per-epoch reports Tune hands the searcher
    are left to it (one report per epoch)."""

    def __init__(self, *args, pruner, **kwargs):
        super().__init__(*args, **kwargs)
        self._ot_study.pruner = pruner  # Ray's OptunaSearch creates its study with a NopPruner

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        pass  # reported by `should_stop`, before Tune hands the result on

    def should_stop(self, trial_id: str, value: float, epoch: int) -> bool:
        if trial_id not in self._ot_trials or epoch >= self.epochs:
            return False  # the last epoch ends the trial anyway: it is COMPLETE
        self.report(trial_id, value, epoch)
        return bool(self._ot_trials[trial_id].should_prune())


class PrunerScheduler(FIFOScheduler):
    """The scheduler of one pruned Optuna search: every epoch's result goes to the search's
    Optuna trial, and the trial stops when the pruner says so."""

    def __init__(self, search: PrunedOptunaSearch):
        super().__init__()
        self.search = search

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_result(self, tune_controller, trial, result: Dict) -> str:
        sid = trial.config.get("spec", {}).get("search_trial")
        if result.get("final") or sid is None or "val_acc" not in result or epochs_of(result) is None:
            return TrialScheduler.CONTINUE
        stop = self.search.should_stop(sid, result["val_acc"], epochs_of(result))
        return TrialScheduler.STOP if stop else TrialScheduler.CONTINUE


def pruner_of(o: Dict[str, Any]):
    """The Optuna pruner of a pruned search's options."""
    if o["pruner"] == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=o["grace_period"], reduction_factor=o["reduction_factor"]
        )
    # from the first COMPLETE trial on, at epoch `grace_period` and after
    return optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=o["grace_period"])
