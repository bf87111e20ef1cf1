"""Runner: runs a study's pending trials through one Ray Tune Tuner (see hpo_kd.tune)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

from .. import provenance, reproducible
from ..errors import UserError
from ..files import atomic_write
from ..searchers import SearchRun
from ..searchers import of as searcher_of
from ..store import Store
from ..study import Study, Trial
from ..worker import trial_fn  # the Tune trainable lives in hpo_kd.worker
from .progress import Progress, timing
from .signals import ctrl_c, stop_if_interrupted
from .units import grouped_units, teacher_key_of, unit_spec

# Ray Tune's own files: nothing per trial (the store keeps every result and curve), and no
# periodic experiment snapshot (a run resumes from the store, never from Tune's state).
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",  # no result.json / progress.csv / params.json per trial
    "TUNE_GLOBAL_CHECKPOINT_S": str(10**9),  # experiment state written once, at the end
    "TUNE_RESULT_BUFFER_LENGTH": "1",
}
# What the workers need in their environment (the embedded Ray passes the driver's environment
# to its workers; a cluster gets it as a runtime_env).
WORKER_ENV = {"RAY_CHDIR_TO_TRIAL_DIR": "0", "PYTHONWARNINGS": "ignore"}


@contextlib.contextmanager
def _environ(values: Dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet(name: str):
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _import_tune() -> None:
    """The driver's imports for the Tuner (Ray Tune, Optuna and the modules built on them)."""
    try:
        from . import callback, search  # noqa: F401
    except Exception:  # imported again where needed, which raises in the right place
        pass


