"""The study's one Tune search: every pending trial of a run (StudySearcher), the searches among
them (each a Ray Tune searcher proposing in batches: Batched, built by its searcher class in
`hpo_kd.searchers`) and their schedulers (PerSearchScheduler), and the Optuna searcher's parts
(`optuna_search`, its storage, `asha`). This module imports Ray Tune and Optuna: only the runner
and the searchers' run hooks import it, once Ray is starting.

Optuna storage. Every Optuna search of a study lives in one SQLite file, `runs/<study>/optuna.db`
(`optuna-dashboard sqlite:///runs/<study>/optuna.db`), as one Optuna study named
`<setting label>/seed<N>` (the unit id is in its user attrs; a name already taken by another search
of the same setting and seed, e.g. after the search's options changed, gets `/<method>-<unit id>`).
SQLite and not a journal file: the searcher (StudySearcher, and so every ask and tell) runs in the
driver process only; the Ray workers never touch the storage, so one writer is all there is, also
on a Ray cluster.

The Parquet store stays the single source of truth, and the storage follows it:
- a trial is told to the storage only once its row is in the store (the tells of a finished batch
  wait until the searcher next asks, or the run ends: Ray calls the searcher before the callback
  that writes the row), so the storage never holds a finished trial the store lacks;
- on every run, `_reconcile` matches the storage's trials of a search with the store's rows (by
  their temperatures): a trial asked but left RUNNING by a Ctrl-C or kill -9 is told its stored
  result if its row is in the store, FAIL otherwise (it does not count); a store row the storage
  lacks (a store from before the storage, or a row written just before a kill) is added; a storage
  that disagrees with the store in any other way (a finished trial the store lacks) is rebuilt
  from the store. Finished trials are therefore never replayed twice.
Proposals: the sampler is seeded as before (seed * 100003 + trial seed) and sees the same finished
trials in the same order as the in-memory replay did, so a study proposes what it proposed before,
except where a search trial ended with a NaN val accuracy (diverged): it is FAIL in the storage, as
a live tell of NaN always was, where the old replay told the sampler 0.0.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import optuna
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from ..study import Trial
from .rows import search_trial_id
from .units import planned_epochs

STORAGE = "optuna.db"


class Batched:
    """One search inside the study's Tuner: its Ray Tune searcher (e.g. an `OptunaSearch`), budget
    and current batch."""

    def __init__(self, spec, searcher, budget: int, offset: int, batch: int):
        self.spec, self.searcher = spec, searcher
        self.unit_id = spec["unit_id"]
        self.left, self.offset, self.batch_size = budget, offset, batch
        self.asked = 0
        self.queue: List[tuple] = []  # (searcher trial id, index, config) proposed, not yet handed out
        self.batch: Dict[str, Optional[tuple]] = {}  # searcher trial id -> (result, error) when done
        self.configs: Dict[str, Dict[str, Any]] = {}  # searcher trial id -> its config (this run)
        self.untold: List[tuple] = []  # (searcher trial id, result, error): stored, not yet told

    def room(self) -> int:
        """How many trials to propose now that the last batch is told: a batch of `batch_size`
        while the budget lasts (a search with a budget in epochs proposes fewer; 0 ends it)."""
        return min(self.batch_size, self.left)

    def record(self, sid: str, result: Optional[Dict], error: bool) -> None:
        """A trial of the current batch has finished."""
        self.batch[sid] = (result, error)

    def flush(self) -> None:
        """Tell the searcher (and so the storage) a finished batch, in the order it proposed it:
        only once the rows are in the store (see the module docstring)."""
        for sid, res, err in self.untold:
            ot = getattr(self.searcher, "_ot_trials", {}).get(sid)
            if ot is not None:
                ot.set_user_attr("trial_id", search_trial_id(self.spec, dict(self.configs[sid], spec=self.spec)))
            self.searcher.on_trial_complete(sid, result=res, error=err)
        self.untold = []


class StudySearcher(Searcher):
    """Every pending trial of a run, as one Tune search: teachers first, then whichever
    search can propose (a search proposes `slots` trials at a time and sees their results
    only when the whole batch has finished), then the fixed-config trials. A unit whose
    teacher is still training waits while any other unit has a trial to run."""

    def __init__(
        self,
        fixed: List[Dict[str, Any]],
        searches: List[Batched],
        waits_for: Dict[str, str],
        unused: Callable[[int], None] = lambda n: None,
    ):
        super().__init__(metric=None, mode=None)
        self._unused = unused  # told how many planned trials a search that ended early leaves unused
        self._fixed = list(fixed)
        self._given = [False] * len(self._fixed)
        self._searches = searches
        self._waits_for = dict(waits_for)  # unit id -> teacher unit id (pending in this run)
        self._done_units: set = set()
        self._owner: Dict[str, tuple] = {}  # Tune trial id -> ("fixed", unit id) | ("search", Batched, id)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True

    def _ready(self, unit_id: str) -> bool:
        t = self._waits_for.get(unit_id)
        return t is None or t in self._done_units

    def _from_search(self, s: Batched, trial_id: str) -> Optional[Dict[str, Any]]:
        if not s.queue:
            if s.batch or s.left <= 0:
                return None  # the batch is still running, or the search is done
            s.flush()  # the last batch's rows are stored by now
            n = s.room()
            if n <= 0:  # its budget (in epochs) is spent before its planned trials
                self._unused(s.left)
                s.left = 0
                return None
            for _ in range(n):
                sid = f"{s.unit_id}-{s.asked}"
                cfg = s.searcher.suggest(sid)
                s.configs[sid] = cfg
                s.queue.append((sid, s.offset + s.asked, cfg))
                s.batch[sid] = None
                s.asked += 1
                s.left -= 1
        sid, index, cfg = s.queue.pop(0)
        self._owner[trial_id] = ("search", s, sid)
        return {"spec": dict(s.spec, index=index, search_trial=sid), **cfg}

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
        s.record(sid, result, error)
        if all(v is not None for v in s.batch.values()):
            # The whole batch has finished: the searcher learns its results in the order it
            # proposed them, whichever finished first, once their rows are stored (`flush`).
            s.untold = [(k, res, err) for k, (res, err) in s.batch.items()]
            s.batch = {}

    def flush(self) -> None:
        """At the end of a run: tell the searchers their last finished batches."""
        for s in self._searches:
            s.flush()

    def save(self, checkpoint_path: str) -> None:
        pass  # a run resumes from the store, not from Tune's experiment state

    def restore(self, checkpoint_path: str) -> None:
        pass


class PerSearchScheduler(FIFOScheduler):
    """FIFO for every trial, except that the trials of a search with a scheduler of its own (e.g.
    an `ASHAScheduler`, whose rungs compare that search's trials only) go to that scheduler."""

    def __init__(self, by_unit: Dict[str, Any]):
        super().__init__()
        self._by_unit = by_unit  # unit id -> its scheduler

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


def open_storage(folder: str):
    """The study's Optuna storage, `<folder>/optuna.db` (see the module docstring)."""
    import os

    os.makedirs(folder, exist_ok=True)
    return optuna.storages.RDBStorage(f"sqlite:///{os.path.join(os.path.abspath(folder), STORAGE)}")


def study_name(storage, t: Trial) -> str:
    """The Optuna study of search unit `t`: the one that names its unit id, else
    `<setting label>/seed<N>`, or with `/<method>-<unit id>` where that name is another unit's."""
    taken = {}
    for s in storage.get_all_studies():
        if s.user_attrs.get("unit_id") == t.id:
            return s.study_name
        taken[s.study_name] = s.user_attrs.get("unit_id")
    name = f"{t.setting.label}/seed{t.seed}"
    if name in taken:
        name = f"{name}/{t.config.get('method')}-{t.id[:8]}"
    return name


def _key(params: Dict[str, Any]) -> tuple:
    if "tau" in params:
        return (float(params["tau"]), float(params["tau"]))
    return (float(params["tau_t"]), float(params["tau_s"]))


def _value(row) -> Optional[float]:
    v = row.get("val_acc")
    return None if v is None or v != v else float(v)


def _state(row):
    """The Optuna state of a store row: a finished trial with a val accuracy is COMPLETE, one that a
    scheduler or pruner stopped early (`stopped`) is PRUNED (TPE ranks it below every COMPLETE
    trial, by how far it got: never as if its early accuracy were final), one without a val
    accuracy (failed, or NaN) is FAIL."""
    from optuna.trial import TrialState

    if row["status"] == "failed" or _value(row) is None:
        return TrialState.FAIL
    return TrialState.PRUNED if row["status"] == "stopped" else TrialState.COMPLETE


def _finished(state):
    """A storage trial's state as `_state` names a store row's."""
    from optuna.trial import TrialState

    return state if state in (TrialState.FAIL, TrialState.PRUNED) else TrialState.COMPLETE


def _last_step(row) -> Dict[int, float]:
    """A stopped row's last intermediate value (its last epoch's val accuracy), what TPE reads of
    a PRUNED trial."""
    epochs = row.get("epochs_run")
    return {int(epochs): _value(row)} if epochs == epochs and epochs is not None else {}


def _reconcile(study, rows: List[Dict[str, Any]], distributions, separate: bool) -> Dict[str, int]:
    """Make the storage's trials of one search follow the store's `rows` (every row of the unit,
    failed ones too; in the store's order). Returns what it did (for tests and the log)."""
    from optuna.trial import TrialState

    def params(row):
        if separate:
            return {"tau_t": float(row["tau_t_config"]), "tau_s": float(row["tau_s_config"])}
        return {"tau": float(row["tau_t_config"])}

    def close(a, b):
        return all(abs(x - y) <= 1e-12 * max(abs(x), abs(y), 1.0) for x, y in zip(a, b))

    did = {"told": 0, "failed": 0, "added": 0, "rebuilt": 0}
    rows = sorted(rows, key=lambda r: r.get("trial_index") if r.get("trial_index") == r.get("trial_index") else 0)
    left = list(rows)  # store rows not matched yet
    trials = study.get_trials(deepcopy=False)
    running = []
    for tr in trials:
        if tr.state in (TrialState.RUNNING, TrialState.WAITING):
            running.append(tr)
            continue
        match = next(
            (r for r in left if close(_key(tr.params), _key(params(r))) and _state(r) == _finished(tr.state)),
            None,
        )
        if match is not None:
            left.remove(match)
        elif tr.state != TrialState.FAIL:
            # A finished trial the store lacks: the storage disagrees with the store (e.g. the
            # store was deleted): rebuilt from the store.
            did["rebuilt"] = 1
            storage, name, sampler = study._storage, study.study_name, study.sampler
            attrs = dict(study.user_attrs)
            optuna.delete_study(study_name=name, storage=storage)
            study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, direction="maximize")
            for k, v in attrs.items():
                study.set_user_attr(k, v)
            left, running = list(rows), []
            break
    for tr in running:
        match = next((r for r in left if close(_key(tr.params), _key(params(r)))), None)
        if match is not None:  # its row was stored before the run stopped: it counts
            left.remove(match)
            study._storage.set_trial_user_attr(tr._trial_id, "trial_id", match["trial_id"])
            state = _state(match)
            study.tell(tr.number, _value(match) if state == TrialState.COMPLETE else None, state=state)
            did["told"] += 1
        else:  # asked, never finished: it does not count
            study._storage.set_trial_user_attr(tr._trial_id, "note", "asked but never finished (run interrupted)")
            study.tell(tr.number, state=TrialState.FAIL)
            did["failed"] += 1
    for r in left:
        state = _state(r)
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=_value(r) if state == TrialState.COMPLETE else None,
                params=params(r),
                distributions=distributions,
                user_attrs={"trial_id": r["trial_id"]},
                intermediate_values=_last_step(r) if state == TrialState.PRUNED else None,
            )
        )
        did["added"] += 1
    return did


