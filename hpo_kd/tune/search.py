"""The study's one Tune search: every pending trial of a run (StudySearcher), the Optuna searches
among them (_Search) and their ASHA schedulers (PerSearchScheduler). This module imports Ray Tune
and Optuna: only the runner imports it, once Ray is starting."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from ..study import Trial
from .units import _planned_epochs


class _Search:
    """One Optuna search inside the study's Tuner: its searcher, budget and current batch."""

    def __init__(self, spec, searcher, budget: int, offset: int, batch: int):
        self.spec, self.searcher = spec, searcher
        self.unit_id = spec["unit_id"]
        self.left, self.offset, self.batch_size = budget, offset, batch
        self.asked = 0
        self.queue: List[tuple] = []  # (searcher trial id, index, config) proposed, not yet handed out
        self.batch: Dict[str, Optional[tuple]] = {}  # searcher trial id -> (result, error) when done


class StudySearcher(Searcher):
    """Every pending trial of a run, as one Tune search: teachers first, then whichever
    search can propose (a search proposes `slots` trials at a time and sees their results
    only when the whole batch has finished), then the fixed-config trials. A unit whose
    teacher is still training waits while any other unit has a trial to run."""

    def __init__(self, fixed: List[Dict[str, Any]], searches: List[_Search], waits_for: Dict[str, str]):
        super().__init__(metric=None, mode=None)
        self._fixed = list(fixed)
        self._given = [False] * len(self._fixed)
        self._searches = searches
        self._waits_for = dict(waits_for)  # unit id -> teacher unit id (pending in this run)
        self._done_units: set = set()
        self._owner: Dict[str, tuple] = {}  # Tune trial id -> ("fixed", unit id) | ("search", _Search, id)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def _ready(self, unit_id: str) -> bool:
        t = self._waits_for.get(unit_id)
        return t is None or t in self._done_units

    def _from_search(self, s: _Search, trial_id: str) -> Optional[Dict[str, Any]]:
        if not s.queue:
            if s.batch or s.left <= 0:
                return None  # the batch is still running, or the search is done
            for _ in range(min(s.batch_size, s.left)):
                sid = f"{s.unit_id}-{s.asked}"
                cfg = s.searcher.suggest(sid)
                s.queue.append((sid, s.offset + s.asked, cfg))
                s.batch[sid] = None
                s.asked += 1
                s.left -= 1
        sid, index, cfg = s.queue.pop(0)
        self._owner[trial_id] = ("search", s, sid)
        return {"spec": dict(s.spec, index=index), **cfg}

    def _from_fixed(self, trial_id: str, ready: bool, teachers: bool) -> Optional[Dict[str, Any]]:
        for i, spec in enumerate(self._fixed):
            if self._given[i] or (spec["kind"] == "teacher") != teachers:
                continue
            if self._ready(spec["unit_id"]) == ready:
                self._given[i] = True
                self._owner[trial_id] = ("fixed", spec["unit_id"])
                return {"spec": spec}
        return None

    def suggest(self, trial_id: str) -> Optional[Dict[str, Any]]:
        cfg = self._from_fixed(trial_id, True, teachers=True)
        for ready in (True, False):
            for s in self._searches:
                if cfg is None and self._ready(s.unit_id) == ready:
                    cfg = self._from_search(s, trial_id)
            if cfg is None:
                cfg = self._from_fixed(trial_id, ready, teachers=False)
            if cfg is not None:
                return cfg
        if all(self._given) and all(s.left <= 0 and not s.queue for s in self._searches):
            return Searcher.FINISHED
        return None

    def on_trial_result(self, trial_id: str, result: Dict) -> None:
        owner = self._owner.get(trial_id)
        if owner and owner[0] == "search" and owner[1].spec.get("per_epoch") and "val_acc" in result:
            owner[1].searcher.on_trial_result(owner[2], result)

    def on_trial_complete(self, trial_id: str, result: Optional[Dict] = None, error: bool = False) -> None:
        owner = self._owner.pop(trial_id, None)
        if owner is None:
            return
        if owner[0] == "fixed":
            self._done_units.add(owner[1])
            return
        _, s, sid = owner
        s.batch[sid] = (result, error)
        if all(v is not None for v in s.batch.values()):
            # The whole batch has finished: the searcher learns its results in the order it
            # proposed them, whichever finished first.
            for k, (res, err) in s.batch.items():
                s.searcher.on_trial_complete(k, result=res, error=err)
            s.batch = {}

    def save(self, checkpoint_path: str) -> None:
        pass  # a run resumes from the store, not from Tune's experiment state

    def restore(self, checkpoint_path: str) -> None:
        pass


class PerSearchScheduler(FIFOScheduler):
    """FIFO for every trial, except that each ASHA search's trials go to its own
    `ASHAScheduler` (its rungs compare that search's trials only)."""

    def __init__(self, by_unit: Dict[str, Any]):
        super().__init__()
        self._by_unit = by_unit  # unit id -> its ASHAScheduler

    def _of(self, trial):
        return self._by_unit.get(trial.config.get("spec", {}).get("unit_id"))

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def on_trial_add(self, tune_controller, trial):
        s = self._of(trial)
        if s is not None:
            s.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        s = self._of(trial)
        if s is not None:
            s.on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        s = self._of(trial)
        return s.on_trial_result(tune_controller, trial, result) if s is not None else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result):
        s = self._of(trial)
        if s is not None:
            s.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        s = self._of(trial)
        if s is not None:
            s.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(s.debug_string() for s in self._by_unit.values())


def optuna_search(t: Trial, spec: Dict[str, Any], prev, slots: int) -> _Search:
    """The Optuna search of unit `t`, told the trials it has already finished (`prev`, its store
    rows), proposing `slots` trials at a time."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    o = t.search
    if o["separate"]:
        space = {"tau_t": tune.loguniform(o["low"], o["high"]), "tau_s": tune.loguniform(o["low"], o["high"])}
        points = [{"tau_t": a, "tau_s": b} for a, b in zip(prev["tau_t_config"], prev["tau_s_config"])] if len(prev) else []
    else:
        space = {"tau": tune.loguniform(o["low"], o["high"])}
        points = [{"tau": a} for a in prev["tau_t_config"]] if len(prev) else []
    rewards = [v if v == v else 0.0 for v in prev["val_acc"].astype(float)] if len(prev) else None
    searcher = OptunaSearch(
        space=OptunaSearch.convert_search_space(space), metric="val_acc", mode="max",
        sampler=optuna.samplers.TPESampler(seed=o["seed"] * 100003 + t.seed,
                                           n_startup_trials=o["startup_trials"]),
        points_to_evaluate=points or None, evaluated_rewards=rewards,
    )
    # Per-epoch reports only where a scheduler reads them (ASHA); otherwise the curve comes
    # with the final report.
    spec = dict(spec, per_epoch=bool(o["asha"]))
    return _Search(spec, searcher, budget=t.budget - len(prev), offset=len(prev), batch=slots)


def asha(t: Trial, spec: Dict[str, Any]) -> ASHAScheduler:
    """The ASHA scheduler of search unit `t`: its rungs compare that search's trials only."""
    o = t.search
    return ASHAScheduler(time_attr="epoch", metric="val_acc", mode="max",
                         # +1: reaching max_t stops a trial before its final report
                         max_t=_planned_epochs(spec) + 1,
                         grace_period=o["grace_period"], reduction_factor=o["reduction_factor"])