class Runner:
    """Runs a study on a Ray cluster: embedded local Ray by default, or one given by address."""

    def __init__(
        self,
        study: Study,
        runs_dir: str = "runs",
        address: Optional[str] = None,
        log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True),
    ):
        self.study = study
        self.folder = os.path.abspath(os.path.join(runs_dir, study.name))
        self.store = Store(self.folder, create=False)  # reading only, until something runs
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS")
        self.log = log
        self._started_ray = False
        self.kernel_pins: Dict[str, str] = {}  # the kernel pins its Ray workers run under (hpo_kd.reproducible)
        self.timing: Dict[str, Any] = {}  # where the last run's time went (see `timing`)

    def _save_study_copy(self):
        """A copy of the study file beside its results: `hpo-kd transfer` re-creates trials from it."""
        os.makedirs(self.folder, exist_ok=True)
        with open(self.study.path, "rb") as f:
            text = f.read()

        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(text)

        atomic_write(os.path.join(self.folder, "study.toml"), write)
        from ..study import OVERRIDES

        path = os.path.join(self.folder, OVERRIDES)
        if not self.study.overrides and os.path.exists(path):
            os.remove(path)  # this run is the file as it is: an earlier run's overrides no longer hold
        if self.study.overrides:

            def write_overrides(tmp):
                with open(tmp, "w") as f:
                    json.dump(self.study.overrides, f, indent=1)

            atomic_write(path, write_overrides)

    # ------------------------------------------------------------------ Ray lifecycle
    def _start_ray(self):
        """Ray started (or joined), with the driver's own imports for the Tuner done meanwhile."""
        preload = threading.Thread(target=_import_tune, daemon=True)
        preload.start()
        self._init_ray()
        preload.join()

    def _init_ray(self):
        import ray

        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # Ctrl-C stops the whole study at once (KeyboardInterrupt), not just the current Tuner;
        # every finished trial is already in the store.
        os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
        if ray.is_initialized():  # not ours: its workers run under whatever environment they have
            return
        self.kernel_pins = reproducible.worker_env(self.study.resources.get("reproducible", False))
        if self.address:
            try:
                ray.init(
                    address=self.address,
                    runtime_env={"env_vars": self._worker_env()},
                    log_to_driver=False,
                    logging_level="WARNING",
                )
            except ConnectionError as e:
                raise UserError(
                    f"could not connect to the Ray cluster at {self.address!r} ({e}). If the cluster "
                    "uses token authentication (Ray's default), set RAY_AUTH_MODE=token and the "
                    "cluster's token (RAY_AUTH_TOKEN, or the file ~/.ray/auth_token) first"
                ) from None
        else:
            # address="local": always a new embedded Ray, never a cluster that happens to run here.
            # Its workers inherit the environment its processes start with: no runtime_env, whose
            # set-up would delay the start of every worker.
            with _environ(self._worker_env()):
                ray.init(
                    address="local",
                    num_cpus=os.cpu_count(),
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level="WARNING",
                )
        self._started_ray = True

    def _worker_env(self) -> Dict[str, str]:
        """WORKER_ENV, and the kernel pins of a study with `[resources] reproducible = true`."""
        return dict(WORKER_ENV, **reproducible.worker_env(self.study.resources.get("reproducible", False)))

    def _shutdown(self):
        import ray

        if self._started_ray:
            ray.shutdown()

    def _resources(self):
        """(a trial's resources, slots, device, threads) on the cluster."""
        import ray

        r = dict(self.study.resources)
        total = ray.cluster_resources()
        cpus = r["cpus_per_trial"]
        gpus = self._gpus_per_trial(total, cpus, r.get("gpus_per_trial", 0))
        slots = int(total.get("CPU", 1) // cpus) if cpus else 1
        if gpus > 0:
            slots = min(slots, int(total.get("GPU", 0) / gpus + 1e-9))
        slots = max(1, min(slots, r.get("max_concurrent", slots)))
        device = "auto" if gpus > 0 else "cpu"
        return {"cpu": cpus, "gpu": gpus}, slots, device, max(1, int(cpus))

    def _gpus_per_trial(self, total: Dict[str, float], cpus: float, gpus: float) -> float:
        """The study's GPUs per trial (0 on a cluster without GPUs, with a warning); a trial asking
        for more than the cluster has would wait forever: a UserError instead."""
        if cpus > total.get("CPU", 0):
            raise UserError(
                f"{self.study.path}: resources.cpus_per_trial = {cpus} but the Ray cluster "
                f"has {total.get('CPU', 0):g} CPU(s)"
            )
        if gpus > max(total.get("GPU", 0), 1):
            raise UserError(
                f"{self.study.path}: resources.gpus_per_trial = {gpus} but the Ray cluster "
                f"has {total.get('GPU', 0):g} GPU(s)"
            )
        if gpus > 0 and total.get("GPU", 0) < min(gpus, 1):
            warnings.warn(
                f"resources.gpus_per_trial = {gpus} but the Ray cluster has no GPU; running on CPU",
                stacklevel=3,
            )
            self.log(f"warning: resources.gpus_per_trial = {gpus} but the Ray cluster has no GPU; running on CPU")
            gpus = 0
        return gpus

    # ------------------------------------------------------------------ what is left to run
    def pending(self, plan: Optional[List[Trial]] = None) -> List[Trial]:
        done = self.store.finished_ids()
        out = []
        for t in self.study.plan() if plan is None else plan:
            if t.kind == "search":
                if self._to_run(t) > 0:
                    out.append(t)
            elif t.id not in done:
                out.append(t)
        return out

    def tune_trials(self, todo: List[Trial]) -> int:
        """How many Ray Tune trials the pending units take: a group of students is one."""
        units = [t for t in todo if t.kind in ("teacher", "trial")]
        specs = [unit_spec(t, self.folder, "cpu", 1) for t in units]
        searches = sum(1 if searcher_of(t).runs(t) == "unit" else self._to_run(t) for t in todo if t.kind == "search")
        return len(grouped_units(specs, self.study.resources.get("students_per_trial", 1))) + searches

    def remaining(self, todo: List[Trial]) -> int:
        """How many trials (store rows) the pending units still need (a search may be half done);
        `tune_trials` says in how many Ray Tune trials."""
        return sum(self._to_run(t) if t.kind == "search" else t.budget for t in todo)

    def _to_run(self, t: Trial) -> int:
        """The Ray Tune trials search `t` still runs: its searcher says (an unfinished PBT search
        runs again whole; an Optuna search goes on from its finished trials)."""
        return searcher_of(t).trials_to_run(t, self.store.unit_rows(t.id))

    # ------------------------------------------------------------------ running
    def run(self, plan: Optional[List[Trial]] = None) -> Dict[str, int]:
        """Run every trial of the study (or of `plan`) that is not finished in the store."""
        t_run = time.time()
        plan = self.study.plan() if plan is None else plan
        todo = self.pending(plan)
        n_trials = self.remaining(todo)
        planned = sum(t.budget for t in plan)
        self.log(
            f"study {self.study.name}: {planned} trials planned, {planned - n_trials} already finished, "
            f"{n_trials} to run; results in {self.folder}"
        )
        self._finished_searches([t for t in plan if t.kind == "search" and t.id not in {u.id for u in todo}])
        if not todo:
            return {"ran": 0, "planned": planned}
        self._save_study_copy()
        marks = {"run": t_run}
        self._start_ray()
        marks["ray_started"] = time.time()
        progress = None
        try:
            resources, slots, device, threads = self._resources()
            provenance.record(self.folder, threads, self.kernel_pins)
            progress = Progress(n_trials, slots)
            progress.know_teachers(self.store.trials().to_dict("records"))
            with ctrl_c(stop_trials=not self._started_ray):
                self._tune(todo, resources, slots, device, threads, progress, marks)
                stop_if_interrupted()
        finally:
            marks["tune_ended"] = time.time()
            self._shutdown()
            marks["ray_stopped"] = time.time()
            if progress is not None:
                self.timing = timing(marks, progress, slots)
        from ..tensorboard import write_events

        write_events(self.folder)  # the new trials' curves, for `tensorboard --logdir <folder>/tensorboard`
        return {"ran": progress.done, "planned": planned}

    def _finished_searches(self, finished: List[Trial]) -> None:
        """The searches that are finished in the store, each told to its searcher: an Optuna
        search's storage (a run stopped after its last row was stored but before its last tells)
        is made to follow the store. The pending searches follow it as the run builds them (`_units`)."""
        run = SearchRun(self.folder, self.store, self.study)
        for t in finished:
            searcher_of(t).finished(t, run)

    def _tune(
        self,
        todo: List[Trial],
        resources,
        slots: int,
        device: str,
        threads: int,
        progress: Progress,
        marks: Dict[str, float],
    ) -> None:
        """One Tuner for every pending trial of this run, then one per search whose searcher runs
        it alone (Ray Tune's PBT: it refuses the main Tuner's search algorithm)."""
        alone = [t for t in todo if t.kind == "search" and searcher_of(t).runs(t) == "alone"]  # Tuners of their own
        todo = [t for t in todo if t not in alone]
        fixed, searches, schedulers = self._units(todo, slots, device, threads)
        if fixed or searches:
            self._main_tuner(todo, fixed, searches, schedulers, resources, slots, progress, marks)
        if alone:
            marks.setdefault("tune_started", time.time())
            run = SearchRun(
                self.folder, self.store, self.study, slots, resources, progress, lambda: _environ(TUNE_ENV), _quiet
            )
            for t in alone:
                searcher_of(t).run_alone(t, unit_spec(t, self.folder, device, threads), run)
                stop_if_interrupted()

    def _main_tuner(
        self, todo, fixed, searches, schedulers, resources, slots: int, progress: Progress, marks: Dict[str, float]
    ) -> None:
        from ray import tune

        from .callback import StoreCallback
        from .search import PerSearchScheduler, StudySearcher

        searcher = StudySearcher(fixed, searches, self._waits_for(todo, fixed), unused=progress.drop)
        storage = tempfile.mkdtemp(prefix=f"hpo_kd-{self.study.name}-tune-")
        try:
            with _environ(TUNE_ENV):
                tuner = tune.Tuner(
                    tune.with_resources(trial_fn, resources),
                    param_space={},
                    tune_config=tune.TuneConfig(
                        search_alg=searcher,
                        scheduler=PerSearchScheduler(schedulers) if schedulers else None,
                        num_samples=len(fixed) + sum(x.left for x in searches),
                        max_concurrent_trials=slots,
                        reuse_actors=True,
                    ),
                    run_config=tune.RunConfig(
                        name=f"{self.study.name}-{int(time.time() * 1000)}",
                        storage_path=storage,
                        verbose=0,
                        callbacks=[StoreCallback(self.store, self.study, progress)],
                        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                    ),
                )
                marks["tune_started"] = time.time()
                # Tune's result grid looks for the per-trial files it no longer writes: quiet.
                with _quiet("ray.tune.analysis.experiment_analysis"):
                    tuner.fit()
                searcher.flush()  # the searches' last batches, stored by now, to the Optuna storage
        finally:
            shutil.rmtree(storage, ignore_errors=True)

    def _units(self, todo: List[Trial], slots: int, device: str, threads: int):
        """The run's units as Tune sees them: the fixed-config ones (teachers first, then the
        searches that are one trial each (a PBT population), then students, those of a setting and
        seed grouped), the other searches (each from its searcher), and the schedulers of those
        that have one (ASHA)."""
        cache_dir = self.folder  # teachers go to <study folder>/teachers/
        whole = [t for t in todo if t.kind == "search" and searcher_of(t).runs(t) == "unit"]
        units = [t for t in todo if t.kind == "teacher"] + whole + [t for t in todo if t.kind == "trial"]
        specs = []
        for i, t in enumerate(units):
            spec = dict(unit_spec(t, cache_dir, device, threads), index=i)
            specs.append(searcher_of(t).unit(t, spec) if t in whole else spec)
        fixed = grouped_units(specs, self.study.resources.get("students_per_trial", 1))
        searches, schedulers = [], {}
        run = SearchRun(self.folder, self.store, self.study, slots)
        for t in todo:
            if t.kind == "search" and t not in whole:
                s, scheduler = searcher_of(t).tune_search(t, unit_spec(t, cache_dir, device, threads), run)
                searches.append(s)
                if scheduler is not None:
                    schedulers[t.id] = scheduler
        return fixed, searches, schedulers

    def _waits_for(self, todo: List[Trial], fixed: List[Dict[str, Any]]) -> Dict[str, str]:
        """unit id -> the teacher unit it waits for: a student waits for its teacher only while
        the teacher trains in this run."""
        teacher_ids = {teacher_key_of(self.study, t): t.id for t in todo if t.kind == "teacher"}
        waits_for = {}
        for t in todo:
            key = teacher_key_of(self.study, t) if t.kind != "teacher" else None
            if key in teacher_ids:
                waits_for[t.id] = teacher_ids[key]
        for spec in fixed:  # a group waits for its members' teacher (one setting and seed: one teacher)
            for m in spec.get("members", []):
                if m["unit_id"] in waits_for:
                    waits_for[spec["unit_id"]] = waits_for[m["unit_id"]]
        return waits_for