def search_space(t: Trial) -> Dict[str, Any]:
    o = t.search
    if o["separate"]:
        return {"tau_t": tune.loguniform(o["low"], o["high"]), "tau_s": tune.loguniform(o["low"], o["high"])}
    return {"tau": tune.loguniform(o["low"], o["high"])}


def tpe_sampler(t: Trial):
    o = t.search
    return optuna.samplers.TPESampler(seed=o["seed"] * 100003 + t.seed, n_startup_trials=o["startup_trials"])


def sync(t: Trial, storage, rows: List[Dict[str, Any]], sampler=None) -> str:
    """Search unit `t`'s Optuna study in `storage`, made to follow the store's `rows` of the unit
    (every one, failed ones too): its name."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = study_name(storage, t)
    study = optuna.create_study(
        storage=storage, study_name=name, sampler=sampler or tpe_sampler(t), direction="maximize", load_if_exists=True
    )
    for k, v in (("unit_id", t.id), ("method", t.config.get("method")), ("setting", t.setting.label), ("seed", t.seed)):
        if study.user_attrs.get(k) != v:
            study.set_user_attr(k, v)
    _reconcile(study, rows, OptunaSearch.convert_search_space(search_space(t)), t.search["separate"])
    return name


def optuna_search(
    t: Trial, spec: Dict[str, Any], prev, slots: int, storage=None, rows=None, cls=OptunaSearch, **kw_cls
) -> Batched:
    """The Optuna search of unit `t`, which has already finished the trials `prev` (its store
    rows), proposing `slots` trials at a time. With a `storage` (see `open_storage`) the search
    lives there, made to follow the store's `rows` of the unit (failed ones too); without one it
    is in memory, told `prev` again. `cls`: the Ray Tune searcher (an `OptunaSearch`, or a
    subclass that tells a stopped trial PRUNED: `hpo_kd.tune.multifidelity`), given `kw_cls`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    o = t.search
    space = search_space(t)
    if o["separate"]:
        points = (
            [{"tau_t": a, "tau_s": b} for a, b in zip(prev["tau_t_config"], prev["tau_s_config"])] if len(prev) else []
        )
    else:
        points = [{"tau": a} for a in prev["tau_t_config"]] if len(prev) else []
    rewards = [v if v == v else 0.0 for v in prev["val_acc"].astype(float)] if len(prev) else None
    distributions = OptunaSearch.convert_search_space(space)
    sampler = tpe_sampler(t)
    kw: Dict[str, Any] = {"points_to_evaluate": points or None, "evaluated_rewards": rewards}
    if storage is not None:
        name = sync(t, storage, list(rows if rows is not None else prev.to_dict("records")), sampler)
        kw = {"storage": storage, "study_name": name}
    searcher = cls(space=distributions, metric="val_acc", mode="max", sampler=sampler, **kw, **kw_cls)
    # Per-epoch reports only where a scheduler reads them (ASHA); otherwise the curve comes
    # with the final report.
    spec = dict(spec, per_epoch=bool(o.get("asha")))
    return Batched(spec, searcher, budget=t.budget - len(prev), offset=len(prev), batch=slots)


def asha(t: Trial, spec: Dict[str, Any]) -> ASHAScheduler:
    """The ASHA scheduler of search unit `t`: its rungs compare that search's trials only."""
    o = t.search
    return ASHAScheduler(
        time_attr="epoch",
        metric="val_acc",
        mode="max",
        # +1: reaching max_t stops a trial before its final report
        max_t=planned_epochs(spec) + 1,
        grace_period=o["grace_period"],
        reduction_factor=o["reduction_factor"],
    )
